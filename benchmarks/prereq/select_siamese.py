"""Choose PREREQ's siamese head and training settings by inner validation on the training folds only.

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/select_siamese.py [university|nptel] [folds]
       [setting substrings separated by "|", e.g. "concat, lr|rich"]
Scores every setting of frugalml.prereq.bench.selection.SETTINGS (or those whose label contains one
of the substrings) by its validation AUC on 20% held out of each of the authors' first ``folds``
training folds, and merges the records into benchmarks/results/prereq/siamese-selection-<dataset>.json (same
workload replaced, others kept) with one record naming the selected setting.
"""

import sys
from pathlib import Path

from frugalml.prereq.bench.selection import run

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "university"
    run(
        name,
        int(sys.argv[2]) if len(sys.argv) > 2 else 3,
        sys.argv[3] if len(sys.argv) > 3 else "",
        json_path=Path(__file__).resolve().parents[1]
        / "results"
        / "prereq"
        / f"siamese-selection-{name}.json",
    )
