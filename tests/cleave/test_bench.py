"""The claims' measurements: the same failure events in Cleave's DES and Asteroid's task graph."""

import numpy as np
import pytest

from frugalml.cleave.baselines import asteroid, swarm
from frugalml.cleave.bench.recovery import recovery_events
from frugalml.cleave.bench.speedup import (
    baseline_uplink_bytes_per_token,
    link_floor,
    per_gemm_floor,
    ps_memory,
    uplink_bytes_per_token,
)
from frugalml.cleave.bench.sweep import devices_until_flat, parse_counts
from frugalml.cleave.devices import make_pool
from frugalml.cleave.models import BUILTIN
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.pipeline import REPLAN_SECONDS
from frugalml.cleave.planner import plan
from frugalml.common.errors import InvalidInputError


def test_recovery_events_fail_the_same_device_in_both_systems():
    graph = build_graph(BUILTIN["opt-1.3b"], batch=32, seq=512)
    pool = make_pool(64, seed=0)
    p = plan(graph, pool, churn=False)
    base = asteroid(graph, pool)
    events, cleave_clean, asteroid_clean = recovery_events(p, base, fractions=(0.4, 0.6))
    assert len(events) == 2 and cleave_clean > 0 and asteroid_clean > 0
    used = set(base.pipeline.devices.ravel().tolist())  # no device is left out on a pool without traces
    for e in events:
        assert e.device in used
        assert e.asteroid_redone >= REPLAN_SECONDS  # re-plan, migrate, replay before the work is redone
        assert e.asteroid_step_delay >= 0  # a stage with slack can lose its device without delaying the step
        assert e.cleave_to_step_end > 0 and e.cleave_stage_delay >= -1e-9
        assert np.isnan(e.cleave_redone) or 0 < e.cleave_redone < e.asteroid_redone
    assert all(np.isfinite(e.cleave_redone) for e in events)  # devices are retried until one loses a tile


def test_devices_until_flat_is_the_last_count_that_beats_every_smaller_one():
    assert devices_until_flat([16, 32, 64, 128], [100.0, 50.0, 49.5, 10.0]) == 128  # a plateau, then faster
    assert devices_until_flat([16, 32, 64, 128], [100.0, 50.0, 60.0, 49.5]) == 32  # 49.5 is within 2% of 50
    assert devices_until_flat([16, 32], [np.inf, 5.0]) == 32
    assert devices_until_flat([16, 32], [np.inf, np.inf]) == 0


def test_link_floor_is_below_the_simulated_step():
    graph = build_graph(BUILTIN["opt-1.3b"], batch=32, seq=512)
    p = plan(graph, make_pool(48, seed=1), churn=False)
    up, down = link_floor(p)
    assert 0 < up and 0 < down
    assert max(up, down) <= p.gemm_seconds


def test_floors_upload_volume_and_ps_memory():
    graph = build_graph(BUILTIN["opt-1.3b"], batch=16, seq=512)
    pool = make_pool(48, seed=2)
    p = plan(graph, pool, churn=False)
    up, down = link_floor(p)
    assert per_gemm_floor(p) >= max(
        up, down * min(pool.effective_down.sum(), pool.ps.egress) / pool.effective_down.sum()
    ) * (1 - 1e-9)
    per_token = uplink_bytes_per_token(p)
    assert per_token * graph.tokens == pytest.approx(up * pool.effective_up.sum(), rel=1e-9)
    result = swarm(graph, pool)
    stages = len(result.layout["stages"])
    act = 2 * (stages - 1) * graph.model.hidden * 2.0  # activations and their gradients per token
    assert baseline_uplink_bytes_per_token(graph, result) >= act
    state, activations = ps_memory(graph)
    assert state == 16 * graph.model.params and activations > 0


def test_parse_counts_takes_ranges_and_comma_lists():
    assert parse_counts("16..100") == [16, 32, 64, 100]
    assert parse_counts(" 16, 64 ,") == [16, 64]  # the common comma-list rule: blanks dropped
    for bad in ("64..16", "0..8", "a..b", "16,x", "", "0,4"):
        with pytest.raises(InvalidInputError, match="device counts"):
            parse_counts(bad)
