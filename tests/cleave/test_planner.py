"""The pull makespan, the LP on hand-solvable cases, and the planner's choices and errors."""

import dataclasses
import heapq

import numpy as np
import pytest

from frugalml.cleave.analytic import analytic_step
from frugalml.cleave.costmodel import (
    PIPELINE_DEPTH,
    churn_inflation,
    fluid_seconds,
    group_makespans,
    pipeline_depth,
    pull_makespan,
    solve_assignment,
    task_timing,
)
from frugalml.cleave.devices import make_pool
from frugalml.cleave.models import BUILTIN, ModelSpec
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.planner import micro_batch_candidates, plan, plan_micro_batch
from frugalml.cleave.tiling import TaskCost
from frugalml.common.errors import InvalidInputError


def _list_schedule(period, n, latency=None, offset=None):
    """Reference: device i pulls at 0, then offset[i] + period[i], offset[i] + 2 period[i], ... (at
    the same time: lowest index first); a task ends latency[i] after its pull (latency = period:
    tasks back to back), the first one offset[i] later still."""
    latency = period if latency is None else latency
    offset = np.zeros(len(period)) if offset is None else offset
    heap = [(0.0, i, 0) for i in range(len(period))]
    end = 0.0
    for _ in range(n):
        pull, i, j = heapq.heappop(heap)
        end = max(end, pull + latency[i] + (offset[i] if j == 0 else 0.0))
        heapq.heappush(heap, (offset[i] + (j + 1) * period[i], i, j + 1))
    return end


@pytest.mark.parametrize("seed", range(6))
def test_pull_makespan_equals_list_scheduling(seed):
    gen = np.random.default_rng(seed)
    t = np.sort(gen.uniform(0.5, 4.0, gen.integers(1, 12)))
    latency = t * gen.uniform(1.0, 3.0, len(t))  # pipelined: a task outlasts the pull period
    for n in (1, len(t), len(t) + 1, 37):
        span, counts = pull_makespan(t, t, np.zeros(len(t)), n)
        assert span == pytest.approx(_list_schedule(t, n))
        assert counts.sum() == n
        span, counts = pull_makespan(t, latency, np.zeros(len(t)), n)
        assert span == pytest.approx(_list_schedule(t, n, latency))
        assert counts.sum() == n
        offset = gen.uniform(0.0, 5.0, len(t)) * (gen.random(len(t)) < 0.5)  # some fetch a weight first
        span, counts = pull_makespan(t, latency, offset, n)
        assert span == pytest.approx(_list_schedule(t, n, latency, offset))
        assert counts.sum() == n


def test_pipelined_timing_is_the_slowest_stage_within_memory():
    cost = TaskCost(tasks=4, flops=2e12, bytes_down=4e6, bytes_up=1e6, memory=int(1e9))
    flops, down, up, rtt = np.full(3, 1e12), np.full(3, 1e6), np.full(3, 1e6), np.full(3, 0.5)
    memory = np.array([3e9, 1.5e9, 0.5e9])  # holds 3 tiles, 1 tile, none
    period, latency = task_timing(cost, flops, down, up, rtt, memory)
    np.testing.assert_allclose(latency[:2], [4 + 2 + 1 + 0.5] * 2)
    assert latency[2] == np.inf and period[2] == np.inf
    assert period[0] == pytest.approx(4.0)  # download-bound: one pull per download
    assert period[1] == pytest.approx(7.5)  # one tile at a time: back to back, no overlap
    assert pipeline_depth(1e9, np.array([10e9, 2.5e9])).tolist() == [PIPELINE_DEPTH, 2]


def test_group_makespans_match_device_level_for_identical_devices():
    t = np.array([[1.0, 3.0]])
    size = np.array([[2, 1]])
    out = group_makespans(t, t, np.zeros((1, 2)), size, np.array([7]))
    assert out[0, 0] == pytest.approx(_list_schedule(np.array([1.0, 1.0]), 7))
    assert out[0, 1] == pytest.approx(_list_schedule(np.array([1.0, 1.0, 3.0]), 7))
    lat = np.array([[2.5, 4.0]])
    out = group_makespans(t, lat, np.zeros((1, 2)), size, np.array([7]))
    assert out[0, 1] == pytest.approx(_list_schedule(np.array([1.0, 1.0, 3.0]), 7, np.array([2.5, 2.5, 4.0])))


def test_lp_hand_solvable_cases():
    # two groups: 2 devices at 1 s/tile, 1 device at 2 s/tile -> 2.5 tiles/s; 10 tiles -> T = 4 s
    a = solve_assignment(
        np.array([10]), np.array([[1.0, 2.0]]), np.array([2, 1]), np.array([1.0]), 1e9, np.array([1])
    )
    assert a.total_seconds == pytest.approx(4.0)
    np.testing.assert_allclose(a.tiles[0], [8.0, 2.0])
    # the PS NIC binds: 10 tiles x 100 bytes through 50 B/s -> 20 s
    b = solve_assignment(
        np.array([10]), np.array([[1.0, 2.0]]), np.array([2, 1]), np.array([100.0]), 50.0, np.array([1])
    )
    assert b.total_seconds == pytest.approx(20.0)
    # a group that cannot hold the tile gets nothing; repeats weight the objective
    c = solve_assignment(
        np.array([6, 4]),
        np.array([[1.0, np.inf], [1.0, 1.0]]),
        np.array([3, 1]),
        np.array([1.0, 1.0]),
        1e9,
        np.array([5, 1]),
    )
    assert c.tiles[0, 1] == 0 and c.seconds[0] == pytest.approx(2.0) and c.seconds[1] == pytest.approx(1.0)
    assert c.total_seconds == pytest.approx(11.0)
    assert fluid_seconds(10, np.array([1.0, 2.0]), np.array([2, 1]), 100.0, 50.0) == pytest.approx(20.0)
    with pytest.raises(InvalidInputError, match="cannot run"):
        solve_assignment(
            np.array([1]), np.array([[np.inf]]), np.array([1]), np.array([1.0]), 1.0, np.array([1])
        )


def test_churn_inflation():
    np.testing.assert_allclose(
        churn_inflation(np.array([0.0, 50.0, 1e9]), np.array([100.0] * 3)), [1.0, 2.0, 10.0]
    )


@pytest.fixture(scope="module")
def small_plan():
    return plan(build_graph(BUILTIN["opt-1.3b"], batch=8, seq=512), make_pool(48, seed=0))


def test_plan_is_consistent_and_explains(small_plan):
    p = small_plan
    assert p.batch_seconds > 0 and p.assignment.total_seconds <= p.gemm_seconds * (1 + 1e-6)
    mem = p.pool.memory
    eligible = p.eligible()
    for i, gp in enumerate(p.gemm_plans):
        if gp.on_ps:
            continue
        assert np.all(mem[eligible[i]] >= gp.cost.memory)  # every tile fits every device pulling it
        assert gp.seconds >= gp.ps_bound
    text = p.explain()
    assert "chosen" in text and "planned batch time" in text
    assert all(label in text for label in p.groups.labels)
    doc = p.to_dict()
    assert doc["devices"] == 48 and len(doc["gemms"]) == 21


def test_planner_drops_devices_that_cannot_hold_a_tile():
    pool = make_pool(counts={"phone-midrange": 4, "laptop": 4}, seed=0)
    wide = ModelSpec("wide", hidden=8192, layers=1, heads=64, ffn=32768, vocab=1000)
    p = plan(build_graph(wide, batch=64, seq=2048, micro_batch=64), pool)  # dW over 131k tokens
    assert any(why.startswith("memory") for gp in p.gemm_plans for why in gp.dropped.values())
    for i, gp in enumerate(p.gemm_plans):
        if not gp.on_ps:
            assert np.all(pool.memory[p.eligible()[i]] >= gp.cost.memory)


def test_pool_that_cannot_hold_any_tile_is_a_clear_error():
    pool = make_pool(counts={"phone-midrange": 3}, seed=0)
    huge = ModelSpec("huge", hidden=1 << 15, layers=1, heads=64, ffn=1 << 17, vocab=1000)
    with pytest.raises(InvalidInputError, match="no device in the pool can hold a tile of GEMM"):
        plan(build_graph(huge, batch=256, seq=4096), pool)


def test_more_devices_do_not_slow_the_plan():
    graph = build_graph(BUILTIN["opt-1.3b"], batch=16, seq=512)
    times = [plan(graph, make_pool(n, seed=0)).batch_seconds for n in (16, 64, 256)]
    assert times[0] > times[1] > times[2]


def test_micro_batches_shrink_weight_gradient_tiles_and_the_planner_picks_the_fastest():
    model, pool = BUILTIN["opt-1.3b"], make_pool(64, seed=0)
    candidates = micro_batch_candidates(64, 1024)
    assert candidates == [4, 8, 16, 32, 64]
    plans = {mb: plan(build_graph(model, 64, 1024, micro_batch=mb), pool, churn=False) for mb in candidates}
    dw = {mb: next(gp for gp in p.gemm_plans if gp.gemm.name == "ffn_up.dw1") for mb, p in plans.items()}
    per_flop = {mb: gp.cost.bytes_down / gp.cost.flops for mb, gp in dw.items()}
    assert per_flop[16] < per_flop[64]  # the 65k-token contraction no longer crosses the downlink
    best = plan_micro_batch(model, 64, 1024, pool, churn=False)
    assert best.batch_seconds == pytest.approx(min(p.batch_seconds for p in plans.values()))
    assert best.graph.micro_batches == 64 // min(plans, key=lambda mb: plans[mb].batch_seconds)
    assert "micro-batch" in best.explain()


def test_device_selection_drops_a_device_on_a_dead_link_and_matches_the_analytic_model():
    pool = make_pool(counts={"laptop": 24}, seed=0)
    pool.down[0] /= 1000  # one laptop on a nearly dead link: any tile it pulls would finish last
    pool.up[0] /= 1000
    p = plan(build_graph(BUILTIN["opt-1.3b"], batch=8, seq=512), pool, churn=False)
    eligible = p.eligible()
    assert not eligible[:, 0].any() and eligible[:, 1:].any(axis=0).sum() >= 20
    assert "devices" in p.explain()
    est = analytic_step(p)
    assert p.batch_seconds == pytest.approx(est.seconds, rel=1e-9)
    # letting the whole groups pull (device 0 shares its group with healthy laptops) is slower
    whole = dataclasses.replace(p, gemm_plans=[dataclasses.replace(gp, devices=None) for gp in p.gemm_plans])
    assert whole.eligible()[:, 0].any()
    assert analytic_step(whole).seconds > est.seconds
