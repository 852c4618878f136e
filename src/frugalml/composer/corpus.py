"""Byte-level text corpora for the LM proxy: the Python standard library's own source (embedded,
always present) or any text file (e.g. ``corpora/tinyshakespeare.txt`` under ``$FRUGAL_DATA``)."""

from __future__ import annotations

import platform
import sysconfig
from pathlib import Path

import numpy as np

from frugalml.common.data import resolve
from frugalml.common.errors import InvalidInputError

STDLIB = "stdlib"


def stdlib_bytes(max_bytes: int = 2_000_000) -> bytes:
    """The standard library's top-level ``.py`` files, sorted by name, concatenated, truncated."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out, size = [], 0
    for path in sorted(root.glob("*.py")):
        data = path.read_bytes()
        out.append(data)
        size += len(data)
        if size >= max_bytes:
            break
    return b"".join(out)[:max_bytes]


def load_corpus(corpus: str = STDLIB, *, max_bytes: int = 2_000_000) -> np.ndarray:
    """Bytes of a corpus as a uint8 array.

    Parameters
    ----------
    corpus : str
        ``"stdlib"`` (the default, embedded), a path to a text file, or a path relative to the
        data root such as ``"corpora/tinyshakespeare.txt"``.
    max_bytes : int
        Keep at most this many bytes (from the start).

    Raises
    ------
    DataNotFoundError
        The file is not found at the path nor under ``$FRUGAL_DATA``.
    InvalidInputError
        The corpus is too short to train on.
    """
    if max_bytes < 1024:
        raise InvalidInputError(f"max_bytes must be at least 1024, got {max_bytes}")
    if corpus == STDLIB:
        data = stdlib_bytes(max_bytes)
    else:
        given = Path(corpus).expanduser()
        path = given if given.is_file() else resolve(corpus)
        if path.is_dir():
            raise InvalidInputError(f"{path} is a folder; pass a text file inside it")
        with open(path, "rb") as f:
            data = f.read(max_bytes)
    if len(data) < 1024:
        raise InvalidInputError(f"corpus {corpus!r} has only {len(data)} bytes; it needs at least 1024")
    return np.frombuffer(data, dtype=np.uint8)


def corpus_id(corpus: str) -> str:
    """A name for the cache key; the stdlib corpus depends on the Python version."""
    return f"stdlib-py{platform.python_version()}" if corpus == STDLIB else str(corpus)
