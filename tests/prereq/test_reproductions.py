"""PREREQ's checks for ``frugal reproduce``: one quick check's claim fields."""

from frugalml.common.report import VERDICTS
from frugalml.prereq.bench.reproduce import reproductions


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
