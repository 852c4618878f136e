"""Compute a tabular benchmark: the proxy score of every architecture of a small space.

The proxy is the MAD synthetic tasks (``proxy="mad"``) or the byte-level LM proxy
(``proxy="lm"``: minus the validation loss in nats per byte of a small model trained on the
standard-library corpus, with the ``steps``, ``width``, ``lr``, ``seq_len`` (default 64) and
``batch_size`` of the settings).

Evaluations run one at a time in this process (torch with one thread), seed after seed (every
architecture of seed 0, then of seed 1, ...), and each is stored in the SQLite result cache as it
finishes, so a killed run resumes where it stopped (cached results cost nothing). A CPU time box
stops starting new evaluations once this process has used that much CPU; the table then averages
the seeds completed for all architectures (the JSON records the seeds planned and the seeds used).
With several seeds the JSON also holds every seed's scores and the seed-to-seed rank agreement.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from frugalml.common.data import cache_dir
from frugalml.common.errors import InvalidInputError
from frugalml.common.files import atomic_write
from frugalml.common.parsing import comma_list
from frugalml.composer.cache import ResultCache, config_key
from frugalml.composer.evaluator import Evaluator, InlineExecutor
from frugalml.composer.mad import preset
from frugalml.composer.proxies import LMProxy, MADProxy, ModelShape, TrainConfig

PACKAGE = Path(__file__).resolve().parents[1]  # where the built-in tables live


def top1_stability(table: np.ndarray, resamples: int = 2000, seed: int = 0) -> float:
    """How often the top-1 of the seed mean stays the top-1 when the seeds (rows of ``table``,
    one column per architecture) are resampled with replacement.

    Examples
    --------
    >>> top1_stability(np.array([[0.0, 1.0], [0.1, 0.9]]), resamples=50)
    1.0
    """
    top1 = int(np.argmax(table.mean(0)))
    picks = np.random.default_rng(seed).integers(0, len(table), (resamples, len(table)))
    return float(np.mean(np.argmax(table[picks].mean(1), axis=1) == top1))


def _pairwise(table: np.ndarray) -> list[float]:
    return [float(spearmanr(table[i], table[j])[0]) for i, j in itertools.combinations(range(len(table)), 2)]


def agreement(by_seed: dict[int, dict[str, float]], archs: list[str]) -> dict[str, Any]:
    """Seed-to-seed rank agreement of the scores, and what it predicts for their mean.

    ``pairwise_rho``: mean Spearman rho between two single seeds (the reliability of a one-seed
    table); ``top_half_pairwise_rho``: the same among the better half of the architectures (by the
    seed mean), so that a few architectures that simply fail cannot make a table look reliable;
    ``split_half_rho``: rho between the means of the two halves of the seeds (all balanced
    splits, averaged); ``spearman_brown``: the reliability of the mean of all k seeds predicted
    from the pairwise rho, k r / (1 + (k - 1) r); ``top1_stability``: how often the top-1 stays the
    top-1 when the seeds are resampled with replacement; ``top1_by_seed``: each seed's own top-1.

    Examples
    --------
    >>> by_seed = {0: {"A": 1.0, "M": 0.0, "S": 2.0}, 1: {"A": 1.0, "M": 0.0, "S": 2.0}}
    >>> a = agreement(by_seed, ["A", "M", "S"])
    >>> a["pairwise_rho"], a["top1_by_seed"], a["top1_stability"]
    (1.0, {'0': 'S', '1': 'S'}, 1.0)
    """
    seeds = sorted(by_seed)
    table = np.array([[by_seed[s][a] for a in archs] for s in seeds])
    pairs = _pairwise(table)
    top1 = {str(s): archs[int(np.argmax(table[i]))] for i, s in enumerate(seeds)}
    out: dict[str, Any] = {"seeds": seeds, "top1_by_seed": top1}
    if not pairs:
        return out
    r = float(np.mean(pairs))
    k = len(seeds)
    halves = [
        spearmanr(table[list(h)].mean(0), np.delete(table, list(h), 0).mean(0))[0]
        for h in itertools.combinations(range(k), k // 2)
    ]
    better = np.argsort(-table.mean(0), kind="stable")[: max(3, len(archs) // 2)]
    top_half = _pairwise(table[:, better]) if len(archs) >= 3 else []
    out.update(
        pairwise_rho=r,
        pairwise_rho_min=float(np.min(pairs)),
        pairwise_rho_max=float(np.max(pairs)),
        top_half_pairwise_rho=float(np.mean(top_half)) if top_half else None,
        split_half_rho=float(np.mean(halves)),
        spearman_brown=k * r / (1 + (k - 1) * r),
        top1_stability=top1_stability(table),
    )
    return out


@dataclass
class TableSettings:
    """The space, the proxy (MAD tasks or byte-level LM), the seeds and the CPU time box of one table."""

    primitives: str = "AM"
    layers: int = 6
    tasks: str = "recall,selective_copy"
    steps: int = 100
    width: int = 32
    lr: float = 5e-3
    seq_len: int | None = None  # None keeps each task's CPU-preset length
    vocab: int | None = None  # None keeps each task's CPU-preset vocabulary
    batch_size: int = 64
    seeds: str = "0"
    cpu_minutes: float | None = None
    name: str | None = None
    note: str = ""
    cache: str = field(default_factory=lambda: str(cache_dir() / "composer" / "tabular.sqlite"))
    proxy_kind: str = "mad"  # "mad" (the tasks) or "lm" (byte-level LM; tasks and vocab unused)

    def proxy(self) -> MADProxy | LMProxy:
        if self.proxy_kind == "lm":
            train = TrainConfig(
                steps=self.steps, batch_size=self.batch_size, learning_rates=(self.lr,), threads=1
            )
            return LMProxy(seq_len=self.seq_len or 64, shape=ModelShape(width=self.width), train=train)
        if self.proxy_kind != "mad":
            raise InvalidInputError(f"the table's proxy is 'mad' or 'lm', got {self.proxy_kind!r}")
        tasks = preset("cpu", comma_list(self.tasks, name="task"))
        if self.seq_len is not None:
            tasks = [replace(t, seq_len=int(self.seq_len)) for t in tasks]
        if self.vocab is not None:
            tasks = [replace(t, vocab_size=int(self.vocab)) for t in tasks]
        return MADProxy(
            tasks=tuple(tasks),
            shape=ModelShape(width=self.width),
            train=TrainConfig(
                steps=self.steps, batch_size=self.batch_size, learning_rates=(self.lr,), threads=1
            ),
        )

    def path(self, out: Path = PACKAGE) -> Path:
        return out / f"tabular_{self.name or f'{self.primitives}_{self.layers}'}.json"


@dataclass
class Progress:
    """Scores of the seeds completed so far and why the run stopped."""

    by_seed: dict[int, dict[str, float]] = field(default_factory=dict)
    stopped: str = "complete"
    start: float = field(default_factory=time.perf_counter)
    cpu_start: float = field(default_factory=time.process_time)


def _score_seeds(
    s: TableSettings, proxy: MADProxy | LMProxy, cache: ResultCache, archs: list[str]
) -> Progress:
    """Score every architecture seed after seed until done or the CPU time box is spent."""
    done = Progress()
    budget = None if s.cpu_minutes is None else 60 * s.cpu_minutes
    for seed in comma_list(s.seeds, int, name="seed"):
        evaluator = Evaluator(proxy, cache, InlineExecutor(), [seed])
        scores: dict[str, float] = {}
        for arch in archs:
            fresh = cache.get(arch, proxy.name, evaluator.key, seed) is None
            if fresh and budget is not None and time.process_time() - done.cpu_start > budget:
                done.stopped = f"CPU time box of {s.cpu_minutes:g} min reached during seed {seed}"
                break
            scores.update(evaluator.scores([arch]))
            if evaluator.fresh:
                print(
                    f"seed {seed} {arch}: {scores[arch]:.4f} "
                    f"(cpu {time.process_time() - done.cpu_start:.0f} s)",
                    flush=True,
                )
                evaluator.fresh = 0
        if len(scores) < len(archs):
            break
        done.by_seed[seed] = scores
    return done


SCORES = {
    "mad": "mean over the seeds of the mean over tasks of the best test accuracy",
    "lm": "mean over the seeds of minus the validation loss (nats per byte)",
}


def _per_task(proxy: MADProxy | LMProxy, results: dict, archs: list[str], seeds: list[int]) -> dict:
    """Each architecture's seed mean per MAD task (the LM proxy: its validation loss)."""
    names = [t.name for t in proxy.tasks] if isinstance(proxy, MADProxy) else ["val_loss"]

    def value(a: str, seed: int, name: str) -> float:
        metrics = results[a, seed].metrics
        return float(metrics["per_task"][name] if isinstance(proxy, MADProxy) else metrics[name])

    return {a: {n: float(np.mean([value(a, seed, n) for seed in seeds])) for n in names} for a in archs}


def build_table(s: TableSettings, out: Path = PACKAGE) -> Path:
    """Score the whole space, write ``tabular_<name>.json`` under ``out`` and return its path."""
    proxy = s.proxy()
    archs = ["".join(p) for p in itertools.product(s.primitives, repeat=s.layers)]
    cache = ResultCache(s.cache)
    done = _score_seeds(s, proxy, cache, archs)
    if not done.by_seed:
        raise SystemExit(f"no seed completed: {done.stopped}")
    seeds = sorted(done.by_seed)
    by_seed = done.by_seed
    mean = {a: float(np.mean([by_seed[s][a] for s in seeds])) for a in archs}
    key = config_key(proxy.name, proxy.config())
    results = {(r.arch, r.seed): r for r in cache.all(proxy.name, key) if r.seed in seeds}
    per_task = _per_task(proxy, results, archs, seeds)
    doc = {
        "space": {"primitives": s.primitives, "layers": s.layers},
        "proxy": proxy.name,
        "config": proxy.config(),
        "seeds": seeds,
        "seeds_planned": comma_list(s.seeds, int, name="seed"),
        "stopped": done.stopped,
        "note": s.note,
        "score": SCORES[proxy.name],
        "seconds": time.perf_counter() - done.start,
        "cpu_seconds_this_run": time.process_time() - done.cpu_start,
        "evaluation_seconds_total": float(sum(r.seconds for r in results.values())),
        "evaluation_cpu_seconds_total": float(
            sum(float(r.metrics.get("cpu_seconds", 0.0)) for r in results.values())
        ),
        "cpu_seconds_per_evaluation": float(
            np.mean([float(r.metrics.get("cpu_seconds", 0.0)) for r in results.values()])
        ),
        "agreement": agreement(by_seed, archs),
        "scores": dict(sorted(mean.items(), key=lambda kv: -kv[1])),
        "per_task": per_task,
        "scores_by_seed": {str(seed): by_seed[seed] for seed in seeds},
    }
    path = s.path(out)
    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=1)
    best = max(mean, key=mean.__getitem__)
    print(f"wrote {path} ({len(mean)} architectures, seeds {seeds}, best {best}; {done.stopped})")
    return path
