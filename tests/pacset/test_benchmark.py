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


def test_redis_rows_are_skipped_when_redis_server_is_missing(monkeypatch):
    import contextlib

    from frugalml.common import redis_server
    from frugalml.common.errors import ServiceUnavailableError
    from frugalml.pacset.bench import latency

    def missing():
        raise ServiceUnavailableError("redis-server is not installed")

    monkeypatch.setattr(redis_server, "redis_server", missing)
    with contextlib.ExitStack() as stack:
        assert latency._redis_or_none(stack, quiet=True) is None


def test_paper_notes_name_the_papers_ratios():
    from frugalml.pacset.bench.reproduce import paper_note

    assert paper_note("Landsat RF", "bfs") == "paper blocks ratio 4.99x; paper latency ratio 4.75x"
    assert paper_note("Landsat RF", "wdfs") == "paper blocks ratio 1.05x"
    assert paper_note(None, "bfs") == ""


def test_validation_cost_record(rf, cls_data, tmp_path):
    from frugalml.pacset import pack
    from frugalml.pacset.bench.validation import METRIC, measure

    pack(rf, tmp_path / "rf.pacset")
    record = measure(tmp_path / "rf.pacset", cls_data[0][:5], "small RF", rounds=3)
    assert record.metric == METRIC and 0 < record.ours and 0 < record.peer_value
    assert "of a cold query (target <= 5%)" in record.notes
