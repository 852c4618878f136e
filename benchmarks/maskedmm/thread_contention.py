"""Two thread pools in one process: our OpenMP kernel and numpy's OpenBLAS, called alternately on
2 threads, with and without ``SPIN_SETTINGS`` (each setting in its own child process, since both
libraries read them at start-up). Merges the records into
benchmarks/results/maskedmm/thread-contention.json.

``.venv/bin/python benchmarks/maskedmm/thread_contention.py [--rounds 15] [--sparsity 0.75]``
"""

import argparse
from pathlib import Path

from frugalml.maskedmm.bench.processes import contention_records
from frugalml.maskedmm.bench.reproduce import publish

RESULTS = Path(__file__).resolve().parents[1] / "results" / "maskedmm" / "thread-contention.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sparsity", type=float, default=0.75)
    args = parser.parse_args()
    records = contention_records(args.rounds, args.sparsity)
    publish(records, RESULTS, "maskedmm: OpenMP and OpenBLAS thread pools in one process")


if __name__ == "__main__":
    main()
