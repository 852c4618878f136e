"""Compressed storage: 2:4 (values + 2-bit indices) and V:N:M (values, column indices, positions).

Also byte accounting and a compressed checkpoint file (versioned, checksummed, written atomically
through :mod:`frugalml.common.files`) whose 2:4 tensors are stored packed.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalml.common.env import physical_memory
from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.files import read_container, write_container
from frugalml.sparse24.masks import FLOAT_DTYPES, VNM, check_float_tensor, group_ranks, is_24, is_vnm

CHECKPOINT_MAGIC = b"SP24CKPT"
CHECKPOINT_VERSION = 1
_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float32,
        torch.float64,
        torch.float16,
        torch.bfloat16,
        torch.uint8,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.bool,
    )
}


@dataclass
class Packed:
    """A compressed tensor: ``kind`` ("2:4" or a V:N:M spec), its dense ``shape`` and parts."""

    kind: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    parts: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the compressed parts (values + metadata)."""
        return sum(p.numel() * p.element_size() for p in self.parts.values())

    @property
    def dense_nbytes(self) -> int:
        """Bytes of the same tensor stored dense."""
        return int(np.prod(self.shape)) * torch.empty((), dtype=self.dtype).element_size()

    @property
    def compression(self) -> float:
        """Dense bytes / compressed bytes."""
        return self.dense_nbytes / self.nbytes


def _pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit codes (a flat uint8 tensor) two per byte (odd counts padded with a zero nibble)."""
    flat = codes.reshape(-1).to(torch.uint8)
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return flat[0::2] | (flat[1::2] << 4)


def _unpack_nibbles(packed: torch.Tensor, count: int) -> torch.Tensor:
    both = torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(-1)
    return both[:count]


def _two_of_four(nonzero: torch.Tensor) -> torch.Tensor:
    """Ascending positions (…, 2) of the kept entries per group of 4: non-zeros first, then padding."""
    keep = group_ranks(nonzero.to(torch.float32)) < 2
    return torch.argsort((~keep).to(torch.uint8), dim=-1, stable=True)[..., :2]


def _part(packed: Packed, name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    part = packed.parts.get(name)
    if not isinstance(part, torch.Tensor) or part.dtype != dtype or tuple(part.shape) != shape:
        found = "missing" if part is None else f"{getattr(part, 'dtype', type(part).__name__)} {_shape(part)}"
        raise InvalidInputError(f"{packed.kind} part {name!r} must be {dtype} of shape {shape}, got {found}")
    return part


def _shape(part: Any) -> tuple[int, ...] | None:
    return tuple(part.shape) if hasattr(part, "shape") else None


def _positions(packed: Packed, name: str, count: int) -> torch.Tensor:
    """The (count, 2) strictly ascending positions of 2 kept entries among 4, from 4-bit codes."""
    nibbles = _part(packed, name, torch.uint8, ((count + 1) // 2,))
    both = _unpack_nibbles(nibbles, count + count % 2)
    codes = both[:count]
    first, second = codes & 3, codes >> 2
    if bool((first >= second).any()) or (count % 2 and int(both[-1]) != 0):  # checked on bytes: cheap
        raise InvalidInputError(
            f"{packed.kind} part {name!r} holds a position code that is not 2 distinct ascending "
            "positions of 4 (or a non-zero padding nibble)"
        )
    return torch.stack([first, second], dim=-1).long()


# the integer type of each float type's bits
_BITS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16}
_BITS[torch.bfloat16] = torch.int16


def _packed_shape(packed: Packed, rows_multiple: int, cols_multiple: int) -> tuple[int, int]:
    if packed.dtype not in FLOAT_DTYPES:
        raise InvalidInputError(f"a packed {packed.kind} tensor must be floating point, got {packed.dtype}")
    shape = tuple(packed.shape)
    if len(shape) != 2 or any(d < 0 for d in shape) or shape[0] % rows_multiple or shape[1] % cols_multiple:
        raise InvalidInputError(
            f"a packed {packed.kind} tensor must be 2-D with rows divisible by {rows_multiple} and columns "
            f"by {cols_multiple}, got shape {shape}"
        )
    return shape[0], shape[1]


def pack_24(x: torch.Tensor) -> Packed:
    """Pack a 2:4-sparse matrix into half its values plus 4 bits of indices per group of 4.

    Raises
    ------
    InvalidInputError
        ``x`` is not 2-D float, its column count is not a multiple of 4, or it is not 2:4 sparse.
    """
    check_float_tensor(x, "tensor to pack")
    if x.shape[1] % 4 or not is_24(x):
        raise InvalidInputError(
            f"tensor of shape {tuple(x.shape)} is not 2:4 sparse along its last dim; apply a 2:4 mask "
            "(frugalml.sparse24.mask_24) before packing"
        )
    groups = x.reshape(x.shape[0], -1, 4)
    positions = _two_of_four(groups != 0)
    values = groups.gather(-1, positions).reshape(x.shape[0], -1).contiguous()
    codes = positions[..., 0] | (positions[..., 1] << 2)
    return Packed("2:4", tuple(x.shape), x.dtype, {"values": values, "indices": _pack_nibbles(codes)})


def unpack_24(packed: Packed) -> torch.Tensor:
    """The dense matrix back from :func:`pack_24` (exact).

    Raises
    ------
    InvalidInputError
        The parts do not describe a 2:4 tensor of ``packed.shape`` (wrong shapes or dtypes, position
        codes that are not 2 distinct ascending positions of 4).
    """
    rows, cols = _packed_shape(packed, 1, 4)
    groups = rows * cols // 4
    values = _part(packed, "values", packed.dtype, (rows, cols // 2)).reshape(rows, cols // 4, 2)
    positions = _positions(packed, "indices", groups).reshape(rows, cols // 4, 2)
    bits = values.view(_BITS[packed.dtype])  # moved as raw bits: every NaN payload kept exactly
    dense = torch.zeros(rows, cols // 4, 4, dtype=bits.dtype, device=values.device)
    dense.scatter_(-1, positions.to(values.device), bits)
    return dense.reshape(rows, cols).view(packed.dtype)


def pack_vnm(x: torch.Tensor, pattern: VNM | str) -> Packed:
    """Pack a V:N:M-sparse matrix: per row 2 values per M columns, 4 column indices per V x M block,
    and 2-bit positions of each row's values among its block's 4 columns.
    """
    pattern = VNM.parse(pattern)
    check_float_tensor(x, "tensor to pack")
    if not is_vnm(x, pattern):
        raise InvalidInputError(
            f"tensor of shape {tuple(x.shape)} is not {pattern}-sparse; apply frugalml.sparse24.vnm_mask "
            f"first (rows must divide by {pattern.v}, columns by {pattern.m})"
        )
    v, m = pattern.v, pattern.m
    if m > 32767:
        raise InvalidInputError(
            f"{pattern}: packed V:N:M tensors hold M up to 32767 (int16 columns), got {m}"
        )
    rows, cols = x.shape
    blocks = x.reshape(rows // v, v, cols // m, m)
    used = (blocks != 0).any(dim=1).to(torch.float32)  # (B, G, M)
    keep_col = group_ranks(used) < 4
    columns = torch.argsort((~keep_col).to(torch.uint8), dim=-1, stable=True)[..., :4]  # (B, G, 4)
    index = columns.unsqueeze(1).expand(-1, v, -1, -1)
    candidates = blocks.gather(-1, index)  # (B, V, G, 4)
    positions = _two_of_four(candidates != 0)
    values = candidates.gather(-1, positions).reshape(rows, -1).contiguous()
    codes = positions[..., 0] | (positions[..., 1] << 2)
    return Packed(
        str(pattern),
        (rows, cols),
        x.dtype,
        {
            "values": values,
            "columns": columns.to(column_dtype(m)).contiguous(),
            "positions": _pack_nibbles(codes),
        },
    )


def column_dtype(m: int) -> torch.dtype:
    """The dtype of a V:N:M tensor's column indices: uint8 up to M = 256, int16 above."""
    return torch.uint8 if m <= 256 else torch.int16


def unpack_vnm(packed: Packed) -> torch.Tensor:
    """The dense matrix back from :func:`pack_vnm` (exact).

    Raises
    ------
    InvalidInputError
        The parts do not describe a V:N:M tensor of ``packed.shape``: wrong shapes or dtypes, a
        block's 4 column indices not strictly ascending in [0, M), or position codes that are not 2
        distinct ascending positions of 4.
    """
    pattern = VNM.parse(packed.kind)
    v, m = pattern.v, pattern.m
    if m > 32767:
        raise InvalidInputError(f"{pattern}: packed V:N:M tensors hold M up to 32767, got {m}")
    rows, cols = _packed_shape(packed, v, m)
    blocks, groups = rows // v, cols // m
    values = _part(packed, "values", packed.dtype, (rows, groups * 2)).reshape(blocks, v, groups, 2)
    columns = _part(packed, "columns", column_dtype(m), (blocks, groups, 4)).long()
    if columns.numel() and (
        bool((columns[..., 0] < 0).any())
        or bool((columns[..., 3] >= m).any())
        or bool((columns[..., 1:] <= columns[..., :-1]).any())
    ):
        raise InvalidInputError(
            f"{pattern} part 'columns' holds a block whose 4 column indices are not strictly ascending "
            f"in [0, {m})"
        )
    positions = _positions(packed, "positions", rows * groups).reshape(blocks, v, groups, 2)
    column_index = columns.unsqueeze(1).expand(-1, v, -1, -1).gather(-1, positions)
    bits = values.view(_BITS[packed.dtype])
    dense = torch.zeros(blocks, v, groups, m, dtype=bits.dtype, device=values.device)
    dense.scatter_(-1, column_index.to(values.device), bits)
    return dense.reshape(rows, cols).view(packed.dtype)


def _to_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def _from_bytes(raw: bytes, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    storage = torch.int16 if dtype == torch.bfloat16 else dtype
    array = np.frombuffer(raw, dtype=torch.empty((), dtype=storage).numpy().dtype).copy()
    if dtype == torch.bool and bool((array.view(np.uint8) > 1).any()):
        raise ValueError("a bool tensor holds bytes other than 0 and 1")
    return torch.from_numpy(array).reshape(shape).view(dtype)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def save_checkpoint(
    state: dict[str, torch.Tensor | Packed], path: str | os.PathLike, metadata: dict | None = None
) -> dict[str, int]:
    """Write a state dict with every 2:4-sparse 2-D float tensor packed; the rest stored dense.

    A :class:`Packed` value (from :func:`pack_24` or :func:`pack_vnm`) is stored as it is packed;
    :func:`load_checkpoint` returns it dense. Returns byte accounting:
    ``{"dense_bytes", "file_payload_bytes", "packed_tensors"}``.
    """
    entries, chunks, offset, dense_bytes, packed_count = [], [], 0, 0, 0
    for name, tensor in state.items():
        if isinstance(tensor, Packed):
            dense_bytes += tensor.dense_nbytes
            kind, shape, dtype, parts = tensor.kind, list(tensor.shape), tensor.dtype, tensor.parts
        else:
            tensor = tensor.detach().cpu()
            dense_bytes += tensor.numel() * tensor.element_size()
            packable = (
                tensor.ndim == 2
                and tensor.is_floating_point()
                and tensor.shape[1] % 4 == 0
                and tensor.numel() > 0
                and is_24(tensor)
            )
            kind, shape, dtype = ("2:4" if packable else "dense"), list(tensor.shape), tensor.dtype
            parts = pack_24(tensor).parts if packable else {"dense": tensor}
        packed_count += kind != "dense"
        entry: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "shape": shape,
            "dtype": _dtype_name(dtype),
            "parts": {},
        }
        for part_name, part in parts.items():
            raw = _to_bytes(part)
            entry["parts"][part_name] = {
                "offset": offset,
                "length": len(raw),
                "shape": list(part.shape),
                "dtype": _dtype_name(part.dtype),
            }
            chunks.append(raw)
            offset += len(raw)
        entries.append(entry)
    write_container(
        path, CHECKPOINT_MAGIC, CHECKPOINT_VERSION, {"tensors": entries, "user": metadata or {}}, chunks
    )
    return {"dense_bytes": dense_bytes, "file_payload_bytes": offset, "packed_tensors": packed_count}


MAX_DIMS = 16  # dimensions of a stored tensor
MAX_DIM = 2**48  # size of one dimension (a tensor with a zero dimension holds no bytes, whatever the rest)
PART_NAMES = {"dense": ("dense",), "2:4": ("values", "indices"), "vnm": ("values", "columns", "positions")}


@dataclass(frozen=True)
class TableEntry:
    """One tensor of a checkpoint's table, checked against the payload: where its parts lie and what
    they are (``parts``: name -> (offset, length, dtype, shape)), and the dense tensor it unpacks to."""

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    parts: dict[str, tuple[int, int, torch.dtype, tuple[int, ...]]]

    @property
    def dense_nbytes(self) -> int:
        return math.prod(self.shape) * _itemsize(self.dtype)


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _int(value: Any, what: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{what} must be an integer in [0, {high}], got {value!r}")
    return value


def _shape_of(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_DIMS:
        raise ValueError(f"{what} must be a list of at most {MAX_DIMS} sizes, got {value!r:.80}")
    return tuple(_int(d, what, MAX_DIM) for d in value)


def _dtype_of(value: Any, what: str) -> torch.dtype:
    if not isinstance(value, str) or value not in _DTYPES:
        raise ValueError(f"{what} {value!r:.40} is not one of {', '.join(_DTYPES)}")
    return _DTYPES[value]


def _expected_parts(kind: str, shape: tuple[int, ...], dtype: torch.dtype) -> dict[str, tuple]:
    """(dtype, shape) of each part a tensor of this kind, shape and dtype must have."""
    if kind == "dense":
        return {"dense": (dtype, shape)}
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"a packed {kind} tensor must be floating point, got {_dtype_name(dtype)}")
    if kind == "2:4":
        if len(shape) != 2 or shape[1] % 4:
            raise ValueError(f"a 2:4 tensor must be 2-D with columns divisible by 4, got shape {shape}")
        rows, cols = shape
        return {
            "values": (dtype, (rows, cols // 2)),
            "indices": (torch.uint8, ((rows * cols // 4 + 1) // 2,)),
        }
    try:
        pattern = VNM.parse(kind)
    except InvalidInputError:
        raise ValueError(f"unknown tensor kind {kind!r:.40}") from None
    if kind != str(pattern) or pattern.m > 32767:
        raise ValueError(f"unknown tensor kind {kind!r:.40} (write V:N:M kinds as vnm:V:2:M, M <= 32767)")
    if len(shape) != 2 or shape[0] % pattern.v or shape[1] % pattern.m:
        raise ValueError(f"a {kind} tensor must be 2-D, rows divisible by V and columns by M, got {shape}")
    rows, groups = shape[0], shape[1] // pattern.m
    return {
        "values": (dtype, (rows, groups * 2)),
        "columns": (column_dtype(pattern.m), (rows // pattern.v, groups, 4)),
        "positions": (torch.uint8, ((rows * groups + 1) // 2,)),
    }


def _table_entry(entry: Any, payload_length: int) -> TableEntry:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ValueError(f"a table entry must be an object with a string name, got {entry!r:.80}")
    name, kind, parts = entry["name"], entry.get("kind"), entry.get("parts")
    shape, dtype = (
        _shape_of(entry.get("shape"), f"{name!r} shape"),
        _dtype_of(entry.get("dtype"), f"{name!r} dtype"),
    )
    if not isinstance(kind, str):
        raise ValueError(f"{name!r} has kind {kind!r:.40}, not a string")
    expected = _expected_parts(kind, shape, dtype)
    if not isinstance(parts, dict) or sorted(parts) != sorted(expected):
        found = sorted(parts) if isinstance(parts, dict) else parts
        raise ValueError(f"{name!r} ({kind}) must have parts {sorted(expected)}, got {found!r:.80}")
    checked = {}
    for part_name, (part_dtype, part_shape) in expected.items():
        part, what = parts[part_name], f"{name!r} part {part_name!r}"
        if not isinstance(part, dict):
            raise ValueError(f"{what} must be an object, got {part!r:.40}")
        offset = _int(part.get("offset"), f"{what} offset", payload_length)
        length = _int(part.get("length"), f"{what} length", payload_length - offset)
        stored = (
            _dtype_of(part.get("dtype"), f"{what} dtype"),
            _shape_of(part.get("shape"), f"{what} shape"),
        )
        if stored != (part_dtype, part_shape):
            raise ValueError(
                f"{what} is {_dtype_name(stored[0])} {stored[1]}, its tensor needs {_dtype_name(part_dtype)} "
                f"{part_shape}"
            )
        if length != math.prod(part_shape) * _itemsize(part_dtype):
            raise ValueError(f"{what} claims {length} bytes, its shape and dtype need a different count")
        checked[part_name] = (offset, length, part_dtype, part_shape)
    return TableEntry(name, kind, shape, dtype, checked)


def checkpoint_table(metadata: dict[str, Any], payload_length: int) -> list[TableEntry]:
    """Check a checkpoint's tensor table against its payload before anything is allocated: known
    kinds and dtypes, part shapes that match their tensor, byte counts that match the shapes, parts
    inside the payload and not overlapping (so no tensor is read twice), unique names.

    Raises
    ------
    ValueError
        Naming the first inconsistency (:func:`load_checkpoint` turns it into CorruptFileError).
    """
    tensors = metadata.get("tensors")
    if not isinstance(tensors, list):
        raise ValueError("the metadata has no tensor list")
    if not isinstance(metadata.get("user", {}), dict):
        raise ValueError("the user metadata is not an object")
    table = [_table_entry(entry, payload_length) for entry in tensors]
    names = [entry.name for entry in table]
    if len(set(names)) != len(names):
        raise ValueError("a tensor name appears twice")
    spans = sorted((offset, offset + length) for e in table for offset, length, *_ in e.parts.values())
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise ValueError(f"two tensor parts overlap at payload byte {start}")
    return table


def _unpack_entry(entry: TableEntry, payload: bytes) -> torch.Tensor:
    parts = {
        name: _from_bytes(payload[offset : offset + length], dtype, shape)
        for name, (offset, length, dtype, shape) in entry.parts.items()
    }
    if entry.kind == "dense":
        return parts["dense"]
    packed = Packed(entry.kind, entry.shape, entry.dtype, parts)
    return unpack_24(packed) if entry.kind == "2:4" else unpack_vnm(packed)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_checkpoint`; return (dense state dict, user metadata).

    The tensor table is checked against the payload (:func:`checkpoint_table`) and every packed
    tensor's indices against its pattern before a tensor is built; nothing is unpickled.

    Raises
    ------
    DataNotFoundError, CorruptFileError
        Missing file; wrong magic, newer version, truncated, damaged or inconsistent file, or one
        that unpacks to more memory than this machine has.
    """
    try:
        header, payload = read_container(Path(path), CHECKPOINT_MAGIC, CHECKPOINT_VERSION)
        metadata = header.metadata
        if not isinstance(metadata, dict):
            raise ValueError("the metadata is not an object")
        table = checkpoint_table(metadata, len(payload))
    except (ValueError, RecursionError) as exc:
        raise CorruptFileError(f"{path} has an inconsistent tensor table ({exc}); write it again") from None
    unpacked = sum(entry.dense_nbytes for entry in table)
    memory = physical_memory()
    if unpacked > memory:
        raise CorruptFileError(
            f"{path} unpacks to {unpacked / 2**30:.3g} GiB, more than this machine's {memory / 2**30:.3g} GiB"
        )
    state = {}
    for entry in table:
        try:
            state[entry.name] = _unpack_entry(entry, payload)
        except (ValueError, InvalidInputError) as exc:
            raise CorruptFileError(
                f"{path}: tensor {entry.name!r:.80} is damaged ({exc}); write it again"
            ) from None
    return state, metadata.get("user", {})
