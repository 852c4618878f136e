"""The target table: ours vs numpy/OpenBLAS and the CSR peers on uniform zeros, one thread or more.

At 75-99% zeros every method of ours (B prepared and per call) is timed against numpy, ``auto``
(B as given) against numpy from 0 to 99%, ``auto`` against every CSR peer (conversion included)
at 80 and 90%, and stats()' FMA reduction is recorded at 90%.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from frugalml.common.report import Record
from frugalml.common.timing import compare
from frugalml.maskedmm import core, patterns
from frugalml.maskedmm.bench.contenders import (
    AUTO,
    INCLUDED,
    NUMPY,
    SYSTEM,
    blas_note,
    case_notes,
    clock_for,
    fma_records,
    our_functions,
    peer_functions,
    plan_note,
    workload,
)
from frugalml.maskedmm.bench.spin import SPIN_SETTINGS

TARGET_SPARSITIES = (0.75, 0.8, 0.9, 0.95, 0.99)
AUTO_SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
PEER_SPARSITIES = (0.8, 0.9)
FMA_SPARSITY = 0.9


class _Case(NamedTuple):
    """The operands of one row of the table (one sparsity)."""

    n: int
    blas: str
    sparsity: float
    threads: int
    A: np.ndarray
    B: np.ndarray
    prepared: core.PreparedB


def target_records(
    n: int = 1024,
    rounds: int = 15,
    sparsities=TARGET_SPARSITIES,
    auto_sparsities=AUTO_SPARSITIES,
    peer_sparsities=PEER_SPARSITIES,
    quiet: bool = True,
    threads: int = 1,
) -> list[Record]:
    """The target table, ``rounds`` interleaved rounds per pair, BLAS and OpenMP limited to
    ``threads`` (thread time with 1, wall clock with more: see
    :func:`~frugalml.maskedmm.bench.contenders.clock_for`): every method of ours (B prepared and
    per call) vs numpy at ``sparsities``, auto (B as given) vs numpy at ``auto_sparsities``, auto
    vs every CSR peer (conversion included) at ``peer_sparsities``, and stats()' FMA reduction at
    90%."""
    from frugalml.common.progress import progress

    note = blas_note()
    _, clock_note = clock_for(threads)
    if threads > 1:
        clock_note += "".join(f"; {name}={os.environ.get(name, 'unset')}" for name in SPIN_SETTINGS)
    cases = sorted(set(sparsities) | set(auto_sparsities) | set(peer_sparsities))
    records: list[Record] = []
    for sparsity in progress(cases, desc="target table", quiet=quiet):
        A, B = patterns.operands("random", n, sparsity, seed=7)
        case = _Case(n, note, sparsity, threads, A, B, core.prepare_b(B, threads=threads))
        records += _timed_records(
            case, rounds, clock_note, sparsity in sparsities, sparsity in peer_sparsities
        )
        if sparsity == FMA_SPARSITY:
            records += fma_records(A, B, case.prepared, threads, workload(n, "random", sparsity, threads))
    return records


def _timed_records(
    case: _Case, rounds: int, clock_note: str, every_method: bool, every_peer: bool
) -> list[Record]:
    """The pairs timed at one sparsity: each of ours vs numpy (only auto unless ``every_method``),
    then auto vs each CSR peer when ``every_peer``."""
    from threadpoolctl import threadpool_limits

    A, B, prepared, threads = case.A, case.B, case.prepared, case.threads
    clock, _ = clock_for(threads)
    ours = our_functions(A, B, prepared, threads, case.sparsity)
    if not every_method:
        ours = {AUTO: ours[AUTO]}
    records = []
    with threadpool_limits(limits=threads):
        peers, skipped = peer_functions(A, B, case.sparsity, ("scipy", "torch", "mkl"))
        if not every_peer:
            peers = {NUMPY: peers[NUMPY]}
        pairs = [(name, NUMPY) for name in ours] + [(AUTO, peer) for peer in peers if peer != NUMPY]
        for our_name, peer_name in pairs:
            comparison = compare(ours[our_name], peers[peer_name], rounds=rounds, warmup=1, clock=clock)
            chosen = core.plan(A, prepared if "prepared" in our_name else B, threads=threads)
            records.append(
                Record.from_comparison(
                    comparison,
                    system=SYSTEM,
                    workload=workload(case.n, "random", case.sparsity, threads),
                    peer=peer_name,
                    metric=f"time ({our_name}, {rounds} rounds)",
                    notes=f"{case_notes(case.blas, 'random', case.sparsity, threads, clock_note)}; "
                    f"{INCLUDED}; "
                    f"auto picks {plan_note(chosen)}"
                    + (f"; skipped: {'; '.join(skipped)}" if skipped and peer_name != NUMPY else ""),
                )
            )
    return records
