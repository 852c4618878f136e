"""``matmul``, ``prepare_b``, ``plan`` and ``stats``: C = A @ B on dense arrays full of run-time zeros."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.threads import blas_threads, check_threads, usable_cores
from frugalml.common.validate import as_array, one_of
from frugalml.maskedmm import backend, numba_kernels, planner
from frugalml.maskedmm.codegen_kernels import SEGMENTS
from frugalml.maskedmm.oracle import effective

METHODS = ("auto", "dense", "masked", "sparse")
KERNELS = ("rows", "tiles")  # the masked method's row-skip and pattern-table tile kernels
DTYPE_CODES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


@dataclass
class Stats:
    """Work counters since the last :func:`reset_stats`, standing in for instruction counts.

    A vector FMA multiplies one broadcast element of A by one vector segment of B (for the sparse
    method: one vector's worth of element products, as its gather-FMA-scatter does). ``dense``
    counts what a dense kernel of the same vector width executes for the same calls.
    """

    calls: dict[str, int] = field(default_factory=dict)
    vector_fmas_executed: int = 0
    vector_fmas_dense: int = 0
    iterations: int = 0
    dispatches: int = 0

    @property
    def vector_fmas_skipped(self) -> int:
        return self.vector_fmas_dense - self.vector_fmas_executed

    @property
    def fma_reduction(self) -> float:
        """Dense vector FMAs per executed one (4.0 means four times fewer)."""
        return self.vector_fmas_dense / self.vector_fmas_executed if self.vector_fmas_executed else math.inf

    def to_dict(self) -> dict:
        return {
            "calls": dict(self.calls),
            "vector_fmas_executed": self.vector_fmas_executed,
            "vector_fmas_dense": self.vector_fmas_dense,
            "vector_fmas_skipped": self.vector_fmas_skipped,
            "fma_reduction": self.fma_reduction,
            "iterations": self.iterations,
            "dispatches": self.dispatches,
        }


_stats = Stats()
_stats_lock = threading.Lock()


def stats() -> Stats:
    """A snapshot of the work counters (FMAs executed vs. skipped, dispatches, calls per method)."""
    with _stats_lock:
        return Stats(
            dict(_stats.calls),
            _stats.vector_fmas_executed,
            _stats.vector_fmas_dense,
            _stats.iterations,
            _stats.dispatches,
        )


def reset_stats() -> None:
    """Zero the work counters."""
    global _stats
    with _stats_lock:
        _stats = Stats()


def _record(method: str, dense: int, executed: int, iterations: int = 0, dispatches: int = 0) -> None:
    with _stats_lock:
        _stats.calls[method] = _stats.calls.get(method, 0) + 1
        _stats.vector_fmas_dense += dense
        _stats.vector_fmas_executed += executed
        _stats.iterations += iterations
        _stats.dispatches += dispatches


@dataclass(eq=False)
class PreparedB:
    """B packed into panels with its sparsity maps, reusable across calls (static weights).

    Made by :func:`prepare_b`. It holds a filtered copy of B (threshold and mask applied when it
    was prepared); the original array is not referenced.
    """

    shape: tuple[int, int]
    dtype: np.dtype
    isa: str
    width: int
    threshold: float
    panels: np.ndarray
    segment_bits: np.ndarray
    nnz: int
    nonzero_segments: int
    _dense: np.ndarray | None = field(default=None, repr=False)
    _rows: SparseRows | None = field(default=None, repr=False)

    @property
    def density(self) -> float:
        """Fraction of B's entries that are non-zero (after threshold and mask)."""
        return self.nnz / (self.shape[0] * self.shape[1])

    @property
    def segment_density(self) -> float:
        """Fraction of B's vector segments holding at least one non-zero."""
        return self.nonzero_segments / (self.shape[0] * self.panels.shape[0] * SEGMENTS)

    def dense(self) -> np.ndarray:
        """The filtered B as a dense C-ordered array (built once, then cached)."""
        if self._dense is None:
            k, n = self.shape
            self._dense = np.ascontiguousarray(self.panels.transpose(1, 0, 2).reshape(k, -1)[:, :n])
        return self._dense

    def sparse_rows(self) -> SparseRows:
        """The filtered B's non-zeros row by row, for the sparse method (built once, then cached;
        :func:`prepare_b` builds them up front when B is at most half non-zero)."""
        if self._rows is None:
            self._rows = sparse_rows(self.dense(), isa=self.isa)
        return self._rows


@dataclass(frozen=True)
class SparseRows:
    """A matrix's non-zeros row by row (CSR): row k's column numbers and values are
    ``indices[indptr[k]:indptr[k + 1]]`` and ``values[...]``, columns ascending."""

    shape: tuple[int, int]
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])


def sparse_rows(
    B, *, b_mask=None, threshold: float = 0.0, isa: str | None = None, threads: int | None = None
) -> SparseRows:
    """B's entries with ``|b| > threshold`` inside ``b_mask`` as CSR rows, built in C (two passes:
    count, then fill); raises InvalidInputError on NaN/inf in B or more than 2**31 - 1 columns."""
    B = _matrix(B, "B")
    mask = _mask(b_mask, B.shape, "b_mask")
    threshold = _threshold(threshold)
    chosen = backend.choose_isa(isa)
    k, n = B.shape
    if n >= 2**31 - 1:
        raise InvalidInputError(
            f"B has {n} columns; the sparse method indexes columns with int32 "
            "(at most 2**31 - 2), use method='masked'"
        )
    if chosen == backend.NUMBA:
        filtered = effective(B, mask, threshold) if (mask is not None or threshold > 0) else B
        _require_finite(filtered, "B")
        rows, cols = np.nonzero(filtered)
        indptr = np.zeros(k + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=k), out=indptr[1:])
        return SparseRows((k, n), indptr, cols.astype(np.int32), filtered[rows, cols])
    indptr = np.empty(k + 1, np.int64)
    mask_bytes = None if mask is None else mask.view(np.uint8)
    count = _threads(threads)
    nnz, bad = backend.extension.csr_count(B, threshold, mask_bytes, indptr, chosen, count)
    if bad:
        raise _nonfinite_error("B", bad)
    indices, values = np.empty(nnz, np.int32), np.empty(nnz, B.dtype)
    backend.extension.csr_fill(B, threshold, mask_bytes, indptr, indices, values, chosen, count)
    return SparseRows((k, n), indptr, indices, values)


def _matrix(x, name: str) -> np.ndarray:
    arr = as_array(x, name, ndim=2, allow_nan=True)  # NaN/inf are counted by the map pass
    if arr.dtype not in DTYPE_CODES:
        raise InvalidInputError(
            f"{name} has dtype {arr.dtype}; maskedmm multiplies float32 or float64 arrays, "
            f"convert with {name}.astype(numpy.float32)"
        )
    return arr


def _mask(mask, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise InvalidInputError(
            f"{name} must be a boolean array (True = entry may be non-zero), "
            f"got dtype {arr.dtype}; convert with {name}.astype(bool)"
        )
    if arr.shape != shape:
        raise InvalidInputError(f"{name} has shape {arr.shape} but its operand has shape {shape}")
    return arr


def _threshold(threshold) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise InvalidInputError(f"threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"threshold must be finite and >= 0, got {threshold!r}")
    return value


def _threads(threads) -> int:
    """``threads`` checked, or all usable cores when None."""
    return check_threads(threads) or usable_cores()


def _nonfinite_error(name: str, count: int) -> InvalidInputError:
    return InvalidInputError(
        f"{name} contains {count} NaN or infinite value(s); a masked multiply treats zeros as exact "
        "(0 * inf would be NaN), so clean them first or use method='dense' without a threshold"
    )


ROWS_UP_FRONT_BELOW = 0.5  # prepare_b builds B's CSR rows when they take no more memory than B


def prepare_b(
    B, *, b_mask=None, threshold: float = 0.0, isa: str | None = None, threads: int | None = None
) -> PreparedB:
    """Pack B into panels with its sparsity maps (and, when B is at most half non-zero, its CSR
    rows for the sparse method), to reuse across many ``matmul`` calls.

    Parameters
    ----------
    B : array-like, float32 or float64, shape (K, N)
    b_mask : bool array of shape (K, N), optional
        False marks entries to treat as zero whatever their value.
    threshold : float
        Entries with ``|b| <= threshold`` are treated as zero.
    isa : {"avx512", "avx2", "scalar"}, optional
        Kernel variant the packing is for (default: the best this CPU runs, or
        ``$FRUGAL_MASKEDMM_ISA``).
    threads : int, optional
        OpenMP threads (default: all usable cores).

    Raises
    ------
    InvalidInputError
        Wrong dtype or dimensions, a mask of the wrong shape, a bad threshold, NaN/inf in B.

    Examples
    --------
    >>> W = prepare_b(np.eye(4, dtype=np.float32))
    >>> float(matmul(np.ones((2, 4), np.float32), W).sum())
    8.0
    """
    prepared = _pack_b(B, b_mask=b_mask, threshold=threshold, isa=isa, threads=threads)
    if prepared.density <= ROWS_UP_FRONT_BELOW:
        prepared._rows = sparse_rows(prepared.dense(), isa=prepared.isa, threads=threads)
    return prepared


def _pack_b(
    B, *, b_mask=None, threshold: float = 0.0, isa: str | None = None, threads: int | None = None
) -> PreparedB:
    """:func:`prepare_b` without the CSR rows (the masked method's per-call packing)."""
    B = _matrix(B, "B")
    mask = _mask(b_mask, B.shape, "b_mask")
    threshold = _threshold(threshold)
    chosen = backend.choose_isa(isa)
    code = DTYPE_CODES[B.dtype]
    width = backend.segment_width(chosen, code)
    k, n = B.shape
    npanels, nwords = -(-n // (width * SEGMENTS)), -(-k // 64)
    if chosen == backend.NUMBA:
        filtered = effective(B, mask, threshold) if (mask is not None or threshold > 0) else B
        bad = int(np.count_nonzero(~np.isfinite(filtered)))
        panels, sbits = numba_kernels.pack_b(np.ascontiguousarray(filtered), width)
        nnz = int(np.count_nonzero(filtered))
        segments = int(np.count_nonzero(panels.reshape(npanels, k, SEGMENTS, width).any(axis=3)))
    else:
        panels = np.empty((npanels, k, width * SEGMENTS), B.dtype)
        sbits = np.zeros((npanels, SEGMENTS + 1, nwords), np.uint64)
        mask_bytes = None if mask is None else mask.view(np.uint8)
        nnz, bad, segments = backend.extension.pack_b(
            B, threshold, mask_bytes, width, panels, sbits, _threads(threads)
        )
    if bad:
        raise _nonfinite_error("B", bad)
    return PreparedB((k, n), B.dtype, chosen, width, threshold, panels, sbits, nnz, segments)


@dataclass(frozen=True)
class Operands:
    """Checked inputs of one multiply."""

    A: np.ndarray
    B: np.ndarray | None
    prepared: PreparedB | None
    a_mask: np.ndarray | None
    b_mask: np.ndarray | None
    threshold: float
    threads: int
    blas_threads: int | None

    @property
    def shape(self) -> tuple[int, int, int]:
        k, n = self.prepared.shape if self.prepared is not None else self.b.shape
        return self.A.shape[0], k, n

    @property
    def b(self) -> np.ndarray:
        """B as given, when it is not prepared."""
        if self.B is None:
            raise TypeError("B is prepared; use Operands.prepared")
        return self.B

    @property
    def b_values(self) -> np.ndarray:
        """The array holding B's values: B as given, or a prepared B's panels."""
        return self.prepared.panels if self.prepared is not None else self.b

    @property
    def filters_a(self) -> bool:
        return self.a_mask is not None or self.threshold > 0

    @property
    def filters_b(self) -> bool:
        return self.prepared is None and (self.b_mask is not None or self.threshold > 0)


def check_operands(A, B, a_mask=None, b_mask=None, threshold=0.0, threads=None) -> Operands:
    """Validate everything about a multiply in one place; raise InvalidInputError on bad input."""
    A = _matrix(A, "A")
    prepared = B if isinstance(B, PreparedB) else None
    if prepared is None:
        B = _matrix(B, "B")
        k, _ = B.shape
        b_dtype = B.dtype
    else:
        if b_mask is not None:
            raise InvalidInputError("b_mask belongs to prepare_b when B is prepared; pass it there")
        B, (k, _), b_dtype = None, prepared.shape, prepared.dtype
    if A.shape[1] != k:
        raise InvalidInputError(
            f"A has shape {A.shape} and B has {k} rows; A @ B needs A's "
            f"columns ({A.shape[1]}) to equal B's rows"
        )
    if A.dtype != b_dtype:
        raise InvalidInputError(f"A is {A.dtype} and B is {b_dtype}; cast both to one dtype")
    a_mask = _mask(a_mask, A.shape, "a_mask")
    b_mask = _mask(b_mask, B.shape, "b_mask") if B is not None else None
    return Operands(
        A,
        B,
        prepared,
        a_mask,
        b_mask,
        _threshold(threshold),
        _threads(threads),
        None if threads is None else int(threads),
    )


def _check_out(out, ops: Operands) -> np.ndarray:
    m, _, n = ops.shape
    if not isinstance(out, np.ndarray):
        raise InvalidInputError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != (m, n) or out.dtype != ops.A.dtype:
        raise InvalidInputError(
            f"out must have shape {(m, n)} and dtype {ops.A.dtype}, got {out.shape} {out.dtype}"
        )
    if not out.flags.writeable:
        raise InvalidInputError("out is read-only; pass a writable array")
    others = [ops.A] + ([ops.B] if ops.B is not None else [])
    if any(np.may_share_memory(out, x) for x in others):
        raise InvalidInputError("out overlaps an input; pass a separate array (inputs are never modified)")
    return out


def matmul(
    A,
    B,
    *,
    a_mask=None,
    b_mask=None,
    threshold: float = 0.0,
    method: str = "auto",
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """C = A @ B, skipping the products whose factors are zero.

    Parameters
    ----------
    A : array-like, float32 or float64, shape (M, K)
        C- or F-ordered, any strides.
    B : array-like of shape (K, N) with A's dtype, or a :class:`PreparedB`
    a_mask, b_mask : bool arrays shaped like A and B, optional
        False marks entries to treat as zero whatever their value.
    threshold : float
        Entries with ``|x| <= threshold`` are treated as zero (in A, and in B unless prepared;
        a prepared B keeps the threshold given to :func:`prepare_b`).
    method : {"auto", "dense", "masked", "sparse"}
        ``auto`` asks the planner (cost model calibrated per machine); ``dense`` is numpy's BLAS,
        ``masked`` the C kernels, ``sparse`` our element-level product (Gustavson, B as CSR
        rows built in C; a prepared B keeps them).
    threads : int, optional
        Threads for our kernels and, when given, BLAS (default: all usable cores).
    out : ndarray, optional
        Where to write C (shape (M, N), A's dtype, not overlapping the inputs).

    Returns
    -------
    ndarray of shape (M, N)

    Raises
    ------
    InvalidInputError
        Shape or dtype mismatch, masks of the wrong shape or dtype, a bad threshold or thread
        count, NaN/inf in an operand (except for ``method="dense"`` without a threshold or masks).

    Examples
    --------
    >>> A = np.array([[0.0, 2.0], [0.0, 0.0]], np.float32)
    >>> matmul(A, np.ones((2, 3), np.float32), method="masked")
    array([[2., 2., 2.],
           [0., 0., 0.]], dtype=float32)
    """
    if method == "auto" and out is None and a_mask is None and b_mask is None and _is_zero(threshold):
        result = _auto_dense(A, B, threads)
        if result is not None:
            return result
    method = one_of(method, METHODS, "method")
    ops = check_operands(A, B, a_mask, b_mask, threshold, threads)
    if out is not None:
        out = _check_out(out, ops)
    chosen = plan_operands(ops) if method == "auto" else None
    if chosen is not None and chosen.method == "dense":
        return _checked_dense(ops, out)
    if method == "dense":
        return _dense(ops, out)
    if (chosen.method if chosen else method) == "sparse":
        return _sparse(ops, out)
    if chosen is None:
        return _masked(ops, out)
    return _masked(ops, out, chosen.row_block, chosen.kernel)


def _is_zero(threshold) -> bool:
    return type(threshold) in (float, int) and threshold == 0


def _auto_dense(A, B, threads) -> np.ndarray | None:
    """``auto`` when it picks dense BLAS: one C call (densities sampled, the planner's cost model)
    before numpy's matmul, then a C check of C's first row and column for NaN/inf.

    Returns None, having done nothing, when the planner picks another method or the inputs need
    the general path's checks (not float arrays, masks, a threshold, ``out``, no C extension).
    """
    extension = backend.extension
    if extension is None or type(A) is not np.ndarray or A.ndim != 2 or A.size == 0:
        return None
    code = DTYPE_CODES.get(A.dtype)
    if code is None or (threads is not None and (type(threads) is not int or threads < 1)):
        return None
    m, k = A.shape
    if type(B) is np.ndarray:
        if B.ndim != 2 or B.dtype != A.dtype or B.size == 0 or B.shape[0] != k:
            return None
        n, b_density = B.shape[1], 0.0
    elif type(B) is PreparedB:
        if B.dtype != A.dtype or B.shape[0] != k:
            return None
        n, b_density = B.shape[1], B.density
    else:
        return None
    isa = backend.choose_isa()
    if isa == backend.NUMBA:
        return None
    params = planner.auto_params((m, k, n), code, isa, type(B) is PreparedB, _threads(threads), False)
    if not extension.auto_dense(A, B if type(B) is np.ndarray else None, 0.0, b_density, params):
        return None
    b = B if type(B) is np.ndarray else B.dense()
    with np.errstate(over="ignore", invalid="ignore"), blas_threads(threads):  # NaN: refused below
        result = np.matmul(A, b)
    dense = _vector_fmas(m, k, n, isa, code)
    _record("dense", dense, dense)
    _refuse_nonfinite(result, A, B if type(B) is np.ndarray else B.panels)
    return result


def plan(
    A, B, *, a_mask=None, b_mask=None, threshold: float = 0.0, threads: int | None = None
) -> planner.Plan:
    """The method ``method="auto"`` would pick for these operands, with every cost estimate."""
    return plan_operands(check_operands(A, B, a_mask, b_mask, threshold, threads))


def plan_operands(ops: Operands) -> planner.Plan:
    isa = backend.choose_isa()
    if ops.prepared is not None:
        b_density, b_error = ops.prepared.density, 0.0
    else:
        b_density, b_error = planner.density_estimate(ops.b, ops.threshold)
    a_density, a_error = planner.density_estimate(ops.A, ops.threshold)
    return planner.choose(
        shape=ops.shape,
        dtype_code=DTYPE_CODES[ops.A.dtype],
        isa=isa,
        a_density=a_density,
        b_density=b_density,
        b_prepared=ops.prepared is not None,
        threads=ops.threads,
        filters=ops.filters_a or ops.filters_b,
        a_error=a_error,
        b_error=b_error,
    )


def _require_finite(x: np.ndarray, name: str) -> None:
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise _nonfinite_error(name, bad)


def _checked_dense(ops: Operands, out: np.ndarray | None) -> np.ndarray:
    """Dense for ``auto``: refuses NaN/inf like the skipping methods, at O(M + N) cost."""
    with np.errstate(over="ignore", invalid="ignore"):  # refused below: no warning on top
        result = _dense(ops, out)
    _refuse_nonfinite(result, ops.A, ops.b_values)
    return result


def _refuse_nonfinite(result: np.ndarray, A: np.ndarray, B: np.ndarray) -> None:
    """Raise if the dense product ``result`` of ``A`` and ``B`` came from NaN/inf inputs.

    BLAS multiplies every pair (OpenBLAS and MKL do not skip zeros), so a non-finite A[i, k]
    makes all of row i of C non-finite (inf * 0 is NaN) and a non-finite B[k, j] all of column
    j: C's first column and first row reveal any. Only then are the inputs scanned, to tell
    bad input from an overflow of finite values (which is returned as numpy returns it).
    """
    extension = backend.extension
    if extension is not None:
        finite = extension.edges_finite(result)
    else:
        finite = np.isfinite(result[0]).all() and np.isfinite(result[:, 0]).all()
    if not finite:
        _require_finite(A, "A")
        _require_finite(B, "B")


def _effective_a(ops: Operands) -> np.ndarray:
    if not ops.filters_a:
        return ops.A
    _require_finite(ops.A, "A")
    return effective(ops.A, ops.a_mask, ops.threshold)


def _effective_b(ops: Operands) -> np.ndarray:
    if ops.prepared is not None:
        return ops.prepared.dense()
    if not ops.filters_b:
        return ops.b
    _require_finite(ops.b, "B")
    return effective(ops.b, ops.b_mask, ops.threshold)


def _dense_fmas(ops: Operands) -> int:
    return _vector_fmas(*ops.shape, backend.choose_isa(), DTYPE_CODES[ops.A.dtype])


def _vector_fmas(m: int, k: int, n: int, isa: str, code: str) -> int:
    """Vector FMAs of a dense m x k x n product at ``isa``'s vector width (what stats() counts)."""
    return m * k * -(-n // backend.segment_width(isa, code))


def _dense(ops: Operands, out: np.ndarray | None) -> np.ndarray:
    a, b = _effective_a(ops), _effective_b(ops)
    with blas_threads(ops.blas_threads):
        result = np.matmul(a, b, out=out)
    dense = _dense_fmas(ops)
    _record("dense", dense, dense)
    return result


def _sparse(ops: Operands, out: np.ndarray | None) -> np.ndarray:
    """The element-level sparse product (Gustavson): each non-zero of A, found from its bitmap,
    adds its multiple of B's CSR row into a dense row of C."""
    isa = backend.choose_isa()
    m, k, n = ops.shape
    if ops.prepared is not None:
        rows = ops.prepared.sparse_rows()
    else:
        rows = sparse_rows(ops.b, b_mask=ops.b_mask, threshold=ops.threshold, isa=isa, threads=ops.threads)
    result = out if out is not None else np.empty((m, n), ops.A.dtype)
    if isa == backend.NUMBA:
        a = np.ascontiguousarray(_effective_a(ops))
        bits, bad = numba_kernels.a_maps(a)
        if bad:
            raise _nonfinite_error("A", bad)
        counters = numba_kernels.spgemm(a, bits, rows.indptr, rows.indices, rows.values, result)
    elif isa == "avx512" and ops.a_mask is None and out is None and ops.A.strides[1] == ops.A.itemsize:
        # A's rows scanned in the kernel itself (no map pass); NaN/inf are counted there, and
        # refused after the fact (C is ours, so nothing of the caller's was written)
        products, visited, bad = backend.extension.spgemm(
            ops.A, None, ops.threshold, rows.indptr, rows.indices, rows.values, result, isa, ops.threads
        )
        if bad:
            raise _nonfinite_error("A", bad)
        counters = products, visited
    else:
        a, bits = _a_maps(ops, isa)
        counters = backend.extension.spgemm(
            a, bits, 0.0, rows.indptr, rows.indices, rows.values, result, isa, ops.threads
        )[:2]
    products, visited = (int(c) for c in counters)
    width = backend.segment_width(isa, DTYPE_CODES[ops.A.dtype])
    _record("sparse", m * k * -(-n // width), -(-products // width), visited)
    return result


def _prepared_for(ops: Operands, isa: str) -> PreparedB:
    if ops.prepared is None:
        return _pack_b(ops.b, b_mask=ops.b_mask, threshold=ops.threshold, isa=isa, threads=ops.threads)
    if ops.prepared.isa == isa:
        return ops.prepared
    return _pack_b(ops.prepared.dense(), isa=isa, threads=ops.threads)


def _masked(
    ops: Operands, out: np.ndarray | None, row_block: int | None = None, kernel: str | None = None
) -> np.ndarray:
    """The masked method: the row-skip or the tile kernel (a row block means the tile kernel;
    the planner picks when neither is given)."""
    isa = backend.choose_isa()
    if kernel is None and row_block is not None:
        kernel = "tiles"
    if kernel is None:
        chosen = plan_operands(ops)
        kernel, row_block = chosen.kernel, row_block or chosen.row_block
    if isa == backend.NUMBA:
        kernel = "tiles"  # the numba fallback has the tile kernel only
    m, k, n = ops.shape
    result = out if out is not None else np.empty((m, n), ops.A.dtype)
    if kernel == "rows":
        return _masked_rows(ops, result, isa)
    prepared = _prepared_for(ops, isa)
    if row_block is None:
        row_block = planner.default_row_block(ops.A)
    if isa == backend.NUMBA:
        a = np.ascontiguousarray(_effective_a(ops))
        bits, bad = numba_kernels.a_maps(a)
        if bad:
            raise _nonfinite_error("A", bad)
        counters = numba_kernels.multiply(
            a, bits, prepared.panels, prepared.segment_bits, prepared.width, n, result, row_block
        )
    else:
        a, bits = _a_maps(ops, isa)
        counters = backend.extension.multiply(
            a,
            bits,
            prepared.panels,
            prepared.segment_bits,
            prepared.width,
            n,
            result,
            isa,
            row_block,
            ops.threads,
        )
    iterations, fmas, dispatches = (int(c) for c in counters)
    _record("masked", m * k * -(-n // prepared.width), fmas, iterations, dispatches)
    return result


def _a_maps(ops: Operands, isa: str) -> tuple[np.ndarray, np.ndarray]:
    """(A with its filters applied, A's bitmap); raises on NaN/inf in A."""
    m, k, _ = ops.shape
    bits = np.empty((m, -(-k // 64)), np.uint64)
    filtered = np.empty((m, k), ops.A.dtype) if ops.filters_a else None
    mask = None if ops.a_mask is None else ops.a_mask.view(np.uint8)
    _, bad = backend.extension.a_maps(ops.A, ops.threshold, mask, bits, filtered, isa, ops.threads)
    if bad:
        raise _nonfinite_error("A", bad)
    return (filtered if filtered is not None else ops.A), bits


def _masked_rows(ops: Operands, result: np.ndarray, isa: str) -> np.ndarray:
    """The row-skip kernel on B's packed panels."""
    m, k, n = ops.shape
    a, bits = _a_maps(ops, isa)
    prepared = _prepared_for(ops, isa)
    iterations, fmas, _ = (
        int(c)
        for c in backend.extension.multiply_rows(
            a, bits, prepared.panels, prepared.width, result, isa, ops.threads
        )
    )
    _record("masked", m * k * -(-n // prepared.width), fmas, iterations)
    return result
