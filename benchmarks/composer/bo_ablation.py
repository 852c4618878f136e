"""Ablation of our GP-BO on the tabular benchmark: kernel x acquisition x initial design, many seeds.

Each variant ``KERNEL:ACQUISITION:INITIAL`` (or ``random``) searches the table until it evaluates
the top-1 architecture; jobs run in a process pool. Writes the evaluations-to-top-1 of every seed
to ``benchmarks/results/<out>.json`` and prints medians (seeds split into two halves, so a choice
made on one half can be checked on the other).

    python benchmarks/composer/bo_ablation.py --seeds 0 40 --workers 12 [--table AM_6_5seeds] \
        --variants random hamming:log-ei:4 mixed:thompson:2 ...
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from frugalml.common.files import atomic_write
from frugalml.composer.engines import ACQUISITIONS, GPBayesOpt, RandomSearch
from frugalml.composer.gp import KERNELS
from frugalml.composer.tabular import load_table

RESULTS = Path(__file__).resolve().parents[1] / "results"


def make(variant: str, space, seed: int):
    """An engine from a variant name."""
    if variant == "random":
        return RandomSearch(space, seed)
    kernel, acquisition, initial = variant.split(":")
    return GPBayesOpt(space, seed, kernel=kernel, acquisition=acquisition, initial=int(initial))


def evals_to_top1(job: tuple[str, int, str]) -> tuple[str, int, int, float]:
    """Ask/tell until the table's top-1 is evaluated; the number of distinct evaluations."""
    variant, seed, table_name = job
    table = load_table(table_name)
    engine, start = make(variant, table.space, seed), time.perf_counter()
    for n in range(1, table.space.size + 1):
        arch = engine.ask()
        engine.tell(arch, table.scores[arch])
        if arch == table.top1:
            return variant, seed, n, time.perf_counter() - start
    raise RuntimeError(f"{variant} never evaluated the top-1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 40], metavar=("FIRST", "END"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["random"]
        + [f"{k}:{a}:{i}" for k, a, i in itertools.product(KERNELS, ACQUISITIONS, (2, 4, 8))],
    )
    parser.add_argument("--table", default="AM_6", help="A built-in table name or a table JSON.")
    parser.add_argument("--out", default="composer_bo_ablation")
    args = parser.parse_args()
    seeds = list(range(*args.seeds))
    jobs = [(v, s, args.table) for v in args.variants for s in seeds]
    found: dict[str, dict[int, int]] = {v: {} for v in args.variants}
    with ProcessPoolExecutor(args.workers) as pool:
        for variant, seed, n, seconds in pool.map(evals_to_top1, jobs, chunksize=1):
            found[variant][seed] = n
            print(f"{variant} seed {seed}: top-1 after {n} evaluations ({seconds:.1f} s)", flush=True)
    half = len(seeds) // 2
    summary = {}
    for v, by_seed in found.items():
        evals = [by_seed[s] for s in seeds]
        summary[v] = {
            "median": float(np.median(evals)),
            "median_first_half": float(np.median(evals[:half])),
            "median_second_half": float(np.median(evals[half:])),
            "mean": float(np.mean(evals)),
            "evals": evals,
        }
        print(
            f"{v:>24}: median {summary[v]['median']:5.1f} (halves {summary[v]['median_first_half']:5.1f} / "
            f"{summary[v]['median_second_half']:5.1f}), mean {summary[v]['mean']:5.1f}",
            flush=True,
        )
    with atomic_write(RESULTS / f"{args.out}.json", "w") as f:
        json.dump({"seeds": seeds, "table": args.table, "variants": summary}, f, indent=1)


if __name__ == "__main__":
    main()
