"""The regime map: cells, floors, outputs and the simulator's agreement on a sample."""

import csv
import json

import numpy as np
import pytest

from frugalml.cleave.regimes import (
    Grid,
    cleave_floors,
    des_agreement,
    plot_heatmaps,
    regime_map,
    summary,
    write_csv,
)
from frugalml.cli import main
from frugalml.common.errors import InvalidInputError

SMALL = Grid(("opt-1.3b",), (8, 64), (64,), ("phones", "mixed"), (2.0,), 256)


@pytest.fixture(scope="module")
def cells():
    return regime_map(SMALL)


def test_every_cell_compares_cleave_with_the_best_baseline_and_names_its_floor(cells):
    assert len(cells) == 4
    for c in cells:
        assert c.cleave_s > 0 and c.best_baseline in c.baselines
        assert c.baseline_s == min(c.baselines.values())
        assert c.ratio == pytest.approx(c.baseline_s / c.cleave_s)
        assert c.binding == max(c.floors, key=c.floors.get)
        assert max(c.floors.values()) <= c.cleave_s * (1 + 1e-9)  # floors bound the step
        assert c.single_device == bool(np.isfinite(c.baselines["dp"]))


def test_outputs_and_summary(cells, tmp_path):
    rows = list(csv.DictReader(write_csv(cells, tmp_path / "m.csv").open()))
    assert len(rows) == 4 and {"ratio", "cleave_binding", "single_device_can_train"} <= set(rows[0])
    (png,) = plot_heatmaps(cells, tmp_path)
    assert png.name == "compare-opt-1-3b.png" and png.stat().st_size > 1000
    agreement = des_agreement(cells, 2, seq=256)
    assert len(agreement) == 2 and all(a["relative_difference"] < 0.5 for a in agreement)
    text = summary(cells, agreement)
    assert "of 4 cells" in text and "\n" not in text


def test_bad_grids_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(InvalidInputError, match="unknown pool"):
        Grid(pools=("tablets",))
    with pytest.raises(SystemExit) as exc:
        main(["cleave", "compare", "-o", str(tmp_path / "missing"), "--models", "opt-1.3b"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "does not exist" in err


def test_compare_cli_writes_the_map(tmp_path, capsys):
    argv = ["cleave", "compare", "-o", str(tmp_path), "--models", "opt-1.3b", "--batches", "8"]
    argv += ["--devices", "64", "--pools", "phones", "--asymmetry", "10", "--seq", "256", "--des-sample", "1"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code in (0, None)
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert len(doc["cells"]) == 1 and len(doc["des_agreement"]) == 1 and "Cleave" in doc["summary"]
    assert (tmp_path / "compare.csv").exists() and (tmp_path / "compare-opt-1-3b.png").exists()


def test_floors_of_a_plan_are_positive(cells):
    from frugalml.cleave.models import load_model
    from frugalml.cleave.opgraph import build_graph
    from frugalml.cleave.planner import plan
    from frugalml.cleave.regimes import draw_pool

    p = plan(build_graph(load_model("opt-1.3b"), 8, 256), draw_pool("phones", 64, 10.0), churn=False)
    floors = cleave_floors(p)
    assert all(v > 0 for v in floors.values()) and floors["uplink"] > floors["downlink"] / 10


def test_the_ffn_split_lever_is_planned_simulated_and_named_in_every_output(tmp_path):
    from frugalml.cleave.models import load_model
    from frugalml.cleave.opgraph import build_graph
    from frugalml.cleave.planfile import executable_plan
    from frugalml.cleave.planner import plan
    from frugalml.cleave.regimes import draw_pool

    grid = Grid(("opt-1.3b",), (8,), (64,), ("mixed",), (2.0,), 256)
    (cell,) = regime_map(grid, ffn_split=True)
    (plain,) = regime_map(grid)
    assert cell.baselines == plain.baselines  # the lever changes only Cleave's plan
    assert "ffn_split" in cell.levers and "simulator option" in cell.levers
    row = next(csv.DictReader(write_csv([cell], tmp_path / "m.csv").open()))
    assert "ffn_split" in row["cleave_levers"]
    (agreement,) = des_agreement([cell], 1, seq=256, ffn_split=True)
    assert agreement["relative_difference"] < 0.5
    p = plan(build_graph(load_model("opt-1.3b"), 8, 256, ffn_split=True), draw_pool("mixed", 64, 2.0))
    with pytest.raises(InvalidInputError, match="simulator option"):
        executable_plan(p, "fp16")


def _small_plan(micro_batch=None, batch=64, devices=64, pool="mixed"):
    from frugalml.cleave.models import load_model
    from frugalml.cleave.opgraph import build_graph
    from frugalml.cleave.planner import plan
    from frugalml.cleave.regimes import draw_pool

    graph = build_graph(load_model("opt-1.3b"), batch, 256, micro_batch=micro_batch)
    return plan(graph, draw_pool(pool, devices, 10.0), churn=False)


@pytest.mark.parametrize("micro_batch", [None, 8, 2])
def test_overlapped_step_lies_between_its_floors_and_lockstep(micro_batch):
    from frugalml.cleave.analytic import analytic_step, overlap_parts, overlap_step

    p = _small_plan(micro_batch)
    seconds, lockstep = overlap_step(p), analytic_step(p).seconds
    assert max(cleave_floors(p).values()) <= seconds * (1 + 1e-9)  # never below the binding floor
    assert seconds <= lockstep * (1 + 1e-9)
    x = overlap_parts(p)
    assert np.sum([gp.repeats * x.devices[i] for i, gp in enumerate(p.gemm_plans)]) <= seconds * (1 + 1e-9)
    if micro_batch is None:  # one micro-batch: nothing to overlap, exactly lockstep
        assert p.graph.micro_batches == 1 and seconds == pytest.approx(lockstep, rel=1e-12)
    else:
        assert p.graph.micro_batches > 1 and seconds < lockstep


def test_overlap_equals_lockstep_for_one_gemm_chain_of_one_micro_batch():
    from frugalml.cleave.analytic import analytic_step, overlap_step

    p = _small_plan(None, batch=8)
    assert p.graph.micro_batches == 1
    assert overlap_step(p) == pytest.approx(analytic_step(p).seconds, rel=1e-12)
    assert overlap_step(p, contention=False) == pytest.approx(analytic_step(p, contention=False).seconds)


def test_overlap_agrees_with_the_simulators_dataflow_schedule():
    from frugalml.cleave.analytic import overlap_step
    from frugalml.cleave.des import SimConfig, simulate_step

    quiet = SimConfig(churn=False, traces=False, backups=False, straggler_prob=0.0)
    for micro_batch, devices in ((8, 64), (2, 256)):
        p = _small_plan(micro_batch, devices=devices)
        des = simulate_step(p, quiet).seconds
        assert overlap_step(p) == pytest.approx(des, rel=0.15)


def test_the_overlap_lever_is_named_in_every_output(tmp_path, capsys):
    grid = Grid(("opt-1.3b",), (64,), (64,), ("mixed",), (10.0,), 256)
    (cell,) = regime_map(grid, overlap=True)
    (plain,) = regime_map(grid)
    assert cell.baselines == plain.baselines and cell.lockstep_s == pytest.approx(plain.cleave_s)
    assert "overlap" in cell.levers and "simulator option" in cell.levers
    row = next(csv.DictReader(write_csv([cell], tmp_path / "m.csv").open()))
    assert "overlap" in row["cleave_levers"] and float(row["cleave_lockstep_s"]) > 0
    (agreement,) = des_agreement([cell], 1, seq=256, overlap=True)
    assert agreement["schedule"] == "dataflow" and agreement["des_s"] == agreement["des_dataflow_s"]
    argv = ["cleave", "compare", "-o", str(tmp_path), "--models", "opt-1.3b", "--batches", "64", "--devices"]
    argv += ["64", "--pools", "mixed", "--asymmetry", "10", "--seq", "256", "--des-sample", "0", "--overlap"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--no-targets", "-q", "--name", "ov"])
    assert exc.value.code in (0, None)
    doc = json.loads((tmp_path / "ov.json").read_text())
    assert "overlap" in doc["levers"] and "simulator option" in doc["summary"]
    assert "overlap" in doc["cells"][0]["levers"]
    capsys.readouterr()
    plan_argv = ["cleave", "plan", "-m", "opt-1.3b", "-d", "64", "-b", "64", "-s", "256", "-q", "--overlap"]
    with pytest.raises(SystemExit) as exc:
        main(plan_argv)
    out = capsys.readouterr().out
    assert exc.value.code in (0, None) and "overlapped" in out and "simulator option" in out
    with pytest.raises(SystemExit) as exc:
        main([*plan_argv, "--json", str(tmp_path / "p.json")])
    assert exc.value.code == 2 and "simulator option" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_verdicts_name_the_floor_in_the_way():
    from frugalml.cleave.regimes import _goal_text, floor_verdict, lever_effect

    row = {
        "today_s": 700.0,
        "seconds": 470.0,
        "speedup": 700 / 470,
        "micro_batches": 8,
        "floors_s": {"downlink": 252.0, "uplink": 120.0},
        "binding": "downlink",
        "over_binding_floor": 470 / 252,
        "down_gb": 5093.0,
        "weight_gb": 1371.0,
        "up_gb": 314.0,
        "mean_down_mbit": 158.0,
        "mean_up_mbit": 20.0,
        "devices_used": 757,
        "tasks_per_device_median": 1.2,
        "planned_devices_s": 372.0,
        "per_gemm_max_s": 372.0,
        "pull_periods_s": 385.0,
        "gemm_devices_range": [414, 757],
        "met": False,
    }
    text = _goal_text(16, 2.0, row, 1024)
    assert "NOT met" in text and "downlink" in text and "4974 MB per device" in text and "158 Mbit/s" in text
    cells = regime_map(Grid(("opt-1.3b",), (64,), (64,), ("mixed", "phones"), (10.0,), 256))
    verdict = floor_verdict(cells)
    assert verdict["cells"] == len(cells)
    assert len(verdict["holds"]) + sum(verdict["floor_prevents"].values()) + verdict["schedule_prevents"] == 2
    effect = lever_effect(
        cells, regime_map(Grid(("opt-1.3b",), (64,), (64,), ("mixed",), (10.0,), 256), overlap=True)
    )
    assert (
        effect["cells"] == 1
        and effect["speedup_median"] >= 1.0
        and effect["binding_floor_ratio_median"] == 1.0
    )


def test_micro_batch_sizes_are_a_lever_the_agreement_follows():
    grid = Grid(("opt-1.3b",), (64,), (64,), ("mixed",), (10.0,), 256)
    (default,) = regime_map(grid, overlap=True)
    (cell,) = regime_map(grid, overlap=True, micro_tokens=(2048,))
    assert default.micro_batches == 1 and cell.micro_batches in (1, 8)
    assert cell.cleave_s <= default.cleave_s * (1 + 1e-12) and "micro-batch tokens 16384|2048" in cell.levers
    (agreement,) = des_agreement([cell], 1, seq=256, overlap=True)
    assert agreement["micro_batches"] == cell.micro_batches and agreement["relative_difference"] < 0.15
