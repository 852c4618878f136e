"""pacset: block-aligned packed tree ensembles that predict from disk or Redis with few block reads.

Import a model (sklearn forests and boosting, XGBoost, LightGBM) into a flat forest IR, lay it out
so hot paths share blocks (BFS, DFS, W-DFS, blockwise W-DFS, bins, interleaved tops), write a
checksummed block-aligned file, and predict from it through mmap, pread, O_DIRECT, Redis, or
HTTP range requests (``PackedForest.open("https://...")``).
Every name is imported on first use, so a process that only predicts never loads numba.
"""

from frugalml.common.exports import lazy_exports

_EXPORTS = {
    "fileformat": ("open_packed", "verify_file"),
    "forest": ("Forest",),
    "importers": ("from_lightgbm_dump", "from_model", "from_xgboost_json", "load_model_file"),
    "layout": ("LAYOUTS", "Layout", "LayoutConfig", "compute_layout"),
    "packer": ("Packer", "pack"),
    "remote": ("FETCH_POLICIES", "RemoteOptions", "verify_remote"),
    "runtime": ("ENGINES", "PackedForest"),
    "stores": ("BACKENDS", "upload_to_redis"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
