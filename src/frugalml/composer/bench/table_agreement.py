"""How noisy is a tabular benchmark? Seed-to-seed rank agreement of a multi-seed table.

Reads a table built with several seeds (``scores_by_seed``) and reports: the mean Spearman rho
between two single seeds (the reliability of a one-seed table such as ``AM_6``), the split-half rho
and the Spearman-Brown reliability of the mean of all seeds; the rho between seed 0 alone and the
mean of the other seeds (seed 0 is the one-seed table when the settings match); how often the
top-1 stays the top-1 when the seeds are resampled (bootstrap); and where the one-seed table's
top-1 ranks.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata, spearmanr

from frugalml.common.report import Record
from frugalml.composer.tabular import BUILTINS, load_table

AGREEMENT_KEYS = (
    "pairwise_rho",
    "pairwise_rho_min",
    "pairwise_rho_max",
    "split_half_rho",
    "spearman_brown",
    "top1_by_seed",
)


def read_table_doc(table: str) -> dict[str, Any]:
    """The raw JSON of a built-in table (by name) or of a table file."""
    source = resources.files("frugalml.composer") / BUILTINS[table] if table in BUILTINS else Path(table)
    return json.loads(source.read_text())


def agreement_summary(table: str = "AM_6_5seeds", single: str = "AM_6", resamples: int = 10_000) -> dict:
    """Top-1 stability, the one-seed table's ranks and the recorded agreement of ``table``.

    Examples
    --------
    >>> s = agreement_summary(resamples=100)
    >>> s["single_seed_table"], len(s["top5"])
    ('AM_6', 5)
    """
    doc = read_table_doc(table)
    one = load_table(single)
    seeds = [str(s) for s in doc["seeds"]]
    archs = sorted(doc["scores"])
    by_seed = np.array([[doc["scores_by_seed"][s][a] for a in archs] for s in seeds])
    mean = by_seed.mean(0)
    top1 = archs[int(np.argmax(mean))]
    picks = np.random.default_rng(0).integers(0, len(seeds), (resamples, len(seeds)))
    stays = float(np.mean([archs[int(np.argmax(by_seed[p].mean(0)))] == top1 for p in picks]))
    rest = by_seed[1:].mean(0)
    single_scores = np.array([one.scores[a] for a in archs])
    rank_in_mean = {a: int(r) for a, r in zip(archs, rankdata(-mean, method="min"), strict=True)}
    rank_in_rest = {a: int(r) for a, r in zip(archs, rankdata(-rest, method="min"), strict=True)}
    return {
        "table": table,
        "seeds": doc["seeds"],
        "top1": top1,
        "top1_margin": float(np.sort(mean)[-1] - np.sort(mean)[-2]),
        "top1_stays_top1_under_seed_bootstrap": stays,
        "top5": [archs[i] for i in np.argsort(-mean)[:5]],
        "single_seed_table": single,
        "single_top1": one.top1,
        "single_top1_rank_in_mean": rank_in_mean[one.top1],
        "single_top1_rank_in_other_seeds": rank_in_rest[one.top1],
        "rho_single_vs_other_seeds": float(spearmanr(single_scores, rest)[0]),
        "seed0_equals_single_table": bool(np.allclose(by_seed[0], single_scores)),
        **{k: doc["agreement"][k] for k in AGREEMENT_KEYS},
    }


def agreement_records(summary: dict[str, Any], archs: int, resamples: int) -> list[Record]:
    """The four report records of :func:`agreement_summary`'s result (a table of ``archs`` architectures)."""
    s = summary
    label = f"{s['table']} ({len(s['seeds'])} seeds, {archs} archs)"

    def rho(workload: str, metric: str, unit: str, value: float, spread: dict, notes: str) -> Record:
        return Record(
            "composer", workload, metric, unit, value, higher_is_better=True, spread=spread, notes=notes
        )

    return [
        rho(
            f"seed-to-seed agreement of a one-seed table ({label})",
            "mean Spearman rho",
            "rho",
            s["pairwise_rho"],
            {"min": s["pairwise_rho_min"], "max": s["pairwise_rho_max"]},
            "rank agreement between two single training seeds of the same proxy",
        ),
        rho(
            f"reliability of the seed-averaged table ({label})",
            "split-half Spearman rho",
            "rho",
            s["split_half_rho"],
            {"spearman_brown_all_seeds": s["spearman_brown"]},
            "rho between the means of two halves of the seeds (all balanced splits); "
            "Spearman-Brown: predicted reliability of the mean of all seeds",
        ),
        rho(
            f"{s['single_seed_table']} (one seed) vs the mean of the other seeds of {label}",
            "Spearman rho",
            "rho",
            s["rho_single_vs_other_seeds"],
            {
                "single_top1": s["single_top1"],
                "its_rank_in_other_seeds": s["single_top1_rank_in_other_seeds"],
            },
            "how well the one-seed table ranks the architectures, judged by independent seeds",
        ),
        rho(
            f"top-1 stability of {label}",
            "P(top-1 stays top-1)",
            "fraction",
            s["top1_stays_top1_under_seed_bootstrap"],
            {"top1": s["top1"], "margin": s["top1_margin"], "resamples": resamples},
            "bootstrap over the training seeds (resampled with replacement)",
        ),
    ]
