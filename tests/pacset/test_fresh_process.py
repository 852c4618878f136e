"""The benchmark's fresh-process path: a child imports, evicts, times one cold query and reports it."""

from __future__ import annotations

import json
import subprocess
import sys

import joblib
import numpy as np

from frugalml.pacset import pack
from frugalml.pacset.bench.protocol import Contender, fresh_process_queries


def test_child_process_cold_queries(rf, cls_data, tmp_path):
    X = cls_data[0][:2]
    packed, dumped = tmp_path / "rf.pacset", tmp_path / "rf.joblib"
    pack(rf, packed, bins=2)
    joblib.dump(rf, dumped)
    np.save(tmp_path / "row.npy", X[:1])
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "frugalml.pacset.bench.coldchild",
            "pacset-numpy",
            str(packed),
            str(tmp_path / "row.npy"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["pred"] == rf.predict(X[:1]).astype(float).tolist()
    assert result["seconds"] > 0 and result["pages"] > 0
    contenders = [
        Contender("ours", packed, lambda x: x, kind="pacset-numpy"),
        Contender("sklearn", dumped, lambda x: x, kind="sklearn"),
    ]
    fresh_process_queries(contenders, X[:1], tmp_path, quiet=True)
    for c in contenders:
        assert len(c.samples) == 1 and all(s > 0 for s in c.samples)
        assert all(c.cold_ok) and min(c.pages) > 0


def test_auto_engine_skips_numba_for_small_queries_in_a_fresh_process(rf, cls_data, tmp_path):
    """``engine="auto"``: a single row in a fresh process walks with numpy and never imports numba;
    a big batch loads numba's kernels; results equal sklearn's either way."""
    pack(rf, tmp_path / "rf.pacset", bins=2)
    X = np.tile(cls_data[0], (4, 1))  # 6000 rows x 12 trees: above AUTO_NUMBA_STATES
    np.save(tmp_path / "x.npy", X)
    code = (
        "import sys, numpy as np; from frugalml.pacset import PackedForest; "
        "from frugalml.pacset.runtime import numba_loaded; X = np.load(sys.argv[2]); "
        "m = PackedForest.open(sys.argv[1]); a = m.predict(X[:1]); n1 = int('numba' in sys.modules); "
        "b = m.predict(X); print(n1, int(numba_loaded()), a[0], *b)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "rf.pacset"), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "0" and out[1] == "1"
    assert int(out[2]) == rf.predict(X[:1])[0]
    np.testing.assert_array_equal(np.array(out[3:], int), rf.predict(X))
