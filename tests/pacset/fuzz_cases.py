"""Fuzz cases for ``.pacset`` files: the reader run in a sandbox child, re-sealing as an attacker
would, node-aware mutations, header edits, and the check of each outcome against the reference."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile

import numpy as np

from tests.fuzz import container_metadata, reseal_container, with_metadata
from tests.pacset.reference import FIXED, reference_raw

INTERESTING_META = {
    "n_trees": [0, 10**9, -1],
    "slot_size": [0, 8, 64],
    "block_size": [0, 8, 4095, 2**40],
    "n_blocks": [0, 2 * 10**8, -1],
    "n_features": [0, 1, 2**40],
    "n_outputs": [0, 1, 10**9],
    "n_values": [0, 10**6],
    "bins": [0, 10**9],
    "index_length": [0, 8, 2**40],
    "aggregate": ["vote", "median", None],
    "classes": [None, [], [[1, 2]], ["a"]],
    "base_score": [[], [float("nan")], "x"],
    "model_id": ["0" * 16, "zz", 5],
}


def predict_bytes(data: bytes, X: np.ndarray, engine: str, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """Write ``data`` to a file and predict ``X`` from it: (raw scores, predictions). Runs in the sandbox."""
    from frugalml.pacset import PackedForest

    fd, path = tempfile.mkstemp(suffix=".pacset")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        with PackedForest.open(path, backend=backend, engine=engine, cache_blocks=2) as model:
            raw = model.raw_scores(X)
            return raw, model.predict(X)
    finally:
        os.unlink(path)


def reseal_pacset(data: bytes) -> bytes:
    """Recompute every checksum of a packed file (block seals with its model key, the index's
    SHA-256, the container's CRC and SHA-256) as an attacker would; unparseable bytes pass as they are."""
    from frugalml.pacset.kernels import seal_blocks

    try:
        meta = container_metadata(data)
        _, _, _, offset, length, _ = FIXED.unpack_from(data)
        index_length, bs, n_blocks = meta["index_length"], meta["block_size"], meta["n_blocks"]
        key = int(meta.get("model_id", "0" * 16), 16)
        start = offset + index_length
        if bs < 4096 or bs % 4096 or start + n_blocks * bs > len(data) or n_blocks > 10**5:
            return reseal_container(data)
        region = np.frombuffer(data[start : start + n_blocks * bs], np.uint8).copy()
        seal_blocks(region, bs, key)
        meta["index_sha256"] = hashlib.sha256(data[offset:start]).hexdigest()
        body = data[:start] + region.tobytes() + data[start + n_blocks * bs :]
        return reseal_container(with_metadata(body, meta))
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError, struct.error):
        return reseal_container(data)


def node_mutation(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """Set one field of one node slot (left, right or feature) to a value that breaks the rules:
    itself or an earlier slot (a cycle), past the end, a class or feature out of range."""
    meta = container_metadata(data)
    _, _, _, offset, _, _ = FIXED.unpack_from(data)
    size, bs, n_blocks = meta["slot_size"], meta["block_size"], meta["n_blocks"]
    n_slots = n_blocks * (bs // size)
    start = offset + meta["index_length"]
    # A slot that holds a node: its left word is -1 (leaf), a vote code, or a later slot.
    words = np.frombuffer(data[start : start + n_slots * size], np.int32).reshape(n_slots, size // 4)
    nodes = np.nonzero((words[:, 0] != 0) | (words[:, 1] != 0))[0]
    code = int(rng.choice(nodes)) if len(nodes) else 0
    field = int(rng.integers(0, 3))
    values = [code, max(code - 1, 0), 0, n_slots, n_slots - 1, -1, -2 - meta["n_outputs"], -2, 2**31 - 1]
    if field == 2:
        values = [meta["n_features"], meta["n_features"] - 1 + 2**31, 2**31 - 1, -1]
    value = int(rng.choice(values))
    buf = bytearray(data)
    at = start + code * size + 4 * field
    buf[at : at + 4] = int(value % 2**32).to_bytes(4, "little")
    return f"node {code} word {field} = {value}", bytes(buf)


def meta_mutation(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One header field set to a value that breaks sizes, counts or types (checksums valid)."""
    meta = container_metadata(data)
    name = str(rng.choice(list(INTERESTING_META)))
    choices = INTERESTING_META[name]
    meta[name] = choices[int(rng.integers(len(choices)))]
    return f"meta {name} = {json.dumps(meta[name])}", with_metadata(data, meta)


def swap_blocks(data: bytes, other: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """Node blocks of another packed model copied over this one's (container checksums recomputed)."""
    meta, meta_o = container_metadata(data), container_metadata(other)
    start = FIXED.unpack_from(data)[3] + meta["index_length"]
    start_o = FIXED.unpack_from(other)[3] + meta_o["index_length"]
    bs = meta["block_size"]
    n = min(meta["n_blocks"], meta_o["n_blocks"])
    k = int(rng.integers(1, n + 1))
    body = data[:start] + other[start_o : start_o + k * bs] + data[start + k * bs :]
    return f"blocks 0-{k - 1} from another model", reseal_container(body)


def judge(outcome, data: bytes, X: np.ndarray) -> str | None:
    """None when a case passed (a one-line error, or an answer equal to the reference's); else why not."""
    if outcome.kind == "error":
        return None if "\n" not in str(outcome.value).strip() else f"multi-line error: {outcome.value}"
    if outcome.kind != "answer":
        return f"{outcome.kind}: {outcome.value}"
    raw, _ = outcome.value
    expected = reference_raw(data, X)
    if expected is None:
        return "answered where the reference refuses"
    if raw.shape != expected.shape or not np.allclose(raw, expected, rtol=1e-12, atol=0, equal_nan=True):
        return f"answer {raw.tolist()} differs from the reference {expected.tolist()}"
    return None
