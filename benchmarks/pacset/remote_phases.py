"""Where a fresh-process cold query from HTTP spends its time, phase by phase (interpreter, numpy,
pacset's imports, the open, the walk rounds), for the 150k-row RF packed with --target remote.

    python benchmarks/pacset/remote_phases.py benchmarks/results/pacset/remote-phases.json [--queries 9]
"""

import argparse

from frugalml.pacset.bench.remote import run_phases

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="results file (records are merged into it)")
    parser.add_argument("--queries", type=int, default=9, help="fresh processes per round trip")
    parser.add_argument("--rows", type=int, default=150_000, help="training rows of the forest")
    args = parser.parse_args()
    run_phases(args.json, rows=args.rows, n_queries=args.queries)
