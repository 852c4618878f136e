"""How well estimated neighbours match the truth: geodesic and label precision / recall at k.

Neighbour lists exclude the point itself; ties are broken by lower index (stable sort), the same
order the forest's top-k uses.
"""

from __future__ import annotations

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import as_array


def neighbors_from_distances(distances, k: int) -> np.ndarray:
    """The k nearest columns of each row of a square distance matrix, self excluded: (n, k).

    Infinite distances (disconnected graph parts) are allowed and sort last; NaN is not.
    """
    d = np.array(as_array(distances, "distances", ndim=2, dtype=np.float64, allow_nan=True))
    n = d.shape[0]
    if d.shape != (n, n):
        raise InvalidInputError(f"distances must be square (n, n), got {d.shape}")
    if np.isnan(d).any():
        raise InvalidInputError("distances contain NaN; every pair needs a distance (inf allowed)")
    _check_k(k, n)
    np.fill_diagonal(d, -np.inf)  # self sorts first, then is dropped
    return np.argsort(d, axis=1, kind="stable")[:, 1 : k + 1]


def euclidean_neighbors(X, k: int) -> np.ndarray:
    """The k nearest rows of each row of X under Euclidean distance, self excluded: (n, k).

    Examples
    --------
    >>> euclidean_neighbors(np.array([[0.0], [1.0], [3.0]]), 1).ravel().tolist()
    [1, 0, 1]
    """
    from sklearn.neighbors import NearestNeighbors

    ind = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(return_distance=False)
    return ind[:, :k]


def _check_k(k: int, n: int) -> None:
    if not isinstance(k, int | np.integer) or k < 1 or k >= n:
        raise InvalidInputError(f"k must be an integer in [1, n - 1] = [1, {n - 1}], got {k!r}")


def _as_neighbors(neighbors, k: int) -> np.ndarray:
    ind = as_array(neighbors, "neighbors", ndim=2)
    if ind.dtype.kind not in "iu":
        raise InvalidInputError(
            "neighbors must be integer indices (n, >= k); got "
            f"dtype {ind.dtype} (use neighbors_from_distances for distances)"
        )
    if ind.shape[1] < k:
        raise InvalidInputError(f"neighbors has {ind.shape[1]} columns, fewer than k={k}")
    return ind[:, :k]


def geodesic_precision_at_k(neighbors, true_distances, k: int) -> float:
    """Mean over points of |E_k(i) & G_k(i)| / k, where G_k are the k nearest by the true geodesic.

    Precision equals recall here (both sets have k members); chance level is k / (n - 1).

    Parameters
    ----------
    neighbors : int array (n, >= k)
        Estimated neighbour lists (self excluded), e.g. ``forest.kneighbors(...)[1]``.
    true_distances : float array (n, n)
        True geodesic distances.
    """
    ind = _as_neighbors(neighbors, k)
    truth = neighbors_from_distances(true_distances, k)
    if truth.shape[0] != ind.shape[0]:
        raise InvalidInputError(f"{ind.shape[0]} neighbour lists for {truth.shape[0]} points")
    n = ind.shape[0]
    hits = np.zeros(n, dtype=np.int64)
    member = np.zeros(n, dtype=bool)
    for i in range(n):
        member[truth[i]] = True
        hits[i] = member[ind[i]].sum()
        member[truth[i]] = False
    return float(hits.mean() / k)


def geodesic_recall_at_k(neighbors, true_distances, k: int) -> float:
    """Same number as the precision: both neighbour sets hold k points."""
    return geodesic_precision_at_k(neighbors, true_distances, k)


def label_precision_at_k(neighbors, labels, k: int) -> float:
    """Mean fraction of each point's k neighbours that carry its label."""
    ind = _as_neighbors(neighbors, k)
    labels = np.asarray(labels)
    if labels.shape[0] != ind.shape[0]:
        raise InvalidInputError(f"{labels.shape[0]} labels for {ind.shape[0]} neighbour lists")
    return float((labels[ind] == labels[:, None]).mean())


def label_recall_at_k(neighbors, labels, k: int) -> float:
    """Mean fraction of each point's same-label points (itself excluded) found among its k neighbours."""
    ind = _as_neighbors(neighbors, k)
    labels = np.asarray(labels)
    _, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    others = sizes[inverse] - 1
    same = (labels[ind] == labels[:, None]).sum(axis=1)
    valid = others > 0
    return float((same[valid] / others[valid]).mean())
