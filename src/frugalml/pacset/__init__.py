"""pacset: block-aligned packed tree ensembles that predict from disk or Redis with few block reads.

Import a model (sklearn forests and boosting, XGBoost, LightGBM) into a flat forest IR, lay it out
so hot paths share blocks (BFS, DFS, W-DFS, blockwise W-DFS, bins, interleaved tops), write a
checksummed block-aligned file, and predict from it through mmap, pread, O_DIRECT or Redis.
"""

from frugalml.pacset.fileformat import open_packed, verify_file
from frugalml.pacset.forest import Forest
from frugalml.pacset.importers import from_lightgbm_dump, from_model, from_xgboost_json, load_model_file
from frugalml.pacset.layout import LAYOUTS, Layout, LayoutConfig, compute_layout
from frugalml.pacset.packer import Packer, pack
from frugalml.pacset.runtime import ENGINES, PackedForest
from frugalml.pacset.stores import BACKENDS, upload_to_redis

__all__ = [
    "BACKENDS", "ENGINES", "LAYOUTS", "Forest", "Layout", "LayoutConfig", "PackedForest", "Packer",
    "compute_layout", "from_lightgbm_dump", "from_model", "from_xgboost_json", "load_model_file",
    "open_packed", "pack", "upload_to_redis", "verify_file",
]
