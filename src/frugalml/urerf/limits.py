"""Resource bounds: refuse, before allocating, work whose memory cannot fit on this machine.

Every size a user chooses (trees, points, noise dimensions, neighbours, queries) is turned into
the least memory the work must hold; when that exceeds the memory available now, a clear
:class:`~frugalml.common.errors.InvalidInputError` says how much is needed, how much there is and
which value to lower, instead of a process that grows until the kernel kills it.
"""

from __future__ import annotations

from frugalml.common import env
from frugalml.common.errors import InvalidInputError

# least bytes one fitted tree holds besides its per-point arrays: a root node's seven fields, its
# offsets and member pointer, and the nine small arrays each tree is trimmed into while growing
TREE_OVERHEAD = 1536
POINT_BYTES = 12  # per tree and training point: its leaf, its in-bag count, its member entry


def check_fits(nbytes: int, what: str, advice: str, available: int | None = None) -> None:
    """Raise InvalidInputError when ``what`` needs more than the available memory.

    Examples
    --------
    >>> check_fits(10**6, "a small job", "lower n", available=2 * 10**6)
    >>> check_fits(3 * 2**40, "fitting 10^8 trees", "use fewer trees", available=2**34)
    Traceback (most recent call last):
    ...
    frugalml.common.errors.InvalidInputError: fitting 10^8 trees needs at least 3072.0 GiB of \
memory, more than the 16.0 GiB available here; use fewer trees
    """
    available = env.available_memory() if available is None else available
    if nbytes > available:
        raise InvalidInputError(
            f"{what} needs at least {_gib(nbytes)} of memory, more than the {_gib(available)} "
            f"available here; {advice}"
        )


def forest_bytes(n_trees: int, n_samples: int) -> int:
    """The least memory a fitted forest of ``n_trees`` trees on ``n_samples`` points holds."""
    return int(n_trees) * (TREE_OVERHEAD + POINT_BYTES * int(n_samples))


def check_forest_fits(n_trees: int, n_samples: int, available: int | None = None) -> None:
    """Refuse a forest too large for this machine, naming the most trees that could fit.

    Examples
    --------
    >>> check_forest_fits(100, 1000, available=2**30)
    >>> check_forest_fits(10**8, 1000, available=2**34)
    Traceback (most recent call last):
    ...
    frugalml.common.errors.InvalidInputError: a forest of 100000000 trees on 1000 points needs at \
least 1260.6 GiB of memory, more than the 16.0 GiB available here; use fewer trees (at most \
about 1,269,198 here; free memory or use a larger machine for more)
    """
    available = env.available_memory() if available is None else available
    most = available // forest_bytes(1, n_samples)
    check_fits(
        forest_bytes(n_trees, n_samples),
        f"a forest of {n_trees} trees on {n_samples} points",
        f"use fewer trees (at most about {most:,} here; free memory or use a larger machine for more)",
        available,
    )


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB"
