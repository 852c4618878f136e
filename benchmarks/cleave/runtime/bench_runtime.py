"""cleave runtime targets with real local processes: recovery vs restart-from-checkpoint, bytes per worker.

Run: ``.venv/bin/python benchmarks/cleave/runtime/bench_runtime.py [--rounds 3] [--json PATH]``.
Writes ``benchmarks/results/cleave/runtime.json`` (report.Record list) and ``runtime.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from frugalml.cleave.bench import runtime
from frugalml.common import report

RESULTS = Path(__file__).resolve().parents[2] / "results" / "cleave"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="recovery rounds (ours and classic each)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--json", default=str(RESULTS / "runtime.json"))
    args = parser.parse_args(argv)

    result = runtime.run(rounds=args.rounds, steps=args.steps)
    report.print_table(result.records, title="cleave runtime")
    out = report.write_json(result.records, args.json)
    runtime.plot_traffic(result.traffic, out.with_suffix(".png"))
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
