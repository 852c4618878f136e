"""The peers URerF is measured against, each returning k-nearest-neighbour lists (self excluded).

Euclidean k-NN, sklearn Isomap (graph geodesics), umap-learn (embedding), Breiman's unsupervised
random-forest proximity (real vs product-of-marginals data, sklearn RandomForestClassifier),
sklearn RandomTreesEmbedding proximity, pynndescent (approximate Euclidean k-NN) and treeple's
unsupervised forests (an optional peer; its wheels import only against the scikit-learn they were
built for, so it can also run in another Python named by ``$FRUGAL_TREEPLE_PYTHON``).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from frugalml.common.errors import PeerUnavailableError
from frugalml.common.threads import numba_threads
from frugalml.urerf.metrics import euclidean_neighbors, neighbors_from_distances


def leaf_kneighbors(leaves: np.ndarray, k: int, n_jobs: int | None = None) -> np.ndarray:
    """Top-k leaf co-membership neighbours from any forest's ``apply`` output (n, n_trees)."""
    from frugalml.urerf._leaves import leaf_members, top_k

    leaves = np.ascontiguousarray(np.asarray(leaves).T, dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(leaves.max(axis=1).astype(np.int64) + 1)])
    keep = np.ones(leaves.shape, dtype=np.bool_)
    with numba_threads(n_jobs):
        ptr, members = leaf_members(leaves, keep, offsets)
        ind, _ = top_k(leaves, offsets, ptr, members, leaves.shape[1], k, True, 64)
    return ind


def euclidean(X, k, seed=0, n_trees=100):
    """Euclidean k-NN (the plain baseline)."""
    return euclidean_neighbors(X, k)


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


TREEPLE_PYTHON = "FRUGAL_TREEPLE_PYTHON"


def treeple_module():
    """treeple's ensemble module, or PeerUnavailableError saying why it cannot be used here."""
    try:
        from treeple import ensemble
    except Exception as exc:  # binary incompatibility shows as ValueError, absence as ImportError
        raise PeerUnavailableError(
            f"treeple cannot be imported here ({type(exc).__name__}: {exc}); its wheels are built "
            "against a specific scikit-learn, and it is PolyForm Noncommercial since 0.8. Point "
            f"${TREEPLE_PYTHON} at a Python where it imports (e.g. a venv with scikit-learn 1.6.1 "
            "and treeple 0.10.3) to run it there"
        ) from None
    return ensemble


class TreepleWorker:
    """treeple in another Python process (``python _treeple_worker.py``), fed through .npy files."""

    def __init__(self, python: str):
        script = Path(__file__).with_name("_treeple_worker.py")
        self.folder = tempfile.TemporaryDirectory(prefix="frugal-treeple-")
        try:
            self.process = subprocess.Popen(
                [python, str(script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as exc:
            raise PeerUnavailableError(f"${TREEPLE_PYTHON}={python} cannot be started ({exc})") from None
        hello = self._reply()
        self.versions = hello["ready"]

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            error = self.process.stderr.read().strip().splitlines()
            raise PeerUnavailableError(f"the treeple worker exited: {error[-1] if error else 'no output'}")
        reply = json.loads(line)
        if "error" in reply:
            raise PeerUnavailableError(f"treeple failed in the worker: {reply['error']}")
        return reply

    def leaves(self, X: np.ndarray, n_trees: int, seed: int, oblique: bool) -> np.ndarray:
        """treeple's ``apply(X)`` (n, n_trees) after fitting its unsupervised forest on X."""
        data, out = Path(self.folder.name, "X.npy"), Path(self.folder.name, "leaves.npy")
        np.save(data, np.asarray(X, dtype=np.float64))
        request = {"X": str(data), "out": str(out), "n_trees": n_trees, "seed": seed, "oblique": oblique}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        self._reply()
        return np.load(out)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        self.folder.cleanup()


@functools.lru_cache(maxsize=2)
def treeple_worker(python: str) -> TreepleWorker:
    """The process's treeple worker for that Python, started on first use."""
    worker = TreepleWorker(python)
    atexit.register(worker.close)
    return worker


def _treeple_leaves(X, n_trees: int, seed: int, oblique: bool) -> np.ndarray:
    try:
        ensemble = treeple_module()
    except PeerUnavailableError:
        if not os.environ.get(TREEPLE_PYTHON):
            raise
        return treeple_worker(os.environ[TREEPLE_PYTHON]).leaves(X, n_trees, seed, oblique)
    model = ensemble.UnsupervisedObliqueRandomForest if oblique else ensemble.UnsupervisedRandomForest
    return model(n_estimators=n_trees, criterion="fastbic", random_state=seed, n_jobs=-1).fit(X).apply(X)


def treeple(X, k, seed=0, n_trees=100):
    """treeple's UnsupervisedObliqueRandomForest (fastbic) shared-leaf proximity."""
    return leaf_kneighbors(_treeple_leaves(X, n_trees, seed, oblique=True), k)


def treeple_axis(X, k, seed=0, n_trees=100):
    """treeple's axis-aligned UnsupervisedRandomForest (fastbic) shared-leaf proximity."""
    return leaf_kneighbors(_treeple_leaves(X, n_trees, seed, oblique=False), k)


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "euclidean": euclidean,
    "isomap": isomap,
    "umap": umap,
    "rf": breiman_rf,
    "rte": random_trees_embedding,
    "pynndescent": pynndescent,
    "treeple": treeple,
    "treeple-axis": treeple_axis,
}
