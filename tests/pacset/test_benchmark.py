"""The reproduce rows for boosted models: binned layouts packed, cold queries timed, paper ratios noted."""

import numpy as np
import pytest

from frugalml.pacset.bench.data import fit_booster
from frugalml.pacset.bench.protocol import BINNED_LAYOUT_SET, pack_layouts
from frugalml.pacset.bench.reproduce import reproduce_rows


@pytest.mark.peers
def test_boostedreproduce_rows(cls_data, tmp_path):
    pytest.importorskip("xgboost")
    X, y = cls_data
    model, workload = fit_booster("xgboost", X[200:], y[200:], 60, 3, "synthetic", quiet=True)
    assert workload == "synthetic XGBoost 60 trees depth 3"  # 20 rounds x 3 classes
    paths = pack_layouts(model, tmp_path, "xgb", quiet=True, layouts=BINNED_LAYOUT_SET)
    records = reproduce_rows(workload, paths, X[:3], "Higgs GBT 4096", quiet=True)
    assert [r.peer for r in records[::2]] == ["pacset bin+bfs", "pacset bin+dfs", "pacset bin+wdfs"]
    pages = records[0]
    assert pages.metric.startswith("pages read") and pages.ours > 0 and pages.peer_value > 0
    assert "paper blocks ratio 1.37x" in pages.notes and "paper latency ratio 2.67x" in records[1].notes
    assert all(np.isfinite(r.ratio) for r in records)
