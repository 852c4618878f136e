"""Bounds on every size a command or a configuration may ask for, checked before anything is allocated.

A mistyped ``--layers 100000`` or ``--batch-size 100000000`` is a one-line error that names the
bound, instead of an allocation of tens of GiB, a traceback or a run that never ends.
"""

from __future__ import annotations

import math

from frugalml.common.env import available_memory
from frugalml.common.errors import InvalidInputError

MAX_SEARCH_LAYERS = 64  # searched architectures (the paper searches 6 and 16)
MAX_LAYERS = 10_000  # extrapolated architectures
MAX_WIDTH = 16_384
MAX_STEPS = 10_000_000
MAX_BATCH = 65_536
MAX_SEQ_LEN = 1 << 20
MAX_GENERATE = 1_000_000
MAX_SEEDS = 100_000  # engine seeds of one comparison
MAX_SEED = 2**32 - 1
MAX_WORKERS = 4096  # Ray CPUs; local processes are bounded by this machine's cores


def bounded(value: int, name: str, low: int, high: int, hint: str = "") -> int:
    """``value`` as an int when ``low <= value <= high``, else InvalidInputError naming the range.

    Examples
    --------
    >>> bounded(6, "layers", 1, MAX_SEARCH_LAYERS)
    6
    >>> bounded(0, "layers", 1, 64)
    Traceback (most recent call last):
    ...
    frugalml.common.errors.InvalidInputError: layers must be between 1 and 64, got 0
    """
    if isinstance(value, bool) or not hasattr(value, "__index__") or not low <= int(value) <= high:
        raise InvalidInputError(f"{name} must be between {low} and {high:,}, got {value!r}{hint}")
    return int(value)


def positive_finite(value: float, name: str) -> float:
    """``value`` when it is a finite number above 0, else InvalidInputError.

    Examples
    --------
    >>> positive_finite(3e-3, "lr")
    0.003
    """
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise InvalidInputError(f"{name} must be a finite number above 0, got {value!r}")
    return float(value)


def training_bytes(
    *, params: int, width: int, layers: int, attention_layers: int, heads: int, batch: int, seq_len: int
) -> int:
    """A generous estimate of the memory one training step of a :class:`HybridLM` needs: fp32
    parameters, gradients and two AdamW moments, the activations kept for the backward pass (about
    24 values per layer, width and token, plus the 256-way logits three times) and the attention
    score matrices.

    Examples
    --------
    >>> training_bytes(params=10**6, width=64, layers=6, attention_layers=3, heads=4, batch=16, seq_len=128)
    33214464
    """
    tokens = batch * seq_len
    activations = tokens * (24 * layers * width + 3 * 256)
    scores = 2 * batch * heads * seq_len * seq_len * attention_layers
    return 4 * (4 * params + activations + scores)


def check_memory(needed: int, what: str, hint: str) -> None:
    """InvalidInputError when ``needed`` bytes exceed the memory available now.

    Examples
    --------
    >>> check_memory(1, "a tiny model", "")
    """
    free = available_memory()
    if needed > free:
        raise InvalidInputError(
            f"{what} needs about {needed / 2**30:.1f} GiB, {free / 2**30:.1f} GiB are available; {hint}"
        )
