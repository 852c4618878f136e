"""``frugal pacset bench --fresh-process``: cold latency with a new Python process per query.

Each trial is a child process (:mod:`frugalml.pacset.bench.coldchild`) that imports its library,
evicts the model file, checks it is cold and only then times load + predict of one row.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from frugalml.common.report import Record, print_table
from frugalml.pacset.bench.data import BoosterShape, fit_boosters, fit_rf, native_predict
from frugalml.pacset.bench.protocol import (
    BEST,
    Contender,
    Workload,
    fresh_process_queries,
    latency_record,
    log,
    merge_records,
    ours_query,
    pack_as,
    sklearn_peers,
)

FRESH_NOTE = (
    "fresh process: each trial is a new Python process, library imported before the timer, "
    "file evicted and checked cold just before it; the default engine (auto) walks a single "
    "row with numpy (no JIT); the numba engine's time includes loading its cached kernels"
)
FRESH_METRIC = "fresh-process cold query"
"""Fresh-process rows have a metric of their own, so a merge never replaces the in-process rows."""
FRESH_PARTS = ("rf", "boosters", "big", "compiled")
CLASSIFIERS = BoosterShape(300, 12, 300, 1024)
BIG_REGRESSORS = BoosterShape(450, 12, 320, 2048)  # ~55 MiB files each


def fresh_record(workload: str, ours: Contender, peer: Contender) -> Record:
    """A fresh-process latency record (its metric says so) of ``ours`` vs ``peer``."""
    record = latency_record(workload, ours, peer, notes=FRESH_NOTE)
    record.metric = f"{FRESH_METRIC} ({ours.name})"
    return record


def fresh_ours(path: Path, X_probe: np.ndarray) -> list[Contender]:
    """Ours in a fresh process: the default engine (auto) and the numba engine (its cache filled here)."""
    ours_query(path, "numba")(X_probe[:2])  # fills numba's on-disk cache, as a deployed package would have
    return [
        Contender("pacset bin+blockwise", path, ours_query(path, "auto"), kind="pacset"),
        Contender(
            "pacset bin+blockwise (numba engine)", path, ours_query(path, "numba"), kind="pacset-numba"
        ),
    ]


def fresh_forest(name: str, model, X_test: np.ndarray, run: Workload) -> list[Record]:
    """Fresh-process cold queries on one sklearn forest: pacset bin+blockwise vs each peer."""
    from frugalml.pacset.importers import from_model

    log(run.quiet, f"[{name}, fresh process]")
    path = pack_as(from_model(model), run.tmp / f"{name}-fresh.pacset", BEST)
    ours = fresh_ours(path, X_test)
    np.testing.assert_array_equal(ours[0].query(X_test[:20]), model.predict(X_test[:20]))
    peers = sklearn_peers(model, X_test, run.tmp, name, 2_000_000, run.quiet)
    fresh_process_queries(ours + peers, X_test[: run.n_queries], run.tmp, run.quiet)
    return [fresh_record(name, c, p) for c in ours for p in peers]


def fresh_models(
    models: dict[str, Path], X_test: np.ndarray, run: Workload, labels: dict[str, str]
) -> list[Record]:
    """Fresh-process cold queries on saved XGBoost/LightGBM models (``{library: path}``, described by
    ``labels[library]``) vs ours; ours is first checked equal to the library's prediction (1e-6 relative)."""
    from frugalml.pacset.importers import load_model_file
    from frugalml.pacset.runtime import PackedForest

    records = []
    for lib, model_path in models.items():
        workload = f"{lib} {labels[lib]} ({os.path.getsize(model_path) / 2**20:.0f} MiB file)"
        log(run.quiet, f"[{workload}, fresh process]")
        path = pack_as(load_model_file(model_path), run.tmp / f"{lib}-fresh.pacset", BEST)
        with PackedForest.open(path) as packed:
            out = (
                packed.predict_proba(X_test[:20])[:, 1]
                if packed.classes_ is not None
                else packed.predict(X_test[:20])
            )
        np.testing.assert_allclose(out, native_predict(lib, model_path, X_test[:20]), rtol=1e-6)
        ours = fresh_ours(path, X_test)
        peer = Contender(f"{lib} load+predict", model_path, lambda x: x, kind=lib)
        fresh_process_queries(ours + [peer], X_test[: run.n_queries], run.tmp, run.quiet)
        records += [fresh_record(workload, c, peer) for c in ours]
    return records


def fresh_compiled(X, y, X_test, run: Workload, n_trees: int = 100, depth: int = 8) -> list[Record]:
    """Fresh-process cold queries vs TL2cgen (the model compiled to a C shared library, dlopen + predict)
    and XGBoost on a model small enough to compile (gcc takes about a minute per 20k nodes, so the
    50-500 MB models would take hours)."""
    try:
        import tl2cgen
        import treelite
        import xgboost as xgb
    except ImportError as exc:
        log(run.quiet, f"  TL2cgen peer skipped: {exc}")
        return []
    from frugalml.pacset.importers import load_model_file

    model_path, lib = run.tmp / "xgb-small.ubj", run.tmp / "xgb-small.so"
    xgb.XGBClassifier(
        n_estimators=n_trees, max_depth=depth, n_jobs=1, tree_method="hist", random_state=0
    ).fit(X, y).get_booster().save_model(model_path)
    start = time.perf_counter()
    try:
        tl2cgen.export_lib(
            treelite.frontend.load_xgboost_model(str(model_path)),
            toolchain="gcc",
            libpath=str(lib),
            params={"parallel_comp": 8},
            nthread=1,
        )
    except (tl2cgen.TL2cgenError, OSError) as exc:
        log(run.quiet, f"  TL2cgen peer skipped: compilation failed: {exc}")
        return []
    size = os.path.getsize(lib) / 2**20
    workload = f"xgboost {n_trees} trees depth {depth} (TL2cgen-compiled {size:.1f} MiB .so)"
    log(run.quiet, f"[{workload}, fresh process] compiled in {time.perf_counter() - start:.0f} s")
    path = pack_as(load_model_file(model_path), run.tmp / "xgb-small.pacset", BEST)
    ours = fresh_ours(path, X_test)[0]
    peers = [
        Contender("tl2cgen dlopen+predict", lib, lambda x: x, kind="tl2cgen"),
        Contender("xgboost load+predict", model_path, lambda x: x, kind="xgboost"),
    ]
    fresh_process_queries([ours] + peers, X_test[: run.n_queries], run.tmp, run.quiet)
    return [fresh_record(workload, ours, p) for p in peers]


def run_fresh(
    json_path: str | os.PathLike | None = None,
    quiet: bool = False,
    n_queries: int = 9,
    rows: int = 150_000,
    n_trees: int = 64,
    parts: tuple[str, ...] = FRESH_PARTS,
) -> list[Record]:
    """Fresh-process cold latency; merges its records into ``json_path``.

    ``parts``: ``rf`` the >= 100 MB synthetic RF vs sklearn/ONNX/Treelite; ``boosters`` deep XGBoost
    and LightGBM classifiers; ``big`` 50-500 MB XGBoost and LightGBM regressors; ``compiled`` a model
    small enough to compile with TL2cgen.
    """
    from sklearn.datasets import make_classification, make_regression

    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="pacset-fresh-", dir=os.environ.get("PACSET_BENCH_DIR")) as d:
        run = Workload(Path(d), n_queries, None, quiet)
        X, y = make_classification(rows + 2000, 20, n_informative=12, flip_y=0.1, random_state=0)
        if "rf" in parts:
            rf = fit_rf(X[:rows], y[:rows], n_trees, quiet)
            records += fresh_forest(f"synthetic RF {rows // 1000}k rows", rf, X[rows:], run)
            del rf
        if "boosters" in parts:
            models = fit_boosters(X[:rows], y[:rows], run.tmp, quiet, CLASSIFIERS)
            records += fresh_models(models, X[rows:], run, CLASSIFIERS.labels())
        if "compiled" in parts:
            records += fresh_compiled(X[:30_000], y[:30_000], X[rows:], run)
        if "big" in parts:
            Xr, yr = make_regression(rows + 2000, 20, n_informative=12, noise=10.0, random_state=0)
            models = fit_boosters(Xr[:rows], yr[:rows], run.tmp, quiet, BIG_REGRESSORS, regression=True)
            records += fresh_models(models, Xr[rows:], run, BIG_REGRESSORS.labels("regressor "))
    print_table(records, title="pacset: cold single queries, fresh process per query")
    if json_path is not None:
        merge_records(records, json_path)
    return records
