"""The measurement helpers that need no data set: selection bookkeeping and result files."""

import json

import pytest

from frugalml.common import report
from frugalml.common.report import Record
from frugalml.prereq.bench import reproduce, selection


def _auc(label, value, name="university"):
    return Record("prereq", f"{name}/inner-validation/{label}", "validation AUC", "", value)


def test_selection_picks_the_best_eligible_setting_and_keeps_old_records(tmp_path):
    path = tmp_path / "select.json"
    one = "rich, dropout 0.7, 3 members each holding out 20%, 1000 steps"
    two = "rich, dropout 0.7, 2000 steps, one network holding out 20%"
    paper = "paper (abs, lr 1e-4, 3500 steps)"
    selection.merge([_auc(one, 0.80), _auc(paper, 0.95)], path, "university")
    merged = selection.merge([_auc(two, 0.83)], path, "university")
    by_workload = {r.workload.rsplit("/", 1)[-1]: r for r in merged}
    assert set(by_workload) == {one, paper, two, selection.SELECTED}
    chosen = by_workload[selection.SELECTED]
    assert chosen.ours == pytest.approx(0.83) and chosen.notes.startswith(f"selected: {two};")
    assert [r.workload for r in report.read_records(path)] == [r.workload for r in merged]


def test_eligible_settings_fit_the_step_budget():
    for label, params in selection.SETTINGS.items():
        steps = params.get("members", 1) * params.get("steps", 1000)
        assert selection.eligible(label) == (
            params.get("val_fraction", 0) > 0 and steps <= selection.MAX_STEPS
        )
    assert selection.chosen_settings("") == selection.SETTINGS
    assert all("rich" in label for label in selection.chosen_settings("rich"))


def test_combine_prefixes_workloads(tmp_path):
    for i in range(2):
        report.write_json([Record("prereq", f"w{i}", "F1", "", 0.5 + i)], tmp_path / f"{i}.json")
    out = reproduce.combine([tmp_path / "0.json", tmp_path / "1.json"], tmp_path / "all.json", ["a/", "b/"])
    records = json.loads(out.read_text())["records"]
    assert [(r["workload"], r["ours"]) for r in records] == [("a/w0", 0.5), ("b/w1", 1.5)]
