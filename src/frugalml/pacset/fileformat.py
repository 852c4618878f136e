"""The packed file: a checksummed container whose payload is an index section, then the node blocks.

Payload (every part starts on a block boundary; the payload itself is block aligned)::

    index   int64 root codes [n_trees], int64 tree groups [n_trees], int64 bin starts [bins + 1],
            zero padded to a whole number of blocks
    nodes   n_blocks blocks of block_size bytes (see :mod:`frugalml.pacset.layout`), each ending
            with its own checksum

The header's JSON metadata holds the model description and the index's SHA-256 (``accumulate``,
the precision of the in-order leaf sum, was added within version 1: files without it read as
``float64``); each node block is verified when it is first used, so a reader fetches single
blocks (from a file or a key-value store) and still never predicts from damaged bytes.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.common.errors import CorruptFileError
from frugalml.common.files import ContainerHeader, read_header, write_container
from frugalml.pacset.forest import Forest
from frugalml.pacset.kernels import seal_blocks

if TYPE_CHECKING:
    from frugalml.pacset.layout import Layout

MAGIC = b"PACSET"
VERSION = 1


@dataclass(frozen=True)
class Index:
    """The per-tree and per-block tables a reader needs before touching any node block."""

    root_code: np.ndarray
    tree_group: np.ndarray
    bin_start: np.ndarray

    @classmethod
    def parse(cls, data: bytes, meta: dict[str, Any], where: str) -> Index:
        if hashlib.sha256(data).hexdigest() != meta.get("index_sha256"):
            raise CorruptFileError(f"{where}: index section is corrupt (checksum mismatch); pack it again")
        n_trees, n_bins = meta["n_trees"], meta["bins"]
        words = np.frombuffer(data, np.int64)
        return cls(
            words[:n_trees].copy(),
            words[n_trees : 2 * n_trees].copy(),
            words[2 * n_trees : 2 * n_trees + n_bins + 1].copy(),
        )

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
    ...         "slot_size": 16, "n_blocks": 3}
    >>> ModelMeta.from_meta(meta).accumulate  # files written before the field existed
    'float64'
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
    def from_meta(cls, meta: dict[str, Any]) -> ModelMeta:
        """Read the fields from a packed file's metadata (``accumulate`` defaults to float64)."""
        return cls(
            **{f.name: meta[f.name] for f in fields(cls) if f.name != "accumulate"},
            accumulate=meta.get("accumulate", "float64"),
        )

    @property
    def ordered(self) -> bool:
        """Whether single-value leaves are stored per tree and summed in tree order afterwards."""
        return self.aggregate == "sum" or (self.aggregate == "mean" and self.n_values == 1)


def write_packed(path: str | os.PathLike, forest: Forest, layout: Layout) -> ContainerHeader:
    """Encode ``forest`` with ``layout`` and write it atomically as a packed file."""
    from frugalml.pacset.layout import encode  # numba: only a writer needs it

    bs = layout.config.block_size
    region = encode(forest, layout)
    seal_blocks(region, bs)
    index = Index(layout.root_code, forest.tree_group.astype(np.int64), layout.bin_start)
    index_bytes = index.to_bytes(bs)
    meta = metadata(forest, layout)
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
    expected = meta.get("index_length", -1) + meta.get("n_blocks", 0) * meta.get("block_size", 0)
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
    """Check the whole payload's SHA-256 (reads the whole file; readers verify block by block)."""
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
