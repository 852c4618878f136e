"""``frugal composer``: commands work end to end and bad input exits 2 with one clear line."""

import json
import subprocess
import sys

import pytest

from frugalml.cli import main


def _run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["composer", *args])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_extrapolate_command(capsys):
    code, out, _ = _run(["extrapolate", "--arch", "AAMMMM", "--target", "llama3.2-1b", "--mode", "stack"],
                        capsys)
    assert code == 0 and "AAMMMMAAMMMMAAMMMMAAMMMMAMM" in out and "27 layers, 9 attention" in out


def test_search_then_aggregate(tmp_path, capsys):
    hist, cache = tmp_path / "h.json", tmp_path / "c.sqlite"
    args = ["search", "--primitives", "A,M", "--layers", "3", "--budget", "3", "--tasks", "recall",
            "--steps", "5", "--width", "16", "--executor", "inline", "--cache", str(cache),
            "--out", str(hist), "--plot", str(tmp_path / "p.png"), "-q"]
    code, out, _ = _run(args, capsys)
    assert code == 0 and "3 run, 0 from the cache" in out
    assert len(json.loads(hist.read_text())["history"]) == 3 and (tmp_path / "p.png").exists()
    code, out, _ = _run(args, capsys)
    assert code == 0 and "0 run, 3 from the cache" in out
    code, out, _ = _run(["aggregate", str(hist), "--method", "best-single"], capsys)
    assert code == 0 and out.startswith("best-single: ")


@pytest.mark.parametrize("args,message", [
    (["search", "--primitives", "A,X", "--budget", "2"], "unknown primitive"),
    (["search", "--budget", "0", "--executor", "inline"], "budget"),
    (["search", "--engine", "grid"], "engine"),
    (["extrapolate", "--arch", "AQ"], "unknown primitive"),
    (["aggregate", "missing.json"], "does not exist"),
])
def test_bad_input_exits_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_corrupt_cache_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 200)
    code, _, err = _run(["search", "--cache", str(bad), "--executor", "inline"], capsys)
    assert code == 2 and "not a readable result cache" in err


def test_help_is_fast_to_import():
    code = "import sys, frugalml.composer.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
