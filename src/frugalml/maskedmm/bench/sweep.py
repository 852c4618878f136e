"""The sweep behind ``frugal maskedmm bench``: ours vs numpy/OpenBLAS, scipy and torch CSR, MKL.

Every pattern x sparsity x thread count runs in one process; each (ours, peer) pair is timed
interleaved (see :mod:`.contenders`), and the speedups over numpy are plotted against sparsity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from frugalml.common import env
from frugalml.common.report import Record, new_figure, save_plot
from frugalml.common.timing import compare
from frugalml.maskedmm import core, patterns
from frugalml.maskedmm.bench import contenders


@dataclass(frozen=True)
class BenchConfig:
    """What to sweep and how hard to measure."""

    n: int = 1024
    sparsities: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
    patterns: tuple[str, ...] = ("random", "block16", "columns", "relu")
    threads: tuple[int, ...] = (1, 2)
    rounds: int = 5
    peers: tuple[str, ...] = ("scipy", "torch", "mkl")


PEERS = ("scipy", "torch", "mkl")
BYTES_PER_ENTRY = 64  # peak bytes per entry of an n x n operand: A, B, packed and CSR copies, results, peers
MEMORY_SHARE = 0.8  # a sweep may take at most this share of the memory available when it starts


MAX_ROUNDS = 1000  # interleaved rounds per comparison: more is a typo, not a measurement


def check_memory(n: int, available: int | None = None, option: str = "--n") -> int:
    """Peak bytes a sweep at size ``n`` needs; raise InvalidInputError before allocating anything
    when that exceeds the share of memory this machine has available.

    Examples
    --------
    >>> check_memory(1024, available=2**30)
    67108864
    """
    from frugalml.common.errors import InvalidInputError

    need = BYTES_PER_ENTRY * n * n
    available = env.available_memory() if available is None else available
    if need > MEMORY_SHARE * available:
        largest = int((MEMORY_SHARE * available / BYTES_PER_ENTRY) ** 0.5)
        raise InvalidInputError(
            f"{option} {n} needs about {need / 2**30:,.1f} GiB (two {n} x {n} operands with their "
            f"packed and sparse copies, results and peers) but {available / 2**30:,.1f} GiB is "
            f"available; use {option} {largest} or less"
        )
    return need


def run(config: BenchConfig, *, quiet: bool = False, progress_desc: str = "bench") -> list[Record]:
    """Measure every pattern x sparsity x thread count; return the records (ratio > 1: ours wins)."""
    from frugalml.common.progress import progress

    cases = [(t, p, s) for t in config.threads for p in config.patterns for s in config.sparsities]
    records: list[Record] = []
    note = contenders.blas_note()
    for threads, pattern, sparsity in progress(cases, desc=progress_desc, quiet=quiet):
        records += _case_records(config, note, threads, pattern, sparsity)
    return records


def _case_records(
    config: BenchConfig, note: str, threads: int, pattern: str, sparsity: float
) -> list[Record]:
    """One case of the sweep: every contender vs numpy, auto vs every other peer, the FMA counts."""
    from threadpoolctl import threadpool_limits

    A, B = patterns.operands(pattern, config.n, sparsity, seed=7)
    prepared = core.prepare_b(B, threads=threads)
    name = contenders.workload(config.n, pattern, sparsity, threads)
    ours = contenders.our_functions(A, B, prepared, threads, sparsity)
    clock, clock_note = contenders.clock_for(threads)
    records = []
    with threadpool_limits(limits=threads):
        peers, skipped = contenders.peer_functions(A, B, sparsity, config.peers)
        for peer_name, peer in peers.items():
            names = list(ours) if peer_name == contenders.NUMPY else [contenders.AUTO]
            for our_name in names:
                comparison = compare(ours[our_name], peer, rounds=config.rounds, warmup=1, clock=clock)
                records.append(
                    Record.from_comparison(
                        comparison,
                        system=contenders.SYSTEM,
                        workload=name,
                        peer=peer_name,
                        metric=f"time ({our_name})",
                        notes=f"{contenders.case_notes(note, pattern, sparsity, threads, clock_note)}; "
                        f"{contenders.INCLUDED}" + (f"; skipped: {'; '.join(skipped)}" if skipped else ""),
                    )
                )
        records += contenders.fma_records(A, B, prepared, threads, name)
    return records


def speedups(
    records: list[Record], peer: str, our_name: str
) -> dict[tuple[str, int], list[tuple[float, float]]]:
    """(pattern, threads) -> [(sparsity, ratio)] for one peer and one of our variants."""
    curves: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for r in records:
        if r.peer != peer or r.metric != f"time ({our_name})":
            continue
        fields = dict(part.split("=", 1) for part in r.notes.split("; ") if "=" in part)
        key = (fields["pattern"], int(fields["threads"]))
        curves.setdefault(key, []).append((float(fields["sparsity"]), r.ratio))
    return curves


def plot(records: list[Record], path: str | os.PathLike) -> None:
    """Speedup over numpy vs sparsity, one line per pattern and thread count."""
    fig, axes = new_figure(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, our_name in zip(axes, ("auto, B prepared", contenders.AUTO), strict=True):
        for (pattern, threads), points in sorted(speedups(records, contenders.NUMPY, our_name).items()):
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(
                [100 * x for x in xs],
                ys,
                marker="o",
                label=f"{pattern}, {threads} thr",
                linestyle="-" if threads == 1 else "--",
            )
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("zeros in A and B (%)")
        ax.set_title(f"{our_name} vs numpy/OpenBLAS")
    axes[0].set_ylabel("speedup (numpy time / ours, median)")
    axes[1].legend(fontsize=8)
    save_plot(fig, path)
