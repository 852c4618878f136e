"""The tiny GPT the runtime trains (nanoGPT-shaped, every Linear tileable), its data and a reference loop."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalml.cleave.runtime.gemm import TiledLinear, planned_names
from frugalml.common.errors import DataNotFoundError, InvalidInputError
from frugalml.common.seeding import rng

MODELS = ("tiny-gpt",)
_WORDS = (
    "the edge device idle phone laptop trains model tile server worker sends small large "
    "link slow fast learns token layer gradient step shares battery night compute"
).split()


@dataclass(frozen=True)
class GPTConfig:
    """Shape of the tiny GPT."""

    vocab_size: int = 64
    block_size: int = 32
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64


@dataclass(frozen=True)
class TrainConfig:
    """What one training run does: model shape, batch, optimiser, steps, seed and dtype."""

    model: str = "tiny-gpt"
    gpt: GPTConfig = GPTConfig()
    batch_size: int = 8
    lr: float = 3e-3
    steps: int = 20
    seed: int = 0
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return asdict(self)


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention then an MLP, both residual."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.c_attn = TiledLinear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = TiledLinear(cfg.n_embd, cfg.n_embd)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.c_fc = TiledLinear(cfg.n_embd, 4 * cfg.n_embd)
        self.mlp_proj = TiledLinear(4 * cfg.n_embd, cfg.n_embd)
        # the planner's op graph names (opgraph.build_graph), so a plan's grids find their GEMMs
        self.c_attn.gemm_names = planned_names("qkv", "x", "wqkv")
        self.c_proj.gemm_names = planned_names("out", "ctx", "wo")
        self.c_fc.gemm_names = planned_names("ffn_up", "x", "w1")
        self.mlp_proj.gemm_names = planned_names("ffn_down", "act", "w2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(att.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class TinyGPT(nn.Module):
    """Token + position embeddings, ``n_layer`` blocks, final norm and an untied LM head."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = TiledLinear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.gemm_names = planned_names("lm_head", "x", "wemb")

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1])
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def generated_corpus(n_chars: int = 20000, seed: int = 0) -> str:
    """A deterministic pseudo-English text from a small vocabulary (the default, offline corpus)."""
    gen = rng(seed)
    sentences = []
    while sum(map(len, sentences)) < n_chars:
        words = gen.choice(_WORDS, size=int(gen.integers(4, 12)))
        sentences.append(" ".join(words).capitalize() + ". ")
    return "".join(sentences)[:n_chars]


def load_corpus(path: str | Path | None) -> str:
    """Text from ``path`` (e.g. tinyshakespeare.txt), or the generated corpus when None."""
    if path is None:
        return generated_corpus()
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"corpus {path} does not exist; pass a text file with --data")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text; pass a plain text corpus") from None
    return text


class CharData:
    """A character-level token stream and its fixed, seeded batches (step ``s`` always gets the same one)."""

    def __init__(self, text: str, block_size: int, vocab_size: int):
        chars = sorted(set(text))
        if len(chars) > vocab_size:
            chars = [c for c, _ in sorted(((c, -text.count(c)) for c in chars), key=lambda p: p[1])]
            chars = sorted(chars[: vocab_size - 1])
        lookup = {c: i + 1 for i, c in enumerate(chars)}  # 0 stands for rare characters
        self.tokens = np.fromiter((lookup.get(c, 0) for c in text), dtype=np.int64, count=len(text))
        if len(self.tokens) <= block_size + 1:
            raise InvalidInputError(
                f"the corpus has {len(self.tokens)} characters; it needs more than {block_size + 1}"
            )
        self.block_size = block_size

    def batch(self, step: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-character targets of the batch of training step ``step``."""
        starts = np.random.default_rng([seed, step]).integers(
            0, len(self.tokens) - self.block_size - 1, size=batch_size
        )
        offsets = starts[:, None] + np.arange(self.block_size)[None, :]
        return torch.from_numpy(self.tokens[offsets]), torch.from_numpy(self.tokens[offsets + 1])


def build(cfg: TrainConfig, text: str) -> tuple[TinyGPT, torch.optim.Optimizer, CharData]:
    """The seeded model, its AdamW optimiser and the data, identical wherever they are built."""
    torch.manual_seed(cfg.seed)
    model = TinyGPT(cfg.gpt).to(torch.float64 if cfg.dtype == "float64" else torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    return model, optimizer, CharData(text, cfg.gpt.block_size, cfg.gpt.vocab_size)


def train_step(
    model: TinyGPT, optimizer: torch.optim.Optimizer, data: CharData, cfg: TrainConfig, step: int
) -> float:
    """One full synchronous step (forward, backward, AdamW); returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    x, y = data.batch(step, cfg.batch_size, cfg.seed)
    loss = model(x, y)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def gemm_shapes(cfg: TrainConfig) -> list[tuple[int, int, int]]:
    """``(m, n, k)`` of every GEMM one training step sends to workers, in order of the forward pass.

    Each Linear ``in -> out`` over ``T`` tokens contributes ``Y = X W^T`` (T, out, in),
    ``dX = dY W`` (T, in, out) and ``dW = dY^T X`` (out, in, T).
    """
    gpt, tokens = cfg.gpt, cfg.batch_size * cfg.gpt.block_size
    c = gpt.n_embd
    linears = [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)] * gpt.n_layer + [(c, gpt.vocab_size)]
    return [shape for i, o in linears for shape in ((tokens, o, i), (tokens, i, o), (o, i, tokens))]


def train_single_process(cfg: TrainConfig, text: str | None = None) -> list[float]:
    """Losses of plain in-process training (no tiles, no network): the reference for exactness."""
    model, optimizer, data = build(cfg, generated_corpus() if text is None else text)
    return [train_step(model, optimizer, data, cfg, step) for step in range(cfg.steps)]
