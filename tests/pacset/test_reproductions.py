"""pacset's checks for ``frugal reproduce``: names, stored files, and one quick run's claim fields."""

import re
from pathlib import Path

from frugalml.common.reproduction import MODES
from frugalml.pacset.bench.reproduce import reproductions

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def test_reproductions_are_named_and_stored():
    found = reproductions()
    names = [r.name for r in found]
    assert len(names) == len(set(names))
    for r in found:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r.name), r.name
        assert set(r.modes) <= set(MODES)
        if set(r.modes) != set(MODES):
            assert r.stored and (RESULTS / r.stored).is_file(), r.stored
    assert sum(r.quick_seconds for r in found if "quick" in r.modes) <= 100


def test_quick_checks_cost_carries_claim_fields(tmp_path):
    check = {r.name: r for r in reproductions()}["validation-cost"]
    (record,) = check.run("quick", tmp_path)
    assert record.claim == "pacset/checks-at-open-cost"
    assert record.verdict in ("reproduced", "not reproduced")
    assert record.paper_statement and record.reason and record.command
    assert record.peer and record.peer_value and record.peer_value > 0
    assert (tmp_path / "validation-cost.json").is_file()
