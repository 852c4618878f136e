"""Where data sets live: an explicit path, then ``$FRUGAL_DATA``, then the user cache, then download.

Loaders call :func:`resolve` with the data set's path relative to a data root (the layout of
``shared/data``, e.g. ``"tabular/Vehicle.csv.gz"``). Nothing is downloaded unless the caller asks
and gives the original URL and its SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.common.files import atomic_write


def cache_dir() -> Path:
    """The user cache: ``$FRUGAL_CACHE``, else ``$XDG_CACHE_HOME/frugalml``, else ``~/.cache``."""
    if os.environ.get("FRUGAL_CACHE"):
        return Path(os.environ["FRUGAL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "frugalml"


def search_roots() -> list[Path]:
    """Data roots searched in order: ``$FRUGAL_DATA`` (when set), then the user cache."""
    roots = [Path(os.environ["FRUGAL_DATA"])] if os.environ.get("FRUGAL_DATA") else []
    return [*roots, cache_dir()]


def resolve(
    relpath: str,
    *,
    path: str | os.PathLike | None = None,
    url: str | None = None,
    sha256: str | None = None,
    download: bool = False,
    hint: str = "",
) -> Path:
    """Return the local path of a data file or folder, downloading it only when asked.

    Parameters
    ----------
    relpath : str
        Path below a data root, e.g. ``"connectome/right_adjacency.csv"``.
    path : path-like, optional
        An explicit location given by the user; it wins and must exist.
    url, sha256 : str, optional
        Original source and checksum, used when ``download`` is true and nothing local exists.
    download : bool
        Allow fetching ``url`` into the user cache (``file://`` and ``http(s)://`` URLs).
    hint : str
        Extra advice for the error message (e.g. the data set's licence or project page).

    Raises
    ------
    DataNotFoundError
        Nothing found; the message lists every place looked at and how to provide the file.
    CorruptFileError
        A download did not match ``sha256``.
    """
    if path is not None:
        explicit = Path(path).expanduser()
        if explicit.exists():
            return explicit
        raise DataNotFoundError(f"{explicit} does not exist; check the path you passed")
    candidates = [root / relpath for root in search_roots()]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    target = cache_dir() / relpath
    if download and url:
        return fetch(url, target, sha256=sha256)
    looked = ", ".join(str(c) for c in candidates)
    how = f"pass download=True (--download) to fetch it from {url}" if url else "pass its path explicitly"
    raise DataNotFoundError(
        f"data file {relpath!r} not found (looked in: {looked}); set FRUGAL_DATA to a folder "
        f"holding it, {how}" + (f"; {hint}" if hint else "")
    )


def fetch(url: str, target: str | os.PathLike, *, sha256: str | None = None) -> Path:
    """Download ``url`` to ``target`` atomically, checking ``sha256`` when given."""
    target = Path(target)
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(url, timeout=60) as response,
            atomic_write(target, create_parents=True) as out,
        ):
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            if sha256 and digest.hexdigest() != sha256.lower():
                raise CorruptFileError(
                    f"download of {url} has SHA-256 {digest.hexdigest()}, expected {sha256}; "
                    "the source changed or the transfer was damaged, nothing was kept"
                )
    except (urllib.error.URLError, OSError) as exc:
        raise DataNotFoundError(
            f"could not download {url} ({exc}); fetch it by hand and place it at {target}"
        ) from None
    return target


def read_matrix(path: str | os.PathLike) -> np.ndarray:
    """A numeric (rows, features) matrix from the file a user names on a command line.

    ``.npy`` (no pickles), ``.npz`` (the array ``X``, else the first), ``.csv`` (comma-separated;
    a header line is skipped) or whitespace-separated text (``.tsv``, ``.txt``...). Raises
    DataNotFoundError when the file is missing and CorruptFileError when it cannot be read as
    numbers; checking shape and NaNs is the caller's job (:func:`frugalml.common.validate.as_array`).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "rows.csv"
    >>> _ = path.write_text("a,b\\n1,2\\n3,4\\n")
    >>> read_matrix(path).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} does not exist; pass a .npy, .npz, .csv or whitespace-separated text file"
        )
    try:
        X = _load_matrix(path)
    except (ValueError, OSError, EOFError, KeyError, IndexError) as exc:
        raise CorruptFileError(f"cannot read {path} as a numeric matrix ({exc}); pass numbers only") from None
    if X.ndim >= 1 and X.shape[0] == 0:
        raise InvalidInputError(f"{path} holds no rows; give a file with one row per line")
    return X


def _load_matrix(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return archive["X"] if "X" in archive.files else archive[archive.files[0]]
    delimiter = "," if path.suffix == ".csv" else None
    with open(path) as f:
        first = f.readline().replace(",", " ").split() if delimiter else f.readline().split()
    skip = 0 if all(_is_number(v) for v in first) else 1
    with warnings.catch_warnings():  # an empty file: read_matrix's own message says it better
        warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
        return np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
