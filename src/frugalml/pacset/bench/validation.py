"""What checking a packed file's header and index costs at open, against a cold single-row query.

Opening a file checks every header field against the file's real length, the index's SHA-256,
every root, tree group and bin before any node block is read (nodes are checked as a query first
uses them, so they are part of the query's time). This measures that open-time check in the same
run as the cold query it precedes, on the >= 100 MB random forest of the full benchmark.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from pathlib import Path

from frugalml.common.env import machine
from frugalml.common.report import Record, merge_json
from frugalml.common.timing import compare
from frugalml.pacset.bench.data import fit_rf
from frugalml.pacset.bench.protocol import BEST, SYSTEM, log, ours_query, pack_as

METRIC = "checks at open, time vs a cold single-row query"
GOAL = 0.05
"""The open-time checks may cost at most this share of a cold single-row query."""


def open_checks(path: Path):
    """A call that runs the open-time checks on ``path``'s metadata and index (already read)."""
    from frugalml.pacset.fileformat import Index, ModelMeta, open_packed

    packed = open_packed(path)
    meta = packed.meta
    with open(path, "rb") as f:
        f.seek(packed.header.payload_offset)
        index = f.read(meta["index_length"])

    def check():
        ModelMeta.from_meta(meta, str(path))
        return Index.parse(index, meta, str(path))

    return check


class EvictionClock:
    """``time.perf_counter`` with the time spent evicting the page cache left out, so that a
    contender can evict its file inside the timed call without the eviction counting."""

    def __init__(self) -> None:
        self.excluded = 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self.excluded

    def evict(self, path: Path) -> None:
        from frugalml.pacset.accounting import evict

        start = time.perf_counter()
        evict(path)
        self.excluded += time.perf_counter() - start


def measure(path: Path, queries, workload: str, rounds: int = 15) -> Record:
    """Interleaved, repeated: the open-time checks against a cold single-row query (open + predict,
    numba engine), each after evicting the file from the page cache (eviction not timed)."""
    check, query = open_checks(path), ours_query(path)
    query(queries[:1])  # numba's kernels loaded, as in a long-lived process
    rows = itertools.cycle(range(len(queries)))
    clock = EvictionClock()

    def checks_only():
        clock.evict(path)
        check()

    def cold_query():
        clock.evict(path)
        i = next(rows)
        query(queries[i : i + 1])

    c = compare(checks_only, cold_query, rounds=rounds, warmup=2, clock=clock)
    share = c.ours.median / c.peer.median
    return Record(
        SYSTEM,
        workload,
        METRIC,
        "s",
        c.ours.median,
        peer="cold single-row query (open + predict, page cache evicted)",
        peer_value=c.peer.median,
        spread={"ours": [c.ours.min, c.ours.max], "peer": [c.peer.min, c.peer.max], "rounds": rounds},
        notes=(
            f"the checks take {share:.2%} of a cold query (target <= {GOAL:.0%}); the query's time "
            "includes checking each node it uses; median of "
            f"{rounds} interleaved rounds, eviction not timed; {machine(load=True)}"
        ),
        command="python benchmarks/pacset/validation_cost.py",
    )


def run_validation_cost(
    json_path: str | os.PathLike | None = None, rows: int = 150_000, trees: int = 64, quiet: bool = False
) -> Record:
    """Fit the full benchmark's RF (``rows`` x 20 features, ``trees`` trees), pack it, measure."""
    from sklearn.datasets import make_classification

    X, y = make_classification(rows + 2000, 20, n_informative=12, flip_y=0.1, random_state=0)
    with tempfile.TemporaryDirectory(prefix="pacset-check-", dir=os.environ.get("PACSET_BENCH_DIR")) as tmp:
        rf = fit_rf(X[:rows], y[:rows], trees, quiet)
        path = pack_as(rf, Path(tmp) / "rf.pacset", BEST)
        del rf
        size = path.stat().st_size / 2**20
        log(quiet, f"  packed {size:.0f} MiB")
        record = measure(path, X[rows:], f"synthetic RF {rows // 1000}k rows ({size:.0f} MiB packed)")
    log(
        quiet,
        f"{record.metric}: {record.ours * 1e6:.0f} us vs {record.peer_value * 1e3:.2f} ms; {record.notes}",
    )
    if json_path is not None:
        merge_json([record], json_path)
    return record
