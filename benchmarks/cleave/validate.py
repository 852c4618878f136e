"""The simulator checked against the runtime on emulated edge hosts (results: validate.json).

Writes benchmarks/results/cleave/validate.json.
Run as root: .venv/bin/python benchmarks/cleave/validate.py [--steps 10] [--workers 8,16]
Calibrates the runtime overheads on 4 workers (under 1.5, 0.75 and 0.375 cores, and another draw of
4 workers; recorded in the device catalogue), then predicts and measures step time, per-GEMM times
and bytes per worker on each worker count; 1.5 CPU cores for all workers together (cgroup caps),
links from the default mixed pool shaped by tc. The records carry the load average.
Same as: frugal cleave validate --workers 4 --calibrate; frugal cleave validate --workers 8 --json ...
"""

import argparse
from pathlib import Path

from frugalml.cleave.validate import run_validation
from frugalml.common.parsing import comma_list
from frugalml.common.report import merge_json, print_table

OUT = Path(__file__).resolve().parents[1] / "results" / "cleave" / "validate.json"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", default="8,16", help="worker counts to validate on, e.g. 8,16")
    parser.add_argument("--cpus", type=float, default=1.5)
    args = parser.parse_args()
    records, _, _ = run_validation(4, args.steps, None, args.cpus, True)
    for n in comma_list(args.workers, int):
        more, _, _ = run_validation(n, args.steps, None, args.cpus, False)
        records += more
        merge_json(records, OUT)
        print_table(records, title="cleave: simulator vs runtime (calibrated on 4 workers)")
