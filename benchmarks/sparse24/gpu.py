"""Every sparse24 GPU check in one run: cusparselt-vs-dense numerics, the mask-independent packing rule
vs _cslt_compress (bit equality, timings), the Triton V:N:M kernel vs the gather and mask paths, the
train CLI on cuda with --backend cusparselt --dtype bfloat16, a per-GEMM time breakdown of a 2:4
Linear, FFN fwd+bwd at Llama-1B/7B shapes vs dense bf16 and torch's tile-kernel recipe, the V:N:M
kernels' speed and a Llama-1B-shaped training step. Writes the JSON after every part (a timeout keeps
what finished; the quick checks run first). Without a CUDA GPU it writes one 'skipped' record, exits 0.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from frugalml.common.report import Record, print_table, write_json
from frugalml.sparse24.backends import cusparselt_status
from frugalml.sparse24.bench import SYSTEM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True, help="Output JSON path.")
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--layers-1b", type=int, default=4)
    args = parser.parse_args()
    ok, reason = cusparselt_status()
    if not ok:
        records = [Record(SYSTEM, "GPU benchmarks", "skipped", "", 0.0, notes=f"not run: {reason}")]
        print_table(records, title="sparse24 GPU")
        write_json(records, Path(args.json))
        return
    from frugalml.sparse24.gpubench import (
        gpu_breakdown,
        gpu_numerics,
        gpu_packing_rule,
        gpu_speed,
        gpu_train_cli,
        gpu_vnm_paths,
        guarded,
    )

    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    records: list[Record] = []
    start = time.perf_counter()
    parts = (
        ("numerics", gpu_numerics),
        ("packing rule", gpu_packing_rule),
        ("Triton V:N:M", gpu_vnm_paths),
        ("train CLI", gpu_train_cli),
        ("breakdown", lambda: gpu_breakdown(args.tokens)),
        ("speed", lambda: gpu_speed(args.tokens, args.rounds, args.layers_1b)),
    )
    for part, run in parts:
        records += guarded(part, run)
        write_json(records, Path(args.json))
        print(f"[{time.perf_counter() - start:6.1f} s] {part} done", flush=True)
    print_table(records, title="sparse24 GPU")


if __name__ == "__main__":
    main()
