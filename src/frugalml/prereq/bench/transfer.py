"""Transfer to unseen concepts: every method on concept-disjoint splits (and the authors' folds)
over several seeds, with the mean and a 95% interval over all folds and seeds, and the identity and
all-positive baselines beside every figure.

One Pairwise-Link-LDA is fitted per data set (the topic model never sees the labelled pairs); each
seed draws its own concept partitions and seeds every method.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from frugalml.common import env


def run(
    out: str | Path,
    *,
    datasets: Sequence[str] = ("university", "nptel"),
    splits: Sequence[str] = ("disjoint", "authors"),
    methods: Sequence[str] = ("prereq-hybrid", "prereq-topics", "prereq-links", "rf", "identity", "allpos"),
    seeds: Sequence[int] = (0, 1, 2),
    topics: int = 100,
    em_iter: int = 100,
    quiet: bool = True,
) -> dict:
    """Run the transfer study and write it as JSON (atomically); returns the document."""
    import json

    from frugalml.common.files import atomic_write
    from frugalml.prereq import data
    from frugalml.prereq.evaluate import over_seeds
    from frugalml.prereq.methods import Context

    started = time.perf_counter()
    doc: dict = {
        "what": "mean and 95% t-interval over all folds of all seeds (5 folds x seeds)",
        "settings": {"topics": topics, "em_iter": em_iter, "seeds": list(seeds), "methods": list(methods)},
        "runs": [],
    }
    for name in datasets:
        ds = data.load(name)
        context = Context.with_limits(ds.corpus, n_topics=topics, em_iter=em_iter, steps=None, seed=0)
        for split in splits:
            results = over_seeds(ds, methods, split, seeds, context=context, quiet=quiet)
            doc["runs"].append({"dataset": name, "split": split, "results": results})
            _print(name, split, results)
    doc["seconds"] = time.perf_counter() - started
    doc["machine"] = env.machine(load=True)
    with atomic_write(Path(out), "w") as f:
        json.dump(doc, f, indent=1)
    return doc


def _print(name: str, split: str, results: dict) -> None:
    print(f"{name} / {split}")
    for method, entry in results.items():
        auc, f1 = entry["ci95"]["auc"], entry["ci95"]["f1"]
        print(
            f"  {method:14s} AUC {auc['mean']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}]  "
            f"F1 {f1['mean']:.3f} [{f1['low']:.3f}, {f1['high']:.3f}]  (n={auc['n']})"
        )
