"""Byte corpora for language-model work: the Python standard library's own sources or a text file."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

from frugalml.common.data import resolve
from frugalml.common.env import physical_memory
from frugalml.common.errors import InvalidInputError

STDLIB = "stdlib"


def stdlib_bytes(max_bytes: int = 2_000_000) -> bytes:
    """The standard library's top-level ``.py`` files, sorted by name, concatenated, truncated.

    Always present, so demos and tests train on real text without any download.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks, size = [], 0
    for path in sorted(root.glob("*.py")):
        data = path.read_bytes()
        chunks.append(data)
        size += len(data)
        if size >= max_bytes:
            break
    return b"".join(chunks)[:max_bytes]


def corpus_bytes(corpus: str | os.PathLike | None = STDLIB, *, max_bytes: int | None = None) -> bytes:
    """The first ``max_bytes`` bytes (all when None) of a corpus.

    Parameters
    ----------
    corpus : str, path or None
        ``"stdlib"`` or None for the embedded standard-library corpus; a path to a text file; or a
        name in the data root's ``corpora/`` folder (``"tinyshakespeare.txt"`` or
        ``"corpora/tinyshakespeare.txt"``), found through ``$FRUGAL_DATA`` or the user cache.

    Raises
    ------
    DataNotFoundError
        The file is neither at the path nor under a data root.
    InvalidInputError
        The path is a folder, or (without ``max_bytes``) a file larger than half the machine's memory.
    """
    if corpus is None or corpus == STDLIB:
        return stdlib_bytes(max_bytes or 2_000_000)
    given = Path(corpus).expanduser()
    if given.exists() or given.is_absolute():
        path = resolve(str(given), path=given)
    else:
        name = given.as_posix()
        path = resolve(
            name if name.startswith("corpora/") else f"corpora/{name}",
            hint="tinyshakespeare.txt is karpathy/char-rnn's input.txt",
        )
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; pass a text file inside it")
    size = path.stat().st_size
    if max_bytes is None and size > physical_memory() // 2:
        raise InvalidInputError(
            f"{path} holds {size / 2**30:.3g} GiB, more than half this machine's memory; "
            "use a slice of it (head -c) or pass max_bytes"
        )
    with open(path, "rb") as f:
        return f.read(max_bytes) if max_bytes else f.read()
