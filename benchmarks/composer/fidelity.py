"""Proxy fidelity and the quality goal, on the byte-level LM proxy (stdlib corpus by default).

1. Fidelity: Spearman rank correlation (with a bootstrap CI over architectures) between the
   tabular MAD-proxy scores and the LM validation loss of the same architectures, picked evenly
   over the table's ranking among those whose size lies in ``--min-params..--max-params``.
2. Quality: the N0-aggregated architecture of the table's top cluster, stacked to ``--grow``
   layers at ``--quality-width``, against the parameter-matched Llama-style (AM) x k baseline at
   equal tokens and seeds; with tokens/s and KV-cache ratios.

Every LM run is stored in a SQLite result cache as soon as it finishes and the JSON results are
rewritten after each run, so a killed run resumes where it stopped (run the same command again).

``--picks`` fixes the architectures and ``--target-runs`` also correlates these LM runs with the
runs of a larger setting (a small LM as the proxy). ``benchmarks/composer/gpu.sh`` runs the
recorded GPU setting (``composer_fidelity_gpu*.json``).

    python benchmarks/composer/fidelity.py [--width 272] [--steps 800] [--archs 10] [--seeds 0]
        [--quality-width 256] [--grow 12] [--quality-seeds 0 1] [--device cpu] [--fidelity-only]
        [--picks A,B,..] [--target-runs RUNS.json] [--out NAME]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from frugalml.common.files import atomic_write
from frugalml.common.report import Record, print_table, write_json
from frugalml.composer.aggregation import aggregate
from frugalml.composer.cache import ResultCache
from frugalml.composer.evaluator import Evaluator
from frugalml.composer.extrapolation import extrapolate, matched_baselines
from frugalml.composer.model import non_embedding_params
from frugalml.composer.proxies import LMProxy, ModelShape, TrainConfig
from frugalml.composer.tabular import load_table

RESULTS = Path(__file__).resolve().parents[1] / "results"
DEFAULT_CACHE = Path.home() / ".cache" / "frugalml" / "composer" / "fidelity.sqlite"


def bootstrap_spearman(
    x: list[float], y: list[float], rounds: int = 5000, seed: int = 0
) -> tuple[float, float, float]:
    """Spearman rho of (x, y) and its 95% percentile bootstrap interval (resampling pairs)."""
    x, y = np.asarray(x), np.asarray(y)
    gen = np.random.default_rng(seed)
    stats = []
    for _ in range(rounds):
        idx = gen.integers(0, len(x), len(x))
        if len(set(x[idx])) > 2 and len(set(y[idx])) > 2:
            stats.append(spearmanr(x[idx], y[idx]).statistic)
    low, high = np.nanpercentile(stats, [2.5, 97.5]) if stats else (float("nan"), float("nan"))
    return float(spearmanr(x, y).statistic), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=272, help="Width of the fidelity runs.")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--min-params", type=float, default=1.99e6, help="Non-embedding parameters, low end.")
    parser.add_argument("--max-params", type=float, default=5e6, help="Non-embedding parameters, high end.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Seeds of the fidelity runs.")
    parser.add_argument("--quality-width", type=int, default=256)
    parser.add_argument("--grow", type=int, default=12, help="Layers the aggregated block is stacked to.")
    parser.add_argument("--quality-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--corpus", default="stdlib")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="torch device of the LM runs (cpu, cuda).")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="SQLite result cache.")
    parser.add_argument("--fidelity-only", action="store_true", help="Skip the quality comparison.")
    parser.add_argument("--picks", default=None, help="Comma-separated architectures instead of the spread.")
    parser.add_argument(
        "--target-runs",
        type=Path,
        default=None,
        help="A *_runs.json of larger LM runs of the same picks: also report the Spearman "
        "rho of these (small) LM runs against them (the LM itself as the proxy).",
    )
    parser.add_argument("--out", default="composer_fidelity_2m", help="Result name under benchmarks/results.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    table = load_table()
    cache = ResultCache(args.cache)
    train = TrainConfig(
        steps=args.steps, batch_size=args.batch, learning_rates=(args.lr,), threads=args.threads
    )

    def proxy(width: int) -> LMProxy:
        shape = ModelShape(width=width, heads=4, kv_heads=2, mlp_ratio=4.0, window=args.seq_len // 4)
        return LMProxy(
            corpus=args.corpus,
            max_bytes=2_000_000,
            seq_len=args.seq_len,
            shape=shape,
            train=train,
            val_windows=256,
            device=args.device,
        )

    fid_proxy = proxy(args.width)
    fid_layer = fid_proxy.shape.layer()
    in_range = [
        a
        for a in sorted(table.scores, key=table.scores.get, reverse=True)
        if args.min_params <= non_embedding_params(a, fid_layer) <= args.max_params
    ]
    picks = (
        [in_range[int(i)] for i in np.linspace(0, len(in_range) - 1, args.archs).round()]
        if args.picks is None
        else args.picks.split(",")
    )
    setting = (
        f"byte LM on {args.corpus}, {args.steps} steps x {args.batch} x {args.seq_len} tokens, "
        f"lr {args.lr}, {args.device}"
    )

    runs: dict[str, dict] = {}

    def lm(arch: str, width: int, seeds: list[int]) -> dict:
        evaluator = Evaluator(proxy(width), cache, seeds=seeds)
        per_seed = []
        for seed in seeds:
            evaluator.seeds = (seed,)
            evaluator.scores([arch])
            hit = cache.get(arch, "lm", evaluator.key, seed)
            per_seed.append({"seed": seed, **hit.metrics, "seconds": hit.seconds})
        r = {
            "width": width,
            "val_loss": float(np.mean([p["val_loss"] for p in per_seed])),
            "tokens_per_s": float(np.median([p["tokens_per_s"] for p in per_seed])),
            "non_embedding_params": per_seed[0]["non_embedding_params"],
            "params": per_seed[0]["params"],
            "kv_cache_bytes": per_seed[0]["kv_cache_bytes"],
            "runs": per_seed,
        }
        runs[f"{arch}@{width}"] = r
        print(
            f"{arch} (width {width}): val loss {r['val_loss']:.4f}, {r['tokens_per_s']:.0f} tok/s, "
            f"{r['non_embedding_params'] / 1e6:.2f}M non-embedding",
            flush=True,
        )
        return r

    def save(records: list[Record], extra: dict) -> None:
        write_json(records, RESULTS / f"{args.out}.json")
        with atomic_write(RESULTS / f"{args.out}_runs.json", "w") as f:
            json.dump({"settings": vars(args), "runs": runs, **extra}, f, indent=1, default=str)

    records: list[Record] = []
    for arch in picks:
        lm(arch, args.width, args.seeds)
        save(records, {"picks": picks})
    mad = [table.scores[a] for a in picks]
    neg_loss = [-runs[f"{a}@{args.width}"]["val_loss"] for a in picks]
    rho, low, high = bootstrap_spearman(mad, neg_loss)
    params = [runs[f"{a}@{args.width}"]["non_embedding_params"] for a in picks]
    records.append(
        Record(
            "composer",
            f"proxy fidelity: MAD table vs LM loss, {len(picks)} archs of "
            f"{min(params) / 1e6:.1f}-{max(params) / 1e6:.1f}M non-embedding params (width {args.width}, "
            f"{setting}, seeds {args.seeds})",
            "Spearman rank correlation",
            "rho",
            rho,
            higher_is_better=True,
            spread={"bootstrap_95_low": low, "bootstrap_95_high": high},
            notes="paper: 0.9-0.97 at its scale; 95% CI from 5000 bootstrap resamples of the architectures",
        )
    )
    if args.target_runs is not None:
        target = json.loads(args.target_runs.read_text())
        width = target["settings"]["width"]
        big = [-target["runs"][f"{a}@{width}"]["val_loss"] for a in picks]
        rho, low, high = bootstrap_spearman(neg_loss, big)
        records.append(
            Record(
                "composer",
                f"proxy fidelity: LM proxy (width {args.width}, {min(params) / 1e6:.2f}-"
                f"{max(params) / 1e6:.2f}M non-embedding, {setting}, seeds {args.seeds}) vs the LM runs of "
                f"{args.target_runs.name} (width {width}), {len(picks)} archs",
                "Spearman rank correlation",
                "rho",
                rho,
                higher_is_better=True,
                spread={"bootstrap_95_low": low, "bootstrap_95_high": high},
                notes="the cheap LM itself as the proxy; 95% CI from 5000 bootstrap resamples",
            )
        )
    save(records, {"picks": picks})
    if args.fidelity_only:
        print_table(records, title="composer: proxy fidelity")
        return

    archs = list(table.scores)
    searched = aggregate(archs, [table.scores[a] for a in archs], "N0")
    q_layer = proxy(args.quality_width).shape.layer()
    grown = extrapolate(searched, layers=args.grow, mode="stack", layer=q_layer).arch
    baseline = matched_baselines(non_embedding_params(grown, q_layer), q_layer)["llama"]
    ours = lm(grown, args.quality_width, args.quality_seeds)
    save(records, {"picks": picks, "aggregated": searched, "grown": grown, "baseline": baseline})
    base = lm(baseline, args.quality_width, args.quality_seeds)
    q_setting = f"width {args.quality_width}, {setting}, seeds {args.quality_seeds}"
    deltas = [o["val_loss"] - b["val_loss"] for o, b in zip(ours["runs"], base["runs"], strict=True)]
    records += [
        Record(
            "composer",
            f"quality: N0 {searched} stacked -> {grown} vs {baseline} ({q_setting})",
            "validation loss (mean over seeds)",
            "nats/byte",
            ours["val_loss"],
            "Llama-style AM x k (parameter-matched)",
            base["val_loss"],
            higher_is_better=False,
            spread={
                "ours_params": ours["non_embedding_params"],
                "peer_params": base["non_embedding_params"],
                "per_seed_loss_difference": deltas,
            },
        ),
        Record(
            "composer",
            f"training throughput: {grown} vs {baseline} ({q_setting})",
            "tokens/s",
            "tokens/s",
            ours["tokens_per_s"],
            "Llama-style AM x k",
            base["tokens_per_s"],
            higher_is_better=True,
            notes=f"median over seeds of the training loop's tokens/s on {args.device}; on cpu: a "
            "shared, noisy 2-core machine",
        ),
        Record(
            "composer",
            f"KV cache at {args.seq_len} tokens: {grown} vs {baseline}",
            "KV-cache bytes",
            "bytes",
            ours["kv_cache_bytes"],
            "Llama-style AM x k",
            base["kv_cache_bytes"],
            higher_is_better=False,
        ),
    ]
    print_table(records, title="composer: fidelity and quality")
    save(records, {"picks": picks, "aggregated": searched, "grown": grown, "baseline": baseline})


if __name__ == "__main__":
    main()
