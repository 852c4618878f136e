"""The packed file: a checksummed container whose payload is an index section, then the node blocks.

Payload (every part starts on a block boundary; the payload itself is block aligned)::

    index   int64 root codes [n_trees], int64 tree groups [n_trees], int64 bin starts [bins + 1],
            zero padded to a whole number of blocks
    nodes   n_blocks blocks of block_size bytes (see :mod:`frugalml.pacset.layout`), each ending
            with its own checksum

The header's JSON metadata holds the model description and the index's SHA-256 (``accumulate``,
the precision of the in-order leaf sum, and ``model_id``, the key mixed into every block's seal,
were added within version 1: files without them read as ``float64`` and key 0, so older files
still load). Files are untrusted: at open every metadata field is checked (types, ranges, sizes
against the file's real length) before anything is allocated from it, and the index's roots,
tree groups and bins against the model; each node block's seal is checked when the block is
first used and each node before it is followed (see :mod:`frugalml.pacset.kernels`), so a reader
fetches single blocks (from a file or a key-value store) and still never predicts from damaged
or crafted bytes.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import secrets
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.common.errors import CorruptFileError
from frugalml.common.files import ContainerHeader, read_header, write_container
from frugalml.pacset.forest import AGGREGATES, PRECISIONS, TRANSFORMS, Forest
from frugalml.pacset.kernels import (
    BLOCK_MIX,
    FEATURE,
    FEATURE_MASK,
    IS_LEAF,
    LEFT,
    RIGHT,
    VOTE,
    checksum_multipliers,
    leaf_slots,
    seal_blocks,
)

if TYPE_CHECKING:
    from frugalml.pacset.layout import Layout

MAGIC = b"PACSET"
VERSION = 1
PAGE = 4096
_MAX_COUNT = 2**31 - 1  # node, slot and feature numbers are int32 words
_INT_FIELDS = (
    ("n_features", 1, _MAX_COUNT),
    ("n_outputs", 1, 1 << 20),
    ("n_values", 1, 1 << 20),
    ("n_trees", 1, _MAX_COUNT),
    ("bins", 1, _MAX_COUNT),
    ("block_size", PAGE, 1 << 26),
    ("slot_size", 16, 32),
    ("n_blocks", 1, _MAX_COUNT),
    ("index_length", PAGE, 1 << 40),
)
_CHOICES: dict[str, tuple] = {
    "aggregate": AGGREGATES,
    "transform": TRANSFORMS,
    "accumulate": PRECISIONS,
    "input_precision": PRECISIONS,
    "slot_size": (16, 32),
    "handles_missing": (True, False),
}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))


@dataclass(frozen=True)
class Index:
    """The per-tree and per-block tables a reader needs before touching any node block."""

    root_code: np.ndarray
    tree_group: np.ndarray
    bin_start: np.ndarray

    @classmethod
    def parse(cls, data: bytes, meta: dict[str, Any], where: str) -> Index:
        """Check the index's checksum and contents against the (already checked) metadata.

        Every root is a slot inside the node region (or, for hard votes, a class of the model),
        every tree's output column exists and the bins cover the trees in order, so that no
        walk indexes outside its arrays.
        """
        model = ModelMeta.from_meta(meta, where)
        if len(data) != meta["index_length"] or hashlib.sha256(data).hexdigest() != meta.get("index_sha256"):
            raise CorruptFileError(f"{where}: index section is corrupt (checksum mismatch); pack it again")
        n_trees, n_bins = model.n_trees, meta["bins"]
        words = np.frombuffer(data, np.int64)
        index = cls(
            words[:n_trees].copy(),
            words[n_trees : 2 * n_trees].copy(),
            words[2 * n_trees : 2 * n_trees + n_bins + 1].copy(),
        )
        index.check(model, where)
        return index

    def check(self, model: ModelMeta, where: str) -> None:
        """Raise CorruptFileError unless roots, tree groups and bins are consistent with ``model``."""
        root = self.root_code
        n_slots = model.n_blocks * (model.block_size // model.slot_size)
        vote = (VOTE - root) if model.aggregate == "vote" else np.full(len(root), -1)
        if np.any((root >= n_slots) | ((root < 0) & ((vote < 0) | (vote >= model.n_outputs)))):
            raise CorruptFileError(
                f"{where}: a tree's root is outside the node blocks (crafted or damaged); pack it again"
            )
        if np.any((self.tree_group < 0) | (self.tree_group >= model.n_outputs)):
            raise CorruptFileError(
                f"{where}: a tree adds to an output the model does not have; pack it again"
            )
        b = self.bin_start
        if b[0] != 0 or b[-1] != model.n_trees or np.any(np.diff(b) < 0):
            raise CorruptFileError(f"{where}: the bins do not cover the trees in order; pack it again")

    def to_bytes(self, block_size: int) -> bytes:
        raw = b"".join(
            np.asarray(a, np.int64).tobytes() for a in (self.root_code, self.tree_group, self.bin_start)
        )
        return raw + b"\0" * (-len(raw) % block_size)


def metadata(forest: Forest, layout: Layout) -> dict[str, Any]:
    """The JSON description stored in the header (everything but the index and the blocks)."""
    cfg = layout.config
    hard = cfg.vote == "hard"
    return {
        "source": forest.source,
        "n_features": forest.n_features,
        "n_outputs": forest.n_outputs,
        "n_values": forest.n_values,
        "n_trees": forest.n_trees,
        "n_nodes": forest.n_nodes,
        "aggregate": "vote" if hard else forest.aggregate,
        "transform": forest.transform,
        "transform_scale": forest.transform_scale,
        "base_score": np.asarray(forest.base_score).tolist(),
        "classes": forest.classes,
        "handles_missing": forest.handles_missing,
        "input_precision": forest.input_precision,
        "accumulate": forest.accumulate,
        "layout": cfg.layout,
        "bins": len(layout.bin_start) - 1,
        "interleave": cfg.interleave,
        "shared_top": cfg.shared_top,
        "block_size": cfg.block_size,
        "vote": cfg.vote,
        "slot_size": layout.slot_size,
        "n_blocks": layout.n_blocks,
        "n_slots_used": int((layout.slot >= 0).sum()),
    }


@dataclass(frozen=True)
class ModelMeta:
    """The header fields a reader needs to predict, typed (the header itself stays JSON).

    Examples
    --------
    >>> meta = {"n_features": 4, "n_outputs": 1, "n_values": 1, "n_trees": 2, "aggregate": "sum",
    ...         "transform": "identity", "transform_scale": 1.0, "base_score": [0.5], "classes": None,
    ...         "handles_missing": True, "input_precision": "float32", "block_size": 4096,
    ...         "slot_size": 16, "n_blocks": 3, "bins": 1, "index_length": 4096}
    >>> ModelMeta.from_meta(meta).accumulate  # files written before the field existed
    'float64'
    >>> ModelMeta.from_meta({**meta, "slot_size": 0}, "x.pacset")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    frugalml.common.errors.CorruptFileError: x.pacset: metadata field 'slot_size' must be ...
    """

    n_features: int
    n_outputs: int
    n_values: int
    n_trees: int
    aggregate: str
    transform: str
    transform_scale: float
    base_score: list
    classes: list | None
    handles_missing: bool
    input_precision: str
    accumulate: str
    block_size: int
    slot_size: int
    n_blocks: int

    @classmethod
    def from_meta(cls, meta: dict[str, Any], where: str = "model") -> ModelMeta:
        """Read and check the fields of a packed file's metadata (``accumulate`` defaults to float64).

        Raises CorruptFileError, naming the field, when one is missing, of the wrong type or out
        of range, or when the sizes disagree (all before anything is allocated from them).
        """
        key, nonce = (meta.get(name, "0" * 16) for name in ("model_id", "upload_nonce"))
        for name, value in (("model_id", key), ("upload_nonce", nonce)):
            if not isinstance(value, str) or len(value) != 16 or value.strip("0123456789abcdef"):
                raise CorruptFileError(
                    f"{where}: metadata field {name!r} must be 16 hex digits; pack it again"
                )
        try:
            model = cls(
                **{f.name: meta[f.name] for f in fields(cls) if f.name not in ("accumulate", "seal_key")},
                accumulate=meta.get("accumulate", "float64"),
                seal_key=int(key, 16) ^ int(nonce, 16),
            )
        except KeyError as exc:
            raise CorruptFileError(f"{where}: metadata lacks {exc}; pack it again") from None
        model._check(meta, where)
        return model

    def _check(self, meta: dict[str, Any], where: str) -> None:
        def bad(name: str, why: str):
            return CorruptFileError(f"{where}: metadata field {name!r} {why}; pack it again")

        for name, low, high in _INT_FIELDS:
            value = meta.get(name) if name in ("bins", "index_length") else getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise bad(name, f"must be an integer from {low} to {high}, got {value!r}")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise bad(name, f"must be one of {', '.join(map(str, allowed))}, got {getattr(self, name)!r}")
        if self.block_size % PAGE:
            raise bad("block_size", f"must be a multiple of {PAGE}, got {self.block_size}")
        if self.n_values not in (1, self.n_outputs):
            raise bad("n_values", f"must be 1 or n_outputs ({self.n_outputs}), got {self.n_values}")
        if self.n_values * 8 + 16 > self.block_size:
            raise bad("n_values", f"({self.n_values}) leaves do not fit a {self.block_size}-byte block")
        if meta["bins"] > self.n_trees:
            raise bad("bins", f"({meta['bins']}) exceeds the tree count ({self.n_trees})")
        index_words = 2 * self.n_trees + meta["bins"] + 1
        if meta["index_length"] != -(-8 * index_words // self.block_size) * self.block_size:
            raise bad("index_length", f"({meta['index_length']}) does not hold {index_words} index words")
        if not isinstance(self.transform_scale, int | float) or not np.isfinite(self.transform_scale):
            raise bad("transform_scale", "must be a finite number")
        base = self.base_score
        if not isinstance(base, list) or not all(_finite(v) for v in base):
            raise bad("base_score", "must be a list of finite numbers")
        if self.aggregate == "sum" and len(base) != self.n_outputs:
            raise bad("base_score", f"must hold one number per output ({self.n_outputs})")
        classes = self.classes
        if classes is not None:
            n_columns = 2 if self.transform == "sigmoid" and self.n_outputs == 1 else self.n_outputs
            if not isinstance(classes, list) or len(classes) != n_columns:
                raise bad("classes", f"must list {n_columns} class labels")
            if not all(isinstance(c, str | int | float) for c in classes):
                raise bad("classes", "must hold strings or numbers")

    seal_key: int = 0
    """Mixed into every block's seal: a random key drawn when the model is packed (0 in files
    written before it existed), so a block of another model fails its check; a copy in a block
    store also mixes in the nonce of its upload (``upload_nonce``), so blocks of two uploads of
    the same model cannot be mixed either."""

    @property
    def ordered(self) -> bool:
        """Whether single-value leaves are stored per tree and summed in tree order afterwards."""
        return self.aggregate == "sum" or (self.aggregate == "mean" and self.n_values == 1)


def write_packed(
    path: str | os.PathLike, forest: Forest, layout: Layout, extra: dict[str, Any] | None = None
) -> ContainerHeader:
    """Encode ``forest`` with ``layout`` and write it atomically as a packed file (``extra``: more
    JSON metadata, e.g. why the layout was chosen)."""
    from frugalml.pacset.layout import encode  # numba: only a writer needs it

    bs = layout.config.block_size
    region = encode(forest, layout)
    meta = {**(extra or {}), **metadata(forest, layout)}
    meta["model_id"] = secrets.token_hex(8)
    seal_blocks(region, bs, int(meta["model_id"], 16))
    index = Index(layout.root_code, forest.tree_group.astype(np.int64), layout.bin_start)
    index_bytes = index.to_bytes(bs)
    meta["index_length"] = len(index_bytes)
    meta["index_sha256"] = hashlib.sha256(index_bytes).hexdigest()
    return write_container(path, MAGIC, VERSION, meta, [index_bytes, region.data], align=bs)


@dataclass(frozen=True)
class PackedFile:
    """A packed file's header, metadata and index, read without touching the node blocks."""

    path: Path
    header: ContainerHeader
    index: Index

    @property
    def meta(self) -> dict[str, Any]:
        return self.header.metadata

    @property
    def nodes_offset(self) -> int:
        return self.header.payload_offset + self.meta["index_length"]


def open_packed(path: str | os.PathLike) -> PackedFile:
    """Read and verify a packed file's header and index (raises CorruptFileError when damaged)."""
    header = read_header(path, MAGIC, VERSION)
    meta = header.metadata
    model = ModelMeta.from_meta(meta, str(path))  # sizes checked before any is used
    expected = meta["index_length"] + model.n_blocks * model.block_size
    if header.payload_offset % mmap.ALLOCATIONGRANULARITY:
        raise CorruptFileError(f"{path}: its payload is not page aligned (damaged header); pack it again")
    if header.payload_length != expected:
        raise CorruptFileError(
            f"{path}: payload length {header.payload_length} does not match its "
            f"metadata ({expected}); pack it again"
        )
    # A MADV_RANDOM map reads the index pages only: plain reads would trigger read-ahead into
    # the node blocks and spoil cold-cache accounting.
    with (
        open(path, "rb") as f,
        mmap.mmap(
            f.fileno(), meta["index_length"], access=mmap.ACCESS_READ, offset=header.payload_offset
        ) as mm,
    ):
        mm.madvise(mmap.MADV_RANDOM)
        data = mm[:]
    return PackedFile(Path(path), header, Index.parse(data, meta, str(path)))


def verify_file(path: str | os.PathLike) -> None:
    """Check the whole file: the payload's SHA-256, every block's seal, and every node reachable
    from the roots (children after their parent and inside the node region, features, voted
    classes and leaves in range). Reads the whole file; predicting checks only the blocks it uses.
    """
    packed = open_packed(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(packed.header.payload_offset)
        remaining = packed.header.payload_length
        while remaining:
            chunk = f.read(min(remaining, 1 << 22))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    if remaining or digest.digest() != packed.header.payload_sha256:
        raise CorruptFileError(f"{path} is corrupt (payload checksum mismatch); pack it again")
    model = ModelMeta.from_meta(packed.meta, str(path))
    region = np.memmap(path, np.uint8, "r", packed.nodes_offset, (model.n_blocks * model.block_size,))
    _check_seals(region, model, str(path))
    _check_nodes(region, model, packed.index, str(path))


def _check_seals(region: np.ndarray, model: ModelMeta, where: str) -> None:
    words = region.view(np.uint64).reshape(model.n_blocks, -1)
    mult = checksum_multipliers(model.block_size)[:-1]
    for start in range(0, model.n_blocks, 1024):
        part = words[start : start + 1024]
        sums = (part[:, :-1] * mult).sum(axis=1, dtype=np.uint64)
        ids = np.arange(start + 1, start + len(part) + 1, dtype=np.uint64)
        bad = np.nonzero(sums ^ (ids * BLOCK_MIX) ^ np.uint64(model.seal_key) != part[:, -1])[0]
        if bad.size:
            raise CorruptFileError(f"{where}: block {start + int(bad[0])} failed its checksum; pack it again")


def _check_nodes(region: np.ndarray, model: ModelMeta, index: Index, where: str) -> None:
    """Visit every node reachable from the roots, level by level (distinct slots per level)."""
    spb = model.block_size // model.slot_size
    n_slots = model.n_blocks * spb
    words = region.view(np.int32).reshape(n_slots, model.slot_size // 4)
    vote_classes = model.n_outputs if model.aggregate == "vote" else 0
    leaf_limit = spb - 1 - leaf_slots(model.n_values, model.slot_size)
    code = np.unique(index.root_code[index.root_code >= 0])
    while code.size:
        left, right, feat = (words[code, k] for k in (LEFT, RIGHT, FEATURE))
        leaf = left == IS_LEAF
        children = [left[~leaf], right[~leaf]]
        bad = np.where(
            leaf,
            code % spb > leaf_limit,
            ((feat & FEATURE_MASK) >= model.n_features)
            | ~_child_ok(code, left, n_slots, vote_classes)
            | ~_child_ok(code, right, n_slots, vote_classes),
        )
        if bad.any():
            raise CorruptFileError(
                f"{where}: block {int(code[bad][0]) // spb} holds an invalid node (a child before its "
                "parent or outside the model, or a feature or class out of range); pack it again"
            )
        code = np.unique(np.concatenate(children))
        code = code[code >= 0]


def _child_ok(code: np.ndarray, child: np.ndarray, n_slots: int, vote_classes: int) -> np.ndarray:
    return ((child > code) & (child < n_slots)) | ((child <= VOTE) & (VOTE - child < vote_classes))
