"""sparse24's checks for ``frugal reproduce``: quick runs with claim fields."""

from __future__ import annotations

from frugalml.common.report import VERDICTS
from frugalml.sparse24.bench.reproduce import reproductions


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
