"""The saved-forest file (``.urerf``): read it as untrusted input and check its structure before use.

A forest file carries checksums, but the checksum formulas are public, so a crafted file can carry
valid ones. Before any kernel touches the arrays, :func:`check_arrays` checks what the tree
walkers rely on: dtypes and shapes consistent with the header's counts, every child index inside
its tree and after its node (so no walk can loop), parents and depths that agree with the
children, projection ranges inside the entry arrays, feature indices below the number of
features, leaf member lists that index only training points. The training points' own leaves,
which only queries about the training points read, are checked on first use
(:func:`check_training_leaves`): each a leaf of its tree, the member lists exactly the ones they
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

    What a query for new points uses is checked here; the training points' leaves (used only by
    queries about the training points) are checked by :func:`check_training_leaves` on first use.

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
children must come after their node and inside the tree; save the forest again or get an intact copy
    """
    try:
        _check_shapes(arrays, n_trees, n_samples, n_features)
        _check_trees(arrays)
        _check_features_and_members(arrays, n_samples, n_features)
    except _Invalid as exc:
        raise CorruptFileError(_message(path, exc)) from None


def check_training_leaves(path, arrays: dict[str, np.ndarray], route: str = "all") -> None:
    """Raise CorruptFileError unless every training point's leaf is a leaf of its tree and the leaf
    member lists are exactly the ones those leaves imply (arrays already through check_arrays)."""
    from frugalml.urerf import _checks

    code = _checks.check_leaf_lists(
        arrays["leaves_"],
        arrays["inbag_"],
        route == "inbag",
        arrays["tree_offsets_"],
        arrays["children_left_"],
        arrays["_member_ptr"],
        arrays["_members"],
    )
    problems = {
        _checks.LEAF_OUTSIDE: "a training point's leaf lies outside its tree",
        _checks.LEAF_INNER: "a training point's leaf is an inner node",
        _checks.NEGATIVE_INBAG: "negative in-bag counts",
        _checks.BAD_POINTERS: "the leaf member lists disagree with the training points' leaves (sizes)",
        _checks.BAD_MEMBERS: "the leaf member lists disagree with the training points' leaves",
    }
    if code != _checks.LEAF_OK:
        raise CorruptFileError(_message(path, problems[int(code)]))


def _message(path, problem) -> str:
    return f"{path} is not a valid forest: {problem}; save the forest again or get an intact copy"


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


_NODE_PROBLEMS = {
    1: "a leaf (left child -1) must have right child -1",
    2: "children must come after their node and inside the tree",
    3: "a root has parent -1 and depth 0",
    4: "a parent must come before its child",
    5: "a node is not a child of its parent",
    6: "depth must be the parent's plus one",
    7: "projection range outside the entries",
}


def _check_trees(arrays) -> None:
    """Children after their node and inside the tree; parents, depths and projection ranges."""
    from frugalml.urerf import _checks

    status, where = _checks.check_nodes(
        arrays["tree_offsets_"],
        arrays["children_left_"],
        arrays["children_right_"],
        arrays["node_parent_"],
        arrays["node_depth_"],
        arrays["proj_start_"],
        arrays["proj_end_"],
        len(arrays["proj_feature_"]),
    )
    bad = np.flatnonzero(status)
    if len(bad):
        t = int(bad[0])
        raise _Invalid(f"tree {t}, node {int(where[t])}: {_NODE_PROBLEMS[int(status[t])]}")


def _check_features_and_members(arrays, n_samples: int, n_features: int) -> None:
    """Feature indices below n_features; member lists that index only training points."""
    # int32 read as uint32 puts every negative index above any valid one: one max() checks both ends
    feature = arrays["proj_feature_"]
    if len(feature) and int(feature.view(np.uint32).max()) >= n_features:
        raise _Invalid(f"a projection uses a feature outside 0..{n_features - 1}")
    ptr, members = arrays["_member_ptr"], arrays["_members"]
    if ptr[0] != 0 or ptr[-1] != len(members) or (ptr[1:] < ptr[:-1]).any():
        raise _Invalid("the leaf member pointers must rise from 0 to the member count")
    if len(members) and int(members.view(np.uint32).max()) >= n_samples:
        raise _Invalid(f"a leaf member outside the {n_samples} training points")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
