"""One export style for every wing: public names listed per module and imported on first use.

A wing's ``__init__.py`` reads::

    from frugalml.common.exports import lazy_exports

    _EXPORTS = {
        "core": ("matmul", "prepare_b"),
        "planner": ("Plan", "calibrate"),
    }
    __all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

so ``import frugalml.<wing>`` stays light (``frugal --help`` does not load torch or numba) and
every public name is listed once, with the module that defines it. ``.ci/typecheck`` reads
``_EXPORTS`` to find the modules whose types it checks.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__all__, __getattr__, __dir__)`` for ``package`` from {module: names}."""
    where = {name: module for module, names in exports.items() for name in names}
    if len(where) != sum(len(names) for names in exports.values()):
        raise ValueError(f"{package}: a public name is listed under two modules")
    public = sorted(where)

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return public

    return public, __getattr__, __dir__
