"""Search efficiency on the tabular benchmark: our GP-BO vs Optuna TPE, random and evolution.

Same table, same budget (until the top-1 is found), 20 seeds each; writes report records to
``benchmarks/results/composer.json`` and the regret curves to ``benchmarks/results/composer.png``.

    python benchmarks/composer/bench.py [--seeds 20] [--engines bo,bo-string,tpe,random,evolution]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.composer.cli import _compare

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--engines", default="bo,bo-string,tpe,random,evolution")
    parser.add_argument("--table", type=Path, default=None)
    args = parser.parse_args()
    _compare(args.engines, args.seeds, args.table, RESULTS / "composer.json", RESULTS / "composer.png",
             quiet=False)


if __name__ == "__main__":
    main()
