"""A slow, independent reader of sparse24 checkpoints (``.sp24``) for the fuzz tests.

Written from the format's description, in plain Python and numpy (one loop iteration per group of
4), sharing no code with :mod:`frugalml.sparse24.formats`: it parses the container header itself,
decides whether the bytes are a valid checkpoint, and unpacks every tensor. :func:`load_for_fuzz`
runs the real loader and puts its answer in the same form, so the two can be compared.

Format: the container of ``frugalml.common.files`` (magic ``SP24CKPT``, version 1) whose JSON
metadata is ``{"tensors": [entry...], "user": {...}}``; an entry is ``{name, kind, shape, dtype,
parts: {part: {offset, length, shape, dtype}}}`` with kind ``dense`` (part ``dense``), ``2:4``
(``values`` (rows, cols/2), ``indices``: one 4-bit code per group of 4, two per byte, low nibble
first, code = p0 | p1 << 2 with p0 < p1, an odd count padded with a zero nibble) or ``vnm:V:2:M``
(``values`` (rows, 2 cols/M), ``columns`` (rows/V, cols/M, 4) strictly ascending in [0, M), uint8
for M <= 256 else int16, ``positions``: codes as for 2:4, one per (row, group of M)). Parts lie
inside the payload without overlapping, names are unique, bool bytes are 0 or 1.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from typing import Any

import numpy as np

HEADER = struct.Struct("<8sIIQQ32s")
DTYPES = {  # name -> (numpy dtype of the stored bytes, floating point)
    "float32": (np.dtype("<f4"), True),
    "float64": (np.dtype("<f8"), True),
    "float16": (np.dtype("<f2"), True),
    "bfloat16": (np.dtype("<u2"), True),
    "uint8": (np.dtype("u1"), False),
    "int64": (np.dtype("<i8"), False),
    "int32": (np.dtype("<i4"), False),
    "int16": (np.dtype("<i2"), False),
    "bool": (np.dtype("u1"), False),
}
MEMORY_LIMIT = 2**33  # far above what a fuzz case can unpack to; the real reader checks the machine's


class Rejected(Exception):
    """The bytes are not a valid checkpoint."""


def _require(condition: bool, why: str) -> None:
    if not condition:
        raise Rejected(why)


def _container(data: bytes) -> tuple[dict, bytes]:
    _require(len(data) >= HEADER.size, "short header")
    magic, version, meta_len, offset, length, sha = HEADER.unpack_from(data)
    _require(magic == b"SP24CKPT", "magic")
    _require(HEADER.size + meta_len + 4 <= len(data), "truncated header")
    meta = data[HEADER.size : HEADER.size + meta_len]
    (crc,) = struct.unpack_from("<I", data, HEADER.size + meta_len)
    _require(zlib.crc32(data[: HEADER.size + meta_len]) == crc, "header crc")
    _require(version <= 1, "version")
    _require(offset >= HEADER.size + meta_len + 4, "payload inside the header")
    _require(len(data) >= offset + length, "truncated payload")
    try:
        metadata = json.loads(meta)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Rejected("metadata json") from exc
    _require(isinstance(metadata, dict), "metadata not an object")
    payload = data[offset : offset + length]
    _require(hashlib.sha256(payload).digest() == sha, "payload sha")
    return metadata, payload


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _shape(value: Any) -> tuple[int, ...]:
    _require(type(value) is list and len(value) <= 16, "shape list")
    for d in value:
        _require(_is_int(d, 0, 2**48), "shape size")
    return tuple(value)


def _product(shape: tuple[int, ...]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def _expected(kind: Any, shape: tuple[int, ...], dtype: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    _require(type(kind) is str, "kind")
    if kind == "dense":
        return {"dense": (dtype, shape)}
    _require(DTYPES[dtype][1], "packed tensors are floating point")
    _require(len(shape) == 2, "packed tensors are 2-D")
    rows, cols = shape
    if kind == "2:4":
        _require(cols % 4 == 0, "2:4 columns")
        return {"values": (dtype, (rows, cols // 2)), "indices": ("uint8", ((rows * cols // 4 + 1) // 2,))}
    match = re.fullmatch(r"vnm:([1-9][0-9]*):2:([1-9][0-9]*)", kind)
    _require(match is not None and max(len(match.group(1)), len(match.group(2))) <= 10, "kind")
    v, m = int(match.group(1)), int(match.group(2))
    _require(1 <= v <= 2**31 - 1 and 4 <= m <= 32767, "V:N:M range")
    _require(rows % v == 0 and cols % m == 0, "V:N:M shape")
    groups = cols // m
    return {
        "values": (dtype, (rows, 2 * groups)),
        "columns": ("uint8" if m <= 256 else "int16", (rows // v, groups, 4)),
        "positions": ("uint8", ((rows * groups + 1) // 2,)),
    }


def _table(metadata: dict, payload_length: int) -> list[tuple[str, str, tuple, str, dict]]:
    tensors = metadata.get("tensors")
    _require(type(tensors) is list, "tensors")
    _require(isinstance(metadata.get("user", {}), dict), "user")
    table, names, spans = [], set(), []
    for entry in tensors:
        _require(isinstance(entry, dict) and type(entry.get("name")) is str, "entry")
        name = entry["name"]
        shape = _shape(entry.get("shape"))
        dtype = entry.get("dtype")
        _require(type(dtype) is str and dtype in DTYPES, "dtype")
        expected = _expected(entry.get("kind"), shape, dtype)
        parts = entry.get("parts")
        _require(isinstance(parts, dict) and set(parts) == set(expected), "part names")
        where = {}
        for part_name, (part_dtype, part_shape) in expected.items():
            part = parts[part_name]
            _require(isinstance(part, dict), "part")
            offset, length = part.get("offset"), part.get("length")
            _require(_is_int(offset, 0, payload_length), "offset")
            _require(_is_int(length, 0, payload_length - offset), "length")
            _require(part.get("dtype") == part_dtype and type(part.get("dtype")) is str, "part dtype")
            _require(_shape(part.get("shape")) == part_shape, "part shape")
            _require(length == _product(part_shape) * DTYPES[part_dtype][0].itemsize, "part length")
            where[part_name] = (offset, length)
            spans.append((offset, offset + length))
        _require(name not in names, "duplicate name")
        names.add(name)
        table.append((name, entry["kind"], shape, dtype, where))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        _require(start >= end, "overlap")
    return table


def _array(payload: bytes, where: tuple[int, int], dtype: str) -> np.ndarray:
    offset, length = where
    return np.frombuffer(payload[offset : offset + length], dtype=DTYPES[dtype][0])


def _codes(raw: np.ndarray, count: int) -> list[tuple[int, int]]:
    """The (p0, p1) of each of ``count`` 4-bit codes, checked."""
    out = []
    for i in range(count):
        byte = int(raw[i // 2])
        code = byte & 0xF if i % 2 == 0 else byte >> 4
        p0, p1 = code & 3, code >> 2
        _require(p0 < p1, "position code")
        out.append((p0, p1))
    if count % 2:
        _require(int(raw[count // 2]) >> 4 == 0, "padding nibble")
    return out


def _unpack(kind: str, shape: tuple, dtype: str, payload: bytes, where: dict) -> np.ndarray:
    if kind == "dense":
        values = _array(payload, where["dense"], dtype)
        if dtype == "bool":
            _require(all(int(b) in (0, 1) for b in values), "bool bytes")
        return values.reshape(shape)
    rows, cols = shape
    values = _array(payload, where["values"], dtype)
    dense = np.zeros(rows * cols, dtype=DTYPES[dtype][0])
    if kind == "2:4":
        groups = cols // 4
        codes = _codes(_array(payload, where["indices"], "uint8"), rows * groups)
        for r in range(rows):
            for g in range(groups):
                for k, p in enumerate(codes[r * groups + g]):
                    dense[r * cols + 4 * g + p] = values[r * (cols // 2) + 2 * g + k]
        return dense.reshape(shape)
    v, m = (int(x) for x in kind.split(":")[1::2])
    groups = cols // m
    column_dtype = "uint8" if m <= 256 else "int16"
    columns = _array(payload, where["columns"], column_dtype).astype(np.int64)
    for i in range(0, len(columns), 4):
        c = [int(x) for x in columns[i : i + 4]]
        _require(0 <= c[0] < c[1] < c[2] < c[3] < m, "columns")
    codes = _codes(_array(payload, where["positions"], "uint8"), rows * groups)
    for r in range(rows):
        for g in range(groups):
            chosen = columns[((r // v) * groups + g) * 4 : ((r // v) * groups + g) * 4 + 4]
            for k, p in enumerate(codes[r * groups + g]):
                dense[r * cols + g * m + int(chosen[p])] = values[r * 2 * groups + 2 * g + k]
    return dense.reshape(shape)


def reference_load(data: bytes) -> dict[str, Any]:
    """``{"tensors": {name: (dtype, shape, bytes)}, "user": ...}`` of a valid checkpoint, or Rejected."""
    metadata, payload = _container(data)
    table = _table(metadata, len(payload))
    total = sum(_product(shape) * DTYPES[dtype][0].itemsize for _, _, shape, dtype, _ in table)
    _require(total <= MEMORY_LIMIT, "unpacked size")
    tensors = {}
    for name, kind, shape, dtype, where in table:
        array = _unpack(kind, shape, dtype, payload, where)
        tensors[name] = (dtype, tuple(shape), array.tobytes())
    return {"tensors": tensors, "user": metadata.get("user", {})}


def load_for_fuzz(data: bytes) -> dict[str, Any]:
    """The real loader's answer on ``data``, in :func:`reference_load`'s form (runs in the sandbox)."""
    import os
    import tempfile

    import torch

    from frugalml.sparse24.formats import load_checkpoint

    fd, path = tempfile.mkstemp(suffix=".sp24")
    try:
        os.write(fd, data)
        os.close(fd)
        state, user = load_checkpoint(path)
    finally:
        os.unlink(path)
    tensors = {}
    for name, tensor in state.items():
        raw = tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor
        dtype = str(tensor.dtype).removeprefix("torch.")
        tensors[name] = (dtype, tuple(tensor.shape), raw.contiguous().numpy().tobytes())
    return {"tensors": tensors, "user": user}


def warm_up() -> bool:
    """Import what :func:`load_for_fuzz` needs (run once in a fresh sandbox child)."""
    import torch  # noqa: F401

    import frugalml.sparse24.formats  # noqa: F401

    return True
