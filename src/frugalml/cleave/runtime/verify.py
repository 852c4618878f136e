"""Freivalds' check of a returned tile: ``A (B r) == C r`` for a random vector ``r``, in O(mk + kn + mn)."""

from __future__ import annotations

import numpy as np

TOLERANCE = 16.0


def freivalds_check(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, rng: np.random.Generator, rounds: int = 1
) -> bool:
    """Whether ``c`` equals ``a @ b`` up to floating-point rounding, tested with Gaussian vectors.

    A wrong ``c`` passes a round only if ``r`` happens to be orthogonal to its error, so one round
    suffices. Both sides are evaluated in float64; the allowed difference in row ``i`` is
    ``TOLERANCE * eps * ||A_i|| * sqrt(sum_j ||B_j||^2 r_j^2)`` with ``TOLERANCE = 16`` and ``eps``
    of the tile's dtype (float32: ``16 eps = 1.9e-6``), a generous bound on the rounding of
    length-``k`` dot products. An error ``E`` passes row ``i`` when ``|E_i . r|`` is under it; an
    error that passes (almost) every draw of ``r`` has entries of at most about
    ``TOLERANCE * eps / 6 * ||A_i|| ||B_j||`` with random signs (``3.2e-7`` relative in float32),
    and training with such an error on every tile still matches one process within ``1e-5``
    relative (tested). The sanity check used on every tile (``plausible``) is only a bound:
    finite and ``|C_ij| <= (1 + 1e-3) ||A_i|| ||B_j||``, so verify rates below 1 need trusted
    workers.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 5))
    >>> freivalds_check(a, b, a @ b, rng), freivalds_check(a, b, a @ b + 1e-3, rng)
    (True, False)
    """
    if c.shape != (a.shape[0], b.shape[1]) or not np.isfinite(c).all():
        return False
    eps = np.finfo(np.result_type(a.dtype, b.dtype, c.dtype)).eps
    a64, b64, c64 = a.astype(np.float64), b.astype(np.float64), c.astype(np.float64)
    row_norms = np.linalg.norm(a64, axis=1)
    col_norms = np.linalg.norm(b64, axis=0)
    for _ in range(rounds):
        r = rng.standard_normal(b.shape[1])
        difference = np.abs(a64 @ (b64 @ r) - c64 @ r)
        allowed = TOLERANCE * eps * row_norms * np.sqrt(np.sum((col_norms * r) ** 2))
        if not (difference <= allowed + np.finfo(np.float64).tiny).all():
            return False
    return True
