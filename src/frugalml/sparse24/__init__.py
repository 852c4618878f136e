"""sparse24: 2:4 weight and V:N:M activation sparsity for FFNs in LLM pre-training (sparse, then dense).

Masks and validators (:mod:`.masks`), packed formats and checkpoints (:mod:`.formats`), autograd
layers (:mod:`.layers`), the two-way swap :func:`sparsify_ffn` / :func:`densify`, the schedule with
telemetry, backends (with the mask-independent cuSPARSELt packing rule of :mod:`.packing`) and a
tiny Llama. Names are imported on first use, so ``frugal --help`` and
``import frugalml.sparse24`` do not load torch.
"""

from frugalml.common.exports import lazy_exports

_EXPORTS = {
    "autograd": ("sparse_weight", "sparsify_activations"),
    "backends": (
        "PackedLayout",
        "available_backends",
        "check_backend",
        "fused_greedy_prune",
        "vnm_gather_matmul",
    ),
    "formats": (
        "Packed",
        "load_checkpoint",
        "pack_24",
        "pack_vnm",
        "save_checkpoint",
        "unpack_24",
        "unpack_vnm",
    ),
    "layers": ("MoEFFN", "SparseLinear", "SparsityConfig", "SquaredReLUFFN", "SwiGLUFFN"),
    "masks": (
        "VNM",
        "is_24",
        "is_transposable_24",
        "is_vnm",
        "kept_fraction",
        "mask_24",
        "mvue_24",
        "soft_threshold_24",
        "sste_beta",
        "transposable_mask_24",
        "vnm_columns",
        "vnm_mask",
    ),
    "model": ("LlamaConfig", "TinyLlama"),
    "packing": ("ShapeRule", "rule_layout", "shape_rule"),
    "schedule": ("SparsitySchedule", "telemetry"),
    "swap": ("densify", "export_sparse_state", "find_ffns", "sparsify_ffn"),
    "vnm_kernel": ("triton_status", "vnm_triton_matmul"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
