"""The saved-forest file (``.urerf``): read it as untrusted input and check its structure before use.

A forest file carries checksums, but the checksum formulas are public, so a crafted file can carry
valid ones. Before any kernel touches the arrays, :func:`read_forest` checks what the tree walkers
rely on: dtypes and shapes consistent with the header's counts, every child index inside its tree
and after its parent (so no walk can loop), parents and depths that agree with the children,
projection ranges inside the entry arrays, feature indices below the number of features, every
training point's leaf a leaf of its tree, and the leaf member lists equal to the ones the leaves
imply. Any failure is one :class:`~frugalml.common.errors.CorruptFileError`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from frugalml.common.errors import CorruptFileError, FrugalError

MAGIC, FORMAT_VERSION = b"URERF", 1
# name -> dtype the kernels take; the shapes are checked in _check_shapes
NODE_ARRAYS = {
    "children_left_": np.int32,
    "children_right_": np.int32,
    "threshold_": np.float64,
    "proj_start_": np.int64,
    "proj_end_": np.int64,
    "node_depth_": np.int32,
    "node_parent_": np.int32,
}
DTYPES = {
    "tree_offsets_": np.int64,
    **NODE_ARRAYS,
    "proj_feature_": np.int32,
    "proj_weight_": np.float32,
    "leaves_": np.int32,
    "inbag_": np.int32,
    "_member_ptr": np.int64,
    "_members": np.int32,
}
SCALE_DTYPES = {"scale_min_": np.float64, "scale_range_": np.float64}  # saved when ``normalize``


def read_forest(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metadata and arrays of a saved forest, read through :mod:`frugalml.common.arrays`.

    Anything the reader cannot parse (a header whose JSON is garbage, metadata that is not an
    object) is a :class:`CorruptFileError`; a missing file stays a ``DataNotFoundError``.
    """
    from frugalml.common.arrays import load_arrays

    try:
        meta, arrays = load_arrays(path, MAGIC, FORMAT_VERSION)
    except FrugalError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, OverflowError) as exc:
        raise CorruptFileError(
            f"{path} has a damaged header ({_short(exc)}); save the forest again or get an intact copy"
        ) from None
    if not isinstance(meta, dict):
        raise CorruptFileError(
            f"{path} has damaged metadata (not a JSON object); save the forest again or get an intact copy"
        )
    return meta, arrays


def check_arrays(
    path, arrays: dict[str, np.ndarray], n_trees: int, n_samples: int, n_features: int, route: str = "all"
) -> None:
    """Raise CorruptFileError unless ``arrays`` form ``n_trees`` well-formed trees (see the module doc).

    Examples
    --------
    >>> from frugalml.urerf import UnsupervisedRandomerForest
    >>> X = np.random.default_rng(0).normal(size=(40, 3))
    >>> forest = UnsupervisedRandomerForest(4, random_state=0).fit(X)
    >>> arrays = {name: getattr(forest, name) for name in DTYPES}
    >>> check_arrays("f.urerf", arrays, 4, 40, 3)
    >>> arrays["children_left_"] = arrays["children_left_"].copy()
    >>> arrays["children_left_"][0] = 0  # the root as its own child: a walk would never end
    >>> check_arrays("f.urerf", arrays, 4, 40, 3)
    Traceback (most recent call last):
    ...
    frugalml.common.errors.CorruptFileError: f.urerf is not a valid forest: tree 0, node 0: \
children must come after their parent and inside the tree; save the forest again or get an intact copy
    """
    try:
        _check_shapes(arrays, n_trees, n_samples, n_features)
        _check_trees(arrays)
        _check_projections(arrays, n_features)
        _check_leaves(arrays, route)
    except _Invalid as exc:
        raise CorruptFileError(
            f"{path} is not a valid forest: {exc}; save the forest again or get an intact copy"
        ) from None


class _Invalid(Exception):
    """One structural defect (turned into a CorruptFileError naming the file)."""


def _check_shapes(arrays, n_trees: int, n_samples: int, n_features: int) -> None:
    for name, dtype in {**DTYPES, **SCALE_DTYPES}.items():
        if name in arrays and arrays[name].dtype != np.dtype(dtype):
            raise _Invalid(f"{name} has dtype {arrays[name].dtype}, expected {np.dtype(dtype)}")
    if n_trees < 1 or n_samples < 2 or n_features < 1:
        raise _Invalid(f"{n_trees} trees, {n_samples} samples, {n_features} features")
    n_nodes = len(arrays["children_left_"])
    n_entries = len(arrays["proj_feature_"])
    expected = {
        "tree_offsets_": (n_trees + 1,),
        **{name: (n_nodes,) for name in NODE_ARRAYS},
        "proj_feature_": (n_entries,),
        "proj_weight_": (n_entries,),
        "leaves_": (n_trees, n_samples),
        "inbag_": (n_trees, n_samples),
        "_member_ptr": (n_nodes + 1,),
        "_members": (len(arrays["_members"]),),
    }
    expected.update({name: (n_features,) for name in SCALE_DTYPES if name in arrays})
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise _Invalid(f"{name} has shape {arrays[name].shape}, expected {shape}")
    offsets = arrays["tree_offsets_"]
    if offsets[0] != 0 or offsets[-1] != n_nodes or (np.diff(offsets) < 1).any():
        raise _Invalid("tree offsets must rise from 0 to the node count, each tree holding a node")
    for name in SCALE_DTYPES:
        if name in arrays and not np.isfinite(arrays[name]).all():
            raise _Invalid(f"{name} holds NaN or infinity")
    if "scale_range_" in arrays and (arrays["scale_range_"] <= 0).any():
        raise _Invalid("scale_range_ must be positive")


def _node_frame(offsets: np.ndarray):
    """Per node: its tree's first global index, its local index and its tree's node count."""
    sizes = np.diff(offsets)
    tree_of = np.repeat(np.arange(len(sizes)), sizes)
    base = offsets[tree_of]
    return tree_of, base, np.arange(offsets[-1], dtype=np.int64) - base, sizes[tree_of]


def _fail_at(bad: np.ndarray, tree_of: np.ndarray, local: np.ndarray, what: str) -> None:
    if bad.any():
        g = int(np.flatnonzero(bad)[0])
        raise _Invalid(f"tree {int(tree_of[g])}, node {int(local[g])}: {what}")


def _check_trees(arrays) -> None:
    """Children after their parent and inside the tree; parents and depths agree with them."""
    tree_of, base, local, size = _node_frame(arrays["tree_offsets_"])
    left = arrays["children_left_"].astype(np.int64)
    right = arrays["children_right_"].astype(np.int64)
    parent = arrays["node_parent_"].astype(np.int64)
    depth = arrays["node_depth_"].astype(np.int64)
    leaf = left == -1
    _fail_at(leaf & (right != -1), tree_of, local, "a leaf (left child -1) must have right child -1")
    internal = ~leaf
    inside = (left > local) & (left < size) & (right > local) & (right < size) & (left != right)
    _fail_at(internal & ~inside, tree_of, local, "children must come after their parent and inside the tree")
    root = local == 0
    _fail_at(root & ((parent != -1) | (depth != 0)), tree_of, local, "a root has parent -1 and depth 0")
    _fail_at(
        ~root & ((parent < 0) | (parent >= local)), tree_of, local, "a parent must come before its child"
    )
    g_parent = np.where(root, 0, base + parent)  # valid global indices from here on
    is_child = (left[g_parent] == local) | (right[g_parent] == local)
    _fail_at(~root & ~is_child, tree_of, local, "a node is not a child of its parent")
    _fail_at(~root & (depth != depth[g_parent] + 1), tree_of, local, "depth must be the parent's plus one")


def _check_projections(arrays, n_features: int) -> None:
    tree_of, _, local, _ = _node_frame(arrays["tree_offsets_"])
    start, end = arrays["proj_start_"], arrays["proj_end_"]
    n_entries = len(arrays["proj_feature_"])
    bad = (start < 0) | (end < start) | (end > n_entries)
    _fail_at(bad, tree_of, local, f"projection range outside the {n_entries} entries")
    feature = arrays["proj_feature_"]
    if len(feature) and (feature.min() < 0 or feature.max() >= n_features):
        raise _Invalid(f"a projection uses a feature outside 0..{n_features - 1}")


def _check_leaves(arrays, route: str) -> None:
    """Each training point's leaf is a leaf of its tree; the member lists are the ones it implies."""
    from frugalml.urerf import _leaves

    code = _leaves.check_leaf_lists(
        arrays["leaves_"],
        arrays["inbag_"],
        route == "inbag",
        arrays["tree_offsets_"],
        arrays["children_left_"],
        arrays["_member_ptr"],
        arrays["_members"],
    )
    problems = {
        _leaves.LEAF_OUTSIDE: "a training point's leaf lies outside its tree",
        _leaves.LEAF_INNER: "a training point's leaf is an inner node",
        _leaves.NEGATIVE_INBAG: "negative in-bag counts",
        _leaves.BAD_POINTERS: "the leaf member lists disagree with the training points' leaves (sizes)",
        _leaves.BAD_MEMBERS: "the leaf member lists disagree with the training points' leaves",
    }
    if code != _leaves.LEAF_OK:
        raise _Invalid(problems[code])


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
