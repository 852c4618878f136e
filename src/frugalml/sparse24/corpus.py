"""Training batches from a byte-level corpus (see ``frugalml.common.corpus`` for loading one)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from frugalml.common.errors import InvalidInputError


@dataclass
class ByteBatches:
    """Random (tokens, next tokens) crops from a train / validation split of a byte corpus."""

    corpus: bytes
    seq_len: int
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise InvalidInputError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if not self.corpus:
            raise InvalidInputError("the corpus is empty; pass a text file with some content")
        tokens = torch.frombuffer(bytearray(self.corpus), dtype=torch.uint8)  # one byte per token
        split = int(len(tokens) * (1 - self.val_fraction))
        self.train, self.val = tokens[:split], tokens[split:]
        shortest = min(len(self.train), len(self.val))
        if shortest <= self.seq_len + 1:
            raise InvalidInputError(
                f"corpus of {len(tokens)} bytes is too small for seq_len={self.seq_len} with a "
                f"{self.val_fraction:.0%} validation split; use a bigger corpus or a shorter seq_len"
            )

    def batch(
        self, split: str, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.train if split == "train" else self.val
        starts = torch.randint(len(data) - self.seq_len - 1, (batch_size,), generator=generator)
        offsets = torch.arange(self.seq_len + 1)
        window = data[starts.unsqueeze(1) + offsets].long()
        return window[:, :-1], window[:, 1:]
