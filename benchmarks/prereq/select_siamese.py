"""Choose PREREQ's siamese head and training settings by inner validation on the training folds only.

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/select_siamese.py [university|nptel] [folds]
For each of the authors' first ``folds`` training folds, 20% of the pairs are held out and every
setting is scored by its validation AUC (the test folds are never touched). Writes
benchmarks/results/prereq_select_<dataset>.json.
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
    "concat, lr 1e-3, 1000 steps": {**PREREQ_SIAMESE, "val_fraction": 0.0},
    "concat, log inputs, lr 1e-3, 1000 steps": {**PREREQ_SIAMESE, "inputs": "log", "val_fraction": 0.0},
}


def main(name: str = "university", n_folds: int = 3) -> None:
    ds = data.load(name)
    model = Context(ds.corpus).plda

    def vectors(names):
        return model.concept_vectors(ds.corpus.concept_columns(names))

    records = []
    for label, params in SETTINGS.items():
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
    report.write_json(records, Path(__file__).resolve().parents[1] / "results" /
                      f"prereq_select_{name}.json")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "university",
         int(sys.argv[2]) if len(sys.argv) > 2 else 3)
