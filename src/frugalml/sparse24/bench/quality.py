"""Quality behind ``frugal sparse24 quality``: loss vs dense at equal steps, seed and data, per arm of
the schedule (sparse->dense, always-sparse, weights-only, ...), over one or several seeds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from frugalml.common.env import cpu, torch_info
from frugalml.common.errors import CorruptFileError
from frugalml.common.files import atomic_write
from frugalml.common.report import Record, new_figure, save_plot
from frugalml.sparse24.bench.shared import SYSTEM
from frugalml.sparse24.model import LlamaConfig
from frugalml.sparse24.train import TrainConfig, check_runnable, train

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


def _is_target_arm(arm: str, train_config: TrainConfig) -> bool:
    """Whether ``arm`` is one the quality target speaks of: at least 80% sparse steps, then dense ones,
    both sparsities on."""
    overrides = QUALITY_ARMS[arm]
    fractions = {"sparse_fraction": train_config.sparse_fraction, **overrides}
    return (
        fractions["sparse_fraction"] >= 0.8
        and fractions.get("warmup_fraction", 0) + fractions["sparse_fraction"] < 1
        and "weights" not in overrides
        and "activations" not in overrides
    )


def _target_verdict(gap: float) -> str:
    return f"; target (within 2% of dense) {'MET' if gap <= 0.02 else 'NOT met'}: gap {gap:+.2%}"


def _where(train_config: TrainConfig) -> str:
    """The device the arms trained on, named from this machine's own facts."""
    if train_config.device.startswith("cuda"):
        return str(torch_info()["device"] or train_config.device)
    return f"CPU ({cpu()['model']})"


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
    dense: dict[str, Any] = runs.get("dense") or {}
    records = []
    for arm, run in runs.items():
        compared = bool(dense) and arm != "dense"
        target = ""
        if compared and _is_target_arm(arm, train_config):
            target = _target_verdict(run["final_val_loss"] / dense["final_val_loss"] - 1)
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
                f"sparse fraction {train_config.sparse_fraction}, arm overrides {QUALITY_ARMS[arm]}{target}; "
                f"{_where(train_config)}, backend {train_config.backend}, "
                f"V:N:M kernel {train_config.vnm_kernel}",
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
        target = _target_verdict(mean_gap) + " (mean over seeds)" if _is_target_arm(arm, train_config) else ""
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
                notes=f"arm overrides {QUALITY_ARMS[arm]}{target}; "
                "each gap against the dense run of its own seed; "
                f"{_where(train_config)}, backend {train_config.backend}",
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


class RunCache:
    """Finished arms' runs in a JSON file, keyed by model, training settings and corpus, written after
    every arm so an interrupted run resumes where it stopped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.runs: dict[str, dict[str, Any]] = (
                json.loads(self.path.read_text()) if self.path.exists() else {}
            )
        except json.JSONDecodeError as error:
            raise CorruptFileError(
                f"the run cache {self.path} is not valid JSON ({error}); move it or pass another --cache"
            ) from None

    def run(self, key: str, arm: str, compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """The cached run of ``arm`` under ``key``, or ``compute()``'s, saved at once; (run, computed)."""
        done = self.runs.setdefault(key, {})
        if arm in done:
            return done[arm], False
        done[arm] = compute()
        with atomic_write(self.path, "w") as f:
            json.dump(self.runs, f)
        return done[arm], True


def quality_over_seeds(
    model_config: LlamaConfig,
    train_config: TrainConfig,
    corpus: bytes,
    data: str,
    arms: list[str],
    seeds: list[int],
    cache: RunCache,
) -> tuple[list[Record], dict[int, dict[str, dict[str, Any]]]]:
    """Train every arm once per seed (``train_config`` with that seed; ``data`` names the corpus in the
    cache key); one record per arm and seed, plus with several seeds one record per arm with the mean
    loss and every seed's gap to its own dense run (:func:`seed_summary_records`)."""
    records, runs_by_seed = [], {}
    for seed in seeds:
        config = replace(train_config, seed=seed)
        key = json.dumps([model_config.to_dict(), repr(config), data])
        for arm in arms:
            run, computed = cache.run(key, arm, partial(run_arm, arm, model_config, config, corpus))
            if computed:
                print(f"seed {seed} {arm}: final validation loss {run['final_val_loss']:.4f}", flush=True)
        runs_by_seed[seed] = {arm: cache.runs[key][arm] for arm in arms}
        label = f", seed {seed}" if len(seeds) > 1 else ""
        records += quality_records(runs_by_seed[seed], model_config, config, label)
    if len(seeds) > 1:
        records += seed_summary_records(runs_by_seed, model_config, replace(train_config, seed=seeds[-1]))
    return records, runs_by_seed
