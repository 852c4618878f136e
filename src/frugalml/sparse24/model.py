"""A tiny Llama in one file (RMSNorm, RoPE, SDPA causal attention, a pluggable FFN), nanoGPT style."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import one_of
from frugalml.sparse24.layers import FFN_KINDS, MoEFFN

MAX_SIZE = 2**31 - 1  # any model dimension or count; memory is checked against the machine separately


@dataclass
class LlamaConfig:
    """Shape of a :class:`TinyLlama`; the defaults give about 3.3M parameters over bytes."""

    vocab_size: int = 256
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    hidden: int = 1024
    ffn: str = "relu2"
    n_experts: int = 4
    top_k: int = 2
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        one_of(self.ffn, (*FFN_KINDS, "moe"), "ffn kind")
        for name in (
            "vocab_size",
            "dim",
            "n_layers",
            "n_heads",
            "hidden",
            "max_seq_len",
            "n_experts",
            "top_k",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
                raise InvalidInputError(f"{name} must be an integer in [1, {MAX_SIZE}], got {value!r}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise InvalidInputError(
                f"dim={self.dim} must split into n_heads={self.n_heads} heads of even size (RoPE)"
            )
        if self.top_k > self.n_experts:
            raise InvalidInputError(f"top_k must be in [1, n_experts={self.n_experts}], got {self.top_k}")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidInputError(f"{name} must be a finite positive number, got {value!r}")

    def parameter_count(self) -> int:
        """Parameters of the model this config builds (the output head shares the embedding)."""
        d, h = self.dim, self.hidden
        ffn = {"relu2": 2 * d * h, "swiglu": 3 * d * h}.get(
            self.ffn, self.n_experts * 2 * d * h + d * self.n_experts
        )
        return self.vocab_size * d + self.n_layers * (4 * d * d + ffn + 2 * d) + d

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim: int, length: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (length, head_dim / 2) of rotary position embeddings."""
    frequencies = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float32), frequencies)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of (batch, heads, time, head_dim) features by their position's angle."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)


class Attention(nn.Module):
    """Multi-head causal self-attention with RoPE through ``scaled_dot_product_attention``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.q_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.k_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.v_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.o_proj = nn.Linear(config.dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            proj(x).view(b, t, self.n_heads, -1).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: attention and FFN, each with a residual."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = Attention(config)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.mlp: nn.Module
        if config.ffn == "moe":
            self.mlp = MoEFFN(config.dim, config.hidden, config.n_experts, config.top_k)
        else:
            self.mlp = FFN_KINDS[config.ffn](config.dim, config.hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin)
        return x + self.mlp(self.ffn_norm(x))


class TinyLlama(nn.Module):
    """A small Llama language model; ``forward(tokens, targets)`` returns (logits, loss or None)."""

    rope_cos: torch.Tensor  # buffers
    rope_sin: torch.Tensor

    def __init__(self, config: LlamaConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(config.vocab_size, config.dim)
            self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
            self.norm = RMSNorm(config.dim, config.norm_eps)
            self.head = nn.Linear(config.dim, config.vocab_size, bias=False)
            self.head.weight = self.embed.weight
            self.apply(self._init)
        cos, sin = rope_tables(config.dim // config.n_heads, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, tokens: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = tokens.shape[1]
        if t > self.config.max_seq_len:
            raise InvalidInputError(
                f"sequence of {t} tokens exceeds max_seq_len={self.config.max_seq_len}; crop it"
            )
        x = self.embed(tokens)
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = self.head(self.norm(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss
