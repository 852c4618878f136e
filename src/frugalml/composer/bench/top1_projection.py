"""What limits a table's top-1 stability, and what more training seeds would give (a projection).

A built table's ``agreement.top1_stability`` is how often the top-1 of the seed mean stays the
top-1 when its seeds are resampled with replacement. Two things are measured here from the
per-seed scores a table stores (``scores_by_seed``), without training anything:

* **the contenders**: each architecture's mean difference to the top-1, paired by seed (one seed
  fixes the task data for every architecture, so seed effects are shared), with its standard
  error over the seeds; how many lie within one and two standard errors of the top; and how often
  each architecture wins a seed resample;
* **a projection** of the same resampling with k seeds. New seeds are simulated from the measured
  seed-to-seed spread: the true means are drawn around the measured means with the covariance of
  a k-seed mean, and each simulated seed adds a residual with the seeds' sample covariance across
  architectures (random combinations of the measured seeds' residual rows, so a seed that is hard
  for every architecture stays hard for all of them). Three variants: *add seeds* keeps the
  measured seeds and adds k - n simulated ones (what building more seeds of this table would
  give); *add seeds, independent noise* draws each architecture's residual on its own with its
  own spread (ignores the shared seed effect); *new table* simulates all k seeds. Each simulated
  table is scored with exactly the resampling of ``build_table.top1_stability``; the projection
  reports the mean stability over the simulated tables, its quartiles, the share of tables that
  reach the 0.8 target, and how often the table's top-1 is the simulated true best.

It is a projection from three-or-so measured seeds, not a measurement: the covariance of n seeds
has rank n - 1, and the spread of each architecture is itself uncertain.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.report import Record

GOAL = 0.8
VARIANTS = ("add seeds", "add seeds, independent noise", "new table")


def seed_matrix(doc: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """The architectures (by mean score, best first) and the seeds x architectures score matrix.

    Raises :class:`CorruptFileError` unless the table holds finite scores of every architecture
    for at least two seeds.
    """
    try:
        seeds = [str(s) for s in doc["seeds"]]
        archs = list(doc["scores"])
        table = np.array([[float(doc["scores_by_seed"][s][a]) for a in archs] for s in seeds])
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptFileError(f"not a multi-seed table: no per-seed score for {e}") from None
    if len(seeds) < 2 or not archs or not np.isfinite(table).all():
        raise CorruptFileError("a multi-seed table needs finite scores of every architecture for 2+ seeds")
    order = np.argsort(-table.mean(0), kind="stable")
    return [archs[i] for i in order], table[:, order]


def stability(tables: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``top1_stability`` of each of ``tables`` (tables x seeds x architectures), and each top-1.

    The same resampling as :func:`frugalml.composer.bench.build_table.top1_stability` (the same
    seed picks), so one table gives the number a built table stores.

    Examples
    --------
    >>> s, top = stability(np.array([[[0.0, 1.0], [0.1, 0.9]]]), resamples=50)
    >>> s.tolist(), top.tolist()
    ([1.0], [1])
    """
    k = tables.shape[1]
    top1 = np.argmax(tables.mean(1), axis=1)
    picks = np.random.default_rng(seed).integers(0, k, (resamples, k))
    out = np.empty(len(tables))
    for b, t in enumerate(tables):
        out[b] = np.mean(np.argmax(t[picks].mean(1), axis=1) == top1[b])
    return out, top1


def contenders(doc: dict[str, Any], show: int = 6, resamples: int = 2000) -> dict[str, Any]:
    """The top of a multi-seed table against the seeds' noise (paired differences to the top-1).

    Examples
    --------
    >>> doc = {"seeds": [0, 1], "scores": {"A": 0, "B": 0, "C": 0},
    ...        "scores_by_seed": {"0": {"A": 0.9, "B": 0.8, "C": 0.1}, "1": {"A": 0.7, "B": 0.8, "C": 0.2}}}
    >>> c = contenders(doc)
    >>> c["top1"], c["within_1_se"], c["within_2_se"], sorted(c["resample_wins"])
    ('A', ['B'], ['B'], ['A', 'B'])
    """
    archs, table = seed_matrix(doc)
    n = len(table)
    diff = table - table[:, [0]]
    mean, se = diff.mean(0), diff.std(0, ddof=1) / np.sqrt(n)
    within = [[a for i, a in enumerate(archs[1:], 1) if -mean[i] <= z * se[i]] for z in (1, 2)]
    picks = np.random.default_rng(0).integers(0, n, (resamples, n))
    winners, counts = np.unique(np.argmax(table[picks].mean(1), axis=1), return_counts=True)
    return {
        "seeds": n,
        "top1": archs[0],
        "top": [
            {
                "arch": archs[i],
                "mean": float(table[:, i].mean()),
                "by_seed": table[:, i].tolist(),
                "seed_sd": float(table[:, i].std(ddof=1)),
                "gap_to_top1": float(-mean[i]),
                "gap_se": float(se[i]),
            }
            for i in range(min(show, len(archs)))
        ],
        "within_1_se": within[0],
        "within_2_se": within[1],
        "resample_wins": {archs[w]: int(c) / resamples for w, c in zip(winners, counts, strict=True)},
    }


def _simulate(
    table: np.ndarray, k: int, variant: str, tables: int, gen: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``tables`` simulated k-seed tables (see the module docstring for the variants)."""
    n, archs = table.shape
    mean = table.mean(0)
    resid = table - mean

    def shared(shape: tuple[int, ...]) -> np.ndarray:  # rows with the seeds' sample covariance
        return gen.standard_normal(shape + (n,)) @ resid / np.sqrt(n - 1)

    def independent(shape: tuple[int, ...]) -> np.ndarray:
        return gen.standard_normal(shape + (archs,)) * table.std(0, ddof=1)

    noise = independent if variant == "add seeds, independent noise" else shared
    truth = mean + noise((tables,)) / np.sqrt(n)
    kept = 0 if variant == "new table" else n
    new = truth[:, None, :] + noise((tables, k - kept))
    measured = np.broadcast_to(table[:kept], (tables, kept, archs))
    return np.concatenate([measured, new], axis=1), truth


def project(
    doc: dict[str, Any],
    ks: tuple[int, ...] = (3, 4, 5, 6),
    tables: int = 1000,
    resamples: int = 2000,
    seed: int = 0,
    variants: tuple[str, ...] = VARIANTS,
) -> dict[str, Any]:
    """The projected top-1 stability of the table with k seeds, for each variant and each k.

    Examples
    --------
    >>> doc = {"seeds": [0, 1, 2], "scores": {"A": 0, "B": 0, "C": 0}, "scores_by_seed": {
    ...     "0": {"A": 0.9, "B": 0.5, "C": 0.1}, "1": {"A": 0.8, "B": 0.5, "C": 0.2},
    ...     "2": {"A": 0.85, "B": 0.45, "C": 0.1}}}
    >>> p = project(doc, ks=(3, 4), tables=20, resamples=50)
    >>> p["measured"], p["by_k"]["4"]["add seeds"]["mean"]
    (1.0, 1.0)
    """
    _, table = seed_matrix(doc)
    n = len(table)
    gen = np.random.default_rng(seed)
    cpu = time.process_time()
    by_k: dict[str, dict[str, dict[str, Any]]] = {}
    for k in ks:
        by_k[str(k)] = {}
        for variant in variants:
            if k < n and variant != "new table":
                continue
            sims, truth = _simulate(table, k, variant, tables, gen)
            s, top1 = stability(sims, resamples)
            by_k[str(k)][variant] = {
                "mean": float(s.mean()),
                "quartiles": [float(q) for q in np.quantile(s, [0.25, 0.75])],
                "share_reaching_goal": float(np.mean(s >= GOAL)),
                "top1_is_true_best": float(np.mean(top1 == np.argmax(truth, axis=1))),
            }
    return {
        "measured": float(stability(table[None], resamples)[0][0]),
        "measured_seeds": n,
        "goal": GOAL,
        "tables": tables,
        "resamples": resamples,
        "by_k": by_k,
        "cpu_seconds": time.process_time() - cpu,
    }


def backtest(doc: dict[str, Any], keep: int = 3, tables: int = 300) -> dict[str, Any]:
    """The projection checked on a table with more seeds than ``keep``: from every ``keep`` of its
    seeds, the *add seeds* projection to all its seeds, beside the stability all its seeds give.

    Examples
    --------
    >>> doc = {"seeds": [0, 1, 2], "scores": {"A": 0, "B": 0}, "scores_by_seed": {
    ...     "0": {"A": 0.9, "B": 0.5}, "1": {"A": 0.8, "B": 0.6}, "2": {"A": 0.85, "B": 0.4}}}
    >>> b = backtest(doc, keep=2, tables=10)
    >>> b["measured_all_seeds"], len(b["from"])
    (1.0, 3)
    """
    seeds = [str(s) for s in doc["seeds"]]
    if not 2 <= keep < len(seeds):
        raise InvalidInputError(f"a backtest keeps 2 to {len(seeds) - 1} of the table's {len(seeds)} seeds")
    k = len(seeds)
    out = []
    for kept in itertools.combinations(seeds, keep):
        sub = {**doc, "seeds": list(kept), "scores_by_seed": {s: doc["scores_by_seed"][s] for s in kept}}
        p = project(sub, (k,), tables, variants=("add seeds",))
        v = p["by_k"][str(k)]["add seeds"]
        out.append(
            {
                "seeds": list(kept),
                "measured": p["measured"],
                "projected": v["mean"],
                "quartiles": v["quartiles"],
            }
        )
    return {"measured_all_seeds": float(stability(seed_matrix(doc)[1][None])[0][0]), "seeds": k, "from": out}


def spearman_brown(rho: float, k: int) -> float:
    """The reliability of the mean of k seeds predicted from the single-seed rho.

    Examples
    --------
    >>> round(spearman_brown(0.5, 3), 2)
    0.75
    """
    return k * rho / (1 + (k - 1) * rho)


def summarise(
    table: str, doc: dict[str, Any], ks: tuple[int, ...], tables: int = 1000, resamples: int = 2000
) -> dict[str, Any]:
    """The contenders, the projection and the better half's reliability of a k-seed mean.

    The better half's seed-to-seed rho (``agreement.top_half_pairwise_rho``) is a property of one
    seed, which more seeds cannot raise; what they raise is the reliability of the mean (predicted
    here by Spearman-Brown).
    """
    top_half = float(doc["agreement"]["top_half_pairwise_rho"])
    return {
        "table": table,
        "contenders": contenders(doc),
        "projection": project(doc, ks, tables, resamples),
        "top_half_rho_single_seed": top_half,
        "top_half_reliability_of_k_seed_mean": {str(k): spearman_brown(top_half, k) for k in ks},
    }


def projection_records(table: str, summary: dict[str, Any]) -> list[Record]:
    """One record per (k, variant): the projected mean stability, the measured one beside it."""
    c, p = summary["contenders"], summary["projection"]
    out = []
    for k, variants in p["by_k"].items():
        for variant, v in variants.items():
            out.append(
                Record(
                    "composer",
                    f"top-1 stability of {table} projected to {k} seeds ({variant})",
                    "mean P(top-1 stays top-1) over simulated tables",
                    "fraction",
                    v["mean"],
                    peer=f"measured with {p['measured_seeds']} seeds",
                    peer_value=p["measured"],
                    higher_is_better=True,
                    spread={
                        "quartiles": v["quartiles"],
                        "share_reaching_80pct": v["share_reaching_goal"],
                        "top1_is_true_best": v["top1_is_true_best"],
                        "within_1_se_of_top1": c["within_1_se"],
                        "within_2_se_of_top1": c["within_2_se"],
                    },
                    notes=f"a projection, not a measurement: {p['tables']} tables simulated from the "
                    f"measured seed-to-seed spread, each resampled {p['resamples']} times as the "
                    f"table's own top1_stability; {p['cpu_seconds']:.0f} CPU-s for the whole projection "
                    f"({summary['machine']})",
                )
            )
    return out
