"""Measure this machine's costs for the planner behind ``method="auto"`` and cache them.

Each kernel is timed on one thread (this thread's CPU time, min of N: robust to other load) on
random operands at a few densities; non-negative least squares turns the timings into the cost per
unit of work that :class:`frugalml.maskedmm.planner.Calibration` holds, and the fits' relative
errors set the margin a skipping method must win by.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from frugalml.maskedmm import backend, numba_kernels, planner
from frugalml.maskedmm.codegen_kernels import ROW_BLOCKS
from frugalml.maskedmm.core import PreparedB, matmul, prepare_b, sparse_rows
from frugalml.maskedmm.planner import Calibration, masked_work, rows_work

SPARSE_FIT_UP_TO = 0.15  # the sparse kernel's costs are fitted where it can win (B's rows then fit L2)
DENSITIES = (0.4, 0.15, 0.08, 0.03, 0.01)  # of the operands the kernels are timed on
GAIN_OPERAND = 2  # DENSITIES[2] (8% non-zero) measures the masked kernel's gain from a 2nd thread


def calibrate(size: int = 1024, *, save: bool = True, quiet: bool = True) -> Calibration:
    """Measure this machine's costs on one thread and cache them (atomically) for the planner."""
    from threadpoolctl import threadpool_limits

    from frugalml.common.progress import progress

    isa = backend.choose_isa()
    gen = np.random.default_rng(0)
    cal = Calibration(measured=True)
    steps = ["dense", "maps", *[f"masked r{r}" for r in ROW_BLOCKS], "row-skip", "sparse"]
    with threadpool_limits(limits=1):
        bar = iter(progress(steps, desc="calibrating", quiet=quiet))
        next(bar)
        A = gen.standard_normal((size, size)).astype(np.float32)
        cal.dense_per_mac = _best_time(lambda: A @ A) / size**3
        next(bar)
        _measure_maps(cal, A, isa)
        operands = [(_sparse_like(gen, size, d), d) for d in DENSITIES]
        errors = [_relative_spread([_best_time(lambda: A @ A, 1) for _ in range(5)])]
        errors += _fit_masked(cal, operands, isa, bar)
        next(bar)
        if isa != backend.NUMBA:
            errors.append(_fit_rows(cal, operands, isa))
        next(bar)
        errors.append(_fit_sparse(cal, [(X, d) for X, d in operands if d <= SPARSE_FIT_UP_TO], isa))
        cal.model_error = max(errors)
        for _ in bar:
            pass
    cal.masked_parallel_gain = _parallel_gain(operands[GAIN_OPERAND][0], isa)
    planner.use_calibration(cal, save=save)
    return cal


def _fit(work: Sequence[Sequence[float]], times: Sequence[float]) -> tuple[np.ndarray, float]:
    """Non-negative least squares of ``times`` on the ``work`` counts: (cost per unit of each
    count, the fit's relative RMS error)."""
    from scipy.optimize import nnls

    work_array, time_array = np.array(work, float), np.array(times)
    coef, _ = nnls(work_array, time_array)
    return coef, float(np.sqrt(np.mean((work_array @ coef / time_array - 1.0) ** 2)))


def _measure_maps(cal: Calibration, A: np.ndarray, isa: str) -> None:
    """A's bitmap pass and B's packing, per entry (nominal costs for the numba fallback)."""
    if isa == backend.NUMBA:
        cal.map_per_entry = cal.pack_per_entry = 2e-9
    else:
        bits = np.empty((A.shape[0], -(-A.shape[1] // 64)), np.uint64)
        cal.map_per_entry = (
            _best_time(lambda: backend.extension.a_maps(A, 0.0, None, bits, None, isa, 1)) / A.size
        )
        cal.pack_per_entry = _best_time(lambda: prepare_b(A, isa=isa, threads=1), 2) / A.size
    cal.call_overhead = _call_overhead()


def _fit_masked(cal: Calibration, operands, isa: str, bar) -> list[float]:
    """The tile kernel's per-call and per-iteration costs for each row block; the fits' errors."""
    width = backend.segment_width(isa, "f32")
    errors = []
    for row_block in ROW_BLOCKS:
        next(bar)
        work, times = [], []
        for X, d in operands:
            iters, _, tiles = masked_work(X.shape + X.shape[1:], width, row_block, d, d)
            work.append((tiles, iters))
            times.append(_time_masked(X, isa, row_block))
        coef, error = _fit(work, times)
        cal.per_call[row_block], cal.per_iteration[row_block] = float(coef[0]), float(coef[1])
        errors.append(error)
    return errors


def _fit_rows(cal: Calibration, operands, isa: str) -> float:
    """The row-skip kernel's per-iteration and per-word costs; the fit's error."""
    width = backend.segment_width(isa, "f32")
    work = [rows_work(X.shape + X.shape[1:], isa, width, d) for X, d in operands]
    coef, error = _fit(work, [_time_rows(X, isa) for X, _ in operands])
    cal.rows_per_iteration, cal.rows_per_word = float(coef[0]), float(coef[1])
    return error


def _fit_sparse(cal: Calibration, operands, isa: str) -> float:
    """The sparse kernel's CSR build, per-product, per-non-zero and per-output costs; the fit's error."""
    cal.csr_per_entry, work, times = _time_sparse(operands, isa)
    coef, error = _fit(work, times)
    cal.spgemm_per_flop, cal.spgemm_per_nonzero, cal.spgemm_per_output = (float(c) for c in coef)
    return error


def _best_time(fn: Callable[[], object], repeats: int = 5) -> float:
    """Min-of-N CPU time of this thread (calibration runs single-threaded), robust to other load."""
    best = np.inf
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return float(best)


def _parallel_gain(X: np.ndarray, isa: str) -> float:
    """Fraction of a second thread the masked kernel turned into speed (wall clock, min of 5)."""
    if isa == backend.NUMBA or (os.cpu_count() or 1) < 2:
        return 0.0
    prepared, bits, out = prepare_b(X, isa=isa, threads=2), _a_bits(X, isa), np.empty_like(X)
    times = {}
    for threads in (1, 2):
        times[threads] = min(
            _wall(functools.partial(_multiply, X, bits, prepared, out, isa, 2, threads)) for _ in range(5)
        )
    return float(np.clip(times[1] / times[2] - 1.0, 0.0, 1.0))


def _wall(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _a_bits(X: np.ndarray, isa: str) -> np.ndarray:
    bits = np.empty((X.shape[0], -(-X.shape[1] // 64)), np.uint64)
    backend.extension.a_maps(X, 0.0, None, bits, None, isa, 1)
    return bits


def _relative_spread(samples: list[float]) -> float:
    """Relative standard deviation of repeated timings (how far one run may be off).

    Examples
    --------
    >>> _relative_spread([1.0, 1.0, 1.0])
    0.0
    """
    return float(np.std(samples) / np.median(samples))


def _sparse_like(gen: np.random.Generator, size: int, density: float) -> np.ndarray:
    X = gen.standard_normal((size, size)).astype(np.float32)
    X[gen.random((size, size)) >= density] = 0
    return X


def _time_rows(X: np.ndarray, isa: str) -> float:
    prepared, bits, out = prepare_b(X, isa=isa, threads=1), _a_bits(X, isa), np.empty_like(X)
    return _best_time(
        lambda: backend.extension.multiply_rows(X, bits, prepared.panels, prepared.width, out, isa, 1)
    )


def _call_overhead() -> float:
    """Seconds of a skipping method's call beyond its kernels: the cheaper of a masked and a
    sparse multiply of 8 x 8 operands (checks, maps, allocations, Python), best of 20."""
    X = np.eye(8, dtype=np.float32)
    return min(
        _best_time(functools.partial(matmul, X, X, method=method, threads=1), 20)
        for method in ("masked", "sparse")
    )


def _time_sparse(operands, isa: str) -> tuple[float, list[tuple[float, float, float]], list[float]]:
    """The sparse kernel on each operand times itself: (CSR build seconds per entry of B, each
    run's (element products, non-zeros of A, outputs), their times). B's rows are built once."""
    per_entry, work, times = [], [], []
    for X, _ in operands:
        per_entry.append(_best_time(functools.partial(sparse_rows, X, isa=isa, threads=1), 3) / X.size)
        rows, out = sparse_rows(X, isa=isa, threads=1), np.empty_like(X)
        if isa == backend.NUMBA:
            bits, _ = numba_kernels.a_maps(X)

            def run(X=X, bits=bits, rows=rows, out=out):
                return numba_kernels.spgemm(X, bits, rows.indptr, rows.indices, rows.values, out)
        else:
            bits = _a_bits(X, isa)

            def run(X=X, bits=bits, rows=rows, out=out):
                return backend.extension.spgemm(
                    X, bits, 0.0, rows.indptr, rows.indices, rows.values, out, isa, 1
                )[:2]

        products, nonzeros = (float(c) for c in run())
        work.append((products, nonzeros, float(X.size)))
        times.append(_best_time(run))
    return float(np.median(per_entry)), work, times


def _time_masked(X: np.ndarray, isa: str, row_block: int) -> float:
    prepared = prepare_b(X, isa=isa, threads=1)
    out = np.empty_like(X)
    if isa == backend.NUMBA:
        bits, _ = numba_kernels.a_maps(X)

        def run():
            return numba_kernels.multiply(
                X, bits, prepared.panels, prepared.segment_bits, prepared.width, X.shape[1], out, row_block
            )
    else:
        bits = _a_bits(X, isa)

        def run():
            return _multiply(X, bits, prepared, out, isa, row_block, 1)

    return _best_time(run)


def _multiply(
    X: np.ndarray,
    bits: np.ndarray,
    prepared: PreparedB,
    out: np.ndarray,
    isa: str,
    row_block: int,
    threads: int,
):
    """The C tile kernel: out = X @ X (B prepared from X), ``row_block`` rows at a time."""
    return backend.extension.multiply(
        X,
        bits,
        prepared.panels,
        prepared.segment_bits,
        prepared.width,
        X.shape[1],
        out,
        isa,
        row_block,
        threads,
    )
