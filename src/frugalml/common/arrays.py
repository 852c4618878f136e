"""Named numpy arrays plus JSON metadata in one versioned, checksummed file (see :mod:`.files`).

The arrays are stored as raw little-endian bytes one after another; the metadata's ``"arrays"``
entry indexes them (name, dtype, shape, offset, byte count). Every index entry is checked against
the payload before an array is built, so a damaged or crafted file raises CorruptFileError instead
of allocating what its header claims.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from frugalml.common import files
from frugalml.common.errors import CorruptFileError


def save_arrays(
    path: str | os.PathLike, magic: bytes, version: int, meta: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    """Write ``arrays`` and ``meta`` to ``path`` atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
    >>> save_arrays(path, b"EXAMPLE", 1, {"k": 3}, {"w": np.arange(4.0)})
    >>> meta, arrays = load_arrays(path, b"EXAMPLE", 1)
    >>> meta["k"], arrays["w"].tolist()
    (3, [0.0, 1.0, 2.0, 3.0])
    """
    index, chunks, offset = [], [], 0
    for name, arr in arrays.items():
        data = np.asarray(arr)
        if not data.flags.c_contiguous:  # (np.ascontiguousarray would turn a 0-d array into 1-d)
            data = np.ascontiguousarray(data)
        if data.dtype.byteorder == ">":
            data = data.astype(data.dtype.newbyteorder("<"))
        raw = data.tobytes()
        index.append(
            {
                "name": name,
                "dtype": data.dtype.str,
                "shape": list(data.shape),
                "offset": offset,
                "nbytes": len(raw),
            }
        )
        chunks.append(raw)
        offset += len(raw)
    files.write_container(path, magic, version, {**meta, "arrays": index}, chunks)


def load_arrays(
    path: str | os.PathLike, magic: bytes, max_version: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`save_arrays`; return (metadata without the index, arrays).

    Index entries without ``offset`` are read one after another from the start of the payload.
    Raises CorruptFileError on a wrong magic, a newer version, a bad checksum or a damaged index.
    """
    header, payload = files.read_container(path, magic, max_version)
    meta = dict(header.metadata)
    index = meta.pop("arrays", None)
    if not isinstance(index, list):
        raise CorruptFileError(f"{path} has no array index; write it again")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    try:
        for item in index:
            dtype = np.dtype(item["dtype"])
            if dtype.hasobject:
                raise ValueError(f"object dtype {item['dtype']!r} is not allowed")
            shape = tuple(int(d) for d in item["shape"])
            if any(d < 0 for d in shape):
                raise ValueError(f"negative shape {shape}")
            nbytes = dtype.itemsize * math.prod(shape)
            start = int(item.get("offset", offset))
            if "nbytes" in item and int(item["nbytes"]) != nbytes:
                raise ValueError(f"{item['name']!r} claims {item['nbytes']} bytes, its shape needs {nbytes}")
            if start < 0 or start + nbytes > len(payload):
                raise ValueError(f"{item['name']!r} lies outside the {len(payload)}-byte payload")
            raw = payload[start : start + nbytes]
            arrays[str(item["name"])] = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
            offset = start + nbytes
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptFileError(f"{path} has a damaged array index ({exc}); write it again") from None
    return meta, arrays
