"""One-dimensional split criteria: FastBIC and TwoMeans (the forest's), plus slow references for tests.

``fastbic_split`` is the O(n log n) search the trees run (sort, then prefix sums); ``bic_reference``
recomputes every cut's BIC from scratch in O(n^2) and ``gmm_split`` fits a 2-component Gaussian
mixture by EM (scikit-learn), the reference the authors used (mclust).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import as_array

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Split:
    """A cut of 1-D values: points below ``threshold`` go left (``n_left`` of them)."""

    threshold: float
    score: float
    n_left: int


def _sorted_values(z) -> np.ndarray:
    z = as_array(z, "z", ndim=1, dtype=np.float64)
    if z.size < 2:
        raise InvalidInputError(f"a split needs at least 2 values, got {z.size}")
    return np.sort(z)


def _search(z, criterion: int, min_cluster_size: int) -> Split | None:
    from frugalml.urerf._trees import best_cut

    zs = _sorted_values(z)
    score, s = best_cut(zs, zs.size, criterion, int(min_cluster_size))
    if s < 0:
        return None
    return Split(0.5 * (zs[s - 1] + zs[s]), float(score), int(s))


def fastbic_split(z, min_cluster_size: int = 1) -> Split | None:
    """The cut minimising the BIC of a two-component 1-D Gaussian mixture (paper's FastBIC).

    Parameters
    ----------
    z : array-like, shape (n,)
        Projected values of the node's points.
    min_cluster_size : int
        Smallest number of points allowed on either side.

    Returns
    -------
    Split or None
        None when no cut qualifies (constant values, or every side too small or constant).

    Examples
    --------
    >>> fastbic_split([0.0, 0.1, 0.2, 5.0, 5.1, 5.3]).n_left
    3
    """
    from frugalml.urerf._trees import FASTBIC

    return _search(z, FASTBIC, min_cluster_size)


def twomeans_split(z, min_cluster_size: int = 1) -> Split | None:
    """The cut minimising the within-side sum of squares (1-D two-means)."""
    from frugalml.urerf._trees import TWOMEANS

    return _search(z, TWOMEANS, min_cluster_size)


def bic_reference(z, min_cluster_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every cut's BIC computed directly (O(n^2)): (unequal-variance BIC, pooled BIC) per cut s.

    Entry s - 1 scores the left side ``sorted(z)[:s]``; inf where the cut is not allowed.
    """
    zs = _sorted_values(z)
    n = zs.size
    unequal = np.full(n - 1, np.inf)
    pooled = np.full(n - 1, np.inf)
    spread = np.var(zs)
    for s in range(1, n):
        a, b = zs[:s], zs[s:]
        if min(s, n - s) < max(min_cluster_size, 1) or zs[s] <= zs[s - 1]:
            continue
        v1, v2 = np.var(a), np.var(b)
        if v1 <= 1e-12 * spread or v2 <= 1e-12 * spread:
            continue
        mix = -2.0 * (s * np.log(s / n) + (n - s) * np.log((n - s) / n))
        unequal[s - 1] = (
            mix + s * (LOG_2PI + np.log(v1)) + (n - s) * (LOG_2PI + np.log(v2)) + n + 5 * np.log(n)
        )
        pooled_var = (s * v1 + (n - s) * v2) / n
        pooled[s - 1] = mix + n * (LOG_2PI + np.log(pooled_var)) + n + 4 * np.log(n)
    return unequal, pooled


def gmm_split(z, seed: int = 0) -> Split | None:
    """The cut between the two components of a 2-component Gaussian mixture fitted by EM."""
    from sklearn.mixture import GaussianMixture

    zs = _sorted_values(z)
    gmm = GaussianMixture(2, n_init=5, random_state=seed).fit(zs[:, None])
    labels = gmm.predict(zs[:, None])
    first = labels[0]
    change = np.flatnonzero(labels != first)
    if change.size == 0:
        return None
    s = int(change[0])
    return Split(0.5 * (zs[s - 1] + zs[s]), float(gmm.bic(zs[:, None])), s)
