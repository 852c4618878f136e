"""Cheap proxy settings scored on the 16 CPU fidelity picks (a validation), or on held-out picks.

Evaluates the picks of the CPU fidelity run on a proxy setting, 2 seeds, one at a time and
resumably (the tabular cache, under the key a 125-string table at that setting would use):

    nice -n 10 python benchmarks/composer/proxy_validation.py --run lm-300

then scores every setting the cache holds against the finished LM runs (Spearman rho with a
bootstrap interval, the proxy's seed-to-seed rho on the 16, CPU-s per evaluation):

    python benchmarks/composer/proxy_validation.py --report \
        --settings lm-100,mad4-100,lm-300,lm-600,lm-300-seq128,mad4-300

The held-out test of the chosen setting (lm-300) beside the built-in tables' settings (lm-100 is
ALCSM_3_lm's, mad4-100 ALCSM_3_4tasks's), on the 16 held-out strings whose LMs were trained before
any lm-300 table existed; the LMs' own seed-to-seed rho (the noise ceiling) is recorded beside them:

    python benchmarks/composer/proxy_validation.py --runs fidelity-cpu-heldout-runs.json --report \
        --heldout --settings lm-300,lm-100,mad4-100 --out heldout-test-16
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.common.errors import FrugalError
from frugalml.common.parsing import comma_list
from frugalml.common.report import print_table, write_json
from frugalml.composer.bench.fidelity_table import ceiling_record, read_runs
from frugalml.composer.bench.proxy_validation import (
    HELDOUT_CAVEAT,
    SETTINGS,
    evaluate,
    plot_validation,
    score_setting,
)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="fidelity-cpu-alcsm-3-runs.json", help="Under results/composer.")
    parser.add_argument("--run", default=None, help=f"Evaluate this setting: {', '.join(SETTINGS)}.")
    parser.add_argument("--report", action="store_true", help="Score the settings the cache holds.")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="Settings to report.")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--cache", default=None, help="Result cache (default: the tabular cache).")
    parser.add_argument("--heldout", action="store_true", help="Label the report as the held-out test.")
    parser.add_argument("--out", default="proxy-validation-16", help="Result name (no .json).")
    args = parser.parse_args()
    runs_path = Path(args.runs) if Path(args.runs).is_file() else RESULTS / args.runs
    try:
        runs = read_runs(runs_path)
        seeds = comma_list(args.seeds, int, name="seed")
        if args.run:
            evaluate(args.run, runs.planned, seeds, args.cache)
        if args.report:
            names = comma_list(args.settings, name="setting")
            records = [score_setting(n, runs, seeds, args.cache, args.heldout) for n in names]
            if args.heldout and len(runs.seeds) >= 2:
                records.append(ceiling_record(runs, HELDOUT_CAVEAT + ". "))
    except FrugalError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.report:
        title = (
            f"held-out test on the {len(runs.done)} held-out picks"
            if args.heldout
            else "proxy validation on the fidelity picks (not a held-out test)"
        )
        print_table(records, title=f"composer: {title}")
        write_json(records, RESULTS / f"{args.out}.json")
        plot_validation(records, RESULTS / f"{args.out}.png", title=title)


if __name__ == "__main__":
    main()
