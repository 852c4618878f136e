"""urerf's checks for ``frugal reproduce``: one quick run with claim fields."""

from __future__ import annotations

from frugalml.common.report import VERDICTS
from frugalml.urerf.bench.reproduce import reproductions


def test_quick_drosophila_records_carry_the_claim(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("FRUGAL_DATA", str(shared_data))
    check = {r.name: r for r in reproductions()}["drosophila-min-parent-30"]
    records = check.run("quick", tmp_path)
    claimed = [r for r in records if r.claim]
    assert [r.claim for r in claimed] == ["urerf/drosophila-min-parent-30"]
    claim = claimed[0]
    assert claim.verdict in VERDICTS and claim.verdict
    assert claim.paper_value == 0.794 and claim.peer and claim.peer_value is not None
    assert claim.command.startswith("frugal urerf drosophila") and "quick mode" in claim.notes
    assert all(not r.claim for r in records[1:])
