"""The benchmark's fresh-process path: a child imports, evicts, times one cold query and reports it."""

from __future__ import annotations

import json
import subprocess
import sys

import joblib
import numpy as np

from frugalml.pacset import pack
from frugalml.pacset.benchmark import Contender, fresh_process_queries


def test_child_process_cold_queries(rf, cls_data, tmp_path):
    X = cls_data[0][:2]
    packed, dumped = tmp_path / "rf.pacset", tmp_path / "rf.joblib"
    pack(rf, packed, bins=2)
    joblib.dump(rf, dumped)
    np.save(tmp_path / "row.npy", X[:1])
    out = subprocess.run([sys.executable, "-m", "frugalml.pacset.coldchild", "pacset-numpy", str(packed),
                          str(tmp_path / "row.npy")], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["pred"] == rf.predict(X[:1]).astype(float).tolist()
    assert result["seconds"] > 0 and result["pages"] > 0
    contenders = [Contender("ours", packed, lambda x: x, kind="pacset-numpy"),
                  Contender("sklearn", dumped, lambda x: x, kind="sklearn")]
    fresh_process_queries(contenders, X, tmp_path, quiet=True)
    for c in contenders:
        assert len(c.samples) == 2 and all(s > 0 for s in c.samples)
        assert all(c.cold_ok) and min(c.pages) > 0
