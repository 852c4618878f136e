"""A worker that misses deadlines gets fewer and smaller tiles (row sub-tiles, each verified and
assembled exactly), and three misses in a row still exclude it."""

import threading
import time

import numpy as np
import pytest

from frugalml.cleave.runtime.model import TrainConfig, train_single_process
from frugalml.cleave.runtime.scheduler import Profile, Scheduler, SchedulerConfig
from frugalml.cleave.runtime.server import ParameterServer, ServerConfig
from frugalml.cleave.runtime.worker import Worker, WorkerConfig
from frugalml.common.errors import InvalidInputError

PROFILE = Profile(memory_bytes=1 << 30)


def _gemm(sched, a, b):
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(c=sched.matmul(a, b)))
    thread.start()
    return thread, out


def _do(sched, worker_id, task):
    return sched.complete(worker_id, task.task_id, task.a @ task.b, 0)


def _drain(sched, worker_id, thread):
    """``worker_id`` does every tile still open until the GEMM ends; returns the tasks it took."""
    done = []
    while thread.is_alive():
        task = sched.next_task(worker_id, 0.05)
        if task is not None:
            assert _do(sched, worker_id, task)[0]
            done.append(task)
    return done


def _operands(m=96, k=16, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


def test_a_miss_cuts_the_next_tiles_by_rows_and_they_assemble_exactly():
    cfg = SchedulerConfig(min_deadline_s=0.3, deadline_slack=0.0, speculative=False, min_tile_rows=4)
    sched = Scheduler(cfg, secret=b"k")
    late, slow, fast = (sched.register(n, PROFILE).worker_id for n in ("late", "slow", "fast"))
    a, b = _operands()
    thread, out = _gemm(sched, a, b)
    held = sched.next_task(late, 5)  # a whole tile, returned after its deadline
    grid_rows = held.tile.rows
    others = [sched.next_task(fast, 5), sched.next_task(fast, 5)]  # the fast worker holds the rest
    deadline = time.monotonic() + 10
    while sched.workers[late].misses == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sched.workers[late].shrink == 1  # one miss: half the rows from now on
    sched.workers[slow].shrink = 2  # as after two misses: a quarter
    part = sched.next_task(slow, 5)  # the late tile, cut into quarters; this is the first
    assert part.tile.rows == -(-grid_rows // 4) and part.tile_index >= 3 and sched.split_tiles == 1
    assert part.tile.row_start == held.tile.row_start and part.a.shape[0] == part.tile.rows
    # the late worker's whole tile arrives after all: it fills the quarters nobody returned yet
    assert _do(sched, late, held) == (True, "ok")
    assert _do(sched, slow, part) == (False, "duplicate: a backup copy finished first")
    for task in others:
        assert _do(sched, fast, task)[0]
    thread.join(10)
    np.testing.assert_allclose(out["c"], a @ b, rtol=1e-6, atol=1e-6)
    # in time, if no longer needed; and in under half its deadline: its tiles grow back to halves
    assert sched.workers[slow].misses == 0 and sched.workers[slow].shrink == 1

    # the next GEMM: the late worker (one miss) gets half a tile, the others the rest
    thread, out = _gemm(sched, a, b)
    half = sched.next_task(late, 5)
    assert half.tile.rows == -(-grid_rows // 2) and half.tile_index >= 3
    assert sched.next_task(late, 0.05) is None  # fewer, too: one tile at a time after a miss
    other = sched.next_task(slow, 5)  # the other half of the same tile: first in the queue
    assert other.tile.row_start == half.tile.row_stop and other.tile.rows == grid_rows - half.tile.rows
    assert _do(sched, slow, other)[0] and _do(sched, late, half)[0]
    done = _drain(sched, fast, thread)
    assert all(task.tile.rows <= grid_rows for task in done)
    np.testing.assert_allclose(out["c"], a @ b, rtol=1e-6, atol=1e-6)
    assert all(w.state == "alive" for w in sched.workers.values())


def test_sub_tiles_are_verified_and_a_wrong_one_excludes_its_worker():
    cfg = SchedulerConfig(min_deadline_s=5.0, speculative=False, min_tile_rows=4)
    sched = Scheduler(cfg, secret=b"k")
    cheat, fast = (sched.register(n, PROFILE).worker_id for n in ("cheat", "fast"))
    sched.workers[cheat].shrink = 1
    a, b = _operands(seed=1)
    thread, out = _gemm(sched, a, b)
    part = sched.next_task(cheat, 5)
    assert part.tile_index >= 2 and part.tile.rows == 24  # half of a 48-row grid tile
    wrong = part.a @ part.b
    wrong[0, 0] += 1.0
    assert sched.complete(cheat, part.task_id, wrong, 0) == (
        False,
        "excluded: the tile failed Freivalds' check",
    )
    _drain(sched, fast, thread)
    np.testing.assert_allclose(out["c"], a @ b, rtol=1e-6, atol=1e-6)
    assert sched.workers[cheat].state == "excluded"


def test_the_floor_and_three_misses_in_a_row():
    sched = Scheduler(SchedulerConfig(min_tile_rows=20, speculative=False), secret=b"k")
    slow, fast = (sched.register(n, PROFILE).worker_id for n in ("slow", "fast"))
    sched.workers[slow].shrink = 5  # 1/32 of 48 rows, but not below 20: 48 rows cut in 3
    a, b = _operands(seed=2)
    thread, out = _gemm(sched, a, b)
    part = sched.next_task(slow, 5)
    assert part.tile.rows == 16  # 48 rows in ceil(48 / 20) = 3 equal parts
    assert _do(sched, slow, part)[0]
    _drain(sched, fast, thread)
    np.testing.assert_allclose(out["c"], a @ b, rtol=1e-6, atol=1e-6)
    with sched.cond:
        for _ in range(2):
            sched._missed(slow)
        assert sched.workers[slow].state == "alive"
        sched._missed(slow)
        assert sched.workers[slow].state == "excluded"
    with pytest.raises(InvalidInputError, match=r"--min-tile-rows must be an integer in 1\.\.1048576, got 0"):
        SchedulerConfig(min_tile_rows=0)


class SlowWorker(Worker):
    """An honest worker with a slow processor: each result takes ``seconds_per_value`` per value."""

    def __init__(self, config, seconds_per_value):
        super().__init__(config)
        self.seconds_per_value = seconds_per_value

    def _push(self, task_id, c):
        time.sleep(c.size * self.seconds_per_value)
        super()._push(task_id, c)


@pytest.mark.net
@pytest.mark.timeout(120)
def test_a_slow_worker_trains_on_smaller_tiles_and_training_stays_exact():
    steps = 2
    reference = train_single_process(TrainConfig(steps=steps))
    config = ServerConfig(
        train=TrainConfig(steps=steps),
        port=0,
        min_workers=3,
        linger_s=0.5,
        scheduler=SchedulerConfig(min_deadline_s=0.6, deadline_slack=0.0),
    )
    ps = ParameterServer(config)
    ps.start()
    results: dict = {}
    trainer = threading.Thread(target=lambda: results.update(metrics=ps.train()))
    # a whole grid tile (a third of 256 x 192 or of 256 x 256 values) takes 0.8-1.1 s, past its
    # 0.6 s deadline; half of one fits
    slow = SlowWorker(WorkerConfig(ps.address, "slow", connect_timeout_s=10), seconds_per_value=5e-5)
    workers = [Worker(WorkerConfig(ps.address, n, connect_timeout_s=10)) for n in ("w0", "w1")] + [slow]
    threads = [threading.Thread(target=w.run) for w in workers]
    trainer.start()
    for t in threads:
        t.start()
    trainer.join(100)
    for t in threads:
        t.join(30)
    ps.stop()
    metrics = results["metrics"]
    np.testing.assert_allclose(metrics["losses"], reference, rtol=1e-5)
    states = {w["name"]: w["state"] for w in metrics["workers"]}
    assert "excluded" not in states.values(), states  # the slow worker neither: it is honest
    assert metrics["split_tiles"] >= 1 and metrics["sub_tiles"].get("slow", 0) >= 1, metrics["sub_tiles"]
