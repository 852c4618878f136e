"""Check every kernel variant (ISA x dtype x kernel, and numba) against the numpy oracle."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from frugalml.common.seeding import rng
from frugalml.maskedmm import backend, core
from frugalml.maskedmm.codegen_kernels import ROW_BLOCKS
from frugalml.maskedmm.oracle import reference_matmul

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


@dataclass(frozen=True)
class Check:
    """One variant's worst error over its trials, relative to sum(|A| @ |B|)."""

    variant: str
    trials: int
    worst_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.worst_error <= self.tolerance


def variants() -> list[str]:
    """Every kernel variant this machine can run."""
    names = [f"{isa}" for isa in backend.supported_isas()]
    return names + [backend.NUMBA]


def relative_error(C: np.ndarray, A, B, **filters) -> float:
    """max |C - oracle| / max(|A| @ |B|) (0 when both are zero)."""
    ref = reference_matmul(A, B, **filters)
    scale = float((np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64)).max()) or 1.0
    return float(np.abs(C.astype(np.float64) - ref).max()) / scale


SPARSE = "sparse"  # run_variant's name for the element-level kernel


def run_variant(variant: str, A, B, row_block: int | str | None, **filters) -> np.ndarray:
    """Multiply with one forced kernel variant (``numba`` forces the fallback); ``row_block``
    picks the tile kernel's row block, None the row-skip kernel, ``"sparse"`` the element-level
    one."""
    previous = os.environ.get(backend.ISA_ENV)
    try:
        os.environ[backend.ISA_ENV] = variant
        ops = core.check_operands(
            A, B, filters.get("a_mask"), filters.get("b_mask"), filters.get("threshold", 0.0)
        )
        if row_block == SPARSE:
            return core._sparse(ops, None)
        return core._masked(ops, None, row_block, "tiles" if row_block else "rows")
    finally:
        if previous is None:
            os.environ.pop(backend.ISA_ENV, None)
        else:
            os.environ[backend.ISA_ENV] = previous


def random_case(gen: np.random.Generator, dtype) -> tuple[np.ndarray, np.ndarray, dict]:
    """Random shapes (1, primes, ragged edges), orders, sparsities and filters."""
    m, k, n = (int(gen.choice([1, 2, 3, 7, 13, 17, 31, 64, 67, 97, 130])) for _ in range(3))
    A = gen.standard_normal((m, k)).astype(dtype)
    B = gen.standard_normal((k, n)).astype(dtype)
    A[gen.random(A.shape) < gen.choice([0.0, 0.5, 0.9, 1.0])] = 0
    B[gen.random(B.shape) < gen.choice([0.0, 0.5, 0.9, 1.0])] = 0
    if gen.random() < 0.5:
        A = np.asfortranarray(A)
    if gen.random() < 0.5:
        B = np.asfortranarray(B)
    filters: dict = {}
    if gen.random() < 0.3:
        filters["threshold"] = 0.5
    if gen.random() < 0.3:
        filters["a_mask"] = gen.random(A.shape) < 0.7
        filters["b_mask"] = gen.random(B.shape) < 0.7
    return A, B, filters


def verify(trials: int = 20, seed: int = 0, chosen: list[str] | None = None) -> list[Check]:
    """Run ``trials`` random cases per variant, dtype and kernel (the row-skip one, the tile one
    per row block, the element-level sparse one); return the worst errors."""
    gen = rng(seed)
    checks = []
    for variant in chosen or variants():
        for dtype in (np.float32, np.float64):
            for row_block in (None, *ROW_BLOCKS, SPARSE):
                if row_block is None and variant == backend.NUMBA:
                    continue  # the numba fallback has the tile kernel only
                worst = 0.0
                for _ in range(trials):
                    A, B, filters = random_case(gen, dtype)
                    C = run_variant(variant, A, B, row_block, **filters)
                    worst = max(worst, relative_error(C, A, B, **filters))
                kernel = {None: "row-skip", SPARSE: SPARSE}.get(row_block, f"r{row_block}")
                checks.append(
                    Check(f"{variant} {np.dtype(dtype).name} {kernel}", trials, worst, TOLERANCE[dtype])
                )
    return checks
