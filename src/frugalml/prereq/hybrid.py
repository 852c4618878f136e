"""prereq-hybrid as a saved model: its forest and the corpus statistics its features need, as plain
arrays (no pickle), with the checks a file from elsewhere must pass before anything is built from it.

The forest is scored by :func:`forest_proba` (the same decisions as scikit-learn's
``RandomForestClassifier.predict_proba``: features cast to float32, ``x <= threshold`` goes left,
the leaves' class-1 shares averaged over the trees). The corpus statistics are, for every concept's
vocabulary column, the documents that mention it, and the document links; documents that neither
mention a concept nor take part in a link change no feature and are not stored, the others are
numbered 0..D-1 in their original order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from frugalml.prereq.data import Corpus

PARTS = ("topics", "links")
FEATURES = {"topics": 16, "links": 9}  # columns of methods.topic_features / link_count_features
FEATURE_SETS = (["topics"], ["links"], ["topics", "links"])
FOREST = ("tree_ptr", "left", "right", "feature", "threshold", "proba")
STATS = ("columns", "doc_ptr", "doc_idx", "links")


def n_features(parts: Sequence[str]) -> int:
    return sum(FEATURES[p] for p in parts)


def export_forest(forest) -> dict[str, np.ndarray]:
    """A fitted ``RandomForestClassifier`` (classes within {0, 1}) as flat arrays: ``tree_ptr``
    (trees + 1) and per node ``left``/``right`` (child within its tree, -1 at a leaf),
    ``feature``, ``threshold`` and ``proba`` (share of class 1 among the node's training pairs)."""
    classes = [int(c) for c in forest.classes_]
    trees = [est.tree_ for est in forest.estimators_]
    out: dict[str, list] = {name: [] for name in FOREST[1:]}
    for tree in trees:
        value = tree.value[:, 0, :]
        total = value.sum(1)
        share = value[:, classes.index(1)] if 1 in classes else np.zeros(len(value))
        leaf = tree.children_left < 0
        out["left"].append(np.where(leaf, -1, tree.children_left))
        out["right"].append(np.where(leaf, -1, tree.children_right))
        out["feature"].append(np.where(leaf, 0, tree.feature))
        out["threshold"].append(np.where(leaf, 0.0, tree.threshold))
        out["proba"].append(np.clip(share / np.where(total > 0, total, 1.0), 0.0, 1.0))
    arrays = {name: np.concatenate(parts) for name, parts in out.items()}
    arrays["tree_ptr"] = np.concatenate([[0], np.cumsum([t.node_count for t in trees])])
    for name in ("tree_ptr", "left", "right", "feature"):
        arrays[name] = arrays[name].astype(np.int64)
    for name in ("threshold", "proba"):
        arrays[name] = arrays[name].astype(np.float64)
    return arrays


def forest_proba(features: np.ndarray, forest: dict[str, np.ndarray]) -> np.ndarray:
    """Mean over the trees of the class-1 share of the leaf each row reaches."""
    with np.errstate(all="ignore"):
        x = np.asarray(features, dtype=np.float64).astype(np.float32)
    ptr = forest["tree_ptr"]
    rows = np.arange(len(x))
    total = np.zeros(len(x))
    for t in range(len(ptr) - 1):
        lo, hi = int(ptr[t]), int(ptr[t + 1])
        left, right = forest["left"][lo:hi], forest["right"][lo:hi]
        feature, threshold = forest["feature"][lo:hi], forest["threshold"][lo:hi]
        node = np.zeros(len(x), dtype=np.int64)
        active = rows  # the rows not yet at a leaf; children lie after their parent, so all arrive
        while active.size:
            at = node[active]
            inner = left[at] >= 0
            active, at = active[inner], at[inner]
            go_left = x[active, feature[at]] <= threshold[at]
            node[active] = np.where(go_left, left[at], right[at])
        total += forest["proba"][lo:hi][node]
    return total / max(len(ptr) - 1, 1)


def corpus_statistics(corpus: Corpus, concepts: dict[str, int]) -> dict[str, np.ndarray]:
    """What the link-count features read from a corpus: per concept column its documents, and the
    links, over the documents that take part in either (renumbered densely)."""
    columns = np.unique(np.asarray(list(concepts.values()), dtype=np.int64))
    present = sp.csc_matrix(corpus.counts[:, columns] > 0)
    present.sort_indices()
    links = np.asarray(corpus.links, dtype=np.int64).reshape(-1, 2)
    used = np.unique(np.concatenate([present.indices.astype(np.int64), links.ravel()]))
    return {
        "columns": columns,
        "doc_ptr": present.indptr.astype(np.int64),
        "doc_idx": np.searchsorted(used, present.indices).astype(np.int64),
        "links": np.searchsorted(used, links).astype(np.int64).reshape(-1, 2),
    }


def statistics_corpus(stats: dict[str, np.ndarray], n_words: int, concepts: dict[str, int]) -> Corpus:
    """A corpus with the same features as the one :func:`corpus_statistics` read."""
    columns, ptr, idx, links = (stats[k] for k in STATS)
    n_docs = 1 + int(max(idx.max(initial=-1), links.max(initial=-1)))
    n_docs = max(n_docs, 1)
    cols = np.repeat(columns, np.diff(ptr))
    counts = sp.csr_matrix((np.ones(len(idx)), (idx, cols)), shape=(n_docs, n_words))
    return Corpus(counts, [""] * n_words, links, dict(concepts), doc_ids=[""] * n_docs)


# ---------------------------------------------------------------------- checks of untrusted files


def _expect(condition: Any, why: str) -> None:
    if not condition:
        raise ValueError(why)


def _indices(arrays: dict, name: str, ndim: int = 1) -> np.ndarray:
    value: Any = arrays.get(name)
    _expect(value is not None, f"array {name} is missing")
    _expect(value.dtype.kind in "iu" and value.ndim == ndim, f"array {name} must be {ndim}-D integers")
    _expect(value.size == 0 or int(value.max()) < 2**62, f"array {name} holds a huge index")
    return value.astype(np.int64)


def _pointer(ptr: np.ndarray, end: int, name: str, strict: bool) -> None:
    steps = np.diff(ptr)
    _expect(len(ptr) >= 2 and ptr[0] == 0 and ptr[-1] == end, f"{name} must run from 0 to {end}")
    _expect(bool((steps > 0).all() if strict else (steps >= 0).all()), f"{name} must increase")


def check_hybrid(meta: dict, arrays: dict, n_words: int, concepts: dict) -> None:
    """Check a prereq-hybrid file's forest and corpus statistics (ValueError saying what is wrong);
    on return, :func:`hybrid_arrays` gives int64 indices that are all in range."""
    parts: Any = meta.get("parts")
    _expect(parts in FEATURE_SETS, "parts must be ['topics'], ['links'] or ['topics', 'links']")
    width = n_features(parts)
    forest = hybrid_arrays(arrays)
    ptr = forest["tree_ptr"]
    n_nodes = len(forest["left"])
    for name in FOREST[1:]:
        _expect(
            forest[name].ndim == 1 and len(forest[name]) == n_nodes, f"array forest.{name} has wrong shape"
        )
    _pointer(ptr, n_nodes, "forest.tree_ptr", strict=True)
    start = np.repeat(ptr[:-1], np.diff(ptr))
    local = np.arange(n_nodes) - start
    size = np.repeat(np.diff(ptr), np.diff(ptr))
    left, right = forest["left"], forest["right"]
    inner = left != -1
    _expect(bool(((left == -1) == (right == -1)).all()), "a forest node has one child")
    for child in (left, right):
        _expect(
            bool(((child > local) & (child < size))[inner].all()),
            "a forest node's child lies outside its tree",
        )
    _expect(
        bool(((forest["feature"] >= 0) & (forest["feature"] < width))[inner].all()),
        "forest feature out of range",
    )
    _expect(bool(((forest["proba"] >= 0) & (forest["proba"] <= 1)).all()), "forest.proba outside 0..1")
    threshold: Any = arrays.get("hybrid.threshold")
    _expect(
        threshold is not None and threshold.shape == (1,), "array hybrid.threshold is missing or not (1,)"
    )
    columns, doc_ptr, doc_idx, links = (forest[f"stats.{k}"] for k in STATS)
    _expect(links.shape[1:] == (2,), "stats.links must have 2 columns")
    _expect(bool((np.diff(columns) > 0).all()), "stats.columns must increase")
    _expect(columns.size == 0 or (columns[0] >= 0 and columns[-1] < n_words), "stats.columns out of range")
    _expect(set(concepts.values()) <= set(columns.tolist()), "a concept's column has no statistics")
    _expect(len(doc_ptr) == len(columns) + 1, "stats.doc_ptr must have one entry more than stats.columns")
    _pointer(doc_ptr, len(doc_idx), "stats.doc_ptr", strict=False)
    bound = len(doc_idx) + 2 * len(links)
    for name, value in (("doc_idx", doc_idx), ("links", links)):
        _expect(value.size == 0 or (value.min() >= 0 and value.max() < bound), f"stats.{name} out of range")
    first = np.zeros(len(doc_idx), dtype=bool)
    first[doc_ptr[:-1][np.diff(doc_ptr) > 0]] = True
    _expect(bool((np.diff(doc_idx)[~first[1:]] > 0).all()), "stats.doc_idx must increase within a concept")


def hybrid_arrays(arrays: dict) -> dict[str, np.ndarray]:
    """The forest's and statistics' arrays by name (indices as int64, the rest float64)."""
    out = {}
    for name in FOREST:
        if name in ("threshold", "proba"):
            value: Any = arrays.get(f"forest.{name}")
            _expect(value is not None, f"array forest.{name} is missing")
            out[name] = value.astype(np.float64)
        else:
            out[name] = _indices(arrays, f"forest.{name}")
    for name in STATS:
        out[f"stats.{name}"] = _indices(arrays, f"stats.{name}", 2 if name == "links" else 1)
    return out
