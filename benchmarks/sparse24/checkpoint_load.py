"""What checking a checkpoint at load costs (checked vs unchecked reading) and how the checked reader
compares with torch.load(weights_only=True) on the same weights; writes
benchmarks/results/sparse24/checkpoint-load.json. One torch thread (steadier on a shared machine).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.common.report import print_table, write_json
from frugalml.common.threads import torch_threads
from frugalml.sparse24.bench.checkpoint_load import checkpoint_load

RESULTS = Path(__file__).resolve().parents[1] / "results" / "sparse24"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS / "checkpoint-load.json"))
    args = parser.parse_args()
    with torch_threads(1):
        records = checkpoint_load(args.dim, args.hidden, args.layers, args.rounds)
    print_table(records, title="sparse24 checkpoint load")
    write_json(records, args.out)
