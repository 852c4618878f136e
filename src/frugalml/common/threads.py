"""Thread limits for a block of work (torch, numba, BLAS), restored when the block ends."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

from frugalml.common.errors import InvalidInputError


def usable_cores() -> int:
    """Cores this process may run on: ``OMP_NUM_THREADS`` when set, else the CPU affinity mask.

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_threads(threads: Any, name: str = "threads") -> int | None:
    """Return ``threads`` as a positive int (or None for "the default"), else raise InvalidInputError.

    Examples
    --------
    >>> check_threads(2), check_threads(None)
    (2, None)
    """
    if threads is None:
        return None
    if isinstance(threads, bool) or not hasattr(threads, "__index__") or int(threads) < 1:
        raise InvalidInputError(f"{name} must be a positive integer or None, got {threads!r}")
    return int(threads)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run torch's intra-op work on ``threads`` threads inside the block (None or 0: unchanged)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def numba_threads(threads: int | None) -> Iterator[None]:
    """Run numba's parallel loops on ``threads`` threads inside the block (None or < 1: all)."""
    import numba

    before = numba.get_num_threads()
    most = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # set at import
    wanted = most if threads is None or threads < 1 else int(threads)
    numba.set_num_threads(max(1, min(wanted, most)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS, built once (building it costs about 1 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def blas_threads(threads: int | None) -> contextlib.AbstractContextManager[Any]:
    """Limit numpy's BLAS to ``threads`` inside the block (None: unchanged).

    Nothing is changed when BLAS already runs that many threads: re-setting OpenBLAS is not free.
    """
    if threads is None:
        return contextlib.nullcontext()
    controller = _blas_controller()
    if all(lib.get_num_threads() == threads for lib in controller.lib_controllers):
        return contextlib.nullcontext()
    return controller.limit(limits=int(threads))
