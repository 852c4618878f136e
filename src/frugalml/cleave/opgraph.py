"""The op graph of one training step: every forward and backward GEMM with its shape, in order.

GEMMs are what Cleave farms out as tiles; everything else (norms, softmax, activations, residuals,
loss, optimizer) stays on the parameter server and is listed as a :class:`PsOp` with the bytes it
touches. All transformer layers are identical, so the graph stores one layer and a repeat count.

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


@dataclass(frozen=True)
class Gemm:
    """``batch`` independent products ``C[m, n] = A[m, k] @ B[k, n]``.

    ``a`` and ``b`` say what the operands are (``"x"``, ``"w_qkv"``...); ``weight_operand`` is true
    when ``b`` is a model weight (the PS holds it; devices may cache it).
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

    @property
    def flops(self) -> int:
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
    optimizer).
    """

    model: ModelSpec
    batch: int
    seq: int
    dtype_bytes: int
    layer_gemms: tuple[Gemm, ...]
    layer_ps_ops: tuple[PsOp, ...]
    head_gemms: tuple[Gemm, ...]
    head_ps_ops: tuple[PsOp, ...]

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

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
        return ([(n, i) for i in layers for n in fwd] + [(n, -1) for n in head_fwd + head_bwd]
                + [(n, i) for i in reversed(layers) for n in bwd])

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


def _with_backward(forward: list[Gemm]) -> list[Gemm]:
    """Backward GEMMs of ``C = A B``, in reverse order: ``dA = dC B^T`` and ``dB = A^T dC``."""
    backward = []
    for g in reversed(forward):
        base = g.name.removesuffix(".fwd")
        backward.append(Gemm(f"{base}.d{g.a}", "backward", g.m, g.k, g.n, g.batch, f"d_{base}",
                             g.b, weight_operand=g.weight_operand))
        backward.append(Gemm(f"{base}.d{g.b}", "backward", g.k, g.n, g.m, g.batch, g.a, f"d_{base}"))
    return backward


def build_graph(model: ModelSpec, batch: int, seq: int, dtype_bytes: int = 2) -> OpGraph:
    """Every GEMM and PS op of one training step (forward, backward, optimizer).

    Parameters
    ----------
    model : ModelSpec
    batch, seq : int
        Sequences per step and tokens per sequence (``batch * seq`` tokens).
    dtype_bytes : int
        Bytes per element moved and stored (2 for fp16/bf16).

    Raises
    ------
    InvalidInputError
        Non-positive batch, sequence length or element size.
    """
    for name, value in (("batch", batch), ("seq", seq), ("dtype_bytes", dtype_bytes)):
        if not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    t, h, f = batch * seq, model.hidden, model.ffn
    heads, dh = model.heads, model.head_dim
    up_width = 2 * f if model.gated_ffn else f
    forward = [
        Gemm("qkv.fwd", "forward", t, h + 2 * model.kv_dim, h, a="x", b="wqkv", weight_operand=True),
        Gemm("scores.fwd", "forward", seq, seq, dh, batch * heads, a="q", b="k"),
        Gemm("context.fwd", "forward", seq, dh, seq, batch * heads, a="p", b="v"),
        Gemm("out.fwd", "forward", t, h, h, a="ctx", b="wo", weight_operand=True),
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
    )
    head_forward = [Gemm("lm_head.fwd", "forward", t, model.vocab, h, a="x", b="wemb", weight_operand=True)]
    head_ps = (
        PsOp("embedding", "forward", 2 * t * h, 0),
        PsOp("final_ln", "forward", 2 * t * h, 8 * t * h),
        PsOp("loss", "forward", 3 * t * model.vocab, 6 * t * model.vocab),
        # Adam in mixed precision: ~28 bytes per parameter read and written (14 two-byte elements).
        PsOp("optimizer", "update", 14 * model.params, 12 * model.params),
    )
    return OpGraph(model, batch, seq, dtype_bytes, tuple(forward + _with_backward(forward)), layer_ps,
                   tuple(head_forward + _with_backward(head_forward)), head_ps)
