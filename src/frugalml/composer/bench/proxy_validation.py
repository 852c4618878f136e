"""Cheap proxy settings scored on the 16 picks of the CPU fidelity run: a VALIDATION, not a test.

The 16 ``ALCSM_3`` strings that the CPU fidelity run trained as 0.66-2.66M byte LMs have been looked
at (the tables' fidelity against them was seen before these settings were proposed), so a setting
chosen here must still be tested on a held-out set of other strings. Each setting is a
:class:`~frugalml.composer.bench.build_table.TableSettings` (the proxy of ``make_tabular.py``), so
its evaluations land in the tabular cache under the same key a 125-string table at that setting
would use: building that table later reuses them. Evaluations run one at a time, resumably.

For each setting the report gives Spearman's rho between the seed mean and minus the LM loss (95%
bootstrap interval over the 16 strings), the proxy's own seed-to-seed rho on the 16, and the CPU
seconds per evaluation (as each evaluation measured it, one torch thread).

The same scoring against the LM runs of the held-out picks (``heldout=True``) is the held-out test
of a setting chosen here: 16 other strings, drawn by a fixed rule whose LMs were trained before
any table at the chosen setting existed; its records say "held-out test" instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from frugalml.common.errors import InvalidInputError
from frugalml.common.report import Record
from frugalml.composer.bench.build_table import TableSettings
from frugalml.composer.bench.fidelity import bootstrap_spearman
from frugalml.composer.bench.fidelity_table import FinishedRuns
from frugalml.composer.cache import ResultCache
from frugalml.composer.evaluator import Evaluator, InlineExecutor

FOUR = "recall,selective_copy,fuzzy_recall,memorization"
SETTINGS: dict[str, TableSettings] = {
    # the settings of the built-in tables (already cached for these strings: seeds 0 and 1)
    "lm-100": TableSettings(proxy_kind="lm", steps=100, width=32, seq_len=64, lr=3e-3),
    "mad4-100": TableSettings(tasks=FOUR, steps=100, width=32, lr=5e-3),
    # the candidates
    "lm-300": TableSettings(proxy_kind="lm", steps=300, width=32, seq_len=64, lr=3e-3),
    "lm-600": TableSettings(proxy_kind="lm", steps=600, width=32, seq_len=64, lr=3e-3),
    "lm-300-seq128": TableSettings(proxy_kind="lm", steps=300, width=32, seq_len=128, lr=3e-3),
    "mad4-300": TableSettings(tasks=FOUR, steps=300, width=32, lr=5e-3),
}
"""The proxy settings by name: the built-in tables' two, then the cheap candidates."""

CAVEAT = (
    "validation on the fidelity picks (not a held-out test): these 16 strings' LM ranking had "
    "been seen before the settings were proposed"
)
HELDOUT_CAVEAT = (
    "held-out test: these 16 strings were fixed before any lm-300 table existed (the 109 strings not "
    "yet trained as LMs, cut into quartiles of ALCSM_3_4tasks's score, 4 drawn from each with "
    "numpy.random.default_rng(20261207)) and none was among the 16 validation picks on which lm-300 "
    "was chosen; lm-100 and mad4-100 are the settings of the built-in ALCSM_3_lm and ALCSM_3_4tasks, "
    "built before these strings' LMs were trained"
)


def setting(name: str, cache: str | None = None) -> TableSettings:
    """The named setting (with ``cache`` as its result cache when given)."""
    if name not in SETTINGS:
        raise InvalidInputError(f"unknown proxy setting {name!r}; choose from {', '.join(SETTINGS)}")
    s = SETTINGS[name]
    return s if cache is None else TableSettings(**{**vars(s), "cache": cache})


def evaluate(name: str, picks: list[str], seeds: list[int], cache: str | None = None) -> int:
    """Evaluate the picks on the named setting, string after string, skipping what is cached; returns
    how many evaluations ran."""
    s = setting(name, cache)
    proxy, store = s.proxy(), ResultCache(s.cache)
    ran, start = 0, time.process_time()
    for arch in picks:  # string after string (both seeds), so a stopped run scores whole strings
        for seed in seeds:
            evaluator = Evaluator(proxy, store, InlineExecutor(), [seed])
            score = evaluator.scores([arch])[arch]
            if evaluator.fresh:
                ran += evaluator.fresh
                evaluator.fresh = 0
                print(
                    f"{name} seed {seed} {arch}: {score:.4f} (cpu {time.process_time() - start:.0f} s)",
                    flush=True,
                )
    return ran


def collect(name: str, picks: list[str], seeds: list[int], cache: str | None = None) -> dict:
    """What the cache holds for the named setting on the picks: scores by seed and CPU-s."""
    s = setting(name, cache)
    proxy, store = s.proxy(), ResultCache(s.cache)
    evaluator = Evaluator(proxy, store, InlineExecutor(), seeds)
    by_seed: dict[int, dict[str, float]] = {seed: {} for seed in seeds}
    cpu = []
    for arch in picks:
        for seed in seeds:
            hit = store.get(arch, proxy.name, evaluator.key, seed)
            if hit is not None:
                by_seed[seed][arch] = float(hit.score)
                cpu.append(float(hit.metrics.get("cpu_seconds", 0.0)))
    return {"by_seed": by_seed, "cpu": cpu, "config": proxy.config(), "proxy": proxy.name}


def score_setting(
    name: str, runs: FinishedRuns, seeds: list[int], cache: str | None = None, heldout: bool = False
) -> Record:
    """One setting against the finished LM runs: rho with its interval, seed-to-seed rho, CPU-s;
    ``heldout`` labels the record as the held-out test instead of the validation."""
    got = collect(name, runs.done, seeds, cache)
    complete = [a for a in runs.done if all(a in got["by_seed"][s] for s in seeds)]
    need = len(runs.done) * len(seeds)
    if len(complete) < 4:
        raise InvalidInputError(f"setting {name}: {len(complete)} strings done on all seeds; need 4")
    neg_loss = -runs.losses.mean(axis=1)
    lm = [float(neg_loss[runs.done.index(a)]) for a in complete]
    table = np.array([[got["by_seed"][s][a] for a in complete] for s in seeds])
    rho, low, high = bootstrap_spearman(list(table.mean(0)), lm)
    single = [float(spearmanr(row, lm)[0]) for row in table]
    s2s = float(spearmanr(table[0], table[1])[0]) if len(seeds) >= 2 else None
    order = np.argsort(-table.mean(0), kind="stable")
    lm_rank = {a: i + 1 for i, a in enumerate(sorted(complete, key=lambda a: -lm[complete.index(a)]))}
    cpu = float(np.mean(got["cpu"])) if got["cpu"] else float("nan")
    what = "held-out test" if heldout else "proxy validation"
    picks = "held-out picks" if heldout else "fidelity picks"
    return Record(
        "composer",
        f"{what}: {name} ({got['proxy']} proxy) vs LM loss on the {len(complete)} {picks}",
        "spearman_rho_vs_lm",
        "rho",
        rho,
        higher_is_better=True,
        spread={
            "bootstrap_95_low": low,
            "bootstrap_95_high": high,
            "single_seed_rho_vs_lm": single,
            "seed_to_seed_rho": s2s,
            "cpu_seconds_per_evaluation": cpu,
            "evaluations_done": len(got["cpu"]),
            "evaluations_planned": need,
            "seeds": seeds,
            "setting": name,
            "config": got["config"],
            "proxy_order_with_lm_rank": [[complete[i], lm_rank[complete[i]]] for i in order],
        },
        notes=f"{HELDOUT_CAVEAT if heldout else CAVEAT}; LM: {runs.describe()}; 95% CI from 5000 "
        "bootstrap resamples of the strings",
    )


def plot_validation(
    records: list[Record],
    path: str | Path,
    goal: float = 0.7,
    title: str = "validation on the 16 fidelity picks (not a held-out test)",
) -> Path:
    """Rho vs the LM (with its interval) against CPU-s per evaluation, one point per setting; a
    record without a setting (the LMs' noise ceiling) is drawn as a horizontal line."""
    from frugalml.common.report import new_figure, save_plot

    fig, ax = new_figure(figsize=(7, 4.5))
    for r in records:
        if "setting" not in r.spread:
            ax.axhline(r.ours, color="black", linewidth=1, label=f"LM seed-to-seed {r.ours:.2f}")
    for i, r in enumerate([rec for rec in records if "setting" in rec.spread]):
        x, sp = r.spread["cpu_seconds_per_evaluation"], r.spread
        colour = f"C{i % 10}"
        ax.errorbar(
            [x],
            [r.ours],
            yerr=[[r.ours - sp["bootstrap_95_low"]], [sp["bootstrap_95_high"] - r.ours]],
            fmt="o",
            color=colour,
            capsize=3,
        )
        if sp["seed_to_seed_rho"] is not None:
            ax.scatter([x], [sp["seed_to_seed_rho"]], marker="x", color=colour)
        ax.annotate(sp["setting"], (x, r.ours), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.axhline(goal, color="grey", linestyle="--", linewidth=1, label=f"target {goal}")
    ax.set_xscale("log")
    ax.margins(x=0.15)  # room for the labels of the outermost settings
    ax.set_xlabel("CPU-seconds per evaluation (one string, one seed, 1 thread)")
    ax.set_ylabel("Spearman rho vs the LM ranking (o, 95% CI); x: proxy seed-to-seed")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return save_plot(fig, path)
