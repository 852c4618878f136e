"""A slow pure-Python reader of ``.pacset`` bytes: the reference the fuzz suite compares against.

It parses the container with ``struct`` and ``json``, walks each tree node by node with the
format's rules (seals, children after their parent and inside the node region, features, voted
classes and leaves in range) and returns the raw scores, or raises :class:`Refused`. It shares
no code with the reader under test except the final in-order sum (``sum_trees``), which fixes
the floating-point order the source libraries use.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct

import numpy as np

from frugalml.pacset.forest import sum_trees

FIXED = struct.Struct("<8sIIQQ32s")
GOLDEN, SALT, MIX = 0x9E3779B97F4A7C15, 0x632BE59BD9B4E019, 0xD6E8FEB86659FD93
M64 = (1 << 64) - 1


class Refused(Exception):
    """The reference finds the bytes invalid."""


def _meta(data: bytes) -> tuple[dict, int]:
    if len(data) < FIXED.size:
        raise Refused("short")
    magic, version, meta_len, offset, length, _ = FIXED.unpack_from(data)
    if magic != b"PACSET\0\0" or version != 1 or len(data) < offset + length:
        raise Refused("header")
    meta = json.loads(data[FIXED.size : FIXED.size + meta_len])
    if not isinstance(meta, dict):
        raise Refused("meta")
    return meta, offset


def seal(block: bytes, number: int, key: int) -> int:
    """The seal a block's last word must hold."""
    words = struct.unpack(f"<{len(block) // 8}Q", block)
    h = 0
    for i, w in enumerate(words[:-1]):
        h = (h + w * ((i * GOLDEN + SALT) & M64 | 1)) & M64
    return h ^ ((number + 1) * MIX & M64) ^ key


class Reader:
    """The parsed model; ``raw(X)`` walks it."""

    def __init__(self, data: bytes):
        meta, offset = _meta(data)
        self.m = m = meta
        self.key = int(meta.get("model_id", "0" * 16), 16)
        self.bs, self.size, self.n_trees = m["block_size"], m["slot_size"], m["n_trees"]
        self.spb = self.bs // self.size
        self.n_slots = m["n_blocks"] * self.spb
        index = data[offset : offset + m["index_length"]]
        if hashlib.sha256(index).hexdigest() != m["index_sha256"]:
            raise Refused("index checksum")
        words = struct.unpack_from(f"<{2 * self.n_trees}q", index)
        self.root, self.group = words[: self.n_trees], words[self.n_trees :]
        bins = struct.unpack_from(f"<{m['bins'] + 1}q", index, 16 * self.n_trees)
        if (
            bins[0] != 0
            or bins[-1] != self.n_trees
            or any(b > c for b, c in zip(bins[:-1], bins[1:], strict=True))
        ):
            raise Refused("bins")
        if any(not 0 <= g < m["n_outputs"] for g in self.group):
            raise Refused("group")
        start = offset + m["index_length"]
        self.nodes = data[start : start + self.n_slots * self.size]
        if len(self.nodes) != self.n_slots * self.size or self.bs % 4096 or self.size not in (16, 32):
            raise Refused("size")
        self.vote_classes = m["n_outputs"] if m["aggregate"] == "vote" else 0
        self.leaf_limit = self.spb - 1 - -(-(8 + 8 * m["n_values"]) // self.size)
        self.sealed: set[int] = set()

    def _valid(self, code: int, child: int) -> bool:
        if child >= 0:
            return code < child < self.n_slots
        return child <= -2 and -2 - child < self.vote_classes

    def _check_block(self, blk: int) -> None:
        if blk not in self.sealed:
            block = self.nodes[blk * self.bs : (blk + 1) * self.bs]
            if seal(block, blk, self.key) != struct.unpack_from("<Q", block, self.bs - 8)[0]:
                raise Refused(f"seal of block {blk}")
            self.sealed.add(blk)

    def walk(self, x: list[float], tree: int) -> tuple[str, object]:
        """('vote', class) or ('leaf', values) for one row and tree."""
        code = self.root[tree]
        n_features = self.m["n_features"]
        while True:
            if code < 0:
                if not self._valid(-1, code):
                    raise Refused("root")
                return "vote", -2 - code
            if code >= self.n_slots:
                raise Refused("root")
            self._check_block(code // self.spb)
            at = code * self.size
            left, right, feat = struct.unpack_from("<iii", self.nodes, at)
            if left == -1:
                if code % self.spb > self.leaf_limit:
                    raise Refused("leaf")
                return "leaf", struct.unpack_from(f"<{self.m['n_values']}d", self.nodes, at + 8)
            f = feat & 0x7FFFFFFF
            if f >= n_features or not self._valid(code, left) or not self._valid(code, right):
                raise Refused("node")
            if self.size == 32:
                thr = struct.unpack_from("<d", self.nodes, at + 16)[0]
            else:
                thr = struct.unpack_from("<f", self.nodes, at + 12)[0]
            v = x[f]
            go_left = feat < 0 if math.isnan(v) else v <= thr
            code = left if go_left else right

    def raw(self, X: np.ndarray) -> np.ndarray:
        m = self.m
        if X.shape[1] != m["n_features"]:
            raise Refused("features")
        if m["input_precision"] == "float32":
            X = X.astype(np.float32).astype(np.float64)
        ordered = m["aggregate"] == "sum" or (m["aggregate"] == "mean" and m["n_values"] == 1)
        width = self.n_trees if ordered else m["n_outputs"]
        acc = np.zeros((len(X), width))
        for r, x in enumerate(X.tolist()):
            for t in range(self.n_trees):
                kind, value = self.walk(x, t)
                if kind == "vote":
                    acc[r, value] += 1.0
                elif ordered:
                    acc[r, t] = value[0]
                elif m["n_values"] == 1:
                    acc[r, self.group[t]] += value[0]
                else:
                    acc[r, : m["n_values"]] += value
        if ordered:
            base = m["base_score"] if m["aggregate"] == "sum" else np.zeros(m["n_outputs"])
            acc = sum_trees(acc, np.asarray(self.group), base, m.get("accumulate", "float64"))
        return acc if m["aggregate"] == "sum" else acc / self.n_trees


def reference_raw(data: bytes, X: np.ndarray) -> np.ndarray | None:
    """The reference's raw scores for ``X``, or None when it refuses the bytes."""
    try:
        return Reader(data).raw(X)
    except (Refused, KeyError, TypeError, ValueError, IndexError, OverflowError, struct.error):
        return None
