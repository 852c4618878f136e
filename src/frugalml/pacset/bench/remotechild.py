"""Child process for the serverless cold-start benchmark: one cold query against a model on HTTP.

Run as ``python -m frugalml.pacset.bench.remotechild KIND URL ROW.npy``. The parent times the whole
process (interpreter start, imports, open or download, load, predict of one row); this prints one
JSON line with the prediction and, for ours, the requests, bytes and walk rounds it used.
``pacset`` opens the URL with range requests; every other kind downloads the whole file into
memory first (one GET over a pooled connection, as a serverless function would) and loads it with
its library.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np

KINDS = ("pacset", "sklearn", "xgboost", "lightgbm", "treelite", "onnx")


def download(url: str) -> bytes:
    """The whole file at ``url`` (a plain GET)."""
    import urllib3

    response = urllib3.PoolManager().request("GET", url, headers={"Accept-Encoding": "identity"})
    if response.status != 200:
        raise SystemExit(f"download of {url} failed: HTTP {response.status}")
    return response.data


def peer_query(kind: str, url: str, x: np.ndarray):
    """Download ``url`` whole, load it with ``kind``'s library, predict ``x``."""
    if kind == "sklearn":
        import joblib
        import sklearn.ensemble  # noqa: F401

        return joblib.load(io.BytesIO(download(url))).predict(x)
    if kind == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(download(url)))
        booster.set_param({"nthread": 1})
        return booster.inplace_predict(x)
    if kind == "lightgbm":
        import lightgbm as lgb

        return lgb.Booster(model_str=download(url).decode()).predict(x, num_threads=1)
    if kind == "treelite":
        import treelite
        import treelite.gtil

        model = treelite.Model.deserialize_bytes(download(url))
        return treelite.gtil.predict(model, x.astype(np.float32), nthread=1)
    if kind == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(download(url), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
    raise SystemExit(f"unknown kind {kind!r}; expected one of {KINDS}")


def main(kind: str, url: str, row_path: str) -> dict:
    x = np.load(row_path)
    if kind != "pacset":
        return {"pred": np.asarray(peer_query(kind, url, x), float).ravel().tolist()}
    from frugalml.pacset.runtime import PackedForest

    with PackedForest.open(url) as model:
        pred = model.predict(x)
        store = model.store
        return {
            "pred": np.asarray(pred, float).ravel().tolist(),
            "requests": store.requests,
            "bytes": store.remote.bytes,
            "rounds": store.stats.round_trips,
            "plan": store.plan,
        }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
