"""maskedmm's claim checks for ``frugal reproduce``: one quick run."""

from frugalml.common.report import VERDICTS
from frugalml.maskedmm.bench.reproduce import reproductions


def test_one_quick_run_states_its_claim(tmp_path):
    check = next(c for c in reproductions() if c.name == "kernels")
    records = check.run("quick", tmp_path)
    claims = [r for r in records if r.claim]
    assert len(claims) == 1
    r = claims[0]
    assert r.claim == "maskedmm/row-skip-kernel" and r.verdict in VERDICTS and r.verdict
    assert r.paper_statement and r.reason and r.command and r.peer and "quick mode" in r.notes
    assert r.ours > 0 and r.higher_is_better
