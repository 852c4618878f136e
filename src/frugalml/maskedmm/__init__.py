"""maskedmm: C = A @ B on dense arrays full of run-time zeros, faster than BLAS by skipping them."""

from frugalml.maskedmm.core import PreparedB, Stats, matmul, plan, prepare_b, reset_stats, stats
from frugalml.maskedmm.oracle import reference_matmul
from frugalml.maskedmm.planner import Plan, calibrate

__all__ = ["Plan", "PreparedB", "Stats", "calibrate", "matmul", "plan", "prepare_b",
           "reference_matmul", "reset_stats", "stats"]
