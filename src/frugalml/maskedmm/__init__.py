"""maskedmm: C = A @ B on dense arrays full of run-time zeros, faster than BLAS by skipping them."""

from frugalml.common.exports import lazy_exports

_EXPORTS = {
    "core": (
        "PreparedB",
        "SparseRows",
        "Stats",
        "matmul",
        "plan",
        "prepare_b",
        "reset_stats",
        "sparse_rows",
        "stats",
    ),
    "oracle": ("reference_matmul",),
    "planner": ("Plan",),
    "calibration": ("calibrate",),
    "torch": (
        "GatedUpLinear",
        "LayerReport",
        "MaskedLinear",
        "eligible_layers",
        "gated_up_layers",
        "layer_report",
        "sparsify_",
        "unsparsify_",
    ),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
