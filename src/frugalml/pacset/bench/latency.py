"""``frugal pacset bench``: cold single queries against real peers, every layout, Redis key reads.

The protocol is in :mod:`frugalml.pacset.bench.protocol`. Numba is compiled (and cached) before
timing; its JIT cost is measured separately in a fresh process (:func:`jit_cost`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from frugalml.common.errors import ServiceUnavailableError
from frugalml.common.report import Record, print_table
from frugalml.pacset.bench.data import fit_rf, load_tabular
from frugalml.pacset.bench.protocol import (
    BEST,
    PLAIN_LAYOUTS,
    SYSTEM,
    Contender,
    Count,
    Workload,
    cold_queries,
    count_record,
    latency_record,
    log,
    ours_query,
    pack_as,
    pack_layouts,
    pages_record,
    save_latency,
    sklearn_peers,
)

MINCORE_NOTE = "mincore after the query; includes ~4 header/index pages"


def bench_forest(
    name: str, model, X_test: np.ndarray, run: Workload, max_nodes: int = 2_000_000
) -> list[Record]:
    """Cold queries on one sklearn forest: every layout of ours vs the peers, Redis key reads, warm batch."""
    log(run.quiet, f"[{name}]")
    paths = pack_layouts(model, run.tmp, name, run.quiet)
    ours = {
        label: Contender(f"pacset {label}", p, ours_query(p), kind="pacset") for label, p in paths.items()
    }
    peers = sklearn_peers(model, X_test, run.tmp, name, max_nodes, run.quiet)
    queries = X_test[: run.n_queries]
    for c in ours.values():  # compile and check equality once, outside the timing
        np.testing.assert_array_equal(c.query(queries[:20]), model.predict(queries[:20]))
    cold_queries(list(ours.values()) + peers, queries, run.quiet)
    best = ours[BEST]
    records = [latency_record(name, best, p) for p in peers]
    records += [latency_record(name, best, ours[label]) for label in PLAIN_LAYOUTS]
    records += [pages_record(name, best, label, ours[label], MINCORE_NOTE) for label in PLAIN_LAYOUTS]
    if run.redis_url is not None:
        records += redis_rows(name, paths, queries, run.redis_url)
    records.append(warm_batch(name, model, best.path, X_test))
    return records


def redis_rows(name: str, paths: dict[str, Path], queries: np.ndarray, redis_url: str) -> list[Record]:
    """Redis key reads (and localhost latency) per query of bin+blockwise vs each plain layout."""
    from frugalml.pacset.fileformat import open_packed
    from frugalml.pacset.runtime import PackedForest
    from frugalml.pacset.stores import upload_to_redis

    keys = {}
    for label, path in paths.items():
        prefix = f"{name}-{label}"
        upload_to_redis(open_packed(path), redis_url, prefix)
        counts, times = [], []
        with PackedForest.from_redis(redis_url, prefix) as m:  # load the compiled kernel first
            m.predict(queries[:1])
        for x in queries:
            start = time.perf_counter()
            with PackedForest.from_redis(redis_url, prefix) as m:
                m.predict(x[None, :])
                counts.append(m.store.stats.blocks_fetched)
            times.append(time.perf_counter() - start)
        keys[label] = (counts, times)
    return [
        count_record(
            name,
            "Redis key reads per query",
            "keys",
            Count(BEST, keys[BEST][0]),
            Count(f"pacset {label}", keys[label][0]),
            f"latency median ours {np.median(keys[BEST][1]) * 1e3:.2f}"
            f" ms, peer {np.median(keys[label][1]) * 1e3:.2f} ms (localhost)",
        )
        for label in PLAIN_LAYOUTS
    ]


def warm_batch(name: str, model, path: Path, X_test: np.ndarray) -> Record:
    """A warm batch (model resident) through ours vs sklearn's predict, one thread each."""
    from frugalml.common.timing import compare
    from frugalml.pacset.runtime import PackedForest

    batch = X_test[: min(len(X_test), 20_000)]
    model.set_params(n_jobs=1)
    with PackedForest.open(path) as resident:
        resident.predict(batch[:10])
        cmp = compare(lambda: resident.predict(batch), lambda: model.predict(batch), rounds=5, warmup=1)
    return Record.from_comparison(
        cmp,
        system=SYSTEM,
        workload=name,
        peer="sklearn predict",
        metric=f"warm batch of {len(batch)} rows",
        notes="model resident (mmap warm), 1 thread each",
    )


def bench_boosting(
    name: str, lib: str, model_path: Path, predict_peer: Callable, X_test: np.ndarray, run: Workload
) -> list[Record]:
    """Cold queries on a deep boosted model: XGBoost/LightGBM native load + predict vs ours."""
    from frugalml.pacset.importers import load_model_file

    log(run.quiet, f"[{name}] {lib} model file {os.path.getsize(model_path) / 2**20:.1f} MiB")
    forest = load_model_file(model_path)
    packed = {label: pack_as(forest, run.tmp / f"{name}-{label}.pacset", label) for label in ("bfs", BEST)}
    bfs, best = (Contender(f"pacset {label}", p, ours_query(p), kind="pacset") for label, p in packed.items())
    peer = Contender(f"{lib} load+predict", model_path, predict_peer, kind=lib)
    queries = X_test[: run.n_queries]
    for c in (bfs, best):
        np.testing.assert_allclose(
            np.asarray(c.query(queries[:20]), float),
            np.asarray(predict_peer(queries[:20]), float),
            rtol=1e-4,
            atol=1e-6,
        )
    cold_queries([bfs, best, peer], queries, run.quiet)
    return [
        latency_record(name, best, peer),
        latency_record(name, best, bfs),
        pages_record(name, best, "bfs", bfs),
    ]


def bench_boosters(
    X, y, X_test, run: Workload, full: bool, shape: tuple[int, int] | None = None
) -> list[Record]:
    """Cold queries on an XGBoost and a LightGBM classifier (bigger with ``full``; or ``shape``:
    trees, depth)."""
    records = []
    n_trees, depth = shape or ((300, 12) if full else (100, 10))
    with contextlib.suppress(ImportError):
        import xgboost as xgb

        booster = (
            xgb.XGBClassifier(
                n_estimators=n_trees, max_depth=depth, n_jobs=2, tree_method="hist", random_state=0
            )
            .fit(X, y)
            .get_booster()
        )
        path = run.tmp / "xgb.ubj"
        booster.save_model(path)

        def xgb_query(x, path=path):
            b = xgb.Booster(model_file=str(path))
            b.set_param({"nthread": 1})
            return (b.inplace_predict(x) > 0.5).astype(int)

        records += bench_boosting(
            f"XGBoost {n_trees}x depth {depth}", "xgboost", path, xgb_query, X_test, run
        )
    with contextlib.suppress(ImportError):
        import lightgbm as lgb

        leaves = 2 ** (depth - 4)
        model = lgb.LGBMClassifier(
            n_estimators=n_trees, num_leaves=leaves, max_depth=-1, n_jobs=1, verbose=-1, random_state=0
        ).fit(X, y)
        path = run.tmp / "lgb.txt"
        model.booster_.save_model(path)

        def lgb_query(x, path=path):
            return (lgb.Booster(model_file=str(path)).predict(x, num_threads=1) > 0.5).astype(int)

        records += bench_boosting(
            f"LightGBM {n_trees}x{leaves} leaves", "lightgbm", path, lgb_query, X_test, run
        )
    return records


JIT_CODE = (
    "import sys, time, numpy as np; t=time.perf_counter(); "
    "from frugalml.pacset.runtime import PackedForest; "
    "m=PackedForest.open(sys.argv[1], engine=sys.argv[2]); "
    "m.predict(np.zeros((1, m.n_features))); print(time.perf_counter()-t)"
)


def jit_cost(path: Path) -> list[Record]:
    """First-query time in a fresh process: numba with an empty cache, numba cached, numpy (no JIT), auto."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, engine, env in (
            ("numba, empty cache", "numba", {"NUMBA_CACHE_DIR": cache}),
            ("numba, cached", "numba", {"NUMBA_CACHE_DIR": cache}),
            ("numpy, no JIT", "numpy", {}),
            ("auto (the default)", "auto", {"NUMBA_CACHE_DIR": cache}),
        ):
            result = subprocess.run(
                [sys.executable, "-c", JIT_CODE, str(path), engine],
                capture_output=True,
                text=True,
                env={**os.environ, **env},
                check=True,
            )
            out[label] = float(result.stdout.strip().splitlines()[-1])
    baseline = "numba, empty cache"
    return [
        Record(
            SYSTEM,
            "first query in a fresh process",
            f"import + open + predict ({k})",
            "s",
            v,
            baseline if k != baseline else None,
            out[baseline] if k != baseline else None,
            notes="JIT compile cost = empty cache minus cached",
        )
        for k, v in out.items()
    ]


def _redis_or_none(stack: contextlib.ExitStack, quiet: bool) -> str | None:
    """A throwaway redis-server's URL, or None (the Redis rows are then skipped, with a note)."""
    from frugalml.common.redis_server import redis_server

    try:
        return stack.enter_context(redis_server())
    except ServiceUnavailableError as exc:
        log(quiet, f"  Redis rows skipped: {exc}")
        return None


def run_benchmark(
    size: str = "small",
    json_path: str | os.PathLike | None = None,
    quiet: bool = False,
    n_queries: int | None = None,
) -> list[Record]:
    """Cold single queries, layouts, Redis and a warm batch. ``size='small'``: minutes, modest
    models; ``'full'``: >= 100 MB models."""
    from sklearn.datasets import make_classification

    full = size == "full"
    records: list[Record] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="pacset-bench-", dir=os.environ.get("PACSET_BENCH_DIR"))
        )
        run = Workload(Path(tmp), n_queries or (15 if full else 10), _redis_or_none(stack, quiet), quiet)
        rows = 150_000 if full else 20_000
        X, y = make_classification(rows + 2000, 20, n_informative=12, flip_y=0.1, random_state=0)
        rf = fit_rf(X[:rows], y[:rows], 64 if full else 32, quiet)
        records += bench_forest(f"synthetic RF {rows // 1000}k rows", rf, X[rows:], run)
        save_latency(records, json_path)
        del rf
        for data in ("higgs", "satellite"):
            Xd, yd = load_tabular(data)
            perm = np.random.default_rng(0).permutation(len(Xd))
            model = fit_rf(Xd[perm[500:]], yd[perm[500:]], 128, quiet)
            records += bench_forest(f"{data} RF 128 trees", model, Xd[perm[:500]], run)
            save_latency(records, json_path)
        records += jit_cost(run.tmp / f"higgs RF 128 trees-{BEST}.pacset")
        save_latency(records, json_path)
        records += bench_boosters(X[:rows], y[:rows], X[rows:], run, full)
    print_table(records, title="pacset: cold single queries, layouts, Redis, warm batch")
    save_latency(records, json_path)
    return records


def run_quick_cold(json_path: str | os.PathLike | None = None, quiet: bool = True) -> list[Record]:
    """The quick check of ``frugal reproduce``: a 20k-row, 16-tree RF against joblib, ONNX Runtime and
    Treelite, its layouts and Redis key reads, and 50-tree XGBoost/LightGBM models, 5 cold queries each."""
    from sklearn.datasets import make_classification

    rows = 20_000
    X, y = make_classification(rows + 500, 20, n_informative=12, flip_y=0.1, random_state=0)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="pacset-quick-"))
        run = Workload(Path(tmp), 5, _redis_or_none(stack, quiet), quiet)
        rf = fit_rf(X[:rows], y[:rows], 16, quiet)
        records = bench_forest(f"synthetic RF {rows // 1000}k rows", rf, X[rows:], run)
        records += bench_boosters(X[:rows], y[:rows], X[rows:], run, full=False, shape=(50, 8))
    save_latency(records, json_path)
    return records
