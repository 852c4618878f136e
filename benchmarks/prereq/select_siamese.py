"""Choose PREREQ's siamese head and training settings by inner validation on the training folds only.

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/select_siamese.py [university|nptel] [folds]
       [setting substrings separated by "|", e.g. "concat, lr|rich"]
For each of the authors' first ``folds`` training folds, 20% of the pairs are held out and every
setting (or those whose label contains one of the substrings) is scored by its validation AUC (the
test folds are never touched). The records are merged into
benchmarks/results/prereq_select_<dataset>.json (same workload replaced, others kept), with one
record naming the best setting among all recorded.
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from frugalml.common import report
from frugalml.common.report import Record
from frugalml.prereq import data
from frugalml.prereq.methods import Context
from frugalml.prereq.siamese import PAPER_SIAMESE, PREREQ_SIAMESE, SiameseClassifier

SETTINGS = {
    "paper (abs, lr 1e-4, 3500 steps)": {**PAPER_SIAMESE},
    "abs, lr 1e-3, 1000 steps": {**PREREQ_SIAMESE, "head": "abs", "val_fraction": 0.0},
    "diff, lr 1e-3, 1000 steps": {**PREREQ_SIAMESE, "head": "diff", "val_fraction": 0.0},
    "concat, lr 1e-3, 1000 steps": {**PREREQ_SIAMESE, "head": "concat", "val_fraction": 0.0},
    "concat, log inputs, lr 1e-3, 1000 steps": {**PREREQ_SIAMESE, "head": "concat", "inputs": "log",
                                                "val_fraction": 0.0},
    "rich, lr 1e-3, 1000 steps": {**PREREQ_SIAMESE, "head": "rich", "val_fraction": 0.0},
}
SELECTED = "selected setting (best validation AUC)"


def main(name: str = "university", n_folds: int = 3, only: str = "") -> None:
    chosen = {label: params for label, params in SETTINGS.items()
              if not only or any(part in label for part in only.split("|"))}
    ds = data.load(name)
    model = Context(ds.corpus).plda

    def vectors(names):
        return model.concept_vectors(ds.corpus.concept_columns(names))

    records = []
    for label, params in chosen.items():
        aucs = []
        for fold, (train, _) in enumerate(ds.folds[:n_folds]):
            order = np.random.default_rng(fold).permutation(len(train))
            held = len(train) // 5
            inner, val = train.subset(np.sort(order[held:])), train.subset(np.sort(order[:held]))
            clf = SiameseClassifier(**params).fit(vectors(inner.a), vectors(inner.b), inner.y)
            aucs.append(roc_auc_score(val.y, clf.predict_proba(vectors(val.a), vectors(val.b))))
        records.append(Record("prereq", f"{name}/inner-validation/{label}", "validation AUC", "",
                              float(np.mean(aucs)), spread={"folds": [round(a, 4) for a in aucs]},
                              notes=f"20% of each of the first {n_folds} authors' training folds "
                                    "held out; test folds unused; K=100 Pairwise-Link-LDA"))
        print(label, f"{np.mean(aucs):.3f}", np.round(aucs, 3), flush=True)
    path = Path(__file__).resolve().parents[1] / "results" / f"prereq_select_{name}.json"
    _merge(records, path, name)


def _merge(records: list[Record], path: Path, name: str) -> None:
    """Replace same-workload records in ``path``, keep the others, and re-derive the selection."""
    new = {r.workload for r in records}
    old = [Record(**{k: v for k, v in item.items() if k != "ratio"}) for item in
           (report.read_json(path) if path.exists() else [])]
    kept = [r for r in old if r.workload not in new and not r.workload.endswith(SELECTED)]
    merged = kept + records
    best = max(merged, key=lambda r: r.ours)
    label = best.workload.rsplit("/", 1)[-1]
    others = ", ".join(f"{r.workload.rsplit('/', 1)[-1]}: {r.ours:.3f}" for r in merged if r is not best)
    merged.append(Record("prereq", f"{name}/inner-validation/{SELECTED}", "validation AUC", "",
                         best.ours, spread=best.spread, notes=f"selected: {label}; others: {others}"))
    report.write_json(merged, path)
    print(f"selected: {label} ({best.ours:.3f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "university",
         int(sys.argv[2]) if len(sys.argv) > 2 else 3, sys.argv[3] if len(sys.argv) > 3 else "")
