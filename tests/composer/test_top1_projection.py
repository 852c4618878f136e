"""Top-1 stability of a multi-seed table: its contenders and the projection to more seeds."""

import json
from pathlib import Path

import numpy as np
import pytest

from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.report import read_json
from frugalml.composer.bench.table_agreement import read_table_doc
from frugalml.composer.bench.top1_projection import (
    backtest,
    contenders,
    project,
    projection_records,
    seed_matrix,
    stability,
)

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "composer"
TABLE = "ALCSM_3_4tasks"


def test_stability_is_the_tables_own_top1_stability():
    doc = read_table_doc(TABLE)
    archs, table = seed_matrix(doc)
    assert archs[0] == "MCA" and table.shape == (3, 125)
    s, top1 = stability(table[None])
    assert s[0] == doc["agreement"]["top1_stability"] and top1[0] == 0


def test_contenders_of_the_tie_at_the_top():
    c = contenders(read_table_doc(TABLE))
    assert c["top1"] == "MCA" and c["within_1_se"] == ["CAM", "CCA"]
    assert c["resample_wins"]["MCA"] == read_table_doc(TABLE)["agreement"]["top1_stability"]
    assert sum(c["resample_wins"].values()) == pytest.approx(1.0)
    assert c["top"][1]["arch"] == "CAM" and c["top"][1]["gap_to_top1"] == pytest.approx(0.00408, abs=1e-5)


def test_projection_keeps_the_measured_seeds_and_is_repeatable():
    doc = read_table_doc(TABLE)
    p = project(doc, ks=(2, 3, 5), tables=20, resamples=200)
    assert set(p["by_k"]["2"]) == {"new table"}  # fewer seeds than measured: only fresh tables
    kept = p["by_k"]["3"]["add seeds"]
    assert kept["quartiles"] == [p["measured"], p["measured"]]
    assert all(0 <= v["mean"] <= 1 for k in p["by_k"].values() for v in k.values())
    again = project(doc, ks=(2, 3, 5), tables=20, resamples=200)
    assert again["by_k"] == p["by_k"]


def test_recorded_projection_matches_its_summary():
    summary = json.loads((RESULTS / "top1-projection-alcsm-3-4tasks-summary.json").read_text())
    doc = read_table_doc(TABLE)
    assert summary["contenders"] == contenders(doc)
    assert summary["projection"]["measured"] == doc["agreement"]["top1_stability"]
    stored = read_table_doc("ALCSM_3")["agreement"]["top1_stability"]  # all its seeds: what it stores
    assert summary["backtest"]["ALCSM_3"]["measured_all_seeds"] == stored
    records = projection_records(TABLE, summary)
    assert [r.to_dict() for r in records] == read_json(RESULTS / "top1-projection-alcsm-3-4tasks.json")


@pytest.mark.parametrize(
    "doc",
    [
        {"seeds": [0], "scores": {"A": 1.0}, "scores_by_seed": {"0": {"A": 1.0}}},
        {"seeds": [0, 1], "scores": {"A": 1.0}, "scores_by_seed": {"0": {"A": 1.0}}},
        {"seeds": [0, 1], "scores": {"A": 1.0}, "scores_by_seed": {"0": {"A": 1.0}, "1": {"A": "nan"}}},
        {"scores": {"A": 1.0}},
    ],
)
def test_a_table_without_seeds_is_refused_in_one_line(doc):
    with pytest.raises(CorruptFileError) as e:
        seed_matrix(doc)
    assert "\n" not in str(e.value)


def test_a_clear_winner_is_stable_at_every_k():
    gen = np.random.default_rng(0)
    scores = {str(s): {"A": 0.9 + 0.01 * gen.random(), "B": 0.5, "C": 0.1} for s in range(3)}
    doc = {"seeds": [0, 1, 2], "scores": {"A": 0, "B": 0, "C": 0}, "scores_by_seed": scores}
    p = project(doc, ks=(3, 5), tables=10, resamples=100)
    assert all(
        v["mean"] == 1.0 and v["top1_is_true_best"] == 1.0 for k in p["by_k"].values() for v in k.values()
    )


def test_backtest_keeps_fewer_seeds_than_the_table_has():
    doc = read_table_doc("ALCSM_3")
    b = backtest(doc, keep=3, tables=5)
    assert b["seeds"] == 4 and len(b["from"]) == 4
    with pytest.raises(InvalidInputError, match="keeps 2 to 3"):
        backtest(doc, keep=4)
