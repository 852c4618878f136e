"""Two thread pools in one process: our OpenMP kernel and numpy's OpenBLAS, called alternately on
2 threads, with and without ``bench.SPIN_SETTINGS`` (each setting in its own child process, since
both libraries read them at start-up). Merges the records into benchmarks/results/maskedmm.json.

``.venv/bin/python benchmarks/maskedmm/thread_contention.py [--rounds 15] [--sparsity 0.75]``
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results" / "maskedmm.json"
N, THREADS = 1024, 2


def child(rounds: int, sparsity: float) -> None:
    """Alternate numpy and our masked kernel (B prepared) on THREADS threads; print wall times."""
    import time

    from threadpoolctl import threadpool_limits

    from frugalml.maskedmm import matmul, prepare_b
    from frugalml.maskedmm.patterns import operands

    A, B = operands("random", N, sparsity)
    prepared = prepare_b(B)
    times = {"numpy": [], "ours": []}
    with threadpool_limits(THREADS):
        calls = {
            "numpy": lambda: A @ B,
            "ours": lambda: matmul(A, prepared, method="masked", threads=THREADS),
        }
        for fn in calls.values():
            fn()
        for _ in range(rounds):
            for name, fn in calls.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    print(json.dumps(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sparsity", type=float, default=0.75)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.rounds, args.sparsity)
        return
    import statistics

    from frugalml.common.report import Record, merge_json, print_table
    from frugalml.maskedmm.bench import SPIN_SETTINGS, blas_note, machine_load

    records = []
    for label, extra in (("library defaults", {}), ("SPIN_SETTINGS", SPIN_SETTINGS)):
        env = {k: v for k, v in os.environ.items() if k not in SPIN_SETTINGS} | extra
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--rounds",
                str(args.rounds),
                "--sparsity",
                str(args.sparsity),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        times = json.loads(out.strip().splitlines()[-1])
        settings = " ".join(f"{k}={env.get(k, 'unset')}" for k in SPIN_SETTINGS)
        records.append(
            Record(
                "maskedmm",
                f"{N}^3 fp32 random {args.sparsity:.0%} zeros, {THREADS} threads, numpy and ours "
                f"alternating in one process, {label}",
                f"time (masked, B prepared, {args.rounds} rounds)",
                "s",
                statistics.median(times["ours"]),
                "numpy dense (BLAS)",
                statistics.median(times["numpy"]),
                spread={
                    "ours": [min(times["ours"]), max(times["ours"])],
                    "peer": [min(times["numpy"]), max(times["numpy"])],
                    "rounds": args.rounds,
                },
                notes=f"{settings}; wall clock, medians; one child process per setting; {blas_note()}; "
                f"{machine_load()}",
            )
        )
    print_table(records, title="maskedmm: OpenMP and OpenBLAS thread pools in one process")
    kept = merge_json(records, RESULTS)
    print(f"merged {len(records)} records into {RESULTS} ({kept} others kept)")


if __name__ == "__main__":
    main()
