"""The forest estimator: similarities, sparse top-k, routing, determinism and clear errors."""

import numpy as np
import pytest
from sklearn.base import clone

from frugalml.common.errors import InvalidInputError
from frugalml.urerf import UnsupervisedRandomerForest, geodesic_precision_at_k, simulate


@pytest.fixture(scope="module")
def helix():
    return simulate("helix", n=200, noise_dims=3, seed=0)


@pytest.fixture(scope="module")
def forest(helix):
    return UnsupervisedRandomerForest(40, random_state=0).fit(helix.X)


def dense_top_k(sim, k):
    s = sim.copy()
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def test_similarity_symmetric_unit_diagonal(forest):
    sim = forest.similarity()
    assert sim.shape == (200, 200)
    np.testing.assert_array_equal(sim, sim.T)
    np.testing.assert_array_equal(np.diag(sim), 1.0)
    assert sim.min() >= 0 and sim.max() <= 1


@pytest.mark.parametrize("route", ["all", "inbag"])
def test_sparse_top_k_equals_dense_top_k(helix, route):
    forest = UnsupervisedRandomerForest(30, projection="axis", route=route, random_state=1).fit(helix.X)
    sim = forest.similarity()
    for k in (1, 7, 60, 199):
        dist, ind = forest.kneighbors(n_neighbors=k)
        np.testing.assert_array_equal(ind, dense_top_k(sim, k))
        np.testing.assert_allclose(1 - dist, np.take_along_axis(sim, ind, axis=1))


def test_out_of_sample_neighbours_match_dense(forest, helix):
    new = simulate("helix", n=20, noise_dims=3, seed=5).X
    sim = forest.similarity(new)
    dist, ind = forest.kneighbors(new, n_neighbors=10)
    np.testing.assert_array_equal(ind, np.argsort(-sim, axis=1, kind="stable")[:, :10])
    assert forest.kneighbors_graph(new, 10).shape == (20, 200)


def test_training_points_route_to_their_leaves(forest, helix):
    np.testing.assert_array_equal(forest.apply(helix.X), forest.leaves_.T)


def test_fixed_seed_is_reproducible(helix):
    a = UnsupervisedRandomerForest(20, random_state=7).fit(helix.X)
    b = UnsupervisedRandomerForest(20, random_state=7, n_jobs=1).fit(helix.X)  # other scheduling
    c = UnsupervisedRandomerForest(20, random_state=8).fit(helix.X)
    np.testing.assert_array_equal(a.leaves_, b.leaves_)
    np.testing.assert_array_equal(a.threshold_, b.threshold_)
    assert not np.array_equal(a.leaves_, c.leaves_)


@pytest.mark.parametrize(
    "options",
    [
        dict(projection="axis"),
        dict(projection="gaussian", density=0.3),
        dict(criterion="twomeans"),
        dict(sampling="subsample", max_samples=0.5),
        dict(sampling="none"),
        dict(max_depth=3),
        dict(min_parent=50, min_cluster_size=5),
        dict(normalize=True),
        dict(density=1.0),
        dict(min_cluster_size=0.1),
    ],
)
def test_options_grow_valid_trees(helix, options):
    forest = UnsupervisedRandomerForest(8, random_state=0, **options).fit(helix.X)
    sizes = np.diff(forest.tree_offsets_)
    assert (sizes >= 1).all()
    leaf = forest.children_left_ < 0
    assert (forest.children_right_[leaf] < 0).all()
    if "max_depth" in options:
        assert forest.node_depth_.max() <= options["max_depth"]
    if options.get("sampling") == "none":
        np.testing.assert_array_equal(forest.inbag_, 1)
    assert forest.kneighbors(n_neighbors=5)[1].shape == (200, 5)


def test_quality_beats_chance_by_far(helix):
    forest = UnsupervisedRandomerForest(60, projection="axis", random_state=0).fit(helix.X)
    _, ind = forest.kneighbors(n_neighbors=10)
    assert geodesic_precision_at_k(ind, helix.geodesic, 10) > 0.6  # chance is 0.05


def test_oob_similarity(forest):
    oob = forest.oob_similarity()
    np.testing.assert_allclose(oob, oob.T)
    np.testing.assert_array_equal(np.diag(oob), 1.0)
    assert 0 <= oob.min() and oob.max() <= 1


def test_path_distances_match_parent_walk(helix):
    forest = UnsupervisedRandomerForest(5, random_state=2).fit(helix.X[:60])
    dist = forest.path_distances()
    assert np.allclose(np.diag(dist), 0) and np.allclose(dist, dist.T)
    parent, offsets = forest.node_parent_, forest.tree_offsets_

    def ancestors(t, node):
        chain = []
        while node >= 0:
            chain.append(node)
            node = parent[offsets[t] + node]
        return chain

    i, j, total = 3, 41, 0
    for t in range(5):
        a, b = ancestors(t, forest.leaves_[t, i]), ancestors(t, forest.leaves_[t, j])
        common = len(set(a) & set(b))
        total += (len(a) - common) + (len(b) - common)
    assert dist[i, j] == pytest.approx(total / 5)


def test_geodesic_distances_and_embeddings(forest, helix):
    geo = forest.geodesic_distances(n_neighbors=10, indices=[0, 5])
    assert geo.shape == (2, 200) and geo[0, 0] == 0 and (geo >= 0).all()
    spectral = clone(forest).set_params(n_components=3).fit_transform(helix.X)
    assert spectral.shape == (200, 3) and np.isfinite(spectral).all()
    mds = clone(forest).set_params(embedding="mds").fit(helix.X).transform()
    assert mds.shape == (200, 2)
    assert forest.transform(helix.X[:4]).shape == (4, 2)


def test_get_params_round_trip():
    forest = UnsupervisedRandomerForest(12, criterion="twomeans", random_state=3)
    assert forest.get_params()["criterion"] == "twomeans"
    assert clone(forest).get_params() == forest.get_params()


@pytest.mark.parametrize(
    "X",
    [
        np.array([[1.0, np.nan], [2.0, 3.0], [0.0, 1.0]]),
        np.array([[1.0, np.inf], [2.0, 3.0], [0.0, 1.0]]),
        np.ones((1, 3)),
        np.ones(5),
    ],
)
def test_bad_training_data_raises(X):
    with pytest.raises(InvalidInputError):
        UnsupervisedRandomerForest(2).fit(X)


@pytest.mark.parametrize(
    "params",
    [
        dict(criterion="gini"),
        dict(projection="dense"),
        dict(sampling="jackknife"),
        dict(route="some"),
        dict(n_estimators=0),
        dict(density=0.0),
        dict(mtry=-1),
        dict(max_samples=1.5),
        dict(min_cluster_size=0),
        dict(min_cluster_size=0.7),
    ],
)
def test_bad_parameters_raise(helix, params):
    with pytest.raises(InvalidInputError):
        UnsupervisedRandomerForest(**{"n_estimators": 2, **params}).fit(helix.X)


def test_bad_queries_raise(forest, helix):
    with pytest.raises(InvalidInputError, match="n_neighbors"):
        forest.kneighbors(n_neighbors=200)
    with pytest.raises(InvalidInputError, match="features"):
        forest.kneighbors(helix.X[:, :2], n_neighbors=3)
    with pytest.raises(InvalidInputError):
        forest.kneighbors(np.full((2, 6), np.nan), n_neighbors=3)
    with pytest.raises(InvalidInputError):
        UnsupervisedRandomerForest(3, sampling="none").fit(helix.X).oob_similarity()


def test_unfitted_forest_says_so():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        UnsupervisedRandomerForest().kneighbors(n_neighbors=3)


def test_save_load_round_trip(tmp_path, helix):
    from frugalml.common.errors import CorruptFileError

    forest = UnsupervisedRandomerForest(10, normalize=True, random_state=4).fit(helix.X)
    forest.save(tmp_path / "f.urerf")
    loaded = UnsupervisedRandomerForest.load(tmp_path / "f.urerf")
    assert loaded.get_params() == forest.get_params()
    for a, b in zip(forest.kneighbors(helix.X[:9], 6), loaded.kneighbors(helix.X[:9], 6), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(forest.kneighbors(n_neighbors=4)[1], loaded.kneighbors(n_neighbors=4)[1])
    raw = bytearray((tmp_path / "f.urerf").read_bytes())
    raw[-10] ^= 0xFF
    (tmp_path / "bad.urerf").write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError):
        UnsupervisedRandomerForest.load(tmp_path / "bad.urerf")
    (tmp_path / "short.urerf").write_bytes(bytes(raw[:100]))
    with pytest.raises(CorruptFileError):
        UnsupervisedRandomerForest.load(tmp_path / "short.urerf")


def test_forest_in_the_first_file_layout_still_loads(tmp_path, helix):
    """Files written before the shared array store (index entries without offset/nbytes) load."""
    from frugalml.common.files import write_container
    from frugalml.urerf.forest import _SAVED_ARRAYS, FORMAT_VERSION, MAGIC

    forest = UnsupervisedRandomerForest(8, normalize=True, random_state=2).fit(helix.X)
    names = [*_SAVED_ARRAYS, "scale_min_", "scale_range_"]
    arrays = [np.ascontiguousarray(getattr(forest, name)) for name in names]
    layout = [
        {"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in zip(names, arrays, strict=True)
    ]
    meta = {
        "params": dict(forest.get_params()),
        "arrays": layout,
        "n_features_in": forest.n_features_in_,
        "n_samples_fit": forest.n_samples_fit_,
    }
    write_container(
        tmp_path / "old.urerf", MAGIC, FORMAT_VERSION, meta, [memoryview(a).cast("B") for a in arrays]
    )
    loaded = UnsupervisedRandomerForest.load(tmp_path / "old.urerf")
    assert loaded.get_params() == forest.get_params()
    for name in names:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(forest, name))
    np.testing.assert_array_equal(forest.kneighbors(helix.X[:7], 5)[1], loaded.kneighbors(helix.X[:7], 5)[1])
