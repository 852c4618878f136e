"""The pure-numpy reference every kernel is tested against: filter the operands, then a float64 GEMM."""

from __future__ import annotations

import numpy as np


def effective(x: np.ndarray, mask: np.ndarray | None = None, threshold: float = 0.0) -> np.ndarray:
    """``x`` with the entries a masked multiply ignores set to zero (outside the mask, ``|x| <= t``)."""
    keep = np.abs(x) > threshold
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool)
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


def reference_matmul(
    A: np.ndarray,
    B: np.ndarray,
    *,
    a_mask: np.ndarray | None = None,
    b_mask: np.ndarray | None = None,
    threshold: float = 0.0,
) -> np.ndarray:
    """What :func:`frugalml.maskedmm.matmul` must return, computed in float64 and cast back.

    Examples
    --------
    >>> reference_matmul(np.eye(2, dtype=np.float32), np.ones((2, 3), np.float32)).shape
    (2, 3)
    """
    a = effective(np.asarray(A), a_mask, threshold).astype(np.float64)
    b = effective(np.asarray(B), b_mask, threshold).astype(np.float64)
    return (a @ b).astype(np.result_type(A.dtype, B.dtype))
