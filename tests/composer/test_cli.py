"""``frugal composer``: commands work end to end and bad input exits 2 with one clear line."""

import json
import re
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
    code, out, _ = _run(
        ["extrapolate", "--arch", "AAMMMM", "--target", "llama3.2-1b", "--mode", "stack"], capsys
    )
    assert code == 0 and "AAMMMMAAMMMMAAMMMMAAMMMMAMM" in out and "27 layers, 9 attention" in out


def test_search_then_aggregate(tmp_path, capsys):
    hist, cache = tmp_path / "h.json", tmp_path / "c.sqlite"
    args = [
        "search",
        "--primitives",
        "A,M",
        "--layers",
        "3",
        "--budget",
        "3",
        "--tasks",
        "recall",
        "--steps",
        "5",
        "--width",
        "16",
        "--executor",
        "inline",
        "--cache",
        str(cache),
        "--out",
        str(hist),
        "--plot",
        str(tmp_path / "p.png"),
        "--acquisition",
        "ucb",
        "-q",
    ]
    code, out, _ = _run(args, capsys)
    assert code == 0 and "3 run, 0 from the cache" in out
    assert len(json.loads(hist.read_text())["history"]) == 3 and (tmp_path / "p.png").exists()
    code, out, _ = _run(args, capsys)
    assert code == 0 and "0 run, 3 from the cache" in out
    code, out, _ = _run(["aggregate", str(hist), "--method", "best-single"], capsys)
    assert code == 0 and out.startswith("best-single: ")


@pytest.mark.parametrize(
    "args,message",
    [
        (["search", "--primitives", "A,X", "--budget", "2"], "unknown primitive"),
        (["search", "--budget", "0", "--executor", "inline"], "budget"),
        (["search", "--engine", "grid"], "engine"),
        (["search", "--acquisition", "pi"], "acquisition"),
        (["extrapolate", "--arch", "AQ"], "unknown primitive"),
        (["aggregate", "missing.json"], "does not exist"),
    ],
)
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


def test_pareto_and_aggregate_all_on_the_tabular_benchmark(tmp_path, capsys):
    from importlib import resources

    table = str(resources.files("frugalml.composer") / "tabular_AM_6.json")
    code, out, _ = _run(["pareto", table, "--cost", "kv", "--png", str(tmp_path / "f.png")], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and (tmp_path / "f.png").exists()
    assert lines[1].startswith("MMMMMM") and "cost 0" in lines[1]  # no attention, no cache
    kv = [float(line.rsplit("cost ", 1)[1]) for line in lines[1:]]
    score = [float(line.split("score ")[1].split()[0]) for line in lines[1:]]
    assert kv == sorted(kv) and score == sorted(score)  # a front rises with cost
    code, out, _ = _run(["aggregate", table, "--method", "all"], capsys)
    assert code == 0 and [line.split(":")[0] for line in out.strip().splitlines()] == [
        "N0",
        "N1",
        "Nall",
        "best-single",
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--cost", "latency"], "cost"),
        (["--seq-len", "0"], "seq_len"),
    ],
)
def test_pareto_bad_options_exit_2(args, message, tmp_path, capsys):
    hist = tmp_path / "h.json"
    hist.write_text(json.dumps({"history": [{"arch": "AM", "score": 0.5}, {"arch": "MM", "score": 0.1}]}))
    code, _, err = _run(["pareto", str(hist), *args], capsys)
    assert code == 2 and message in err


def test_pareto_corrupt_history_exits_2(tmp_path, capsys):
    bad = tmp_path / "h.json"
    bad.write_text("{not json")
    code, _, err = _run(["pareto", str(bad)], capsys)
    assert code == 2 and "is not a search history" in err


def test_train_then_generate(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("def f(x):\n    return x + 1\n" * 120)
    code, out, _ = _run(
        [
            "train",
            "ALC",
            "--corpus",
            str(corpus),
            "--steps",
            "3",
            "--width",
            "16",
            "--heads",
            "2",
            "--seq-len",
            "16",
            "--batch-size",
            "4",
            "--threads",
            "1",
            "--generate",
            "5",
            "--prompt",
            "def",
            "-q",
        ],
        capsys,
    )
    assert code == 0 and "val loss" in out and "sample: 'def" in out
    stated, analytic = re.search(r"decoder state (\d+) bytes .*analytic fp32: (\d+)", out).groups()
    assert stated == analytic
    code, _, err = _run(["train", "AM", "--corpus", str(corpus), "--generate", "-1"], capsys)
    assert code == 2 and "generate must be between 0 and" in err


def test_compare_names_its_table(tmp_path, capsys):
    from .test_tabular import _write_table

    table = _write_table(tmp_path / "t.json")
    code, out, _ = _run(
        [
            "compare",
            "--table",
            str(table),
            "--engines",
            "bo,random",
            "--seeds",
            "2",
            "--first-seed",
            "1000",
            "--json",
            str(tmp_path / "r.json"),
            "-q",
        ],
        capsys,
    )
    assert code == 0 and f"table {table}: AM x 4 layers" in out and "engine seeds 1000..1001" in out
    assert "bo: defaults" in out
    assert re.search(r"random/bo = [\d.]+ \(95% CI", out)
    rec = json.loads((tmp_path / "r.json").read_text())["records"][0]
    assert rec["spread"]["seed_range"] == [1000, 1001] and len(rec["spread"]["ratio_ci95"]) == 2
    code, _, err = _run(["compare", "--table", "AM_7"], capsys)
    assert code == 2 and "built-in" in err
    code, out, _ = _run(
        [
            "compare",
            "--table",
            str(table),
            "--engines",
            "bo",
            "--seeds",
            "1",
            "--bo-kernel",
            "mixed",
            "--acquisition",
            "thompson",
            "--initial",
            "3",
            "-q",
        ],
        capsys,
    )
    assert code == 0 and "bo: kernel=mixed, acquisition=thompson, initial=3" in out
    code, _, err = _run(["compare", "--table", str(table), "--acquisition", "pi"], capsys)
    assert code == 2 and "acquisition" in err
