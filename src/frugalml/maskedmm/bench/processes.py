"""Timings that need their own processes: multi-thread runs with one child per method, numpy
under the other OPENBLAS_CORETYPE, and two thread pools (OpenMP and OpenBLAS) in one process."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from frugalml.common.env import machine
from frugalml.common.report import Record
from frugalml.maskedmm import core, patterns
from frugalml.maskedmm.bench.contenders import (
    INCLUDED,
    NUMPY,
    PER_CALL,
    SYSTEM,
    blas_note,
    case_notes,
    workload,
)
from frugalml.maskedmm.bench.spin import SPIN_SETTINGS

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
    the cores from each other when ours and numpy are interleaved. Here each method runs in its
    own child (``threads`` BLAS and OpenMP threads, ``OMP_WAIT_POLICY=wait_policy``), reporting
    the median wall time of ``reps`` calls after one warm-up; children for the methods alternate,
    ``rounds`` times, and each method's median over its rounds is compared.
    """
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
                    workload(n, "random", sparsity, threads),
                    f"time ({label})",
                    "s",
                    ours,
                    NUMPY,
                    peer,
                    spread={
                        "ours": [min(times[method]), max(times[method])],
                        "peer": [min(times["numpy"]), max(times["numpy"])],
                    },
                    notes=f"{case_notes(note, 'random', sparsity, threads, 'clock=wall')}; {INCLUDED}; "
                    "one child process per method "
                    f"(OMP_WAIT_POLICY={wait_policy}), alternated, median of {reps} calls per child, "
                    f"median of {rounds} children",
                )
            )
    return records


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
                workload(n, "random", sparsity, 1),
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


CONTENTION_N, CONTENTION_THREADS = 1024, 2
_CONTENTION_CHILD = """
import sys
from frugalml.maskedmm.bench.processes import contention_child
contention_child(int(sys.argv[1]), float(sys.argv[2]))
"""


def contention_child(rounds: int, sparsity: float) -> None:
    """Alternate numpy and our masked kernel (B prepared) on ``CONTENTION_THREADS`` threads in this
    process; print the wall times as JSON."""
    from threadpoolctl import threadpool_limits

    A, B = patterns.operands("random", CONTENTION_N, sparsity)
    prepared = core.prepare_b(B)
    times: dict[str, list[float]] = {"numpy": [], "ours": []}
    with threadpool_limits(CONTENTION_THREADS):
        calls = {
            "numpy": lambda: A @ B,
            "ours": lambda: core.matmul(A, prepared, method="masked", threads=CONTENTION_THREADS),
        }
        for fn in calls.values():
            fn()
        for _ in range(rounds):
            for name, fn in calls.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    print(json.dumps(times))


def contention_records(rounds: int = 15, sparsity: float = 0.75) -> list[Record]:
    """Two thread pools in one process: our OpenMP kernel and numpy's OpenBLAS called alternately on
    2 threads, with the libraries' defaults and with :data:`SPIN_SETTINGS` (one child process per
    setting, since both libraries read them at start-up)."""
    records = []
    for label, extra in (("library defaults", {}), ("SPIN_SETTINGS", SPIN_SETTINGS)):
        env = {k: v for k, v in os.environ.items() if k not in SPIN_SETTINGS} | extra
        out = subprocess.run(
            [sys.executable, "-c", _CONTENTION_CHILD, str(rounds), str(sparsity)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        times = json.loads(out.strip().splitlines()[-1])
        settings = " ".join(f"{k}={env.get(k, 'unset')}" for k in SPIN_SETTINGS)
        records.append(
            Record(
                SYSTEM,
                f"{CONTENTION_N}^3 fp32 random {sparsity:.0%} zeros, {CONTENTION_THREADS} threads, numpy and "
                f"ours alternating in one process, {label}",
                f"time (masked, B prepared, {rounds} rounds)",
                "s",
                statistics.median(times["ours"]),
                NUMPY,
                statistics.median(times["numpy"]),
                spread={
                    "ours": [min(times["ours"]), max(times["ours"])],
                    "peer": [min(times["numpy"]), max(times["numpy"])],
                    "rounds": rounds,
                },
                notes=f"{settings}; wall clock, medians; one child process per setting; {blas_note()}; "
                f"{machine(load=True)}",
            )
        )
    return records
