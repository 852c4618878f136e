"""Proxy fidelity of tables against the LM runs a fidelity run has finished so far ("n of 16").

Reads a fidelity run's ``*-runs.json`` (rewritten after each architecture, so this can run while
the LM runs go on) and reports, for each table, Spearman's rho between its scores and minus the LM
loss with a bootstrap interval, and the LM's own seed-to-seed rho (the noise ceiling):

    python benchmarks/composer/fidelity_table.py --runs fidelity-cpu-alcsm-3-runs.json \
        --tables ALCSM_3_4tasks,ALCSM_3 --out fidelity-cpu-alcsm-3-4tasks

The byte-LM-proxy table, which was built after the MAD tables' fidelity had been seen (so its
figure is not a blind test), and its rank mean with the 4-task table:

    python benchmarks/composer/fidelity_table.py \
        --tables ALCSM_3_lm,ALCSM_3_4tasks,ALCSM_3,ALCSM_3_lm+ALCSM_3_4tasks \
        --out fidelity-cpu-alcsm-3-lm --caveat "ALCSM_3_lm was built AFTER ..."
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.common.errors import FrugalError
from frugalml.common.parsing import comma_list
from frugalml.common.report import print_table, write_json
from frugalml.composer.bench.fidelity_table import table_fidelity

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="fidelity-cpu-alcsm-3-runs.json", help="Under results/composer.")
    parser.add_argument(
        "--tables",
        default="ALCSM_3_4tasks,ALCSM_3",
        help="Built-in names or JSON paths; A+B scores the mean of the tables' ranks.",
    )
    parser.add_argument("--caveat", default="", help="A remark that opens every record's notes.")
    parser.add_argument("--out", default="fidelity-cpu-alcsm-3-4tasks", help="Result name (no .json).")
    args = parser.parse_args()
    runs = Path(args.runs) if Path(args.runs).is_file() else RESULTS / args.runs
    try:
        records = table_fidelity(runs, comma_list(args.tables, name="table"), args.caveat)
    except FrugalError as exc:
        raise SystemExit(f"error: {exc}") from None
    print_table(records, title="composer: proxy fidelity of the tables (finished LM runs)")
    write_json(records, RESULTS / f"{args.out}.json")


if __name__ == "__main__":
    main()
