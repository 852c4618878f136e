"""What the structural checks of a saved forest cost, measured against the same cold query without them.

Usage: python benchmarks/urerf/load_checks.py [--n 20000] [--trees 300] [OUT.json]. Fits a forest
(about 100 MB saved at the defaults), then times load + one new point's top-50 neighbours with the
checks and without them, interleaved, the file evicted from the page cache before each load.
"""

from __future__ import annotations

import argparse

from frugalml.common.report import print_table, write_json
from frugalml.urerf.bench.load_checks import load_check_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", nargs="?", help="Write the records here (JSON).")
    parser.add_argument("--n", type=int, default=20_000, help="Training points (helix + noise).")
    parser.add_argument("--p", type=int, default=13, help="Features.")
    parser.add_argument("--trees", type=int, default=300, help="Trees.")
    parser.add_argument("--rounds", type=int, default=7, help="Interleaved rounds.")
    args = parser.parse_args()
    records = load_check_records(args.n, args.p, args.trees, rounds=args.rounds)
    print_table(records, title="urerf: cost of the structural checks at load")
    if args.out:
        write_json(records, args.out)


if __name__ == "__main__":
    main()
