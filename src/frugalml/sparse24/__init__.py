"""sparse24: 2:4 weight and V:N:M activation sparsity for FFNs in LLM pre-training (sparse, then dense).

Masks and validators, packed formats and checkpoints, autograd layers, the two-way swap
(:func:`sparsify_ffn` / :func:`densify`), the schedule with telemetry, backends and a tiny Llama.
"""

from frugalml.sparse24.autograd import mvue_24, sparse_weight, sparsify_activations
from frugalml.sparse24.backends import available_backends, check_backend, vnm_gather_matmul
from frugalml.sparse24.formats import (
    Packed,
    load_checkpoint,
    pack_24,
    pack_vnm,
    save_checkpoint,
    unpack_24,
    unpack_vnm,
)
from frugalml.sparse24.layers import MoEFFN, SparseLinear, SparsityConfig, SquaredReLUFFN, SwiGLUFFN
from frugalml.sparse24.masks import (
    VNM,
    is_24,
    is_transposable_24,
    is_vnm,
    kept_fraction,
    mask_24,
    soft_threshold_24,
    sste_beta,
    transposable_mask_24,
    vnm_columns,
    vnm_mask,
)
from frugalml.sparse24.model import LlamaConfig, TinyLlama
from frugalml.sparse24.schedule import SparsitySchedule, telemetry
from frugalml.sparse24.swap import densify, export_sparse_state, find_ffns, sparsify_ffn

__all__ = [
    "VNM", "LlamaConfig", "MoEFFN", "Packed", "SparseLinear", "SparsityConfig", "SparsitySchedule",
    "SquaredReLUFFN", "SwiGLUFFN", "TinyLlama", "available_backends", "check_backend", "densify",
    "export_sparse_state", "find_ffns", "is_24", "is_transposable_24", "is_vnm", "kept_fraction",
    "load_checkpoint", "mask_24", "mvue_24", "pack_24", "pack_vnm", "save_checkpoint",
    "soft_threshold_24", "sparse_weight", "sparsify_activations", "sparsify_ffn", "sste_beta",
    "telemetry", "transposable_mask_24", "unpack_24", "unpack_vnm", "vnm_columns",
    "vnm_gather_matmul", "vnm_mask",
]
