"""The tabular benchmark: loading, corrupt tables, engine comparisons and their records."""

import json
from importlib import resources

import pytest

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.composer import Space
from frugalml.composer.tabular import (
    BUILTINS,
    DEFAULT_TABLE,
    bootstrap_ratio,
    compare_engines,
    load_table,
    plot_regret,
    records,
)

from .conftest import FormulaProxy


def _write_table(path, layers=4):
    space = Space("AM", layers)
    scores = {a: FormulaProxy().evaluate(a, 0)["score"] for a in space.enumerate()}
    path.write_text(
        json.dumps(
            {"space": {"primitives": "AM", "layers": layers}, "scores": scores, "config": {"formula": True}}
        )
    )
    return path


def test_compare_engines_on_a_table(tmp_path):
    table = load_table(_write_table(tmp_path / "t.json"))
    runs = compare_engines(table, ["bo", "random", "exhaustive"], seeds=3, first_seed=1000)
    for r in runs.values():
        assert len(r.evals_to_top1) == 3 and all(1 <= e <= 16 for e in r.evals_to_top1)
        assert r.regret.shape == (3, 16) and (r.regret[:, -1] == 0).all() and (r.regret >= 0).all()
        assert r.seeds == (1000, 1001, 1002)
    recs = records(runs)
    assert {r.peer for r in recs} == {"random", "exhaustive"}
    for rec in recs:
        low, high = rec.spread["ratio_ci95"]
        assert low <= rec.ratio <= high and rec.spread["seed_range"] == [1000, 1002]
    assert plot_regret(runs, tmp_path / "regret.png").stat().st_size > 1000
    # other seeds give other runs: the seeds really reach the engines
    again = compare_engines(table, ["random"], seeds=3, first_seed=0)["random"]
    assert again.seeds == (0, 1, 2) and again.regret.tolist() != runs["random"].regret.tolist()


def test_bootstrap_ratio():
    ratio, low, high = bootstrap_ratio([10] * 5 + [12] * 5, [20] * 5 + [24] * 5)
    assert ratio == 2.0 and 20 / 12 <= low <= ratio <= high <= 24 / 10
    ratio, low, high = bootstrap_ratio([5] * 9, [5] * 9)
    assert ratio == low == high == 1.0
    with pytest.raises(InvalidInputError):
        bootstrap_ratio([], [3])


@pytest.mark.parametrize("name", [None, *BUILTINS])
def test_built_in_tables_are_complete(name):
    try:
        table = load_table(name)
    except DataNotFoundError:
        pytest.skip(f"the built-in table {name} has not been computed yet")
    assert table.space.size == len(table.scores) in (64, 125) and "train" in json.dumps(table.config)
    assert table.name == (name or DEFAULT_TABLE) and table.seeds and table.name in table.describe()


@pytest.mark.parametrize("name", ["ALCSM_3", "ALCSM_3_4tasks", "ALCSM_3_lm", "ALCSM_3_lm300"])
def test_multi_seed_tables_carry_their_agreement(name):
    """The 125-string tables store the seed-to-seed agreement and the top-1's stability (and, from
    ALCSM_3_4tasks on, their CPU cost) beside their scores."""
    doc = json.loads((resources.files("frugalml.composer") / BUILTINS[name]).read_text())
    table = load_table(name)
    a = doc["agreement"]
    assert a["seeds"] == list(table.seeds) == doc["seeds"] and len(table.seeds) >= 3
    for key in ("pairwise_rho", "top_half_pairwise_rho", "split_half_rho"):
        assert -1.0 <= a[key] <= 1.0, key
    assert a["pairwise_rho_min"] <= a["pairwise_rho"] <= a["pairwise_rho_max"]
    assert 0.0 <= a["top1_stability"] <= 1.0
    assert set(a["top1_by_seed"]) == {str(s) for s in table.seeds}
    assert all(arch in table.scores for arch in a["top1_by_seed"].values())
    assert set(doc["scores_by_seed"]) == {str(s) for s in table.seeds}
    if name != "ALCSM_3":  # built before tables recorded their CPU seconds
        evaluations = len(table.scores) * len(table.seeds)
        total, each = doc["evaluation_cpu_seconds_total"], doc["cpu_seconds_per_evaluation"]
        assert each > 0 and total == pytest.approx(each * evaluations)


def test_bad_tables(tmp_path):
    with pytest.raises(DataNotFoundError):
        load_table(tmp_path / "none.json")
    with pytest.raises(DataNotFoundError, match="built-in"):
        load_table("AM_7")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(CorruptFileError):
        load_table(tmp_path / "junk.json")
    doc = json.loads(_write_table(tmp_path / "t.json").read_text())
    doc["scores"].pop("AAAA")
    (tmp_path / "partial.json").write_text(json.dumps(doc))
    with pytest.raises(CorruptFileError, match="lacks"):
        load_table(tmp_path / "partial.json")


def test_crafted_tables_are_refused_without_enumerating_their_space(tmp_path):
    doc = json.loads(_write_table(tmp_path / "t.json").read_text())
    cases = {
        "lacks": {"space": {"primitives": "AM", "layers": 60}, "scores": {"A" * 60: 1.0}},  # 2^60
        "outside its space": {**doc, "scores": {**doc["scores"], "AXAA": 0.5}},
        "not finite": {**doc, "scores": {**doc["scores"], "AAAA": float("nan")}},
        "not a tabular benchmark": {**doc, "space": {"primitives": "AQ", "layers": 4}},
    }
    for i, (message, crafted) in enumerate(cases.items()):
        (tmp_path / f"c{i}.json").write_text(json.dumps(crafted))
        with pytest.raises(CorruptFileError, match=message):
            load_table(tmp_path / f"c{i}.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(CorruptFileError, match="not a tabular benchmark"):
        load_table(tmp_path / "list.json")
