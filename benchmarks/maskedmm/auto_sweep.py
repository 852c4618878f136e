"""Re-measure ``method="auto"`` vs numpy (1 thread, thread time) at 0-99% zeros and merge the records
into benchmarks/results/maskedmm.json, replacing only earlier auto sweep records. The 15-round sweep
is the issue's; the 45-round one narrows the medians, which scatter by a few % on a loaded machine
(more than auto's overhead when it runs BLAS).

Run: ``.venv/bin/python benchmarks/maskedmm/auto_sweep.py`` (a minute or two).
"""

import dataclasses
from pathlib import Path

from frugalml.common.report import Record, print_table, read_json, write_json
from frugalml.maskedmm import bench

RESULTS = Path(__file__).resolve().parents[1] / "results" / "maskedmm.json"
SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
ROUNDS = (15, 45)


def main() -> None:
    records = [r for rounds in ROUNDS for r in bench.auto_records(sparsities=SPARSITIES, rounds=rounds)]
    metrics = {r.metric for r in records}
    names = {f.name for f in dataclasses.fields(Record)}
    kept = [Record(**{k: v for k, v in r.items() if k in names})
            for r in read_json(RESULTS) if r["metric"] not in metrics]
    print_table(records, title=f"maskedmm auto vs numpy ({bench.blas_note()})")
    write_json(kept + records, RESULTS)
    print(f"merged {len(records)} auto records into {RESULTS} ({len(kept)} others kept)")


if __name__ == "__main__":
    main()
