"""pacset: block-aligned packed tree ensembles that predict from disk or Redis with few block reads.

Import a model (sklearn forests and boosting, XGBoost, LightGBM) into a flat forest IR, lay it out
so hot paths share blocks (BFS, DFS, W-DFS, blockwise W-DFS, bins, interleaved tops), write a
checksummed block-aligned file, and predict from it through mmap, pread, O_DIRECT or Redis.
Packing needs numba and is imported on first use, so a process that only predicts never loads it.
"""

import importlib

from frugalml.pacset.fileformat import open_packed, verify_file
from frugalml.pacset.forest import Forest
from frugalml.pacset.importers import from_lightgbm_dump, from_model, from_xgboost_json, load_model_file
from frugalml.pacset.runtime import ENGINES, PackedForest
from frugalml.pacset.stores import BACKENDS, upload_to_redis

__all__ = [
    "BACKENDS",
    "ENGINES",
    "LAYOUTS",
    "Forest",
    "Layout",
    "LayoutConfig",
    "PackedForest",
    "Packer",
    "compute_layout",
    "from_lightgbm_dump",
    "from_model",
    "from_xgboost_json",
    "load_model_file",
    "open_packed",
    "pack",
    "upload_to_redis",
    "verify_file",
]
_LAZY = {
    "LAYOUTS": "layout",
    "Layout": "layout",
    "LayoutConfig": "layout",
    "compute_layout": "layout",
    "Packer": "packer",
    "pack": "packer",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"frugalml.pacset.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
