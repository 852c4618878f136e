"""Choose PREREQ's siamese head and training settings by inner validation on the training folds only.

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/select_siamese.py [university|nptel] [folds]
       [setting substrings separated by "|", e.g. "concat, lr|rich"]
For each of the authors' first ``folds`` training folds, 20% of the pairs are held out and every
setting (or those whose label contains one of the substrings) is scored by its validation AUC (the
test folds are never touched). A setting may also name the concept vectors (``vectors``: "beta" =
p(concept | topic), the paper's; "beta+eta" = also eta x and eta^T x, the topics the concept's
topics link to and from) and the number of topics (``topics``, one Pairwise-Link-LDA per K, fitted
on the corpus alone). The records are merged into
benchmarks/results/prereq_select_<dataset>.json (same workload replaced, others kept), with one
record naming the selected setting: the best validation AUC among the settings a user can run as
they are and that keep the full reproduction within its 10-minute budget (``eligible``: the
threshold is chosen on held-out pairs, and at most 3000 training steps per fit in all members).
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from frugalml.common import report
from frugalml.common.report import Record
from frugalml.prereq import data
from frugalml.prereq.methods import Context
from frugalml.prereq.siamese import PAPER_SIAMESE, SiameseClassifier

_BASE = {"lr": 1e-3, "steps": 1000, "val_fraction": 0.0, "threads": 1}  # dropout 0.1, one network
_RICH = {**_BASE, "head": "rich"}
SETTINGS = {
    "paper (abs, lr 1e-4, 3500 steps)": {**PAPER_SIAMESE},
    "abs, lr 1e-3, 1000 steps": {**_BASE, "head": "abs"},
    "diff, lr 1e-3, 1000 steps": {**_BASE, "head": "diff"},
    "concat, lr 1e-3, 1000 steps": {**_BASE, "head": "concat"},
    "concat, log inputs, lr 1e-3, 1000 steps": {**_BASE, "head": "concat", "inputs": "log"},
    "rich, lr 1e-3, 1000 steps": {**_RICH},
    "rich, dropout 0.5, lr 1e-3, 1000 steps": {**_RICH, "dropout": 0.5},
    "rich, dropout 0.7, lr 1e-3, 1000 steps": {**_RICH, "dropout": 0.7},
    "rich, dropout 0.7, lr 1e-3, 2000 steps": {**_RICH, "dropout": 0.7, "steps": 2000},
    "rich, dropout 0.7, K=50": {**_RICH, "dropout": 0.7, "topics": 50},
    "rich, dropout 0.5, beta+eta vectors": {**_RICH, "dropout": 0.5, "vectors": "beta+eta"},
    "rich, dropout 0.7, 2000 steps, one network holding out 20%": {
        **_RICH,
        "dropout": 0.7,
        "steps": 2000,
        "val_fraction": 0.2,
    },
    "rich, dropout 0.7, 3 members each holding out 20%, 1000 steps": {
        **_RICH,
        "dropout": 0.7,
        "members": 3,
        "val_fraction": 0.2,
    },
    "rich, dropout 0.7, 3 members each holding out 20%, 2000 steps": {
        **_RICH,
        "dropout": 0.7,
        "members": 3,
        "val_fraction": 0.2,
        "steps": 2000,
    },
}
SELECTED = "selected setting (best validation AUC)"
MAX_STEPS = 3000  # members x steps per fit; more puts the 2-core reproduction over 10 minutes


def eligible(label: str) -> bool:
    """A setting PREREQ can use as its default (see the module docstring)."""
    params = SETTINGS.get(label, {})
    return (
        params.get("val_fraction", 0) > 0
        and params.get("members", 1) * params.get("steps", 1000) <= MAX_STEPS
    )


def main(name: str = "university", n_folds: int = 3, only: str = "") -> None:
    chosen = {
        label: params
        for label, params in SETTINGS.items()
        if not only or any(part in label for part in only.split("|"))
    }
    ds = data.load(name)
    models = {}

    def vectors_of(kind: str, topics: int):
        if topics not in models:
            models[topics] = Context(ds.corpus, n_topics=topics).plda
        model = models[topics]

        def vectors(names):
            x = model.concept_vectors(ds.corpus.concept_columns(names))
            return np.hstack([x, x @ model.eta_, x @ model.eta_.T]) if kind == "beta+eta" else x

        return vectors

    records = []
    for label, setting in chosen.items():
        params = dict(setting)
        vectors = vectors_of(params.pop("vectors", "beta"), params.pop("topics", 100))
        aucs = []
        for fold, (train, _) in enumerate(ds.folds[:n_folds]):
            order = np.random.default_rng(fold).permutation(len(train))
            held = len(train) // 5
            inner, val = train.subset(np.sort(order[held:])), train.subset(np.sort(order[:held]))
            clf = SiameseClassifier(**params).fit(vectors(inner.a), vectors(inner.b), inner.y)
            aucs.append(roc_auc_score(val.y, clf.predict_proba(vectors(val.a), vectors(val.b))))
        records.append(
            Record(
                "prereq",
                f"{name}/inner-validation/{label}",
                "validation AUC",
                "",
                float(np.mean(aucs)),
                spread={"folds": [round(a, 4) for a in aucs]},
                notes=f"20% of each of the first {n_folds} authors' training folds "
                f"held out; test folds unused; settings {setting}",
            )
        )
        print(label, f"{np.mean(aucs):.3f}", np.round(aucs, 3), flush=True)
    path = Path(__file__).resolve().parents[1] / "results" / f"prereq_select_{name}.json"
    _merge(records, path, name)


def _merge(records: list[Record], path: Path, name: str) -> None:
    """Replace same-workload records in ``path``, keep the others, and re-derive the selection."""
    new = {r.workload for r in records}
    old = [
        Record(**{k: v for k, v in item.items() if k != "ratio"})
        for item in (report.read_json(path) if path.exists() else [])
    ]
    kept = [r for r in old if r.workload not in new and not r.workload.endswith(SELECTED)]
    merged = kept + records
    best = max((r for r in merged if eligible(r.workload.rsplit("/", 1)[-1])), key=lambda r: r.ours)
    label = best.workload.rsplit("/", 1)[-1]
    others = ", ".join(f"{r.workload.rsplit('/', 1)[-1]}: {r.ours:.3f}" for r in merged if r is not best)
    notes = (
        f"selected: {label}; eligible: threshold on held-out pairs and <= {MAX_STEPS} "
        f"training steps per fit; others: {others}"
    )
    merged.append(
        Record(
            "prereq",
            f"{name}/inner-validation/{SELECTED}",
            "validation AUC",
            "",
            best.ours,
            spread=best.spread,
            notes=notes,
        )
    )
    report.write_json(merged, path)
    print(f"selected: {label} ({best.ours:.3f})")


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "university",
        int(sys.argv[2]) if len(sys.argv) > 2 else 3,
        sys.argv[3] if len(sys.argv) > 3 else "",
    )
