"""Regenerate maskedmm's result files: one JSON file per claim under a results folder.

``sweep.json`` (+ ``sweep.png``): uniform zeros with every peer and the structured patterns, one
thread; ``auto-sweep.json``: auto vs numpy with more rounds; ``kernels.json``: each masked kernel;
``threads.json``: 2 threads with one child process per method; ``coretype.json``: numpy under the
other OPENBLAS_CORETYPE setting. The target table (``target-table.json``) and the thread-pool
contention (``thread-contention.json``) have their own entry points.
"""

from __future__ import annotations

import os
from pathlib import Path

from frugalml.common.report import Record, merge_json, print_table, write_json
from frugalml.maskedmm.bench.auto_sweep import auto_records, kernel_records
from frugalml.maskedmm.bench.contenders import blas_note
from frugalml.maskedmm.bench.processes import coretype_records, subprocess_records
from frugalml.maskedmm.bench.sweep import BenchConfig, plot, run

UNIFORM = BenchConfig(
    n=1024,
    sparsities=(0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99),
    patterns=("random",),
    threads=(1,),
    rounds=5,
)
STRUCTURED = BenchConfig(
    n=1024,
    sparsities=(0.5, 0.7, 0.8, 0.9, 0.95, 0.99),
    patterns=("block16", "columns", "relu"),
    threads=(1,),
    rounds=5,
    peers=("scipy",),
)
SHARED = ("auto-sweep",)  # files other entry points merge into: merged here too, never overwritten


def publish(records: list[Record], path: str | os.PathLike, title: str, *, merge: bool = True) -> None:
    """Print ``records`` as a table and write them to ``path``: merged into the records already
    there (same workload, metric and peer replaced) or, with ``merge=False``, replacing the file."""
    print_table(records, title=title)
    if merge:
        kept = merge_json(records, path)
        print(f"merged {len(records)} records into {path} ({kept} others kept)")
    else:
        write_json(records, path)
        print(f"wrote {path}")


def run_all(out_dir: str | os.PathLike) -> dict[str, list[Record]]:
    """Measure every claim this module regenerates and write ``<out_dir>/<claim>.json`` (several
    minutes); return the records by claim."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    claims = {
        "sweep": run(UNIFORM, progress_desc="uniform") + run(STRUCTURED, progress_desc="structured"),
        "auto-sweep": auto_records(),
        "kernels": kernel_records(),
        "threads": subprocess_records(threads=2),
        "coretype": coretype_records(),
    }
    for claim, records in claims.items():
        publish(records, out / f"{claim}.json", f"maskedmm {claim} ({blas_note()})", merge=claim in SHARED)
    plot([r for records in claims.values() for r in records], out / "sweep.png")
    print(f"wrote {out / 'sweep.png'}")
    return claims
