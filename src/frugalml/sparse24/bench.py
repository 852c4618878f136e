"""Benchmarks behind ``frugal sparse24 quality`` and ``speed``: loss vs dense at equal steps, mask
costs vs torch.topk, emulation overhead vs plain dense torch, analytic FLOPs (GPU ones: :mod:`.gpubench`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from frugalml.common.report import Record, new_figure, save_plot
from frugalml.common.timing import compare
from frugalml.sparse24.backends import vnm_gather_matmul
from frugalml.sparse24.layers import SquaredReLUFFN
from frugalml.sparse24.masks import (
    VNM,
    mask_24,
    soft_threshold_24,
    transposable_mask_24,
    vnm_columns,
    vnm_mask,
)
from frugalml.sparse24.model import LlamaConfig
from frugalml.sparse24.swap import sparsify_ffn
from frugalml.sparse24.train import TrainConfig, check_runnable, train

SYSTEM = "sparse24"
QUALITY_ARMS: dict[str, dict[str, Any]] = {
    "dense": {"weights": None, "activations": None},
    "sparse->dense": {},
    "sparse->dense from master": {"dense_from": "master"},
    "always-sparse": {"sparse_fraction": 1.0},
    "weights-only": {"activations": None},
    "activations-only": {"weights": None},
    "warmup->sparse->dense": {"warmup_fraction": 0.1, "sparse_fraction": 0.7},
    "warmup->sparse80->dense": {"warmup_fraction": 0.1, "sparse_fraction": 0.8},
    "sparse->dense 95/5 split": {"dense_features": 0.05},
    "sparse->dense token permutation": {"token_permutation": True},
    "sparse->dense masked decay": {"masked_decay": 2e-4},
    "sparse->dense masked decay 2e-5": {"masked_decay": 2e-5},
    "sparse->dense masked decay 2e-6": {"masked_decay": 2e-6},
}
FFN_SHAPES = {"llama-1b": (2048, 8192), "llama-7b": (4096, 11008)}


def run_arm(
    arm: str, model_config: LlamaConfig, train_config: TrainConfig, corpus: bytes, quiet: bool = False
) -> dict[str, Any]:
    """Train one quality arm; return its history, final validation loss and throughput."""
    result = train(model_config, replace(train_config, **QUALITY_ARMS[arm]), corpus, quiet=quiet, label=arm)
    return {
        "history": result.history,
        "final_val_loss": result.final_val_loss,
        "tokens_per_s": result.tokens_per_second,
        "parameters": result.parameters,
    }


def _is_goal_arm(arm: str, train_config: TrainConfig) -> bool:
    """Whether ``arm`` is one the quality goal speaks of: at least 80% sparse steps, then dense ones,
    both sparsities on."""
    overrides = QUALITY_ARMS[arm]
    fractions = {"sparse_fraction": train_config.sparse_fraction, **overrides}
    return (
        fractions["sparse_fraction"] >= 0.8
        and fractions.get("warmup_fraction", 0) + fractions["sparse_fraction"] < 1
        and "weights" not in overrides
        and "activations" not in overrides
    )


def _goal_verdict(gap: float) -> str:
    return f"; goal (within 2% of dense) {'MET' if gap <= 0.02 else 'NOT met'}: gap {gap:+.2%}"


def _shape(model_config: LlamaConfig, train_config: TrainConfig) -> str:
    return (
        f"{model_config.n_layers}x{model_config.dim}/{model_config.hidden} {model_config.ffn}, "
        f"{train_config.steps} steps of {train_config.batch_size}x{train_config.seq_len} bytes"
    )


def quality_records(
    runs: dict[str, dict[str, Any]], model_config: LlamaConfig, train_config: TrainConfig, label: str = ""
) -> list[Record]:
    """One record per arm: final validation loss vs the dense arm (ratio = dense / arm; 0.98 = 2% worse).
    ``label`` follows the arm's name in each workload (e.g. ``", seed 3"``)."""
    shape = _shape(model_config, train_config)
    dense = runs.get("dense")
    records = []
    for arm, run in runs.items():
        compared = dense is not None and arm != "dense"
        goal = ""
        if compared and _is_goal_arm(arm, train_config):
            goal = _goal_verdict(run["final_val_loss"] / dense["final_val_loss"] - 1)
        records.append(
            Record(
                SYSTEM,
                f"quality {arm}{label}: {shape}",
                "validation loss",
                "nats/byte",
                run["final_val_loss"],
                peer="dense (same steps, seed, data)" if compared else None,
                peer_value=dense["final_val_loss"] if compared else None,
                higher_is_better=False,
                spread={
                    "tokens_per_s": run["tokens_per_s"],
                    "parameters": run["parameters"],
                    "curve": [(h["step"], h["val_loss"]) for h in run["history"]],
                },
                notes=f"sparsity {train_config.weights}/{train_config.activations} ({train_config.method}), "
                f"sparse fraction {train_config.sparse_fraction}, arm overrides {QUALITY_ARMS[arm]}{goal}; "
                f"CPU, backend {train_config.backend}, V:N:M kernel {train_config.vnm_kernel}",
            )
        )
    return records


def seed_summary_records(
    runs_by_seed: dict[int, dict[str, dict[str, Any]]], model_config: LlamaConfig, train_config: TrainConfig
) -> list[Record]:
    """One record per arm over several seeds: mean final validation loss vs the mean dense loss, with
    every seed's gap (arm / dense - 1, each against the dense run of the same seed) in ``spread``."""
    seeds = sorted(runs_by_seed)
    shape = _shape(model_config, train_config)
    arms = [
        arm
        for arm in runs_by_seed[seeds[0]]
        if arm != "dense" and all(arm in runs_by_seed[s] and "dense" in runs_by_seed[s] for s in seeds)
    ]
    records = []
    for arm in arms:
        losses = [runs_by_seed[s][arm]["final_val_loss"] for s in seeds]
        dense = [runs_by_seed[s]["dense"]["final_val_loss"] for s in seeds]
        gaps = [loss / d - 1 for loss, d in zip(losses, dense, strict=True)]
        mean_gap = sum(gaps) / len(gaps)
        goal = _goal_verdict(mean_gap) + " (mean over seeds)" if _is_goal_arm(arm, train_config) else ""
        records.append(
            Record(
                SYSTEM,
                f"quality {arm}, mean of seeds {seeds[0]}-{seeds[-1]}: {shape}",
                "validation loss",
                "nats/byte",
                sum(losses) / len(losses),
                peer="dense (same steps, seeds, data)",
                peer_value=sum(dense) / len(dense),
                higher_is_better=False,
                spread={
                    "seeds": seeds,
                    "gaps": gaps,
                    "mean_gap": mean_gap,
                    "min_gap": min(gaps),
                    "max_gap": max(gaps),
                    "seeds_within_2pct": sum(g <= 0.02 for g in gaps),
                },
                notes=f"arm overrides {QUALITY_ARMS[arm]}{goal}; "
                "each gap against the dense run of its own seed; "
                f"CPU, backend {train_config.backend}",
            )
        )
    return records


def plot_quality(
    runs: dict[str, dict[str, Any]], train_config: TrainConfig, path: str | Path, title: str
) -> Path:
    """Validation-loss curves of every arm, the sparse phase shaded."""
    fig, ax = new_figure(figsize=(7, 4.5))
    for arm, run in runs.items():
        ax.plot(
            [h["step"] for h in run["history"]],
            [h["val_loss"] for h in run["history"]],
            marker=".",
            label=f"{arm} ({run['final_val_loss']:.3f})",
        )
    start = round(train_config.warmup_fraction * train_config.steps)
    end = start + round(train_config.sparse_fraction * train_config.steps)
    ax.axvspan(start, end, color="grey", alpha=0.12, label="sparse phase of the 80% arms")
    ax.set(xlabel="step", ylabel="validation loss (nats/byte)", title=title)
    ax.legend()
    return save_plot(fig, path)


def quality(
    model_config: LlamaConfig,
    train_config: TrainConfig,
    corpus: bytes,
    arms: list[str] | None = None,
    plot: str | Path | None = None,
    quiet: bool = False,
) -> tuple[list[Record], dict[str, dict[str, Any]]]:
    """Train each arm (same steps, seed, data), compare final validation loss with dense, plot curves."""
    check_runnable(train_config)
    runs = {arm: run_arm(arm, model_config, train_config, corpus, quiet) for arm in arms or QUALITY_ARMS}
    if plot:
        plot_quality(runs, train_config, plot, f"sparse24 quality, {train_config.steps} steps")
    return quality_records(runs, model_config, train_config), runs


def _timed(
    name: str, workload: str, ours: Callable, peer: Callable, peer_name: str, rounds: int, notes: str = ""
) -> Record:
    comparison = compare(ours, peer, rounds=rounds, warmup=1)
    return Record.from_comparison(
        comparison, system=SYSTEM, workload=f"{name}: {workload}", peer=peer_name, notes=notes
    )


def _topk_reference(x: torch.Tensor, group: int) -> Callable[[], torch.Tensor]:
    groups = x.abs().reshape(-1, group)
    return lambda: torch.zeros_like(groups, dtype=torch.bool).scatter_(
        -1, groups.topk(2, dim=-1).indices, True
    )


def mask_costs(
    rows: int = 2048, cols: int = 2048, tokens: int = 4096, rounds: int = 5, seed: int = 0
) -> list[Record]:
    """Time of each mask against one torch.topk(2)+scatter pass over the same tensor's groups."""
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=generator)
    h = F.relu(torch.randn(tokens, cols, generator=generator)).square()
    peer = "torch.topk(2) + scatter over the same groups (the floor for a top-2 mask)"
    note = "ratio < 1 means the mask costs more than one top-k pass"
    return [
        _timed(
            "mask 2:4 magnitude",
            f"{rows}x{cols}",
            lambda: mask_24(w, validate=False),
            _topk_reference(w, 4),
            peer,
            rounds,
            note,
        ),
        _timed(
            "mask S-STE soft threshold",
            f"{rows}x{cols}",
            lambda: soft_threshold_24(w, validate=False),
            _topk_reference(w, 4),
            peer,
            rounds,
            note,
        ),
        _timed(
            "mask transposable 2:4 (90 patterns)",
            f"{rows}x{cols}",
            lambda: transposable_mask_24(w, validate=False),
            _topk_reference(w, 4),
            peer,
            rounds,
            note,
        ),
        _timed(
            "mask V:N:M 64:2:8 router",
            f"{tokens}x{cols} activations",
            lambda: vnm_mask(h, "64:2:8", validate=False),
            _topk_reference(h, 8),
            peer,
            rounds,
            note,
        ),
        _timed(
            "mask V:N:M 64:2:8 exact search (70 subsets)",
            f"{tokens}x{cols} activations",
            lambda: vnm_mask(h, "64:2:8", "exact", validate=False),
            _topk_reference(h, 8),
            peer,
            max(1, rounds // 2),
            note,
        ),
    ]


def router_quality(tokens: int = 4096, features: int = 1024, seed: int = 0) -> list[Record]:
    """Activation energy kept by the L1 router vs the exact search on random ReLU^2 data (16:2:8)."""
    generator = torch.Generator().manual_seed(seed)
    h = F.relu(torch.randn(tokens, features, generator=generator)).square()
    energy = {}
    for method in ("router", "exact"):
        mask = vnm_mask(h, "16:2:8", method)
        energy[method] = float((h.square() * mask).sum() / h.square().sum())
    return [
        Record(
            SYSTEM,
            f"V:N:M 16:2:8 kept energy, random ReLU^2 {tokens}x{features}",
            "kept energy",
            "fraction",
            energy["router"],
            peer="exact search (ours)",
            peer_value=energy["exact"],
            higher_is_better=True,
            notes="paper (VENOM router note): router 0.801 vs exact 0.807 on random ReLU^2 data",
        )
    ]


def ffn_flops(
    tokens: int, dim: int, hidden: int, pattern: str = "vnm:64:2:8", mvue: bool = False
) -> dict[str, float]:
    """Analytic FLOPs of a squared-ReLU FFN forward+backward, dense and with 2:4 weights (transposable)
    plus V:N:M activations, counting each matmul at the density of its reduction-dim sparse operand.
    """
    vnm = VNM.parse(pattern)
    mm = 2.0 * tokens * dim * hidden  # one matmul of the FFN
    grad = 0.5 if mvue else 1.0
    sparse = mm * (0.5 + 0.5 + grad + vnm.density + 0.5 + grad)  # fwd1 dX1 dW1 fwd2 dH dW2
    return {"dense": 6 * mm, "sparse": sparse, "fraction": sparse / (6 * mm)}


def flop_records(tokens: int = 8192) -> list[Record]:
    records = []
    for name, (dim, hidden) in FFN_SHAPES.items():
        for mvue in (False, True):
            f = ffn_flops(tokens, dim, hidden, mvue=mvue)
            records.append(
                Record(
                    SYSTEM,
                    f"analytic FFN fwd+bwd FLOPs {name} ({dim}->{hidden}, {tokens} tokens), "
                    f"2:4 weights + vnm:64:2:8{' + MVUE' if mvue else ''}",
                    "FLOPs",
                    "TFLOP",
                    f["sparse"] / 1e12,
                    peer="dense FFN",
                    peer_value=f["dense"] / 1e12,
                    notes="ideal upper bound on speedup: each matmul counted at the density of its "
                    "reduction-dim sparse operand; not a measured time",
                )
            )
    return records


def emulation_overhead(
    tokens: int = 2048, dim: int = 256, hidden: int = 1024, rounds: int = 7, seed: int = 0
) -> list[Record]:
    """Training-step (fwd+bwd) time of the masked-dense sparse FFN vs the plain dense torch FFN."""
    torch.manual_seed(seed)
    dense = SquaredReLUFFN(dim, hidden)
    x = torch.randn(tokens, dim, requires_grad=True)

    def step(module):
        return lambda: module(x).square().mean().backward()

    records = []
    for label, options in (("2:4 weights + vnm:64:2:8", {}), ("2:4 weights only", {"activations": None})):
        sparse = sparsify_ffn(copy.deepcopy(dense), **options)
        records.append(
            _timed(
                f"emulated sparse FFN fwd+bwd ({label})",
                f"{tokens} tokens, {dim}->{hidden}",
                step(sparse),
                step(dense),
                "plain dense torch FFN (nn.Linear)",
                rounds,
                "CPU emulation computes dense matmuls plus masks: it checks quality, it is "
                "not meant to be faster",
            )
        )
    return records


def vnm_gather_speed(
    tokens: int = 4096,
    features: int = 2048,
    out: int = 1024,
    rounds: int = 7,
    seed: int = 0,
    device: str = "cpu",
    dtype=torch.float32,
) -> Record:
    """V:N:M 64:2:8 gather+bmm matmul vs the dense matmul of the same (masked) activations."""
    generator = torch.Generator().manual_seed(seed)
    h = F.relu(torch.randn(tokens, features, generator=generator)).square()
    h = (h * vnm_mask(h, "64:2:8")).to(device, dtype)
    w = (torch.randn(out, features, generator=generator) / math.sqrt(features)).to(device, dtype)
    columns = vnm_columns(h.float(), "64:2:8")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def ours():
        vnm_gather_matmul(h, w, "64:2:8", columns)
        sync()

    def peer():
        F.linear(h, w)
        sync()

    return _timed(
        "V:N:M 64:2:8 gather+bmm matmul",
        f"{tokens}x{features} @ {features}x{out} {dtype} on {device}",
        ours,
        peer,
        f"dense torch matmul ({device})",
        rounds,
        "column choice precomputed; 4/M = 50% of the dense FLOPs",
    )


def cpu_speed(quick: bool = False) -> list[Record]:
    """Everything meaningful on a CPU: mask costs, router quality, emulation overhead, gather matmul,
    analytic FLOPs. ``quick`` shrinks the shapes (for tests of this code path)."""
    if quick:
        return [
            *mask_costs(256, 256, 512, rounds=1),
            *router_quality(256, 64),
            *emulation_overhead(256, 64, 256, rounds=1),
            vnm_gather_speed(256, 256, 64, rounds=1),
            *flop_records(),
        ]
    return [*mask_costs(), *router_quality(), *emulation_overhead(), vnm_gather_speed(), *flop_records()]
