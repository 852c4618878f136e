"""Compute a tabular benchmark: the MAD-proxy score of every architecture of a small space.

Writes ``src/frugalml/composer/tabular_<name>.json`` with its settings. Evaluations run one at a
time in this process (torch with one thread), seed after seed (every architecture of seed 0, then
of seed 1, ...), and each is stored in the SQLite result cache as it finishes, so a killed run
resumes where it stopped (cached results cost nothing). ``--cpu-minutes`` time-boxes the run:
when this process has used that much CPU it starts no new evaluation, and the table averages the
seeds completed for all architectures (the JSON records the seeds planned and the seeds used).
With several seeds the JSON also holds every seed's scores and the seed-to-seed rank agreement.

    python benchmarks/composer/make_tabular.py --seeds 0,1,2,3,4 --cpu-minutes 40 --name AM_6_5seeds
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from frugalml.common.data import cache_dir
from frugalml.common.files import atomic_write
from frugalml.composer.cache import ResultCache
from frugalml.composer.evaluator import Evaluator, InlineExecutor
from frugalml.composer.mad import preset
from frugalml.composer.proxies import MADProxy, ModelShape, TrainConfig

OUT = Path(__file__).resolve().parents[2] / "src" / "frugalml" / "composer"


def agreement(by_seed: dict[int, dict[str, float]], archs: list[str]) -> dict:
    """Seed-to-seed rank agreement of the scores, and what it predicts for their mean.

    ``pairwise_rho``: mean Spearman rho between two single seeds (the reliability of a one-seed
    table); ``split_half_rho``: rho between the means of the two halves of the seeds (all balanced
    splits, averaged); ``spearman_brown``: the reliability of the mean of all k seeds predicted from
    the pairwise rho, k r / (1 + (k - 1) r); ``top1_by_seed``: each seed's own top-1.
    """
    seeds = sorted(by_seed)
    table = np.array([[by_seed[s][a] for a in archs] for s in seeds])
    pairs = [spearmanr(table[i], table[j])[0] for i, j in itertools.combinations(range(len(seeds)), 2)]
    top1 = {str(s): archs[int(np.argmax(table[i]))] for i, s in enumerate(seeds)}
    out = {"seeds": seeds, "top1_by_seed": top1}
    if not pairs:
        return out
    r = float(np.mean(pairs))
    k = len(seeds)
    halves = [
        spearmanr(table[list(h)].mean(0), np.delete(table, list(h), 0).mean(0))[0]
        for h in itertools.combinations(range(k), k // 2)
    ]
    out.update(
        pairwise_rho=r,
        pairwise_rho_min=float(np.min(pairs)),
        pairwise_rho_max=float(np.max(pairs)),
        split_half_rho=float(np.mean(halves)),
        spearman_brown=k * r / (1 + (k - 1) * r),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primitives", default="AM")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--tasks", default="recall,selective_copy")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--cpu-minutes", type=float, default=None, help="Stop after this much CPU time.")
    parser.add_argument("--name", default=None, help="Table name (default <primitives>_<layers>).")
    parser.add_argument("--note", default="", help="A remark stored in the JSON (e.g. why a run stopped).")
    parser.add_argument("--cache", default=str(cache_dir() / "composer" / "tabular.sqlite"))
    args = parser.parse_args()

    proxy = MADProxy(
        tasks=tuple(preset("cpu", args.tasks.split(","))),
        shape=ModelShape(width=args.width),
        train=TrainConfig(steps=args.steps, batch_size=64, learning_rates=(args.lr,), threads=1),
    )
    planned = [int(s) for s in args.seeds.split(",")]
    archs = ["".join(p) for p in itertools.product(args.primitives, repeat=args.layers)]
    cache = ResultCache(args.cache)
    start, cpu_start = time.perf_counter(), time.process_time()
    budget = None if args.cpu_minutes is None else 60 * args.cpu_minutes
    by_seed: dict[int, dict[str, float]] = {}
    stopped = "complete"
    for seed in planned:
        evaluator = Evaluator(proxy, cache, InlineExecutor(), [seed])
        scores: dict[str, float] = {}
        for arch in archs:
            fresh = cache.get(arch, proxy.name, evaluator.key, seed) is None
            if fresh and budget is not None and time.process_time() - cpu_start > budget:
                stopped = f"CPU time box of {args.cpu_minutes:g} min reached during seed {seed}"
                break
            scores.update(evaluator.scores([arch]))
            if evaluator.fresh:
                print(
                    f"seed {seed} {arch}: {scores[arch]:.4f} (cpu {time.process_time() - cpu_start:.0f} s)",
                    flush=True,
                )
                evaluator.fresh = 0
        if len(scores) < len(archs):
            break
        by_seed[seed] = scores
    if not by_seed:
        raise SystemExit(f"no seed completed: {stopped}")
    seeds = sorted(by_seed)
    mean = {a: float(np.mean([by_seed[s][a] for s in seeds])) for a in archs}
    results = {(r.arch, r.seed): r for r in cache.all(proxy.name, evaluator.key) if r.seed in seeds}
    per_task = {
        a: {
            t.name: float(np.mean([results[a, s].metrics["per_task"][t.name] for s in seeds]))
            for t in proxy.tasks
        }
        for a in archs
    }
    doc = {
        "space": {"primitives": args.primitives, "layers": args.layers},
        "proxy": proxy.name,
        "config": proxy.config(),
        "seeds": seeds,
        "seeds_planned": planned,
        "stopped": stopped,
        "note": args.note,
        "score": "mean over the seeds of the mean over tasks of the best test accuracy",
        "seconds": time.perf_counter() - start,
        "cpu_seconds_this_run": time.process_time() - cpu_start,
        "evaluation_seconds_total": float(sum(r.seconds for r in results.values())),
        "agreement": agreement(by_seed, archs),
        "scores": dict(sorted(mean.items(), key=lambda kv: -kv[1])),
        "per_task": per_task,
        "scores_by_seed": {str(s): by_seed[s] for s in seeds},
    }
    path = OUT / f"tabular_{args.name or f'{args.primitives}_{args.layers}'}.json"
    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(
        f"wrote {path} ({len(mean)} architectures, seeds {seeds}, best {max(mean, key=mean.get)}; {stopped})"
    )


if __name__ == "__main__":
    main()
