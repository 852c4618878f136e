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
