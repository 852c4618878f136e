"""How noisy is a tabular benchmark? Seed-to-seed rank agreement of a multi-seed table.

Reads a table written by ``make_tabular.py`` with several seeds (``scores_by_seed``) and reports:
the mean Spearman rho between two single seeds (the reliability of a one-seed table such as
``AM_6``), the split-half rho and the Spearman-Brown reliability of the mean of all seeds; the rho
between seed 0 alone and the mean of the other seeds (seed 0 is the one-seed table when the
settings match); how often the top-1 stays the top-1 when the seeds are resampled (bootstrap);
and where the one-seed table's top-1 ranks. Writes report records to
``benchmarks/results/composer/table-agreement.json`` and the summary to
``table-agreement-summary.json`` beside it.

    python benchmarks/composer/table_agreement.py [--table AM_6_5seeds] [--single AM_6]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from frugalml.common.files import atomic_write
from frugalml.common.report import print_table, write_json
from frugalml.composer.bench.table_agreement import agreement_records, agreement_summary, read_table_doc

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="AM_6_5seeds")
    parser.add_argument("--single", default="AM_6", help="The one-seed table to check against.")
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    summary = agreement_summary(args.table, args.single, args.resamples)
    print(json.dumps(summary, indent=1))
    archs = len(read_table_doc(args.table)["scores"])
    records = agreement_records(summary, archs, args.resamples)
    print_table(records, title="composer: how noisy are the tabular benchmarks")
    write_json(records, RESULTS / "table-agreement.json")
    with atomic_write(RESULTS / "table-agreement-summary.json", "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
