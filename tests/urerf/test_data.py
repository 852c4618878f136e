"""Simulations (analytic geodesics), metrics, and the Drosophila loader with the paper's embedding."""

import numpy as np
import pytest

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.urerf import (
    SIMULATIONS,
    geodesic_precision_at_k,
    label_precision_at_k,
    label_recall_at_k,
    neighbors_from_distances,
    simulate,
)
from frugalml.urerf.drosophila import drosophila_embedding, load_drosophila, zhu_ghodsi_elbows


@pytest.mark.parametrize("name", ["linear", "helix", "hardy_weinberg", "swiss_roll", "s_curve", "sphere"])
def test_geodesics_match_numerical_path_length(name):
    """Along the manifold, the geodesic between close points equals their chord length."""
    data = simulate(name, n=1500, seed=1)
    X, geo = data.X, data.geodesic
    d = np.linalg.norm(X[:, None] - X[None, :], axis=-1)
    close = (d > 0) & (d < np.percentile(d[d > 0], 0.05))
    np.testing.assert_allclose(geo[close], d[close], rtol=2e-2)
    assert (geo >= d - 1e-9).all()  # a geodesic is never shorter than the chord


def test_geodesic_is_additive_along_curves():
    data = simulate("helix", n=50, seed=2)
    order = np.argsort(data.X[:, 2])
    steps = [data.geodesic[a, b] for a, b in zip(order[:-1], order[1:], strict=True)]
    assert data.geodesic[order[0], order[-1]] == pytest.approx(sum(steps))


def test_noise_dimensions_and_shapes():
    data = simulate("sphere", n=30, noise_dims=7, seed=0)
    assert data.X.shape == (30, 10) and data.manifold_dims == 3
    assert np.var(simulate("linear", n=4000, noise_dims=1, seed=0).X[:, 3]) == pytest.approx(70, rel=0.1)
    mixture = simulate("gaussian_mixture", n=60, seed=0)
    assert np.isinf(mixture.geodesic).any() and mixture.labels.shape == (60,)
    assert set(SIMULATIONS) >= {"linear", "helix", "sphere", "gaussian_mixture", "hardy_weinberg"}


@pytest.mark.parametrize(
    "kwargs", [dict(name="torus"), dict(name="helix", n=1), dict(name="helix", noise_dims=-1)]
)
def test_bad_simulation_arguments(kwargs):
    with pytest.raises(InvalidInputError):
        simulate(**kwargs)


def test_precision_metrics():
    truth = np.abs(np.subtract.outer(np.arange(6.0), np.arange(6.0)))
    exact = neighbors_from_distances(truth, 2)
    assert geodesic_precision_at_k(exact, truth, 2) == 1.0
    assert geodesic_precision_at_k(exact[::-1], truth, 2) < 1.0
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert label_precision_at_k(exact, labels, 2) == pytest.approx((1 + 0.5 + 1 + 1 + 0.5 + 1) / 6)
    assert label_recall_at_k(exact, labels, 2) == pytest.approx(label_precision_at_k(exact, labels, 2))
    with pytest.raises(InvalidInputError):
        geodesic_precision_at_k(exact, truth, 6)
    with pytest.raises(InvalidInputError):
        neighbors_from_distances(np.full((3, 3), np.nan), 1)
    with pytest.raises(InvalidInputError):
        label_precision_at_k(exact, labels[:3], 2)


def test_infinite_distances_sort_last():
    d = np.array([[0, 1, np.inf], [1, 0, np.inf], [np.inf, np.inf, 0]])
    np.testing.assert_array_equal(neighbors_from_distances(d, 2), [[1, 2], [0, 2], [0, 1]])


def test_zhu_ghodsi_finds_obvious_elbows():
    values = np.array([100, 98, 97, 40, 39, 38, 37, 3, 2, 2, 1, 1.0])
    assert zhu_ghodsi_elbows(values, 2) == [3, 7]


def test_drosophila_pipeline_reproduces_euclidean(shared_data):
    connectome = load_drosophila(shared_data / "connectome")
    X, d = drosophila_embedding(connectome)
    assert connectome.adjacency.shape == (213, 213) and set(connectome.labels) == set("KPOI")
    assert d == 3 and X.shape == (213, 6)
    ind = neighbors_from_distances(np.linalg.norm(X[:, None] - X[None, :], axis=-1), 150)
    precision = [label_precision_at_k(ind, connectome.labels, k) for k in (50, 70, 90, 110, 130, 150)]
    np.testing.assert_allclose(precision, [0.735, 0.637, 0.538, 0.460, 0.405, 0.369], atol=2e-3)


def test_drosophila_errors(tmp_path):
    with pytest.raises(DataNotFoundError):
        load_drosophila(tmp_path / "missing")
    (tmp_path / "right_adjacency.csv").write_text("0 1\n1 0\n")
    (tmp_path / "right_cell_labels.csv").write_text("K\nK\nP\n")
    with pytest.raises(CorruptFileError, match="one label per neuron"):
        load_drosophila(tmp_path)
    (tmp_path / "right_adjacency.csv").write_text("0 x\n1 0\n")
    with pytest.raises(CorruptFileError):
        load_drosophila(tmp_path)
