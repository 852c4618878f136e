"""Calibration cache, operand patterns and the ``frugal maskedmm`` commands."""

import json

import numpy as np
import pytest

from frugalml.cli import main
from frugalml.common.report import read_json
from frugalml.maskedmm import patterns, planner


def test_calibration_is_cached_atomically_and_reloaded(fresh_cache, monkeypatch):
    assert not planner.calibration().measured
    cal = planner.calibrate(size=64)
    assert cal.measured and planner.cache_path().is_file()
    assert all(cal.per_call[m] + cal.per_iteration[m] > 0 for m in cal.per_call)
    assert cal.dense_per_mac > 0
    monkeypatch.setattr(planner, "_loaded", None)
    assert planner.calibration() == cal
    assert not list(planner.cache_path().parent.glob("*.tmp"))


def test_a_corrupt_or_foreign_calibration_falls_back_to_defaults(fresh_cache, monkeypatch):
    planner.cache_path().parent.mkdir(parents=True)
    planner.cache_path().write_text("{not json")
    assert not planner.calibration().measured
    monkeypatch.setattr(planner, "_loaded", None)
    planner.cache_path().write_text(json.dumps({"fingerprint": {"cpu": "other"}, "calibration": {}}))
    assert not planner.calibration().measured


@pytest.mark.parametrize("pattern", patterns.PATTERNS)
def test_patterns_reach_the_requested_sparsity(pattern):
    A, B = patterns.operands(pattern, 128, 0.9, seed=1)
    assert A.shape == B.shape == (128, 128) and A.dtype == np.float32
    assert np.mean(A == 0) == pytest.approx(0.9, abs=0.05)


def test_unknown_pattern_is_refused():
    with pytest.raises(ValueError, match="unknown pattern"):
        patterns.make("stripes", (4, 4), 0.5)


def test_info_and_verify_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["maskedmm", "info"])
    assert exit_info.value.code == 0
    assert "ISA selected" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_verify:
        main(["maskedmm", "verify", "--trials", "2", "--isa", "scalar"])
    assert exit_verify.value.code == 0
    assert "MISMATCH" not in capsys.readouterr().out


def test_bench_writes_records_and_a_plot(tmp_path):
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as exit_bench:
        main(["maskedmm", "bench", "--n", "64", "--sparsity", "0.9", "--pattern", "random,columns",
              "--threads", "1", "--rounds", "1", "--peers", "scipy", "--json", str(out), "--quiet"])
    assert exit_bench.value.code == 0
    records = read_json(out)
    peers = {r["peer"] for r in records}
    assert "numpy dense (BLAS)" in peers and "scipy csr@csr incl. conversion" in peers
    assert all(r["ratio"] > 0 for r in records if r["peer"])
    assert out.with_suffix(".png").stat().st_size > 1000


@pytest.mark.parametrize("argv,message", [
    (["maskedmm", "bench", "--pattern", "stripes"], "unknown pattern"),
    (["maskedmm", "bench", "--sparsity", "1.5"], "between 0 and 1"),
    (["maskedmm", "bench", "--threads", "0"], "positive"),
    (["maskedmm", "verify", "--isa", "sse9"], "unknown variant"),
])
def test_bad_cli_input_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_demo_summarises_in_one_line():
    from frugalml.maskedmm import demo

    line = demo.run(quiet=True)
    assert "\n" not in line and "speedup vs numpy" in line
