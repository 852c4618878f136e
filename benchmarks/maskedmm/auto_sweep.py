"""Re-measure ``method="auto"`` vs numpy (1 thread, thread time) at 0-99% zeros and merge the records
into benchmarks/results/maskedmm/auto-sweep.json, replacing earlier records of the same workload,
metric and peer. The 15-round sweep matches the target table's; the 45-round one narrows the
medians, which scatter by a few % on a loaded machine (more than auto's overhead when it runs BLAS).

Run: ``.venv/bin/python benchmarks/maskedmm/auto_sweep.py`` (a minute or two).
"""

from pathlib import Path

from frugalml.maskedmm.bench.auto_sweep import auto_records
from frugalml.maskedmm.bench.contenders import blas_note
from frugalml.maskedmm.bench.reproduce import publish
from frugalml.maskedmm.bench.target_table import AUTO_SPARSITIES

RESULTS = Path(__file__).resolve().parents[1] / "results" / "maskedmm" / "auto-sweep.json"
ROUNDS = (15, 45)

if __name__ == "__main__":
    records = [r for rounds in ROUNDS for r in auto_records(sparsities=AUTO_SPARSITIES, rounds=rounds)]
    publish(records, RESULTS, f"maskedmm auto vs numpy ({blas_note()})")
