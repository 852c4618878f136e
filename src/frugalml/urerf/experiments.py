"""The paper's experiments as functions returning report Records: noise sweeps, Drosophila, speed, scale.

Quality records compare our precision with a peer's measured in the same run (or with the
paper's published number); speed records come from ``timing.compare`` (interleaved rounds).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from frugalml.common.errors import FrugalError, InvalidInputError
from frugalml.common.progress import progress
from frugalml.common.report import Record
from frugalml.common.timing import compare
from frugalml.urerf.baselines import BASELINES, TREEPLE_PYTHON, treeple_worker
from frugalml.urerf.datasets import simulate
from frugalml.urerf.forest import UnsupervisedRandomerForest
from frugalml.urerf.metrics import geodesic_precision_at_k, label_precision_at_k

SYSTEM = "urerf"
PAPER_NOISE = (0, 10, 50, 100, 1000, 5000, 10000)
PAPER_P50 = {  # Madhyastha et al. 2019, Fig. 3/4: P@50, n = 1000, 300 trees, axis-aligned
    "linear": {
        "urerf": (0.811, 0.751, 0.687, 0.648, 0.405, 0.273, 0.257),
        "isomap": (0.995, 0.054),
        "umap": (0.817, 0.051),
        "rf": (0.899, 0.284, 0.121, 0.091, 0.053),
    },
    "helix": {
        "urerf": (0.831, 0.752, 0.624, 0.560, 0.281, 0.193, 0.173),
        "isomap": (1.0, 0.240, 0.120, 0.094, 0.058),
        "umap": (0.834, 0.334, 0.198, 0.149, 0.051),
        "rf": (0.847, 0.355, 0.097, 0.078),
        "euclidean": (0.897, 0.247, 0.139, 0.110, 0.065),
    },
    "sphere": {
        "urerf": (0.534, 0.602, 0.522, 0.478, 0.317, 0.229, 0.241),
        "isomap": (0.947, 0.108, 0.060),
        "umap": (0.677, 0.081),
    },
}
DROSOPHILA_K = (50, 70, 90, 110, 130, 150)
PAPER_DROSOPHILA = {
    "urerf": (0.794, 0.722, 0.633, 0.569, 0.500, 0.452),
    "isomap": (0.746, 0.676, 0.580, 0.521, 0.469, 0.422),
    "umap": (0.740, 0.648, 0.566, 0.534, 0.475, 0.428),
    "rf": (0.736, 0.643, 0.584, 0.550, 0.502, 0.456),
    "euclidean": (0.735, 0.637, 0.538, 0.460, 0.405, 0.369),
}


def paper_value(dataset: str, method: str, noise: int) -> float | None:
    """The paper's P@50 for a method at a noise level, when it was published."""
    values = PAPER_P50.get(dataset, {}).get(method, ())
    position = PAPER_NOISE.index(noise) if noise in PAPER_NOISE else len(values)
    return values[position] if position < len(values) else None


def neighbours_of(
    method: str, X: np.ndarray, k: int, seed: int, n_trees: int, forest_options: dict | None = None
) -> np.ndarray:
    """k-NN lists of one method ("urerf" or a baseline name) on X."""
    if method == "urerf":
        forest = UnsupervisedRandomerForest(n_trees, random_state=seed, **(forest_options or {}))
        return forest.fit(X).kneighbors(n_neighbors=k, return_distance=False)
    if method not in BASELINES:
        raise InvalidInputError(f"unknown method {method!r}; choose urerf or one of {', '.join(BASELINES)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BASELINES[method](X, k, seed=seed, n_trees=n_trees)


def noise_sweep(
    datasets: Sequence[str],
    noise_levels: Sequence[int],
    methods: Sequence[str],
    *,
    n: int = 1000,
    n_trees: int = 300,
    seeds: Sequence[int] = (0, 1, 2),
    k: int = 50,
    projection: str = "axis",
    quiet: bool = False,
) -> tuple[dict[tuple[str, int, str], float], dict[str, str]]:
    """Mean P@k over seeds for every (dataset, noise, method); unavailable peers are reported.

    Returns (scores, skipped) where skipped maps a method to why it could not run.
    """
    scores: dict[tuple[str, int, str], float] = {}
    skipped: dict[str, str] = {}
    jobs = [(d, z, m) for d in datasets for z in noise_levels for m in methods]
    for dataset, noise, method in progress(jobs, desc="noise sweep", quiet=quiet):
        if method in skipped:
            continue
        values = []
        for seed in seeds:
            data = simulate(dataset, n=n, noise_dims=noise, seed=seed)
            try:
                ind = neighbours_of(method, data.X, k, seed, n_trees, {"projection": projection})
            except FrugalError as exc:  # an optional peer that cannot run here
                skipped[method] = str(exc)
                break
            values.append(geodesic_precision_at_k(ind, data.geodesic, k))
        if values:
            scores[(dataset, noise, method)] = float(np.mean(values))
    return scores, skipped


def sweep_records(
    scores: dict[tuple[str, int, str], float], *, n: int, n_trees: int, n_seeds: int, k: int
) -> list[Record]:
    """Our P@k against each peer measured in the run and against the paper's URerF number."""
    records = []
    for (dataset, noise, method), value in scores.items():
        if method == "urerf":
            continue
        ours = scores[(dataset, noise, "urerf")]
        records.append(
            Record(
                SYSTEM,
                f"{dataset}+{noise} noise dims, n={n}",
                f"P@{k}",
                "fraction",
                ours,
                method,
                value,
                higher_is_better=True,
                notes=f"{n_trees} trees, mean of {n_seeds} seeds",
            )
        )
    for (dataset, noise, method), value in scores.items():
        if method == "urerf" and (published := paper_value(dataset, "urerf", noise)) is not None:
            records.append(
                Record(
                    SYSTEM,
                    f"{dataset}+{noise} noise dims, n={n}",
                    f"P@{k}",
                    "fraction",
                    value,
                    "paper URerF",
                    published,
                    higher_is_better=True,
                    notes=f"paper: 300 trees; ours {n_trees} trees, {n_seeds} seeds",
                )
            )
    return records


def drosophila(
    X: np.ndarray,
    labels: np.ndarray,
    methods: Sequence[str],
    *,
    n_trees: int = 300,
    seeds: Sequence[int] = (0, 1, 2),
    forest_options: dict | None = None,
    quiet: bool = False,
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Label precision at k = 50..150 (step 20) per method, mean over seeds."""
    results, skipped = {}, {}
    for method in progress(list(methods), desc="drosophila", quiet=quiet):
        runs = []
        for seed in seeds:
            try:
                ind = neighbours_of(method, X, max(DROSOPHILA_K), seed, n_trees, forest_options)
            except FrugalError as exc:
                skipped[method] = str(exc)
                break
            runs.append([label_precision_at_k(ind, labels, k) for k in DROSOPHILA_K])
        if runs:
            results[method] = np.mean(runs, axis=0).tolist()
    return results, skipped


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
                notes="median of interleaved rounds on a shared 2-core machine; peers use their own "
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


def _scale_child(n: int, p: int, n_trees: int, k: int, queue) -> None:
    data = simulate("helix", n=n, noise_dims=p - 3, seed=0, geodesic=False).X
    start, cpu_start = time.perf_counter(), time.process_time()
    forest = UnsupervisedRandomerForest(n_trees, random_state=0).fit(data)
    ind = forest.kneighbors(n_neighbors=k, return_distance=False)
    queue.put((time.perf_counter() - start, time.process_time() - cpu_start, ind.shape))


def scale(n: int = 50_000, p: int = 20, n_trees: int = 100, k: int = 50) -> list[Record]:
    """Top-k neighbours at scale in a fresh process: wall time and peak resident memory.

    The data are a helix with p - 3 noise dimensions. (On pure Gaussian noise FastBIC as published
    keeps cutting off a few tight points, so trees grow about n / 5 deep and fitting is quadratic
    in n; use a fractional ``min_cluster_size`` there.)
    """
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_scale_child, args=(n, p, n_trees, k, queue))
    child.start()
    seconds, cpu_seconds, shape = queue.get()
    child.join()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    workload = f"fit + top-{k} neighbours, helix + {p - 3} noise dims, n={n}, {n_trees} trees"
    note = (
        f"fresh process (numba cache warm if present); output {shape}; CPU time of all threads "
        f"{cpu_seconds:.1f} s (wall time is inflated when the machine is shared)"
    )
    return [
        Record(SYSTEM, workload, "time", "s", seconds, "goal (5 min)", 300.0, notes=note),
        Record(SYSTEM, workload, "peak RSS", "MB", peak_mb, "goal (2 GB)", 2048.0, notes=note),
    ]
