"""Operands with run-time zeros for benchmarks and the demo: uniform, blocks, dead columns, ReLU."""

from __future__ import annotations

from functools import cache

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.seeding import rng

PATTERNS = ("random", "block16", "columns", "relu")


def random_zeros(shape: tuple[int, int], sparsity: float, seed=0, dtype=np.float32) -> np.ndarray:
    """Gaussian entries, each zero with probability ``sparsity``."""
    gen = rng(seed)
    x = gen.standard_normal(shape).astype(dtype)
    x[gen.random(shape) < sparsity] = 0
    return x


def block_zeros(
    shape: tuple[int, int], sparsity: float, seed=0, dtype=np.float32, block: int = 16
) -> np.ndarray:
    """Gaussian entries where whole runs of ``block`` consecutive entries of a row are zero."""
    gen = rng(seed)
    x = gen.standard_normal(shape).astype(dtype)
    blocks = gen.random((shape[0], -(-shape[1] // block))) < sparsity
    x[np.repeat(blocks, block, axis=1)[:, : shape[1]]] = 0
    return x


def column_zeros(
    shape: tuple[int, int], sparsity: float, seed=0, dtype=np.float32, exponent: float = 1.2
) -> np.ndarray:
    """LLM-like neurons: column j is active with a power-law probability (few hot, many dead)."""
    gen = rng(seed)
    ranks = gen.permutation(shape[1]) + 1.0
    weight = ranks**-exponent
    active = np.minimum(weight * (1.0 - sparsity) * shape[1] / weight.sum(), 1.0)
    for _ in range(20):  # clipping at 1 lowers the mean; rescale the rest until it matches
        deficit = (1.0 - sparsity) * shape[1] - active.sum()
        free = active < 1.0
        if deficit <= 1e-9 or not free.any():
            break
        active[free] = np.minimum(active[free] * (1 + deficit / active[free].sum()), 1.0)
    x = gen.standard_normal(shape).astype(dtype)
    x[gen.random(shape) >= active] = 0
    return x


@cache
def _digits_activations(hidden: int, seed: int) -> np.ndarray:
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    model = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=15, random_state=seed)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return np.maximum(X @ model.coefs_[0] + model.intercepts_[0], 0.0)


def relu_activations(shape: tuple[int, int], sparsity: float, seed=0, dtype=np.float32) -> np.ndarray:
    """Real ReLU activations of a small MLP trained on sklearn's digits, thresholded to ``sparsity``.

    Rows are samples (digits has 1797; more are drawn with replacement), columns hidden units.
    When the natural ReLU sparsity is below ``sparsity``, the smallest activations are zeroed
    (a thresholded variant); when above, the activations are used as they are.
    """
    acts = _digits_activations(shape[1], 0)
    gen = rng(seed)
    x = acts[gen.integers(0, acts.shape[0], shape[0])].astype(dtype)
    if np.mean(x == 0) < sparsity:
        x[x <= np.quantile(x, sparsity)] = 0
    return x


def make(pattern: str, shape: tuple[int, int], sparsity: float, seed=0, dtype=np.float32) -> np.ndarray:
    """One operand with the named zero pattern."""
    if not 0.0 <= sparsity <= 1.0:
        raise InvalidInputError(f"sparsity must be between 0 and 1, got {sparsity}")
    makers = {
        "random": random_zeros,
        "block16": block_zeros,
        "columns": column_zeros,
        "relu": relu_activations,
    }
    if pattern not in makers:
        raise InvalidInputError(f"unknown pattern {pattern!r}; choose one of: {', '.join(PATTERNS)}")
    return makers[pattern](shape, sparsity, seed, dtype)


def operands(pattern: str, n: int, sparsity: float, seed=0, dtype=np.float32):
    """(A, B) of shape n x n: A with the pattern, B uniform random (relu) or the same pattern."""
    A = make(pattern, (n, n), sparsity, seed, dtype)
    b_pattern = "random" if pattern == "relu" else pattern
    B = make(b_pattern, (n, n), sparsity, seed + 1, dtype)
    return A, B
