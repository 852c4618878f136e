"""Re-measure the issue's goal table and merge it into benchmarks/results/maskedmm.json (records
with the same workload, metric and peer are replaced; all others kept): interleaved rounds on
one thread by thread time (or on ``--threads N`` by wall clock: thread time would miss the other
threads' work and process time would add it up instead of measuring the wait), at
75/80/90/95/99% uniform zeros every method of ours with B prepared and per call vs numpy/OpenBLAS,
auto vs numpy from 0 to 99%, auto vs the CSR peers (scipy, torch, MKL, conversion included) at
80/90%, stats()' FMA reduction at 90%. Calibrates first unless --no-calibrate.

Run on a quiet machine: ``.venv/bin/python benchmarks/maskedmm/goal_table.py [--threads 2]`` (about
1.5-3 minutes with the default 21 rounds; ``--rounds N`` to change).
"""

import argparse
import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results" / "maskedmm.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1, help="BLAS and OpenMP threads (1: thread time)")
    parser.add_argument("--no-calibrate", action="store_true")
    args = parser.parse_args()
    if args.threads > 1:  # bench.SPIN_SETTINGS, set before numpy and OpenMP start (importing bench
        # would start numpy): idle workers of either sleep instead of spinning on the other's cores
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    from frugalml.common.report import merge_json, print_table
    from frugalml.maskedmm import bench, planner

    if not args.no_calibrate:
        planner.calibrate(quiet=False)
    records = bench.goal_records(rounds=args.rounds, quiet=False, threads=args.threads)
    print_table(
        records,
        title=f"maskedmm goal table, {args.threads} thread(s) ({bench.blas_note()}; {bench.machine_load()})",
    )
    kept = merge_json(records, RESULTS)
    print(f"merged {len(records)} records into {RESULTS} ({kept} others kept)")


if __name__ == "__main__":
    main()
