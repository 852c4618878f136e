"""Re-measure the target table and merge it into benchmarks/results/maskedmm/target-table.json (records
with the same workload, metric and peer are replaced; all others kept): interleaved rounds on
one thread by thread time (or on ``--threads N`` by wall clock: thread time would miss the other
threads' work and process time would add it up instead of measuring the wait), at
75/80/90/95/99% uniform zeros every method of ours with B prepared and per call vs numpy/OpenBLAS,
auto vs numpy from 0 to 99%, auto vs the CSR peers (scipy, torch, MKL, conversion included) at
80/90%, stats()' FMA reduction at 90%. Calibrates first unless --no-calibrate.

Run on a quiet machine: ``.venv/bin/python benchmarks/maskedmm/target_table.py [--threads 2]`` (about
1.5-3 minutes with the default 21 rounds; ``--rounds N`` to change).
"""

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results" / "maskedmm" / "target-table.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1, help="BLAS and OpenMP threads (1: thread time)")
    parser.add_argument("--no-calibrate", action="store_true")
    args = parser.parse_args()
    if args.threads > 1:  # before numpy and OpenMP start: idle workers of either then sleep
        from frugalml.maskedmm.bench.spin import apply_spin_settings  # imports nothing heavy

        apply_spin_settings()
    from frugalml.common.env import machine
    from frugalml.maskedmm.bench.contenders import blas_note
    from frugalml.maskedmm.bench.reproduce import publish
    from frugalml.maskedmm.bench.target_table import target_records
    from frugalml.maskedmm.calibration import calibrate

    if not args.no_calibrate:
        calibrate(quiet=False)
    records = target_records(rounds=args.rounds, quiet=False, threads=args.threads)
    title = f"maskedmm target table, {args.threads} thread(s) ({blas_note()}; {machine(load=True)})"
    publish(records, RESULTS, title)


if __name__ == "__main__":
    main()
