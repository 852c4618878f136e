"""Baselines: shared-leaf top-k of any sklearn forest, Euclidean/Isomap neighbours, optional peers."""

import os
import sys

import numpy as np
import pytest

from frugalml.common.errors import PeerUnavailableError
from frugalml.urerf import geodesic_precision_at_k, simulate
from frugalml.urerf.bench.paper import paper_value
from frugalml.urerf.bench.peers import (
    BASELINES,
    TREEPLE_PYTHON,
    TreepleWorker,
    leaf_kneighbors,
    treeple_module,
)
from frugalml.urerf.bench.quality import sweep_records


def test_leaf_kneighbors_equals_dense_proximity():
    from sklearn.ensemble import RandomTreesEmbedding

    X = np.random.default_rng(0).normal(size=(90, 3))
    leaves = RandomTreesEmbedding(n_estimators=15, max_depth=3, random_state=0).fit(X).apply(X)
    sim = (leaves[:, None, :] == leaves[None, :, :]).mean(axis=2)
    np.fill_diagonal(sim, -np.inf)
    expected = np.argsort(-sim, axis=1, kind="stable")[:, :12]
    np.testing.assert_array_equal(leaf_kneighbors(leaves, 12), expected)


@pytest.mark.parametrize("name", ["euclidean", "isomap", "rf", "rte"])
def test_sklearn_baselines_find_neighbours(name):
    data = simulate("linear", n=150, seed=0)
    ind = BASELINES[name](data.X, 10, seed=0, n_trees=20)
    assert ind.shape == (150, 10) and not (ind == np.arange(150)[:, None]).any()
    assert geodesic_precision_at_k(ind, data.geodesic, 10) > 0.3


@pytest.mark.peers
def test_treeple_is_used_or_reported_unavailable():
    try:
        treeple_module()
    except PeerUnavailableError as exc:
        assert "treeple" in str(exc)
        return
    data = simulate("helix", n=120, seed=0)
    assert BASELINES["treeple"](data.X, 5, seed=0, n_trees=10).shape == (120, 5)


def test_treeple_worker_that_cannot_start_or_import_is_reported(monkeypatch):
    with pytest.raises(PeerUnavailableError, match="cannot be started"):
        TreepleWorker("/nonexistent/python")
    try:
        treeple_module()
    except PeerUnavailableError:
        with pytest.raises(PeerUnavailableError, match="worker exited"):
            TreepleWorker(sys.executable)  # this Python cannot import treeple either
    monkeypatch.setenv(TREEPLE_PYTHON, "/nonexistent/python")
    with pytest.raises(PeerUnavailableError):
        BASELINES["treeple"](np.zeros((10, 2)), 3)


@pytest.mark.peers
@pytest.mark.skipif(not os.environ.get(TREEPLE_PYTHON), reason=f"${TREEPLE_PYTHON} not set")
def test_treeple_in_another_python():
    data = simulate("helix", n=150, seed=0)
    for name in ("treeple", "treeple-axis"):
        ind = BASELINES[name](data.X, 5, seed=0, n_trees=10)
        assert ind.shape == (150, 5) and not (ind == np.arange(150)[:, None]).any()


@pytest.mark.peers
@pytest.mark.slow
@pytest.mark.parametrize("name", ["umap", "pynndescent"])
def test_numba_peers(name):
    pytest.importorskip(name)
    data = simulate("helix", n=200, seed=0)
    assert BASELINES[name](data.X, 10, seed=0).shape == (200, 10)


def test_records_compare_with_peers_and_paper():
    scores = {("helix", 10, "urerf"): 0.8, ("helix", 10, "isomap"): 0.2}
    records = sweep_records(scores, n=1000, n_trees=300, n_seeds=3, k=50)
    by_peer = {r.peer: r for r in records}
    assert by_peer["isomap"].ratio == pytest.approx(4.0)
    assert by_peer["paper URerF"].peer_value == paper_value("helix", "urerf", 10) == 0.752
