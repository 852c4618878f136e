"""Tree growth of this engine against an earlier commit's, in one process: CPU and wall time, same trees.

The earlier ``_trees.py`` is loaded from git as a separate module; both grow the same seeds, and the
records say whether the forests are identical. Run it with ``benchmarks/urerf/engine.py REV``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from frugalml.common import env
from frugalml.common.report import Record
from frugalml.common.timing import compare
from frugalml.urerf import _trees
from frugalml.urerf.datasets import simulate
from frugalml.urerf.forest import UnsupervisedRandomerForest

WORKLOADS = ((5000, 13), (1000, 1003), (50000, 20))


def load_engine(rev: str, folder: Path):
    """The module ``src/frugalml/urerf/_trees.py`` as of git revision ``rev``."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/frugalml/urerf/_trees.py"], check=True, capture_output=True, text=True
    ).stdout
    path = folder / f"trees_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"trees_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def grower(module, X: np.ndarray, n_trees: int):
    """A call growing ``n_trees`` default-parameter trees with ``module``'s kernels."""
    Xt = np.ascontiguousarray(X.T, dtype=np.float32)
    p, n = Xt.shape
    cfg = UnsupervisedRandomerForest(n_trees)._resolve(n, p)
    seeds = np.arange(1, n_trees + 1, dtype=np.uint64) * np.uint64(0x9E3779B1)
    node_cap, proj_cap = 2 * n, 4 * n + 16
    if hasattr(module, "TreeParams"):  # parameters in one named tuple

        def grow():
            return module.grow_batch(
                Xt, *module.feature_ranks(Xt), seeds, cfg.kernel_params(), node_cap, proj_cap
            )

        return grow
    tail = (
        seeds,
        cfg.sampling,
        cfg.n_in,
        cfg.projection,
        cfg.mtry,
        cfg.nnz,
        cfg.criterion,
        cfg.min_parent,
        cfg.max_depth,
        cfg.min_cluster_size,
        cfg.min_cluster_fraction,
        node_cap,
        proj_cap,
    )
    if hasattr(module, "feature_ranks"):

        def grow():
            return module.grow_batch(Xt, *module.feature_ranks(Xt), *tail)
    else:

        def grow():
            return module.grow_batch(Xt, *tail)

    return grow


def same_trees(a: tuple, b: tuple) -> bool:
    """Whether two ``grow_batch`` results hold the same trees (rows past each tree's size are unused)."""
    *per_node_a, feat_a, weight_a, leaves_a, inbag_a, sizes_a = a
    *per_node_b, feat_b, weight_b, leaves_b, inbag_b, sizes_b = b
    if not (
        np.array_equal(sizes_a, sizes_b)
        and np.array_equal(leaves_a, leaves_b)
        and np.array_equal(inbag_a, inbag_b)
    ):
        return False
    for t, (nodes, entries) in enumerate(sizes_a):
        if not all(
            np.array_equal(x[t, :nodes], y[t, :nodes]) for x, y in zip(per_node_a, per_node_b, strict=True)
        ):
            return False
        if not (
            np.array_equal(feat_a[t, :entries], feat_b[t, :entries])
            and np.array_equal(weight_a[t, :entries], weight_b[t, :entries])
        ):
            return False
    return True


def engine_records(rev: str) -> list[Record]:
    """CPU and wall time of growing the same trees with this engine and with ``rev``'s, per workload."""
    records = []
    with tempfile.TemporaryDirectory() as folder:
        old = load_engine(rev, Path(folder))
        for n, p in WORKLOADS:
            n_trees = 100 if n < 50000 else 4
            X = simulate("helix", n=n, noise_dims=p - 3, seed=0, geodesic=False).X
            ours, theirs = grower(_trees, X, n_trees), grower(old, X, n_trees)
            same = same_trees(ours(), theirs())
            workload = f"grow {n_trees} trees, helix n={n}, p={p}"
            for clock, metric in ((time.process_time, "CPU time"), (time.perf_counter, "wall time")):
                result = compare(ours, theirs, rounds=3, warmup=1, clock=clock)
                records.append(
                    Record.from_comparison(
                        result,
                        system="urerf",
                        workload=workload,
                        metric=metric,
                        peer=f"previous urerf engine ({rev})",
                        notes=f"tree growth only (grow_batch), interleaved rounds, same seeds; trees "
                        f"{'bit-identical' if same else 'DIFFERENT'}; {numba.get_num_threads()} threads "
                        f"on {env.machine(load=True)}",
                    )
                )
    return records
