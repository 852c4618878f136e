"""maskedmm: C = A @ B on dense arrays full of run-time zeros, faster than BLAS by skipping them."""

from frugalml.maskedmm.core import (
    PreparedB,
    SparseRows,
    Stats,
    matmul,
    plan,
    prepare_b,
    reset_stats,
    sparse_rows,
    stats,
)
from frugalml.maskedmm.oracle import reference_matmul
from frugalml.maskedmm.planner import Plan, calibrate

__all__ = [
    "Plan",
    "PreparedB",
    "SparseRows",
    "Stats",
    "calibrate",
    "matmul",
    "plan",
    "prepare_b",
    "reference_matmul",
    "reset_stats",
    "sparse_rows",
    "stats",
]
