"""One-thread comparisons with more rounds than the sweep: ``method="auto"`` across the density
range, and each masked kernel on its own (the planner's pick between them rests on these)."""

from __future__ import annotations

import time

from frugalml.common.report import Record
from frugalml.common.timing import compare
from frugalml.maskedmm import core, patterns
from frugalml.maskedmm.bench.contenders import (
    INCLUDED,
    NUMPY,
    SYSTEM,
    blas_note,
    case_notes,
    plan_note,
    workload,
)

AUTO_SWEEP = (0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)


def _one_thread(ours, peer, rounds: int, case: tuple[str, int, float], metric: str, notes: str) -> Record:
    """Time ``ours`` against numpy's ``peer`` interleaved on one thread (thread time) as a record;
    ``case`` is (numpy's BLAS note, n, sparsity)."""
    blas, n, sparsity = case
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        comparison = compare(ours, peer, rounds=rounds, warmup=1, clock=time.thread_time)
    return Record.from_comparison(
        comparison,
        system=SYSTEM,
        workload=workload(n, "random", sparsity, 1),
        peer=NUMPY,
        metric=metric,
        notes=f"{case_notes(blas, 'random', sparsity, 1, 'clock=thread_time')}; {notes}",
    )


def auto_records(n: int = 1024, sparsities=AUTO_SWEEP, rounds: int = 15) -> list[Record]:
    """``method="auto"`` (B as given, not prepared) vs numpy across the density sweep, one thread.

    More rounds than the main sweep: near break-even auto runs numpy itself plus its planning
    and finiteness check (~2% at 1024^3), so 5-round medians on a busy machine scatter more
    than the difference being measured.
    """
    records = []
    note = blas_note()
    for sparsity in sparsities:
        A, B = patterns.operands("random", n, sparsity, seed=7)
        record = _one_thread(
            lambda A=A, B=B: core.matmul(A, B, method="auto", threads=1),
            lambda A=A, B=B: A @ B,
            rounds,
            (note, n, sparsity),
            f"time (auto, {rounds} rounds)",
            f"auto chose {plan_note(core.plan(A, B, threads=1))}",
        )
        records.append(record)
    return records


def kernel_records(n: int = 1024, sparsities=(0.75, 0.9, 0.95, 0.99), rounds: int = 15) -> list[Record]:
    """Each masked kernel (row-skip; tile kernel at its best row block) with B prepared vs numpy,
    one thread, with more rounds than the sweep: the planner's pick between them rests on these."""
    records = []
    note = blas_note()
    for sparsity in sparsities:
        A, B = patterns.operands("random", n, sparsity, seed=7)
        prepared = core.prepare_b(B, threads=1)
        row_block = core.plan(A, prepared, threads=1).row_block
        kernels = {"row-skip kernel": (None, "rows"), f"tile kernel r{row_block}": (row_block, "tiles")}
        for label, (block, kernel) in kernels.items():

            def ours(A=A, prepared=prepared, block=block, kernel=kernel):
                return core._masked(core.check_operands(A, prepared, threads=1), None, block, kernel)

            metric = f"time (masked, B prepared, {label}, {rounds} rounds)"
            records.append(
                _one_thread(ours, lambda A=A, B=B: A @ B, rounds, (note, n, sparsity), metric, INCLUDED)
            )
    return records
