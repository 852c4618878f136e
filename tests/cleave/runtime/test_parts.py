"""The runtime's parts without a network: wire format, shaping, Freivalds, grids, autograd, checkpoints."""

import re
import time

import numpy as np
import pytest
import torch

from frugalml.cleave.runtime import codegen
from frugalml.cleave.runtime.checkpoint import load_checkpoint, save_checkpoint
from frugalml.cleave.runtime.gemm import attach_executor
from frugalml.cleave.runtime.model import TrainConfig, build, generated_corpus, load_corpus, train_step
from frugalml.cleave.runtime.protocol import from_bytes, meta_of, split_chunks, to_bytes
from frugalml.cleave.runtime.scheduler import (
    SHUTDOWN,
    ExcludedWorkerError,
    Profile,
    Scheduler,
    SchedulerConfig,
    UnknownWorkerError,
)
from frugalml.cleave.runtime.shaping import TokenBucket, parse_rate, parse_size
from frugalml.cleave.runtime.verify import freivalds_check
from frugalml.cleave.tiling import choose_grid, smallest_tile_memory, split_gemm
from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError


def test_generated_modules_match_the_proto():
    assert codegen.stale_modules() == []


def test_tensor_bytes_round_trip_and_refuse_truncation():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    meta = meta_of(x)
    data = to_bytes(x)
    np.testing.assert_array_equal(from_bytes(meta, data), x)
    assert b"".join(bytes(c) for c in split_chunks(data, 7)) == data
    with pytest.raises(InvalidInputError, match="truncated or malformed"):
        from_bytes(meta, data[:-4])
    meta.dtype = "int8"
    with pytest.raises(InvalidInputError, match="dtype"):
        from_bytes(meta, data)
    with pytest.raises(InvalidInputError, match="cannot travel"):
        meta_of(np.zeros((2, 2), dtype=np.int32))


@pytest.mark.parametrize(
    "text, expected",
    [("100mbit", 12.5e6), ("20Mbit/s", 2.5e6), ("5MB", 5e6), ("8kbps", 1e3), ("unlimited", 0.0), (None, 0.0)],
)
def test_parse_rate(text, expected):
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["fast", "100mbitz", "-5mbit"])
def test_parse_rate_refuses_nonsense(text):
    with pytest.raises(InvalidInputError, match="link rate"):
        parse_rate(text)


def test_parse_size():
    assert parse_size("2KiB") == 2048 and parse_size("1GB") == 10**9 and parse_size("4096") == 4096
    with pytest.raises(InvalidInputError, match="memory size"):
        parse_size("lots")


def test_token_bucket_paces_bytes_at_its_rate():
    bucket = TokenBucket(rate=200_000, burst=1000)
    start = time.monotonic()
    for _ in range(10):
        bucket.consume(5000)
    assert time.monotonic() - start >= 0.2  # 50 kB at 200 kB/s, less the burst
    assert TokenBucket(0).consume(10**9) == 0.0


def test_freivalds_accepts_rounding_and_catches_small_corruption():
    gen = np.random.default_rng(0)
    a = gen.standard_normal((64, 256)).astype(np.float32)
    b = gen.standard_normal((256, 48)).astype(np.float32)
    c = a @ b
    exact = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)
    assert freivalds_check(a, b, c, gen) and freivalds_check(a, b, exact, gen)
    bad = c.copy()
    bad[17, 5] += 0.05
    assert not freivalds_check(a, b, bad, gen)
    assert not freivalds_check(a, b, c[:, :-1], gen)
    nan = c.copy()
    nan[0, 0] = np.nan
    assert not freivalds_check(a, b, nan, gen)


def test_choose_grid_covers_workers_and_respects_memory():
    grid = choose_grid(256, 192, 64, tiles=8)
    rows, cols = grid.grid_rows, grid.grid_cols
    assert rows * cols == 8
    tiles = split_gemm(256, 192, 64, grid_rows=rows, grid_cols=cols)
    total_down = sum(t.bytes_down() for t in tiles)
    for r in range(1, 9):
        if 8 % r == 0:  # no other 8-tile grid moves fewer bytes
            other = split_gemm(256, 192, 64, grid_rows=r, grid_cols=8 // r)
            assert total_down <= sum(t.bytes_down() for t in other)
    grid = choose_grid(256, 192, 64, tiles=2, max_memory=40_000)
    rows, cols = grid.grid_rows, grid.grid_cols
    assert max(t.memory() for t in split_gemm(256, 192, 64, grid_rows=rows, grid_cols=cols)) <= 40_000
    with pytest.raises(InvalidInputError, match="no tile"):
        choose_grid(256, 192, 64, tiles=2, max_memory=smallest_tile_memory(64) - 1)


class _LocalExecutor:
    def __init__(self):
        self.calls = 0
        self.names = []

    def matmul(self, a, b, name=None):
        self.calls += 1
        self.names.append(name)
        tiles = split_gemm(
            a.shape[0], b.shape[1], a.shape[1], grid_rows=min(3, a.shape[0]), grid_cols=min(2, b.shape[1])
        )
        c = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
        for t in tiles:
            c[t.row_start : t.row_stop, t.col_start : t.col_stop] = (
                a[t.row_start : t.row_stop] @ b[:, t.col_start : t.col_stop]
            )
        return c


def test_tiled_training_matches_plain_training_in_float64():
    cfg = TrainConfig(steps=3, dtype="float64")
    text = generated_corpus(4000)
    plain, plain_opt, data = build(cfg, text)
    tiled, tiled_opt, _ = build(cfg, text)
    executor = _LocalExecutor()
    assert attach_executor(tiled, executor) == 4 * cfg.gpt.n_layer + 1
    for step in range(cfg.steps):
        a = train_step(plain, plain_opt, data, cfg, step)
        b = train_step(tiled, tiled_opt, data, cfg, step)
        assert b == pytest.approx(a, rel=1e-12)
    assert executor.calls == 3 * cfg.steps * (4 * cfg.gpt.n_layer + 1)  # forward, dX, dW per Linear
    for p, q in zip(plain.parameters(), tiled.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_checkpoint_round_trip_and_damage(tmp_path):
    cfg = TrainConfig(steps=2)
    model, opt, data = build(cfg, generated_corpus(4000))
    losses = [train_step(model, opt, data, cfg, s) for s in range(2)]
    path = tmp_path / "ps.ckpt"
    save_checkpoint(path, model, opt, step=2, losses=losses, config=cfg.to_dict())
    fresh, fresh_opt, _ = build(cfg, generated_corpus(4000))
    assert load_checkpoint(path, fresh, fresh_opt, config=TrainConfig(steps=9).to_dict()) == (2, losses)
    assert train_step(fresh, fresh_opt, data, cfg, 2) == train_step(model, opt, data, cfg, 2)
    with pytest.raises(InvalidInputError, match="same options"):
        load_checkpoint(path, fresh, fresh_opt, config=TrainConfig(lr=1.0).to_dict())
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError):
        load_checkpoint(path, fresh, fresh_opt, config=cfg.to_dict())
    path.write_bytes(bytes(raw[:40]))
    with pytest.raises(CorruptFileError, match="truncated"):
        load_checkpoint(path, fresh, fresh_opt, config=cfg.to_dict())


def test_corpus_loading(tmp_path):
    assert len(load_corpus(None)) == 20000
    with pytest.raises(DataNotFoundError, match="--data"):
        load_corpus(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InvalidInputError, match="UTF-8"):
        load_corpus(tmp_path / "bin.txt")


def test_scheduler_requeues_lost_tiles_and_excludes_wrong_results():
    import threading

    sched = Scheduler(SchedulerConfig(heartbeat_timeout_s=60), required_memory=100)
    with pytest.raises(InvalidInputError, match="memory"):
        sched.register("tiny", Profile(memory_bytes=10))
    honest, cheat, victim = (sched.register(n, Profile()) for n in ("honest", "cheat", "victim"))
    gen = np.random.default_rng(1)
    a, b = gen.standard_normal((30, 8)), gen.standard_normal((8, 20))
    result = {}
    trainer = threading.Thread(target=lambda: result.setdefault("c", sched.matmul(a, b)))
    trainer.start()
    lost = sched.next_task(victim.worker_id, wait_s=5)
    sched.worker_lost(victim.worker_id)
    bad = sched.next_task(cheat.worker_id, wait_s=5)
    accepted, reason = sched.complete(cheat.worker_id, bad.task_id, bad.a @ bad.b + 1.0, 0)
    assert not accepted and "Freivalds" in reason
    with pytest.raises(ExcludedWorkerError):
        sched.next_task(cheat.worker_id, wait_s=0)
    with pytest.raises(UnknownWorkerError):
        sched.next_task(victim.worker_id, wait_s=0)
    while True:
        task = sched.next_task(honest.worker_id, wait_s=0.2)
        if task is None and not trainer.is_alive():
            break
        if task is not None:
            assert sched.complete(honest.worker_id, task.task_id, task.a @ task.b, 0) == (True, "ok")
    trainer.join()
    np.testing.assert_allclose(result["c"], a @ b, rtol=1e-12)
    assert sched.requeued_tiles >= 2 and lost is not None
    sched.finish()
    assert sched.next_task(honest.worker_id, wait_s=0) == SHUTDOWN


def _start_matmul(sched, a, b):
    """Run ``sched.matmul`` in a thread (the training side); returns the thread and its result box."""
    import threading

    result = {}
    trainer = threading.Thread(target=lambda: result.setdefault("c", sched.matmul(a, b)))
    trainer.start()
    return trainer, result


def test_silent_worker_and_missed_deadline_hand_tiles_to_others():
    gen = np.random.default_rng(2)
    a, b = gen.standard_normal((12, 5)), gen.standard_normal((5, 6))
    for config in (
        SchedulerConfig(heartbeat_timeout_s=0.2, speculative=False),
        SchedulerConfig(min_deadline_s=0.2, deadline_slack=0.0, speculative=False),
    ):
        sched = Scheduler(config)
        silent, busy = sched.register("silent", Profile()), sched.register("busy", Profile())
        trainer, result = _start_matmul(sched, a, b)
        held = sched.next_task(silent.worker_id, wait_s=5)
        assert held is not None
        while trainer.is_alive():
            if config.heartbeat_timeout_s < 1:
                sched.heartbeat(busy.worker_id)
            task = sched.next_task(busy.worker_id, wait_s=0.05)
            if task is not None:
                sched.complete(busy.worker_id, task.task_id, task.a @ task.b, 0)
        np.testing.assert_allclose(result["c"], a @ b, rtol=1e-12)
        assert sched.requeued_tiles >= 1
        if config.heartbeat_timeout_s < 1:  # declared lost: it must register again
            assert sched.workers[silent.worker_id].state == "lost"
            with pytest.raises(UnknownWorkerError):
                sched.complete(silent.worker_id, held.task_id, held.a @ held.b, 0)
        else:  # only late: its copy arrives after the tile was redone and is ignored
            assert sched.complete(silent.worker_id, held.task_id, held.a @ held.b, 0)[0] is False


def test_idle_worker_takes_a_backup_copy_of_a_straggler():
    gen = np.random.default_rng(3)
    a, b = gen.standard_normal((8, 4)), gen.standard_normal((4, 8))
    sched = Scheduler(SchedulerConfig(backup_min_s=0.05, heartbeat_timeout_s=60))
    slow, fast = sched.register("slow", Profile()), sched.register("fast", Profile())
    trainer, result = _start_matmul(sched, a, b)
    straggling = sched.next_task(slow.worker_id, wait_s=5)
    while trainer.is_alive():
        task = sched.next_task(fast.worker_id, wait_s=0.05)
        if task is not None:
            assert task.tile_index == straggling.tile_index or sched.backup_tiles == 0
            sched.complete(fast.worker_id, task.task_id, task.a @ task.b, 0)
    assert sched.backup_tiles == 1
    np.testing.assert_allclose(result["c"], a @ b, rtol=1e-12)
    assert sched.complete(slow.worker_id, straggling.task_id, straggling.a @ straggling.b, 0)[0] is False


def test_tinyshakespeare_fits_the_vocabulary(shared_data):
    from frugalml.cleave.runtime.model import CharData

    text = load_corpus(shared_data / "corpora" / "tinyshakespeare.txt")
    data = CharData(text, block_size=32, vocab_size=64)
    assert data.tokens.max() < 64 and len(set(text)) > 64
    x, y = data.batch(3, 4, seed=0)
    assert x.shape == (4, 32) and torch.equal(x[:, 1:], y[:, :-1])


def test_cheat_caught_late_taints_the_step_when_only_some_tiles_are_checked():
    gen = np.random.default_rng(4)
    # a secret under which the first task goes unchecked (the server draws its own at random)
    secret = next(
        bytes([i]) * 32
        for i in range(256)
        if np.random.default_rng([int.from_bytes(bytes([i]) * 32, "little"), 1]).random() >= 0.5
    )
    config = SchedulerConfig(verify_rate=0.5, heartbeat_timeout_s=60, speculative=False, trusted_workers=True)
    sched = Scheduler(config, secret=secret)
    cheat = sched.register("cheat", Profile())
    sched.begin_step(0)
    unverified_accepted = 0
    while sched.workers[cheat.worker_id].state == "alive":
        a, b = gen.standard_normal((4, 3)), gen.standard_normal((3, 4))
        trainer, _ = _start_matmul(sched, a, b)
        task = sched.next_task(cheat.worker_id, wait_s=5)
        accepted, _ = sched.complete(cheat.worker_id, task.task_id, task.a @ task.b + 1e-3, 0)  # in bounds
        unverified_accepted += accepted
        if accepted:
            trainer.join()
        else:  # excluded: an honest worker finishes the GEMM
            honest = sched.register("honest", Profile())
            task = sched.next_task(honest.worker_id, wait_s=5)
            assert sched.complete(honest.worker_id, task.task_id, task.a @ task.b, 0) == (True, "ok")
            trainer.join()
    assert unverified_accepted >= 1  # under this secret the first wrong tile goes unchecked
    assert sched.take_tainted() and not sched.take_tainted()


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--model", "gpt-9"], "unknown model 'gpt-9'"),
        (["serve", "--dtype", "int8"], "unknown dtype"),
        (["worker", "--server", "h:1", "--name", "p", "--down", "fast"], "link rate"),
        (["worker", "--server", "h:1", "--name", "p", "--memory", "lots"], "memory size"),
        (["status", "--server", "no-port"], "HOST:PORT"),
        (["serve", "--port", "99999"], "--port must be in 0..65535"),
        (["serve", "--heartbeat-timeout", "-1"], "--heartbeat-timeout must be a positive"),
        (["serve", "--host", "0.0.0.0", "--port", "0"], "--insecure"),
        (["serve", "--tls-cert", "a.pem"], "go together"),
        (["worker", "--server", "h:1", "--name", "p", "--ca", "ca.pem"], "go together"),
        (["serve", "--max-in-flight", "0"], "--max-in-flight must be an integer in 1..64, got 0"),
        (["serve", "--max-misses", "-1"], "--max-misses must be an integer in 1..1000, got -1"),
        (["serve", "--min-tile-rows", "0"], "--min-tile-rows must be an integer in 1..1048576, got 0"),
        (["serve", "--registrations-per-name", "0"], "--registrations-per-name must be an integer in 1.."),
        (["serve", "--registrations-per-minute", "0"], "--registrations-per-minute must be an integer in"),
        (["serve", "--keep-departed", "-1"], "--keep-departed must be an integer in 0..1000000, got -1"),
        (["serve", "--rpc-threads", "0"], "--rpc-threads must be in 1..4096, got 0"),
        (["serve", "--heartbeat-streams", "300"], "--heartbeat-streams must be in 0..256"),
        (["serve", "--rpc-threads", "8", "--heartbeat-streams", "9"], "--heartbeat-streams must be in 0..8"),
    ],
)
def test_cli_refuses_bad_options_with_clear_errors(args, message):
    import typer
    from typer.testing import CliRunner

    from frugalml.cleave.runtime.cli import add_runtime_commands

    app = typer.Typer()
    add_runtime_commands(app)
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, InvalidInputError) and message in str(result.exception)


def test_the_servers_limits_are_flags_with_their_defaults(capsys, monkeypatch):
    from frugalml.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exc:
        main(["cleave", "serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert exc.value.code == 0
    for flag, default in (
        ("--max-in-flight", 2),
        ("--max-misses", 3),
        ("--min-tile-rows", 8),
        ("--registrations-per-name", 10),
        ("--registrations-per-minute", 600),
        ("--keep-departed", 256),
        ("--rpc-threads", 256),
        ("--heartbeat-streams", 0),
    ):
        assert re.search(rf"{flag} <int> [^│]*?\[default: {default}\]", shown), flag
    with pytest.raises(SystemExit) as exc:  # a bad value: one line, exit 2
        main(["cleave", "serve", "--max-in-flight", "65"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "--max-in-flight must be an integer in 1..64, got 65" in err


def test_the_limits_given_reach_the_server(monkeypatch):
    import typer
    from typer.testing import CliRunner

    from frugalml.cleave.runtime import server
    from frugalml.cleave.runtime.cli import add_runtime_commands

    seen = {}
    monkeypatch.setattr(
        server,
        "serve",
        lambda config: seen.update(config=config) or {"losses": [1.0], "workers": [], "requeued_tiles": 0},
    )
    app = typer.Typer()
    add_runtime_commands(app)
    limits = [
        "--max-in-flight",
        "4",
        "--max-misses",
        "5",
        "--min-tile-rows",
        "16",
        "--registrations-per-name",
        "7",
    ]
    limits += [
        "--registrations-per-minute",
        "70",
        "--keep-departed",
        "0",
        "--rpc-threads",
        "64",
        "--heartbeat-streams",
        "40",
    ]
    result = CliRunner().invoke(app, ["serve", *limits])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    sched = config.scheduler
    assert (sched.max_in_flight, sched.max_misses, sched.min_tile_rows) == (4, 5, 16)
    assert (sched.registrations_per_name, sched.registrations_per_minute, sched.keep_departed) == (7, 70, 0)
    assert (config.rpc_threads, config.heartbeat_streams) == (64, 40)


def test_version_1_checkpoints_still_load(tmp_path):
    import io

    from frugalml.cleave.runtime.checkpoint import MAGIC
    from frugalml.common.files import write_container

    cfg = TrainConfig(steps=1)
    model, opt, data = build(cfg, generated_corpus(4000))
    losses = [train_step(model, opt, data, cfg, 0)]
    buffer = io.BytesIO()  # the layout written before version 2: a torch.save payload
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    path = tmp_path / "v1.ckpt"
    write_container(path, MAGIC, 1, {"step": 1, "losses": losses, "config": cfg.to_dict()}, buffer.getvalue())
    fresh, fresh_opt, _ = build(cfg, generated_corpus(4000))
    assert load_checkpoint(path, fresh, fresh_opt, config=cfg.to_dict()) == (1, losses)
    assert train_step(fresh, fresh_opt, data, cfg, 1) == train_step(model, opt, data, cfg, 1)


def test_a_worker_that_predicts_freivalds_vector_from_the_seed_is_caught():
    """The attack: Freivalds' vector used to come from (training seed, task id), both known to a
    worker, so an error orthogonal to it passed every check. Now it comes from a per-run secret."""
    gen = np.random.default_rng(7)
    sched = Scheduler(SchedulerConfig(heartbeat_timeout_s=60, speculative=False, seed=0))
    cheat = sched.register("cheat", Profile())
    sched.begin_step(0)
    a, b = gen.standard_normal((8, 6)), gen.standard_normal((6, 5))
    trainer, _ = _start_matmul(sched, a, b)
    task = sched.next_task(cheat.worker_id, wait_s=5)
    guessed = np.random.default_rng([0, task.task_id, 1]).standard_normal(task.b.shape[1])
    w = gen.standard_normal(task.b.shape[1])
    orthogonal = w - (w @ guessed) / (guessed @ guessed) * guessed  # invisible to the guessed vector
    wrong = task.a @ task.b + np.outer(gen.standard_normal(task.a.shape[0]), orthogonal)
    assert np.allclose(wrong @ guessed, task.a @ (task.b @ guessed))  # it passes the old check
    accepted, reason = sched.complete(cheat.worker_id, task.task_id, wrong, 0)
    assert not accepted and "excluded" in reason
    honest = sched.register("honest", Profile())
    task = sched.next_task(honest.worker_id, wait_s=5)
    assert sched.complete(honest.worker_id, task.task_id, task.a @ task.b, 0) == (True, "ok")
    trainer.join()


def test_worker_ids_are_random_so_another_client_cannot_act_in_a_workers_name():
    sched = Scheduler(SchedulerConfig(heartbeat_timeout_s=60))
    ids = [sched.register(f"w{i}", Profile()).worker_id for i in range(50)]
    assert len(set(ids)) == 50 and all(0 < i < 2**63 for i in ids)
    assert not any(j - i == 1 for i, j in zip(sorted(ids), sorted(ids)[1:], strict=False))
    for guess in (1, 2, max(ids) + 1, min(ids) - 1):  # sequential guesses name nobody
        with pytest.raises(UnknownWorkerError):
            sched.next_task(guess, wait_s=0)


def test_a_push_larger_than_its_tile_is_refused_as_it_arrives_and_names_stay_short():
    from frugalml.cleave.runtime.scheduler import MAX_NAME_BYTES

    gen = np.random.default_rng(5)
    sched = Scheduler(SchedulerConfig(heartbeat_timeout_s=60, speculative=False))
    with pytest.raises(InvalidInputError, match="at most"):
        sched.register("x" * (MAX_NAME_BYTES + 1), Profile())
    worker = sched.register("w", Profile())
    sched.begin_step(0)
    a, b = gen.standard_normal((4, 3)), gen.standard_normal((3, 4))
    trainer, _ = _start_matmul(sched, a, b)
    task = sched.next_task(worker.worker_id, wait_s=5)
    assert sched.result_bytes(worker.worker_id, task.task_id) == task.a.shape[0] * task.b.shape[1] * 8
    assert sched.result_bytes(worker.worker_id + 1, task.task_id) is None  # not its task
    assert sched.complete(worker.worker_id, task.task_id, task.a @ task.b, 0) == (True, "ok")
    trainer.join()
    assert sched.result_bytes(worker.worker_id, task.task_id) is None  # done: stale from now on


def test_unchecked_tiles_are_still_bounded_and_an_excluded_name_stays_out():
    gen = np.random.default_rng(6)
    with pytest.raises(InvalidInputError, match="--trusted-workers"):
        SchedulerConfig(verify_rate=0.5)
    config = SchedulerConfig(verify_rate=0.0, heartbeat_timeout_s=60, speculative=False, trusted_workers=True)
    sched = Scheduler(config)
    cheat = sched.register("cheat", Profile())
    sched.begin_step(0)
    a, b = gen.standard_normal((4, 3)), gen.standard_normal((3, 4))
    trainer, _ = _start_matmul(sched, a, b)
    task = sched.next_task(cheat.worker_id, wait_s=5)
    poison = np.full((task.a.shape[0], task.b.shape[1]), 1e30)  # unchecked, but impossible
    accepted, reason = sched.complete(cheat.worker_id, task.task_id, poison, 0)
    assert not accepted and "bound" in reason
    with pytest.raises(ExcludedWorkerError, match="registering again"):
        sched.register("cheat", Profile())
    honest = sched.register("honest", Profile())
    task = sched.next_task(honest.worker_id, wait_s=5)
    assert sched.complete(honest.worker_id, task.task_id, task.a @ task.b, 0) == (True, "ok")
    trainer.join()
