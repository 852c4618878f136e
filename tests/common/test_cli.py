import json
import subprocess
import sys

import pytest

from frugalml import SYSTEMS
from frugalml.cli import main


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "frugalml.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_unknown_system_exits_2_with_one_line():
    r = run("nosuchsystem")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "nosuchsystem" in r.stderr


def test_bad_option_exits_2_with_one_line():
    r = run("info", "--no-such-flag")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0


def test_help_lists_every_system():
    r = run("--help")
    assert r.returncode == 0
    for name in SYSTEMS:
        assert name in r.stdout


def test_info_json_has_the_environment():
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    env = json.loads(r.stdout)
    assert env["cpu"]["cores"] >= 1 and "blas" in env["threads"] and "torch" in env


def test_frugal_error_becomes_exit_2(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--system", "nosuchsystem"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("frugal: error: unknown system") and err.count("\n") == 1
