"""The op graph of one training step: every forward and backward GEMM with its shape, in order.

GEMMs are what Cleave farms out as tiles; everything else (norms, softmax, activations, residuals,
loss, optimizer) stays on the parameter server and is listed as a :class:`PsOp` with the bytes it
touches. All transformer layers are identical, so the graph stores one layer and a repeat count.

The batch is cut into micro-batches (gradient accumulation): micro-batch ``i``'s layer ``l`` needs
only its own layer ``l - 1`` and the step's weights (updated once, after every micro-batch), so the
same GEMM of all micro-batches shares one task queue, and a micro-batch may start its next GEMM as
soon as its own tiles are back (the simulator's dataflow; the analytic model runs them in lockstep);
only the weight gradients ``dW = X^T dY`` differ from one big batch: each contracts over one
micro-batch's tokens and the PS sums the parts. Within a GEMM the contraction dimension is never
split.

Example
-------
>>> from frugalml.cleave.models import load_model
>>> g = build_graph(load_model("opt-1.3b"), batch=8, seq=512)
>>> [op.name for op in g.layer_gemms][:3]
['qkv.fwd', 'scores.fwd', 'context.fwd']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from frugalml.cleave.models import ModelSpec
from frugalml.common.errors import InvalidInputError

MAX_SIZE = 1 << 20  # sequences per batch, tokens per sequence: more is a typo


@dataclass(frozen=True)
class Gemm:
    """``batch`` independent products ``C[m, n] = A[m, k] @ B[k, n]``.

    ``a`` and ``b`` say what the operands are (``"x"``, ``"w_qkv"``...); ``weight_operand`` is true
    when ``b`` is a model weight (the PS holds it; devices may cache it). ``partial_sums``: the
    ``batch`` products are one weight gradient's per-micro-batch parts, which the PS adds up.

    ``fused`` names a block of GEMMs run as one task (the column-then-row FFN split, see
    :func:`~frugalml.cleave.costmodel.fused_ffn_cost`): ``"ffn_fwd"`` or ``"ffn_bwd"``, with ``m``
    the tokens, ``n`` the FFN width (split into column chunks), ``k`` the model width and ``gated``
    whether the up projection is two (gate and up) of width ``n``; ``""``: one plain GEMM.
    """

    name: str
    phase: str
    m: int
    n: int
    k: int
    batch: int = 1
    a: str = "A"
    b: str = "B"
    weight_operand: bool = False
    partial_sums: bool = False
    fused: str = ""
    gated: bool = False

    @property
    def flops(self) -> int:
        if self.fused:  # forward: up (1 or 2 products) and down; backward adds the recompute
            ups = 2 if self.gated else 1
            per = ups + 1 if self.fused == "ffn_fwd" else 3 * ups + 2
            return 2 * self.batch * self.m * self.n * self.k * per
        return 2 * self.batch * self.m * self.n * self.k

    def bytes_in(self, dtype_bytes: int) -> int:
        """Bytes of both operands (sent once each when untiled)."""
        return self.batch * (self.m + self.n) * self.k * dtype_bytes

    def bytes_out(self, dtype_bytes: int) -> int:
        return self.batch * self.m * self.n * dtype_bytes


@dataclass(frozen=True)
class PsOp:
    """A non-GEMM op run on the parameter server: ``elements`` read + written, ``flops`` done."""

    name: str
    phase: str
    elements: int
    flops: int


@dataclass(frozen=True)
class OpGraph:
    """One training step of ``model`` on ``batch`` sequences of ``seq`` tokens.

    ``layer_gemms`` / ``layer_ps_ops`` run ``model.layers`` times (forward of every layer, then
    backward of every layer); ``head_gemms`` / ``head_ps_ops`` run once (embedding, LM head, loss,
    optimizer). The batch is ``micro_batches`` micro-batches of ``batch // micro_batches``
    sequences (gradient accumulation): every weight gradient ``dW = X^T dY`` contracts over one
    micro-batch's tokens only, and the PS adds the micro-batches' parts up.
    """

    model: ModelSpec
    batch: int
    seq: int
    dtype_bytes: int
    layer_gemms: tuple[Gemm, ...]
    layer_ps_ops: tuple[PsOp, ...]
    head_gemms: tuple[Gemm, ...]
    head_ps_ops: tuple[PsOp, ...]
    micro_batches: int = 1

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    @property
    def micro_tokens(self) -> int:
        """Tokens per micro-batch (the contraction length of every weight gradient GEMM)."""
        return self.tokens // self.micro_batches

    def gemms(self) -> Iterator[tuple[Gemm, int]]:
        """Each distinct GEMM with how many times it runs per step."""
        for g in self.layer_gemms:
            yield g, self.model.layers
        for g in self.head_gemms:
            yield g, 1

    def ps_ops(self) -> Iterator[tuple[PsOp, int]]:
        for op in self.layer_ps_ops:
            yield op, self.model.layers
        for op in self.head_ps_ops:
            yield op, 1

    def schedule(self) -> list[tuple[str, int]]:
        """The step in execution order as ``(gemm name, layer)``; layer -1 is the head."""
        fwd = [g.name for g in self.layer_gemms if g.phase == "forward"]
        bwd = [g.name for g in self.layer_gemms if g.phase == "backward"]
        head_fwd = [g.name for g in self.head_gemms if g.phase == "forward"]
        head_bwd = [g.name for g in self.head_gemms if g.phase == "backward"]
        layers = range(self.model.layers)
        return (
            [(n, i) for i in layers for n in fwd]
            + [(n, -1) for n in head_fwd + head_bwd]
            + [(n, i) for i in reversed(layers) for n in bwd]
        )

    @property
    def gemm_flops(self) -> int:
        return sum(g.flops * r for g, r in self.gemms())

    @property
    def forward_flops(self) -> int:
        return sum(g.flops * r for g, r in self.gemms() if g.phase == "forward")

    def ps_seconds(self, mem_bandwidth: float, flops: float) -> tuple[float, float]:
        """PS time per layer and for the head, as a roofline of bytes touched and FLOPs done."""

        def cost(ops: tuple[PsOp, ...]) -> float:
            return sum(max(op.elements * self.dtype_bytes / mem_bandwidth, op.flops / flops) for op in ops)

        return cost(self.layer_ps_ops), cost(self.head_ps_ops)


def _with_backward(forward: list[Gemm], micro_batches: int) -> list[Gemm]:
    """Backward GEMMs of ``C = A B``, in reverse order: ``dA = dC B^T`` and ``dB = A^T dC``.

    A weight's gradient ``dW = X^T dY`` is ``micro_batches`` products, each contracting over one
    micro-batch's tokens (the PS sums them), never one product over the whole batch.
    """
    backward = []
    for g in reversed(forward):
        base = g.name.removesuffix(".fwd")
        backward.append(
            Gemm(
                f"{base}.d{g.a}",
                "backward",
                g.m,
                g.k,
                g.n,
                g.batch,
                f"d_{base}",
                g.b,
                weight_operand=g.weight_operand,
            )
        )
        if g.weight_operand:
            backward.append(
                Gemm(
                    f"{base}.d{g.b}",
                    "backward",
                    g.k,
                    g.n,
                    g.m // micro_batches,
                    micro_batches,
                    g.a,
                    f"d_{base}",
                    partial_sums=micro_batches > 1,
                )
            )
        else:
            backward.append(Gemm(f"{base}.d{g.b}", "backward", g.k, g.n, g.m, g.batch, g.a, f"d_{base}"))
    return backward


MICRO_TOKENS = 16384


def default_micro_batch(batch: int, seq: int, tokens: int = MICRO_TOKENS) -> int:
    """Sequences per micro-batch: the largest divisor of ``batch`` with at most ``tokens`` tokens
    (at least one sequence); by default 16384 tokens, 16 sequences of 1024."""
    if not all(isinstance(v, int) and 1 <= v <= MAX_SIZE for v in (batch, seq)):
        return 1  # build_graph reports the bad batch or sequence length
    want = max(1, tokens // seq)
    return max(d for d in range(1, want + 1) if batch % d == 0) if want < batch else batch


def build_graph(
    model: ModelSpec,
    batch: int,
    seq: int,
    dtype_bytes: int = 2,
    micro_batch: int | None = None,
    ffn_split: bool = False,
) -> OpGraph:
    """Every GEMM and PS op of one training step (forward, backward, optimizer).

    Parameters
    ----------
    model : ModelSpec
    batch, seq : int
        Sequences per step and tokens per sequence (``batch * seq`` tokens).
    dtype_bytes : int
        Bytes per element moved and stored (2 for fp16/bf16).
    micro_batch : int, optional
        Sequences per micro-batch (must divide ``batch``); default :func:`default_micro_batch`
        (about 16384 tokens). A GEMM's tiles of every micro-batch
        share one task queue (tokens are independent rows in every forward and ``dX`` GEMM), and
        each weight gradient is one product per micro-batch that the PS accumulates (its PS ingress
        is counted in the tiles' output bytes, the adds in the ``grad_accumulate`` PS ops).
    ffn_split : bool
        The column-then-row FFN split (a design lever, simulator option): each FFN is one task per
        (token rows, FFN column chunk) forward (``ffn.fwd``: the input rows and both weights'
        chunks down, the activation on the device, a partial output up that the PS adds) and one
        backward (``ffn.bwd``: recomputes the chunk's activation; a partial input gradient and
        both weight-gradient chunks up), instead of four forward and backward GEMMs with the
        activation on the PS.

    Raises
    ------
    InvalidInputError
        Non-positive batch, sequence length, element size or micro-batch, or a micro-batch that
        does not divide the batch.
    """
    micro_batch = default_micro_batch(batch, seq) if micro_batch is None else micro_batch
    checks = (("batch", batch), ("seq", seq), ("dtype_bytes", dtype_bytes), ("micro_batch", micro_batch))
    for name, value in checks:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIZE:
            raise InvalidInputError(f"{name} must be an integer in 1..{MAX_SIZE:,}, got {value!r}")
    if batch % micro_batch:
        raise InvalidInputError(
            f"micro_batch ({micro_batch}) must divide batch ({batch}); try one of "
            f"{[d for d in range(1, batch + 1) if batch % d == 0][:12]}"
        )
    micro = batch // micro_batch
    t, h, f = batch * seq, model.hidden, model.ffn
    heads, dh = model.heads, model.head_dim
    up_width = 2 * f if model.gated_ffn else f
    forward = [
        Gemm("qkv.fwd", "forward", t, h + 2 * model.kv_dim, h, a="x", b="wqkv", weight_operand=True),
        Gemm("scores.fwd", "forward", seq, seq, dh, batch * heads, a="q", b="k"),
        Gemm("context.fwd", "forward", seq, dh, seq, batch * heads, a="p", b="v"),
        Gemm("out.fwd", "forward", t, h, h, a="ctx", b="wo", weight_operand=True),
    ]
    ffn = [
        Gemm("ffn_up.fwd", "forward", t, up_width, h, a="x", b="w1", weight_operand=True),
        Gemm("ffn_down.fwd", "forward", t, h, f, a="act", b="w2", weight_operand=True),
    ]
    scores = batch * heads * seq * seq
    layer_ps = (
        PsOp("ln1", "forward", 2 * t * h, 8 * t * h),
        PsOp("softmax", "forward", 2 * scores, 5 * scores),
        PsOp("residual1", "forward", 3 * t * h, t * h),
        PsOp("ln2", "forward", 2 * t * h, 8 * t * h),
        PsOp("activation", "forward", 2 * t * up_width, 8 * t * f),
        PsOp("residual2", "forward", 3 * t * h, t * h),
        PsOp("activation.grad", "backward", 3 * t * up_width, 10 * t * f),
        PsOp("ln2.grad", "backward", 4 * t * h, 12 * t * h),
        PsOp("softmax.grad", "backward", 3 * scores, 4 * scores),
        PsOp("ln1.grad", "backward", 4 * t * h, 12 * t * h),
    ) + _accumulate(model.layer_params, micro)
    if ffn_split:  # the activation runs on the devices; the PS adds the partial outputs
        layer_ps = tuple(op for op in layer_ps if not op.name.startswith("activation")) + (
            PsOp("ffn.partial_sums", "forward", 3 * t * h, t * h),
            PsOp("ffn.partial_sums.grad", "backward", 3 * t * h, t * h),
        )
    head_forward = [Gemm("lm_head.fwd", "forward", t, model.vocab, h, a="x", b="wemb", weight_operand=True)]
    head_ps = (
        PsOp("embedding", "forward", 2 * t * h, 0),
        PsOp("final_ln", "forward", 2 * t * h, 8 * t * h),
        PsOp("loss", "forward", 3 * t * model.vocab, 6 * t * model.vocab),
        # Adam in mixed precision: ~28 bytes per parameter read and written (14 two-byte elements).
        PsOp("optimizer", "update", 14 * model.params, 12 * model.params),
    ) + _accumulate(model.vocab * h, micro)
    return OpGraph(
        model,
        batch,
        seq,
        dtype_bytes,
        _layer_gemms(forward, ffn, micro, ffn_split, model.gated_ffn),
        layer_ps,
        tuple(head_forward + _with_backward(head_forward, micro)),
        head_ps,
        micro,
    )


def _layer_gemms(
    attention: list[Gemm], ffn: list[Gemm], micro: int, split: bool, gated: bool
) -> tuple[Gemm, ...]:
    """A layer's GEMMs in step order: forward, then backward in reverse; with ``split`` the FFN's
    GEMMs are one fused forward and one fused backward task (see :func:`build_graph`)."""
    if not split:
        forward = attention + ffn
        return tuple(forward + _with_backward(forward, micro))
    t, f, h = ffn[1].m, ffn[1].k, ffn[0].k
    fused = [
        Gemm("ffn.fwd", "forward", t, f, h, a="x", b="w12", fused="ffn_fwd", gated=gated),
        Gemm("ffn.bwd", "backward", t, f, h, a="d_ffn", b="w12", fused="ffn_bwd", gated=gated),
    ]
    return tuple(attention + fused[:1] + fused[1:] + _with_backward(attention, micro))


def _accumulate(params: int, micro: int) -> tuple[PsOp, ...]:
    """The PS adding ``micro`` weight-gradient parts: each part read, the sum read and written."""
    return (PsOp("grad_accumulate", "backward", 3 * micro * params, micro * params),) if micro > 1 else ()
