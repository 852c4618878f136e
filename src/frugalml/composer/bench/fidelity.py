"""Proxy fidelity and the quality comparison, on the byte-level LM proxy (stdlib corpus by default).

1. Fidelity: Spearman rank correlation (with a bootstrap CI over architectures) between the
   tabular MAD-proxy scores and the LM validation loss of the same architectures, picked evenly
   over the table's ranking among those whose size lies in ``min_params..max_params``.
2. Quality: the N0-aggregated architecture of the table's top cluster, stacked to ``grow``
   layers at ``quality_width``, against the parameter-matched Llama-style (AM) x k baseline at
   equal tokens and seeds; with tokens/s and KV-cache ratios.

Every LM run is stored in a SQLite result cache as soon as it finishes and the JSON results are
rewritten after each run, so a killed run resumes where it stopped (run the same command again).
``picks`` fixes the architectures and ``target_runs`` also correlates these LM runs with the runs
of a larger setting (a small LM as the proxy).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from frugalml.common import env
from frugalml.common.errors import InvalidInputError
from frugalml.common.files import atomic_write
from frugalml.common.parsing import comma_list
from frugalml.common.report import Record, print_table, write_json
from frugalml.common.threads import torch_threads
from frugalml.composer.aggregation import aggregate
from frugalml.composer.cache import ResultCache
from frugalml.composer.evaluator import Evaluator
from frugalml.composer.extrapolation import extrapolate, matched_baselines
from frugalml.composer.model import non_embedding_params
from frugalml.composer.proxies import LMProxy, ModelShape, TrainConfig
from frugalml.composer.tabular import load_table

DEFAULT_CACHE = Path.home() / ".cache" / "frugalml" / "composer" / "fidelity.sqlite"
RHO = "Spearman rank correlation"


def bootstrap_spearman(
    x: list[float], y: list[float], rounds: int = 5000, seed: int = 0
) -> tuple[float, float, float]:
    """Spearman rho of (x, y) and its 95% percentile bootstrap interval (resampling pairs).

    Examples
    --------
    >>> rho, low, high = bootstrap_spearman([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], rounds=200)
    >>> round(rho, 6), low <= rho <= high
    (1.0, True)
    """
    xs, ys = np.asarray(x), np.asarray(y)
    gen = np.random.default_rng(seed)
    stats = []
    for _ in range(rounds):
        idx = gen.integers(0, len(xs), len(xs))
        if len(set(xs[idx])) > 2 and len(set(ys[idx])) > 2:
            stats.append(spearmanr(xs[idx], ys[idx]).statistic)
    low, high = np.nanpercentile(stats, [2.5, 97.5]) if stats else (float("nan"), float("nan"))
    return float(spearmanr(xs, ys).statistic), float(low), float(high)


def interleaved(n: int) -> list[int]:
    """0..n-1 in bit-reversed order, so that any prefix is spread over the whole range (a run
    stopped part-way has a stratified sample of the ranking).

    Examples
    --------
    >>> interleaved(8)
    [0, 4, 2, 6, 1, 5, 3, 7]
    >>> sorted(interleaved(5))
    [0, 1, 2, 3, 4]
    """
    bits = max(1, (n - 1).bit_length())
    return sorted(range(n), key=lambda i: int(format(i, f"0{bits}b")[::-1], 2))


def rho_record(workload: str, rho: tuple[float, float, float], notes: str) -> Record:
    """A Spearman-rho record with its bootstrap interval."""
    value, low, high = rho
    return Record(
        "composer",
        workload,
        RHO,
        "rho",
        value,
        higher_is_better=True,
        spread={"bootstrap_95_low": low, "bootstrap_95_high": high},
        notes=notes,
    )


@dataclass
class FidelitySettings:
    """What the fidelity and quality runs train, where they are cached and the results' name."""

    width: int = 272
    steps: int = 800
    batch: int = 16
    seq_len: int = 128
    lr: float = 2e-3
    archs: int = 10
    min_params: float = 1.99e6
    max_params: float = 5e6
    seeds: list[int] = field(default_factory=lambda: [0])
    quality_width: int = 256
    grow: int = 12
    quality_seeds: list[int] = field(default_factory=lambda: [0, 1])
    corpus: str = "stdlib"
    threads: int = 2
    device: str = "cpu"
    cache: Path = DEFAULT_CACHE
    fidelity_only: bool = False
    picks: str | None = None
    target_runs: Path | None = None
    out: str = "fidelity-2m"
    table: str = "AM_6"  # the tabular benchmark whose MAD scores are the proxy
    stack: int = 1  # each pick is trained stacked this many times (the larger model of the study)

    def describe(self) -> str:
        return (
            f"byte LM on {self.corpus}, {self.steps} steps x {self.batch} x {self.seq_len} tokens, "
            f"lr {self.lr}, {self.device}"
        )


class FidelityStudy:
    """The LM runs of one fidelity (and quality) study, saved after each run under ``results``."""

    def __init__(self, settings: FidelitySettings, results: Path):
        self.s = settings
        self.results = Path(results)
        if not 1 <= settings.stack <= 64:
            raise InvalidInputError(f"stack must be between 1 and 64, got {settings.stack}")
        self.table = load_table(settings.table)
        self.cache = ResultCache(settings.cache)
        self.train = TrainConfig(
            steps=settings.steps,
            batch_size=settings.batch,
            learning_rates=(settings.lr,),
            threads=settings.threads,
        )
        self.runs: dict[str, dict[str, Any]] = {}
        self.records: list[Record] = []
        self.extra: dict[str, Any] = {}

    def proxy(self, width: int) -> LMProxy:
        s = self.s
        shape = ModelShape(width=width, heads=4, kv_heads=2, mlp_ratio=4.0, window=s.seq_len // 4)
        return LMProxy(
            corpus=s.corpus,
            max_bytes=2_000_000,
            seq_len=s.seq_len,
            shape=shape,
            train=self.train,
            val_windows=256,
            device=s.device,
        )

    def picks(self) -> list[str]:
        """The given architectures, or ``archs`` spread evenly over the table's ranking in the size range."""
        if self.s.picks is not None:
            return comma_list(self.s.picks, name="architecture")
        layer = self.proxy(self.s.width).shape.layer()
        in_range = [
            a
            for a in sorted(self.table.scores, key=self.table.scores.__getitem__, reverse=True)
            if self.s.min_params <= non_embedding_params(a * self.s.stack, layer) <= self.s.max_params
        ]
        spread = [in_range[int(i)] for i in np.linspace(0, len(in_range) - 1, self.s.archs).round()]
        return [spread[i] for i in interleaved(len(spread))]

    def lm(self, arch: str, width: int, seeds: list[int]) -> dict[str, Any]:
        """Train (or read from the cache) ``arch`` at ``width`` for each seed; the summary of its runs."""
        evaluator = Evaluator(self.proxy(width), self.cache, seeds=seeds)
        per_seed = []
        for seed in seeds:
            evaluator.seeds = (seed,)
            evaluator.scores([arch])
            hit = self.cache.get(arch, "lm", evaluator.key, seed)
            assert hit is not None  # just evaluated
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
        self.runs[f"{arch}@{width}"] = r
        print(
            f"{arch} (width {width}): val loss {r['val_loss']:.4f}, {r['tokens_per_s']:.0f} tok/s, "
            f"{r['non_embedding_params'] / 1e6:.2f}M non-embedding",
            flush=True,
        )
        return r

    def save(self) -> None:
        """Rewrite ``<out>.json`` (the records so far) and ``<out>-runs.json`` (every run and setting)."""
        write_json(self.records, self.results / f"{self.s.out}.json")
        with atomic_write(self.results / f"{self.s.out}-runs.json", "w") as f:
            doc = {"settings": asdict(self.s), "runs": self.runs, **self.extra}
            json.dump(doc, f, indent=1, default=str)

    def fidelity(self, picks: list[str]) -> list[float]:
        """Run the picks (each stacked ``stack`` times), rewriting the MAD-table-vs-LM records over the
        picks finished so far after each one (from 4 on); minus the LM losses of the picks."""
        s = self.s
        self.extra = {"picks": picks, "table": s.table, "stack": s.stack}
        done: list[str] = []
        for arch in picks:
            self.lm(arch * s.stack, s.width, s.seeds)
            done.append(arch)
            if len(done) >= 4:
                self.records = self._fidelity_records(done, len(picks))
            self.save()
        neg_loss = [-self.runs[f"{a * s.stack}@{s.width}"]["val_loss"] for a in picks]
        if s.target_runs is not None:
            params = [self.runs[f"{a * s.stack}@{s.width}"]["non_embedding_params"] for a in picks]
            self.records.append(self._against_target(picks, neg_loss, params, s.target_runs))
        return neg_loss

    def _fidelity_records(self, done: list[str], planned: int) -> list[Record]:
        """The MAD table vs the LM losses of ``done``, and (with two or more seeds) the LM's own
        seed-to-seed agreement: the noise ceiling of any proxy's rank correlation with it."""
        s = self.s
        runs = [self.runs[f"{a * s.stack}@{s.width}"] for a in done]
        params = [r["non_embedding_params"] for r in runs]
        seconds = sum(p["seconds"] for r in runs for p in r["runs"])
        grown = f", stacked x{s.stack}" if s.stack > 1 else ""
        what = (
            f"{len(done)} of {planned} archs of {s.table}{grown}, {min(params) / 1e6:.2f}-"
            f"{max(params) / 1e6:.2f}M non-embedding params (width {s.width}, {s.describe()}, "
            f"seeds {s.seeds})"
        )
        cost = f"; LM training {seconds / 3600:.2f} h wall on {env.machine()}"
        records = [
            rho_record(
                f"proxy fidelity: MAD table vs LM loss, {what}",
                bootstrap_spearman([self.table.scores[a] for a in done], [-r["val_loss"] for r in runs]),
                "paper: 0.9-0.97 at its scale; 95% CI from 5000 bootstrap resamples of the architectures"
                + cost,
            )
        ]
        if len(s.seeds) >= 2:
            first, second = ([-r["runs"][i]["val_loss"] for r in runs] for i in (0, 1))
            records.append(
                rho_record(
                    f"noise ceiling: LM seed {s.seeds[0]} vs seed {s.seeds[1]}, {what}",
                    bootstrap_spearman(first, second),
                    "the larger models' own seed-to-seed agreement; a proxy cannot be expected to rank "
                    "them better than one seed ranks the other" + cost,
                )
            )
        return records

    def _against_target(
        self, picks: list[str], neg_loss: list[float], params: list[float], target_runs: Path
    ) -> Record:
        """These (small) LM runs as the proxy of the larger LM runs in ``target_runs``."""
        s = self.s
        target = json.loads(Path(target_runs).read_text())
        width = target["settings"]["width"]
        big = [-target["runs"][f"{a}@{width}"]["val_loss"] for a in picks]
        return rho_record(
            f"proxy fidelity: LM proxy (width {s.width}, {min(params) / 1e6:.2f}-"
            f"{max(params) / 1e6:.2f}M non-embedding, {s.describe()}, seeds {s.seeds}) vs the LM runs of "
            f"{Path(target_runs).name} (width {width}), {len(picks)} archs",
            bootstrap_spearman(neg_loss, big),
            "the cheap LM itself as the proxy; 95% CI from 5000 bootstrap resamples",
        )

    def quality(self) -> None:
        """The aggregated, stacked architecture against its parameter-matched AM x k baseline."""
        s = self.s
        archs = list(self.table.scores)
        searched = aggregate(archs, [self.table.scores[a] for a in archs], "N0")
        q_layer = self.proxy(s.quality_width).shape.layer()
        grown = extrapolate(searched, layers=s.grow, mode="stack", layer=q_layer).arch
        baseline = matched_baselines(non_embedding_params(grown, q_layer), q_layer)["llama"]
        ours = self.lm(grown, s.quality_width, s.quality_seeds)
        self.extra.update(aggregated=searched, grown=grown, baseline=baseline)
        self.save()
        base = self.lm(baseline, s.quality_width, s.quality_seeds)
        self.records += quality_records(s, QualityPair(searched, grown, baseline, ours, base))


@dataclass(frozen=True)
class QualityPair:
    """The searched block, what it was grown to, its baseline and both LM summaries."""

    searched: str
    grown: str
    baseline: str
    ours: dict[str, Any]
    base: dict[str, Any]


def machine_note(device: str) -> str:
    """What the throughput was measured on: the device, and on CPU the machine's own facts."""
    return (
        f"median over seeds of the training loop's tokens/s on {device}; on cpu: {env.machine()}, "
        "timings include other processes' load"
    )


def quality_records(s: FidelitySettings, q: QualityPair) -> list[Record]:
    """Validation loss, training throughput and KV cache of the grown architecture vs its baseline."""
    q_setting = f"width {s.quality_width}, {s.describe()}, seeds {s.quality_seeds}"
    deltas = [o["val_loss"] - b["val_loss"] for o, b in zip(q.ours["runs"], q.base["runs"], strict=True)]
    return [
        Record(
            "composer",
            f"quality: N0 {q.searched} stacked -> {q.grown} vs {q.baseline} ({q_setting})",
            "validation loss (mean over seeds)",
            "nats/byte",
            q.ours["val_loss"],
            "Llama-style AM x k (parameter-matched)",
            q.base["val_loss"],
            higher_is_better=False,
            spread={
                "ours_params": q.ours["non_embedding_params"],
                "peer_params": q.base["non_embedding_params"],
                "per_seed_loss_difference": deltas,
            },
        ),
        Record(
            "composer",
            f"training throughput: {q.grown} vs {q.baseline} ({q_setting})",
            "tokens/s",
            "tokens/s",
            q.ours["tokens_per_s"],
            "Llama-style AM x k",
            q.base["tokens_per_s"],
            higher_is_better=True,
            notes=machine_note(s.device),
        ),
        Record(
            "composer",
            f"KV cache at {s.seq_len} tokens: {q.grown} vs {q.baseline}",
            "KV-cache bytes",
            "bytes",
            q.ours["kv_cache_bytes"],
            "Llama-style AM x k",
            q.base["kv_cache_bytes"],
            higher_is_better=False,
        ),
    ]


def run_fidelity(settings: FidelitySettings, results: Path) -> list[Record]:
    """The fidelity study (and, unless ``fidelity_only``, the quality comparison); returns its records."""
    study = FidelityStudy(settings, results)
    with torch_threads(settings.threads):
        study.fidelity(study.picks())
        study.save()
        if settings.fidelity_only:
            print_table(study.records, title="composer: proxy fidelity")
            return study.records
        study.quality()
    print_table(study.records, title="composer: fidelity and quality")
    study.save()
    return study.records
