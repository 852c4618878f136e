"""A small nanoGPT-style decoder with ReLU^2 feed-forward blocks and a KV cache, to measure
maskedmm inside a real model: trained on a text corpus (byte level) until its FFN activations
reach their natural sparsity, and widened with those activation patterns replayed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalml.common.errors import InvalidInputError


@dataclass(frozen=True)
class LMConfig:
    """Shape of the decoder: ``ffn_mult`` x ``d_model`` hidden units per FFN."""

    vocab: int = 256
    d_model: int = 128
    n_layer: int = 2
    n_head: int = 4
    ffn_mult: int = 4
    block_size: int = 256

    @property
    def hidden(self) -> int:
        return self.ffn_mult * self.d_model


class ReLUSquared(nn.Module):
    """relu(x)^2 (Primer, So et al. 2021): exact zeros wherever x <= 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.square(F.relu(x))


class ReplayedReLUSquared(nn.Module):
    """relu^2 magnitudes on a zero pattern replayed from a trained model's activations.

    ``patterns`` holds boolean rows (positions of the trained model, one layer) of width ``w``;
    ``columns`` maps each of this layer's units to one unit of the trained layer (sampled with
    replacement), so each output row keeps a recorded row's density and its units' frequencies.
    Rows are taken in turn, one per token; the turn is kept in a tensor (not a Python int), so
    ``torch.compile`` does not guard on it and recompile on every call.
    """

    def __init__(self, patterns: np.ndarray, hidden: int, seed: int = 0) -> None:
        super().__init__()
        gen = np.random.default_rng(seed)
        columns = gen.integers(0, patterns.shape[1], hidden)
        order = gen.permutation(patterns.shape[0])
        self.register_buffer("pool", torch.from_numpy(patterns[order][:, columns].astype(np.float32)))
        self.register_buffer("next", torch.zeros((), dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).shape[0]
        index = (torch.arange(rows) + self.next) % self.pool.shape[0]
        self.next.add_(rows).remainder_(self.pool.shape[0])
        mask = self.pool[index].reshape(x.shape).to(x.dtype)
        return torch.square(x) * mask


class KVCache:
    """Keys and values of every layer for up to ``max_len`` positions of a batch."""

    def __init__(self, config: LMConfig, batch: int, max_len: int, dtype=torch.float32) -> None:
        head = config.d_model // config.n_head
        shape = (batch, config.n_head, max_len, head)
        self.keys = [torch.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.values = [torch.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0


class Attention(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.d_model, 3 * config.d_model)
        self.c_proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        start = 0
        if cache is not None:
            start = cache.length
            cache.keys[layer][:, :, start : start + t] = k
            cache.values[layer][:, :, start : start + t] = v
            k, v = cache.keys[layer][:, :, : start + t], cache.values[layer][:, :, : start + t]
        if start == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif t == 1:
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            mask = torch.ones(t, start + t, dtype=torch.bool).tril(start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.d_model, config.hidden)
        self.act: nn.Module = ReLUSquared()
        self.c_proj = nn.Linear(config.hidden, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = Attention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class TinyLM(nn.Module):
    """Byte-level decoder: token and position embeddings, pre-norm blocks, a tied output head."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab, config.d_model)
        self.wpe = nn.Embedding(config.block_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        start = cache.length if cache is not None else 0
        t = idx.shape[1]
        if start + t > self.config.block_size:
            raise InvalidInputError(
                f"{start + t} positions exceed the model's block size {self.config.block_size}; "
                "pass a shorter text or build the model with a larger block_size"
            )
        x = self.wte(idx) + self.wpe(torch.arange(start, start + t))
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length = start + t
        return F.linear(self.ln_f(x), self.wte.weight)


def generate(model: TinyLM, prompt: torch.Tensor, tokens: int) -> torch.Tensor:
    """Greedy decoding of ``tokens`` tokens after ``prompt`` (batch, length), with a KV cache."""
    cache = KVCache(model.config, prompt.shape[0], prompt.shape[1] + tokens, model.wte.weight.dtype)
    logits = model(prompt, cache)
    out = []
    for _ in range(tokens):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        out.append(nxt)
        logits = model(nxt, cache)
    return torch.cat(out, dim=1)


def corpus_bytes(path) -> torch.Tensor:
    """A text file as a tensor of byte values."""
    return torch.from_numpy(np.frombuffer(open(path, "rb").read(), dtype=np.uint8).astype(np.int64))


def train(
    model: TinyLM,
    data: torch.Tensor,
    *,
    steps: int,
    batch: int = 16,
    seq: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    quiet: bool = False,
    activation_l1: float = 0.0,
) -> list[float]:
    """AdamW with a one-cycle schedule on random windows of ``data``; returns the loss per step
    (cross-entropy alone).

    ``activation_l1`` > 0 adds that multiple of the FFN activations' mean (an L1 penalty: ReLU^2
    outputs are non-negative) to the loss, a sparsity-friendly recipe (as in ProSparse, Song et
    al. 2024) that drives more of them to exact zeros.
    """
    from frugalml.common.progress import progress

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    losses = []
    penalties: list[torch.Tensor] = []
    hooks = [
        block.mlp.act.register_forward_hook(lambda m, i, out: penalties.append(out.mean()))
        for block in model.blocks
        if activation_l1 > 0
    ]
    model.train()
    try:
        for _ in progress(range(steps), desc="training", quiet=quiet):
            starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=gen)
            x = torch.stack([data[s : s + seq] for s in starts.tolist()])
            y = torch.stack([data[s + 1 : s + seq + 1] for s in starts.tolist()])
            penalties.clear()
            loss = F.cross_entropy(model(x).reshape(-1, model.config.vocab), y.reshape(-1))
            total = loss + activation_l1 * torch.stack(penalties).sum() if penalties else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    finally:
        for h in hooks:
            h.remove()
    model.eval()
    return losses


def ffn_patterns(
    model: TinyLM, data: torch.Tensor, *, rows: int = 2048, seq: int = 128, seed: int = 1
) -> list[np.ndarray]:
    """Each FFN's non-zero pattern (bool, positions x hidden) on held-out windows of ``data``."""
    gen = torch.Generator().manual_seed(seed)
    captured: list[list[torch.Tensor]] = [[] for _ in model.blocks]
    hooks = [
        block.mlp.act.register_forward_hook(
            lambda m, i, o, k=k: captured[k].append(o.reshape(-1, o.shape[-1]) != 0)
        )
        for k, block in enumerate(model.blocks)
    ]
    try:
        with torch.inference_mode():
            for _ in range(-(-rows // seq)):
                s = int(torch.randint(0, len(data) - seq, (1,), generator=gen))
                model(data[s : s + seq][None])
    finally:
        for h in hooks:
            h.remove()
    return [torch.cat(c)[:rows].numpy() for c in captured]


def replayed(config: LMConfig, patterns: list[np.ndarray], seed: int = 0) -> TinyLM:
    """A model of ``config``'s width (random weights) whose FFN activations replay ``patterns``
    (layer ``i`` takes the trained model's layer ``i mod len(patterns)``)."""
    torch.manual_seed(seed)
    model = TinyLM(config).eval()
    for i, block in enumerate(model.blocks):
        block.mlp.act = ReplayedReLUSquared(patterns[i % len(patterns)], config.hidden, seed + i)
    return model
