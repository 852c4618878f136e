"""Input checks shared by the systems: arrays of the right shape and dtype, no NaN, known options,
sizes inside their bounds and within the memory available, checked before anything is allocated."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from frugalml.common.env import available_memory
from frugalml.common.errors import InvalidInputError


def as_array(
    x: Any,
    name: str,
    *,
    ndim: int | None = None,
    dtype: Any = None,
    allow_nan: bool = False,
    allow_empty: bool = False,
) -> np.ndarray:
    """Return ``x`` as a numpy array, or raise InvalidInputError saying what is wrong with it.

    Parameters
    ----------
    x : array-like
        The user's input.
    name : str
        How the error message calls it (``"A"``, ``"X"``).
    ndim : int, optional
        Required number of dimensions.
    dtype : numpy dtype, optional
        Convert to this dtype (without copying when it already is).
    allow_nan : bool
        Whether NaN and infinity are accepted (floating inputs only are checked).
    allow_empty : bool
        Whether an array with no elements is accepted.

    Examples
    --------
    >>> as_array([[1.0, 2.0]], "X", ndim=2).shape
    (1, 2)
    """
    try:
        arr = np.asarray(x)
        complex_to_real = arr.dtype.kind == "c" and dtype is not None and np.dtype(dtype).kind != "c"
        if dtype is not None and not complex_to_real:
            arr = arr.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} cannot be read as a numeric array: {exc}") from None
    if complex_to_real:
        raise InvalidInputError(f"{name} holds complex numbers; pass real values (X.real or abs(X)) instead")
    if ndim is not None and arr.ndim != ndim:
        raise InvalidInputError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}; reshape it first")
    if not allow_empty and arr.size == 0:
        raise InvalidInputError(f"{name} is empty (shape {arr.shape}); pass at least one element")
    if not allow_nan and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InvalidInputError(
            f"{name} contains {bad} NaN or infinite value(s); remove or impute them first"
        )
    return arr


def one_of(value: str, options: Iterable[str], name: str) -> str:
    """Return ``value`` if it is one of ``options``, else raise InvalidInputError listing them."""
    options = list(options)
    if value not in options:
        raise InvalidInputError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, options))}")
    return value


def bounded(value: int, name: str, low: int, high: int | None, hint: str = "") -> int:
    """``value`` as an int when ``low <= value <= high`` (``high`` None: no upper bound), else
    InvalidInputError naming the range.

    Examples
    --------
    >>> bounded(6, "layers", 1, 64)
    6
    >>> bounded(0, "layers", 1, 64)
    Traceback (most recent call last):
    ...
    frugalml.common.errors.InvalidInputError: layers must be between 1 and 64, got 0
    >>> bounded(0, "--topics", 1, None)
    Traceback (most recent call last):
    ...
    frugalml.common.errors.InvalidInputError: --topics must be at least 1, got 0
    """
    integer = not isinstance(value, bool) and hasattr(value, "__index__")
    if not integer or int(value) < low or (high is not None and int(value) > high):
        span = f"between {low} and {high:,}" if high is not None else f"at least {low}"
        raise InvalidInputError(f"{name} must be {span}, got {value!r}{hint}")
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
