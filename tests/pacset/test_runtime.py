"""Predictions from packed files equal the source model for every layout, backend and engine;
damaged files raise CorruptFileError instead of predicting."""

import os

import numpy as np
import pytest
from sklearn import ensemble

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.pacset import PackedForest, open_packed, pack, verify_file
from tests.pacset.conftest import IMPORTERS, PACKED_LAYOUTS, with_nan

BACKENDS = ["mmap", "pread", "direct"]


def _open(path, backend, engine, cache_blocks=4):
    try:
        return PackedForest.open(path, backend=backend, engine=engine, cache_blocks=cache_blocks)
    except Exception as exc:  # O_DIRECT may be unsupported by the test file system
        if backend == "direct":
            pytest.skip(f"O_DIRECT unavailable here: {exc}")
        raise


@pytest.mark.parametrize("layout", PACKED_LAYOUTS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_rf_soft_vote_equals_sklearn(rf, cls_data, tmp_path, layout, backend, engine):
    X = with_nan(cls_data[0][:200])
    name, shared = layout.removesuffix("+shared"), layout.endswith("+shared")
    pack(rf, tmp_path / "rf.pacset", layout=name, bins=3, interleave=2, shared_top=shared)
    with _open(tmp_path / "rf.pacset", backend, engine) as model:
        np.testing.assert_allclose(model.predict_proba(X), rf.predict_proba(X), rtol=1e-6, atol=1e-12)
        np.testing.assert_array_equal(model.predict(X), rf.predict(X))
        assert model.blocks_touched > 0


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_hard_vote_counts_tree_votes(rf, cls_data, tmp_path, engine):
    X = cls_data[0][:100]
    pack(rf, tmp_path / "rf.pacset", vote="hard", bins=2)
    votes = np.stack([e.predict(X.astype(np.float32)) for e in rf.estimators_]).astype(int)
    expected = np.stack([(votes == c).mean(axis=0) for c in range(3)], axis=1)
    with PackedForest.open(tmp_path / "rf.pacset", engine=engine) as model:
        np.testing.assert_allclose(model.predict_proba(X), expected)
        assert np.array_equal(model.predict(X), rf.classes_[np.argmax(expected, axis=1)])


def assert_same_outputs(packed, model, X):
    """Probabilities (or values) to 1e-6 relative, classes exactly, as the issue asks."""
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(packed.predict_proba(X), model.predict_proba(X), rtol=1e-6, atol=0)
        np.testing.assert_array_equal(packed.predict(X), model.predict(X))
    else:
        np.testing.assert_allclose(packed.predict(X), model.predict(X), rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", IMPORTERS)
@pytest.mark.parametrize("layout", PACKED_LAYOUTS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_every_importer_layout_backend_engine(packed_models, kind, layout, backend, engine):
    model, X, path = packed_models(kind, layout)
    rows = [X[:60]] if "GradientBoosting" in kind and "Hist" not in kind else [X[:60], with_nan(X[:60])]
    with _open(path, backend, engine, cache_blocks=2) as packed:
        for XX in rows:
            assert_same_outputs(packed, model, XX)


def test_single_row_and_bad_input(rf, cls_data, tmp_path):
    pack(rf, tmp_path / "rf.pacset")
    with PackedForest.open(tmp_path / "rf.pacset") as model:
        x = cls_data[0][0]
        assert model.predict(x)[0] == rf.predict(x[None])[0]
        with pytest.raises(InvalidInputError, match="features"):
            model.predict(np.zeros((2, 5)))
        with pytest.raises(InvalidInputError, match="infinite"):
            model.predict(np.full((1, 8), np.inf))
    with pytest.raises(InvalidInputError, match="unknown backend"):
        PackedForest.open(tmp_path / "rf.pacset", backend="tape")
    with pytest.raises(DataNotFoundError):
        PackedForest.open(tmp_path / "missing.pacset")


def _corrupt(path, offset, length=1):
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(length)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


@pytest.mark.parametrize("backend", ["mmap", "pread"])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_corrupt_block_never_predicts(rf, cls_data, tmp_path, backend, engine):
    path = tmp_path / "rf.pacset"
    pack(rf, path, bins=1, interleave=0, layout="dfs")
    nodes = open_packed(path).nodes_offset
    _corrupt(path, nodes + 4)  # the first tree's root lives in block 0
    with PackedForest.open(path, backend=backend, engine=engine) as model:
        with pytest.raises(CorruptFileError, match="checksum"):
            model.predict(cls_data[0][:3])
    with pytest.raises(CorruptFileError):
        verify_file(path)


def test_truncated_and_damaged_headers(rf, tmp_path):
    path = tmp_path / "rf.pacset"
    pack(rf, path)
    size = os.path.getsize(path)
    os.truncate(path, size - 4096)
    with pytest.raises(CorruptFileError, match="truncated"):
        PackedForest.open(path)
    pack(rf, path)
    _corrupt(path, 70)  # inside the JSON metadata
    with pytest.raises(CorruptFileError, match="header"):
        PackedForest.open(path)
    pack(rf, path)
    _corrupt(path, open_packed(path).header.payload_offset + 3)  # the index section
    with pytest.raises(CorruptFileError, match="index"):
        PackedForest.open(path)
    (tmp_path / "other").write_bytes(b"\0" * 100)
    with pytest.raises(CorruptFileError, match="not a PACSET"):
        PackedForest.open(tmp_path / "other")


def test_lru_cache_smaller_than_query(rf, cls_data, tmp_path):
    pack(rf, tmp_path / "rf.pacset", block_size=4096)
    X = cls_data[0][:20]
    with PackedForest.open(tmp_path / "rf.pacset", backend="pread", cache_blocks=1) as model:
        np.testing.assert_allclose(model.predict_proba(X), rf.predict_proba(X), rtol=1e-6)
        assert model.store.stats.blocks_fetched >= model.blocks_touched


@pytest.mark.parametrize("prefetch", [True, False])
def test_mmap_prefetch_counts_blocks(rf, cls_data, tmp_path, prefetch):
    pack(rf, tmp_path / "rf.pacset")
    X = cls_data[0][:5]
    with PackedForest.open(tmp_path / "rf.pacset", prefetch=prefetch) as model:
        np.testing.assert_allclose(model.predict_proba(X), rf.predict_proba(X), rtol=1e-6)
        stats = model.store.stats
        assert stats.blocks_fetched == (model.blocks_touched if prefetch else 0)
        assert (stats.round_trips > 0) == prefetch


def test_multi_output_regression(reg_data, tmp_path):
    X, y = reg_data
    Y = np.stack([y, -2 * y + 1, y**2 / 100], axis=1)
    model = ensemble.RandomForestRegressor(4, max_depth=8, random_state=0).fit(X, Y)
    pack(model, tmp_path / "m.pacset")
    with PackedForest.open(tmp_path / "m.pacset", engine="numpy") as packed:
        np.testing.assert_allclose(packed.predict(X[:100]), model.predict(X[:100]), rtol=1e-6)


def test_file_without_accumulate_field_reads_as_float64(rf, cls_data, tmp_path, monkeypatch):
    """Files written before ``accumulate`` existed sum leaves in float64 and still predict."""
    from frugalml.pacset import fileformat

    original = fileformat.metadata
    monkeypatch.setattr(
        fileformat,
        "metadata",
        lambda f, lay: {k: v for k, v in original(f, lay).items() if k != "accumulate"},
    )
    path = tmp_path / "old.pacset"
    pack(rf, path, bins=2)
    assert "accumulate" not in fileformat.open_packed(path).meta
    X = cls_data[0][:50]
    with PackedForest.open(path, engine="numpy") as model:
        assert model.model.accumulate == "float64"
        np.testing.assert_array_equal(model.predict(X), rf.predict(X))
