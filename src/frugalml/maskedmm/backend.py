"""Which kernels run: the compiled C extension with a runtime ISA choice, or the numba fallback."""

from __future__ import annotations

import functools
import os
import warnings

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import one_of
from frugalml.maskedmm.codegen_kernels import ISAS, SEGMENTS

ISA_ENV = "FRUGAL_MASKEDMM_ISA"
NUMBA = "numba"
ISA_NAMES = (*(isa.name for isa in ISAS), NUMBA)
_WIDTHS = {isa.name: isa.width for isa in ISAS} | {NUMBA: {"f32": 16, "f64": 8}}

try:
    from frugalml.maskedmm import _kernels as extension
except ImportError as _exc:  # a build without a C compiler: numba takes over
    extension = None
    _IMPORT_ERROR = str(_exc)
else:
    _IMPORT_ERROR = ""

_warned = False


def has_extension() -> bool:
    """Whether the compiled C kernels are importable."""
    return extension is not None


def supported_isas() -> list[str]:
    """ISAs the C kernels can run on this CPU, best last (empty without the extension)."""
    return list(_supported())


@functools.cache
def _supported() -> tuple[str, ...]:
    """The CPU's ISAs, asked once (``choose_isa`` runs on every ``auto`` call)."""
    return tuple(extension.supported_isas()) if extension is not None else ()


def choose_isa(isa: str | None = None) -> str:
    """The kernel variant to run: ``isa`` or ``$FRUGAL_MASKEDMM_ISA`` if set, else the best one.

    Returns ``"numba"`` when asked for or when the extension is missing (warning once).

    Raises
    ------
    InvalidInputError
        An unknown ISA name, or one this CPU cannot run.
    """
    requested = isa or os.environ.get(ISA_ENV) or None
    if requested is not None:
        one_of(requested, ISA_NAMES, f"ISA (argument or {ISA_ENV})")
    if requested == NUMBA:
        return NUMBA
    if extension is None:
        warn_fallback_once()
        return NUMBA
    supported = _supported()
    if requested is None:
        return supported[-1]
    if requested not in supported:
        raise InvalidInputError(
            f"this CPU cannot run the {requested} kernels (it supports {', '.join(supported)}); "
            f"unset {ISA_ENV} or choose one of those"
        )
    return requested


def warn_fallback_once() -> None:
    """Tell the user, once per process, that the slower numba kernels are in use."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            "frugalml.maskedmm: the compiled C kernels are missing "
            f"({_IMPORT_ERROR or 'not built'}); using the numba fallback, about 2x slower. "
            "Reinstall with a C compiler (pip install -e . builds them).",
            RuntimeWarning,
            stacklevel=3,
        )


def segment_width(isa: str, dtype_code: str) -> int:
    """Elements per vector segment of B for an ISA and dtype (``"f32"`` or ``"f64"``)."""
    return _WIDTHS[isa][dtype_code]


ROWS_PANELS = {"avx512": 2, "avx2": 3, "scalar": 2}  # as in _kernels.c: panels per wide tile


def rows_panels(isa: str) -> int:
    """Panels of B per wide tile of the row-skip kernel (its accumulators fill the registers)."""
    return ROWS_PANELS.get(isa, 1)


def panel_width(isa: str, dtype_code: str) -> int:
    """Columns of B per packed panel."""
    return segment_width(isa, dtype_code) * SEGMENTS
