"""The ``frugal cleave`` commands: outputs, files written, and one-line errors with exit code 2."""

import json

import pytest

from frugalml.cli import main


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(["cleave", *argv])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_plan_prints_explanation_and_writes_json(capsys, tmp_path):
    path = tmp_path / "plan.json"
    code, out, _ = _run(
        capsys,
        "plan",
        "--model",
        "opt-1.3b",
        "--devices",
        "32",
        "--batch",
        "4",
        "--seq",
        "256",
        "--json",
        str(path),
    )
    assert code == 0 and "device groups:" in out and "planned" in out
    doc = json.loads(path.read_text())["details"]
    assert doc["devices"] == 32 and doc["analytic_seconds"] > 0
    code, out, _ = _run(
        capsys,
        "plan",
        "--model",
        "opt-1.3b",
        "--devices",
        "32",
        "--batch",
        "8",
        "--seq",
        "256",
        "--micro-batch",
        "0",
        "--json",
        str(path),
    )
    assert (
        code == 0 and json.loads(path.read_text())["details"]["micro_batches"] == 1
    )  # 2048 tokens: one micro-batch
    code, _, err = _run(capsys, "plan", "--devices", "16", "--batch", "8", "--micro-batch", "3")
    assert code == 2 and "micro_batch" in err


def test_simulate_and_sweep(capsys, tmp_path):
    code, out, _ = _run(
        capsys,
        "simulate",
        "--model",
        "opt-1.3b",
        "--devices",
        "24",
        "--batch",
        "4",
        "--seq",
        "256",
        "--no-churn",
        "-q",
    )
    assert code == 0 and "simulated" in out
    path = tmp_path / "sim.json"
    code, _, _ = _run(
        capsys,
        "simulate",
        "--model",
        "opt-1.3b",
        "--devices",
        "24",
        "--batch",
        "8",
        "--seq",
        "256",
        "--micro-batch",
        "2",
        "--no-churn",
        "--no-contention",
        "--no-backups",
        "--stragglers",
        "0",
        "--lockstep",
        "-q",
        "--json",
        str(path),
    )
    doc = json.loads(path.read_text())
    assert code == 0 and doc["config"]["lockstep"] and doc["micro_batches"] == 4
    assert doc["simulated_seconds"] == pytest.approx(doc["analytic_seconds"], rel=1e-9)
    csv, png = tmp_path / "s.csv", tmp_path / "s.png"
    code, out, _ = _run(
        capsys,
        "sweep",
        "--model",
        "opt-1.3b",
        "--devices",
        "16..64",
        "--batch",
        "8",
        "--seq",
        "256",
        "--csv",
        str(csv),
        "--png",
        str(png),
    )
    assert code == 0 and png.stat().st_size > 1000
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("devices,cleave_analytic_s") and len(lines) == 4


def test_pool_file_and_errors(capsys, tmp_path):
    pool = tmp_path / "pool.yaml"
    pool.write_text("devices: 16\nmix: {laptop: 1}\n")
    code, out, _ = _run(
        capsys, "plan", "--model", "opt-1.3b", "--devices", str(pool), "--batch", "2", "--seq", "128", "-q"
    )
    assert code == 0 and "/16 devices used" in out
    code, _, err = _run(capsys, "plan", "--model", "gpt-9", "--devices", "16")
    assert code == 2 and "unknown model" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "plan", "--devices", "many")
    assert code == 2 and "--devices" in err
    code, _, err = _run(capsys, "sweep", "--devices", "64..16")
    assert code == 2 and "device counts" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plan", "--batch", "1000000000000"], "batch must be an integer in 1..1,048,576"),
        (["plan", "--seq", "2000000"], "seq must be an integer in 1..1,048,576"),
        (["plan", "--devices", "1000000000"], "devices must be an integer in 1..1,048,576"),
        (["simulate", "--seed", "-1"], "--seed"),
        (["simulate", "--stragglers", "2"], "--stragglers"),
        (["simulate", "--stragglers", "nan"], "--stragglers"),
        (["sweep", "--devices", "16..1000000000"], "device counts go up to 1,048,576"),
        (["validate", "--workers", "100000"], "--workers"),
        (["validate", "--steps", "1000000000"], "--steps"),
    ],
)
def test_sizes_out_of_bounds_are_refused_before_any_work(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
