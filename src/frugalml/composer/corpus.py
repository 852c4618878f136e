"""Byte-level text corpora for the LM proxy: the Python standard library's own source (embedded,
always present) or any text file (e.g. ``corpora/tinyshakespeare.txt`` under ``$FRUGAL_DATA``)."""

from __future__ import annotations

import platform

import numpy as np

from frugalml.common.corpus import STDLIB, corpus_bytes
from frugalml.common.errors import InvalidInputError


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
    data = corpus_bytes(corpus, max_bytes=max_bytes)
    if len(data) < 1024:
        raise InvalidInputError(f"corpus {corpus!r} has only {len(data)} bytes; it needs at least 1024")
    return np.frombuffer(data, dtype=np.uint8)


def corpus_id(corpus: str) -> str:
    """A name for the cache key; the stdlib corpus depends on the Python version."""
    return f"stdlib-py{platform.python_version()}" if corpus == STDLIB else str(corpus)
