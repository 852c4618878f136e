"""Fit + top-k neighbours against peers, interleaved on the same data (``timing.compare``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from frugalml.common import env
from frugalml.common.errors import FrugalError
from frugalml.common.progress import progress
from frugalml.common.report import Record
from frugalml.common.timing import compare
from frugalml.urerf.bench.peers import TREEPLE_PYTHON, treeple_worker
from frugalml.urerf.bench.quality import SYSTEM, neighbours_of
from frugalml.urerf.datasets import simulate
from frugalml.urerf.forest import UnsupervisedRandomerForest

TARGET_PREFIXES = ("goal", "target")  # records against a fixed target, not a peer (older files: "goal")


def speed(
    peers: Sequence[str], *, n: int, p: int, n_trees: int, k: int = 50, rounds: int = 3, quiet: bool = False
) -> list[Record]:
    """Fit + top-k neighbours, ours against each peer, interleaved on the same helix data."""
    X = simulate("helix", n=n, noise_dims=max(p - 3, 0), seed=0, geodesic=False).X

    def ours():
        forest = UnsupervisedRandomerForest(n_trees, random_state=0).fit(X)
        return forest.kneighbors(n_neighbors=k, return_distance=False)

    workload = f"fit + top-{k} neighbours, helix n={n}, p={X.shape[1]}, {n_trees} trees"
    records = []
    for peer in progress(list(peers), desc="speed", quiet=quiet):

        def theirs(peer=peer):
            return neighbours_of(peer, X, k, 0, n_trees)

        try:
            theirs()
        except FrugalError as exc:
            seconds = min(_seconds(ours) for _ in range(rounds))
            records.append(
                Record(SYSTEM, workload, "time", "s", seconds, peer, None, notes=f"peer unavailable: {exc}")
            )
            continue
        # wall clock: both sides run on all cores (numba threads / the peer's n_jobs)
        comparison = compare(ours, theirs, rounds=rounds, warmup=1, clock=time.perf_counter)
        records.append(
            Record.from_comparison(
                comparison,
                system=SYSTEM,
                workload=workload,
                peer=peer,
                notes=f"median of interleaved rounds on {env.machine(load=True)}; peers use their own "
                "parallelism, tree peers use our top-k kernel on their leaves" + _peer_note(peer),
            )
        )
    return records


def _peer_note(peer: str) -> str:
    """Where a treeple peer ran, when it ran in another Python."""
    python = os.environ.get(TREEPLE_PYTHON)
    if not peer.startswith("treeple") or not python:
        return ""
    versions = ", ".join(f"{k} {v}" for k, v in treeple_worker(python).versions.items())
    return (
        f"; treeple ran in another Python ({versions}) fed by .npy files, whose write/read is inside its time"
    )


def _seconds(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_plot(records: Sequence[Record]):
    """Bar chart of ratios (peer / ours for time, ours / peer for precision)."""
    from frugalml.common.report import new_figure

    rows = [r for r in records if r.ratio is not None and r.peer and not r.peer.startswith(TARGET_PREFIXES)]
    fig, ax = new_figure(figsize=(8, 0.35 * len(rows) + 1.5))
    labels = [f"{r.metric} vs {r.peer}: {r.workload}"[:90] for r in rows]
    ratios = [float(r.ratio or 0.0) for r in rows]
    ax.barh(range(len(rows)), ratios, color=["tab:green" if x >= 1 else "tab:red" for x in ratios])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("ratio (> 1: URerF better)")
    return fig
