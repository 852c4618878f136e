"""The forest IR every importer produces: flat node arrays plus how the trees' outputs combine.

Trees are stored one after another; tree ``t`` owns nodes ``[tree_offsets[t], tree_offsets[t+1])``
and its root is the first of them. A node goes left when ``x[feature] <= threshold`` (importers
rewrite ``<`` splits into ``<=``), or when ``x[feature]`` is NaN and ``default_left`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import as_array

AGGREGATES = ("vote", "mean", "sum")
TRANSFORMS = ("identity", "sigmoid", "softmax", "exp")
PRECISIONS = ("float64", "float32")


@dataclass
class Forest:
    """A tree ensemble as flat arrays (one entry per node across all trees).

    Attributes
    ----------
    left, right : int32 arrays
        Child node ids (global), -1 for leaves.
    feature : int32 array
        Split feature (0 for leaves).
    threshold : float64 array
        Go left when ``x <= threshold``.
    default_left : bool array
        Direction of a NaN feature value.
    value : float64 array (n_nodes, n_values)
        Leaf outputs (RF classifiers: class probabilities; boosting: one score).
    cardinality : float64 array
        Training samples (or calibration queries) through each node: predicts hot paths.
    tree_offsets : int64 array (n_trees + 1)
    tree_group : int32 array (n_trees)
        The output column a tree adds to (per-class trees of multiclass boosting).
    n_features, n_outputs : int
    aggregate : {"vote", "mean", "sum"}
        ``vote``: each tree votes for its leaf's argmax class (hard vote); ``mean``: average of
        leaf vectors (RF ``predict_proba`` / regression); ``sum``: boosting scores + ``base_score``.
    transform : {"identity", "sigmoid", "softmax", "exp"}
        Applied to the raw sum (boosting); ``transform_scale`` multiplies before a sigmoid.
    classes : list or None
        Class labels of a classifier (None for a regressor).
    handles_missing : bool
        Whether the source model accepts NaN at prediction time.
    input_precision : {"float32", "float64"}
        Inputs are rounded to this precision before comparing, as the source library does.
    accumulate : {"float64", "float32"}
        How single-value leaves are summed (see :func:`sum_trees`): starting from ``base_score``,
        in tree order, in this precision. ``float32`` (XGBoost) also applies the transform in float32.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    value: np.ndarray
    cardinality: np.ndarray
    tree_offsets: np.ndarray
    tree_group: np.ndarray
    n_features: int
    n_outputs: int
    aggregate: str = "mean"
    transform: str = "identity"
    transform_scale: float = 1.0
    base_score: np.ndarray = field(default_factory=lambda: np.zeros(1))
    classes: list | None = None
    handles_missing: bool = True
    input_precision: str = "float32"
    accumulate: str = "float64"
    source: str = ""

    @property
    def n_trees(self) -> int:
        return len(self.tree_offsets) - 1

    @property
    def n_nodes(self) -> int:
        return len(self.left)

    @property
    def n_values(self) -> int:
        return self.value.shape[1]

    @property
    def is_leaf(self) -> np.ndarray:
        return self.left < 0

    def check(self) -> Forest:
        """Check the arrays describe valid trees; raise InvalidInputError when they do not."""
        n = self.n_nodes
        if (
            self.aggregate not in AGGREGATES
            or self.transform not in TRANSFORMS
            or self.accumulate not in PRECISIONS
        ):
            raise InvalidInputError(
                f"unsupported aggregate/transform/accumulate {self.aggregate}/"
                f"{self.transform}/{self.accumulate}"
            )
        internal = ~self.is_leaf
        for name, child in (("left", self.left), ("right", self.right)):
            c = child[internal]
            if c.size and (c.min() < 0 or c.max() >= n):
                raise InvalidInputError(f"model has an invalid {name} child index; is the file intact?")
        if internal.any() and (
            self.feature[internal].min() < 0 or self.feature[internal].max() >= self.n_features
        ):
            raise InvalidInputError("model splits on a feature index outside its feature count")
        if self.tree_offsets[0] != 0 or self.tree_offsets[-1] != n or np.any(np.diff(self.tree_offsets) < 1):
            raise InvalidInputError("model has an empty tree or inconsistent tree offsets")
        return self

    def prepare_input(self, X) -> np.ndarray:
        """Validate ``X`` for this model and round it to the model's input precision (float64 out)."""
        return as_rows(X, self.n_features, self.handles_missing, self.input_precision)

    def leaves(self, X) -> np.ndarray:
        """Leaf node id reached by each row in each tree, shape (n_rows, n_trees) (numpy walk)."""
        X = self.prepare_input(X)
        node = np.broadcast_to(self.tree_offsets[:-1], (len(X), self.n_trees)).copy()
        rows = np.arange(len(X))[:, None]
        active = ~self.is_leaf[node]
        while active.any():
            r, t = np.nonzero(active)
            n = node[r, t]
            x = X[rows[r, 0], self.feature[n]]
            go_left = np.where(np.isnan(x), self.default_left[n], x <= self.threshold[n])
            node[r, t] = np.where(go_left, self.left[n], self.right[n])
            active[r, t] = ~self.is_leaf[node[r, t]]
        return node

    def raw_scores(self, X) -> np.ndarray:
        """Aggregated tree outputs before the transform, shape (n_rows, n_outputs)."""
        leaves = self.leaves(X)
        out = np.zeros((len(leaves), self.n_outputs))
        if self.aggregate == "vote":
            votes = np.argmax(self.value[leaves], axis=2)
            for c in range(self.n_outputs):
                out[:, c] = (votes == c).sum(axis=1)
            return out / self.n_trees
        if self.n_values == 1:
            base = self.base_score if self.aggregate == "sum" else np.zeros(self.n_outputs)
            raw = sum_trees(self.value[leaves, 0], self.tree_group, base, self.accumulate)
            return raw if self.aggregate == "sum" else raw / self.n_trees
        return self.value[leaves].sum(axis=1) / self.n_trees

    def recount(self, X) -> Forest:
        """Replace the cardinalities by one plus the number of rows of ``X`` through each node.

        This is the workload-aware layout: lay out by the paths real queries take.
        """
        X = self.prepare_input(X)
        counts = np.ones(self.n_nodes)
        node = np.broadcast_to(self.tree_offsets[:-1], (len(X), self.n_trees)).copy()
        row = np.broadcast_to(np.arange(len(X))[:, None], node.shape)
        active = np.ones(node.shape, dtype=bool)
        while active.any():
            np.add.at(counts, node[active], 1.0)
            active &= ~self.is_leaf[node]
            n, r = node[active], row[active]
            x = X[r, self.feature[n]]
            go_left = np.where(np.isnan(x), self.default_left[n], x <= self.threshold[n])
            node[active] = np.where(go_left, self.left[n], self.right[n])
        self.cardinality = counts
        return self


def as_rows(X, n_features: int, handles_missing: bool, precision: str) -> np.ndarray:
    """``X`` as a float64 (rows x features) array checked for a model (one row may be 1-D).

    Examples
    --------
    >>> as_rows([0.5, 1.0], 2, False, "float64")
    array([[0.5, 1. ]])
    """
    X = as_array(X, "X", dtype=np.float64, allow_nan=True)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2:
        raise InvalidInputError(f"X must be 2-dimensional (rows x features), got shape {X.shape}")
    return check_features(X, n_features, handles_missing, precision)


def check_features(X: np.ndarray, n_features: int, handles_missing: bool, precision: str) -> np.ndarray:
    """Check the feature count and NaN policy; round to the model's input precision (float64 out)."""
    if X.shape[1] != n_features:
        raise InvalidInputError(
            f"X has {X.shape[1]} features but the model was trained on {n_features}; "
            "pass the same columns in the same order"
        )
    if np.isinf(X).any():
        raise InvalidInputError("X contains infinite values; replace them first")
    if not handles_missing and np.isnan(X).any():
        raise InvalidInputError(
            "X contains NaN but the model has no missing-value handling; impute the NaNs first"
        )
    if precision == "float32":
        X = X.astype(np.float32).astype(np.float64)
    return np.ascontiguousarray(X)


def sum_trees(leaf_values: np.ndarray, tree_group: np.ndarray, base_score, accumulate: str) -> np.ndarray:
    """Sum per-tree leaf values ``(n_rows, n_trees)`` into ``(n_rows, n_outputs)`` as the libraries do.

    Each output column starts at its ``base_score`` and adds its trees' values one by one in tree
    order, rounding every partial sum to ``accumulate`` (XGBoost: float32; sklearn and LightGBM:
    float64), so the result equals the source library's sum bit for bit, not only to a tolerance.
    """
    base = np.asarray(base_score, np.float64)
    dtype = np.dtype(accumulate)
    out = np.empty((leaf_values.shape[0], len(base)))
    for g, b in enumerate(base):
        trees = np.nonzero(tree_group == g)[0]
        seq = np.empty((leaf_values.shape[0], len(trees) + 1), dtype)
        seq[:, 0] = b
        seq[:, 1:] = leaf_values[:, trees]
        out[:, g] = np.add.accumulate(seq, axis=1, dtype=dtype)[:, -1]
    return out


def finish(raw: np.ndarray, transform: str, scale: float = 1.0, precision: str = "float64") -> np.ndarray:
    """Turn aggregated raw scores into outputs: probabilities (classifiers) or values.

    ``precision="float32"`` computes the transform in float32 the way XGBoost does.
    """
    if precision == "float32":
        return _finish_float32(raw.astype(np.float32), transform).astype(np.float64)
    if transform == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-scale * raw))
        return np.hstack([1.0 - p, p]) if raw.shape[1] == 1 else p
    if transform == "softmax":
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if transform == "exp":
        return np.exp(raw)
    return raw


def _finish_float32(raw: np.ndarray, transform: str) -> np.ndarray:
    """XGBoost's float32 transforms (``common::Sigmoid``, ``common::Softmax``, ``expf``)."""
    one = np.float32(1.0)
    if transform == "sigmoid":
        p = one / (_expf(np.minimum(-raw, np.float32(88.7))) + one)
        return np.hstack([one - p, p]) if raw.shape[1] == 1 else p
    if transform == "softmax":
        e = _expf(raw - raw.max(axis=1, keepdims=True))
        wsum = np.add.accumulate(e.astype(np.float64), axis=1)[:, -1:]
        return e / wsum.astype(np.float32)
    if transform == "exp":
        return _expf(raw)
    return raw


def _expf(x: np.ndarray) -> np.ndarray:
    """A correctly rounded float32 exp, as glibc's ``expf`` (numpy's float32 exp is off by an ulp)."""
    return np.exp(x.astype(np.float64)).astype(np.float32)


def decide(outputs: np.ndarray, classes: list | None) -> np.ndarray:
    """Classes (argmax of probabilities) for a classifier; the values (1-D if single) otherwise."""
    if classes is not None:
        return np.asarray(classes)[np.argmax(outputs, axis=1)]
    return outputs[:, 0] if outputs.shape[1] == 1 else outputs
