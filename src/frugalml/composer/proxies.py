"""Proxies that train a candidate architecture briefly and score it (higher is better).

:class:`MADProxy` averages the best test accuracy over MAD tasks (the MAD protocol: AdamW, cosine
schedule, best over a learning-rate x weight-decay grid); :class:`LMProxy` trains a byte-level
language model and scores minus the validation loss in nats per byte.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalml.common.errors import InvalidInputError
from frugalml.common.seeding import rng
from frugalml.common.threads import torch_threads
from frugalml.common.validate import bounded
from frugalml.composer.corpus import STDLIB, corpus_id, load_corpus
from frugalml.composer.limits import MAX_BATCH, MAX_STEPS
from frugalml.composer.mad import IGNORE, MADTask, preset
from frugalml.composer.model import HybridConfig, HybridLM, check_arch, kv_cache_bytes
from frugalml.composer.primitives import LayerConfig


@dataclass(frozen=True)
class ModelShape:
    """Widths a candidate is built at during search (the shrunk search-scale width)."""

    width: int = 32
    heads: int = 2
    kv_heads: int = 1
    mlp_ratio: float = 2.0
    window: int = 8
    conv_kernel: int = 4
    experts: int = 4
    top_k: int = 2

    def layer(self) -> LayerConfig:
        return LayerConfig(
            width=self.width,
            heads=self.heads,
            kv_heads=self.kv_heads,
            mlp_hidden=max(1, round(self.mlp_ratio * self.width)),
            window=self.window,
            conv_kernel=self.conv_kernel,
            experts=self.experts,
            top_k=self.top_k,
        )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of one candidate: AdamW with warm-up and cosine decay, best over the grid.

    ``moe_aux_coef`` weighs the MoE load-balancing loss added to the task loss (0 turns it off).
    """

    steps: int = 300
    batch_size: int = 64
    learning_rates: tuple[float, ...] = (3e-3,)
    weight_decays: tuple[float, ...] = (0.0,)
    warmup: float = 0.05
    evals: int = 3
    threads: int = 1
    moe_aux_coef: float = 0.01

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.evals < 1:
            raise InvalidInputError("steps, batch_size and evals must be positive")
        bounded(self.steps, "steps", 1, MAX_STEPS)
        bounded(self.batch_size, "batch_size", 1, MAX_BATCH)
        if not self.moe_aux_coef >= 0:
            raise InvalidInputError(f"moe_aux_coef must be >= 0, got {self.moe_aux_coef}")
        if not self.learning_rates or not self.weight_decays:
            raise InvalidInputError("give at least one learning rate and one weight decay")
        if any(not (lr > 0 and math.isfinite(lr)) for lr in self.learning_rates) or any(
            not (wd >= 0 and math.isfinite(wd)) for wd in self.weight_decays
        ):
            raise InvalidInputError("learning rates must be > 0 and weight decays >= 0")


PUBLISHED_TRAINING = TrainConfig(
    steps=2000, batch_size=128, learning_rates=(1e-4, 5e-4, 1e-3), weight_decays=(0.0, 0.1), evals=10
)
"""The MAD authors' protocol (the grid over lr x wd; report the best)."""


def _schedule(
    optimizer: torch.optim.Optimizer, steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(warmup * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class _CompressionHead(nn.Module):
    """MAD's compression decoder: an MLP reads the last position's state plus a position code."""

    def __init__(self, width: int, positions: int, vocab: int):
        super().__init__()
        self.positions = nn.Parameter(torch.randn(positions, width) * 0.02)
        self.mlp = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(), nn.Linear(width, vocab))

    def forward(self, last: torch.Tensor) -> torch.Tensor:
        b, p = last.shape[0], self.positions.shape[0]
        both = torch.cat([last[:, None, :].expand(b, p, -1), self.positions.expand(b, p, -1)], -1)
        return self.mlp(both)


class _TaskModel(nn.Module):
    """A HybridLM with the output a MAD task is scored on (next tokens, or the decoded sequence)."""

    def __init__(self, cfg: HybridConfig, task: MADTask):
        super().__init__()
        self.lm = HybridLM(cfg)
        self.head = (
            _CompressionHead(cfg.layer.width, task.seq_len - 1, task.vocab_size)
            if task.name == "compression"
            else None
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            return self.lm(tokens)
        return self.head(self.lm.hidden(tokens)[:, -1])


def _accuracy(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch: int) -> float:
    correct = total = 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            pred = model(inputs[i : i + batch]).argmax(-1)
            t = targets[i : i + batch]
            mask = t != IGNORE
            correct += int((pred[mask] == t[mask]).sum())
            total += int(mask.sum())
    model.train()
    return correct / max(total, 1)


def train_task(
    arch: str, task: MADTask, shape: ModelShape, train: TrainConfig, seed: int, lr: float, weight_decay: float
) -> float:
    """Train a fresh model on one MAD task; return its best test accuracy over the evaluations."""
    (xn, yn), (xtn, ytn) = task.generate(seed)
    x, y, xt, yt = (torch.from_numpy(a) for a in (xn, yn, xtn, ytn))
    torch.manual_seed(seed)
    model = _TaskModel(HybridConfig(arch, task.model_vocab, shape.layer()), task)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = _schedule(opt, train.steps, train.warmup)
    order = rng(seed)
    eval_at = set(np.linspace(0, train.steps, train.evals + 1).astype(int)[1:].tolist())
    best = 0.0
    for step in range(1, train.steps + 1):
        idx = torch.from_numpy(order.integers(0, len(x), train.batch_size))
        logits = model(x[idx])
        loss = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten(), ignore_index=IGNORE)
        if train.moe_aux_coef:
            loss = loss + train.moe_aux_coef * model.lm.aux_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step in eval_at:
            best = max(best, _accuracy(model, xt, yt, 4 * train.batch_size))
    return best


@dataclass(frozen=True)
class MADProxy:
    """Score = mean over tasks of the best test accuracy (best over the lr x wd grid)."""

    tasks: tuple[MADTask, ...] = field(
        default_factory=lambda: tuple(preset("cpu", ["recall", "memorization"]))
    )
    shape: ModelShape = field(default_factory=ModelShape)
    train: TrainConfig = field(default_factory=TrainConfig)

    name = "mad"

    def __post_init__(self) -> None:
        if not self.tasks:
            raise InvalidInputError("a MAD proxy needs at least one task")

    def config(self) -> dict:
        return {
            "tasks": [t.to_dict() for t in self.tasks],
            "shape": asdict(self.shape),
            "train": asdict(self.train),
        }

    def evaluate(self, arch: str, seed: int) -> dict:
        check_arch(arch)
        per_task = {}
        with torch_threads(self.train.threads):
            for task in self.tasks:
                per_task[task.name] = max(
                    train_task(arch, task, self.shape, self.train, seed, lr, wd)
                    for lr in self.train.learning_rates
                    for wd in self.train.weight_decays
                )
        return {"score": float(np.mean(list(per_task.values()))), "per_task": per_task}


@dataclass(frozen=True)
class LMProxy:
    """Byte-level language modelling on a corpus; score = -validation loss (nats per byte)."""

    corpus: str = STDLIB
    max_bytes: int = 1_000_000
    seq_len: int = 64
    shape: ModelShape = field(default_factory=ModelShape)
    train: TrainConfig = field(default_factory=TrainConfig)
    val_windows: int = 64
    device: str = "cpu"

    name = "lm"

    def config(self) -> dict:
        config = {
            "corpus": corpus_id(self.corpus),
            "max_bytes": self.max_bytes,
            "seq_len": self.seq_len,
            "shape": asdict(self.shape),
            "train": asdict(self.train),
            "val_windows": self.val_windows,
        }
        return config if self.device == "cpu" else {**config, "device": self.device}

    def evaluate(self, arch: str, seed: int) -> dict:
        check_arch(arch)
        data = load_corpus(self.corpus, max_bytes=self.max_bytes)
        with torch_threads(self.train.threads):
            runs = [
                train_lm(
                    arch,
                    data,
                    self.shape.layer(),
                    seq_len=self.seq_len,
                    train=self.train,
                    seed=seed,
                    lr=lr,
                    weight_decay=wd,
                    val_windows=self.val_windows,
                    device=self.device,
                )
                for lr in self.train.learning_rates
                for wd in self.train.weight_decays
            ]
        best = min(runs, key=lambda r: r["val_loss"])
        return {"score": -best["val_loss"], **{k: v for k, v in best.items() if k != "model"}}


def lm_batches(
    data: np.ndarray, seq_len: int, batch: int, gen: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random windows: inputs and next-byte targets (both (batch, seq_len))."""
    start = gen.integers(0, len(data) - seq_len - 1, batch)
    windows = torch.from_numpy(data[start[:, None] + np.arange(seq_len + 1)].astype(np.int64))
    return windows[:, :-1], windows[:, 1:]


def train_lm(
    arch: str,
    data: np.ndarray,
    layer: LayerConfig,
    *,
    seq_len: int,
    train: TrainConfig,
    seed: int,
    lr: float | None = None,
    weight_decay: float | None = None,
    val_windows: int = 64,
    progress=None,
    device: str = "cpu",
) -> dict:
    """Train a byte-level HybridLM; return validation loss, tokens/s and the model's sizes.

    The last 10% of ``data`` is held out; validation uses ``val_windows`` fixed windows from it.
    ``device`` is a torch device (``"cuda"`` trains on a GPU; the returned model stays there).
    """
    if len(data) < 20 * (seq_len + 1):
        raise InvalidInputError(f"corpus of {len(data)} bytes is too short for seq_len {seq_len}")
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    gen = rng(seed)
    val_x, val_y = (t.to(device) for t in lm_batches(val_data, seq_len, val_windows, rng(seed + 1)))
    torch.manual_seed(seed)
    cfg = HybridConfig(arch, 256, layer)
    model = HybridLM(cfg).to(device)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=lr or train.learning_rates[0],
        weight_decay=train.weight_decays[0] if weight_decay is None else weight_decay,
    )
    sched = _schedule(opt, train.steps, train.warmup)
    start = time.perf_counter()
    for step in range(train.steps):
        x, y = (t.to(device) for t in lm_batches(train_data, seq_len, train.batch_size, gen))
        loss = model.loss(x, y, aux_coef=train.moe_aux_coef)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(step, loss.item())
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        val = float(F.cross_entropy(model(val_x).flatten(0, 1), val_y.flatten()))
    return {
        "val_loss": val,
        "tokens_per_s": train.steps * train.batch_size * seq_len / seconds,
        "train_seconds": seconds,
        "params": sum(p.numel() for p in model.parameters()),
        "non_embedding_params": model.non_embedding_params(),
        "kv_cache_bytes": kv_cache_bytes(cfg, seq_len),
        "model": model,
    }
