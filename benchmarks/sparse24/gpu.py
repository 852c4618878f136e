"""Every sparse24 GPU check in one run (FFN fwd+bwd at Llama-1B/7B shapes vs dense bf16 and torch's
cuSPARSELt path, V:N:M gather matmul, a Llama-1B-shaped training step, emulate-vs-cusparselt numerics);
writes JSON records. Without a CUDA GPU it writes one 'skipped' record and exits 0.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from frugalml.common.report import Record, print_table, write_json
from frugalml.sparse24.backends import cusparselt_status
from frugalml.sparse24.bench import SYSTEM, gpu_speed


def numerics() -> list[Record]:
    """Largest difference between the emulated and the cuSPARSELt SparseLinear outputs (bf16)."""
    from frugalml.sparse24.layers import SquaredReLUFFN
    from frugalml.sparse24.swap import sparsify_ffn

    torch.manual_seed(0)
    x = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
    base = SquaredReLUFFN(1024, 4096).to("cuda", torch.bfloat16)
    emulated = sparsify_ffn(SquaredReLUFFN(1024, 4096).to("cuda", torch.bfloat16), activations=None,
                            method="ste", transposable=True)
    emulated.load_state_dict(base.state_dict())
    fast = sparsify_ffn(base, activations=None, method="ste", transposable=True, backend="cusparselt")
    error = float((emulated(x).float() - fast(x).float()).abs().max())
    scale = float(emulated(x).float().abs().max())
    return [Record(SYSTEM, "cusparselt vs emulate FFN output (1024 tokens, 1024->4096, bf16)",
                   "max abs difference / max abs output", "fraction", error / max(scale, math.ulp(1.0)),
                   notes="should be bf16 rounding only (< ~1e-2)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True, help="Output JSON path.")
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--layers-1b", type=int, default=4)
    args = parser.parse_args()
    records = gpu_speed(args.tokens, args.rounds, args.layers_1b)
    if cusparselt_status()[0]:
        try:
            records = numerics() + records
        except Exception as exc:  # keep the speed numbers even if this check fails
            records.append(Record(SYSTEM, "cusparselt numerics", "failed", "", 0.0,
                                  notes=f"{type(exc).__name__}: {exc}"))
    print_table(records, title="sparse24 GPU")
    write_json(records, Path(args.json))


if __name__ == "__main__":
    main()
