"""Training a tiny Llama under a sparse schedule: validation loss, tokens/s, telemetry, checkpoints."""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from frugalml.common.corpus import corpus_bytes
from frugalml.common.env import physical_memory
from frugalml.common.errors import InvalidInputError, PeerUnavailableError
from frugalml.common.progress import progress
from frugalml.common.validate import one_of
from frugalml.sparse24.backends import check_backend
from frugalml.sparse24.corpus import ByteBatches
from frugalml.sparse24.formats import save_checkpoint
from frugalml.sparse24.layers import SparsityConfig
from frugalml.sparse24.masks import VNM
from frugalml.sparse24.model import LlamaConfig, TinyLlama
from frugalml.sparse24.schedule import SparsitySchedule
from frugalml.sparse24.swap import export_sparse_state, sparsify_ffn
from frugalml.sparse24.vnm_kernel import triton_status

DEVICES = ("cpu", "cuda")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


MAX_STEPS = 10**9  # steps, warm-up steps and telemetry periods
MAX_SIZE = 2**31 - 1  # batch size, sequence length, evaluation sizes


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _check_number(name: str, value: Any, low: float, high: float = math.inf, low_open: bool = False) -> None:
    """Raise unless ``value`` is a finite real number in [low, high] (or (low, high] with ``low_open``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or value > high or (low_open and value == low):
        where = (
            f"in {'(' if low_open else '['}{low:g}, {high:g}]"
            if math.isfinite(high)
            else (f"{'> ' if low_open else '>= '}{low:g}")
        )
        raise InvalidInputError(f"{name} must be {where} and finite, got {value!r}")


@dataclass
class TrainConfig:
    """One training run. ``sparse_fraction`` of the steps (after ``warmup_fraction`` dense) are sparse.

    ``weights`` / ``activations`` / ``method`` / ``transposable`` / ``transposable_method`` / ``mvue`` /
    ``flip_every`` / ``mask_every`` / ``vnm_kernel`` / ``backend`` / ``dense_features`` /
    ``token_permutation`` / ``masked_decay`` / ``packing`` are passed to :func:`sparsify_ffn`
    (see :class:`SparsityConfig`; validated here, in a dense run too); with both
    ``weights`` and ``activations`` None the run is dense. ``dense_from`` picks the weights the dense
    tail starts from (see :class:`SparsitySchedule`).

    ``device`` is ``"cpu"`` or ``"cuda"``; ``dtype`` ``"bfloat16"`` trains in pure bf16 (parameters,
    activations and AdamW state in bfloat16, no autocast), which backend ``"cusparselt"`` needs.
    """

    steps: int = 200
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 2e-3
    min_lr_fraction: float = 0.1
    lr_warmup_steps: int = 20
    weight_decay: float = 0.1
    sparse_fraction: float = 0.8
    warmup_fraction: float = 0.0
    dense_from: str = "sparse"
    weights: str | None = "2:4"
    activations: str | None = "vnm:64:2:8"
    method: str = "sste"
    transposable: bool = False
    mvue: bool = False
    transposable_method: str = "exact"
    flip_every: int = 1
    mask_every: int = 1
    vnm_kernel: str = "mask"
    backend: str = "emulate"
    dense_features: float = 0.0
    token_permutation: bool = False
    masked_decay: float = 0.0
    packing: str = "learned"
    device: str = "cpu"
    dtype: str = "float32"
    eval_every: int = 50
    eval_batches: int = 8
    seed: int = 0
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "eval_every", "eval_batches"):
            _check_int(name, getattr(self, name), 1, MAX_STEPS if name == "steps" else MAX_SIZE)
        _check_int("lr_warmup_steps", self.lr_warmup_steps, 0, MAX_STEPS)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        one_of(self.device, DEVICES, "device")
        one_of(self.dtype, DTYPES, "dtype")
        one_of(self.dense_from, ("sparse", "master"), "dense_from")
        _check_number("lr", self.lr, low=0.0, low_open=True)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_number("masked_decay", self.masked_decay, low=0.0)
        for name in ("min_lr_fraction", "sparse_fraction", "warmup_fraction", "dense_features"):
            _check_number(name, getattr(self, name), low=0.0, high=1.0)
        if self.sparse_fraction + self.warmup_fraction > 1.0 + 1e-9:
            raise InvalidInputError(
                f"warmup_fraction + sparse_fraction = {self.sparse_fraction + self.warmup_fraction:g} > 1; "
                "lower one of them"
            )
        # a dense run still rejects bad sparsity options (checked as if its weights were 2:4)
        SparsityConfig(**(self.sparsity() if not self.is_dense else {**self.sparsity(), "weights": "2:4"}))

    @property
    def is_dense(self) -> bool:
        return (self.weights is None and self.activations is None) or self.sparse_fraction == 0

    def sparsity(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "activations": self.activations,
            "method": self.method,
            "transposable": self.transposable,
            "transposable_method": self.transposable_method,
            "mvue": self.mvue,
            "flip_every": self.flip_every,
            "mask_every": self.mask_every,
            "vnm_kernel": self.vnm_kernel,
            "backend": self.backend,
            "seed": self.seed,
            "dense_features": self.dense_features,
            "token_permutation": self.token_permutation,
            "masked_decay": self.masked_decay,
            "packing": self.packing,
        }

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def check_runnable(config: TrainConfig) -> None:
    """Raise before any training when the run's device, backend, dtype or V:N:M kernel cannot run here."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise PeerUnavailableError(
            f"device 'cuda' asked for, but torch {torch.__version__} sees no CUDA GPU; use --device cpu"
        )
    if config.is_dense:
        return
    device = config.device
    if config.backend == "cusparselt" and device == "cpu" and torch.cuda.is_available():
        raise InvalidInputError("backend 'cusparselt' runs on the GPU; add --device cuda --dtype bfloat16")
    check_backend(config.backend, device)
    if config.backend == "cusparselt" and config.dtype != "bfloat16":
        raise InvalidInputError("backend 'cusparselt' runs fp16/bf16 kernels; add --dtype bfloat16")
    if config.vnm_kernel == "triton" and config.activations is not None:
        ok, reason = triton_status(device)
        if not ok:
            raise PeerUnavailableError(f"vnm_kernel 'triton' cannot run: {reason}; use 'gather' or 'mask'")


def training_bytes(model_config: LlamaConfig, config: TrainConfig) -> int:
    """A lower bound on the memory a run holds at once: parameters, gradients and AdamW's two moments,
    plus the activations one step keeps for its backward (a few per layer and token, and the logits)."""
    element = torch.empty((), dtype=config.torch_dtype).element_size()
    tokens = config.batch_size * config.seq_len
    pattern = None if config.is_dense or config.activations is None else config.activations
    v = VNM.parse("vnm:1:2:4" if pattern in (None, "2:4") else pattern).v
    padded = -(-tokens // v) * v  # V:N:M blocks pad the tokens to a multiple of V
    per_layer = 6 * model_config.dim * tokens + 2 * model_config.hidden * padded
    activations = model_config.n_layers * per_layer + 2 * model_config.vocab_size * tokens
    return element * (4 * model_config.parameter_count() + activations)


def memory_bytes(device: str) -> int:
    """Physical memory of the machine (``"cpu"``) or of the first CUDA GPU (``"cuda"``)."""
    if device == "cuda":
        return int(torch.cuda.get_device_properties(0).total_memory)
    return physical_memory()


def check_training(model_config: LlamaConfig, config: TrainConfig) -> None:
    """Raise before any work when the run cannot start: a sequence longer than the model's, a device,
    backend or kernel that cannot run here, or more memory than the device has."""
    if config.seq_len > model_config.max_seq_len:
        raise InvalidInputError(
            f"seq_len={config.seq_len} exceeds the model's max_seq_len={model_config.max_seq_len}"
        )
    check_runnable(config)
    need, have = training_bytes(model_config, config), memory_bytes(config.device)
    if need > have:
        raise InvalidInputError(
            f"this run needs at least {need / 2**30:.3g} GiB (weights, gradients, AdamW state and "
            f"activations) but the {config.device} has {have / 2**30:.3g} GiB; lower dim, hidden, "
            "layers, batch_size, seq_len or the V of a V:N:M pattern"
        )


def read_corpus(data: str | os.PathLike | None) -> bytes:
    """The bytes of a training corpus (see :func:`frugalml.common.corpus.corpus_bytes`, which refuses
    a file larger than half the machine's memory before reading it); an empty corpus is refused."""
    corpus = corpus_bytes(data)
    if not corpus:
        raise InvalidInputError(f"the corpus {data} is empty; pass a text file with some content")
    return corpus


@dataclass
class TrainResult:
    """What a run produced: per-eval history, the final validation loss, throughput, the model."""

    history: list[dict[str, Any]]
    final_val_loss: float
    tokens_per_second: float
    parameters: int
    model: TinyLlama = field(repr=False)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to ``min_lr_fraction`` of the peak."""
    if step < config.lr_warmup_steps:
        return config.lr * (step + 1) / config.lr_warmup_steps
    progress_ = (step - config.lr_warmup_steps) / max(1, config.steps - config.lr_warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))
    return config.lr * (config.min_lr_fraction + (1 - config.min_lr_fraction) * cosine)


@torch.no_grad()
def evaluate(model: TinyLlama, batches: ByteBatches, config: TrainConfig) -> float:
    """Mean validation loss over ``eval_batches`` fixed (seeded) batches."""
    model.eval()
    generator = torch.Generator().manual_seed(config.seed + 1)
    losses = []
    for _ in range(config.eval_batches):
        x, y = (t.to(config.device) for t in batches.batch("val", config.batch_size, generator))
        losses.append(float(model(x, y)[1]))
    model.train()
    return sum(losses) / len(losses)


def train(
    model_config: LlamaConfig, config: TrainConfig, corpus: bytes, quiet: bool = False, label: str = "train"
) -> TrainResult:
    """Train a fresh :class:`TinyLlama` on ``corpus`` bytes; evaluate every ``eval_every`` steps."""
    check_training(model_config, config)
    batches = ByteBatches(corpus, config.seq_len)
    model = TinyLlama(model_config, seed=config.seed).to(config.device, config.torch_dtype)
    schedule = SparsitySchedule(
        config.steps,
        0.0 if config.is_dense else config.sparse_fraction,
        config.warmup_fraction,
        sparsity=config.sparsity(),
        dense_from=config.dense_from,
    )
    if schedule.sparse_steps[0] > 0 and schedule.sparse_steps[1] > schedule.sparse_steps[0]:
        # a dense warm-up first: check now that the layers can be made sparse, not after the warm-up
        sparsify_ffn(copy.deepcopy(model), **config.sparsity())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    generator = torch.Generator().manual_seed(config.seed)
    tokens, train_seconds, loss = 0, 0.0, torch.tensor(float("nan"))
    for step in progress(range(config.steps), desc=label, quiet=quiet):
        phase = schedule.update(model, step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        start = time.perf_counter()
        x, y = (t.to(config.device) for t in batches.batch("train", config.batch_size, generator))
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        train_seconds += time.perf_counter() - start
        tokens += x.numel()
        if not math.isfinite(loss.item()):
            raise InvalidInputError(f"training diverged at step {step} ({phase}); lower the learning rate")
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            val_loss = evaluate(model, batches, config)
            if not math.isfinite(val_loss):
                raise InvalidInputError(
                    f"training diverged by step {step + 1} ({phase}); lower the learning rate"
                )
            throughput = tokens / train_seconds
            losses = {"train_loss": loss.item(), "val_loss": val_loss}
            schedule.record(model, step + 1, **losses, tokens_per_s=throughput)
    final = schedule.history[-1]["val_loss"]
    if config.checkpoint:
        save_model(model, config.checkpoint, model_config, config)
    return TrainResult(schedule.history, final, tokens / train_seconds, model.num_parameters(), model)


def save_model(
    model: TinyLlama, path: str | os.PathLike, model_config: LlamaConfig, config: TrainConfig | None = None
) -> dict[str, int]:
    """Write the model (2:4 weights packed when it is sparse) as a checksummed checkpoint."""
    metadata = {"model": model_config.to_dict(), "train": asdict(config) if config else None}
    return save_checkpoint(export_sparse_state(model), path, metadata)
