"""The peers URerF is measured against, each returning k-nearest-neighbour lists (self excluded).

Euclidean k-NN, sklearn Isomap (graph geodesics), umap-learn (embedding), Breiman's unsupervised
random-forest proximity (real vs product-of-marginals data, sklearn RandomForestClassifier),
sklearn RandomTreesEmbedding proximity, pynndescent (approximate Euclidean k-NN) and treeple's
unsupervised forests (an optional peer; it does not import against every scikit-learn).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from frugalml.common.errors import PeerUnavailableError
from frugalml.urerf.metrics import neighbors_from_distances


def leaf_kneighbors(leaves: np.ndarray, k: int, n_jobs: int | None = None) -> np.ndarray:
    """Top-k leaf co-membership neighbours from any forest's ``apply`` output (n, n_trees)."""
    from frugalml.urerf._leaves import leaf_members, top_k
    from frugalml.urerf.forest import numba_threads

    leaves = np.ascontiguousarray(np.asarray(leaves).T, dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(leaves.max(axis=1).astype(np.int64) + 1)])
    keep = np.ones(leaves.shape, dtype=np.bool_)
    with numba_threads(n_jobs):
        ptr, members = leaf_members(leaves, keep, offsets)
        ind, _ = top_k(leaves, offsets, ptr, members, leaves.shape[1], k, True, 64)
    return ind


def euclidean(X, k, seed=0, n_trees=100):
    from sklearn.neighbors import NearestNeighbors

    ind = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(return_distance=False)
    return ind[:, :k]


def isomap(X, k, seed=0, n_trees=100, graph_neighbors: int = 10):
    """Neighbours under Isomap's k-NN-graph shortest-path (geodesic) distances."""
    from sklearn.manifold import Isomap

    model = Isomap(n_neighbors=graph_neighbors, n_components=2).fit(X)
    return neighbors_from_distances(model.dist_matrix_, k)


def umap(X, k, seed=0, n_trees=100, n_components: int = 2):
    """Euclidean neighbours in a UMAP embedding."""
    try:
        import umap as umap_learn
    except ImportError as exc:
        raise PeerUnavailableError(f"umap-learn is not installed ({exc}); pip install umap-learn") from None
    embedding = umap_learn.UMAP(n_components=n_components, random_state=seed, n_jobs=1).fit_transform(X)
    return euclidean(embedding, k)


def breiman_rf(X, k, seed=0, n_trees=100):
    """Breiman's unsupervised forest: classify real rows against column-permuted (product of
    marginals) rows, then shared-leaf proximity among the real rows."""
    from sklearn.ensemble import RandomForestClassifier

    g = np.random.default_rng(seed)
    synthetic = np.column_stack([g.permutation(col) for col in np.asarray(X).T])
    data = np.vstack([X, synthetic])
    labels = np.r_[np.ones(len(X)), np.zeros(len(X))]
    forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed, n_jobs=-1).fit(data, labels)
    return leaf_kneighbors(forest.apply(X), k)


def random_trees_embedding(X, k, seed=0, n_trees=100):
    """Shared-leaf proximity of sklearn's totally random trees."""
    from sklearn.ensemble import RandomTreesEmbedding

    forest = RandomTreesEmbedding(n_estimators=n_trees, random_state=seed, n_jobs=-1).fit(X)
    return leaf_kneighbors(forest.apply(X), k)


def pynndescent(X, k, seed=0, n_trees=100):
    """Approximate Euclidean k-NN (nearest-neighbour descent)."""
    try:
        from pynndescent import NNDescent
    except ImportError as exc:
        raise PeerUnavailableError(f"pynndescent is not installed ({exc}); pip install pynndescent") from None
    index = NNDescent(np.asarray(X, dtype=np.float32), n_neighbors=k + 1, random_state=seed, n_jobs=1)
    ind = index.neighbor_graph[0]
    return _drop_self(ind, k)


def _drop_self(ind: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((ind.shape[0], k), dtype=np.int64)
    for i, row in enumerate(ind):
        row = row[row != i]
        out[i] = row[:k]
    return out


def treeple_module():
    """treeple's ensemble module, or PeerUnavailableError saying why it cannot be used here."""
    try:
        from treeple import ensemble
    except Exception as exc:  # binary incompatibility shows as ValueError, absence as ImportError
        raise PeerUnavailableError(
            f"treeple cannot be imported here ({type(exc).__name__}: {exc}); its wheels are built "
            "against a specific scikit-learn, and it is PolyForm Noncommercial since 0.8") from None
    return ensemble


def treeple(X, k, seed=0, n_trees=100):
    """treeple's UnsupervisedObliqueRandomForest (fastbic) shared-leaf proximity."""
    ensemble = treeple_module()
    forest = ensemble.UnsupervisedObliqueRandomForest(
        n_estimators=n_trees, criterion="fastbic", random_state=seed, n_jobs=-1).fit(X)
    return leaf_kneighbors(forest.apply(X), k)


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "euclidean": euclidean,
    "isomap": isomap,
    "umap": umap,
    "rf": breiman_rf,
    "rte": random_trees_embedding,
    "pynndescent": pynndescent,
    "treeple": treeple,
}
