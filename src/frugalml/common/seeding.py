"""One seed for every random thing, so results are reproducible run to run on one machine."""

from __future__ import annotations

import random

import numpy as np


def rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a numpy Generator from a seed (or pass a Generator through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's legacy and (when installed) torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
