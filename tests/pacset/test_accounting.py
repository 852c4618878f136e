"""I/O accounting: page-cache eviction and mincore, the LRU simulator, and tuning."""

import numpy as np
import pytest

from frugalml.pacset import PackedForest, from_model, pack
from frugalml.pacset.accounting import evict, resident_pages, simulate_lru
from frugalml.pacset.tune import tune


def test_evict_then_touch_counts_pages(rf, cls_data, tmp_path):
    path = tmp_path / "rf.pacset"
    pack(rf, path)
    evict(path)
    if resident_pages(path)[0] > 0:  # tmpfs cannot drop pages
        pytest.skip("this file system keeps pages resident (tmpfs?)")
    with PackedForest.open(path) as model:
        opened = resident_pages(path)[0]
        model.predict(cls_data[0][:1])
        touched = model.blocks_touched
    resident, total = resident_pages(path)
    assert opened <= 6  # header and index only
    assert touched - 2 <= resident - opened <= touched < total  # header read-ahead may cover 2 blocks


def test_lru_simulator_matches_pread_cache(rf, cls_data, tmp_path):
    path = tmp_path / "rf.pacset"
    pack(rf, path, bins=1)
    X = cls_data[0][:10]
    with PackedForest.open(path) as model:
        traces = []
        for x in X:
            buf = np.zeros(100_000, np.int64)
            model.raw_scores(x[None], trace=buf)
            traces.append(buf[: model.trace_length])
    big = simulate_lru(traces, capacity=10_000)
    assert big[0] == len(np.unique(traces[0])) and big.sum() == len(np.unique(np.concatenate(traces)))
    assert simulate_lru(traces, capacity=2).sum() >= big.sum()


def test_tune_picks_a_cheapest_config(rf, cls_data):
    result = tune(from_model(rf), cls_data[0][:50], bins=(1, 4), interleave=(0, 2), block_sizes=(4096, 8192))
    assert len(result.trials) == 8
    best = min(t["cost_us"] for t in result.trials)
    chosen = [
        t
        for t in result.trials
        if (t["bins"], t["interleave"], t["block_size"])
        == (result.best.bins, result.best.interleave, result.best.block_size)
    ]
    assert chosen[0]["cost_us"] == best
