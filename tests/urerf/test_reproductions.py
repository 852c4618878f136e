"""urerf's checks for ``frugal reproduce``: names, stored files and one quick run with claim fields."""

from __future__ import annotations

import re
from pathlib import Path

from frugalml.common.report import VERDICTS
from frugalml.urerf.bench.reproduce import reproductions

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def test_names_are_unique_and_stored_files_exist():
    checks = reproductions()
    names = [r.name for r in checks]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in names)
    for check in checks:
        assert set(check.modes) <= {"quick", "full"}
        if check.modes != ("quick", "full"):
            assert (RESULTS / check.stored).is_file(), check.stored
    quick = sum(r.quick_seconds for r in checks if "quick" in r.modes)
    assert quick <= 100


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
