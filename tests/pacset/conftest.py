"""Fixtures for pacset: small fitted models; the redis-server fixture is in tests/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import ensemble
from sklearn.datasets import make_classification, make_regression

from frugalml.pacset import LAYOUTS, pack


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Fit and predict on one thread: OpenMP oversubscription is slow when other work shares the cores."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def cls_data():
    X, y = make_classification(1500, 8, n_informative=6, n_classes=3, random_state=0)
    return X, y


@pytest.fixture(scope="session")
def bin_data():
    return make_classification(1500, 8, n_informative=5, random_state=1)


@pytest.fixture(scope="session")
def reg_data():
    return make_regression(1500, 8, random_state=2)


@pytest.fixture(scope="session")
def rf(cls_data):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(12, random_state=0).fit(*cls_data)


def with_nan(X: np.ndarray, seed: int = 0) -> np.ndarray:
    """A copy of X with about 10% of one column's values missing."""
    X = X.copy()
    rows = np.random.default_rng(seed).random(len(X)) < 0.1
    X[rows, 2] = np.nan
    return X


def fit_small(kind, cls_data, bin_data, reg_data):
    """A small model of each importer (name: library, estimator, data set)."""
    lib, name, data = kind.split("-")
    X, y = {"cls": cls_data, "bin": bin_data, "reg": reg_data}[data]
    if lib == "sk":
        est = getattr(ensemble, name)
        small = {"n_estimators": 6} if "Hist" not in name else {"max_iter": 12}
        if "Forest" in name or "Trees" in name:
            small["max_depth"] = 8
        return est(random_state=0, **small).fit(X, y), X
    module = pytest.importorskip(lib)
    regressor = data == "reg"
    if lib == "xgboost":
        est = module.XGBRegressor if regressor else module.XGBClassifier
        return est(n_estimators=30, max_depth=4, n_jobs=1).fit(X, y), X
    est = module.LGBMRegressor if regressor else module.LGBMClassifier
    return est(n_estimators=30, num_leaves=15, verbose=-1, n_jobs=1).fit(X, y), X


IMPORTERS = [
    "sk-ExtraTreesRegressor-reg",
    "sk-GradientBoostingClassifier-cls",
    "sk-GradientBoostingRegressor-reg",
    "sk-HistGradientBoostingClassifier-bin",
    "sk-HistGradientBoostingRegressor-reg",
    *(
        pytest.param(k, marks=pytest.mark.peers)
        for k in (
            "xgboost-XGBClassifier-cls",
            "xgboost-XGBClassifier-bin",
            "xgboost-XGBRegressor-reg",
            "lightgbm-LGBMClassifier-cls",
            "lightgbm-LGBMClassifier-bin",
            "lightgbm-LGBMRegressor-reg",
        )
    ),
]


PACKED_LAYOUTS = (*LAYOUTS, "blockwise-wdfs+shared")
"""Every layout, and blockwise W-DFS under a shared top."""


@pytest.fixture(scope="session")
def packed_models(tmp_path_factory, cls_data, bin_data, reg_data):
    """``get(kind, layout)``: each importer's small model, its data, and the model packed once per layout
    (``layout + "+shared"``: with the interleaved tops of all trees first)."""
    cache = {}

    def get(kind, layout):
        if kind not in cache:
            cache[kind] = (*fit_small(kind, cls_data, bin_data, reg_data), {})
        model, X, paths = cache[kind]
        if layout not in paths:
            paths[layout] = tmp_path_factory.mktemp("packed") / f"{kind}-{layout}.pacset"
            name, shared = layout.removesuffix("+shared"), layout.endswith("+shared")
            pack(model, paths[layout], layout=name, bins=2, interleave=1, block_size=4096, shared_top=shared)
        return model, X, paths[layout]

    return get


@pytest.fixture(scope="session")
def tls_redis_url(tmp_path_factory):
    """A redis-server speaking only TLS on a free localhost port (a self-signed certificate made
    with openssl), as a ``rediss://`` URL that trusts that certificate; skips when unavailable."""
    import contextlib
    import shutil
    import subprocess

    pytest.importorskip("redis")
    from frugalml.common.errors import ServiceUnavailableError
    from frugalml.common.redis_server import redis_server

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed for the TLS test")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(redis_server(10, tls_cert=cert, tls_key=key))
        except ServiceUnavailableError as exc:
            pytest.skip(f"no TLS redis-server here ({exc})")
        yield url
