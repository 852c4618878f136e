"""How noisy is a tabular benchmark? Seed-to-seed rank agreement of a multi-seed table.

Reads a table written by ``make_tabular.py`` with several seeds (``scores_by_seed``) and reports:
the mean Spearman rho between two single seeds (the reliability of a one-seed table such as
``AM_6``), the split-half rho and the Spearman-Brown reliability of the mean of all seeds; the rho
between seed 0 alone and the mean of the other seeds (seed 0 is the one-seed table when the
settings match); how often the top-1 stays the top-1 when the seeds are resampled (bootstrap);
and where the one-seed table's top-1 ranks. Writes report records to
``benchmarks/results/composer_table_agreement.json``.

    python benchmarks/composer/table_agreement.py [--table AM_6_5seeds] [--single AM_6]
"""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.stats import rankdata, spearmanr

from frugalml.common.files import atomic_write
from frugalml.common.report import Record, print_table, write_json
from frugalml.composer.tabular import BUILTINS, load_table

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="AM_6_5seeds")
    parser.add_argument("--single", default="AM_6", help="The one-seed table to check against.")
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    source = (
        resources.files("frugalml.composer") / BUILTINS[args.table]
        if args.table in BUILTINS
        else Path(args.table)
    )
    doc = json.loads(source.read_text())
    single = load_table(args.single)
    seeds = [str(s) for s in doc["seeds"]]
    archs = sorted(doc["scores"])
    by_seed = np.array([[doc["scores_by_seed"][s][a] for a in archs] for s in seeds])
    mean = by_seed.mean(0)
    top1 = archs[int(np.argmax(mean))]
    gen = np.random.default_rng(0)
    picks = gen.integers(0, len(seeds), (args.resamples, len(seeds)))
    stays = float(np.mean([archs[int(np.argmax(by_seed[p].mean(0)))] == top1 for p in picks]))
    rest = by_seed[1:].mean(0)
    single_scores = np.array([single.scores[a] for a in archs])
    rho_single_rest = float(spearmanr(single_scores, rest)[0])
    rank_in_mean = {a: int(r) for a, r in zip(archs, rankdata(-mean, method="min"), strict=True)}
    rank_in_rest = {a: int(r) for a, r in zip(archs, rankdata(-rest, method="min"), strict=True)}
    agree = doc["agreement"]
    label = f"{args.table} ({len(seeds)} seeds, {len(archs)} archs)"
    summary = {
        "table": args.table,
        "seeds": doc["seeds"],
        "top1": top1,
        "top1_margin": float(np.sort(mean)[-1] - np.sort(mean)[-2]),
        "top1_stays_top1_under_seed_bootstrap": stays,
        "top5": [archs[i] for i in np.argsort(-mean)[:5]],
        "single_seed_table": args.single,
        "single_top1": single.top1,
        "single_top1_rank_in_mean": rank_in_mean[single.top1],
        "single_top1_rank_in_other_seeds": rank_in_rest[single.top1],
        "rho_single_vs_other_seeds": rho_single_rest,
        "seed0_equals_single_table": bool(np.allclose(by_seed[0], single_scores)),
        **{
            k: agree[k]
            for k in (
                "pairwise_rho",
                "pairwise_rho_min",
                "pairwise_rho_max",
                "split_half_rho",
                "spearman_brown",
                "top1_by_seed",
            )
        },
    }
    print(json.dumps(summary, indent=1))
    records = [
        Record(
            "composer",
            f"seed-to-seed agreement of a one-seed table ({label})",
            "mean Spearman rho",
            "rho",
            agree["pairwise_rho"],
            higher_is_better=True,
            spread={"min": agree["pairwise_rho_min"], "max": agree["pairwise_rho_max"]},
            notes="rank agreement between two single training seeds of the same proxy",
        ),
        Record(
            "composer",
            f"reliability of the seed-averaged table ({label})",
            "split-half Spearman rho",
            "rho",
            agree["split_half_rho"],
            higher_is_better=True,
            spread={"spearman_brown_all_seeds": agree["spearman_brown"]},
            notes="rho between the means of two halves of the seeds (all balanced splits); "
            "Spearman-Brown: predicted reliability of the mean of all seeds",
        ),
        Record(
            "composer",
            f"{args.single} (one seed) vs the mean of the other seeds of {label}",
            "Spearman rho",
            "rho",
            rho_single_rest,
            higher_is_better=True,
            spread={"single_top1": single.top1, "its_rank_in_other_seeds": rank_in_rest[single.top1]},
            notes="how well the one-seed table ranks the architectures, judged by independent seeds",
        ),
        Record(
            "composer",
            f"top-1 stability of {label}",
            "P(top-1 stays top-1)",
            "fraction",
            stays,
            higher_is_better=True,
            spread={"top1": top1, "margin": summary["top1_margin"], "resamples": args.resamples},
            notes="bootstrap over the training seeds (resampled with replacement)",
        ),
    ]
    print_table(records, title="composer: how noisy are the tabular benchmarks")
    write_json(records, RESULTS / "composer_table_agreement.json")
    with atomic_write(RESULTS / "composer_table_agreement_summary.json", "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
