"""The paper's claims checked by ``frugal reproduce``: extrapolation to 1B, efficiency, search, proxies.

:func:`reproductions` lists composer's checks for ``frugal reproduce --quick|--full``; quick mode
runs the engine comparisons with fewer seeds and the CPU timings at a smaller width (each record's
notes say so). Proxy fidelity and the BO ablation take hours or a GPU: they are answered with the
committed results files. ``frugal composer reproduce`` prints the extrapolation checks and compares
the engines on the built-in table.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from frugalml.common.report import Record
from frugalml.common.reproduction import Reproduction, verdict

# (searched block, mode, the paper's layers, the paper's attention layers) at Llama-3.2-1B size
PAPER = (("AAMMMM", "stack", 27, 9), ("AAMMMMMAAMMMAMMM", "stretch", 29, 10))
SOURCE = "Acun et al., arXiv 2510.00379"
QUICK_SEEDS = 8  # aggregator searches in quick mode


def extrapolation_checks() -> list[str]:
    """One line per paper model: what we grow it to and whether it matches the paper.

    Examples
    --------
    >>> extrapolation_checks()[0].endswith("27 layers, 9 attention (matches the paper's 27 / 9)")
    True
    """
    from frugalml.composer.extrapolation import extrapolate

    lines = []
    for source, mode, layers, attention in PAPER:
        e = extrapolate(source, mode=mode, target="llama3.2-1b")
        ok = "matches" if (e.layers, e.attention_layers) == (layers, attention) else "DIFFERS from"
        lines.append(
            f"{e.source} -> {e.arch}: {e.layers} layers, {e.attention_layers} attention "
            f"({ok} the paper's {layers} / {attention})"
        )
    return lines


def reproduce(json_out: Path | None, plot: Path | None, quiet: bool) -> list[Record]:
    """Print the extrapolation checks, then compare the engines on the built-in table (20 seeds)."""
    from frugalml.composer.bench.engines import PEERS, compare_report

    for line in extrapolation_checks():
        print(line)
    return compare_report(PEERS, 20, None, json_out, plot, quiet)


def claimed(record: Record, **fields: Any) -> Record:
    """``record`` with the claim fields set (``verdict`` computed when ``paper_value`` is given)."""
    if "verdict" not in fields and fields.get("paper_value") is not None:
        fields["verdict"] = verdict(
            record.ours if "ours" not in fields else fields["ours"],
            fields["paper_value"],
            higher_is_better=record.higher_is_better,
        )
    return replace(record, **fields)


def extrapolation_records(mode: str, folder: Path) -> list[Record]:
    """Layers, attention layers and the analytic KV cache / FLOPs of the paper's two models at 1B."""
    from frugalml.composer.extrapolation import TARGETS, extrapolate
    from frugalml.composer.model import HybridConfig, flops_per_token, kv_cache_bytes

    target, seq = TARGETS["llama3.2-1b"], 2048
    base = HybridConfig(target.reference, target.vocab_size, target.layer)
    command = "frugal composer extrapolate --arch AAMMMM --target llama3.2-1b --mode stack"
    out = []
    for source, how, layers, attention in PAPER:
        e = extrapolate(source, mode=how, target=target.name)
        cfg = HybridConfig(e.arch, target.vocab_size, target.layer)
        kv = kv_cache_bytes(base, seq) / kv_cache_bytes(cfg, seq)
        flops = flops_per_token(base, seq) / flops_per_token(cfg, seq)
        name = {"stack": "Composite-Stacked", "stretch": "Composite-Stretched"}[how]
        common = dict(
            paper_source="Section 4 (extrapolation) and Table 2",
            command=command.replace("AAMMMM", source).replace("stack", how),
            notes=f"{e.arch}; non-embedding parameters {e.non_embedding_params:,} vs Llama-3.2-1B "
            f"{e.reference_params:,}; analytic, at the 1B widths (2048, 32 heads, 8 KV heads)",
        )
        rec = Record("composer", f"{how} {source} to Llama-3.2-1B size", "layers", "layers", e.layers)
        out.append(
            claimed(
                rec,
                claim=f"composer/{how}-1b-layers",
                paper_statement=f"{name} {source} grows to {layers} layers with {attention} attention "
                "layers at 1B",
                paper_value=float(layers),
                verdict="reproduced"
                if (e.layers, e.attention_layers) == (layers, attention)
                else "not reproduced",
                reason=f"{e.layers} layers, {e.attention_layers} of them attention "
                f"(paper: {layers} / {attention})",
                **common,
            )
        )
        rec = Record(
            "composer",
            f"KV cache at {seq} tokens: {name} vs Llama-3.2-1B (AM x 16)",
            "KV cache smaller by",
            "x",
            kv,
            higher_is_better=True,
            spread={"training_flops_ratio_llama_over_ours": flops},
        )
        out.append(
            claimed(
                rec,
                claim=f"composer/{how}-1b-kv-cache",
                paper_statement="1.69x smaller KV cache than Llama 3.2 (fewer attention layers)",
                paper_value=1.69,
                reason=f"{e.attention_layers} attention layers instead of 16 give {kv:.2f}x; the paper's "
                f"1.69x is the mean of its two models (16/9 and 16/10); analytic FLOPs per token "
                f"at {seq} tokens are {flops:.2f}x Llama's, so its 1.25x throughput is a kernel effect",
                **common,
            )
        )
    return out


@dataclass(frozen=True)
class Comparison:
    """One engine comparison of the results index: table, engines, seeds and our BO's settings."""

    name: str  # the results file's stem
    table: str
    engines: str
    first_seed: int
    seeds: int  # full mode
    quick: int  # quick mode
    bo: dict[str, Any] = field(default_factory=dict)

    def command(self) -> str:
        flags = {"kernel": "--bo-kernel", "acquisition": "--acquisition", "initial": "--initial"}
        bo = "".join(f" {flags[k]} {v}" for k, v in self.bo.items())
        return (
            f"frugal composer compare --table {self.table} --engines {self.engines} --seeds {self.seeds} "
            f"--first-seed {self.first_seed}{bo} --json benchmarks/results/composer/{self.name}.json "
            f"--plot benchmarks/results/composer/{self.name}.png"
        )


TUNED = {"kernel": "mixed", "acquisition": "thompson", "initial": 8}
COMPARISONS = (
    Comparison("search-efficiency", "AM_6", "bo,bo-hamming,evolution,random,tpe", 0, 40, 8),
    Comparison("fresh-am-6", "AM_6", "bo,tpe,random,evolution", 1000, 100, 20),
    Comparison("fresh-am-6-5seeds", "AM_6_5seeds", "bo,tpe,random,evolution", 1000, 100, 20),
    Comparison("fresh-am-6-5seeds-tuned", "AM_6_5seeds", "bo,tpe,random,evolution", 2000, 100, 8, TUNED),
    Comparison("fresh-am-6-5seeds-default-2000", "AM_6_5seeds", "bo,random", 2000, 100, 8),
    Comparison("fresh-am-6-tuned-on-5seeds", "AM_6", "bo,random,tpe", 3000, 100, 8, TUNED),
    Comparison("fresh-alcsm-3", "ALCSM_3", "bo,random,tpe,evolution", 1000, 100, 20),
    # tuned on engine seeds 0-99 (bo-ablation-alcsm-3), accepted on seeds 100-199
    Comparison(
        "accept-alcsm-3-tuned",
        "ALCSM_3",
        "bo,random,tpe,evolution",
        100,
        100,
        20,
        {"kernel": "string", "acquisition": "log-ei", "initial": 8},
    ),
    # the same tuned BO on the table rebuilt with the 4-task proxy, seeds 100-199 (never tuned on)
    Comparison(
        "accept-alcsm-3-4tasks",
        "ALCSM_3_4tasks",
        "bo,random,tpe,evolution",
        100,
        100,
        8,
        {"kernel": "string", "acquisition": "log-ei", "initial": 8},
    ),
    # the same tuned BO on the table built on the byte-level LM proxy, seeds 100-199 (never tuned on)
    Comparison(
        "accept-alcsm-3-lm",
        "ALCSM_3_lm",
        "bo,random,tpe,evolution",
        100,
        100,
        8,
        {"kernel": "string", "acquisition": "log-ei", "initial": 8},
    ),
    # the recommended table (byte-level LM proxy, 300 steps): all five engines, seeds 100-199
    Comparison(
        "accept-alcsm-3-lm300",
        "ALCSM_3_lm300",
        "bo,random,tpe,evolution,botorch",
        100,
        100,
        2,
        {"kernel": "string", "acquisition": "log-ei", "initial": 8},
    ),
)


# seconds of each comparison in quick mode, measured on 2 cores shared with other work (load 5)
QUICK_COST = {
    "search-efficiency": 20.0,
    "fresh-am-6": 12.0,
    "fresh-am-6-5seeds": 10.0,
    "fresh-am-6-5seeds-tuned": 7.0,
    "fresh-am-6-5seeds-default-2000": 4.0,
    "fresh-am-6-tuned-on-5seeds": 6.0,
    "fresh-alcsm-3": 16.0,
    "accept-alcsm-3-tuned": 12.0,
    "accept-alcsm-3-4tasks": 6.0,
    "accept-alcsm-3-lm": 4.0,
    "accept-alcsm-3-lm300": 5.0,  # 3.6 s measured at load 0.9 (BoTorch is most of it)
}


def engine_verdict(low: float, high: float) -> str:
    """ "reproduced" when our BO needs fewer evaluations with 95% confidence, "not reproduced" when
    it needs more, "" (measured, inconclusive at this many seeds) otherwise."""
    return "reproduced" if low > 1 else "not reproduced" if high < 1 else ""


def comparison_records(c: Comparison, mode: str, folder: Path) -> list[Record]:
    """Our GP-BO against each peer engine on ``c.table``: evaluations to the top-1, with a verdict."""
    from frugalml.composer.bench.engines import compare_report

    seeds = c.seeds if mode == "full" else c.quick
    with redirect_stdout(io.StringIO()):
        recs = compare_report(
            c.engines, seeds, c.table, None, folder / f"{c.name}.png", True, c.first_seed, c.bo
        )
    scale = "" if mode == "full" else f"quick mode: {seeds} engine seeds instead of {c.seeds}; "
    out = []
    for r in recs:
        low, high = r.spread["ratio_ci95"]
        ratio = r.ratio or 0.0
        v = engine_verdict(low, high)
        out.append(
            claimed(
                r,
                claim=f"composer/bo-vs-{r.peer.replace(' ', '-').lower() if r.peer else 'peer'}-{c.name}",
                paper_statement="GP Bayesian optimisation (Ax/BoTorch, qLogNEI) searches the hybrid space "
                "efficiently; the paper gives no count against random search or TPE",
                paper_source="Section 3 (HNAS engine)",
                verdict=v,
                reason=f"median {r.ours:g} evaluations to the top-1 vs {r.peer} {r.peer_value:g} over "
                f"{seeds} seeds: {ratio:.2f}x (95% CI {low:.2f}-{high:.2f}"
                + {"reproduced": ", above 1)", "not reproduced": ", below 1)"}.get(v, ", inconclusive)"),
                command=c.command(),
                notes=f"{scale}{r.notes}",
            )
        )
    if c.name == "search-efficiency":
        out += aggregator_check(mode)
    return out


def aggregator_check(mode: str) -> list[Record]:
    """The aggregators (N0, N1, Nall) against best-single on 16-evaluation BO searches of AM_6."""
    from frugalml.composer.bench.aggregators import aggregator_records

    seeds = 20 if mode == "full" else QUICK_SEEDS
    out = []
    for r in aggregator_records(seeds=seeds):
        if r.workload.startswith("aggregator ablation: best-single"):
            continue
        out.append(
            claimed(
                r,
                claim=f"composer/aggregator-{r.workload.split(': ')[1].split()[0].lower()}",
                paper_statement="aggregating the top k-means cluster (k = 5) layer by layer loses nothing "
                "against the best single result; N_0 (per-layer majority) was the best aggregator",
                paper_source="Section 3 (aggregator), ablation",
                verdict="reproduced" if (r.ratio or 0) >= 0.99 else "not reproduced",
                reason=f"median table score {r.ours:.3f} vs best-single {r.peer_value:.3f} "
                f"({r.ratio:.2f}x) over {seeds} searches",
                command="python benchmarks/composer/aggregators.py",
                notes=("" if mode == "full" else f"quick mode: {seeds} searches instead of 20; ") + r.notes,
            )
        )
    return out


TOP1 = "top1_stability"
# the 125-architecture tables whose seed-to-seed agreement is reported, with what they cost to build
TABLE_COST = {
    "ALCSM_3": "22 CPU-minutes, 2-task MAD proxy",
    "ALCSM_3_4tasks": "35 CPU-minutes, 4-task MAD proxy",
    "ALCSM_3_lm": "20 CPU-minutes, byte-level LM proxy (built after the MAD tables' fidelity was seen)",
    "ALCSM_3_lm300": "57 CPU-minutes, byte-level LM proxy at 300 steps (chosen on the validation picks)",
}


def agreement_check(mode: str, folder: Path) -> list[Record]:
    """Seed-to-seed agreement of the built-in tables (the ceiling of any proxy's fidelity)."""
    from frugalml.composer.bench.table_agreement import agreement_records, agreement_summary, read_table_doc

    resamples = 10_000 if mode == "full" else 2_000
    summary = agreement_summary("AM_6_5seeds", "AM_6", resamples)
    recs = agreement_records(summary, len(read_table_doc("AM_6_5seeds")["scores"]), resamples)
    for table, cost in TABLE_COST.items():
        a = read_table_doc(table)["agreement"]
        for metric, key in (
            ("mean Spearman rho", "pairwise_rho"),
            ("P(top-1 stays top-1)", "top1_stability"),
        ):
            recs.append(
                Record(
                    "composer",
                    f"seed-to-seed agreement of {table} ({len(a['seeds'])} seeds, 125 archs)",
                    metric,
                    "rho" if "rho" in metric else "fraction",
                    float(a[key]),
                    higher_is_better=True,
                    spread={
                        "top_half_pairwise_rho": a["top_half_pairwise_rho"],
                        "split_half": a["split_half_rho"],
                    },
                    notes=f"stored in the built-in table when it was built ({cost})",
                )
            )
    statement = (
        "MAD synthetic tasks rank architectures as the 1B models do (Spearman 0.97 for 6-layer, 0.9 for "
        "16-layer); a proxy's seed-to-seed agreement bounds any such correlation from above"
    )
    out = []
    for r in recs:
        rho = r.metric.endswith("Spearman rho")
        out.append(
            claimed(
                r,
                claim="composer/proxy-reliability-"
                + next((t.lower().replace("_", "-") for t in TABLE_COST if f"{t} " in r.workload), "am-6")
                + ("" if rho else "-top1"),
                paper_statement=statement,
                paper_source="Section 4 (evaluator), proxy study",
                verdict="",
                reason=f"{r.metric} {r.ours:.2f} (target: 0.8 for one seed"
                + (", the paper's fidelity 0.97 cannot exceed it)" if rho else ", top-1 stable in 80%)"),
                command="python benchmarks/composer/table_agreement.py",
            )
        )
    return out


def efficiency_check(mode: str, folder: Path) -> list[Record]:
    """Measured CPU training throughput, decoding time and KV cache of a searched arch vs AM x k."""
    from frugalml.composer.bench.throughput import ThroughputSettings, throughput_records

    runs = Path(__file__).parents[4] / "benchmarks/results/composer/fidelity-gpu-runs.json"
    s = (
        ThroughputSettings.from_runs(runs)
        if runs.is_file()
        else ThroughputSettings("MAAAAMMAAAAM", "AMAMAMAMAMAM")
    )
    if mode != "full":
        s = replace(s, width=128, batch=4, seq_len=64, new=16, rounds=3)
    paper = (
        (1.25, "1.25x training throughput", "training"),
        (1.33, "1.33x lower inference latency", "decoding"),
        (1.69, "1.69x smaller KV cache", "kv-cache"),
    )
    out = []
    for r, (value, statement, key) in zip(throughput_records(s), paper, strict=True):
        ratio = float(r.ratio or 0.0)
        rec = Record(
            "composer",
            r.workload,
            f"{r.metric}: {r.peer} / ours" if not r.higher_is_better else f"{r.metric}: ours / {r.peer}",
            "x",
            ratio,
            higher_is_better=True,
            spread={"ours": r.ours, "peer": r.peer_value, "unit": r.unit, **r.spread},
        )
        out.append(
            claimed(
                rec,
                claim=f"composer/cpu-{key}",
                paper_statement=statement + " than Llama 3.2 at 1B (GPU)",
                paper_value=value,
                paper_source="Section 5 (efficiency)",
                reason=f"{ratio:.2f}x measured on CPU at width {s.width}, {s.ours} vs {s.peer} "
                f"({'below 1: ours is worse' if ratio < 1 else 'ours is better'}; our searched model is "
                "attention-heavy, the paper's are not; the paper's figure is at 1B on a GPU)",
                command="python benchmarks/composer/throughput.py",
                notes=(
                    "" if mode == "full" else "quick mode: width 128, batch 4 x 64, 16 new tokens, 3 rounds; "
                )
                + r.notes,
            )
        )
    return out


def decode_check(mode: str, folder: Path) -> list[Record]:
    """Incremental decoding vs recomputing the prefix, and real state bytes vs the analytic count."""
    from frugalml.composer.bench.decode import ARCHS, DecodeSettings, decode_records

    s = DecodeSettings() if mode == "full" else DecodeSettings(width=32, prompt=64, new=16, rounds=3)
    out = []
    for r in decode_records(list(ARCHS), s):
        timing = r.metric == "time per token"
        out.append(
            claimed(
                r,
                claim="composer/incremental-decoding" if timing else "composer/state-bytes",
                paper_statement="not a claim of the paper: our decoder keeps KV, recurrent and conv state",
                verdict="",
                reason=f"{r.workload}: {r.ratio:.2f}x"
                if timing
                else f"{r.ours} bytes measured, {r.peer_value} analytic",
                command="python benchmarks/composer/decode.py",
                notes=("" if mode == "full" else "quick mode: width 32, prompt 64, 16 new, 3 rounds; ")
                + r.notes,
            )
        )
    return out


def ablation_check(table: str):
    """The BO ablation (every kernel x acquisition x initial design, seeds 0-39) on ``table``."""

    def run(mode: str, folder: Path) -> list[Record]:
        from frugalml.common.threads import usable_cores
        from frugalml.composer.bench.bo_ablation import (
            ablation_records,
            default_variants,
            run_ablation,
            summarise,
        )

        seeds = list(range(40))
        with redirect_stdout(io.StringIO()):
            found = run_ablation(default_variants(), seeds, table, max(1, usable_cores()))
        return ablation_records(summarise(found, seeds), seeds, table)

    return run


# results answered from the committed files (GPU runs, hours of CPU training, projections)
STORED = (
    "proxy-study",
    "proxy-study-top-half",
    "fidelity-gpu",
    "fidelity-lmproxy",
    "fidelity-mad",
    "bo-ablation-alcsm-3",
    "botorch-alcsm-3",
    "botorch-alcsm-3-4tasks",
    "top1-projection-alcsm-3-4tasks",
    "proxy-validation-16",
    "heldout-test-16",
    "heldout-test-16-tables",
)


def reproductions() -> list[Reproduction]:
    """Composer's checks for ``frugal reproduce`` (quick: 57 s on 2 cores at load 2.7)."""

    def compare_run(c: Comparison):
        return lambda mode, folder: comparison_records(c, mode, folder)

    checks = [
        Reproduction("extrapolation-1b", extrapolation_records, 3.0),
        Reproduction("table-agreement", agreement_check, 2.0),
        Reproduction("throughput", efficiency_check, 6.0),
        Reproduction("decode", decode_check, 4.0),
    ]
    checks += [Reproduction(c.name, compare_run(c), QUICK_COST[c.name]) for c in COMPARISONS]
    checks += [
        Reproduction(
            f"bo-ablation-{table.lower().replace('_', '-')}",
            ablation_check(table),
            0.0,
            modes=("full",),
            stored=f"composer/bo-ablation-{table.lower().replace('_', '-')}.json",
        )
        for table in ("AM_6", "AM_6_5seeds")
    ]
    checks += [
        Reproduction(name, _stored_only, 0.0, modes=(), stored=f"composer/{name}.json") for name in STORED
    ]
    return checks


def _stored_only(mode: str, folder: Path) -> list[Record]:
    """Never called: these checks are answered with their stored results files."""
    raise NotImplementedError("answered with the stored results file")
