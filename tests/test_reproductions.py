"""Every system's checks for ``frugal reproduce`` keep its contract (frugalml.common.reproduction):
unique hyphenated names, known modes, a stored results file behind every mode a check cannot run, and
a quick mode of all seven systems within 15 minutes on 2 cores."""

import re
from pathlib import Path

import pytest

from frugalml import SYSTEMS
from frugalml.common.report import read_records
from frugalml.common.reproduction import MODES
from frugalml.reproduce import checks_of, is_other_results

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
QUICK_SECONDS_PER_SYSTEM = 120
QUICK_SECONDS = 15 * 60  # all seven systems


@pytest.mark.parametrize("system", SYSTEMS)
def test_checks_keep_the_contract(system):
    checks = checks_of(system)
    names = [c.name for c in checks]
    assert checks and len(set(names)) == len(names), names
    for check in checks:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", check.name), check.name
        assert set(check.modes) <= set(MODES), check.name
        if set(check.modes) != set(MODES):
            assert check.stored.startswith(f"{system}/"), check.name
            stored = RESULTS / check.stored
            assert is_other_results(stored) or read_records(stored), check.stored  # readable
    assert quick_seconds(checks) <= QUICK_SECONDS_PER_SYSTEM


def test_quick_mode_of_all_systems_fits_its_budget():
    assert sum(quick_seconds(checks_of(system)) for system in SYSTEMS) <= QUICK_SECONDS


def quick_seconds(checks):
    return sum(c.quick_seconds for c in checks if "quick" in c.modes)
