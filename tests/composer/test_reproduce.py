"""composer's checks for ``frugal reproduce``: names, stored files and the claim fields of a quick run."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from frugalml.common.report import read_records
from frugalml.common.reproduction import MODES
from frugalml.composer.bench.reproduce import COMPARISONS, comparison_records, reproductions

RESULTS = Path(__file__).parents[2] / "benchmarks" / "results"


def test_names_are_unique_and_hyphenated():
    names = [r.name for r in reproductions()]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in names)


def test_stored_results_exist_and_every_check_has_a_mode_or_a_file():
    for r in reproductions():
        assert set(r.modes) <= set(MODES)
        if set(r.modes) != set(MODES):
            assert r.stored.startswith("composer/"), r.name
            assert (RESULTS / r.stored).is_file(), r.stored
            read_records(RESULTS / r.stored)  # readable as results


def test_comparisons_name_committed_results():
    for c in COMPARISONS:
        assert (RESULTS / "composer" / f"{c.name}.json").is_file()
        assert f"--json benchmarks/results/composer/{c.name}.json" in c.command()


def test_quick_extrapolation_and_agreement_carry_claims(tmp_path):
    checks = {r.name: r for r in reproductions()}
    records = checks["extrapolation-1b"].run("quick", tmp_path) + checks["table-agreement"].run(
        "quick", tmp_path
    )
    assert records
    for r in records:
        assert r.claim.startswith("composer/") and r.paper_statement and r.reason and r.command
        assert r.verdict in ("reproduced", "better than the paper", "not reproduced", "")
    layers = {r.claim: r for r in records if r.metric == "layers"}
    assert layers["composer/stack-1b-layers"].ours == 27
    assert layers["composer/stretch-1b-layers"].ours == 29
    assert all(r.verdict == "reproduced" for r in layers.values())


def test_quick_comparison_writes_its_plot(tmp_path):
    c = replace(next(c for c in COMPARISONS if c.name == "fresh-am-6-5seeds-default-2000"), quick=2)
    records = comparison_records(c, "quick", tmp_path)
    assert [r.peer for r in records] == ["random"]
    assert records[0].claim == "composer/bo-vs-random-fresh-am-6-5seeds-default-2000"
    assert records[0].verdict in ("reproduced", "not reproduced", "")
    assert "quick mode: 2 engine seeds instead of 100" in records[0].notes
    assert (tmp_path / "fresh-am-6-5seeds-default-2000.png").is_file()


def test_ablation_records_compare_each_variant_with_random():
    from frugalml.composer.bench.bo_ablation import ablation_records, summarise

    summary = summarise({"random": {0: 30, 1: 40}, "string:log-ei:2": {0: 10, 1: 20}}, [0, 1])
    (r,) = ablation_records(summary, [0, 1], "AM_6")
    assert (r.ours, r.peer, r.peer_value, r.ratio) == (15.0, "random", 35.0, 35 / 15)
    assert r.claim == "composer/bo-ablation-am-6" and "--seeds 0 2 --table AM_6" in r.command
