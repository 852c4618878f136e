"""Every sparse24 GPU check in one run: cusparselt-vs-dense numerics, the mask-independent packing rule
vs _cslt_compress (bit equality, timings), the Triton V:N:M kernel vs the gather and mask paths, the
train CLI on cuda with --backend cusparselt --dtype bfloat16, a per-GEMM time breakdown of a 2:4
Linear, FFN fwd+bwd at Llama-1B/7B shapes vs dense bf16 and torch's tile-kernel recipe, the V:N:M
kernels' speed and a Llama-1B-shaped training step. Writes the JSON after every part (a timeout keeps
what finished; the quick checks run first). Without a CUDA GPU it writes one 'skipped' record, exits 0.
"""

from __future__ import annotations

import argparse

from frugalml.sparse24.bench.reproduce import gpu_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True, help="Output JSON path.")
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--layers-1b", type=int, default=4)
    args = parser.parse_args()
    gpu_suite(args.json, args.tokens, args.rounds, args.layers_1b)


if __name__ == "__main__":
    main()
