"""The larval Drosophila mushroom-body connectome (right hemisphere) and the paper's embedding of it.

Pipeline: binarise the synapse counts (A > 0), zero the diagonal, directed adjacency spectral
embedding (SVD: X = U sqrt(S), Y = V sqrt(S)), keep d = the second Zhu-Ghodsi elbow of the
leading ceil(log2 n) singular values, and use [X_d, Y_d] as features (213 x 2d). Labels: K, P, O, I.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from frugalml.common.data import resolve
from frugalml.common.errors import CorruptFileError

ADJACENCY = "connectome/right_adjacency.csv"
LABELS = "connectome/right_cell_labels.csv"
SOURCE = (
    "the graspologic 3.4.4 wheel (MIT), graspologic/datasets/drosophila/, from Eichler et al. "
    "2017; download it from PyPI and copy right_adjacency.csv and right_cell_labels.csv"
)


@dataclass
class Connectome:
    """Synapse counts between neurons (directed) and each neuron's cell type."""

    adjacency: np.ndarray
    labels: np.ndarray


def load_drosophila(path: str | os.PathLike | None = None) -> Connectome:
    """Read the right mushroom body: a folder holding the two CSV files (default: the data roots).

    Raises
    ------
    DataNotFoundError
        The files are not in ``path`` nor under ``$FRUGAL_DATA/connectome`` or the user cache.
    CorruptFileError
        The matrix is not square, not numeric, negative, or does not match the labels.
    """
    if path is None:
        adjacency_path, labels_path = resolve(ADJACENCY, hint=SOURCE), resolve(LABELS, hint=SOURCE)
    else:
        folder = resolve("", path=path)
        adjacency_path = resolve(ADJACENCY, path=folder / "right_adjacency.csv")
        labels_path = resolve(LABELS, path=folder / "right_cell_labels.csv")
    try:
        adjacency = np.loadtxt(adjacency_path, ndmin=2)
    except ValueError as exc:
        raise CorruptFileError(f"{adjacency_path} is not a numeric matrix ({exc})") from None
    labels = np.array([line.strip() for line in open(labels_path) if line.strip()])
    n = adjacency.shape[0]
    if adjacency.shape != (n, n) or labels.shape[0] != n:
        raise CorruptFileError(
            f"{adjacency_path} has shape {adjacency.shape} and {labels_path} {labels.shape[0]} "
            "labels; expected a square matrix with one label per neuron"
        )
    if not np.isfinite(adjacency).all() or (adjacency < 0).any():
        raise CorruptFileError(f"{adjacency_path} holds negative or non-finite synapse counts")
    return Connectome(adjacency, labels)


def _profile_likelihood(values: np.ndarray) -> np.ndarray:
    """Zhu-Ghodsi profile log-likelihood of splitting the sorted values after each position
    (two normals with their own means and one pooled variance)."""
    from scipy.stats import norm

    n = values.size
    out = np.empty(n)
    for q in range(1, n + 1):
        first, second = values[:q], values[q:]
        if first.size == 1 and second.size == 1:
            out[q - 1] = -np.inf
            continue
        squares = ((first - first.mean()) ** 2).sum()
        if second.size:
            squares += ((second - second.mean()) ** 2).sum()
        sd = np.sqrt(squares / (n - 1 - (q < n)))
        out[q - 1] = norm.logpdf(first, first.mean(), sd).sum()
        if second.size:
            out[q - 1] += norm.logpdf(second, second.mean(), sd).sum()
    return out


def zhu_ghodsi_elbows(values, n_elbows: int = 2) -> list[int]:
    """Positions (counts of leading values) of the first ``n_elbows`` profile-likelihood elbows.

    Each elbow after the first is searched among the values past the previous one.
    """
    values = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    elbows, start = [], 0
    for _ in range(n_elbows):
        rest = values[start:]
        if rest.size <= 1:
            break
        start += int(np.argmax(_profile_likelihood(rest))) + 1
        elbows.append(start)
    return elbows


def directed_ase(adjacency: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Out- and in-embeddings X = U_d sqrt(S_d), Y = V_d sqrt(S_d) of a directed graph."""
    u, s, vt = np.linalg.svd(adjacency)
    root = np.sqrt(s[:d])
    return u[:, :d] * root, vt[:d].T * root


def drosophila_embedding(connectome: Connectome) -> tuple[np.ndarray, int]:
    """The paper's features: binarise, zero the diagonal, directed ASE at the second elbow.

    Returns (features (n, 2d), d).
    """
    a = (connectome.adjacency > 0).astype(np.float64)
    np.fill_diagonal(a, 0.0)
    # the elbows are searched among the leading ceil(log2 n) singular values (Zhu and Ghodsi)
    leading = np.linalg.svd(a, compute_uv=False)[: int(np.ceil(np.log2(a.shape[0])))]
    d = zhu_ghodsi_elbows(leading, 2)[-1]
    x, y = directed_ase(a, d)
    return np.hstack([x, y]), d
