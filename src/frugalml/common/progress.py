"""Progress bars on a terminal, silence under ``--quiet`` or when output is not a TTY."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    items: Iterable[T], *, desc: str = "", total: int | None = None, quiet: bool = False
) -> Iterable[T]:
    """Wrap ``items`` in a tqdm bar unless ``quiet`` or stderr is not a terminal."""
    return tqdm(items, desc=desc, total=total, disable=quiet or not sys.stderr.isatty(), leave=False)
