"""Data sets and fitted models the benchmarks measure: tabular sets, forests and boosters."""

from __future__ import annotations

import contextlib
import gzip
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from frugalml.pacset.bench.protocol import log


def load_tabular(name: str) -> tuple[np.ndarray, np.ndarray]:
    """HIGGS (LightGBM's 7000-row sample), Satellite (= the paper's Landsat) or Vehicle."""
    from frugalml.common.data import resolve

    if name == "higgs":
        data = np.loadtxt(resolve("tabular/higgs-lightgbm/binary.train"))
        return data[:, 1:], data[:, 0].astype(int)
    path = resolve(f"tabular/{name.capitalize()}.csv.gz")
    with gzip.open(path, "rt") as f:
        f.readline()  # the header
        rows = [line.rstrip("\n").split(",") for line in f]
    X = np.array([[float(v) for v in r[:-1]] for r in rows])
    _, y = np.unique([r[-1] for r in rows], return_inverse=True)
    return X, y


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(test, train) row indices: a seeded shuffle, at most 200 (and a quarter) of the rows for test."""
    perm = np.random.default_rng(0).permutation(n)
    return perm[: min(200, n // 4)], perm[min(200, n // 4) :]


def fit_rf(X, y, n_trees: int, quiet: bool, seed: int = 0):
    """A seeded random-forest classifier with ``n_trees`` trees."""
    from sklearn.ensemble import RandomForestClassifier

    start = time.perf_counter()
    rf = RandomForestClassifier(n_trees, n_jobs=2, random_state=seed).fit(X, y)
    log(quiet, f"  fitted RF ({n_trees} trees, {len(X)} rows) in {time.perf_counter() - start:.0f} s")
    return rf


def fit_booster(lib: str, X, y, n_trees: int, size: int, data: str, quiet: bool):
    """An XGBoost (``size`` = depth) or LightGBM (``size`` = leaves) classifier with ``n_trees`` trees
    in all (per-class trees count: a 6-class model gets ``n_trees // 6`` rounds), grown out: a tiny
    minimum hessian per leaf keeps late trees as deep as early ones. Returns (model, workload name)."""
    n_classes = len(np.unique(y))
    per_round = n_classes if n_classes > 2 else 1
    rounds = max(1, n_trees // per_round)
    start = time.perf_counter()
    if lib == "xgboost":
        import xgboost as xgb

        model = xgb.XGBClassifier(
            n_estimators=rounds,
            max_depth=size,
            min_child_weight=1e-3,
            n_jobs=1,
            tree_method="hist",
            random_state=0,
        ).fit(X, y)
        workload = f"{data} XGBoost {rounds * per_round} trees depth {size}"
    else:
        import lightgbm as lgb

        model = lgb.LGBMClassifier(
            n_estimators=rounds,
            num_leaves=size,
            min_child_samples=5,
            min_sum_hessian_in_leaf=1e-5,
            n_jobs=1,
            verbose=-1,
            random_state=0,
        ).fit(X, y)
        workload = f"{data} LightGBM {model.booster_.num_trees()} trees {size} leaves"
    log(quiet, f"  fitted {workload} in {time.perf_counter() - start:.0f} s")
    return model, workload


class BoosterShape(NamedTuple):
    """How big the deep boosters are: XGBoost trees and depth, LightGBM trees and leaves."""

    xgb_trees: int
    depth: int
    lgb_trees: int
    leaves: int

    def labels(self, prefix: str = "") -> dict[str, str]:
        """How records name each library's model."""
        return {
            "xgboost": f"{prefix}{self.xgb_trees} trees depth {self.depth}",
            "lightgbm": f"{prefix}{self.lgb_trees} trees {self.leaves} leaves",
        }


def fit_boosters(
    X, y, tmp: Path, quiet: bool, shape: BoosterShape, regression: bool = False
) -> dict[str, Path]:
    """Deep XGBoost and LightGBM models of ``shape`` saved in their native formats (UBJ, text).

    Regression trees stay deep round after round (squared error: every row weighs 1), so they give
    the big files; classification trees shrink as the model grows confident.
    """
    models = {}
    with contextlib.suppress(ImportError):
        import xgboost as xgb

        start = time.perf_counter()
        models["xgboost"] = tmp / "xgb.ubj"
        est = xgb.XGBRegressor if regression else xgb.XGBClassifier
        est(
            n_estimators=shape.xgb_trees, max_depth=shape.depth, n_jobs=1, tree_method="hist", random_state=0
        ).fit(X, y).get_booster().save_model(models["xgboost"])
        log(
            quiet,
            f"  fitted XGBoost {shape.xgb_trees}x depth {shape.depth} in "
            f"{time.perf_counter() - start:.0f} s: "
            f"{os.path.getsize(models['xgboost']) / 2**20:.1f} MiB",
        )
    with contextlib.suppress(ImportError):
        import lightgbm as lgb

        start = time.perf_counter()
        models["lightgbm"] = tmp / "lgb.txt"
        est = lgb.LGBMRegressor if regression else lgb.LGBMClassifier
        est(
            n_estimators=shape.lgb_trees,
            num_leaves=shape.leaves,
            max_depth=-1,
            n_jobs=1,
            verbose=-1,
            random_state=0,
        ).fit(X, y).booster_.save_model(models["lightgbm"])
        log(
            quiet,
            f"  fitted LightGBM {shape.lgb_trees}x{shape.leaves} leaves in "
            f"{time.perf_counter() - start:.0f} s: {os.path.getsize(models['lightgbm']) / 2**20:.1f} MiB",
        )
    return models


def native_predict(lib: str, path: Path, X: np.ndarray) -> np.ndarray:
    """The saved XGBoost or LightGBM model's own prediction of ``X``."""
    if lib == "xgboost":
        import xgboost as xgb

        return xgb.Booster(model_file=str(path)).inplace_predict(X)
    import lightgbm as lgb

    return np.asarray(lgb.Booster(model_file=str(path)).predict(X, num_threads=1))
