"""Parsing of comma-separated lists typed on a command line, with one rule everywhere.

Items are stripped and empty items dropped (``"a, b,"`` is ``["a", "b"]``); an item that cannot
be converted, or is not among the allowed values, raises InvalidInputError naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import one_of

T = TypeVar("T")


def comma_list(
    text: str | None,
    convert: Callable[[str], T] = str,  # type: ignore[assignment]
    *,
    name: str = "value",
    allowed: Iterable[str] | None = None,
    non_empty: bool = False,
) -> list[T]:
    """Split ``text`` on commas and convert each item.

    Parameters
    ----------
    text : str or None
        What the user typed; None or blank gives an empty list.
    convert : callable
        Turns one stripped item into a value (``int``, ``float``, ``str``...).
    name : str
        How an error message calls one item.
    allowed : iterable of str, optional
        When given, every (stripped) item must be one of these.
    non_empty : bool
        Raise when the list is empty.

    Examples
    --------
    >>> comma_list("1, 2,,3", int)
    [1, 2, 3]
    >>> comma_list("rf, knn", allowed=["rf", "knn", "umap"], name="peer")
    ['rf', 'knn']
    """
    items = [part.strip() for part in (text or "").split(",") if part.strip()]
    if non_empty and not items:
        raise InvalidInputError(f"give at least one {name} (a comma-separated list), got {text!r}")
    values = []
    for item in items:
        if allowed is not None:
            one_of(item, allowed, name)
        try:
            values.append(convert(item))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{name} {item!r} in {text!r} is not valid ({exc})") from None
    return values
