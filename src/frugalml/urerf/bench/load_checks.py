"""What the structural checks of a saved forest cost: a cold single-row query (load the file, then
find one new point's top-k neighbours) with the checks, against the same query without them."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from frugalml.common import env
from frugalml.common.report import Record
from frugalml.common.timing import compare
from frugalml.urerf.bench.quality import SYSTEM
from frugalml.urerf.datasets import simulate
from frugalml.urerf.fileformat import check_arrays, check_training_leaves, read_forest
from frugalml.urerf.forest import UnsupervisedRandomerForest

TARGET_SHARE = 5.0  # percent of a cold single-row query the checks may take


def _drop_cache(path: Path) -> None:
    """Evict the file from the page cache (its pages are clean), so each load reads the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _load_unchecked(path: Path) -> UnsupervisedRandomerForest:
    """``load`` minus the structural checks: magic, version, checksums and parameters only."""
    meta, arrays = read_forest(path)
    forest = UnsupervisedRandomerForest._from_meta(meta)
    for name, value in arrays.items():
        setattr(forest, name, value)
    return forest


@contextmanager
def _timed_checks(spent: list[float], cpu: list[float]) -> Iterator[None]:
    """Time every call of the structural checks that ``UnsupervisedRandomerForest.load`` makes, inside
    the real load path: wall seconds of each call go to ``spent``, its CPU seconds to ``cpu`` (the
    checks run on the calling thread)."""
    from frugalml.urerf import forest as forest_module

    original = forest_module.check_arrays

    def timed(*args, **kwargs):
        start, cpu_start = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - cpu_start)

    forest_module.check_arrays = timed
    try:
        yield
    finally:
        forest_module.check_arrays = original


def load_check_records(
    n: int = 20_000, p: int = 13, n_trees: int = 300, k: int = 50, rounds: int = 7
) -> list[Record]:
    """Cold single-row query with and without the checks (interleaved), and the checks' share of it.

    The share is measured inside each checked query (the checks' own seconds over that query's
    seconds, median over the rounds), so the noise of cold reads does not enter it; the unchecked
    load still verifies magic, version, checksums and parameters, so the records isolate the
    structural checks. The checks timed alone and the training points' leaves (checked on the first
    query about the training points) are reported beside it.
    """
    X = simulate("helix", n=n, noise_dims=p - 3, seed=0, geodesic=False).X
    forest = UnsupervisedRandomerForest(n_trees, random_state=0).fit(X)
    row = X[:1] + 0.01
    spent: list[float] = []
    cpu: list[float] = []
    query_cpu: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "forest.urerf"
        forest.save(path)
        megabytes = path.stat().st_size / 1e6

        def checked():
            _drop_cache(path)
            start = time.process_time()  # all threads of this process: the query's kernels use several
            answer = UnsupervisedRandomerForest.load(path).kneighbors(row, k)
            query_cpu.append(time.process_time() - start)
            return answer

        def unchecked():
            _drop_cache(path)
            return _load_unchecked(path).kneighbors(row, k)

        with _timed_checks(spent, cpu):
            comparison = compare(checked, unchecked, rounds=rounds, warmup=1, clock=time.perf_counter)
        meta, arrays = read_forest(path)

        def checks_only():
            check_arrays(path, arrays, n_trees, n, p, "all")

        def training_leaves():
            check_training_leaves(path, arrays, "all")

        alone = compare(checks_only, training_leaves, rounds=rounds, warmup=1, clock=time.perf_counter)
    inside = spent[-rounds:]  # the measured rounds (after the warm-up call)
    shares = [100.0 * c / q for c, q in zip(inside, comparison.ours.samples, strict=True)]
    cpu_shares = [100.0 * c / q for c, q in zip(cpu[-rounds:], query_cpu[-rounds:], strict=True)]
    workload = (
        f"cold single-row top-{k} query from a {megabytes:.0f} MB forest file "
        f"(helix n={n}, p={p}, {n_trees} trees)"
    )
    note = (
        f"load (file evicted from the page cache each time, checksums verified) + one query; median of "
        f"{rounds} interleaved rounds on {env.machine(load=True)}"
    )
    share = statistics.median(shares)
    return [
        Record.from_comparison(
            comparison,
            system=SYSTEM,
            workload=workload,
            peer="same load without structural checks",
            notes=note,
        ),
        Record(
            SYSTEM,
            workload,
            "structural checks' share of the query",
            "%",
            share,
            f"target ({TARGET_SHARE:g}%)",
            TARGET_SHARE,
            spread={
                "share_pct": [min(shares), share, max(shares)],
                "cpu_share_pct": [min(cpu_shares), statistics.median(cpu_shares), max(cpu_shares)],
                "checks_in_query_s": [min(inside), statistics.median(inside), max(inside)],
                "checks_alone_s": [alone.ours.min, alone.ours.median, alone.ours.max],
                "training_leaves_s": [alone.peer.min, alone.peer.median, alone.peer.max],
            },
            notes=f"the checks took {statistics.median(inside) * 1e3:.1f} ms inside the query "
            f"(median; {alone.ours.median * 1e3:.1f} ms timed alone) of the query's "
            f"{comparison.ours.median * 1e3:.1f} ms; the training points' leaves, checked on the first "
            f"query about the training points, {alone.peer.median * 1e3:.1f} ms more; in CPU time (less "
            f"sensitive to other work on the machine) the checks are {statistics.median(cpu_shares):.1f}% "
            f"of the query's CPU time (disk waits excluded); {note}",
        ),
    ]
