"""PREREQ's checks for ``frugal reproduce``: names, stored files, and one quick check's claim fields."""

import re
from pathlib import Path

from frugalml.common.report import VERDICTS
from frugalml.common.reproduction import MODES
from frugalml.prereq.bench.reproduce import reproductions

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def test_reproductions_have_unique_hyphenated_names_and_their_stored_files_exist():
    checks = reproductions()
    names = [c.name for c in checks]
    assert len(set(names)) == len(names)
    for check in checks:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", check.name), check.name
        assert set(check.modes) <= set(MODES)
        if set(check.modes) != set(MODES):
            assert check.stored and (RESULTS / check.stored).is_file(), check.name
    assert sum(c.quick_seconds for c in checks if "quick" in c.modes) <= 100


def test_quick_coverage_check_returns_claim_fields(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("FRUGAL_DATA", str(shared_data))
    (check,) = [c for c in reproductions() if c.name == "concept-coverage"]
    records = check.run("quick", tmp_path)
    claims = [r for r in records if r.claim]
    assert claims and all(r.claim.startswith("prereq/") for r in claims)
    for r in claims:
        assert r.paper_statement and r.paper_source and r.reason and r.command
        assert r.verdict in VERDICTS and r.verdict
        assert r.peer and r.peer_value is not None
