"""The aggregator: turn many scored architectures into one (Composer's k-means + N_c voting).

k-means on the scores picks the top cluster C; N_c fills layer i with the most common primitive
among members of C that agree with the last ``c`` chosen layers (N_0: plain per-layer majority;
N_all: agree with every chosen layer). ``best-single`` is the best architecture alone.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.composer.model import check_arch

METHODS = ("N0", "N1", "Nall", "best-single")


def top_cluster(archs: list[str], scores: list[float], k: int = 5, seed: int = 0) -> list[int]:
    """Indices of the architectures in the k-means cluster (on scores) of highest mean score."""
    from sklearn.cluster import KMeans

    y = np.asarray(scores, dtype=float)
    k = min(k, len(np.unique(y)))
    if k <= 1:
        return list(range(len(archs)))
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(y[:, None])
    best = max(range(k), key=lambda c: y[labels == c].mean())
    return [int(i) for i in np.flatnonzero(labels == best)]


def vote(members: list[str], scores: list[float], context: int | None) -> str:
    """N_c voting over equal-length ``members``; ``context=None`` means N_all.

    Ties go to the primitive whose voters have the higher mean score. When no member agrees with
    the chosen context, the context is shortened until some do.
    """
    length = len(members[0])
    chosen = ""
    for i in range(length):
        c = i if context is None else min(context, i)
        while True:
            voters = [
                (m, s)
                for m, s in zip(members, scores, strict=True)
                if c == 0 or m[i - c : i] == chosen[i - c : i]
            ]
            if voters:
                break
            c -= 1
        counts = Counter(m[i] for m, _ in voters)
        mean = {p: np.mean([s for m, s in voters if m[i] == p]) for p in counts}
        chosen += max(counts, key=lambda p: (counts[p], mean[p]))
    return chosen


def aggregate(archs: list[str], scores: list[float], method: str = "N0", k: int = 5, seed: int = 0) -> str:
    """One architecture from scored search results.

    Parameters
    ----------
    archs, scores : list
        Search results (higher score is better); all architectures of one length.
    method : str
        ``N0`` (the paper's best), ``N1``, ``Nall`` or ``best-single``.
    k : int
        Clusters of the k-means on scores.

    Examples
    --------
    >>> aggregate(["AAMM", "AMMM", "MMMM", "AAMA"], [0.9, 0.88, 0.1, 0.2], k=2)
    'AAMM'
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown aggregation {method!r}; choose one of: {', '.join(METHODS)}")
    if not archs or len(archs) != len(scores):
        raise InvalidInputError(f"give as many scores as architectures (got {len(archs)} and {len(scores)})")
    for a in archs:
        check_arch(a)
    if len({len(a) for a in archs}) != 1:
        raise InvalidInputError("aggregation needs architectures of one length; filter the results first")
    if not np.all(np.isfinite(scores)):
        raise InvalidInputError("scores contain NaN or infinity")
    if method == "best-single":
        return archs[int(np.argmax(scores))]
    members = top_cluster(archs, scores, k, seed)
    context = {"N0": 0, "N1": 1, "Nall": None}[method]
    return vote([archs[i] for i in members], [scores[i] for i in members], context)


def pareto_front(scores: list[float], costs: list[float]) -> list[int]:
    """Indices of the architectures no other beats on both score (higher) and cost (lower),
    e.g. proxy score against :func:`~frugalml.composer.model.kv_cache_bytes`; sorted by cost."""
    s = np.asarray(scores, dtype=float)
    c = np.asarray(costs, dtype=float)
    if s.shape != c.shape or s.ndim != 1 or not len(s):
        raise InvalidInputError(f"give one cost per score (got {s.shape} and {c.shape})")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(c))):
        raise InvalidInputError("scores and costs must be finite")
    order = np.lexsort((-s, c))  # by cost, best score first on ties
    best_before = np.maximum.accumulate(np.concatenate([[-np.inf], s[order][:-1]]))
    return [int(i) for i in order[s[order] > best_before]]
