"""The simulator-vs-runtime check: overheads recorded in the catalogue, predictions, the fit."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from frugalml.cleave.devices import load_catalogue
from frugalml.cleave.validate import (
    Measured,
    Overheads,
    _catalogue_file,
    calibrate,
    fleet_pool,
    load_overheads,
    plan_for,
    predict,
    relative,
    save_overheads,
    simulation_pool,
    validation_records,
)
from frugalml.common.errors import DataNotFoundError


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


def test_the_fit_recovers_known_overheads_and_predictions_add_up():
    cores = 0.375
    pool = fleet_pool(4, None, 0, 2e9)
    p = plan_for(pool)
    tiled = {gp.gemm.name for gp in p.gemm_plans if not gp.on_ps}
    truth = Overheads(float(np.geomspace(1e-4, 0.2, 24)[12]), 0.004, 0.05, 1.03, 1.25, "truth")
    sim = predict(replace(p, pool=simulation_pool(pool, truth, cores)), truth)
    assert set(sim.gemm_s) == tiled and len(sim.bytes_per_worker) == 4
    plain = predict(p, Overheads())
    down = sum(b[0] for b in sim.bytes_per_worker) / sum(b[0] for b in plain.bytes_per_worker)
    assert down == pytest.approx(1.03)
    measured = Measured(
        sim.step_s, [sim.step_s] * 3, dict(sim.gemm_s), list(sim.bytes_per_worker), "synthetic"
    )
    fitted = calibrate(p, measured, cores, "synthetic")
    assert fitted.task_s == pytest.approx(truth.task_s)
    assert fitted.gemm_ps_s == pytest.approx(truth.gemm_ps_s, abs=1e-9)
    assert fitted.step_ps_s == pytest.approx(truth.step_ps_s, abs=1e-6)
    assert (fitted.wire_down, fitted.wire_up) == (pytest.approx(1.03), pytest.approx(1.25))
    records = validation_records(4, 1.5, 3, sim, measured, fitted)
    assert records[0].metric == "step_time_relative_error" and records[0].ours == pytest.approx(0, abs=1e-9)
    assert records[0].spread["step_time_relative_error"] == records[0].ours
    assert relative(1.1, 1.0) == pytest.approx(0.1)


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
    # fitted on this run: exact unless the simulator over-predicts even without overheads (they are >= 0)
    assert records[0].metric == "step_time_relative_error" and records[0].ours < 0.5
    assert records[1].ours < 0.1  # bytes, with the wire framing fitted on this run
