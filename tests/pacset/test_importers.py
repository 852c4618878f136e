"""Every importer reproduces its source model's predictions, with and without missing values."""

import numpy as np
import pytest
from sklearn import ensemble

from frugalml.common.errors import InvalidInputError
from frugalml.pacset import from_model, load_model_file
from frugalml.pacset.forest import finish
from tests.pacset.conftest import with_nan


def outputs(forest, X):
    return finish(forest.raw_scores(X), forest.transform, forest.transform_scale, forest.accumulate)


def reference(model, X):
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    return model.predict(X).reshape(len(X), -1)


SKLEARN = [
    ("RandomForestClassifier", dict(n_estimators=5), "cls", True),
    ("ExtraTreesClassifier", dict(n_estimators=5), "bin", True),
    ("RandomForestRegressor", dict(n_estimators=5), "reg", True),
    ("ExtraTreesRegressor", dict(n_estimators=5), "reg", True),
    ("GradientBoostingClassifier", dict(n_estimators=8), "cls", False),
    ("GradientBoostingClassifier", dict(n_estimators=8), "bin", False),
    ("GradientBoostingRegressor", dict(n_estimators=8), "reg", False),
    ("HistGradientBoostingClassifier", dict(max_iter=8), "cls", True),
    ("HistGradientBoostingClassifier", dict(max_iter=8), "bin", True),
    ("HistGradientBoostingRegressor", dict(max_iter=8), "reg", True),
]


@pytest.mark.parametrize("name,params,data,nan", SKLEARN)
def test_sklearn_importers_match(name, params, data, nan, cls_data, bin_data, reg_data):
    X, y = {"cls": cls_data, "bin": bin_data, "reg": reg_data}[data]
    model = getattr(ensemble, name)(random_state=0, **params).fit(X, y)
    forest = from_model(model)
    for XX in [X[:300], with_nan(X[:300])] if nan else [X[:300]]:
        np.testing.assert_allclose(outputs(forest, XX), reference(model, XX), rtol=1e-6, atol=0)


def test_workload_recount_counts_rows(rf, cls_data):
    forest = from_model(rf).recount(cls_data[0][:50])
    roots = forest.tree_offsets[:-1]
    assert np.all(forest.cardinality[roots] == 51)
    leaves = forest.is_leaf
    assert forest.cardinality[leaves].sum() == leaves.sum() + forest.n_trees * 50


@pytest.mark.peers
@pytest.mark.parametrize("kind", ["cls", "bin", "reg"])
def test_xgboost_json_and_ubj(kind, cls_data, bin_data, reg_data, tmp_path):
    xgb = pytest.importorskip("xgboost")
    X, y = {"cls": cls_data, "bin": bin_data, "reg": reg_data}[kind]
    model = (xgb.XGBRegressor if kind == "reg" else xgb.XGBClassifier)(n_estimators=40, max_depth=4, n_jobs=1)
    model.fit(X, y)
    for suffix in ("json", "ubj"):
        model.save_model(tmp_path / f"m.{suffix}")
        forest = load_model_file(tmp_path / f"m.{suffix}")
        assert forest.accumulate == "float32"
        for XX in (X[:300], with_nan(X[:300])):
            margin = model.get_booster().inplace_predict(XX, predict_type="margin")
            # float32 sums in tree order from the float32 base margin: the same bits as XGBoost.
            np.testing.assert_array_equal(forest.raw_scores(XX), np.reshape(margin, (len(XX), -1)))
            np.testing.assert_allclose(outputs(forest, XX), reference(model, XX), rtol=1e-6, atol=0)


def test_float64_sum_in_round_order_differs_from_float32():
    """The accumulation precision matters: float32 in tree order is not the float64 sum."""
    from frugalml.pacset.forest import sum_trees

    leaves = np.random.default_rng(0).normal(size=(50, 300)) * 1e-3
    groups = np.zeros(300, np.int32)
    f32 = sum_trees(leaves.astype(np.float32).astype(np.float64), groups, [0.5], "float32")
    expected = np.float32(0.5) + np.zeros(50, np.float32)
    for t in range(300):
        expected = expected + leaves[:, t].astype(np.float32)
    np.testing.assert_array_equal(f32[:, 0], expected)
    f64 = sum_trees(leaves, groups, [0.5], "float64")
    np.testing.assert_allclose(f64[:, 0], 0.5 + leaves.sum(axis=1), rtol=1e-12)
    assert np.any(f32 != f64)


@pytest.mark.peers
@pytest.mark.parametrize("kind", ["cls", "bin", "reg"])
def test_lightgbm_text(kind, cls_data, bin_data, reg_data, tmp_path):
    lgb = pytest.importorskip("lightgbm")
    X, y = {"cls": cls_data, "bin": bin_data, "reg": reg_data}[kind]
    est = lgb.LGBMRegressor if kind == "reg" else lgb.LGBMClassifier
    model = est(n_estimators=30, verbose=-1, n_jobs=1)
    model.fit(X, y)
    model.booster_.save_model(tmp_path / "m.txt")
    forest = load_model_file(tmp_path / "m.txt")
    assert forest.accumulate == "float64"
    for XX in (X[:300], with_nan(X[:300])):
        raw = model.predict(XX, raw_score=True).reshape(len(XX), -1)
        np.testing.assert_allclose(forest.raw_scores(XX), raw, rtol=1e-6, atol=0)
        np.testing.assert_allclose(outputs(forest, XX), reference(model, XX), rtol=1e-6, atol=0)


def test_joblib_file(rf, cls_data, tmp_path):
    import joblib

    joblib.dump(rf, tmp_path / "rf.joblib")
    with pytest.raises(InvalidInputError, match="trust"):
        load_model_file(tmp_path / "rf.joblib")
    forest = load_model_file(tmp_path / "rf.joblib", trust_pickle=True)
    np.testing.assert_array_equal(outputs(forest, cls_data[0][:50]), rf.predict_proba(cls_data[0][:50]))


def test_unknown_model_and_file(tmp_path):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(InvalidInputError, match="unknown model type"):
        from_model(LogisticRegression())
    with pytest.raises(InvalidInputError, match="not fitted"):
        from_model(ensemble.RandomForestClassifier())
    (tmp_path / "junk.bin").write_bytes(b"not a model at all")
    with pytest.raises(InvalidInputError, match="is not XGBoost JSON/UBJ"):
        load_model_file(tmp_path / "junk.bin")
    with pytest.raises(InvalidInputError, match="not a model file"):
        load_model_file(tmp_path / "junk.bin", trust_pickle=True)
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(InvalidInputError, match="not an XGBoost model"):
        load_model_file(tmp_path / "x.json")


def test_nan_refused_without_missing_handling(reg_data):
    model = ensemble.GradientBoostingRegressor(n_estimators=3).fit(*reg_data)
    with pytest.raises(InvalidInputError, match="no missing-value handling"):
        from_model(model).raw_scores(with_nan(reg_data[0][:20]))
