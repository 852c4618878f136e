"""What every maskedmm benchmark shares: our contenders, the peers, clocks and the records' notes.

Each (ours, peer) pair is timed interleaved with :func:`frugalml.common.timing.compare`, with BLAS
and OpenMP limited to the same thread count: by this thread's CPU time with 1 thread (robust to
other load), by wall clock with more.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from frugalml.common import env
from frugalml.common.report import Record
from frugalml.maskedmm import core, planner

SYSTEM = "maskedmm"
SLOW_PEER_BELOW = 0.8  # element-level peers take seconds on denser operands: skipped there
SPARSE_FROM = 0.75  # our element-level method is timed from here on (far slower than BLAS below)
NUMPY = "numpy dense (BLAS)"
PER_CALL = "masked, B packed per call"
AUTO = "auto"  # B as given: what matmul(A, B) costs a user
INCLUDED = (
    "ours includes checks, planning and A's bitmap on every call; 'B prepared' excludes "
    "prepare_b (done once, as for static weights); 'per call' includes packing B (masked) "
    "or building its CSR rows (sparse)"
)


def blas_note() -> str:
    """numpy's BLAS kernel and OPENBLAS_CORETYPE, as recorded with every ratio against numpy."""
    from frugalml.common.env import blas

    kernels = ", ".join(f"{lib.get('internal_api')} {lib.get('architecture')}" for lib in blas()) or "?"
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return f"numpy BLAS: {kernels}; OPENBLAS_CORETYPE={'unset' if coretype is None else coretype}"


def workload(n: int, pattern: str, sparsity: float, threads: int) -> str:
    """The workload name of an n^3 float32 product at one sparsity and thread count.

    Examples
    --------
    >>> workload(1024, "random", 0.9, 1)
    '1024^3 fp32 random 90% zeros, 1 thread(s)'
    """
    return f"{n}^3 fp32 {pattern} {sparsity:.0%} zeros, {threads} thread(s)"


def case_notes(blas: str, pattern: str, sparsity: float, threads: int, clock_note: str) -> str:
    """The notes every timed record starts with: ``blas`` (:func:`blas_note`, taken when the run
    starts), the case, the clock and the machine's load."""
    case = f"pattern={pattern}; sparsity={sparsity}; threads={threads}"
    return f"{blas}; {case}; {clock_note}; {env.machine(load=True)}"


def plan_note(chosen: planner.Plan) -> str:
    """The planner's pick as the notes quote it: the method, and the kernel when it is masked."""
    return chosen.method + (f" ({chosen.kernel} kernel)" if chosen.method == "masked" else "")


def our_functions(A, B, prepared, threads: int, sparsity: float) -> dict[str, Callable[[], object]]:
    """Our contenders: auto, the masked and (from ``SPARSE_FROM`` zeros) the sparse method, each
    with B prepared once and with B as given (packed or converted per call)."""
    fns = {
        "auto, B prepared": lambda: core.matmul(A, prepared, method="auto", threads=threads),
        "masked, B prepared": lambda: core.matmul(A, prepared, method="masked", threads=threads),
        "sparse, B prepared": lambda: core.matmul(A, prepared, method="sparse", threads=threads),
        AUTO: lambda: core.matmul(A, B, method="auto", threads=threads),
        PER_CALL: lambda: core.matmul(A, B, method="masked", threads=threads),
        "sparse, B per call": lambda: core.matmul(A, B, method="sparse", threads=threads),
    }
    return {name: fn for name, fn in fns.items() if "sparse" not in name or sparsity >= SPARSE_FROM}


def peer_functions(
    A: np.ndarray, B: np.ndarray, sparsity: float, wanted: tuple[str, ...]
) -> tuple[dict[str, Callable[[], object]], list[str]]:
    """The peers that can run here, and a note for each one that cannot."""
    fns: dict[str, Callable[[], object]] = {NUMPY: lambda: A @ B}
    skipped = []
    slow_ok = sparsity >= SLOW_PEER_BELOW
    if "scipy" in wanted and slow_ok:
        from scipy import sparse

        Ac, Bc = sparse.csr_array(A), sparse.csr_array(B)
        fns["scipy csr@csr incl. conversion"] = lambda: (sparse.csr_array(A) @ sparse.csr_array(B)).toarray()
        fns["scipy csr@csr excl. conversion"] = lambda: (Ac @ Bc).toarray()
        fns["scipy csr@dense incl. conversion"] = lambda: sparse.csr_array(A) @ B
    if "torch" in wanted:
        try:
            import torch
        except ImportError:
            skipped.append("torch: not installed")
        else:
            At, Bt = torch.from_numpy(A), torch.from_numpy(B)
            fns["torch dense"] = lambda: At @ Bt
            if slow_ok:
                fns["torch.sparse csr@dense incl. conversion"] = lambda: At.to_sparse_csr() @ Bt
    if "mkl" in wanted and slow_ok:
        _point_sparse_dot_mkl_at_pip_mkl()
        try:
            from scipy import sparse
            from sparse_dot_mkl import dot_product_mkl
        except (ImportError, OSError) as exc:
            skipped.append(f"sparse-dot-mkl: unavailable ({exc.__class__.__name__}: {exc})")
        else:
            fns["MKL csr@csr->dense incl. conversion (sparse-dot-mkl)"] = lambda: dot_product_mkl(
                sparse.csr_matrix(A), sparse.csr_matrix(B), dense=True
            )
    if not slow_ok:
        skipped.append(f"element-level peers skipped below {SLOW_PEER_BELOW:.0%} zeros (seconds per call)")
    return fns, skipped


def _point_sparse_dot_mkl_at_pip_mkl() -> None:
    """sparse-dot-mkl looks for libmkl_rt on the loader path; PyPI's ``mkl`` puts it in <prefix>/lib."""
    if "MKL_RT" in os.environ:
        return
    found = sorted(Path(sys.prefix, "lib").glob("libmkl_rt.so*"))
    if found:
        os.environ["MKL_RT"] = str(found[0])


def clock_for(threads: int) -> tuple[Callable[[], float], str]:
    """The clock a comparison at ``threads`` uses and its name for the record's notes.

    Examples
    --------
    >>> clock_for(1)[1], clock_for(2)[1]
    ('clock=thread_time', 'clock=wall')
    """
    if threads == 1:
        return time.thread_time, "clock=thread_time"
    return time.perf_counter, "clock=wall"


def fma_records(A, B, prepared, threads: int, workload: str) -> list[Record]:
    """stats()' vector FMA reduction vs dense for the masked and the sparse method."""
    plan = core.plan(A, B, threads=threads)
    records = []
    for method, metric in (
        ("masked", "vector FMA reduction vs dense"),
        ("sparse", "vector FMA reduction vs dense (sparse method)"),
    ):
        core.reset_stats()
        core.matmul(A, prepared, method=method, threads=threads)
        records.append(
            Record(
                SYSTEM,
                workload,
                metric,
                "x",
                core.stats().fma_reduction,
                None,
                None,
                higher_is_better=True,
                notes=f"masked kernel run: {plan.kernel}; auto plan: {plan}"
                + (
                    "; a sparse vector FMA = one vector's worth of element products"
                    if method == "sparse"
                    else ""
                ),
            )
        )
    return records
