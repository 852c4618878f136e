"""One seed for every random thing, so results are reproducible run to run on one machine."""

from __future__ import annotations

import numpy as np


def rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a numpy Generator from a seed (or pass a Generator through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)
