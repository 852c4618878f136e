"""Choose PREREQ's siamese head and training settings by inner validation on the training folds only.

For each of the authors' first ``folds`` training folds, 20% of the pairs are held out and every
setting (or those whose label contains one of the given substrings) is scored by its validation AUC
(the test folds are never touched). A setting may also name the concept vectors (``vectors``:
"beta" = p(concept | topic), the paper's; "beta+eta" = also eta x and eta^T x, the topics the
concept's topics link to and from) and the number of topics (``topics``, one Pairwise-Link-LDA per
K, fitted on the corpus alone). The records are merged into a results file (same workload replaced,
others kept), with one record naming the selected setting: the best validation AUC among the
settings a user can run as they are and that keep the full reproduction within its 10-minute target
(:func:`eligible`: the threshold is chosen on held-out pairs, and at most :data:`MAX_STEPS` training
steps per fit in all members).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.common import report
from frugalml.common.report import Record
from frugalml.prereq.data import Dataset
from frugalml.prereq.siamese import PAPER_SIAMESE

if TYPE_CHECKING:
    from frugalml.prereq.plda import PairwiseLinkLDA

_BASE = {"lr": 1e-3, "steps": 1000, "val_fraction": 0.0, "threads": 1}  # dropout 0.1, one network
_RICH = {**_BASE, "head": "rich"}
SETTINGS: dict[str, dict[str, Any]] = {
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
MAX_STEPS = 3000  # members x steps per fit; more puts the full reproduction over its 10-minute target


def eligible(label: str) -> bool:
    """A setting PREREQ can use as its default: threshold on held-out pairs, <= MAX_STEPS steps.

    Examples
    --------
    >>> eligible("rich, dropout 0.7, 3 members each holding out 20%, 1000 steps")
    True
    >>> eligible("paper (abs, lr 1e-4, 3500 steps)")
    False
    """
    params = SETTINGS.get(label, {})
    return (
        params.get("val_fraction", 0) > 0
        and params.get("members", 1) * params.get("steps", 1000) <= MAX_STEPS
    )


def chosen_settings(only: str = "") -> dict[str, dict[str, Any]]:
    """The settings whose label contains one of the ``|``-separated substrings (all when empty).

    Examples
    --------
    >>> list(chosen_settings("K=50"))
    ['rich, dropout 0.7, K=50']
    """
    return {
        label: params
        for label, params in SETTINGS.items()
        if not only or any(part in label for part in only.split("|"))
    }


@dataclass
class ConceptVectors:
    """Concept vectors of one data set, one Pairwise-Link-LDA per number of topics (fitted once)."""

    dataset: Dataset
    models: dict[int, PairwiseLinkLDA] = field(default_factory=dict)

    def of(self, kind: str, topics: int) -> Callable[[Sequence[str]], np.ndarray]:
        """A function from concept names to vectors: ``"beta"`` or ``"beta+eta"`` with K topics."""
        from frugalml.prereq.methods import Context

        if topics not in self.models:
            self.models[topics] = Context(self.dataset.corpus, n_topics=topics).plda
        model = self.models[topics]

        def vectors(names: Sequence[str]) -> np.ndarray:
            x = model.concept_vectors(self.dataset.corpus.concept_columns(names))
            return np.hstack([x, x @ model.eta_, x @ model.eta_.T]) if kind == "beta+eta" else x

        return vectors


def inner_validation_aucs(
    dataset: Dataset, vectors: Callable[[Sequence[str]], np.ndarray], params: dict[str, Any], n_folds: int
) -> list[float]:
    """Validation AUC of one siamese setting on 20% held out of each of the first training folds."""
    from sklearn.metrics import roc_auc_score

    from frugalml.prereq.siamese import SiameseClassifier

    aucs = []
    for fold, (train, _) in enumerate(dataset.folds[:n_folds]):
        order = np.random.default_rng(fold).permutation(len(train))
        held = len(train) // 5
        inner, val = train.subset(np.sort(order[held:])), train.subset(np.sort(order[:held]))
        clf = SiameseClassifier(**params).fit(vectors(inner.a), vectors(inner.b), inner.y)
        aucs.append(float(roc_auc_score(val.y, clf.predict_proba(vectors(val.a), vectors(val.b)))))
    return aucs


def run(
    name: str = "university", n_folds: int = 3, only: str = "", json_path: str | Path | None = None
) -> list[Record]:
    """Score the chosen settings on data set ``name``; merge them (and the selection) into ``json_path``."""
    from frugalml.prereq import data

    ds = data.load(name)
    sources = ConceptVectors(ds)
    records = []
    for label, setting in chosen_settings(only).items():
        params = dict(setting)
        vectors = sources.of(params.pop("vectors", "beta"), params.pop("topics", 100))
        aucs = inner_validation_aucs(ds, vectors, params, n_folds)
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
    if json_path is not None:
        merge(records, Path(json_path), name)
    return records


def merge(records: list[Record], path: Path, name: str) -> list[Record]:
    """Replace same-workload records in ``path``, keep the others, and re-derive the selection."""
    new = {r.workload for r in records}
    old = report.read_records(path) if path.exists() else []
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
    return merged
