"""A slow, independent reader of PREREQ model files (``.prereq``) for the fuzz tests.

Written from the format's description in plain Python and numpy (float32, like the model), sharing
no code with :mod:`frugalml.prereq.model`: it decides whether the bytes are a valid model and, if
so, computes the probabilities the model must give for a fixed set of concept pairs.
:func:`predict_for_fuzz` runs the real loader and puts its answer in the same form.

Format: the container of ``frugalml.common.files`` (magic ``PREREQ``, version <= 4) with the array
index of ``frugalml.common.arrays``; metadata ``method`` (absent before version 4: ``prereq``),
``n_topics``, ``seed``, ``plda_params``, ``concepts`` (name -> vocabulary column),
``concept_aliases``, ``unseen_concepts``. Arrays ``plda.log_beta`` (K, V), ``plda.eta`` (K, K) and
the fitting traces.

Siamese methods (``prereq``, ``prereq-paper``): metadata ``head``, ``siamese_params``; arrays
``siamese.shift``/``scale`` (K,), ``siamese.threshold`` (1,), and per network (``net0.``,
``net1.``, ...; ``net.`` for one network in old files) a linear layer K -> K, batch norm, ReLU,
dropout, a linear layer K -> hidden, an l2 normalisation and the head.

``prereq-hybrid``: metadata ``parts`` (``["topics"]``, ``["links"]`` or both, in that order);
integer arrays ``forest.tree_ptr`` (trees + 1, from 0, strictly increasing, ending at the node
count), per node ``forest.left``/``right`` (-1 at a leaf, both or neither; else a node of the same
tree after this one, numbered within the tree), ``forest.feature`` (an internal node's feature
column), real ``forest.threshold`` and ``forest.proba`` (0..1, the class-1 share at a leaf),
``hybrid.threshold`` (1,); corpus statistics ``stats.columns`` (strictly increasing vocabulary
columns, every concept's among them), ``stats.doc_ptr`` (columns + 1, from 0, non-decreasing, to
the length of ``stats.doc_idx``), ``stats.doc_idx`` (the documents mentioning each column, strictly
increasing within a column) and ``stats.links`` (L, 2) (row (d, d2): d2 a prerequisite of d); every
document index lies in 0..len(doc_idx) + 2L - 1. A pair's features: 16 from the topic model (the
directional eta scores, profile similarity, spread, frequency and generality of both concepts) and 9
link counts; each tree sends a row left when its float32 feature is <= the node's threshold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tests.fuzz import read_arrays_reference, read_container_reference

HEADS = {"abs": 1, "diff": 1, "concat": 2, "rich": 4, "bilinear": 0}
SIAMESE_KEYS = {
    "head",
    "hidden",
    "dropout",
    "lr",
    "steps",
    "batch_size",
    "inputs",
    "val_fraction",
    "members",
    "seed",
    "threads",
}
PLDA_KEYS = {
    "n_topics",
    "alpha",
    "beta_prior",
    "max_em_iter",
    "em_tol",
    "max_var_iter",
    "var_tol",
    "n_unlinked_per_doc",
    "unlinked_weight",
    "seed",
}
PAIRS = 6  # the first concepts (sorted) whose ordered pairs are predicted
METHODS = ("prereq", "prereq-paper", "prereq-hybrid")
PART_SETS = (["topics"], ["links"], ["topics", "links"])
WIDTH = {"topics": 16, "links": 9}


class Rejected(Exception):
    """The bytes are not a valid model."""


def _require(condition: Any, why: str) -> None:
    if not condition:
        raise Rejected(why)


def _int(value: Any) -> bool:
    return type(value) is int


def _number(value: Any) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _siamese_params(meta: dict) -> dict:
    siamese = meta.get("siamese_params")
    _require(type(siamese) is dict, "parameters")
    _require(set(siamese) <= SIAMESE_KEYS, "unknown parameter")
    s = {"hidden": 512, "dropout": 0.1, "lr": 1e-4, "steps": 3500, "batch_size": 128, "inputs": "scale"}
    s.update({"head": "abs", "val_fraction": 0.0, "members": 1, "seed": 0, "threads": None, **siamese})
    _require(type(s["head"]) is str and s["head"] in HEADS and s["head"] == meta.get("head"), "head")
    _require(type(s["inputs"]) is str and s["inputs"] in ("scale", "log"), "inputs")
    for key in ("hidden", "steps", "batch_size", "members"):
        _require(_int(s[key]) and s[key] >= 1, key)
    _require(_int(s["seed"]), "seed")
    _require(s["threads"] is None or (_int(s["threads"]) and 1 <= s["threads"] <= 256), "threads")
    _require(_number(s["dropout"]) and 0 <= s["dropout"] < 1, "dropout")
    _require(_number(s["val_fraction"]) and 0 <= s["val_fraction"] < 1, "val_fraction")
    _require(_number(s["lr"]) and s["lr"] > 0, "lr")
    return s


def _plda_params(meta: dict) -> dict:
    plda = meta.get("plda_params")
    _require(type(plda) is dict, "parameters")
    _require(set(plda) <= PLDA_KEYS, "unknown parameter")
    p = {"n_topics": 100, "alpha": 0.01, "beta_prior": 1e-3, "max_em_iter": 100, "em_tol": 1e-4}
    p.update({"max_var_iter": 20, "var_tol": 1e-6, "n_unlinked_per_doc": 10, "unlinked_weight": None})
    p.update({"seed": 0, **plda})
    for key in ("n_topics", "max_em_iter", "max_var_iter", "n_unlinked_per_doc", "seed"):
        _require(_int(p[key]) and (key == "seed" or p[key] >= (0 if key == "n_unlinked_per_doc" else 1)), key)
    for key in ("alpha", "em_tol", "var_tol"):
        _require(_number(p[key]) and p[key] > 0, key)
    _require(_number(p["beta_prior"]) and p["beta_prior"] >= 0, "beta_prior")
    _require(
        p["unlinked_weight"] is None or (_number(p["unlinked_weight"]) and p["unlinked_weight"] > 0), "uw"
    )
    return p


def _net_shapes(k: int, hidden: int, head: str) -> dict[str, tuple]:
    out = {"branch.0.weight": (k, k), "branch.0.bias": (k,)}
    for part in ("weight", "bias", "running_mean", "running_var"):
        out[f"branch.1.{part}"] = (k,)
    out["branch.1.num_batches_tracked"] = ()
    out["branch.4.weight"], out["branch.4.bias"] = (hidden, k), (hidden,)
    out["head.weight"] = (2, hidden, hidden) if head == "bilinear" else (2, HEADS[head] * hidden)
    out["head.bias"] = (2,)
    return out


def reference_model(data: bytes) -> dict[str, Any]:
    """The parsed model: method, parameters, concepts and arrays (raises Rejected)."""
    container = read_container_reference(data, b"PREREQ", 4)
    _require(container is not None, "container")
    meta, payload = container
    arrays = read_arrays_reference(meta, payload)
    _require(arrays is not None, "array index")
    method = meta.get("method", "prereq")
    _require(type(method) is str and method in METHODS, "method")
    _require(_int(meta.get("n_topics")) and meta["n_topics"] >= 1 and _int(meta.get("seed")), "n_topics/seed")
    for value in arrays.values():
        _require(value.dtype.kind in "biuf", "dtype")
        _require(value.dtype.kind != "f" or np.isfinite(value).all(), "not finite")
    _plda_params(meta)
    log_beta = arrays.get("plda.log_beta")
    _require(log_beta is not None and log_beta.ndim == 2 and min(log_beta.shape) > 0, "log_beta")
    k, n_words = log_beta.shape
    _require((log_beta <= 0).all(), "log-probabilities above 0")
    _require(k == meta["n_topics"] == meta["plda_params"].get("n_topics"), "topics")
    _require("plda.eta" in arrays and arrays["plda.eta"].shape == (k, k), "eta")
    for name in ("gamma", "elbo", "pair_weight", "pair_src", "pair_dst", "pair_linked"):
        _require(f"plda.{name}" in arrays, name)
        _require(arrays[f"plda.{name}"].ndim == (2 if name == "gamma" else 1), f"rank of {name}")
    _require(arrays["plda.gamma"].shape[1] == k, "gamma")
    n_pairs = len(arrays["plda.pair_src"])
    _require(
        all(len(arrays[f"plda.{n}"]) == n_pairs for n in ("pair_weight", "pair_dst", "pair_linked")), "pairs"
    )
    flags = [bool(v) for v in arrays["plda.pair_linked"]]
    _require(all(flags[: sum(flags)]), "linked pairs first")
    model: dict[str, Any] = {"arrays": arrays, "method": method}
    if method == "prereq-hybrid":
        model.update(_hybrid(meta, arrays))
    else:
        model.update(_siamese(meta, arrays, k))
    concepts = meta.get("concepts")
    _require(type(concepts) is dict, "concepts")
    for column in concepts.values():
        _require(_int(column) and 0 <= column < n_words, "concept column")
    aliases, unseen = meta.get("concept_aliases", {}), meta.get("unseen_concepts", [])
    _require(type(aliases) is dict and all(type(v) is list for v in aliases.values()), "aliases")
    _require(all(type(a) is str for v in aliases.values() for a in v), "alias names")
    _require(type(unseen) is list and all(type(c) is str for c in unseen), "unseen")
    if method == "prereq-hybrid":
        _require(set(concepts.values()) <= set(model["columns"]), "a concept without statistics")
        _require(all(0 <= c < n_words for c in model["columns"]), "statistics column")
    model["concepts"] = concepts
    return model


def _siamese(meta: dict, arrays: dict, k: int) -> dict[str, Any]:
    siamese = _siamese_params(meta)
    shapes = {"siamese.shift": (k,), "siamese.scale": (k,), "siamese.threshold": (1,)}
    members = siamese["members"]
    _require(members <= len(arrays), "more networks than arrays")
    if members > 1 or any(n.startswith("siamese.net0.") for n in arrays):
        prefixes = [f"siamese.net{m}." for m in range(members)]
    else:
        prefixes = ["siamese.net."]
    for prefix in prefixes:
        shapes.update({prefix + n: s for n, s in _net_shapes(k, siamese["hidden"], siamese["head"]).items()})
    for name, shape in shapes.items():
        _require(name in arrays, f"missing {name}")
        ok = arrays[name].shape == shape or (name.endswith("tracked") and arrays[name].shape == (1,))
        _require(ok, f"shape of {name}")
    _require((arrays["siamese.scale"] != 0).all(), "zero scale")
    for prefix in prefixes:
        _require((arrays[prefix + "branch.1.running_var"] >= 0).all(), "negative variance")
    return {"siamese": siamese, "prefixes": prefixes}


def _ints(arrays: dict, name: str, ndim: int = 1) -> list:
    value = arrays.get(name)
    _require(value is not None and value.dtype.kind in "iu" and value.ndim == ndim, f"{name} integers")
    out = value.tolist()
    flat = [x for row in out for x in row] if ndim == 2 else out
    _require(all(x < 2**62 for x in flat), f"{name} huge")
    return out


def _hybrid(meta: dict, arrays: dict) -> dict[str, Any]:
    parts = meta.get("parts")
    _require(type(parts) is list and parts in PART_SETS, "parts")
    width = sum(WIDTH[p] for p in parts)
    tree_ptr, left, right, feature = (
        _ints(arrays, f"forest.{n}") for n in ("tree_ptr", "left", "right", "feature")
    )
    reals = {}
    for name in ("threshold", "proba"):
        _require(f"forest.{name}" in arrays, name)
        reals[name] = arrays[f"forest.{name}"].astype(np.float64)
        _require(reals[name].ndim == 1, name)
    n = len(left)
    _require(all(len(x) == n for x in (right, feature, reals["threshold"], reals["proba"])), "node arrays")
    _require(len(tree_ptr) >= 2 and tree_ptr[0] == 0 and tree_ptr[-1] == n, "tree_ptr ends")
    _require(all(x < y for x, y in zip(tree_ptr, tree_ptr[1:], strict=False)), "tree_ptr increases")
    for t in range(len(tree_ptr) - 1):
        start, size = tree_ptr[t], tree_ptr[t + 1] - tree_ptr[t]
        for i in range(size):
            lft, rgt = left[start + i], right[start + i]
            _require((lft == -1) == (rgt == -1), "one child")
            if lft != -1:
                _require(i < lft < size and i < rgt < size, "child outside the tree")
                _require(0 <= feature[start + i] < width, "feature")
    _require(all(0 <= p <= 1 for p in reals["proba"]), "proba")
    threshold = arrays.get("hybrid.threshold")
    _require(threshold is not None and threshold.shape == (1,), "hybrid threshold")
    columns, doc_ptr, doc_idx = (_ints(arrays, f"stats.{n}") for n in ("columns", "doc_ptr", "doc_idx"))
    links = _ints(arrays, "stats.links", 2)
    _require(arrays["stats.links"].shape[1] == 2, "links width")
    _require(all(x < y for x, y in zip(columns, columns[1:], strict=False)), "columns increase")
    _require(len(doc_ptr) == len(columns) + 1, "doc_ptr length")
    _require(len(doc_ptr) >= 2 and doc_ptr[0] == 0 and doc_ptr[-1] == len(doc_idx), "doc_ptr ends")
    _require(all(x <= y for x, y in zip(doc_ptr, doc_ptr[1:], strict=False)), "doc_ptr increases")
    bound = len(doc_idx) + 2 * len(links)
    _require(all(0 <= d < bound for d in doc_idx + [x for row in links for x in row]), "document index")
    docs = {}
    for j, column in enumerate(columns):
        seg = doc_idx[doc_ptr[j] : doc_ptr[j + 1]]
        _require(all(x < y for x, y in zip(seg, seg[1:], strict=False)), "documents increase")
        docs[column] = set(seg)
    return {
        "parts": parts,
        "tree_ptr": tree_ptr,
        "left": left,
        "right": right,
        "feature": feature,
        "reals": reals,
        "threshold": float(threshold[0]),
        "columns": columns,
        "docs": docs,
        "links": {(d, d2) for d, d2 in links},
    }


def _topic_features(log_beta, eta, ca: list, cb: list) -> np.ndarray:
    """The 16 topic features in the model's numpy expressions (the file's dtypes kept)."""
    xa, xb = np.exp(log_beta[:, ca]).T, np.exp(log_beta[:, cb]).T
    ta = xa / np.maximum(xa.sum(1, keepdims=True), 1e-300)
    tb = xb / np.maximum(xb.sum(1, keepdims=True), 1e-300)
    ab, ba = np.einsum("nk,kl,nl->n", ta, eta, tb), np.einsum("nk,kl,nl->n", tb, eta, ta)
    cos = (ta * tb).sum(1) / np.maximum(np.linalg.norm(ta, axis=1) * np.linalg.norm(tb, axis=1), 1e-300)
    ent_a = -(ta * np.log(np.maximum(ta, 1e-300))).sum(1)
    ent_b = -(tb * np.log(np.maximum(tb, 1e-300))).sum(1)
    freq_a, freq_b = np.log(np.maximum(xa.sum(1), 1e-300)), np.log(np.maximum(xb.sum(1), 1e-300))
    req_a, req_b = ta @ eta.sum(0), tb @ eta.sum(0)
    need_a, need_b = ta @ eta.sum(1), tb @ eta.sum(1)
    return np.column_stack(
        [ab, ba, ab - ba, cos, ent_a, ent_b, ent_a - ent_b, freq_a, freq_b, freq_a - freq_b]
        + [req_a, req_b, req_b - req_a, need_a, need_b, need_a - need_b]
    )


def _link_features(model: dict, ca: list, cb: list) -> np.ndarray:
    """The 9 link-count features, counted over sets."""
    rows = []
    for x, z in zip(ca, cb, strict=False):
        da, db = model["docs"][x], model["docs"][z]
        n_a, n_b, co = float(len(da)), float(len(db)), float(len(da & db))
        ab = float(sum((d, d2) in model["links"] for d in da for d2 in db))
        ba = float(sum((d, d2) in model["links"] for d in db for d2 in da))
        rows.append(
            [
                n_a,
                n_b,
                co,
                ab,
                ba,
                ab - ba,
                ab / max(n_a * n_b, 1),
                ba / max(n_a * n_b, 1),
                co / max(min(n_a, n_b), 1),
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(ca), 9)


def _hybrid_predict(model: dict, ca: list, cb: list) -> np.ndarray:
    arrays = model["arrays"]
    blocks = []
    for part in model["parts"]:
        if part == "topics":
            blocks.append(_topic_features(arrays["plda.log_beta"], arrays["plda.eta"], ca, cb))
        else:
            blocks.append(_link_features(model, ca, cb))
    x = np.column_stack(blocks).astype(np.float64).astype(np.float32)
    ptr, left, right, feature = model["tree_ptr"], model["left"], model["right"], model["feature"]
    threshold, proba = model["reals"]["threshold"], model["reals"]["proba"]
    out = np.zeros(len(ca))
    for row in range(len(ca)):
        for t in range(len(ptr) - 1):
            node = 0
            while left[ptr[t] + node] != -1:
                at = ptr[t] + node
                node = left[at] if float(x[row, feature[at]]) <= threshold[at] else right[at]
            out[row] += proba[ptr[t] + node]
    return out / (len(ptr) - 1)


def _forward(a: np.ndarray, b: np.ndarray, net: dict, head: str) -> np.ndarray:
    def embed(x):
        h = x @ net["branch.0.weight"].T + net["branch.0.bias"]
        var = net["branch.1.running_var"]
        h = (h - net["branch.1.running_mean"]) / np.sqrt(var + np.float32(1e-5))
        h = np.maximum(h * net["branch.1.weight"] + net["branch.1.bias"], 0)
        h = h @ net["branch.4.weight"].T + net["branch.4.bias"]
        norm = np.sqrt((h * h).sum(1, keepdims=True))
        return h / np.maximum(norm, np.float32(1e-12))

    ga, gb = embed(a), embed(b)
    if head == "bilinear":
        logits = np.einsum("ni,oij,nj->no", ga, net["head.weight"], gb) + net["head.bias"]
    else:
        z = {
            "abs": lambda: np.abs(ga - gb),
            "diff": lambda: ga - gb,
            "concat": lambda: np.concatenate([ga, gb], 1),
            "rich": lambda: np.concatenate([ga, gb, ga - gb, ga * gb], 1),
        }[head]()
        logits = z @ net["head.weight"].T + net["head.bias"]
    logits = logits - logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e[:, 1] / e.sum(1)


def reference_predict(data: bytes) -> tuple[list[str], float, list[float]] | None:
    """(first concepts, threshold, probability of every ordered pair among them), or None when the
    bytes are no valid model (or a valid model's numbers overflow float32)."""
    try:
        model = reference_model(data)
    except Rejected:
        return None
    arrays, concepts = model["arrays"], model["concepts"]
    names = sorted(concepts)[:PAIRS]
    a = [x for x in names for z in names if x != z]
    b = [z for x in names for z in names if x != z]
    if model["method"] == "prereq-hybrid":
        if not a:
            return names, model["threshold"], []
        with np.errstate(all="ignore"):
            probs = _hybrid_predict(model, [concepts[n] for n in a], [concepts[n] for n in b])
        return names, model["threshold"], [float(p) for p in probs]
    siamese = model["siamese"]
    threshold = float(arrays["siamese.threshold"][0])
    if not a:
        return names, threshold, []

    def vectors(which):
        x = beta[:, [concepts[n] for n in which]].T.reshape(len(which), -1)
        if siamese["inputs"] == "log":
            x = np.log(np.maximum(x, 0) + 1e-12)
        return ((x - arrays["siamese.shift"]) / arrays["siamese.scale"]).astype(np.float32)

    with np.errstate(all="ignore"):
        f32 = {n: v.astype(np.float32) for n, v in arrays.items()}
        beta = np.exp(arrays["plda.log_beta"].astype(np.float64))
        xa, xb = vectors(a), vectors(b)
        probs = np.zeros(len(a), dtype=np.float64)
        for prefix in model["prefixes"]:
            net = {n[len(prefix) :]: v for n, v in f32.items() if n.startswith(prefix)}
            probs += _forward(xa, xb, net, siamese["head"])
        probs /= len(model["prefixes"])
    return names, threshold, [float(p) for p in probs]


def predict_for_fuzz(data: bytes) -> tuple[list[str], float, list[float]]:
    """The real loader's answer in the reference's form (runs in the sandbox child)."""
    import tempfile
    from pathlib import Path

    from frugalml.prereq.model import PrereqModel

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.prereq"
        path.write_bytes(data)
        model = PrereqModel.load(path)
    names = sorted(model.concepts_)[:PAIRS]
    a = [x for x in names for z in names if x != z]
    b = [z for x in names for z in names if x != z]
    probs = model.predict_proba(a, b) if a else np.zeros(0)
    return names, float(model.threshold_), [float(p) for p in probs]


def warm_up() -> None:
    import torch  # noqa: F401

    import frugalml.prereq.model  # noqa: F401
