"""Compute the tabular benchmark: the MAD-proxy score of every architecture of a small space.

Writes ``src/frugalml/composer/tabular_<primitives>_<layers>.json`` with its settings; the
evaluations go through the result cache, so an interrupted run resumes where it stopped.

    python benchmarks/composer/make_tabular.py --primitives AM --layers 6 --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from frugalml.common.data import cache_dir
from frugalml.common.files import atomic_write
from frugalml.composer.cache import ResultCache
from frugalml.composer.evaluator import Evaluator, make_executor
from frugalml.composer.mad import preset
from frugalml.composer.proxies import MADProxy, ModelShape, TrainConfig

OUT = Path(__file__).resolve().parents[2] / "src" / "frugalml" / "composer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primitives", default="AM")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--tasks", default="recall,selective_copy,memorization")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", default=str(cache_dir() / "composer" / "tabular.sqlite"))
    args = parser.parse_args()

    proxy = MADProxy(tasks=tuple(preset("cpu", args.tasks.split(","))), shape=ModelShape(),
                     train=TrainConfig(steps=args.steps, batch_size=64, learning_rates=(args.lr,)))
    seeds = [int(s) for s in args.seeds.split(",")]
    archs = ["".join(p) for p in itertools.product(args.primitives, repeat=args.layers)]
    evaluator = Evaluator(proxy, ResultCache(args.cache), make_executor("local", workers=args.workers), seeds)
    start = time.perf_counter()
    done = []

    def report(result: dict) -> None:
        done.append(result)
        print(f"[{len(done)}] {result['arch']} seed {result['seed']}: {result['score']:.4f} "
              f"({result['seconds']:.1f} s)", flush=True)

    scores = evaluator.scores(archs, on_result=report)
    evaluator.executor.close()
    per_task = {r.arch: r.metrics["per_task"] for r in evaluator.cache.all(proxy.name, evaluator.key)}
    doc = {
        "space": {"primitives": args.primitives, "layers": args.layers},
        "proxy": proxy.name,
        "config": proxy.config(),
        "seeds": seeds,
        "seconds": time.perf_counter() - start,
        "scores": dict(sorted(scores.items(), key=lambda kv: -kv[1])),
        "per_task": per_task,
    }
    path = OUT / f"tabular_{args.primitives}_{args.layers}.json"
    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {path} ({len(scores)} architectures, best {max(scores, key=scores.get)})")


if __name__ == "__main__":
    main()
