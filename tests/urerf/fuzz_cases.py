"""Cases for the ``.urerf`` fuzz suite: what the sandbox child runs, the structure-aware mutations,
and the judge that compares an answer with the pure-Python reference walker."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from frugalml.common.arrays import save_arrays
from frugalml.urerf.fileformat import DTYPES, FORMAT_VERSION, MAGIC, SCALE_DTYPES
from tests.urerf.reference import Malformed, reference_kneighbors

K = 5


def neighbours_case(data: bytes, queries: np.ndarray, k: int = K) -> dict:
    """Runs in the sandbox: load the bytes as a forest, answer k-NN for new points and the training
    points; return the answers with the loaded arrays (for the reference walker)."""
    from frugalml.urerf import UnsupervisedRandomerForest

    fd, path = tempfile.mkstemp(suffix=".urerf")
    try:
        os.write(fd, data)
        os.close(fd)
        forest = UnsupervisedRandomerForest.load(path)
    finally:
        os.unlink(path)
    names = [name for name in [*DTYPES, *SCALE_DTYPES] if hasattr(forest, name)]
    return {
        "arrays": {name: getattr(forest, name) for name in names},
        "params": forest.get_params(),
        "queries": forest.kneighbors(queries, k),
        "training": forest.kneighbors(None, k),
    }


def judge(kind: str, outcome, queries: np.ndarray, k: int = K) -> str | None:
    """None when the case ended well, else what went wrong."""
    if not outcome.clean:
        return f"{kind}: {outcome.kind} {str(outcome.value)[-400:]}"
    if outcome.kind == "error":
        return None
    answer = outcome.value
    for label, rows in (("queries", queries), ("training", None)):
        try:
            want_dist, want_ind = reference_kneighbors(answer["arrays"], answer["params"], rows, k)
        except Malformed as exc:
            return f"{kind}: answered although the reference walker finds the forest malformed ({exc})"
        dist, ind = answer[label]
        if not (np.array_equal(ind, want_ind) and np.array_equal(dist, want_dist)):
            return f"{kind}: {label} neighbours differ from the reference walker"
    return None


def to_bytes(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """A forest file (valid checksums) holding ``meta`` and ``arrays``."""
    fd, path = tempfile.mkstemp(suffix=".urerf")
    os.close(fd)
    try:
        save_arrays(path, MAGIC, FORMAT_VERSION, meta, arrays)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


_INT_HOSTILE = (-(2**31), -2, -1, 0, 1, 2, 2**31 - 1, 10**8)
_FLOAT_HOSTILE = (np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 1e-300)


def array_mutation(meta: dict, arrays: dict[str, np.ndarray], other: dict, rng) -> tuple[str, bytes]:
    """One array of a valid forest edited (an element, a slice, its dtype, its length, or the same
    array of another forest), saved again with valid checksums."""
    arrays = {name: value.copy() for name, value in arrays.items()}
    name = str(rng.choice(sorted(arrays)))
    a = arrays[name]
    pick = rng.random()
    if pick < 0.6 and a.size:  # one element set to a hostile or a plausible wrong value
        flat = a.reshape(-1)
        i = int(rng.integers(a.size))
        if a.dtype.kind == "f":
            value = rng.choice(_FLOAT_HOSTILE) if rng.random() < 0.5 else flat[i] * rng.normal(1, 0.5)
        else:
            near = (int(flat[i]) + int(rng.integers(-3, 4)), i, i + 1, len(arrays["children_left_"]))
            value = int(rng.choice([*_INT_HOSTILE, *near]))
            value = int(np.clip(value, np.iinfo(a.dtype).min, np.iinfo(a.dtype).max))
        with np.errstate(over="ignore", invalid="ignore"):
            flat[i] = value
        what = f"{name}[{i}] = {value!r}"
    elif pick < 0.7 and a.size > 1:  # a slice shuffled
        flat = a.reshape(-1)
        i, j = sorted(int(v) for v in rng.integers(0, a.size, 2))
        flat[i : j + 1] = rng.permutation(flat[i : j + 1])
        what = f"{name}[{i}:{j + 1}] shuffled"
    elif pick < 0.8 and name in other:  # another forest's array
        arrays[name] = other[name].copy()
        what = f"{name} from another forest"
    elif pick < 0.9:  # one element shorter or longer
        flat = a.reshape(-1)
        arrays[name] = flat[:-1].copy() if rng.random() < 0.5 or not a.size else np.append(flat, flat[-1:])
        what = f"{name} resized to {arrays[name].size}"
    else:  # another dtype (wider, narrower or byte-swapped)
        dtype = str(rng.choice(["<i8", "<i4", ">i4", "<f8", "<f4", "<u4", "|u1"]))
        arrays[name] = a.astype(dtype)
        what = f"{name} as {dtype}"
    return f"{what}, resealed", to_bytes(meta, arrays)


_META_HOSTILE = (None, -1, 0, 1, 2, 3, 2**31, 10**12, 0.5, "x", [], {}, True, "inbag", "axis", "mds")


def meta_mutation(meta: dict, arrays: dict[str, np.ndarray], rng) -> tuple[str, bytes]:
    """A parameter or a size in the metadata set to a hostile value, dropped or added."""
    meta = {**meta, "params": dict(meta["params"])}
    pick = rng.random()
    value = _META_HOSTILE[int(rng.integers(len(_META_HOSTILE)))]
    if pick < 0.6:
        key = str(rng.choice(sorted(meta["params"])))
        meta["params"][key] = value
        what = f"params.{key} = {value!r}"
    elif pick < 0.85:
        key = str(rng.choice(["n_samples_fit", "n_features_in"]))
        meta[key] = value
        what = f"{key} = {value!r}"
    elif pick < 0.95:
        key = str(rng.choice(["params", "n_samples_fit", "n_features_in"]))
        del meta[key]
        what = f"{key} dropped"
    else:
        meta["params"]["evil"] = value
        what = "unknown parameter"
    return f"{what}, resealed", to_bytes(meta, arrays)
