"""maskedmm's claim checks for ``frugal reproduce``: names, stored files, one quick run."""

import re
from pathlib import Path

from frugalml.common.report import VERDICTS
from frugalml.maskedmm.bench.reproduce import reproductions

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def test_names_are_unique_and_hyphenated_and_stored_files_exist():
    checks = reproductions()
    names = [c.name for c in checks]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in names)
    for c in checks:
        assert set(c.modes) <= {"quick", "full"}
        if "quick" not in c.modes:
            assert (RESULTS / c.stored).is_file(), c.stored
    assert sum(c.quick_seconds for c in checks if "quick" in c.modes) <= 100


def test_one_quick_run_states_its_claim(tmp_path):
    check = next(c for c in reproductions() if c.name == "kernels")
    records = check.run("quick", tmp_path)
    claims = [r for r in records if r.claim]
    assert len(claims) == 1
    r = claims[0]
    assert r.claim == "maskedmm/row-skip-kernel" and r.verdict in VERDICTS and r.verdict
    assert r.paper_statement and r.reason and r.command and r.peer and "quick mode" in r.notes
    assert r.ours > 0 and r.higher_is_better
