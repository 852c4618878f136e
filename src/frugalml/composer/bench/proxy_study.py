"""How reliable is a proxy, and what does reliability cost? A study of the proxy's settings.

For a fixed sample of architectures of a search space, each study point (one proxy setting) is
evaluated with several training seeds; its reliability is the mean Spearman rho between the
rankings of two single seeds (``pairwise_rho``), reported beside the same rho among the better half
of the sample (a space where some architectures simply fail can look reliable by those alone) and
the CPU-seconds one architecture costs. The points vary one factor at a time from a base setting:
training steps, width, sequence length, task difficulty (vocabulary size), the number of MAD tasks,
and the byte-level LM proxy's steps. Every evaluation goes through the SQLite result cache, so a
killed study resumes where it stopped; a CPU budget stops it between batches.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.common.env import machine
from frugalml.common.errors import InvalidInputError
from frugalml.common.parsing import comma_list
from frugalml.common.report import Record
from frugalml.common.seeding import rng
from frugalml.composer.bench.build_table import TableSettings, agreement
from frugalml.composer.cache import ResultCache, config_key
from frugalml.composer.evaluator import Evaluator, Executor, InlineExecutor
from frugalml.composer.model import check_arch
from frugalml.composer.proxies import LMProxy, MADProxy, ModelShape, TrainConfig

FACTORS: dict[str, tuple[Any, ...]] = {
    "steps": (100, 300, 1000),
    "width": (32, 64),
    "seq_len": (32, 64),
    "vocab": (8, 16, 32),
    "tasks": ("recall", "recall,selective_copy", "recall,selective_copy,fuzzy_recall,memorization"),
    "lm_steps": (100, 300, 1000),
}
"""The factors a study varies (one at a time from the base) and their default levels."""


@dataclass(frozen=True)
class StudyBase:
    """The setting every study point starts from (the MAD proxy of the built-in A/M tables)."""

    tasks: str = "recall,selective_copy"
    steps: int = 100
    width: int = 32
    seq_len: int | None = None  # None keeps each task's CPU-preset length
    vocab: int | None = None  # None keeps each task's CPU-preset vocabulary
    lr: float = 5e-3
    lm_lr: float = 3e-3
    batch_size: int = 64


@dataclass(frozen=True)
class StudyPoint:
    """One proxy setting of the study: which factor it varies, to what level, and the proxy."""

    factor: str
    level: str
    proxy: MADProxy | LMProxy

    @property
    def label(self) -> str:
        return f"{self.factor}={self.level}"


def make_proxy(base: StudyBase, factor: str, level: Any) -> MADProxy | LMProxy:
    """The proxy of ``base`` with ``factor`` set to ``level`` (``"base"`` changes nothing)."""
    b = replace(base, **{factor: level}) if factor in ("steps", "width", "seq_len", "vocab") else base
    b = replace(b, tasks=str(level)) if factor == "tasks" else b
    shape = ModelShape(width=b.width)
    if factor == "lm_steps":
        train = TrainConfig(steps=int(level), batch_size=b.batch_size, learning_rates=(b.lm_lr,), threads=1)
        return LMProxy(seq_len=b.seq_len or 64, shape=shape, train=train)
    return table_settings(b).proxy()


def table_settings(b: StudyBase, **table: Any) -> TableSettings:
    """The tabular-benchmark settings whose MAD proxy is the study setting ``b``."""
    return TableSettings(
        tasks=b.tasks,
        steps=b.steps,
        width=b.width,
        lr=b.lr,
        seq_len=b.seq_len,
        vocab=b.vocab,
        batch_size=b.batch_size,
        **table,
    )


def study_points(base: StudyBase, factors: dict[str, tuple[Any, ...]]) -> list[StudyPoint]:
    """The base point, then each factor's levels, without repeating a setting already listed.

    Examples
    --------
    >>> points = study_points(StudyBase(), {"steps": (100, 300), "width": (32,)})
    >>> [p.label for p in points]
    ['base=100 steps', 'steps=300']
    """
    unknown = sorted(set(factors) - set(FACTORS))
    if unknown:
        raise InvalidInputError(f"unknown study factor(s) {unknown}; choose from {', '.join(FACTORS)}")
    first = make_proxy(base, "base", None)
    points = [StudyPoint("base", f"{base.steps} steps", first)]
    seen = {config_key(first.name, first.config())}
    for factor, levels in factors.items():
        for level in levels:
            proxy = make_proxy(base, factor, level)
            key = config_key(proxy.name, proxy.config())
            if key not in seen:
                seen.add(key)
                points.append(StudyPoint(factor, str(level), proxy))
    return points


def sample_archs(primitives: str, layers: int, n: int, seed: int = 0) -> list[str]:
    """A fixed random sample of ``n`` distinct architectures of the space (sorted).

    Examples
    --------
    >>> sample_archs("AM", 2, 3) == sample_archs("AM", 2, 3)
    True
    """
    space = ["".join(p) for p in itertools.product(primitives, repeat=layers)]
    check_arch(space[0])  # the primitives are registered
    if not 2 <= n <= len(space):
        raise InvalidInputError(f"the sample needs 2 to {len(space)} architectures, got {n}")
    picks = rng(seed).choice(len(space), size=n, replace=False)
    return sorted(space[int(i)] for i in picks)


def table_sample(table: str, top: int, n: int, seed: int = 0) -> list[str]:
    """A fixed random sample of ``n`` of the ``top`` best architectures of a tabular benchmark (sorted):
    a sample of the better part of a space, whose seed-to-seed rho is the reliability among good
    architectures (where a search has to decide).

    Examples
    --------
    >>> len(table_sample("ALCSM_3", 62, 8)), table_sample("ALCSM_3", 62, 8) == table_sample("ALCSM_3", 62, 8)
    (8, True)
    """
    from frugalml.composer.tabular import load_table

    t = load_table(table)
    ranking = sorted(t.scores, key=t.scores.__getitem__, reverse=True)
    if not 2 <= n <= top <= len(ranking):
        raise InvalidInputError(f"need 2 <= archs <= top <= {len(ranking)}, got archs {n} and top {top}")
    picks = rng(seed).choice(top, size=n, replace=False)
    return sorted(ranking[int(i)] for i in picks)


@dataclass
class StudyRun:
    """Settings of one run of the study."""

    primitives: str = "ALCSM"
    layers: int = 3
    archs: int = 12
    seeds: str = "0,1"
    cpu_minutes: float | None = None
    cache: str = ":memory:"
    sample_seed: int = 0
    from_table: str | None = None  # sample the ``top`` best architectures of this table instead
    top: int = 0
    spent: float = 0.0  # CPU-seconds of fresh evaluations so far
    stopped: str = "complete"
    log: Callable[[str], None] = field(default=print)


def _point_scores(
    run: StudyRun, point: StudyPoint, archs: list[str], cache: ResultCache, executor: Executor
) -> dict[int, dict[str, float]]:
    """Scores by seed of one point (cached ones are free), stopping at the CPU budget."""
    by_seed: dict[int, dict[str, float]] = {}
    budget = None if run.cpu_minutes is None else 60 * run.cpu_minutes
    for seed in comma_list(run.seeds, int, name="seed"):
        evaluator = Evaluator(point.proxy, cache, executor, [seed])
        todo = [a for a in archs if cache.get(a, point.proxy.name, evaluator.key, seed) is None]
        if todo and budget is not None and run.spent >= budget:
            run.stopped = f"CPU budget of {run.cpu_minutes:g} min reached at {point.label}, seed {seed}"
            break

        def done(result: dict) -> None:
            run.spent += float(result["metrics"].get("cpu_seconds", result["seconds"]))
            run.log(
                f"{point.label} seed {result['seed']} {result['arch']}: {result['score']:.4f} "
                f"({run.spent:.0f} cpu-s)"
            )

        by_seed[seed] = evaluator.scores(archs, on_result=done)
    return by_seed


def point_record(
    point: StudyPoint, archs: list[str], by_seed: dict[int, dict[str, float]], cache: ResultCache
) -> Record:
    """The study's record of one point: reliability, top-half reliability and CPU cost."""
    key = config_key(point.proxy.name, point.proxy.config())
    results = [r for r in cache.all(point.proxy.name, key) if r.arch in archs and r.seed in by_seed]
    cpu = [float(r.metrics.get("cpu_seconds", r.seconds)) for r in results]
    agree = agreement(by_seed, archs)
    mean = {a: float(np.mean([by_seed[s][a] for s in by_seed])) for a in archs}
    return Record(
        "composer",
        f"proxy study: {point.label} ({point.proxy.name}, {len(archs)} archs x {len(by_seed)} seeds)",
        "seed-to-seed Spearman rho",
        "rho",
        float(agree.get("pairwise_rho", float("nan"))),
        higher_is_better=True,
        spread={
            "factor": point.factor,
            "level": point.level,
            "proxy": point.proxy.name,
            "config": point.proxy.config(),
            "min": agree.get("pairwise_rho_min"),
            "max": agree.get("pairwise_rho_max"),
            "top_half_rho": agree.get("top_half_pairwise_rho"),
            "top1_stability": agree.get("top1_stability"),
            "cpu_seconds_per_arch": float(np.mean(cpu)) if cpu else None,
            "score_mean": float(np.mean(list(mean.values()))),
            "score_range": [float(min(mean.values())), float(max(mean.values()))],
            "top1_by_seed": agree["top1_by_seed"],
            "archs": archs,
            "seeds": sorted(by_seed),
            "scores_by_seed": {str(s): by_seed[s] for s in sorted(by_seed)},
        },
        notes=f"CPU-seconds per architecture and seed, 1 torch thread; {machine(load=True)}",
    )


def run_study(
    run: StudyRun, points: list[StudyPoint], executor: Executor | None = None
) -> tuple[list[Record], str]:
    """Evaluate every point on the sample; return one record per completed point and why it stopped."""
    archs = (
        table_sample(run.from_table, run.top, run.archs, run.sample_seed)
        if run.from_table
        else sample_archs(run.primitives, run.layers, run.archs, run.sample_seed)
    )
    cache = ResultCache(run.cache)
    executor = executor if executor is not None else InlineExecutor()
    seeds = comma_list(run.seeds, int, name="seed")
    if len(seeds) < 2:
        raise InvalidInputError("the study compares training seeds; give at least two (--seeds 0,1)")
    records = []
    try:
        for point in points:
            by_seed = _point_scores(run, point, archs, cache, executor)
            if len(by_seed) < len(seeds):
                break
            records.append(point_record(point, archs, by_seed, cache))
    finally:
        executor.close()
        cache.close()
    return records, run.stopped


def choose(records: list[Record], target: float = 0.8) -> dict[str, Any]:
    """The cheapest point whose single-seed reliability (overall and in the top half) reaches
    ``target``; None when no point does (then the most reliable point is named instead)."""
    rows = [r for r in records if r.spread.get("cpu_seconds_per_arch") is not None]
    ok = [r for r in rows if r.ours >= target and (r.spread.get("top_half_rho") or -1) >= target]
    best = min(ok, key=lambda r: r.spread["cpu_seconds_per_arch"]) if ok else None
    most = max(rows, key=lambda r: r.ours) if rows else None
    return {
        "target": target,
        "chosen": None if best is None else best.spread["factor"] + "=" + best.spread["level"],
        "chosen_rho": None if best is None else best.ours,
        "chosen_cpu_seconds_per_arch": None if best is None else best.spread["cpu_seconds_per_arch"],
        "chosen_config": None if best is None else best.spread["config"],
        "most_reliable": None if most is None else most.spread["factor"] + "=" + most.spread["level"],
        "most_reliable_rho": None if most is None else most.ours,
    }


def plot_study(records: list[Record], path: str | Path, target: float = 0.8) -> Path:
    """Reliability against CPU-seconds per architecture, one marker per point, coloured by factor."""
    from frugalml.common.report import new_figure, save_plot

    fig, ax = new_figure(figsize=(7, 4.5))
    factors = sorted({r.spread["factor"] for r in records})
    colours = dict(zip(factors, itertools.cycle("C0 C1 C2 C3 C4 C5 C6 C7".split()), strict=False))
    for r in records:
        x, f = r.spread["cpu_seconds_per_arch"], r.spread["factor"]
        ax.scatter([x], [r.ours], color=colours[f], marker="o")
        if r.spread.get("top_half_rho") is not None:
            ax.scatter([x], [r.spread["top_half_rho"]], color=colours[f], marker="x")
        label = f"{f}={r.spread['level']}"
        ax.annotate(label, (x, r.ours), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for f in factors:
        ax.scatter([], [], color=colours[f], label=f)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target}")
    ax.set_xscale("log")
    ax.set_xlabel("CPU-seconds per architecture and seed (1 thread)")
    ax.set_ylabel("seed-to-seed Spearman rho (o all, x top half)")
    n = records[0].spread if records else {}
    size = f"{len(n.get('archs', []))} archs, {len(n.get('seeds', []))} seeds"
    ax.set_title(f"proxy reliability vs cost ({size})")
    ax.legend(fontsize=7, loc="lower right")
    return save_plot(fig, path)
