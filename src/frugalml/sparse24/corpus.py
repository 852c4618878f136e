"""Byte-level corpora: the Python standard library's own sources (embedded, no download) or a text file."""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from frugalml.common.data import resolve
from frugalml.common.errors import InvalidInputError


def stdlib_corpus(max_bytes: int = 2_000_000) -> bytes:
    """The first ``max_bytes`` of this Python's standard-library ``*.py`` files, in sorted order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks, size = [], 0
    for path in sorted(root.glob("*.py")):
        data = path.read_bytes()
        chunks.append(data)
        size += len(data)
        if size >= max_bytes:
            break
    return b"".join(chunks)[:max_bytes]


def load_corpus(data: str | None = None, max_bytes: int | None = None) -> bytes:
    """Bytes of ``data`` (a path, or a name under ``corpora/`` in $FRUGAL_DATA, e.g.
    ``tinyshakespeare.txt``), or of the embedded standard-library corpus when ``data`` is None.
    """
    if data is None:
        return stdlib_corpus(max_bytes or 2_000_000)
    path = Path(data).expanduser()
    if not path.exists():
        path = resolve(f"corpora/{data}", hint="tinyshakespeare.txt is karpathy/char-rnn's input.txt")
    raw = path.read_bytes()
    return raw[:max_bytes] if max_bytes else raw


@dataclass
class ByteBatches:
    """Random (tokens, next tokens) crops from a train / validation split of a byte corpus."""

    corpus: bytes
    seq_len: int
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        tokens = torch.frombuffer(bytearray(self.corpus), dtype=torch.uint8).long()
        split = int(len(tokens) * (1 - self.val_fraction))
        self.train, self.val = tokens[:split], tokens[split:]
        shortest = min(len(self.train), len(self.val))
        if shortest <= self.seq_len + 1:
            raise InvalidInputError(
                f"corpus of {len(tokens)} bytes is too small for seq_len={self.seq_len} with a "
                f"{self.val_fraction:.0%} validation split; use a bigger corpus or a shorter seq_len"
            )

    def batch(self, split: str, batch_size: int,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.train if split == "train" else self.val
        starts = torch.randint(len(data) - self.seq_len - 1, (batch_size,), generator=generator)
        offsets = torch.arange(self.seq_len + 1)
        window = data[starts.unsqueeze(1) + offsets]
        return window[:, :-1], window[:, 1:]
