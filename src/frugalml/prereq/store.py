"""Named numpy arrays plus JSON metadata in one versioned, checksummed file (frugalml.common.files)."""

from __future__ import annotations

import os

import numpy as np

from frugalml.common import files
from frugalml.common.errors import CorruptFileError


def save_arrays(
    path: str | os.PathLike, magic: bytes, version: int, meta: dict, arrays: dict[str, np.ndarray]
) -> None:
    """Write ``arrays`` (raw little-endian bytes, indexed in the metadata) atomically."""
    index, chunks, offset = [], [], 0
    for name, arr in arrays.items():
        data = np.ascontiguousarray(arr)
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


def load_arrays(path: str | os.PathLike, magic: bytes, version: int) -> tuple[dict, dict]:
    """Read a file written by :func:`save_arrays`; return (metadata, arrays).

    Raises CorruptFileError on a wrong magic, newer version, bad checksum or damaged index.
    """
    header, payload = files.read_container(path, magic, version)
    meta = dict(header.metadata)
    try:
        arrays = {}
        for item in meta.pop("arrays"):
            raw = payload[item["offset"] : item["offset"] + item["nbytes"]]
            arrays[item["name"]] = (
                np.frombuffer(raw, dtype=np.dtype(item["dtype"])).reshape(item["shape"]).copy()
            )
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptFileError(f"{path} has a damaged array index ({exc}); write it again") from None
    return meta, arrays
