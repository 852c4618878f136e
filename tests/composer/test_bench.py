"""composer's benchmarks in src (frugalml.composer.bench): records, merging and the recorded results."""

from __future__ import annotations

import json
from pathlib import Path

from frugalml.common.report import read_json
from frugalml.composer.bench.aggregators import WORKLOAD, aggregator_records, write_aggregator_records
from frugalml.composer.bench.bo_ablation import evals_to_top1, make, summarise
from frugalml.composer.bench.decode import DecodeSettings, decode_records
from frugalml.composer.bench.engines import compare_report, search_efficiency
from frugalml.composer.bench.table_agreement import agreement_records, agreement_summary, read_table_doc
from frugalml.composer.bench.throughput import ThroughputSettings
from frugalml.composer.engines import GPBayesOpt, RandomSearch
from frugalml.composer.tabular import load_table

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "composer"


def test_aggregator_records_merge_with_the_search_efficiency_records(tmp_path):
    path = tmp_path / "search-efficiency.json"
    records = aggregator_records(budget=6, seeds=2)
    assert [r.peer for r in records] == ["best-single"] * 4
    assert all(r.workload.startswith(WORKLOAD) for r in records)
    write_aggregator_records(records, path)
    search_efficiency("bo,random", 2, "AM_6", path, tmp_path / "curves.png")
    write_aggregator_records(records, path)  # replaces its own records, keeps the engines'
    workloads = [r["workload"] for r in read_json(path)]
    assert sum(w.startswith(WORKLOAD) for w in workloads) == 4
    assert sum(w.startswith("tabular AM_6") for w in workloads) == 1
    assert (tmp_path / "curves.png").is_file()


def test_compare_report_always_includes_bo(capsys):
    records = compare_report("random, evolution,", 2, "AM_6", None, None, quiet=True)
    assert sorted(r.peer for r in records) == ["evolution", "random"]
    assert "random/bo" in capsys.readouterr().out


def test_bo_ablation_variants_reach_the_top1():
    table = load_table("AM_6")
    assert isinstance(make("random", table.space, 0), RandomSearch)
    assert isinstance(make("mixed:thompson:8", table.space, 0), GPBayesOpt)
    found = evals_to_top1(("random", 3, "AM_6"))
    assert 1 <= found.evaluations <= table.space.size
    summary = summarise({"random": {0: 4, 1: 8, 2: 6}}, [0, 1, 2])["random"]
    assert summary["median"] == 6 and summary["median_first_half"] == 4 and summary["evals"] == [4, 8, 6]


def test_table_agreement_reproduces_its_recorded_results():
    summary = agreement_summary("AM_6_5seeds", "AM_6", 10_000)
    assert summary == json.loads((RESULTS / "table-agreement-summary.json").read_text())
    records = agreement_records(summary, len(read_table_doc("AM_6_5seeds")["scores"]), 10_000)
    assert [r.to_dict() for r in records] == read_json(RESULTS / "table-agreement.json")


def test_decode_records_match_the_analytic_state_bytes():
    records = decode_records(["AMAM", "LMLM"], DecodeSettings(width=16, prompt=8, new=4, rounds=1))
    timed, states = records[0::3], [r for i, r in enumerate(records) if i % 3]
    assert [r.workload for r in timed] == ["decode AMAM", "decode LMLM"]
    assert all("same tokens: True" in r.notes for r in timed)
    assert all(r.ours == r.peer_value for r in states)


def test_throughput_pair_comes_from_the_recorded_quality_runs():
    pair = ThroughputSettings.from_runs(RESULTS / "fidelity-gpu-runs.json")
    assert (pair.ours, pair.peer, pair.width) == ("MAAAAMMAAAAM", "AMAMAMAMAM", 256)
