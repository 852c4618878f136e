"""The benchmark behind ``frugal maskedmm bench``: ours vs numpy/OpenBLAS, scipy and torch CSR, MKL.

Everything runs in one process; each (ours, peer) pair is timed interleaved with
:func:`frugalml.common.timing.compare`, with BLAS and OpenMP limited to the same thread count:
by this thread's CPU time with 1 thread (robust to other load), by wall clock with more.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalml.common.report import Record, new_figure, save_plot
from frugalml.common.timing import compare
from frugalml.maskedmm import core, patterns

SYSTEM = "maskedmm"

# Set before Python starts when our OpenMP kernels and numpy's OpenBLAS share a process on more than
# one thread: otherwise each library's idle workers spin on the cores the other needs
# (benchmarks/maskedmm/thread_contention.py, 1024^3, 75% zeros, 2 threads, medians of 21 alternating
# calls in two runs: the masked kernel 9.0-11.8 -> 3.9-4.9 ms, numpy 9.8 -> 6.5-6.6 ms).
SPIN_SETTINGS = {"OMP_WAIT_POLICY": "passive", "OPENBLAS_THREAD_TIMEOUT": "4"}
SLOW_PEER_BELOW = 0.8  # element-level peers take seconds on denser operands: skipped there
SPARSE_FROM = 0.75  # our element-level method is timed from here on (far slower than BLAS below)
GOAL_SPARSITIES = (0.75, 0.8, 0.9, 0.95, 0.99)
AUTO_SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class BenchConfig:
    """What to sweep and how hard to measure."""

    n: int = 1024
    sparsities: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
    patterns: tuple[str, ...] = ("random", "block16", "columns", "relu")
    threads: tuple[int, ...] = (1, 2)
    rounds: int = 5
    peers: tuple[str, ...] = ("scipy", "torch", "mkl")


def blas_note() -> str:
    """numpy's BLAS kernel and OPENBLAS_CORETYPE, as recorded with every ratio against numpy."""
    from frugalml.common.env import blas

    kernels = ", ".join(f"{lib.get('internal_api')} {lib.get('architecture')}" for lib in blas()) or "?"
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return f"numpy BLAS: {kernels}; OPENBLAS_CORETYPE={'unset' if coretype is None else coretype}"


NUMPY = "numpy dense (BLAS)"
PER_CALL = "masked, B packed per call"
AUTO = "auto"  # B as given: what matmul(A, B) costs a user
INCLUDED = (
    "ours includes checks, planning and A's bitmap on every call; 'B prepared' excludes "
    "prepare_b (done once, as for static weights); 'per call' includes packing B (masked) "
    "or building its CSR rows (sparse)"
)


def machine_load() -> str:
    """The 1-minute load average against the core count, for the notes (the machine is shared)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"load average {load:.1f} on {os.cpu_count()} cores"


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
    """The clock a comparison at ``threads`` uses and its name for the record's notes."""
    if threads == 1:
        return time.thread_time, "clock=thread_time"
    return time.perf_counter, "clock=wall"


def run(config: BenchConfig, *, quiet: bool = False, progress_desc: str = "bench") -> list[Record]:
    """Measure every pattern x sparsity x thread count; return the records (ratio > 1: ours wins)."""
    from threadpoolctl import threadpool_limits

    from frugalml.common.progress import progress

    cases = [(t, p, s) for t in config.threads for p in config.patterns for s in config.sparsities]
    records: list[Record] = []
    note = blas_note()
    for threads, pattern, sparsity in progress(cases, desc=progress_desc, quiet=quiet):
        A, B = patterns.operands(pattern, config.n, sparsity, seed=7)
        prepared = core.prepare_b(B, threads=threads)
        workload = f"{config.n}^3 fp32 {pattern} {sparsity:.0%} zeros, {threads} thread(s)"
        ours = our_functions(A, B, prepared, threads, sparsity)
        clock, clock_note = clock_for(threads)
        with threadpool_limits(limits=threads):
            peers, skipped = peer_functions(A, B, sparsity, config.peers)
            for peer_name, peer in peers.items():
                names = list(ours) if peer_name == NUMPY else [AUTO]
                for our_name in names:
                    fn = ours[our_name]
                    comparison = compare(fn, peer, rounds=config.rounds, warmup=1, clock=clock)
                    records.append(
                        Record.from_comparison(
                            comparison,
                            system=SYSTEM,
                            workload=workload,
                            peer=peer_name,
                            metric=f"time ({our_name})",
                            notes=f"{note}; pattern={pattern}; sparsity={sparsity}; threads={threads}; "
                            f"{clock_note}; {machine_load()}; {INCLUDED}"
                            + (f"; skipped: {'; '.join(skipped)}" if skipped else ""),
                        )
                    )
            records += fma_records(A, B, prepared, threads, workload)
    return records


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


def goal_records(
    n: int = 1024,
    rounds: int = 15,
    sparsities=GOAL_SPARSITIES,
    auto_sparsities=AUTO_SPARSITIES,
    peer_sparsities=(0.8, 0.9),
    quiet: bool = True,
    threads: int = 1,
) -> list[Record]:
    """The issue's goal table, ``rounds`` interleaved rounds per pair, BLAS and OpenMP limited to
    ``threads`` (thread time with 1, wall clock with more: see :func:`clock_for`): every method of
    ours (B prepared and per call) vs numpy at ``sparsities``, auto (B as given) vs numpy at
    ``auto_sparsities``, auto vs every CSR peer (conversion included) at ``peer_sparsities``, and
    stats()' FMA reduction at 90%."""
    from threadpoolctl import threadpool_limits

    from frugalml.common.progress import progress

    note = blas_note()
    clock, clock_note = clock_for(threads)
    if threads > 1:
        clock_note += "".join(f"; {name}={os.environ.get(name, 'unset')}" for name in SPIN_SETTINGS)
    cases = sorted(set(sparsities) | set(auto_sparsities) | set(peer_sparsities))
    records: list[Record] = []
    for sparsity in progress(cases, desc="goal table", quiet=quiet):
        A, B = patterns.operands("random", n, sparsity, seed=7)
        prepared = core.prepare_b(B, threads=threads)
        workload = f"{n}^3 fp32 random {sparsity:.0%} zeros, {threads} thread(s)"
        ours = our_functions(A, B, prepared, threads, sparsity)
        if sparsity not in sparsities:
            ours = {AUTO: ours[AUTO]}
        with threadpool_limits(limits=threads):
            peers, skipped = peer_functions(A, B, sparsity, ("scipy", "torch", "mkl"))
            if sparsity not in peer_sparsities:
                peers = {NUMPY: peers[NUMPY]}
            pairs = [(name, NUMPY) for name in ours] + [(AUTO, peer) for peer in peers if peer != NUMPY]
            for our_name, peer_name in pairs:
                comparison = compare(ours[our_name], peers[peer_name], rounds=rounds, warmup=1, clock=clock)
                chosen = core.plan(A, prepared if "prepared" in our_name else B, threads=threads)
                records.append(
                    Record.from_comparison(
                        comparison,
                        system=SYSTEM,
                        workload=workload,
                        peer=peer_name,
                        metric=f"time ({our_name}, {rounds} rounds)",
                        notes=f"{note}; pattern=random; sparsity={sparsity}; threads={threads}; "
                        f"{clock_note}; "
                        f"{machine_load()}; {INCLUDED}; auto picks {chosen.method}"
                        + (f" ({chosen.kernel} kernel)" if chosen.method == "masked" else "")
                        + (f"; skipped: {'; '.join(skipped)}" if skipped and peer_name != NUMPY else ""),
                    )
                )
        if sparsity == 0.9:
            records += fma_records(A, B, prepared, threads, workload)
    return records


def auto_records(
    n: int = 1024, sparsities=(0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99), rounds: int = 15
) -> list[Record]:
    """``method="auto"`` (B as given, not prepared) vs numpy across the density sweep, one thread.

    More rounds than the main sweep: near break-even auto runs numpy itself plus its planning
    and finiteness check (~2% at 1024^3), so 5-round medians on a shared machine scatter more
    than the difference being measured.
    """
    from threadpoolctl import threadpool_limits

    records = []
    note = blas_note()
    for sparsity in sparsities:
        A, B = patterns.operands("random", n, sparsity, seed=7)
        with threadpool_limits(limits=1):
            comparison = compare(
                lambda A=A, B=B: core.matmul(A, B, method="auto", threads=1),
                lambda A=A, B=B: A @ B,
                rounds=rounds,
                warmup=1,
                clock=time.thread_time,
            )
        chosen = core.plan(A, B, threads=1)
        records.append(
            Record.from_comparison(
                comparison,
                system=SYSTEM,
                workload=f"{n}^3 fp32 random {sparsity:.0%} zeros, 1 thread(s)",
                peer=NUMPY,
                metric=f"time (auto, {rounds} rounds)",
                notes=f"{note}; pattern=random; sparsity={sparsity}; threads=1; clock=thread_time; "
                f"{machine_load()}; auto chose {chosen.method}"
                + (f" ({chosen.kernel} kernel)" if chosen.method == "masked" else ""),
            )
        )
    return records


_METHOD_TIMER = """
import statistics, sys, time
from threadpoolctl import threadpool_limits
from frugalml.maskedmm import core, patterns
method = sys.argv[1]
n, sparsity, threads, reps = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
A, B = patterns.operands("random", n, sparsity, seed=7)
prepared = core.prepare_b(B, threads=threads)
fn = {"numpy": lambda: A @ B,
      "prepared": lambda: core.matmul(A, prepared, method="masked", threads=threads),
      "per call": lambda: core.matmul(A, B, method="masked", threads=threads),
      "auto": lambda: core.matmul(A, B, method="auto", threads=threads)}[method]
with threadpool_limits(limits=threads):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
print(statistics.median(times))
"""
SUBPROCESS_METHODS = {"prepared": "masked, B prepared", "per call": PER_CALL, "auto": "auto"}


def subprocess_records(
    n: int = 1024,
    sparsities=(0.5, 0.75, 0.9, 0.95, 0.99),
    threads: int = 2,
    rounds: int = 3,
    reps: int = 7,
    wait_policy: str = "passive",
) -> list[Record]:
    """Multi-thread timings with one process per method, so no two thread pools share the cores.

    In one process, OpenBLAS's and OpenMP's worker pools both spin-wait between calls and steal
    the 2 cores from each other when ours and numpy are interleaved. Here each method runs in its
    own child (``threads`` BLAS and OpenMP threads, ``OMP_WAIT_POLICY=wait_policy``), reporting
    the median wall time of ``reps`` calls after one warm-up; children for the methods alternate,
    ``rounds`` times, and each method's median over its rounds is compared.
    """
    import statistics
    import subprocess

    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
        OMP_WAIT_POLICY=wait_policy,
    )
    note = blas_note()
    records = []
    for sparsity in sparsities:
        times: dict[str, list[float]] = {m: [] for m in ("numpy", *SUBPROCESS_METHODS)}
        for r in range(rounds):
            order = list(times) if r % 2 == 0 else list(reversed(times))
            for method in order:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        _METHOD_TIMER,
                        method,
                        str(n),
                        str(sparsity),
                        str(threads),
                        str(reps),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                times[method].append(float(out.split()[-1]))
        peer = statistics.median(times["numpy"])
        for method, label in SUBPROCESS_METHODS.items():
            ours = statistics.median(times[method])
            records.append(
                Record(
                    SYSTEM,
                    f"{n}^3 fp32 random {sparsity:.0%} zeros, {threads} thread(s)",
                    f"time ({label})",
                    "s",
                    ours,
                    NUMPY,
                    peer,
                    spread={
                        "ours": [min(times[method]), max(times[method])],
                        "peer": [min(times["numpy"]), max(times["numpy"])],
                    },
                    notes=f"{note}; pattern=random; sparsity={sparsity}; threads={threads}; clock=wall; "
                    f"{machine_load()}; {INCLUDED}; one child process per method "
                    f"(OMP_WAIT_POLICY={wait_policy}), alternated, median of {reps} calls per child, "
                    f"median of {rounds} children",
                )
            )
    return records


def kernel_records(n: int = 1024, sparsities=(0.75, 0.9, 0.95, 0.99), rounds: int = 15) -> list[Record]:
    """Each masked kernel (row-skip; tile kernel at its best row block) with B prepared vs numpy,
    one thread, with more rounds than the sweep: the planner's pick between them rests on these."""
    from threadpoolctl import threadpool_limits

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

            with threadpool_limits(limits=1):
                comparison = compare(
                    ours, lambda A=A, B=B: A @ B, rounds=rounds, warmup=1, clock=time.thread_time
                )
            records.append(
                Record.from_comparison(
                    comparison,
                    system=SYSTEM,
                    workload=f"{n}^3 fp32 random {sparsity:.0%} zeros, 1 thread(s)",
                    peer=NUMPY,
                    metric=f"time (masked, B prepared, {label}, {rounds} rounds)",
                    notes=f"{note}; pattern=random; sparsity={sparsity}; threads=1; clock=thread_time; "
                    f"{machine_load()}; {INCLUDED}",
                )
            )
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


def plot(records: list[Record], path) -> None:
    """Speedup over numpy vs sparsity, one line per pattern and thread count."""
    fig, axes = new_figure(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, our_name in zip(axes, ("auto, B prepared", AUTO), strict=True):
        for (pattern, threads), points in sorted(speedups(records, NUMPY, our_name).items()):
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


_NUMPY_TIMER = """
import os, sys, time
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
from frugalml.maskedmm import patterns
n, sparsity, rounds = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
A, B = patterns.operands("random", n, sparsity, seed=7)
with threadpool_limits(limits=1):
    times = []
    for _ in range(rounds + 1):
        start = time.thread_time()
        A @ B
        times.append(time.thread_time() - start)
kernel = [i.get("architecture") for i in threadpool_info() if "numpy" in i.get("filepath", "")]
print(sorted(times[1:])[len(times[1:]) // 2], kernel[0] if kernel else None)
"""


def coretype_records(
    n: int = 1024, sparsities=(0.75, 0.9, 0.95), rounds: int = 7, coretype: str = "Haswell"
) -> list[Record]:
    """numpy with OPENBLAS_CORETYPE toggled (set to ``coretype`` if unset here, else unset).

    OpenBLAS reads the variable when it loads, so the other setting runs in a child process,
    one thread, timed right after ours; these ratios are not interleaved and say so.
    """
    import statistics
    import subprocess
    import sys

    from threadpoolctl import threadpool_limits

    env = dict(os.environ)
    if "OPENBLAS_CORETYPE" in env:
        label = "unset"
        del env["OPENBLAS_CORETYPE"]
    else:
        label = coretype
        env["OPENBLAS_CORETYPE"] = coretype
    records = []
    for sparsity in sparsities:
        A, B = patterns.operands("random", n, sparsity, seed=7)
        prepared = core.prepare_b(B, threads=1)
        with threadpool_limits(limits=1):
            ours = []
            for _ in range(rounds):
                start = time.thread_time()
                core.matmul(A, prepared, method="masked", threads=1)
                ours.append(time.thread_time() - start)
        out = subprocess.run(
            [sys.executable, "-c", _NUMPY_TIMER, str(n), str(sparsity), str(rounds)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        records.append(
            Record(
                SYSTEM,
                f"{n}^3 fp32 random {sparsity:.0%} zeros, 1 thread(s)",
                "time (masked, B prepared)",
                "s",
                statistics.median(ours),
                f"numpy dense (OPENBLAS_CORETYPE={label}, child process)",
                float(out[0]),
                spread={"ours": [min(ours), max(ours)]},
                notes=f"child BLAS kernel {out[1]}; clock=thread_time; "
                "not interleaved (OpenBLAS fixes its kernel at load); "
                f"in-process numpy: {blas_note()}",
            )
        )
    return records
