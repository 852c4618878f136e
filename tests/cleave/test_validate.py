"""The simulator-vs-runtime check: overheads recorded in the catalogue, predictions, the fit."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from frugalml.cleave.devices import load_catalogue
from frugalml.cleave.validate import (
    SEARCH_POINTS,
    CpuUse,
    Measured,
    Overheads,
    Run,
    _catalogue_file,
    calibrate,
    fit_wire,
    fleet_pool,
    load_overheads,
    plan_for,
    predict,
    relative,
    save_overheads,
    simulation_pool,
    validation_records,
)
from frugalml.common.errors import DataNotFoundError, InvalidInputError


def test_overheads_are_recorded_in_the_catalogue_and_read_back(tmp_path):
    path = tmp_path / "devices.yaml"
    shutil.copy(_catalogue_file(), path)
    before = load_catalogue(path)
    first = Overheads(0.01, 0.002, 0.1, 1.02, 1.2, "test")
    save_overheads(first, path)
    save_overheads(replace(first, task_s=0.02), path)  # replaces, does not append
    assert load_overheads(path) == replace(first, task_s=0.02)
    assert path.read_text().count("\nruntime_overheads:") == 1 and load_catalogue(path) == before
    with pytest.raises(DataNotFoundError):
        load_overheads(tmp_path / "missing.yaml")


def _synthetic_run(p, truth, cores):
    """A measured run exactly as the simulator predicts it under ``truth``."""
    sim = predict(replace(p, pool=simulation_pool(p.pool, truth, cores)), truth)
    cpu = CpuUse(0.002, 0.003, truth.ps_pull_share, truth.ps_task_s, 0.01, 90.0, [0.5] * len(p.pool))
    measured = Measured(
        sim.step_s, [sim.step_s] * 3, dict(sim.gemm_s), list(sim.bytes_per_worker), "synthetic", cpu=cpu
    )
    return sim, Run(p, measured, cores)


def test_the_fit_recovers_known_overheads_and_predictions_add_up():
    pool = fleet_pool(4, None, 0, 2e9)
    p = plan_for(pool)
    tiled = {gp.gemm.name for gp in p.gemm_plans if not gp.on_ps}
    grid = np.geomspace(1e-4, 0.1, SEARCH_POINTS)  # the calibration's search grid
    truth = Overheads(
        0.0, 0.0, 0.05, 1.03, 1.25, "truth", ps_task_s=0.001, ps_pull_share=0.4,
        cap_cores=[0.375, 0.09375], cap_task_s=[float(grid[100]), float(grid[150])],
    )  # fmt: skip
    sim, run = _synthetic_run(p, truth, 0.375)
    assert set(sim.gemm_s) == tiled and len(sim.bytes_per_worker) == 4
    plain = predict(p, Overheads())
    down = sum(b[0] for b in sim.bytes_per_worker) / sum(b[0] for b in plain.bytes_per_worker)
    assert down == pytest.approx(1.03)
    _, tight = _synthetic_run(p, truth, 0.09375)
    fitted = calibrate([run, tight], "synthetic")
    assert fitted.cap_cores == [0.375, 0.09375]
    np.testing.assert_allclose(fitted.cap_task_s, truth.cap_task_s)
    assert (fitted.ps_task_s, fitted.ps_pull_share) == (0.001, 0.4)  # measured, not fitted
    assert fitted.gemm_ps_s == pytest.approx(truth.gemm_ps_s, abs=1e-9)
    assert fitted.step_ps_s == pytest.approx(truth.step_ps_s, abs=1e-6)
    assert (fitted.wire_down, fitted.wire_up) == (pytest.approx(1.03), pytest.approx(1.25))
    records = validation_records(4, 1.5, 3, sim, run.measured, fitted)
    assert records[0].metric == "step_time_relative_error" and records[0].ours == pytest.approx(0, abs=1e-9)
    assert records[0].spread["step_time_relative_error"] == records[0].ours
    assert relative(1.1, 1.0) == pytest.approx(0.1)


def test_per_task_seconds_follow_the_cap_in_one_over_cores():
    o = Overheads(cap_cores=[0.5, 0.25, 0.125], cap_task_s=[0.001, 0.004, 0.012])
    assert o.worker_task_s(0.25) == pytest.approx(0.004)
    assert o.worker_task_s(1 / 6) == pytest.approx(0.008)  # halfway between 1/0.25 and 1/0.125
    assert o.worker_task_s(0.0625) == pytest.approx(0.028)  # extended past the tightest cap
    assert o.worker_task_s(1.0) == 0.0  # extended past the loosest cap, never below 0
    assert Overheads().worker_task_s(0.1) == 0.0
    assert Overheads(cap_cores=[0.5], cap_task_s=[0.002]).worker_task_s(0.25) == pytest.approx(0.004)


def test_a_tighter_cap_is_never_fitted_faster():
    pool = fleet_pool(4, None, 0, 2e9)
    p = plan_for(pool)
    grid = np.geomspace(1e-4, 0.1, SEARCH_POINTS)
    loose = Overheads(cap_cores=[0.375], cap_task_s=[float(grid[150])])
    tight = Overheads(cap_cores=[0.1875], cap_task_s=[float(grid[125])])  # measured faster: noise
    fitted = calibrate([_synthetic_run(p, loose, 0.375)[1], _synthetic_run(p, tight, 0.1875)[1]], "t")
    assert fitted.cap_task_s[1] == fitted.cap_task_s[0] == pytest.approx(grid[150])


def test_malformed_cap_tables_are_refused(tmp_path):
    path = tmp_path / "devices.yaml"
    shutil.copy(_catalogue_file(), path)
    save_overheads(Overheads(cap_cores=[0.5, 0.25], cap_task_s=[0.001]), path)
    with pytest.raises(InvalidInputError, match="same length"):
        load_overheads(path)


@pytest.mark.net
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_validate_on_a_namespace_fleet_calibrates_and_records(tmp_path):
    from frugalml.cleave.runtime.fleet import namespaces_unavailable
    from frugalml.cleave.validate import run_validation

    why = namespaces_unavailable()
    if why is not None:
        pytest.skip(f"network namespaces unavailable: {why}")
    path = tmp_path / "devices.yaml"
    shutil.copy(_catalogue_file(), path)
    records, predicted, measured = run_validation(2, 3, None, 0.5, True, path)
    assert load_overheads(path).calibrated_on.startswith("2 workers")
    assert set(measured.gemm_s) >= set(predicted.gemm_s) and "namespaces" in measured.mode
    fitted = load_overheads(path)
    assert fitted.cap_cores == [0.25, 0.125, 0.0625] and len(fitted.cap_task_s) == 3  # 2 workers, 3 caps
    assert measured.cpu is not None and measured.cpu.ps_handler_per_task_s > 0
    assert records[0].metric == "step_time_relative_error" and np.isfinite(records[0].ours)
    assert records[1].ours < 0.1  # bytes, with the wire framing fitted on these runs


def test_the_byte_model_recovers_framing_per_task_bytes_and_idle_traffic():
    rng = np.random.default_rng(0)
    payload = np.column_stack([rng.uniform(1e5, 1e6, 6), rng.uniform(1e4, 1e5, 6), rng.integers(1, 40, 6)])
    payload[5] = 0  # a worker the plan gives no tiles
    truth = Overheads(
        wire_down=1.02,
        wire_up=1.05,
        task_bytes_down=300.0,
        task_bytes_up=150.0,
        idle_down_bps=800.0,
        idle_up_bps=500.0,
    )
    measured = np.array(truth.wire_bytes(payload, 2.0))
    other = payload * np.array([0.5, 2.0, 3.0])  # another run: other tiles, another step length
    fitted = Overheads(
        **fit_wire([(payload, measured, 2.0), (other, np.array(truth.wire_bytes(other, 3.0)), 3.0)])
    )
    np.testing.assert_allclose(fitted.wire_bytes(payload, 2.0), measured, rtol=1e-6)
    assert fitted.wire_up == pytest.approx(1.05) and fitted.task_bytes_down == pytest.approx(300, rel=1e-3)
    assert fitted.wire_bytes(np.zeros((1, 3)), 2.0)[0] == pytest.approx((1600.0, 1000.0))


def test_a_plan_file_is_validated_as_written(tmp_path, capsys):
    from frugalml.cleave.devices import make_pool
    from frugalml.cleave.planfile import PlannedGemm, executable_plan, read_plan, write_plan
    from frugalml.cleave.validate import load_plan_fleet, plan_from_file
    from frugalml.cli import main

    ep = executable_plan(plan_for(make_pool(counts={"laptop": 2, "phone-flagship": 3}, jitter=0)), "float32")
    # cut one GEMM differently and give it to the laptops only: the simulation must follow the file
    first = next(g for g in ep.gemms if not g.on_ps)
    changed = PlannedGemm(**{**first.__dict__, "grid_rows": 1, "grid_cols": 1, "shares": {"laptop": 1.0}})
    ep = replace(ep, gemms=tuple(changed if g is first else g for g in ep.gemms))
    path = tmp_path / "plan.json"
    write_plan(path, ep)
    ep2, pool = load_plan_fleet(path, 0, 1e9)
    assert len(pool) == 5 and pool.tasks_in_flight == ep2.tasks_in_flight == 1 and set(pool.flops) == {1e9}
    p = plan_from_file(ep2, pool)
    for gp in p.gemm_plans:
        planned = read_plan(path).gemm(gp.gemm.name)
        assert planned is not None and (gp.grid == planned.grid or gp.on_ps)
    gp = next(g for g in p.gemm_plans if g.gemm.name == first.name)
    laptops = pool.class_index == pool.class_names.index("laptop")
    assert gp.grid.tasks == 1 and np.array_equal(gp.devices, laptops)
    payload = np.array(predict(p, Overheads(), ep2).payload)
    assert payload[:, 2].sum() == sum(g.grid.tasks * g.repeats for g in ep2.gemms if not g.on_ps)
    for argv, message in (
        (["--plan", str(path), "--pool", str(path)], "give one"),
        (["--plan", str(path), "--workers", "4"], "for 5 devices"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["cleave", "validate", *argv])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
