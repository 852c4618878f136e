"""What limits a table's top-1 stability, and what more training seeds would give (a projection).

Reads a built multi-seed table's per-seed scores (nothing is trained) and writes
``benchmarks/results/composer/top1-projection-<table>.json`` (records: the projected top-1
stability with k seeds, beside the measured one) and ``top1-projection-<table>-summary.json``
(the contenders of the top-1 within the seeds' noise, every projected figure, and a backtest: the
projection from every 3 seeds of tables with more seeds, beside what all their seeds measure):

    python benchmarks/composer/top1_projection.py --table ALCSM_3_4tasks --seeds 3 4 5 6 8 10 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from frugalml.common.env import machine
from frugalml.common.files import atomic_write
from frugalml.common.report import print_table, write_json
from frugalml.composer.bench.table_agreement import read_table_doc
from frugalml.composer.bench.top1_projection import backtest, projection_records, summarise

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="ALCSM_3_4tasks", help="A built-in table's name or a table file.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5, 6, 8, 10, 20])
    parser.add_argument("--tables", type=int, default=1000, help="Simulated tables per k and variant.")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument(
        "--backtest",
        nargs="*",
        default=["ALCSM_3", "AM_6_5seeds"],
        help="Tables with more seeds on which to check the projection from 3 of their seeds.",
    )
    args = parser.parse_args()
    doc = read_table_doc(args.table)
    summary = summarise(args.table, doc, tuple(args.seeds), args.tables, args.resamples)
    cpu = time.process_time()
    summary["backtest"] = {t: backtest(read_table_doc(t)) for t in args.backtest}
    summary["backtest_cpu_seconds"] = time.process_time() - cpu
    summary["machine"] = machine(load=True)
    print(json.dumps(summary, indent=1))
    records = projection_records(args.table, summary)
    print_table(records, title=f"composer: top-1 stability of {args.table}, projected")
    name = Path(args.table).stem.removeprefix("tabular_").lower().replace("_", "-")
    write_json(records, RESULTS / f"top1-projection-{name}.json")
    with atomic_write(RESULTS / f"top1-projection-{name}-summary.json", "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
