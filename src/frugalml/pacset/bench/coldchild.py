"""Child process for fresh-process cold queries: import a library, evict the file, time load + predict.

Run as ``python -m frugalml.pacset.bench.coldchild KIND MODEL_PATH ROW.npy``; prints one JSON line with
``seconds``, ``cold`` (mincore saw 0 resident pages before the timer), ``pages`` (after) and ``pred``.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

KINDS = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "treelite",
    "tl2cgen",
    "onnx",
    "pacset",
    "pacset-numba",
    "pacset-numpy",
)


def _loader(kind: str, path: str):
    """Import ``kind``'s library now (outside the timer) and return a load-and-predict callable."""
    if kind == "sklearn":
        import joblib
        import sklearn.ensemble  # noqa: F401

        return lambda x: joblib.load(path).predict(x)
    if kind == "xgboost":
        import xgboost as xgb

        def xgb_query(x):
            booster = xgb.Booster(model_file=path)
            booster.set_param({"nthread": 1})
            return booster.inplace_predict(x)

        return xgb_query
    if kind == "lightgbm":
        import lightgbm as lgb

        return lambda x: lgb.Booster(model_file=path).predict(x, num_threads=1)
    if kind == "treelite":
        import treelite
        import treelite.gtil

        return lambda x: treelite.gtil.predict(
            treelite.Model.deserialize(path), x.astype(np.float32), nthread=1
        )
    if kind == "tl2cgen":
        import tl2cgen

        def tl2cgen_query(x):
            return tl2cgen.Predictor(path, nthread=1).predict(tl2cgen.DMatrix(x.astype(np.float32)))

        return tl2cgen_query
    if kind == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1

        def onnx_query(x):
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]

        return onnx_query
    if kind.startswith("pacset"):
        from frugalml.pacset.runtime import PackedForest

        engine = kind.partition("-")[2] or "auto"

        def pacset_query(x):
            with PackedForest.open(path, engine=engine) as model:
                return model.predict(x)

        return pacset_query
    raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def main(kind: str, path: str, row_path: str) -> dict:
    """Time one cold load + predict of the row in ``row_path`` against the model file ``path``."""
    from frugalml.pacset.accounting import evict, resident_pages

    query = _loader(kind, path)
    x = np.load(row_path)
    evict(path)
    cold = resident_pages(path)[0] == 0
    start = time.perf_counter()
    pred = query(x)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cold": cold,
        "pages": resident_pages(path)[0],
        "pred": np.asarray(pred, float).ravel().tolist(),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
