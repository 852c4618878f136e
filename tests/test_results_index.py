"""benchmarks/results/README.md indexes every results file, and every file it links exists."""

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
INDEX = RESULTS / "README.md"


def _links() -> set[str]:
    return set(re.findall(r"\]\(([^)#\s]+)\)", INDEX.read_text()))


def test_every_link_in_the_index_resolves():
    missing = sorted(
        link for link in _links() if not link.startswith("http") and not (RESULTS / link).exists()
    )
    assert not missing, f"benchmarks/results/README.md links files that do not exist: {missing}"


def test_every_results_file_is_indexed():
    text = INDEX.read_text()
    files = [p.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("*") if p.is_file() and p != INDEX]
    unlisted = sorted(f for f in files if f not in text)
    assert not unlisted, f"add these to benchmarks/results/README.md (or remove them): {unlisted}"


def test_one_naming_rule():
    bad = [
        p.relative_to(RESULTS).as_posix()
        for p in RESULTS.rglob("*")
        if p.is_file()
        and p != INDEX
        and not re.fullmatch(
            r"[a-z0-9]+/[a-z0-9]+(-[a-z0-9]+)*\.(json|png|csv)", p.relative_to(RESULTS).as_posix()
        )
    ]
    assert not bad, f"results are named <system>/<claim>.json|png|csv in lowercase-hyphenated words: {bad}"
