"""Importers: sklearn forests and boosting, XGBoost JSON/UBJ and LightGBM models into the forest IR."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.common.errors import DataNotFoundError, InvalidInputError, PeerUnavailableError
from frugalml.pacset.forest import Forest


def from_model(model: Any) -> Forest:
    """Import a fitted model object (sklearn, XGBoost or LightGBM) into a :class:`Forest`.

    Raises
    ------
    InvalidInputError
        The object is not a supported tree ensemble, is not fitted, or uses a feature we do not
        support (categorical splits, custom init estimators, DART).
    """
    module = type(model).__module__
    name = type(model).__name__
    if module.startswith("sklearn."):
        if name in (
            "RandomForestClassifier",
            "RandomForestRegressor",
            "ExtraTreesClassifier",
            "ExtraTreesRegressor",
        ):
            return _from_sklearn_forest(model).check()
        if name in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
            return _from_sklearn_gb(model).check()
        if name in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
            return _from_sklearn_hgb(model).check()
    if module.startswith("xgboost"):
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        return from_xgboost_json(json.loads(bytes(booster.save_raw("json"))))
    if module.startswith("lightgbm"):
        booster = model.booster_ if hasattr(model, "booster_") else model
        return from_lightgbm_dump(booster.dump_model())
    raise InvalidInputError(
        f"unknown model type {module}.{name}; pacset packs sklearn RandomForest/ExtraTrees/"
        "GradientBoosting/HistGradientBoosting, XGBoost and LightGBM models"
    )


SAFE_FORMATS = (
    "XGBoost JSON/UBJ (Booster.save_model('model.json')) or LightGBM text (save_model('model.txt'))"
)


def load_model_file(path: str | os.PathLike, *, trust_pickle: bool = False) -> Forest:
    """Import a model file: XGBoost JSON or UBJ, a LightGBM text model, or (with ``trust_pickle``)
    a joblib/pickle file (sklearn, or a pickled XGBoost/LightGBM model). The format is detected
    from the content.

    Loading a joblib/pickle file runs code it contains, so such files are refused unless
    ``trust_pickle=True``: pass it only for files from a source you trust. sklearn models can be
    packed without a pickle by calling :func:`frugalml.pacset.pack` on the fitted estimator.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"model file {path} does not exist; check the path")
    with open(path, "rb") as f:
        head = f.read(64)
    if head.lstrip().startswith(b"{"):
        try:
            doc = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return _from_xgboost_ubj(path)
        if not isinstance(doc, dict) or "learner" not in doc:
            raise InvalidInputError(f"{path} is JSON but not an XGBoost model (no 'learner' key)")
        return from_xgboost_json(doc)
    if head.startswith(b"tree\n") or head.startswith(b"tree\r\n"):
        lgb = _need("lightgbm", "LightGBM text models")
        try:
            booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise InvalidInputError(f"{path} is not a readable LightGBM model: {exc}") from None
        return from_lightgbm_dump(booster.dump_model())
    if not trust_pickle:
        raise InvalidInputError(
            f"{path} is not {SAFE_FORMATS}; if it is a joblib/pickle file, loading it runs code "
            "it contains: pass --trust-pickle (trust_pickle=True) only if you trust its source, or "
            "save the model in a safe format (sklearn: call frugalml.pacset.pack on the estimator)"
        )
    return _unpickle(path)


def _unpickle(path: Path) -> Forest:
    import pickle

    import joblib

    try:
        model = joblib.load(path)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, OSError) as exc:
        raise InvalidInputError(
            f"{path} is not a model file pacset reads ({SAFE_FORMATS}, or joblib/pickle): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return from_model(model)


def _from_xgboost_ubj(path: Path) -> Forest:
    xgb = _need("xgboost", "XGBoost UBJ models")
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as exc:
        raise InvalidInputError(f"{path} is not a readable XGBoost model: {exc}") from None
    return from_xgboost_json(json.loads(bytes(booster.save_raw("json"))))


def _need(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise PeerUnavailableError(f"reading {what} needs {module}; pip install {module}") from None


def _check_fitted(model) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        raise InvalidInputError(f"{type(model).__name__} is not fitted; call fit first") from None


def _concat(trees: list[dict], n_features: int, **kwargs) -> Forest:
    """Join per-tree arrays (local child ids) into one Forest with global ids."""
    sizes = np.array([len(t["left"]) for t in trees])
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def glob(key):
        parts = []
        for t, off in zip(trees, offsets[:-1], strict=False):
            c = np.asarray(t[key], dtype=np.int64)
            parts.append(np.where(c >= 0, c + off, -1))
        return np.concatenate(parts).astype(np.int32)

    def cat(key, dtype):
        return np.concatenate([np.asarray(t[key], dtype=dtype) for t in trees])

    values = np.concatenate(
        [np.asarray(t["value"], dtype=np.float64).reshape(len(t["left"]), -1) for t in trees]
    )
    return Forest(
        left=glob("left"),
        right=glob("right"),
        feature=cat("feature", np.int32),
        threshold=cat("threshold", np.float64),
        default_left=cat("default_left", bool),
        value=values,
        cardinality=cat("cardinality", np.float64),
        tree_offsets=offsets,
        n_features=n_features,
        **kwargs,
    )


def _f32_floor(t: np.ndarray) -> np.ndarray:
    """The largest float32 <= t: for float32 x, ``x <= t`` iff ``x <= _f32_floor(t)``."""
    f = t.astype(np.float32)
    over = f.astype(np.float64) > t
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    return f.astype(np.float64)


def _sklearn_tree(tree, value: np.ndarray) -> dict:
    t = tree.tree_
    leaf = t.children_left < 0
    return {
        "left": t.children_left,
        "right": t.children_right,
        "feature": np.where(leaf, 0, t.feature),
        "threshold": np.where(leaf, 0.0, _f32_floor(t.threshold)),
        "default_left": np.asarray(t.missing_go_to_left, dtype=bool),
        "value": value,
        "cardinality": t.weighted_n_node_samples,
    }


def _from_sklearn_forest(model) -> Forest:
    _check_fitted(model)
    classifier = hasattr(model, "classes_")
    if classifier and model.n_outputs_ != 1:
        raise InvalidInputError("multi-output forest classifiers are not supported; fit one per output")
    trees = []
    for est in model.estimators_:
        v = est.tree_.value[:, :, 0] if not classifier else est.tree_.value[:, 0, :]
        if classifier:
            v = v / v.sum(axis=1, keepdims=True)
        trees.append(_sklearn_tree(est, v))
    n_out = len(model.classes_) if classifier else model.n_outputs_
    return _concat(
        trees,
        model.n_features_in_,
        tree_group=np.zeros(len(trees), np.int32),
        n_outputs=n_out,
        aggregate="mean",
        classes=_labels(model) if classifier else None,
        handles_missing=True,
        input_precision="float32",
        source=type(model).__name__,
    )


def _labels(model) -> list:
    return np.asarray(model.classes_).tolist()


def _from_sklearn_gb(model) -> Forest:
    _check_fitted(model)
    init = model.init_
    if not (init == "zero" or type(init).__name__ in ("DummyClassifier", "DummyRegressor")):
        raise InvalidInputError(
            "GradientBoosting with a custom init estimator is not supported; use init=None or 'zero'"
        )
    classifier = hasattr(model, "classes_")
    if classifier and model.loss != "log_loss":
        raise InvalidInputError(
            f"GradientBoostingClassifier(loss={model.loss!r}) is not supported; use loss='log_loss'"
        )
    stages, k = model.estimators_.shape
    trees, groups = [], []
    for s in range(stages):
        for c in range(k):
            est = model.estimators_[s, c]
            trees.append(_sklearn_tree(est, model.learning_rate * est.tree_.value[:, 0, 0]))
            groups.append(c)
    base = model._raw_predict_init(np.zeros((1, model.n_features_in_), dtype=np.float32))[0]
    transform = "identity" if not classifier else ("sigmoid" if k == 1 else "softmax")
    return _concat(
        trees,
        model.n_features_in_,
        tree_group=np.array(groups, np.int32),
        n_outputs=k,
        aggregate="sum",
        transform=transform,
        base_score=np.asarray(base, np.float64),
        classes=_labels(model) if classifier else None,
        handles_missing=False,
        input_precision="float32",
        source=type(model).__name__,
    )


def _from_sklearn_hgb(model) -> Forest:
    _check_fitted(model)
    if model.is_categorical_ is not None and np.any(model.is_categorical_):
        raise InvalidInputError(
            "HistGradientBoosting with categorical features is not supported; one-hot encode them instead"
        )
    trees, groups = [], []
    for stage in model._predictors:
        for c, pred in enumerate(stage):
            n = pred.nodes
            leaf = n["is_leaf"].astype(bool)
            trees.append(
                {
                    "left": np.where(leaf, -1, n["left"].astype(np.int64)),
                    "right": np.where(leaf, -1, n["right"].astype(np.int64)),
                    "feature": np.where(leaf, 0, n["feature_idx"].astype(np.int64)),
                    "threshold": np.where(leaf, 0.0, n["num_threshold"]),
                    "default_left": n["missing_go_to_left"].astype(bool),
                    "value": n["value"],
                    "cardinality": n["count"],
                }
            )
            groups.append(c)
    link = type(model._loss.link).__name__
    transform = {
        "IdentityLink": "identity",
        "LogLink": "exp",
        "LogitLink": "sigmoid",
        "MultinomialLogit": "softmax",
    }.get(link)
    if transform is None:
        raise InvalidInputError(f"HistGradientBoosting loss with link {link} is not supported")
    classifier = hasattr(model, "classes_")
    return _concat(
        trees,
        model.n_features_in_,
        tree_group=np.array(groups, np.int32),
        n_outputs=len(model._predictors[0]),
        aggregate="sum",
        transform=transform,
        base_score=np.ravel(model._baseline_prediction).astype(np.float64),
        classes=_labels(model) if classifier else None,
        handles_missing=True,
        input_precision="float64",
        source=type(model).__name__,
    )


def _xgb_float(text) -> np.ndarray:
    if isinstance(text, list):
        return np.array([float(t) for t in text])
    return np.array([float(t) for t in str(text).strip("[]").split(",")])


def from_xgboost_json(doc: dict) -> Forest:
    """Import an XGBoost model from its JSON document (``Booster.save_raw('json')`` / ``.json`` file).

    XGBoost compares float32 inputs with ``x < split``; we store the next float32 below the split
    and compare with ``<=``, which is the same test. It sums leaf values in float32 in tree order,
    starting from the float32 margin of ``base_score``: the forest records ``accumulate="float32"``.
    """
    try:
        learner = doc["learner"]
        booster = learner["gradient_booster"]
        params = learner["learner_model_param"]
        objective = learner["objective"]["name"]
    except (KeyError, TypeError) as exc:
        raise InvalidInputError(f"XGBoost JSON is missing {exc}; is it an XGBoost model file?") from None
    if booster.get("name") != "gbtree":
        raise InvalidInputError(f"XGBoost booster {booster.get('name')!r} is not supported; use gbtree")
    model = booster["model"]
    n_class = int(params.get("num_class", 0) or 0)
    k = max(n_class, 1)
    base = _xgb_float(params["base_score"])
    transform, margin = {
        "binary:logistic": ("sigmoid", _logit),
        "reg:logistic": ("sigmoid", _logit),
        "binary:logitraw": ("identity", None),
        "reg:squarederror": ("identity", None),
        "reg:squaredlogerror": ("identity", None),
        "reg:pseudohubererror": ("identity", None),
        "reg:absoluteerror": ("identity", None),
        "reg:quantileerror": ("identity", None),
        "multi:softprob": ("softmax", None),
        "multi:softmax": ("softmax", None),
        "count:poisson": ("exp", np.log),
        "reg:gamma": ("exp", np.log),
        "reg:tweedie": ("exp", np.log),
    }.get(objective, (None, None))
    if transform is None:
        raise InvalidInputError(f"XGBoost objective {objective!r} is not supported")
    base = base.astype(np.float32)
    base = margin(base) if margin is not None else base  # in float32, as XGBoost's ProbToMargin
    base = np.broadcast_to(base, (k,)).astype(np.float64)
    trees = []
    for tree in model["trees"]:
        if any(tree.get("split_type", [])):
            raise InvalidInputError("XGBoost categorical splits are not supported; one-hot encode")
        left = np.asarray(tree["left_children"], np.int64)
        leaf = left < 0
        cond = np.asarray(tree["split_conditions"], np.float32)
        below = np.nextafter(cond, np.float32(-np.inf)).astype(np.float64)
        trees.append(
            {
                "left": left,
                "right": tree["right_children"],
                "feature": np.where(leaf, 0, tree["split_indices"]),
                "threshold": np.where(leaf, 0.0, below),
                "default_left": np.asarray(tree["default_left"], bool),
                "value": np.where(leaf, cond.astype(np.float64), 0.0),
                "cardinality": tree["sum_hessian"],
            }
        )
    if not trees:
        raise InvalidInputError("XGBoost model has no trees")
    groups = np.asarray(model["tree_info"], np.int32)
    classifier = objective.startswith(("binary:", "multi:"))
    classes = list(range(max(k, 2))) if classifier and objective != "binary:logitraw" else None
    return _concat(
        trees,
        int(params["num_feature"]),
        tree_group=groups,
        n_outputs=k,
        aggregate="sum",
        transform=transform,
        base_score=base,
        classes=classes,
        handles_missing=True,
        input_precision="float32",
        accumulate="float32",
        source=f"xgboost {objective}",
    )


def _logit(p: np.ndarray) -> np.ndarray:
    """XGBoost's float32 ``-logf(1.0f / p - 1.0f)``."""
    one = np.float32(1.0)
    return -np.log(one / p - one)


def from_lightgbm_dump(dump: dict) -> Forest:
    """Import a LightGBM model from ``Booster.dump_model()`` (cardinality from ``internal_count``)."""
    try:
        infos = dump["tree_info"]
        k = int(dump["num_tree_per_iteration"])
        n_features = int(dump["max_feature_idx"]) + 1
        objective = str(dump.get("objective", "regression")).split()
    except (KeyError, TypeError) as exc:
        raise InvalidInputError(f"LightGBM dump is missing {exc}; is it a LightGBM model?") from None
    if dump.get("average_output"):
        raise InvalidInputError("LightGBM random-forest mode (average_output) is not supported")
    name = objective[0] if objective else "regression"
    args = dict(a.split(":", 1) for a in objective[1:] if ":" in a)
    transform, scale = "identity", 1.0
    if name in ("binary", "cross_entropy", "xentropy"):
        transform, scale = "sigmoid", float(args.get("sigmoid", 1.0))
    elif name in ("multiclass", "softmax"):
        transform = "softmax"
    elif name in ("poisson", "gamma", "tweedie"):
        transform = "exp"
    elif name not in (
        "regression",
        "regression_l2",
        "regression_l1",
        "huber",
        "fair",
        "quantile",
        "mape",
        "l1",
        "l2",
    ):
        raise InvalidInputError(f"LightGBM objective {name!r} is not supported")
    trees = [_lightgbm_tree(info["tree_structure"]) for info in infos]
    if not trees:
        raise InvalidInputError("LightGBM model has no trees")
    groups = np.arange(len(trees), dtype=np.int32) % k
    classifier = transform in ("sigmoid", "softmax") and name not in ("cross_entropy", "xentropy")
    return _concat(
        trees,
        n_features,
        tree_group=groups,
        n_outputs=k,
        aggregate="sum",
        transform=transform,
        transform_scale=scale,
        base_score=np.zeros(k),
        classes=list(range(max(k, 2))) if classifier else None,
        handles_missing=True,
        input_precision="float64",
        source=f"lightgbm {name}",
    )


def _lightgbm_tree(root: dict) -> dict:
    out: dict[str, list] = {
        k: [] for k in ("left", "right", "feature", "threshold", "default_left", "value", "cardinality")
    }
    stack = [(root, -1, False)]
    while stack:
        node, parent, is_right = stack.pop()
        i = len(out["left"])
        if parent >= 0:
            out["right" if is_right else "left"][parent] = i
        if "leaf_value" in node:
            for key, v in (
                ("left", -1),
                ("right", -1),
                ("feature", 0),
                ("threshold", 0.0),
                ("default_left", False),
                ("value", float(node["leaf_value"])),
                ("cardinality", float(node.get("leaf_count", 1))),
            ):
                out[key].append(v)
            continue
        if node.get("decision_type", "<=") != "<=":
            raise InvalidInputError("LightGBM categorical splits are not supported; one-hot encode")
        missing = node.get("missing_type", "None")
        threshold = float(node["threshold"])
        if missing == "Zero":
            raise InvalidInputError("LightGBM zero_as_missing models are not supported")
        default_left = bool(node["default_left"]) if missing == "NaN" else (0.0 <= threshold)
        for key, v in (
            ("left", -1),
            ("right", -1),
            ("feature", int(node["split_feature"])),
            ("threshold", threshold),
            ("default_left", default_left),
            ("value", 0.0),
            ("cardinality", float(node.get("internal_count", 1))),
        ):
            out[key].append(v)
        stack.append((node["right_child"], i, True))
        stack.append((node["left_child"], i, False))
    if math.isnan(sum(out["threshold"])):
        raise InvalidInputError("LightGBM model has a NaN threshold")
    return out
