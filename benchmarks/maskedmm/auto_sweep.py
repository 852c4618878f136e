"""Re-measure ``method="auto"`` vs numpy (1 thread, thread time) at 0-99% zeros and merge the records
into benchmarks/results/maskedmm.json, replacing earlier records of the same workload, metric and
peer. The 15-round sweep is the issue's; the 45-round one narrows the medians, which scatter by a
few % on a loaded machine (more than auto's overhead when it runs BLAS).

Run: ``.venv/bin/python benchmarks/maskedmm/auto_sweep.py`` (a minute or two).
"""

from pathlib import Path

from frugalml.common.report import merge_json, print_table
from frugalml.maskedmm import bench

RESULTS = Path(__file__).resolve().parents[1] / "results" / "maskedmm.json"
SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
ROUNDS = (15, 45)


def main() -> None:
    records = [r for rounds in ROUNDS for r in bench.auto_records(sparsities=SPARSITIES, rounds=rounds)]
    print_table(records, title=f"maskedmm auto vs numpy ({bench.blas_note()})")
    kept = merge_json(records, RESULTS)
    print(f"merged {len(records)} auto records into {RESULTS} ({kept} others kept)")


if __name__ == "__main__":
    main()
