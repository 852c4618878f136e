"""Plan files: written by ``plan --json``, checked on reading, refused in one line when wrong; the
scheduler follows a plan's grids and class shares, and pulls when the fleet differs."""

import json
import threading
from dataclasses import replace

import numpy as np
import pytest

from frugalml.cleave.devices import make_pool
from frugalml.cleave.planfile import ExecutablePlan, PlannedGemm, executable_plan, read_plan, write_plan
from frugalml.cleave.runtime.model import TrainConfig
from frugalml.cleave.runtime.scheduler import Profile, Scheduler, SchedulerConfig
from frugalml.cleave.runtime.server import check_plan
from frugalml.cleave.validate import plan_for
from frugalml.cli import main
from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(["cleave", *argv])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture(scope="module")
def tiny_plan():
    pool = make_pool(counts={"laptop": 2, "phone-flagship": 2}, jitter=0, seed=0)
    return executable_plan(plan_for(pool), "float32")


def test_round_trip_and_every_damaged_file_is_refused(tmp_path, tiny_plan):
    path = tmp_path / "plan.json"
    write_plan(path, tiny_plan, {"note": "for people"})
    assert read_plan(path) == tiny_plan
    text = path.read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(CorruptFileError, match="not complete JSON"):
        read_plan(tmp_path / "cut.json")
    doc = json.loads(text)
    for change, match in (
        ({"version": 99}, "format version 99"),
        ({"format": "other"}, "not a cleave plan"),
        ({"execute": {**doc["execute"], "batch": 9}}, "checksum"),
    ):
        (tmp_path / "bad.json").write_text(json.dumps({**doc, **change}))
        with pytest.raises(CorruptFileError, match=match):
            read_plan(tmp_path / "bad.json")
    with pytest.raises(DataNotFoundError):
        read_plan(tmp_path / "missing.json")
    bad = ExecutablePlan("tiny-gpt", 8, 32, "float32", {"laptop": -1}, (), 1.0, 1)
    write_plan(tmp_path / "neg.json", bad)
    with pytest.raises(CorruptFileError, match="malformed"):
        read_plan(tmp_path / "neg.json")


def test_a_plan_for_another_run_is_refused(tiny_plan):
    assert check_plan(tiny_plan, TrainConfig(), "p.json") is tiny_plan
    with pytest.raises(InvalidInputError, match="batch 8 \\(server: 4\\)"):
        check_plan(tiny_plan, TrainConfig(batch_size=4), "p.json")
    with pytest.raises(InvalidInputError, match="dtype float32 \\(server: float64\\)"):
        check_plan(tiny_plan, TrainConfig(dtype="float64"), "p.json")
    deeper = replace(tiny_plan, tasks_in_flight=3)  # planned for devices that pipeline three tiles
    with pytest.raises(InvalidInputError, match="tasks_in_flight 3 \\(server: 1\\)"):
        check_plan(deeper, TrainConfig(), "p.json")


def test_plan_cli_writes_a_plan_the_server_reads_and_refuses_mismatches(capsys, tmp_path):
    path = tmp_path / "plan.json"
    code, out, _ = _run(capsys, "plan", "--model", "tiny-gpt", "--devices", "4", "--json", str(path), "-q")
    assert code == 0, out
    p = read_plan(path)
    assert (p.model, p.batch, p.seq, p.dtype) == ("tiny-gpt", 8, 32, "float32")
    code, _, err = _run(capsys, "serve", "--plan", str(path), "--batch-size", "4", "--port", "0")
    assert code == 2 and "another training run" in err and len(err.strip().splitlines()) == 1
    big = tmp_path / "opt.json"
    assert (
        _run(capsys, "plan", "-m", "opt-1.3b", "-d", "8", "-b", "2", "-s", "64", "--json", str(big), "-q")[0]
        == 0
    )
    code, _, err = _run(capsys, "serve", "--plan", str(big), "--port", "0")
    assert code == 2 and "model opt-1.3b (server: tiny-gpt)" in err
    path.write_text(path.read_text()[:100])
    code, _, err = _run(capsys, "serve", "--plan", str(path), "--port", "0")
    assert code == 2 and "not complete JSON" in err


def test_bad_pools_and_classes_are_one_line_errors(capsys, tmp_path):
    catalogue = json.loads(json.dumps({"classes": {"speck": {
        "kind": "phone", "tflops": 1, "efficiency": 0.5, "memory_gb": 1e-6, "down_mbps": 10, "up_mbps": 1,
        "rtt_ms": 10, "power_w": 1, "session_shape": 1, "session_hours": 1, "absence_shape": 1,
        "absence_hours": 1, "source": "test"}}}))  # fmt: skip
    (tmp_path / "cat.yaml").write_text(json.dumps(catalogue))
    (tmp_path / "pool.yaml").write_text("counts: {speck: 4}\ncatalogue: cat.yaml\n")
    code, _, err = _run(capsys, "plan", "--model", "tiny-gpt", "--devices", str(tmp_path / "pool.yaml"))
    assert code == 2 and "can hold a tile" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "worker", "--server", "127.0.0.1:1", "--name", "w", "--class", "toaster")
    assert code == 2 and "not in the catalogue" in err and len(err.strip().splitlines()) == 1


def _drain(sched, workers, trainer):
    """Serve tasks round-robin until the trainer is done; returns tiles done per worker name."""
    done = {w.name: 0 for w in workers}
    while trainer.is_alive():
        for w in workers:
            task = sched.next_task(w.worker_id, wait_s=0.01)
            if task is not None and not isinstance(task, str):
                assert sched.complete(w.worker_id, task.task_id, task.a @ task.b, 0)[0]
                done[w.name] += 1
    return done


def _matmul(sched, workers, a, b, name):
    out: dict = {}
    trainer = threading.Thread(target=lambda: out.setdefault("c", sched.matmul(a, b, name)))
    trainer.start()
    out["done"] = _drain(sched, workers, trainer)
    trainer.join()
    return out


def test_scheduler_follows_grids_and_shares_then_pulls_when_the_fleet_differs():
    gemm = PlannedGemm("g.fwd", 40, 30, 8, 1, 1, 4, 2, 1, False, {"laptop": 0.75, "phone": 0.25}, 1.0)
    plan_ = ExecutablePlan("tiny-gpt", 8, 32, "float32", {"laptop": 1, "phone": 1}, (gemm,), 1.0, 1)
    sched = Scheduler(SchedulerConfig(heartbeat_timeout_s=60, speculative=False), plan=plan_)
    workers = [sched.register(n, Profile(device_class=n)) for n in ("laptop", "phone")]
    gen = np.random.default_rng(0)
    a, b = gen.standard_normal((40, 8)), gen.standard_normal((8, 30))
    for x, y, expect in ((a, b, {"laptop": 6, "phone": 2}), (b.T, a.T, None)):
        out = _matmul(sched, workers, x, y, "g.fwd")
        np.testing.assert_allclose(out["c"], x @ y)
        assert sum(out["done"].values()) == 8  # the plan's 4x2 grid (transposed for the transposed product)
        if expect:
            assert out["done"] == expect and sched.plan_note == "following the plan"
    workers.append(sched.register("desk", Profile(device_class="laptop")))
    _matmul(sched, workers, a, b, "g.fwd")
    assert "fleet differs from the plan" in sched.plan_note
    _matmul(sched, workers, a, b, "h.fwd")
    assert "not in the plan" in sched.plan_note
