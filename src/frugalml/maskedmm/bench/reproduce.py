"""Regenerate maskedmm's result files: one JSON file per claim under a results folder.

``sweep.json`` (+ ``sweep.png``): uniform zeros with every peer and the structured patterns, one
thread; ``auto-sweep.json``: auto vs numpy with more rounds; ``kernels.json``: each masked kernel;
``threads.json``: 2 threads with one child process per method; ``coretype.json``: numpy under the
other OPENBLAS_CORETYPE setting. The target table (``target-table.json``) and the thread-pool
contention (``thread-contention.json``) have their own entry points.
"""

from __future__ import annotations

import os
from pathlib import Path

from frugalml.common.report import Record, merge_json, print_table, write_json
from frugalml.maskedmm.bench.auto_sweep import auto_records, kernel_records
from frugalml.maskedmm.bench.contenders import blas_note
from frugalml.maskedmm.bench.processes import coretype_records, subprocess_records
from frugalml.maskedmm.bench.sweep import BenchConfig, plot, run

UNIFORM = BenchConfig(
    n=1024,
    sparsities=(0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99),
    patterns=("random",),
    threads=(1,),
    rounds=5,
)
STRUCTURED = BenchConfig(
    n=1024,
    sparsities=(0.5, 0.7, 0.8, 0.9, 0.95, 0.99),
    patterns=("block16", "columns", "relu"),
    threads=(1,),
    rounds=5,
    peers=("scipy",),
)
SHARED = ("auto-sweep",)  # files other entry points merge into: merged here too, never overwritten


def publish(records: list[Record], path: str | os.PathLike, title: str, *, merge: bool = True) -> None:
    """Print ``records`` as a table and write them to ``path``: merged into the records already
    there (same workload, metric and peer replaced) or, with ``merge=False``, replacing the file."""
    print_table(records, title=title)
    if merge:
        kept = merge_json(records, path)
        print(f"merged {len(records)} records into {path} ({kept} others kept)")
    else:
        write_json(records, path)
        print(f"wrote {path}")


def run_all(out_dir: str | os.PathLike) -> dict[str, list[Record]]:
    """Measure every claim this module regenerates and write ``<out_dir>/<claim>.json`` (several
    minutes); return the records by claim."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    claims = {
        "sweep": run(UNIFORM, progress_desc="uniform") + run(STRUCTURED, progress_desc="structured"),
        "auto-sweep": auto_records(),
        "kernels": kernel_records(),
        "threads": subprocess_records(threads=2),
        "coretype": coretype_records(),
    }
    for claim, records in claims.items():
        publish(records, out / f"{claim}.json", f"maskedmm {claim} ({blas_note()})", merge=claim in SHARED)
    plot([r for records in claims.values() for r in records], out / "sweep.png")
    print(f"wrote {out / 'sweep.png'}")
    return claims


# ---------------------------------------------------------------------------------------------
# ``frugal reproduce``: the paper's claims (and the README's own) re-measured, quick or full size.

PAPER = "Wheatman, Madhyastha, Burns, arXiv 2402.14118"
COMMAND = "frugal reproduce --systems maskedmm --full -o report/"
QUICK_NOTE = "quick mode: {what}; full mode: {full}"
OWN = "(ours, README)"  # a claim of our README, not of the paper: no paper value, and never "better"
OWN_TOLERANCE = 0.1  # an own claim is reproduced when the re-run reaches 90% of the stated figure


def _find(records: list[Record], *, sparsity: float, metric: str, peer: str | None, threads: int = 1):
    """The one record of ``records`` at ``sparsity`` whose metric starts with ``metric`` and whose
    peer is ``peer`` (None: any)."""
    for r in records:
        if f"{sparsity:.0%} zeros, {threads} thread" not in r.workload:
            continue
        if r.metric.startswith(metric) and (peer is None or r.peer == peer):
            return r
    raise LookupError(f"no record {metric!r} vs {peer!r} at {sparsity:.0%} on {threads} thread(s)")


def _claim(
    claim: str, ours: float, peer: tuple[str, float | None], paper: tuple[str, float | None, str], **fields
) -> Record:
    """A record stating one claim as a speedup over dense BLAS ('x', higher is better)."""
    from frugalml.common.reproduction import verdict

    statement, paper_value, source = paper
    chosen = fields.pop("verdict", None)
    if statement.startswith(OWN):  # our own claim: paper_value is the figure we stated, on another run
        stated, paper_value = paper_value, None
        if chosen is None and stated is not None:
            chosen = "reproduced" if ours >= (1 - OWN_TOLERANCE) * stated else "not reproduced"
    if chosen is None:
        chosen = verdict(ours, paper_value, higher_is_better=True) if paper_value else ""
    return Record(
        "maskedmm",
        fields.pop("workload"),
        fields.pop("metric", "speedup over numpy dense (BLAS), one thread"),
        fields.pop("unit", "x"),
        ours,
        peer[0],
        peer[1],
        higher_is_better=True,
        claim=f"maskedmm/{claim}",
        paper_statement=statement,
        paper_value=paper_value,
        paper_source=source,
        verdict=chosen,
        command=fields.pop("command", COMMAND),
        **fields,
    )


def _dense_blas(mode: str, folder: Path) -> list[Record]:
    """The paper's headline claims on uniform zeros, one thread, vs numpy/OpenBLAS and CSR peers."""
    from frugalml.maskedmm.bench.contenders import NUMPY, blas_note
    from frugalml.maskedmm.bench.target_table import target_records

    quick = mode == "quick"
    rounds = 7 if quick else 21
    sizes = (0.6, 0.75, 0.9, 0.95) if quick else (0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99)
    raw = target_records(rounds=rounds, sparsities=sizes, auto_sparsities=(), peer_sparsities=(0.9,))
    note = (
        QUICK_NOTE.format(
            what=f"1024^3 fp32 at {', '.join(f'{s:.0%}' for s in sizes)} zeros, {rounds} rounds",
            full="60-99% zeros, 21 rounds",
        )
        if quick
        else f"1024^3 fp32, {rounds} rounds"
    )
    at90 = _find(raw, sparsity=0.9, metric="time (masked, B prepared", peer=NUMPY)
    sparse = [
        r
        for r in raw
        if "90% zeros" in r.workload and r.metric.startswith("time (auto,") and "csr" in (r.peer or "")
    ]
    auto90 = _find(raw, sparsity=0.9, metric="time (auto,", peer=NUMPY)
    best = min(sparse, key=lambda r: r.peer_value or 0.0) if sparse else None  # the fastest CSR peer
    best_speedup = (auto90.peer_value or 0.0) / (best.peer_value or 1.0) if best else None
    at60 = _find(raw, sparsity=0.6, metric="time (masked, B prepared", peer=NUMPY)
    auto60 = _find(raw, sparsity=0.6, metric="time (auto, B prepared", peer=NUMPY)
    fma = _find(raw, sparsity=0.9, metric="vector FMA reduction vs dense", peer=None)
    claims = [
        _claim(
            "speedup-over-dense",
            at90.ratio,
            (best.peer if best else "no CSR peer ran", best_speedup),
            ("up to 2x faster than dense MKL GEMM at 60-95% zeros", 2.0, "abstract, speedup figures"),
            workload=at90.workload,
            metric="speedup over numpy dense (BLAS) at 90% zeros, B prepared, one thread",
            spread=at90.spread,
            reason=f"masked kernel with B prepared {at90.ratio:.2f}x numpy/OpenBLAS at 90% zeros; "
            f"the best CSR peer reaches {best_speedup or 0:.2f}x of numpy",
            notes=f"{note}; peer_value: the CSR peer's own speedup over numpy (conversion included); "
            f"{at90.notes}",
        ),
        _claim(
            "break-even",
            at60.ratio,
            ("auto (the planner runs BLAS here)", auto60.ratio),
            ("faster than dense BLAS from 60% zeros", 1.0, "abstract (60-95% zeros)"),
            workload=at60.workload,
            metric="speedup over numpy dense (BLAS) at 60% zeros, masked kernel, B prepared",
            spread=at60.spread,
            reason=f"at 60% zeros the masked kernel runs at {at60.ratio:.2f}x of numpy ({blas_note()}; "
            f"the paper's baseline was MKL), and auto at {auto60.ratio:.2f}x (it runs BLAS below break-even)",
            notes=f"{note}; peer_value: auto's speedup at the same point; {at60.notes}",
        ),
        _claim(
            "fewer-instructions",
            fma.ours,
            ("dense GEMM", 1.0),
            ("up to 4x fewer instructions than dense", 4.0, "abstract, instruction counts"),
            workload=fma.workload,
            metric="vector FMAs executed, dense / ours (90% zeros)",
            reason=f"stats() counts {fma.ours:.1f}x fewer vector FMAs than dense at 90% two-sided "
            "zeros (FMAs, not retired instructions: the paper counts all instructions)",
            notes=f"{note}; {fma.notes}",
        ),
        _claim(
            "vs-sparse-libraries",
            best.ratio or 0.0 if best else 0.0,
            (best.peer if best else "no CSR peer ran", 1.0),
            ("faster than MKL sparse (CSR) on these inputs", 1.0, "abstract"),
            workload=auto90.workload,
            metric="speedup over the fastest CSR peer at 90% zeros (auto, B as given, conversion included)",
            reason=f"auto (B as given) is {best.ratio or 0.0 if best else 0.0:.2f}x faster than "
            f"the fastest CSR peer ({best.peer if best else '-'}) at 90% zeros",
            notes=f"{note}; {auto90.notes}",
        ),
    ]
    return claims + raw


def _auto_overhead(mode: str, folder: Path) -> list[Record]:
    """README: auto costs little where it runs BLAS and wins where zeros pay (one thread)."""
    from frugalml.maskedmm.bench.auto_sweep import AUTO_SWEEP, auto_records

    quick = mode == "quick"
    sizes = (0.0, 0.5, 0.75, 0.9) if quick else AUTO_SWEEP
    rounds = 9 if quick else 15
    raw = auto_records(sparsities=sizes, rounds=rounds)
    dense_side = [r.ratio for r in raw if _sparsity(r) <= 0.6]
    at90 = _find(raw, sparsity=0.9, metric="time (auto", peer=None)
    worst = min(dense_side)
    note = f"1024^3 fp32 at {', '.join(f'{s:.0%}' for s in sizes)} zeros, {rounds} rounds"
    return [
        _claim(
            "auto-overhead",
            worst,
            ("numpy dense (BLAS)", 1.0),
            (
                "(ours, README) auto costs little where it runs BLAS: 0.95-0.98x at 0-60% zeros",
                0.95,
                "README; benchmarks/results/maskedmm/auto-sweep.json",
            ),
            workload="1024^3 fp32 random 0-60% zeros, 1 thread(s)",
            metric="slowest auto speedup over numpy at 0-60% zeros",
            verdict="reproduced" if worst >= 0.9 else "not reproduced",
            reason=f"auto's worst ratio where it runs BLAS is {worst:.2f}x (goal >= 0.95x, "
            f"noise ~3%); at 90% zeros {at90.ratio:.2f}x",
            notes=note,
        ),
        *raw,
    ]


def _sparsity(r: Record) -> float:
    return float(r.workload.split(" zeros")[0].split()[-1].rstrip("%")) / 100


def _patterns(mode: str, folder: Path) -> list[Record]:
    """README: auto with B prepared vs numpy across zero patterns at 90% zeros (and the plot)."""
    from frugalml.maskedmm.bench.contenders import NUMPY
    from frugalml.maskedmm.bench.sweep import plot, run

    quick = mode == "quick"
    config = (
        STRUCTURED
        if not quick
        else BenchConfig(
            n=1024,
            sparsities=(0.9,),
            patterns=("random", "block16", "columns", "relu"),
            threads=(1,),
            rounds=5,
            peers=(),
        )
    )
    raw = run(config, quiet=True, progress_desc="patterns")
    if not quick:
        raw += run(UNIFORM, quiet=True, progress_desc="uniform")
    plot(raw, folder / "patterns-sweep.png")
    wins = {
        r.workload.split()[2]: r.ratio
        for r in raw
        if "90% zeros" in r.workload and r.metric == "time (auto, B prepared)" and r.peer == NUMPY
    }
    low = min(wins.values())
    return [
        _claim(
            "patterns",
            low,
            ("numpy dense (BLAS)", 1.0),
            (
                "(ours, README) ~2.3-2.5x at 90% zeros whatever the pattern (random, block16, columns, relu)",
                2.25,
                "README; benchmarks/results/maskedmm/sweep.json",
            ),
            workload="1024^3 fp32, 90% zeros, 1 thread(s), four patterns",
            metric="lowest speedup of auto (B prepared) over numpy across patterns at 90% zeros",
            reason="at 90% zeros auto with B prepared runs "
            + ", ".join(f"{k} {v:.2f}x" for k, v in wins.items()),
            notes=("quick mode: 90% zeros only, 5 rounds, numpy the only peer" if quick else "full sweep"),
        ),
        *raw,
    ]


def _kernels(mode: str, folder: Path) -> list[Record]:
    """README: the row-skip kernel beats the tile kernel with B prepared (one thread)."""
    from frugalml.maskedmm.bench.auto_sweep import kernel_records

    quick = mode == "quick"
    raw = kernel_records(sparsities=(0.9,) if quick else (0.75, 0.9, 0.95, 0.99), rounds=7 if quick else 15)
    rows = _find(raw, sparsity=0.9, metric="time (masked, B prepared, row-skip", peer=None)
    tile = _find(raw, sparsity=0.9, metric="time (masked, B prepared, tile", peer=None)
    return [
        _claim(
            "row-skip-kernel",
            rows.ratio,
            (tile.metric.split(", ")[2], tile.ratio),
            (
                "(ours, README) row-skip 2.55x vs tile 1.86x over numpy at 90% zeros",
                2.55,
                "README; benchmarks/results/maskedmm/kernels.json",
            ),
            workload=rows.workload,
            metric="speedup over numpy at 90% zeros, B prepared (peer: the tile kernel's)",
            verdict="reproduced" if rows.ratio > tile.ratio else "not reproduced",
            reason=f"row-skip {rows.ratio:.2f}x vs tile {tile.ratio:.2f}x over numpy at 90% zeros",
            notes=("quick mode: 90% zeros, 7 rounds; " if quick else "") + rows.notes,
        ),
        *raw,
    ]


def _two_threads(mode: str, folder: Path) -> list[Record]:
    """README: 2 threads, one child process per method, vs numpy on 2 threads."""
    quick = mode == "quick"
    raw = subprocess_records(
        sparsities=(0.9,) if quick else (0.5, 0.75, 0.9, 0.95, 0.99),
        rounds=1 if quick else 3,
        reps=5 if quick else 7,
    )
    masked = _find(raw, sparsity=0.9, metric="time (masked, B prepared", peer=None, threads=2)
    auto = _find(raw, sparsity=0.9, metric="time (auto", peer=None, threads=2)
    return [
        _claim(
            "two-threads",
            masked.ratio,
            ("auto (B as given)", auto.ratio),
            (
                "(ours, README) masked, B prepared 2.33x over numpy at 90% zeros on 2 threads",
                2.33,
                "README; benchmarks/results/maskedmm/threads.json",
            ),
            workload=masked.workload,
            metric="speedup over numpy at 90% zeros, 2 threads, one child process per method",
            reason=f"masked with B prepared {masked.ratio:.2f}x, auto {auto.ratio:.2f}x over numpy "
            "on 2 threads (wall clock: sensitive to other load)",
            notes=("quick mode: 90% zeros, one child per method, 5 calls; " if quick else "") + masked.notes,
        ),
        *raw,
    ]


def _coretype(mode: str, folder: Path) -> list[Record]:
    """README: OPENBLAS_CORETYPE changes numpy's speed, so a ratio against numpy must name its kernel."""
    import statistics
    import time

    from threadpoolctl import threadpool_limits

    from frugalml.maskedmm import patterns

    quick = mode == "quick"
    rounds = 5 if quick else 7
    raw = coretype_records(sparsities=(0.9,) if quick else (0.75, 0.9, 0.95), rounds=rounds)
    r = raw[0] if quick else _find(raw, sparsity=0.9, metric="time", peer=None)
    A, B = patterns.operands("random", 1024, 0.9, seed=7)
    with threadpool_limits(limits=1):
        here = []
        for _ in range(rounds + 1):
            start = time.thread_time()
            A @ B
            here.append(time.thread_time() - start)
    inprocess = r.ours and statistics.median(here[1:]) / r.ours
    shift = (r.ratio or 0.0) / inprocess
    return [
        _claim(
            "coretype-trap",
            r.ratio or 0.0,
            ("numpy dense, the kernel OpenBLAS detects (this process)", inprocess),
            (
                "(ours, README) forcing OPENBLAS_CORETYPE changes numpy's speed (Haswell: 3.89x vs "
                "~2.5x for the detected kernel at 90% zeros on the Xeon), so ratios must name the kernel",
                None,
                "README; benchmarks/results/maskedmm/coretype.json",
            ),
            workload=r.workload,
            metric="speedup of masked (B prepared) over numpy under the other OPENBLAS_CORETYPE, 90% zeros",
            verdict="reproduced" if abs(shift - 1) > OWN_TOLERANCE else "not reproduced",
            reason=f"masked, B prepared reads {r.ratio or 0:.2f}x against numpy with the other core type "
            f"and {inprocess:.2f}x against the detected kernel (the ratio moves {shift:.2f}x)",
            notes=("quick mode: 90% zeros, 5 calls; " if quick else "") + r.notes,
        ),
        *raw,
    ]


def _contention(mode: str, folder: Path) -> list[Record]:
    """README: the spin settings cut the cost of two thread pools in one process."""
    from frugalml.maskedmm.bench.processes import contention_records

    quick = mode == "quick"
    raw = contention_records(rounds=7 if quick else 21)
    default, settled = raw
    gain = default.ours / settled.ours
    return [
        _claim(
            "spin-settings",
            gain,
            ("library defaults", 1.0),
            (
                "(ours, README) OMP_WAIT_POLICY=passive OPENBLAS_THREAD_TIMEOUT=4: ours 8.95 -> 4.93 ms "
                "(1.82x) when ours and numpy alternate on 2 threads",
                1.82,
                "README; benchmarks/results/maskedmm/thread-contention.json",
            ),
            workload=settled.workload,
            metric="our time with library defaults / with the spin settings",
            verdict="reproduced" if gain > 1.1 else "not reproduced",
            reason=f"our kernel {default.ours * 1e3:.2f} -> {settled.ours * 1e3:.2f} ms, numpy "
            f"{default.peer_value * 1e3:.2f} -> {settled.peer_value * 1e3:.2f} ms with the settings",
            notes=("quick mode: 7 rounds; " if quick else "") + settled.notes,
        ),
        *raw,
    ]


def _stored(mode: str, folder: Path) -> list[Record]:
    """Never run: the end-to-end checks are answered by their stored results files."""
    return []


def reproductions():
    """maskedmm's claim checks for ``frugal reproduce`` (quick: ~80 s on 2 cores at load average 7)."""
    from frugalml.common.reproduction import Reproduction

    return [
        Reproduction("dense-blas", _dense_blas, 28),
        Reproduction("auto-overhead", _auto_overhead, 5),
        Reproduction("patterns", _patterns, 30),
        Reproduction("kernels", _kernels, 2),
        Reproduction("two-threads", _two_threads, 6),
        Reproduction("coretype", _coretype, 2),
        Reproduction("thread-contention", _contention, 6),
        # an hour at full size (training, 32 cases): the stored runs stand in for it
        Reproduction("end-to-end", _stored, 0, modes=(), stored="maskedmm/e2e.json"),
        Reproduction("end-to-end-natural", _stored, 0, modes=(), stored="maskedmm/e2e-quick.json"),
        Reproduction("end-to-end-quick-l1", _stored, 0, modes=(), stored="maskedmm/e2e-quick-l1.json"),
        Reproduction("dense-floor", _stored, 0, modes=(), stored="maskedmm/floor.json"),
        Reproduction("decode-batch-64-small", _stored, 0, modes=(), stored="maskedmm/floor-decode64.json"),
        Reproduction("gated-up", _stored, 0, modes=(), stored="maskedmm/gated-up.json"),
    ]
