"""Analytic model vs discrete-event simulator, churn, failures, traces, baselines and energy."""

from dataclasses import replace

import numpy as np
import pytest

from frugalml.cleave.analytic import analytic_step, step_floor
from frugalml.cleave.baselines import asteroid, cloud, data_parallel, run_baselines
from frugalml.cleave.costmodel import pull_makespan
from frugalml.cleave.des import SimConfig, micro_batch_parts, simulate_step
from frugalml.cleave.devices import make_pool
from frugalml.cleave.energy import cloud_energy, edge_energy
from frugalml.cleave.models import BUILTIN, ModelSpec
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.pipeline import (
    REPLAN_SECONDS,
    critical_pipeline,
    pipeline_recovery,
    pipeline_seconds,
    simulate_pipeline,
)
from frugalml.cleave.planner import device_task_seconds, plan, setup_seconds
from frugalml.cleave.traces import load_traces
from frugalml.common.errors import InvalidInputError

TINY = ModelSpec("tiny", hidden=512, layers=2, heads=8, ffn=2048, vocab=4000)


@pytest.fixture(scope="module")
def tiny_plan():
    return plan(build_graph(TINY, batch=8, seq=256), make_pool(40, seed=4), churn=False)


@pytest.mark.parametrize(
    "model, devices, seed, micro, in_flight",
    [
        (TINY, 40, 4, None, 3),
        (TINY, 40, 4, None, 1),  # the networked runtime's workers: one task at a time
        (TINY, 7, 1, 2, 3),
        (BUILTIN["opt-1.3b"], 96, 2, None, 3),
        (BUILTIN["opt-1.3b"], 64, 3, 1, 1),
    ],
)
def test_des_equals_analytic_without_contention_and_churn(model, devices, seed, micro, in_flight):
    graph = build_graph(model, batch=8, seq=256, micro_batch=micro)
    p = plan(graph, replace(make_pool(devices, seed=seed), tasks_in_flight=in_flight), churn=False)
    est = analytic_step(p, contention=False, churn=False)
    # lockstep (a barrier per GEMM) is the analytic model's schedule for any number of micro-batches;
    # with one micro-batch the dataflow schedule is the same schedule
    configs = [replace(SimConfig.ideal(), lockstep=True)] + (
        [SimConfig.ideal()] if graph.micro_batches == 1 else []
    )
    for config in configs:
        sim = simulate_step(p, config)
        assert sim.seconds == pytest.approx(est.seconds, rel=1e-9)
        np.testing.assert_allclose(sim.busy, est.busy, rtol=1e-6, atol=1e-9)
        assert sim.tasks == sum(gp.grid.tasks * gp.repeats for gp in p.gemm_plans if not gp.on_ps)
        assert sim.failures == sim.requeued == sim.backups == 0


@pytest.mark.parametrize("micro, devices", [(1, 24), (2, 24), (1, 200)])
def test_dataflow_overlaps_micro_batches_between_the_floor_and_lockstep(micro, devices):
    graph = build_graph(BUILTIN["opt-1.3b"], batch=8, seq=256, micro_batch=micro)
    p = plan(graph, make_pool(devices, seed=6), churn=False)
    assert graph.micro_batches == 8 // micro
    parts = [micro_batch_parts(gp, graph) for gp in p.gemm_plans]
    assert any(k > 1 for k in parts) and all(graph.micro_batches % k == 0 for k in parts)
    for gp, k in zip(p.gemm_plans, parts, strict=True):
        assert gp.on_ps or gp.grid.tasks % k == 0
    lockstep = simulate_step(p, replace(SimConfig.ideal(), lockstep=True))
    flow = simulate_step(p, SimConfig.ideal())
    assert flow.tasks == lockstep.tasks
    assert step_floor(p, contention=False) * (1 - 1e-9) <= flow.seconds < lockstep.seconds
    shared = SimConfig(churn=False, traces=False, backups=False, straggler_prob=0.0)
    assert simulate_step(p, shared).seconds >= step_floor(p) * (1 - 1e-9)


def test_contention_only_slows_and_backups_only_help(tiny_plan):
    ideal = simulate_step(tiny_plan, SimConfig.ideal()).seconds
    config = SimConfig(churn=False, traces=False, backups=False, straggler_prob=0)
    shared = simulate_step(tiny_plan, config).seconds
    assert shared >= ideal * (1 - 1e-12)
    slow = SimConfig(contention=False, churn=False, traces=False, backups=False, straggler_prob=0.2)
    helped = SimConfig(contention=False, churn=False, traces=False, backups=True, straggler_prob=0.2)
    assert simulate_step(tiny_plan, helped, seed=1).seconds <= simulate_step(tiny_plan, slow, seed=1).seconds


def test_tiny_ps_nic_makes_the_step_nic_bound():
    pool = make_pool(20, seed=0)
    pool.ps = type(pool.ps)(nic_gbps=0.01, shards=1)
    p = plan(build_graph(TINY, batch=8, seq=256), pool, churn=False)
    sim = simulate_step(p, SimConfig(churn=False, traces=False, backups=False, straggler_prob=0))
    bound = sum(gp.repeats * gp.ps_bound for gp in p.gemm_plans)
    assert sim.seconds >= bound * (1 - 1e-9)
    assert analytic_step(p).seconds >= bound


def test_uploads_share_the_ps_ingress():
    pool = make_pool(32, seed=1)
    pool.ps = type(pool.ps)(nic_gbps=0.05, shards=1)
    narrow = ModelSpec("narrow", hidden=64, layers=1, heads=2, ffn=8192, vocab=30000)  # outputs >> inputs
    p = plan(build_graph(narrow, batch=8, seq=256), pool, churn=False)
    tiled = [gp for gp in p.gemm_plans if not gp.on_ps]
    assert any(gp.cost.bytes_up > gp.cost.bytes_down for gp in tiled)
    for gp in tiled:
        assert gp.ps_bound == pytest.approx(
            gp.grid.tasks * max(gp.cost.bytes_down, gp.cost.bytes_up) / pool.ps.egress
        )
    ingress_bound = sum(gp.repeats * gp.grid.tasks * gp.cost.bytes_up / pool.ps.ingress for gp in tiled)
    shared = simulate_step(p, SimConfig(churn=False, traces=False, backups=False, straggler_prob=0.0))
    free = simulate_step(p, SimConfig.ideal())
    assert shared.seconds >= ingress_bound * (1 - 1e-9) > free.seconds - analytic_step(p).ps_seconds


def test_a_failed_device_loses_only_its_tile(tiny_plan):
    config = SimConfig(churn=False, traces=False, straggler_prob=0.0, backups=False)
    clean = simulate_step(tiny_plan, config)
    busiest = int(np.argmax(clean.busy))
    failed = simulate_step(tiny_plan, config, fail_device=busiest, fail_at=clean.seconds / 2)
    assert failed.failures == 1 and failed.requeued <= 1
    if failed.requeued:  # the lost tile is redone within a few tile times
        assert 0 < failed.recovery_seconds < 0.1 * clean.seconds
    assert failed.tasks == clean.tasks
    assert failed.seconds - clean.seconds < 0.1 * clean.seconds


def test_churn_requeues_and_is_reproducible(tiny_plan):
    config = SimConfig(traces=False)
    # make devices leave often: scale sessions down by running a long step (many layers)
    long_plan = plan(build_graph(BUILTIN["opt-1.3b"], batch=32, seq=1024), make_pool(24, seed=5))
    a = simulate_step(long_plan, config, seed=3)
    b = simulate_step(long_plan, config, seed=3)
    assert a.seconds == b.seconds and a.failures == b.failures
    assert a.failures > 0
    assert a.tasks == sum(gp.grid.tasks * gp.repeats for gp in long_plan.gemm_plans if not gp.on_ps)


def test_traces_drive_links_and_need_a_traced_pool(shared_data, tiny_plan):
    with pytest.raises(InvalidInputError, match="no bandwidth traces"):
        simulate_step(tiny_plan, SimConfig())
    traces = load_traces(shared_data / "bandwidth-traces")
    p = plan(build_graph(TINY, batch=8, seq=256), make_pool(40, seed=4, traces=traces), churn=False)
    sim = simulate_step(p, SimConfig(churn=False, backups=False, straggler_prob=0))
    assert np.isfinite(sim.seconds) and sim.seconds > 0
    with pytest.raises(InvalidInputError, match="fail_device"):
        simulate_step(p, SimConfig(), fail_device=10_000)


def test_baselines_respect_memory_and_cloud_formula():
    graph = build_graph(BUILTIN["opt-13b"], batch=64, seq=1024)
    phones = make_pool(64, {"phone-midrange": 1.0}, seed=0)
    dp = data_parallel(graph, phones)
    assert dp.seconds == np.inf and "GB" in dp.reason
    results = run_baselines(graph, make_pool(256, seed=0))
    assert np.isfinite(results["asteroid"].seconds) and results["asteroid"].config["pp"] >= 1
    assert np.isfinite(results["swarm"].seconds) and np.isfinite(results["megatron"].seconds)
    ref = cloud(graph, gpus=8, tflops=100.0, utilisation=0.5)
    assert ref.seconds == pytest.approx(graph.gemm_flops / (8 * 100e12 * 0.5))
    small = build_graph(TINY, batch=8, seq=256)
    assert np.isfinite(data_parallel(small, make_pool(16, seed=0)).seconds)


def test_energy_accounts_busy_time_and_grid_intensity(tiny_plan):
    est = analytic_step(tiny_plan)
    e = edge_energy(tiny_plan.pool, est.busy, est.seconds, tiny_plan.graph.tokens, grid_g_per_kwh=100)
    expected = (tiny_plan.pool.power * est.busy).sum() / 3.6e6
    assert e.kwh - e.kwh_by_class["parameter-server"] == pytest.approx(expected)
    assert e.co2_g == pytest.approx(100 * e.kwh)
    c = cloud_energy(10.0, 8, 400.0, 1000, pue=1.0, grid_g_per_kwh=0)
    assert c.kwh == pytest.approx(8 * 400 * 10 / 3.6e6) and c.co2_g == 0
    with pytest.raises(InvalidInputError, match="grid intensity"):
        cloud_energy(1.0, 1, 1.0, 1, grid_g_per_kwh=-1)


def test_step_that_loses_every_device_is_a_clear_error():
    p = plan(build_graph(TINY, batch=2, seq=64), make_pool(counts={"laptop": 1}, seed=0), churn=False)
    with pytest.raises(InvalidInputError, match="could not finish"):
        simulate_step(p, SimConfig.ideal(), fail_device=0, fail_at=1e-3)


@pytest.mark.parametrize("devices, seed", [(64, 0), (200, 3)])
def test_asteroid_task_graph_equals_its_closed_form(devices, seed):
    base = asteroid(build_graph(BUILTIN["opt-1.3b"], batch=32, seq=512), make_pool(devices, seed=seed))
    cfg = base.pipeline
    assert cfg is not None and cfg.shape == (base.config["dp"], base.config["pp"])
    run = simulate_pipeline(cfg)
    assert run.seconds == pytest.approx(base.seconds, rel=1e-12) == pipeline_seconds(cfg)


def test_asteroid_failure_replans_migrates_and_replays():
    base = asteroid(build_graph(BUILTIN["opt-1.3b"], batch=32, seq=512), make_pool(64, seed=0))
    cfg = base.pipeline
    clean = simulate_pipeline(cfg).seconds
    critical = critical_pipeline(cfg)
    stage = cfg.shape[1] // 2
    failed = simulate_pipeline(cfg, fail=(critical, stage), fail_at=0.3 * clean)
    assert failed.delay > 0  # the replacement starts only after re-planning and migration
    assert failed.seconds >= 0.3 * clean + REPLAN_SECONDS + cfg.migrate[critical, stage]
    assert failed.to_step_end == pytest.approx(failed.seconds - 0.3 * clean)
    assert failed.redone >= REPLAN_SECONDS + cfg.migrate[critical, stage]
    redone, delay, step = pipeline_recovery(cfg, trials=2)
    assert step == clean and redone > REPLAN_SECONDS and delay >= 0
    late = simulate_pipeline(cfg, fail=(critical, stage), fail_at=2 * clean)  # after its last task
    assert late.delay == 0 and late.seconds == clean


def test_resident_weights_are_fetched_once_and_reused_by_the_backward():
    p = plan(build_graph(BUILTIN["opt-1.3b"], batch=64, seq=1024), make_pool(64, seed=0), churn=False)
    resident = {gp.gemm.name: gp for gp in p.gemm_plans if gp.resident_bytes}
    assert {"ffn_down.fwd", "ffn_down.dact"} <= set(resident)  # W2 kept for X W2 and for dY W2^T
    fwd = resident["ffn_down.fwd"]
    assert (
        fwd.grid.grid_cols == 1
        and fwd.resident_bytes == 2 * BUILTIN["opt-1.3b"].hidden * BUILTIN["opt-1.3b"].ffn
        and fwd.cost.bytes_down < fwd.resident_bytes
    )
    sim = simulate_step(p, replace(SimConfig.ideal(), lockstep=True))
    est = analytic_step(p, contention=False, churn=False)
    assert sim.seconds == pytest.approx(est.seconds, rel=1e-9)
    np.testing.assert_allclose(sim.busy, est.busy, rtol=1e-6, atol=1e-9)
    # the backward pulls with the weight already on the devices that ran the forward: without that
    # reuse every one of its devices would fetch W2 first and it would take longer
    i = [gp.gemm.name for gp in p.gemm_plans].index("ffn_down.dact")
    gp = p.gemm_plans[i]
    devices = np.flatnonzero(p.eligible()[i])
    period, latency = (a[devices] for a in device_task_seconds(p.pool, gp.cost, False, gp.resident_bytes))
    order = np.argsort(period, kind="stable")
    fetch_all = setup_seconds(p.pool, gp.resident_bytes, None)[devices][order]
    cold, _ = pull_makespan(period[order], latency[order], fetch_all, gp.grid.tasks)
    assert est.stage_seconds[i] < cold


def test_one_task_in_flight_never_overlaps_a_devices_stages():
    pool = make_pool(40, seed=4)
    graph = build_graph(TINY, batch=8, seq=256)
    deep = plan(graph, pool, churn=False)
    one = plan(graph, replace(pool, tasks_in_flight=1), churn=False)
    # one task at a time: a device's period is its whole task latency, never a single stage
    assert (
        analytic_step(one, contention=False, churn=False).seconds
        > analytic_step(deep, contention=False, churn=False).seconds
    )
    assert simulate_step(one, SimConfig.ideal()).seconds > simulate_step(deep, SimConfig.ideal()).seconds


@pytest.mark.parametrize(
    "stragglers, backups, seconds, backups_run, events",
    [
        (0.0, True, 3.138141462789744, 51, 9573),
        (0.0, False, 3.154967067527587, 0, 9445),
        (0.3, True, 3.102523778107531, 52, 9523),
    ],
)
def test_recorded_steps_are_reproduced_exactly(stragglers, backups, seconds, backups_run, events):
    # recorded from the kernel before every compute start went through one helper (_start_compute):
    # any path that adds or drops a straggler draw, or reorders events, changes these numbers
    graph = build_graph(TINY, batch=8, seq=256, micro_batch=2)
    p = plan(graph, make_pool(40, seed=4), churn=False)
    sim = simulate_step(p, SimConfig(traces=False, straggler_prob=stragglers, backups=backups), seed=3)
    assert (sim.seconds, sim.tasks, sim.backups, sim.events) == (seconds, 1840, backups_run, events)


def test_every_compute_start_can_straggle():
    # with certain stragglers every task computes straggler_factor times longer, on every path that
    # starts a compute (after a download, after a compute, after a backup copy is cancelled)
    pool = make_pool(24, seed=2)
    p = plan(build_graph(TINY, batch=8, seq=256), pool, churn=False)
    base = SimConfig(contention=False, churn=False, traces=False, backups=True, straggler_prob=0.0)
    normal = simulate_step(p, base)
    slowed = simulate_step(p, replace(base, straggler_prob=1.0, straggler_factor=1e6))
    assert slowed.seconds > 1e3 * normal.seconds


def test_a_serial_ps_queues_every_task_it_hands_out_and_takes_in():
    from frugalml.cleave.validate import fleet_pool, plan_for

    p = plan_for(fleet_pool(4, None, 0, 2e9))
    config = SimConfig(contention=True, churn=False, traces=False, backups=False, straggler_prob=0.0)
    config = replace(config, lockstep=True)
    base = simulate_step(p, config).seconds
    assert simulate_step(p, replace(config, ps_task_out_s=0.0, ps_task_in_s=0.0)).seconds == base
    slow = simulate_step(p, replace(config, ps_task_out_s=0.01, ps_task_in_s=0.01)).seconds
    tasks = sum(gp.repeats * gp.grid.tasks for gp in p.gemm_plans if not gp.on_ps)
    assert slow > base and slow >= 0.02 * tasks  # one task after another, GEMM by GEMM
    with pytest.raises(InvalidInputError, match="ps_task_out_s"):
        simulate_step(p, replace(config, ps_task_out_s=-1.0))
