"""Reproduce sparse24's result files: every GPU check in one run, and the merged summary of all parts.

The files live under ``benchmarks/results/sparse24/`` (indexed in ``benchmarks/results/README.md``);
the runnable entry points are the scripts in ``benchmarks/sparse24/``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch

from frugalml.common.report import Record, print_table, read_records, write_json
from frugalml.sparse24.bench.gpu_breakdown import gpu_breakdown
from frugalml.sparse24.bench.gpu_checks import gpu_numerics, gpu_packing_rule, gpu_vnm_paths
from frugalml.sparse24.bench.gpu_speed import gpu_speed
from frugalml.sparse24.bench.gpu_train_cli import gpu_train_cli
from frugalml.sparse24.bench.shared import SYSTEM, gpu_skip, guarded

SUMMARY_PARTS = (
    "speed-cpu.json",
    "quality.json",
    "quality-3m-seeds.json",
    "quality-3m-seeds-single.json",
    "quality-tricks.json",
    "quality-tricks-seed1.json",
    "quality-3m-tricks.json",
    "gpu.json",
)


def gpu_suite(
    json_path: str | Path, tokens: int = 8192, rounds: int = 10, layers_1b: int = 4
) -> list[Record]:
    """Every GPU check and benchmark, the quick ones first, writing ``json_path`` after each part (a
    timeout keeps what finished). Without cuSPARSELt it writes one 'skipped' record."""
    skipped = gpu_skip()
    if skipped:
        print_table(skipped, title="sparse24 GPU")
        write_json(skipped, Path(json_path))
        return skipped
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    parts: tuple[tuple[str, Callable[[], list[Record]]], ...] = (
        ("numerics", gpu_numerics),
        ("packing rule", gpu_packing_rule),
        ("Triton V:N:M", gpu_vnm_paths),
        ("train CLI", gpu_train_cli),
        ("breakdown", lambda: gpu_breakdown(tokens)),
        ("speed", lambda: gpu_speed(tokens, rounds, layers_1b)),
    )
    records: list[Record] = []
    start = time.perf_counter()
    for part, run in parts:
        records += guarded(part, run)
        write_json(records, Path(json_path))
        print(f"[{time.perf_counter() - start:6.1f} s] {part} done", flush=True)
    print_table(records, title="sparse24 GPU")
    return records


def summary(results: str | Path, out: str | Path) -> list[Record]:
    """Merge the result files of ``SUMMARY_PARTS`` found in ``results`` into ``out``; each record's
    notes name its file. Without a GPU file it adds a 'not measured' record."""
    results = Path(results)
    records = []
    for name in SUMMARY_PARTS:
        if (results / name).exists():
            for record in read_records(results / name):
                records.append(dataclasses.replace(record, notes=f"{record.notes} [from {name}]".strip()))
    if not (results / "gpu.json").exists():
        records.append(
            Record(
                SYSTEM,
                "GPU speed (FFN fwd+bwd 1B/7B, Llama-1B step)",
                "not measured",
                "",
                0.0,
                notes="no GPU was available; run benchmarks/sparse24/gpu.sh on one",
            )
        )
    write_json(records, Path(out))
    return records
