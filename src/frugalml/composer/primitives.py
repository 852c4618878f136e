"""The registry of primitives an architecture string is spelled in, and the six built-in ones.

Each primitive is a pre-norm residual sub-layer (``x + mix(norm(x))``) with analytic counts of
its parameters, executed forward FLOPs per token and decode-state (KV-cache) bytes, which the
tests check against the built module (``torch.utils.flop_counter`` and the tensors a decoder keeps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from frugalml.common.errors import InvalidInputError


@dataclass(frozen=True)
class LayerConfig:
    """Widths shared by every primitive of one model.

    Parameters
    ----------
    width : int
        Model (residual stream) width.
    heads, kv_heads : int
        Query heads and key/value heads of the attention primitives (grouped-query attention).
    mlp_hidden : int
        Hidden width of the SwiGLU MLP; each MoE expert gets ``mlp_hidden // top_k``.
    window : int
        Sliding-window length of ``S``.
    conv_kernel : int
        Kernel length of the short convolution ``C``.
    experts, top_k : int
        Experts of ``E`` and how many each token is routed to.
    rope_base : float
        Base of the rotary position embedding.
    """

    width: int = 64
    heads: int = 4
    kv_heads: int = 2
    mlp_hidden: int = 256
    window: int = 32
    conv_kernel: int = 4
    experts: int = 4
    top_k: int = 2
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("width", "heads", "kv_heads", "mlp_hidden", "window", "conv_kernel", "experts", "top_k"):
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.width % self.heads:
            raise InvalidInputError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.heads % self.kv_heads:
            raise InvalidInputError(f"heads {self.heads} is not divisible by kv_heads {self.kv_heads}")
        if (self.width // self.heads) % 2:
            raise InvalidInputError("the head dimension width // heads must be even (RoPE rotates pairs)")
        if self.top_k > self.experts:
            raise InvalidInputError(f"top_k {self.top_k} exceeds the number of experts {self.experts}")
        if self.mlp_hidden // self.top_k < 1:
            raise InvalidInputError("mlp_hidden // top_k must be at least 1")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


class Primitive(nn.Module):
    """A pre-norm residual sub-layer; subclasses define ``mix`` and the analytic counts."""

    symbol: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, cfg: LayerConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = nn.RMSNorm(cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.norm(x))

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The tensors an autoregressive decoder keeps after reading ``x`` (B, T, width)."""
        return []

    def step(
        self, x: torch.Tensor, state: list[torch.Tensor], pos: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Read one new token ``x`` (B, 1, width) at position ``pos`` given the decode ``state`` of the
        earlier tokens (``[]`` before the first); return the output and the updated state.

        Stateless primitives (``M``, ``E``) keep the default: the output of :meth:`forward`.
        """
        return self(x), []

    @classmethod
    def param_count(cls, cfg: LayerConfig) -> int:
        """Parameters of one sub-layer, its norm included."""
        raise NotImplementedError

    @classmethod
    def flops_per_token(cls, cfg: LayerConfig, seq_len: int) -> int:
        """Executed forward matmul/conv FLOPs per token at sequence length ``seq_len``."""
        raise NotImplementedError

    @classmethod
    def state_elements(cls, cfg: LayerConfig, seq_len: int) -> int:
        """Elements of decode state per sequence after ``seq_len`` tokens (the KV cache)."""
        return 0


PRIMITIVES: dict[str, type[Primitive]] = {}


def register_primitive(symbol: str, *, replace: bool = False) -> Callable[[type[Primitive]], type[Primitive]]:
    """Class decorator adding a :class:`Primitive` subclass to the registry under one character.

    Examples
    --------
    >>> @register_primitive("I")
    ... class Identity(Primitive):
    ...     def mix(self, h): return torch.zeros_like(h)
    ...     @classmethod
    ...     def param_count(cls, cfg): return cfg.width
    ...     @classmethod
    ...     def flops_per_token(cls, cfg, seq_len): return 0
    >>> PRIMITIVES["I"].__name__
    'Identity'
    >>> unregister_primitive("I")
    """
    if not isinstance(symbol, str) or len(symbol) != 1 or not symbol.isalnum():
        raise InvalidInputError(f"a primitive symbol is one letter or digit, got {symbol!r}")

    def add(cls: type[Primitive]) -> type[Primitive]:
        if not (isinstance(cls, type) and issubclass(cls, Primitive)):
            raise InvalidInputError(f"{cls!r} is not a subclass of composer.Primitive")
        if symbol in PRIMITIVES and PRIMITIVES[symbol] is not cls and not replace:
            raise InvalidInputError(
                f"primitive {symbol!r} is already registered ({PRIMITIVES[symbol].__name__}); "
                "pass replace=True to override it"
            )
        cls.symbol = symbol
        PRIMITIVES[symbol] = cls
        return cls

    return add


def unregister_primitive(symbol: str) -> None:
    """Remove a user primitive from the registry (the built-in ones can be replaced, not removed)."""
    if symbol in "AMSLCE":
        raise InvalidInputError(f"{symbol!r} is built in; use register_primitive(..., replace=True)")
    PRIMITIVES.pop(symbol, None)


def _norm_params(cfg: LayerConfig) -> int:
    return cfg.width


def _rope(x: torch.Tensor, base: float, offset: int = 0) -> torch.Tensor:
    """Rotate pairs of channels of ``x`` (B, H, T, D) by the angles of positions ``offset ..`` (RoPE)."""
    _, _, t, d = x.shape
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float32, device=x.device) / d)
    angles = torch.arange(offset, offset + t, dtype=torch.float32, device=x.device)[:, None] * inv[None, :]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class _Attention(Primitive):
    """Shared body of the softmax attentions: grouped-query heads with RoPE."""

    def __init__(self, cfg: LayerConfig):
        super().__init__(cfg)
        hd = cfg.head_dim
        self.q = nn.Linear(cfg.width, cfg.heads * hd, bias=False)
        self.k = nn.Linear(cfg.width, cfg.kv_heads * hd, bias=False)
        self.v = nn.Linear(cfg.width, cfg.kv_heads * hd, bias=False)
        self.o = nn.Linear(cfg.heads * hd, cfg.width, bias=False)

    def _kv(self, h: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _ = h.shape
        cfg = self.cfg
        k = self.k(h).view(b, t, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v(h).view(b, t, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
        return _rope(k, cfg.rope_base, offset), v

    def _mask(self, t: int, device: torch.device) -> torch.Tensor:
        return torch.ones(t, t, dtype=torch.bool, device=device).tril()

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        b, t, _ = h.shape
        cfg = self.cfg
        q = _rope(self.q(h).view(b, t, cfg.heads, cfg.head_dim).transpose(1, 2), cfg.rope_base)
        k, v = self._kv(h)
        group = cfg.heads // cfg.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(cfg.head_dim)
        scores = scores.masked_fill(~self._mask(t, h.device), float("-inf"))
        y = torch.matmul(scores.softmax(-1), v)
        return self.o(y.transpose(1, 2).reshape(b, t, cfg.heads * cfg.head_dim))

    @classmethod
    def param_count(cls, cfg: LayerConfig) -> int:
        hd = cfg.head_dim
        return 2 * cfg.width * cfg.heads * hd + 2 * cfg.width * cfg.kv_heads * hd + _norm_params(cfg)

    @classmethod
    def flops_per_token(cls, cfg: LayerConfig, seq_len: int) -> int:
        # dense score and value products over all seq_len keys (causality is a mask, not a saving)
        return 2 * cls.param_count(cfg) - 2 * cfg.width + 4 * seq_len * cfg.heads * cfg.head_dim

    @classmethod
    def _cached_tokens(cls, cfg: LayerConfig, seq_len: int) -> int:
        return seq_len

    @classmethod
    def state_elements(cls, cfg: LayerConfig, seq_len: int) -> int:
        return 2 * cfg.kv_heads * cfg.head_dim * cls._cached_tokens(cfg, seq_len)

    def decode_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        k, v = self._kv(self.norm(x))
        keep = self._cached_tokens(self.cfg, x.shape[1])
        return [k[:, :, -keep:], v[:, :, -keep:]]

    def step(
        self, x: torch.Tensor, state: list[torch.Tensor], pos: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        cfg = self.cfg
        h = self.norm(x)
        b = h.shape[0]
        q = _rope(self.q(h).view(b, 1, cfg.heads, cfg.head_dim).transpose(1, 2), cfg.rope_base, pos)
        k, v = self._kv(h, pos)
        if state:
            k, v = torch.cat((state[0], k), dim=2), torch.cat((state[1], v), dim=2)
        keep = self._cached_tokens(cfg, pos + 1)
        k, v = k[:, :, -keep:], v[:, :, -keep:]
        group = cfg.heads // cfg.kv_heads
        keys = k.repeat_interleave(group, dim=1)
        scores = torch.matmul(q, keys.transpose(-1, -2)) / math.sqrt(cfg.head_dim)
        y = torch.matmul(scores.softmax(-1), v.repeat_interleave(group, dim=1))
        return x + self.o(y.transpose(1, 2).reshape(b, 1, cfg.heads * cfg.head_dim)), [k, v]


@register_primitive("A")
class Attention(_Attention):
    """Causal grouped-query softmax attention with rotary positions (Llama's attention)."""

    description = "grouped-query attention with RoPE"


@register_primitive("S")
class SlidingWindowAttention(_Attention):
    """Grouped-query attention that sees only the last ``window`` tokens (Mistral / Samba style)."""

    description = "sliding-window grouped-query attention with RoPE"

    def _mask(self, t: int, device: torch.device) -> torch.Tensor:
        i = torch.arange(t, device=device)
        offset = i[:, None] - i[None, :]
        return (offset >= 0) & (offset < self.cfg.window)

    @classmethod
    def _cached_tokens(cls, cfg: LayerConfig, seq_len: int) -> int:
        return min(seq_len, cfg.window)


@register_primitive("L")
class LinearAttention(Primitive):
    """Causal linear attention with the elu+1 feature map (Katharopoulos et al. 2020).

    Training runs the parallel (masked T x T) form; a decoder keeps only a D x D state per head.
    """

    description = "causal linear attention (elu+1 features)"

    def __init__(self, cfg: LayerConfig):
        super().__init__(cfg)
        self.q = nn.Linear(cfg.width, cfg.width, bias=False)
        self.k = nn.Linear(cfg.width, cfg.width, bias=False)
        self.v = nn.Linear(cfg.width, cfg.width, bias=False)
        self.o = nn.Linear(cfg.width, cfg.width, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.cfg.heads, self.cfg.head_dim).transpose(1, 2)

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        b, t, _ = h.shape
        q = F.elu(self._heads(self.q(h))) + 1
        k = F.elu(self._heads(self.k(h))) + 1
        v = self._heads(self.v(h))
        scores = torch.matmul(q, k.transpose(-1, -2)).tril()
        y = torch.matmul(scores, v) / (scores.sum(-1, keepdim=True) + 1e-6)
        return self.o(y.transpose(1, 2).reshape(b, t, self.cfg.width))

    def decode_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.norm(x)
        k = F.elu(self._heads(self.k(h))) + 1
        v = self._heads(self.v(h))
        return [torch.einsum("bhtd,bhte->bhde", k, v), k.sum(2)]

    def step(
        self, x: torch.Tensor, state: list[torch.Tensor], pos: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.norm(x)
        q = F.elu(self._heads(self.q(h))) + 1
        k = F.elu(self._heads(self.k(h))) + 1
        v = self._heads(self.v(h))
        kv, ksum = torch.einsum("bhtd,bhte->bhde", k, v), k.sum(2)
        if state:
            kv, ksum = state[0] + kv, state[1] + ksum
        y = torch.matmul(q, kv) / (torch.matmul(q, ksum[..., None]) + 1e-6)
        return x + self.o(y.transpose(1, 2).reshape(x.shape[0], 1, self.cfg.width)), [kv, ksum]

    @classmethod
    def param_count(cls, cfg: LayerConfig) -> int:
        return 4 * cfg.width * cfg.width + _norm_params(cfg)

    @classmethod
    def flops_per_token(cls, cfg: LayerConfig, seq_len: int) -> int:
        return 8 * cfg.width * cfg.width + 4 * seq_len * cfg.width

    @classmethod
    def state_elements(cls, cfg: LayerConfig, seq_len: int) -> int:
        return cfg.heads * (cfg.head_dim * cfg.head_dim + cfg.head_dim)


@register_primitive("M")
class SwiGLU(Primitive):
    """The gated MLP of Llama: ``w2(silu(w1 h) * w3 h)``."""

    description = "SwiGLU MLP"

    def __init__(self, cfg: LayerConfig, hidden: int | None = None):
        super().__init__(cfg)
        hidden = hidden or cfg.mlp_hidden
        self.w1 = nn.Linear(cfg.width, hidden, bias=False)
        self.w3 = nn.Linear(cfg.width, hidden, bias=False)
        self.w2 = nn.Linear(hidden, cfg.width, bias=False)

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(h)) * self.w3(h))

    @classmethod
    def param_count(cls, cfg: LayerConfig) -> int:
        return 3 * cfg.width * cfg.mlp_hidden + _norm_params(cfg)

    @classmethod
    def flops_per_token(cls, cfg: LayerConfig, seq_len: int) -> int:
        return 6 * cfg.width * cfg.mlp_hidden


@register_primitive("C")
class GatedShortConv(Primitive):
    """Gated short causal convolution: ``out(c * conv(b * x))`` with a depthwise kernel (as in H3/LIV)."""

    description = "gated short depthwise causal convolution"

    def __init__(self, cfg: LayerConfig):
        super().__init__(cfg)
        self.inp = nn.Linear(cfg.width, 3 * cfg.width, bias=False)
        self.conv = nn.Conv1d(cfg.width, cfg.width, cfg.conv_kernel, groups=cfg.width, bias=False)
        self.out = nn.Linear(cfg.width, cfg.width, bias=False)

    def _gated_input(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, x = self.inp(h).chunk(3, dim=-1)
        return (b * x).transpose(1, 2), c

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        bx, c = self._gated_input(h)
        y = self.conv(F.pad(bx, (self.cfg.conv_kernel - 1, 0))).transpose(1, 2)
        return self.out(c * y)

    def decode_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        bx, _ = self._gated_input(self.norm(x))
        bx = F.pad(bx, (max(0, self.cfg.conv_kernel - 1 - bx.shape[-1]), 0))
        return [bx[..., -(self.cfg.conv_kernel - 1) :]] if self.cfg.conv_kernel > 1 else []

    def step(
        self, x: torch.Tensor, state: list[torch.Tensor], pos: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        bx, c = self._gated_input(self.norm(x))
        past = state[0] if state else bx.new_zeros(bx.shape[0], self.cfg.width, self.cfg.conv_kernel - 1)
        window = torch.cat((past, bx), dim=-1)
        y = self.conv(window).transpose(1, 2)
        return x + self.out(c * y), ([window[..., 1:]] if self.cfg.conv_kernel > 1 else [])

    @classmethod
    def param_count(cls, cfg: LayerConfig) -> int:
        return 4 * cfg.width * cfg.width + cfg.width * cfg.conv_kernel + _norm_params(cfg)

    @classmethod
    def flops_per_token(cls, cfg: LayerConfig, seq_len: int) -> int:
        return 8 * cfg.width * cfg.width + 2 * cfg.width * cfg.conv_kernel

    @classmethod
    def state_elements(cls, cfg: LayerConfig, seq_len: int) -> int:
        return cfg.width * (cfg.conv_kernel - 1)


@register_primitive("E")
class MixtureOfExperts(Primitive):
    """Top-k routed mixture of SwiGLU experts; each expert is ``mlp_hidden // top_k`` wide, so a
    token's active compute matches ``M``.

    Every forward pass leaves the Switch/GShard load-balancing loss in ``aux_loss``:
    ``experts * sum_e f_e * P_e`` with ``f_e`` the fraction of routed (token, slot) pairs sent to
    expert ``e`` and ``P_e`` its mean router probability; it is 1 when routing is uniform and grows
    as tokens pile onto few experts. :meth:`HybridLM.loss` adds it with a coefficient.
    """

    description = "top-k mixture of SwiGLU experts"

    def __init__(self, cfg: LayerConfig):
        super().__init__(cfg)
        hidden = cfg.mlp_hidden // cfg.top_k
        self.router = nn.Linear(cfg.width, cfg.experts, bias=False)
        self.w1 = nn.Parameter(torch.empty(cfg.experts, hidden, cfg.width))
        self.w3 = nn.Parameter(torch.empty(cfg.experts, hidden, cfg.width))
        self.w2 = nn.Parameter(torch.empty(cfg.experts, cfg.width, hidden))
        for w, fan_in in ((self.w1, cfg.width), (self.w3, cfg.width), (self.w2, hidden)):
            nn.init.uniform_(w, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        self.aux_loss: torch.Tensor | None = None

    def __getstate__(self) -> dict:
        # the last pass's loss is part of an autograd graph: copies and pickles leave it behind
        return {**super().__getstate__(), "aux_loss": None}

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        flat = h.reshape(b * t, d)
        logits = self.router(flat)
        gates, chosen = logits.topk(self.cfg.top_k, dim=-1)
        gates = gates.softmax(-1)
        self.aux_loss = self.load_balancing_loss(logits, chosen)
        out = torch.zeros_like(flat)
        for e in range(self.cfg.experts):
            token, slot = (chosen == e).nonzero(as_tuple=True)
            if token.numel() == 0:
                continue
            x = flat[token]
            y = F.linear(F.silu(F.linear(x, self.w1[e])) * F.linear(x, self.w3[e]), self.w2[e])
            out.index_add_(0, token, y * gates[token, slot, None])
        return out.view(b, t, d)

    def load_balancing_loss(self, logits: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Switch/GShard auxiliary loss from router ``logits`` (N, experts) and top-k ``chosen`` (N, k)."""
        experts = self.cfg.experts
        fraction = torch.bincount(chosen.flatten(), minlength=experts).to(logits.dtype) / chosen.numel()
        probability = logits.softmax(-1).mean(0)
        return experts * (fraction * probability).sum()

    @classmethod
    def param_count(cls, cfg: LayerConfig) -> int:
        hidden = cfg.mlp_hidden // cfg.top_k
        return cfg.width * cfg.experts + 3 * cfg.experts * cfg.width * hidden + _norm_params(cfg)

    @classmethod
    def flops_per_token(cls, cfg: LayerConfig, seq_len: int) -> int:
        return 2 * cfg.width * cfg.experts + cfg.top_k * 6 * cfg.width * (cfg.mlp_hidden // cfg.top_k)
