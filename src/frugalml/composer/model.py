"""HybridLM: a language model built from an architecture string, one primitive per sub-layer.

Read like nanoGPT: a config dataclass, an embedding, the list of primitives, a final norm and a
head tied to the embedding. Analytic counts of parameters, FLOPs and KV cache come with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from frugalml.common.errors import InvalidInputError
from frugalml.composer.primitives import PRIMITIVES, LayerConfig, Primitive


def check_arch(arch: str, primitives: str | None = None) -> str:
    """Return ``arch`` if every character names a registered primitive (or one of ``primitives``).

    Raises
    ------
    InvalidInputError
        Empty string, not a string, or a character that is not a known primitive.
    """
    if not isinstance(arch, str) or not arch:
        raise InvalidInputError(f"an architecture is a non-empty string of primitives, got {arch!r}")
    allowed = primitives if primitives is not None else "".join(PRIMITIVES)
    bad = sorted({c for c in arch if c not in allowed or c not in PRIMITIVES})
    if bad:
        raise InvalidInputError(
            f"architecture {arch!r} uses unknown primitive(s) {', '.join(map(repr, bad))}; "
            f"known: {', '.join(f'{s} ({PRIMITIVES[s].description})' for s in allowed if s in PRIMITIVES)}"
        )
    return arch


def runs(arch: str) -> list[tuple[str, int]]:
    """Split an architecture into runs of one primitive: ``"AAMMMA" -> [(A,2), (M,3), (A,1)]``."""
    out: list[tuple[str, int]] = []
    for c in arch:
        if out and out[-1][0] == c:
            out[-1] = (c, out[-1][1] + 1)
        else:
            out.append((c, 1))
    return out


def from_runs(pairs: list[tuple[str, int]]) -> str:
    """Inverse of :func:`runs`."""
    return "".join(p * h for p, h in pairs)


@dataclass(frozen=True)
class HybridConfig:
    """An architecture string plus the widths its primitives are built at."""

    arch: str
    vocab_size: int = 256
    layer: LayerConfig = field(default_factory=LayerConfig)

    def __post_init__(self) -> None:
        check_arch(self.arch)
        if int(self.vocab_size) < 2:
            raise InvalidInputError(f"vocab_size must be at least 2, got {self.vocab_size}")

    @classmethod
    def make(
        cls,
        arch: str,
        *,
        width: int = 64,
        heads: int = 4,
        kv_heads: int = 2,
        vocab_size: int = 256,
        mlp_ratio: float = 4.0,
        **layer_options,
    ) -> HybridConfig:
        """Convenience constructor: ``mlp_hidden = round(mlp_ratio * width)``."""
        layer = LayerConfig(
            width=width,
            heads=heads,
            kv_heads=kv_heads,
            mlp_hidden=layer_options.pop("mlp_hidden", round(mlp_ratio * width)),
            **layer_options,
        )
        return cls(arch, vocab_size, layer)

    def to_dict(self) -> dict:
        return asdict(self)


def non_embedding_params(arch: str, layer: LayerConfig) -> int:
    """Parameters of the sub-layers and the final norm (the embedding/head excluded)."""
    check_arch(arch)
    return sum(PRIMITIVES[c].param_count(layer) for c in arch) + layer.width


def param_count(cfg: HybridConfig) -> int:
    """All parameters of a :class:`HybridLM` (the head is tied to the embedding)."""
    return non_embedding_params(cfg.arch, cfg.layer) + cfg.vocab_size * cfg.layer.width


def flops_per_token(cfg: HybridConfig, seq_len: int) -> int:
    """Executed forward FLOPs per token (matmuls and convolutions, the output head included)."""
    return (
        sum(PRIMITIVES[c].flops_per_token(cfg.layer, seq_len) for c in cfg.arch)
        + 2 * cfg.layer.width * cfg.vocab_size
    )


def state_bytes(states: list[list[torch.Tensor]]) -> int:
    """Bytes the decoder's states (from :meth:`HybridLM.prefill` / :meth:`HybridLM.step`) really hold."""
    return sum(t.numel() * t.element_size() for layer in states for t in layer)


def kv_cache_bytes(cfg: HybridConfig, seq_len: int, *, batch: int = 1, bytes_per_element: int = 2) -> int:
    """Decode state (KV cache of attention, recurrent/conv state of the others) after ``seq_len``."""
    return batch * bytes_per_element * sum(PRIMITIVES[c].state_elements(cfg.layer, seq_len) for c in cfg.arch)


class HybridLM(nn.Module):
    """A causal language model whose sub-layers are spelled by ``cfg.arch``.

    Examples
    --------
    >>> model = HybridLM(HybridConfig.make("AMAM", width=32, heads=2, kv_heads=1))
    >>> model(torch.zeros(1, 8, dtype=torch.long)).shape
    torch.Size([1, 8, 256])
    """

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.layer.width)
        self.layers = nn.ModuleList(PRIMITIVES[c](cfg.layer) for c in cfg.arch)
        self.norm = nn.RMSNorm(cfg.layer.width)
        nn.init.normal_(self.embed.weight, std=0.02)

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states (B, T, width)."""
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)

    def _primitives(self) -> list[Primitive]:
        """The layers, typed as what they are (``nn.ModuleList`` yields plain modules)."""
        return cast("list[Primitive]", list(self.layers))  # register_primitive admits only Primitives

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, vocab)."""
        return F.linear(self.hidden(tokens), self.embed.weight)

    def aux_loss(self) -> torch.Tensor:
        """Sum of the load-balancing losses the MoE sub-layers left in the last forward pass (0 if none)."""
        losses = [loss for layer in self.layers if (loss := getattr(layer, "aux_loss", None)) is not None]
        return torch.stack(losses).sum() if losses else self.embed.weight.new_zeros(())

    def loss(
        self, tokens: torch.Tensor, targets: torch.Tensor, *, aux_coef: float = 0.01, ignore_index: int = -100
    ) -> torch.Tensor:
        """Next-token cross-entropy plus ``aux_coef`` times the MoE load-balancing loss."""
        logits = self(tokens)
        ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=ignore_index)
        return ce + aux_coef * self.aux_loss() if aux_coef else ce

    def decode_state(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Every tensor a decoder keeps after reading ``tokens`` (what :func:`kv_cache_bytes` counts)."""
        state, x = [], self.embed(tokens)
        for layer in self._primitives():
            state += layer.decode_state(x)
            x = layer(x)
        return state

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Read a prompt (B, T) in one pass: its logits (B, T, vocab) and every layer's decode state."""
        states, x = [], self.embed(tokens)
        for layer in self._primitives():
            states.append(layer.decode_state(x))
            x = layer(x)
        return F.linear(self.norm(x), self.embed.weight), states

    def step(
        self, token: torch.Tensor, states: list[list[torch.Tensor]] | None, pos: int
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Read one token per sequence (B,) at position ``pos`` (the tokens already read); return its
        next-token logits (B, vocab) and the updated states (``None`` before the first token).

        Attention keeps K/V (``S`` at most ``window`` of them), ``L`` its D x D state, ``C`` its last
        ``conv_kernel - 1`` inputs; per token the work is constant except for ``A``'s growing cache.
        """
        x = self.embed(token.reshape(-1, 1))
        states = states if states is not None else [[] for _ in self.layers]
        new = []
        for layer, state in zip(self._primitives(), states, strict=True):
            x, state = layer.step(x, state, pos)
            new.append(state)
        return F.linear(self.norm(x), self.embed.weight)[:, 0], new

    @torch.no_grad()
    def generate(
        self, prompt: torch.Tensor, max_new_tokens: int, *, temperature: float = 0.0, seed: int = 0
    ) -> torch.Tensor:
        """Continue ``prompt`` (B, T) by ``max_new_tokens`` tokens with the incremental decoder.

        ``temperature`` 0 is greedy; above 0 samples from ``softmax(logits / temperature)`` with a
        generator seeded by ``seed``. Returns (B, T + max_new_tokens).
        """
        prompt = torch.as_tensor(prompt)
        if prompt.ndim != 2 or prompt.shape[1] < 1 or prompt.dtype not in (torch.int32, torch.int64):
            raise InvalidInputError(
                f"prompt must be an integer tensor (batch, length >= 1), got "
                f"{prompt.dtype} of shape {tuple(prompt.shape)}"
            )
        if prompt.min() < 0 or prompt.max() >= self.cfg.vocab_size:
            raise InvalidInputError(f"prompt tokens must lie in [0, {self.cfg.vocab_size})")
        if int(max_new_tokens) < 0 or not temperature >= 0:
            raise InvalidInputError("max_new_tokens must be >= 0 and temperature >= 0")
        gen = torch.Generator().manual_seed(seed)
        logits, states = self.prefill(prompt.long())
        logits, out = logits[:, -1], [prompt.long()]
        for i in range(int(max_new_tokens)):
            if temperature == 0:
                token = logits.argmax(-1)
            else:
                token = torch.multinomial((logits / temperature).softmax(-1), 1, generator=gen)[:, 0]
            out.append(token[:, None])
            if i + 1 < max_new_tokens:
                logits, states = self.step(token, states, prompt.shape[1] + i)
        return torch.cat(out, dim=1)

    def non_embedding_params(self) -> int:
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("embed"))
