"""sparse24's checks for ``frugal reproduce``: names, stored files and quick runs with claim fields."""

from __future__ import annotations

import re
from pathlib import Path

from frugalml.common.report import VERDICTS
from frugalml.sparse24.bench.reproduce import reproductions

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
    assert {"gpu", "quality", "quality-3m-seeds"} <= set(names)
    assert sum(r.quick_seconds for r in checks if "quick" in r.modes) <= 100


def test_quick_cpu_checks_carry_their_claims(tmp_path):
    checks = {r.name: r for r in reproductions()}
    for name, claim in (
        ("speed-cpu", "sparse24/router-energy"),
        ("checkpoint-load", "sparse24/checkpoint-checks"),
    ):
        records = checks[name].run("quick", tmp_path)
        first = records[0]
        assert first.claim == claim and first.verdict in VERDICTS and first.verdict
        assert first.paper_statement and first.reason and first.command and "quick mode" in first.notes
        assert first.peer and first.peer_value is not None
