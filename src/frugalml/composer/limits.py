"""Bounds on every size a command or a configuration may ask for, checked before anything is allocated.

A mistyped ``--layers 100000`` or ``--batch-size 100000000`` is a one-line error that names the
bound, instead of an allocation of tens of GiB, a traceback or a run that never ends.
"""

from __future__ import annotations

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
    122954752
    """
    tokens = batch * seq_len
    activations = tokens * (24 * layers * width + 3 * 256)
    scores = 2 * batch * heads * seq_len * seq_len * attention_layers
    return 4 * (4 * params + activations + scores)
