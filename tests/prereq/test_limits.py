"""Resource bounds: every prereq option that sizes memory or time is refused, in one line with exit
2, before any work (no data set is loaded for the count checks)."""

import numpy as np
import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.prereq.limits import check_plda_fits
from frugalml.prereq.plda import PairwiseLinkLDA


def _run(capsys, *args):
    from frugalml.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["prereq", *args])
    err = capsys.readouterr().err.strip()
    return stop.value.code, err


OUT = ["-o", "/nonexistent-folder/x.prereq"]
CASES = [
    (["fit", "--dataset", "nptel", "--topics", "0", *OUT], "--topics must be at least 1"),
    (["fit", "--dataset", "nptel", "--em-iter", "0", *OUT], "--em-iter must be between 1 and 10,000"),
    (["fit", "--dataset", "nptel", "--em-iter", "1000000", *OUT], "--em-iter must be between 1 and 10,000"),
    (["fit", "--dataset", "nptel", "--steps", "0", *OUT], "--steps must be between 1 and 1,000,000"),
    (["fit", "--dataset", "nptel", "--steps", "1000000000", *OUT], "--steps must be between"),
    (["fit", "--dataset", "nptel", "--seed", "-1", *OUT], "--seed must be between 0 and 4,294,967,295"),
    (["eval", "--dataset", "nptel", "--topics", "-5"], "--topics must be at least 1"),
    (["eval", "--dataset", "nptel", "--steps", "10000000"], "--steps must be between"),
    (["eval", "--dataset", "nptel", "--seed", "-3"], "--seed must be between"),
    (["reproduce", "--em-iter", "99999"], "--em-iter must be between"),
    (["reproduce", "--topics", "0"], "--topics must be at least 1"),
    (["bench", "--rounds", "-1"], "--rounds must be between 0 and 1,000"),
    (["bench", "--iters", "0"], "--iters must be between 1 and 1,000"),
    (["bench", "--iters", "100000"], "--iters must be between 1 and 1,000"),
    (["bench", "--topics", "0"], "--topics must be at least 1"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(c[0][:4]) for c in CASES])
def test_counts_out_of_range_are_one_line_errors(capsys, args, message):
    code, err = _run(capsys, *args)
    assert code == 2 and message in err and "\n" not in err, err


def test_window_and_test_share_and_fold_are_bounded(capsys, shared_data, monkeypatch):
    monkeypatch.setenv("FRUGAL_DATA", str(shared_data))
    code, err = _run(capsys, "fit", "--texts", "x", "--window", "0", *OUT)
    assert code == 2 and "--window" in err
    code, err = _run(capsys, "eval", "--dataset", "nptel", "--split", "disjoint", "--test-share", "2")
    assert code == 2 and "test_fraction must lie in (0, 1)" in err
    code, err = _run(capsys, "fit", "--dataset", "nptel", "--fold", "7", *OUT)
    assert code == 2 and "fold must lie in 0..4" in err
    for seeds, message in (("0,x", "comma-separated integers"), ("1,1", "twice"), ("0,-1", "--seed must")):
        code, err = _run(capsys, "eval", "--dataset", "nptel", "--seeds", seeds)
        assert code == 2 and message in err, err


def test_topics_that_cannot_fit_in_memory_are_refused_before_allocating(capsys, shared_data, monkeypatch):
    monkeypatch.setenv("FRUGAL_DATA", str(shared_data))
    code, err = _run(capsys, "fit", "--dataset", "nptel", "--topics", "100000000000", *OUT)
    assert code == 2 and "use fewer topics" in err and "\n" not in err, err
    with pytest.raises(InvalidInputError, match="needs at least .* GiB of memory"):
        PairwiseLinkLDA(10**12).fit(np.ones((4, 5)), np.zeros((0, 2)))


def test_memory_bound_names_the_most_topics_that_fit():
    check_plda_fits(654, 47853, 7401, 100, available=2**30)
    with pytest.raises(InvalidInputError, match=r"at most about 20,696 here"):
        check_plda_fits(654, 47853, 7401, 10**8, available=2**34)
