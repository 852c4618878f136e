"""``frugal sparse24``: train a tiny Llama sparse-then-dense, compare quality and speed, inspect files."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from inspect import Parameter, signature
from typing import Any, get_type_hints

import typer

from frugalml.common.files import check_output

app = typer.Typer(
    help="2:4 weight and V:N:M activation sparsity for FFNs in LLM pre-training.", no_args_is_help=True
)

DATA_HELP = (
    "Text corpus: a path, or a name under $FRUGAL_DATA/corpora (tinyshakespeare.txt); "
    "default: the Python standard library's own sources (embedded, no download)."
)


def _sparsity(value: str) -> str | None:
    return None if value.lower() in ("dense", "none") else value


DATA = typer.Option(None, "--data", help=DATA_HELP)
BATCH_SIZE = typer.Option(16, help="Sequences per step.")
SEQ_LEN = typer.Option(128, help="Bytes per sequence.")
DIM = typer.Option(256, help="Model width.")
LAYERS = typer.Option(4, help="Transformer blocks.")
HEADS = typer.Option(4, help="Attention heads.")
HIDDEN = typer.Option(1024, help="FFN hidden size.")
METHOD = typer.Option("sste", help="2:4 weights by sste (soft threshold + beta) or ste (plain mask).")
TRANSPOSABLE = typer.Option(False, help="Transposable 2:4 masks (W^T 2:4 too, for the backward dX).")
TRANSPOSABLE_METHOD = typer.Option(
    "exact", help="Transposable mask: exact (best of 90 patterns per 4x4 block) or greedy (by |w|)."
)
MVUE = typer.Option(False, help="MVUE 2:4 sparsification of weight gradients.")
FLIP_EVERY = typer.Option(
    1, help="Measure the 2:4 mask flip rate (logged as flip_rate) every N training steps; 0: never."
)
MASK_EVERY = typer.Option(
    1, help="Recompute the 2:4 mask every N steps and hold it in between (>1 needs --method ste)."
)
VNM_KERNEL = typer.Option(
    "mask",
    help="V:N:M activation matmul: mask (masked dense), gather (gather + batched matmul) or triton "
    "(Triton kernel: CUDA, or CPU with TRITON_INTERPRET=1).",
)
BACKEND = typer.Option(
    "emulate",
    help="2:4 matmul backend: emulate (masked dense, any device) or cusparselt (torch's cuSPARSELt 2:4 "
    "kernels: needs --device cuda on an sm80+ GPU and --dtype bfloat16).",
)
DENSE_FEATURES = typer.Option(
    0.0,
    help="95/5 split: fraction of the V:N:M input's features kept dense (0.05 = 5%), the ones with "
    "the largest L1 norm over the batch, rounded up to a multiple of M.",
)
TOKEN_PERMUTATION = typer.Option(
    False, help="Form V:N:M blocks of V tokens after a fixed, seeded permutation of the token rows."
)
MASKED_DECAY = typer.Option(
    0.0, help="Masked decay (Hu et al.): add this times the pruned weights to their gradient (0: off)."
)
PACKING = typer.Option(
    "learned",
    help="cusparselt packing: learned (_cslt_compress, or a gather learned per held mask) or rule "
    "(a mask-independent rule learned once per weight shape; no compress per mask).",
)
DEVICE = typer.Option("cpu", help="cpu or cuda.")
EVAL_EVERY = typer.Option(50, help="Steps between validation evaluations.")
THREADS = typer.Option(0, help="torch CPU threads (0: torch default).")
DTYPE = typer.Option(
    "float32",
    help="float32, or bfloat16: pure bf16 training (parameters, activations and AdamW state in "
    "bfloat16; no autocast). --backend cusparselt needs bfloat16.",
)


def check_thread_option(threads: int) -> int:
    """A ``--threads`` value in [0, 1024] (0: torch's default), or a one-line error."""
    from frugalml.common.errors import InvalidInputError

    if not 0 <= threads <= 1024:
        raise InvalidInputError(f"--threads must be in [0, 1024] (0: torch's default), got {threads}")
    return threads


@dataclass(frozen=True)
class TrainingOptions:
    """The options ``train`` and ``quality`` share, each declared once: its field's default is the typer
    option, so :func:`_with_training_options` can put it into both commands' signatures."""

    data: str = DATA
    batch_size: int = BATCH_SIZE
    seq_len: int = SEQ_LEN
    dim: int = DIM
    layers: int = LAYERS
    heads: int = HEADS
    hidden: int = HIDDEN
    method: str = METHOD
    transposable: bool = TRANSPOSABLE
    transposable_method: str = TRANSPOSABLE_METHOD
    mvue: bool = MVUE
    flip_every: int = FLIP_EVERY
    mask_every: int = MASK_EVERY
    vnm_kernel: str = VNM_KERNEL
    backend: str = BACKEND
    dense_features: float = DENSE_FEATURES
    token_permutation: bool = TOKEN_PERMUTATION
    masked_decay: float = MASKED_DECAY
    packing: str = PACKING
    device: str = DEVICE
    dtype: str = DTYPE
    eval_every: int = EVAL_EVERY
    threads: int = THREADS

    def checked_threads(self) -> int:
        """``threads``, refused unless in [0, 1024] (0: torch's default)."""
        return check_thread_option(self.threads)

    def model_config(self, ffn: str = "relu2"):
        from frugalml.sparse24.model import LlamaConfig

        return LlamaConfig(
            dim=self.dim,
            n_layers=self.layers,
            n_heads=self.heads,
            hidden=self.hidden,
            ffn=ffn,
            max_seq_len=self.seq_len,
        )

    def train_config(self, **own: Any):
        """The TrainConfig of these options plus a command's own (``locals()``): every value named like
        one of its fields, with ``dense``/``none`` sparsities as None."""
        from frugalml.sparse24.train import TrainConfig

        names = {f.name for f in fields(TrainConfig)}
        config = {k: v for k, v in {**asdict(self), **own}.items() if k in names}
        for key in ("weights", "activations"):
            if key in config:
                config[key] = _sparsity(config[key])
        return TrainConfig(**config)


def _with_training_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add :class:`TrainingOptions`' fields to ``command``'s options; it receives them as ``options``."""
    own = signature(command, eval_str=True)
    shared_types = get_type_hints(TrainingOptions)
    shared = [
        Parameter(f.name, Parameter.KEYWORD_ONLY, default=f.default, annotation=shared_types[f.name])
        for f in fields(TrainingOptions)
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        options = TrainingOptions(**{f.name: kwargs.pop(f.name) for f in fields(TrainingOptions)})
        command(options=options, **kwargs)

    params = [p for p in own.parameters.values() if p.name != "options"]
    wrapper.__signature__ = own.replace(parameters=[*params, *shared])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in (*params, *shared)}
    return wrapper


@app.command()
@_with_training_options
def train(
    steps: int = typer.Option(300, help="Optimizer steps."),
    ffn: str = typer.Option("relu2", help="FFN kind: relu2 (squared ReLU), swiglu or moe."),
    weights: str = typer.Option("2:4", help="Weight sparsity: 2:4 or dense."),
    activations: str = typer.Option(
        "vnm:64:2:8", help="Activation sparsity: V:N:M blocks as vnm:64:2:8, 2:4 or dense."
    ),
    sparse_fraction: float = typer.Option(0.8, help="Fraction of steps trained sparse."),
    warmup_fraction: float = typer.Option(0.0, help="Fraction of dense steps before the sparse phase."),
    dense_from: str = typer.Option(
        "sparse", help="The dense tail starts from the effective 'sparse' weights or the 'master' weights."
    ),
    lr: float = typer.Option(2e-3, help="Peak learning rate (AdamW, cosine)."),
    seed: int = typer.Option(0, help="Seed of initialisation, batches and MVUE."),
    checkpoint: str = typer.Option(None, "--checkpoint", "-o", help="Write the trained model here (.sp24)."),
    json_path: str = typer.Option(None, "--json", help="Write the history as JSON here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or log lines."),
    *,
    options: TrainingOptions,
):
    """Train a tiny Llama: sparse for --sparse-fraction of the steps, then dense.

    Example: frugal sparse24 train --data tinyshakespeare.txt --steps 300 --sparse-fraction 0.8
    """
    import logging

    from frugalml.common.files import atomic_write
    from frugalml.common.threads import torch_threads
    from frugalml.sparse24.train import check_training, read_corpus
    from frugalml.sparse24.train import train as run_training

    if not quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    model_config = options.model_config(ffn)
    config = options.train_config(
        steps=steps,
        weights=weights,
        activations=activations,
        sparse_fraction=sparse_fraction,
        warmup_fraction=warmup_fraction,
        dense_from=dense_from,
        lr=lr,
        seed=seed,
        checkpoint=checkpoint,
    )
    check_training(model_config, config)
    check_output(checkpoint, json_path)
    with torch_threads(options.checked_threads()):
        result = run_training(model_config, config, read_corpus(options.data), quiet=quiet)
    print(
        f"{result.parameters / 1e6:.2f}M parameters, final validation loss {result.final_val_loss:.4f} "
        f"nats/byte, {result.tokens_per_second:.0f} tokens/s"
        + (f", saved {checkpoint}" if checkpoint else "")
    )
    if json_path:
        with atomic_write(json_path, "w") as f:
            json.dump({"model": model_config.to_dict(), "history": result.history}, f, indent=2)


@app.command()
@_with_training_options
def quality(
    steps: int = typer.Option(300, help="Optimizer steps per arm."),
    activations: str = typer.Option("vnm:64:2:8", help="Activation pattern of the sparse arms."),
    sparse_fraction: float = typer.Option(0.8, help="Sparse fraction of the sparse->dense arms."),
    arms: str = typer.Option(
        "dense,sparse->dense,always-sparse,weights-only,activations-only",
        help="Comma-separated arms to train.",
    ),
    seed: int = typer.Option(0, help="Seed shared by every arm."),
    json_path: str = typer.Option(None, "--json", help="Write report records here."),
    plot: str = typer.Option(None, "--plot", help="Write the loss curves here (PNG)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    *,
    options: TrainingOptions,
):
    """Dense vs sparse->dense vs always-sparse vs weights-only vs activations-only, same steps and seed."""
    from frugalml.common.parsing import comma_list
    from frugalml.common.report import print_table, write_json
    from frugalml.common.threads import torch_threads
    from frugalml.sparse24.bench.quality import QUALITY_ARMS
    from frugalml.sparse24.bench.quality import quality as run_quality
    from frugalml.sparse24.train import check_training, read_corpus

    chosen: list[str] = comma_list(arms, name="arm", allowed=QUALITY_ARMS, non_empty=True)
    config = options.train_config(
        steps=steps, activations=activations, sparse_fraction=sparse_fraction, seed=seed
    )
    check_training(options.model_config(), config)
    check_output(json_path, plot)
    with torch_threads(options.checked_threads()):
        records, _ = run_quality(
            options.model_config(), config, read_corpus(options.data), chosen, plot=plot, quiet=quiet
        )
    print_table(records, title="sparse24 quality (ratio = dense loss / arm loss)")
    if json_path:
        write_json(records, json_path)


@app.command()
def speed(
    quick: bool = typer.Option(False, help="Small shapes (checks the code path in seconds)."),
    gpu: bool = typer.Option(True, help="Also run the GPU benchmarks when a CUDA GPU is present."),
    threads: int = THREADS,
    json_path: str = typer.Option(None, "--json", help="Write report records here."),
):
    """Mask costs vs torch.topk, emulation overhead vs dense torch, V:N:M gather matmul, analytic FLOPs;
    on a GPU: FFN fwd+bwd at Llama-1B/7B shapes vs dense bf16 and torch's cuSPARSELt path."""
    from frugalml.common.report import print_table, write_json
    from frugalml.common.threads import torch_threads
    from frugalml.sparse24.bench.cpu_speed import cpu_speed
    from frugalml.sparse24.bench.gpu_speed import gpu_speed

    check_output(json_path)
    with torch_threads(check_thread_option(threads)):
        records = cpu_speed(quick=quick)
        if gpu:
            records += gpu_speed(tokens=1024 if quick else 8192, rounds=2 if quick else 10)
    print_table(records, title="sparse24 speed (ratio > 1: ours faster / cheaper)")
    if json_path:
        write_json(records, json_path)


@app.command()
def inspect(path: str = typer.Argument(..., help="A checkpoint written by train --checkpoint.")):
    """Show a checkpoint's tensors, which are packed 2:4, and its byte accounting."""
    from collections import Counter

    from frugalml.common.files import read_header
    from frugalml.sparse24.formats import CHECKPOINT_MAGIC, CHECKPOINT_VERSION, load_checkpoint

    state, _ = load_checkpoint(path)  # checks the whole file first
    header = read_header(path, CHECKPOINT_MAGIC, CHECKPOINT_VERSION)
    dense = sum(t.numel() * t.element_size() for t in state.values())
    kinds = Counter(e["kind"] for e in header.metadata["tensors"] if e["kind"] != "dense")
    packed = ", ".join(f"{count} packed {kind}" for kind, count in sorted(kinds.items())) or "none packed"
    ratio = f"{dense / header.payload_length:.2f}x" if header.payload_length else "empty"
    print(
        f"{path}: format v{header.version}, {len(state)} tensors ({packed}), "
        f"{header.payload_length} payload bytes vs {dense} dense ({ratio})"
    )


@app.command()
def backends():
    """List the matmul backends and whether each can run here."""
    from frugalml.sparse24.backends import available_backends

    for name, (ok, reason) in available_backends().items():
        print(f"{name:12s} {'available' if ok else 'unavailable'}: {reason}")


@app.command()
def demo(quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output.")):
    """Train a tiny Llama dense and sparse-then-dense on Python's sources; print the summary."""
    from frugalml.sparse24.demo import run

    print(run(quiet=quiet))
