"""Tree growth of this engine against an earlier commit's, in one process: CPU and wall time, same trees.

Usage: python benchmarks/urerf/engine.py REV [OUT.json]. The earlier ``_trees.py`` is loaded from git
as a separate module; both grow the same seeds, and the records say whether the forests are identical.
"""

from __future__ import annotations

import argparse

from frugalml.common.report import print_table, write_json
from frugalml.urerf.bench.engine import engine_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="The git revision whose engine to compare against.")
    parser.add_argument("out", nargs="?", help="Write the records here (JSON).")
    args = parser.parse_args()
    records = engine_records(args.rev)
    print_table(records, title="urerf engine vs previous")
    if args.out:
        write_json(records, args.out)


if __name__ == "__main__":
    main()
