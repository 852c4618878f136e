"""Resource limits of the parameter server, each under the attack that used to exhaust it."""

import threading
import time

import grpc
import numpy as np
import pytest

from frugalml.cleave.runtime import cleave_runtime_pb2 as pb
from frugalml.cleave.runtime import cleave_runtime_pb2_grpc as pb_grpc
from frugalml.cleave.runtime.client import fetch_status
from frugalml.cleave.runtime.model import TrainConfig, train_single_process
from frugalml.cleave.runtime.protocol import PROTOCOL_VERSION, grpc_options
from frugalml.cleave.runtime.scheduler import Profile, Scheduler, SchedulerConfig, TooManyRegistrationsError
from frugalml.cleave.runtime.server import STATUS_PAGE, HeartbeatStreams, ParameterServer, ServerConfig
from frugalml.cleave.runtime.worker import Worker, WorkerConfig
from frugalml.common.errors import InvalidInputError

pytestmark = [pytest.mark.net, pytest.mark.timeout(120)]
STEPS = 3
PROFILE = Profile(memory_bytes=1 << 30)


@pytest.fixture(scope="module")
def reference_losses():
    return train_single_process(TrainConfig(steps=STEPS))


def _register(stub, name):
    profile = pb.Profile(memory_bytes=1 << 30)
    return stub.Register(pb.RegisterRequest(protocol_version=PROTOCOL_VERSION, name=name, profile=profile))


def _train(ps, honest=("w0", "w1")):
    """Train with honest worker threads, asking for status all along; returns metrics, answers."""
    results: dict = {}
    trainer = threading.Thread(target=lambda: results.update(metrics=ps.train()))
    workers = [
        threading.Thread(target=Worker(WorkerConfig(ps.address, n, connect_timeout_s=10)).run) for n in honest
    ]
    trainer.start()
    for t in workers:
        t.start()
    answered = 0
    while trainer.is_alive():
        answered += fetch_status(ps.address, timeout=5)["step"] >= 0
        trainer.join(0.2)
    for t in workers:
        t.join(30)
    return results["metrics"], answered


def _check(metrics, reference, honest=("w0", "w1")):
    np.testing.assert_allclose(metrics["losses"], reference, rtol=1e-5)
    states = {w["name"]: w["state"] for w in metrics["workers"]}
    assert all(states[n] != "excluded" for n in honest), states
    return states


def test_idle_heartbeat_streams_starve_neither_status_nor_workers(reference_losses):
    config = ServerConfig(
        train=TrainConfig(steps=STEPS),
        port=0,
        min_workers=2,
        linger_s=0.5,
        scheduler=SchedulerConfig(heartbeat_timeout_s=2.0),
    )
    ps = ParameterServer(config)
    ps.start()
    release = threading.Event()

    def silent():  # a stream that never sends a beat
        release.wait()
        yield from ()

    try:
        with grpc.insecure_channel(ps.address, options=grpc_options()) as ch:
            stub = pb_grpc.CleaveStub(ch)
            calls = [stub.Heartbeats(silent()) for _ in range(300)]
            metrics, answered = _train(ps)
            refused = [c for c in calls if c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
            release.set()
            for c in calls:
                c.cancel()
    finally:
        ps.stop()
    _check(metrics, reference_losses)
    streams = ps.service.streams
    # the idle streams beyond the cap were refused at once (and perhaps an honest worker's: it
    # trains on, its pulls keep it alive); the rest were cancelled once idle for the timeout
    assert answered >= 1 and len(refused) >= 300 - streams.limit and streams.refused >= len(refused)
    assert streams.cancelled >= 1
    assert streams.limit == 192  # three quarters of the 256 threads: status and tasks keep the rest


def test_registrations_are_capped_and_departed_workers_forgotten():
    sched = Scheduler(SchedulerConfig(registrations_per_minute=40_000), secret=b"k")
    profile = Profile(memory_bytes=1 << 30)
    for i in range(30_000):  # a client joining and leaving under ever new names
        sched.leave(sched.register(f"n{i}", profile).worker_id)
    assert len(sched.workers) <= 257
    for _ in range(10):
        sched.register("same", profile)
    with pytest.raises(TooManyRegistrationsError, match="10 times in the last minute"):
        sched.register("same", profile)
    few = Scheduler(SchedulerConfig(registrations_per_minute=3), secret=b"k")
    for name in "abc":
        few.register(name, profile)
    with pytest.raises(TooManyRegistrationsError, match="at most 3 registrations a minute"):
        few.register("d", profile)
    with pytest.raises(InvalidInputError, match=r"--max-misses must be an integer in 1\.\.1000, got 0"):
        SchedulerConfig(max_misses=0)


def test_status_is_paged_whatever_the_worker_count():
    config = ServerConfig(port=0, linger_s=0, scheduler=SchedulerConfig(registrations_per_minute=10_000))
    ps = ParameterServer(config)
    ps.start()
    try:
        for i in range(600):
            ps.scheduler.register(f"{i:064d}", Profile(memory_bytes=1 << 30))  # 64-byte names
        with grpc.insecure_channel(ps.address, options=grpc_options()) as ch:
            stub = pb_grpc.CleaveStub(ch)
            first = stub.Status(pb.StatusRequest(), timeout=5)
            assert len(first.workers) == STATUS_PAGE and first.workers_total == 600
            assert first.ByteSize() < STATUS_PAGE * 200  # bounded by the page, not the fleet
            with pytest.raises(grpc.RpcError) as exc:
                _register(stub, "x" * 65)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            last = stub.Status(pb.StatusRequest(offset=512, limit=1000), timeout=5)
            assert len(last.workers) == 88 and last.workers_offset == 512
        status = fetch_status(ps.address)
        assert len(status["workers"]) == 600 and len({w["name"] for w in status["workers"]}) == 600
        assert {w["worker_id"] for w in status["workers"]} == {0}  # ids are session secrets
    finally:
        ps.stop()


def test_a_worker_that_keeps_its_tiles_is_cut_down_then_excluded(reference_losses):
    config = ServerConfig(
        train=TrainConfig(steps=STEPS),
        port=0,
        min_workers=3,
        linger_s=0.5,
        scheduler=SchedulerConfig(min_deadline_s=0.5),
    )
    ps = ParameterServer(config)
    ps.start()
    held: list[int] = []
    outcome: dict = {}

    def hoard():  # pulls tiles, never returns one, keeps pulling
        with grpc.insecure_channel(ps.address, options=grpc_options()) as ch:
            stub = pb_grpc.CleaveStub(ch)
            me = _register(stub, "hoarder").worker_id
            try:
                while True:
                    chunks = list(stub.PullTask(pb.PullRequest(worker_id=me, wait_s=0.2), timeout=10))
                    if chunks[0].kind == pb.SHUTDOWN:
                        return
                    if chunks[0].kind == pb.TASK:
                        held.append(chunks[0].header.task_id)
            except grpc.RpcError as exc:
                outcome.update(code=exc.code(), details=exc.details())

    hoarder = threading.Thread(target=hoard)
    hoarder.start()
    try:
        metrics, answered = _train(ps)
        hoarder.join(30)
    finally:
        ps.stop()
    states = _check(metrics, reference_losses)
    assert states["hoarder"] == "excluded" and answered >= 1
    assert outcome["code"] == grpc.StatusCode.PERMISSION_DENIED and "excluded" in outcome["details"]
    # two tiles at most while it had missed nothing, one after its first miss, out after three
    assert 3 <= len(held) <= 4, held


class _Context:
    """A stream's server context, as far as the stream table uses it."""

    cancelled = False

    def cancel(self):
        self.cancelled = True


def test_silent_streams_make_room_for_newcomers_and_a_flood_cannot_displace_itself():
    sched = Scheduler(SchedulerConfig(), secret=b"k")
    plain = HeartbeatStreams(4, timeout=30.0, scheduler=sched, silent_s=0.2)
    flood = [_Context() for _ in range(4)]
    assert all(plain.open(c) for c in flood)
    newcomer = _Context()
    assert not plain.open(newcomer)  # none silent for 0.2 s yet
    time.sleep(0.25)
    plain.beat(flood[0])  # a stream that beats is never displaced
    assert plain.open(newcomer) and flood[1].cancelled and not flood[0].cancelled
    assert (plain.displaced, plain.refused) == (1, 1)

    tls = HeartbeatStreams(4, timeout=30.0, scheduler=sched, silent_s=0.2, per_credential=3)
    m0, m1 = [_Context() for _ in range(3)], [_Context() for _ in range(2)]
    assert tls.open(m0[0], "m0") and tls.open(m0[1], "m0") and tls.open(m1[0], "m1") and tls.open(m1[1], "m1")
    time.sleep(0.25)
    assert not tls.open(m0[2], "m0")  # full: m0 may displace only a credential holding more than it
    w0 = _Context()
    assert tls.open(w0, "w0") and m0[0].cancelled  # a newcomer displaces the flood's oldest silent stream
    tls.bind(w0, 1)
    assert not tls.open(m0[2], "m0")  # m0 (1 left) may not displace m1 (2): the flood cannot churn
    w1 = _Context()
    assert tls.open(w1, "w1") and m1[0].cancelled  # the next newcomer displaces the flood, never w0
    assert not w0.cancelled and tls.bound == 1 and tls.displaced == 2
    few = HeartbeatStreams(8, timeout=30.0, scheduler=sched, per_credential=2)
    assert few.open(_Context(), "m") and few.open(_Context(), "m") and not few.open(_Context(), "m")


def test_a_flood_of_refusals_is_one_log_line(caplog):
    streams = HeartbeatStreams(1, timeout=30.0, scheduler=Scheduler(SchedulerConfig(), secret=b"k"))
    with caplog.at_level("WARNING", logger="frugalml.cleave.runtime"):
        assert streams.open(_Context()) and not any(streams.open(_Context()) for _ in range(500))
    lines = [r.getMessage() for r in caplog.records]
    assert streams.refused == 500 and len(lines) == 1 and "(1 so far)" in lines[0], lines


def test_a_credentialed_newcomer_registers_while_a_flood_took_the_minutes_registrations():
    sched = Scheduler(SchedulerConfig(registrations_per_minute=3), secret=b"k")
    for name in ("m0", "m0", "m1"):
        sched.register(name, PROFILE, credentialed=True)
    sched.register("w0", PROFILE, credentialed=True)  # its first registration this minute
    with pytest.raises(TooManyRegistrationsError, match="at most 3 registrations a minute"):
        sched.register("w0", PROFILE, credentialed=True)  # its second counts against the cap
    with pytest.raises(TooManyRegistrationsError, match="at most 3 registrations a minute"):
        sched.register("w1", PROFILE)  # plain text: a new name proves nothing


@pytest.fixture(scope="module")
def flood_creds(tmp_path_factory):
    pytest.importorskip("cryptography")
    from frugalml.cleave.runtime.tls import make_credentials

    folder = tmp_path_factory.mktemp("flood")
    make_credentials(folder, ["w0", "w1", "m0", "m1", "m2"], ["127.0.0.1"], days=1)
    return folder


def test_a_flood_of_heartbeat_streams_locks_no_honest_worker_out(flood_creds, reference_losses):
    from frugalml.cleave.runtime.tls import ClientFiles, channel

    def files(name):
        return ClientFiles(*(str(flood_creds / f) for f in ("ca.pem", f"{name}.pem", f"{name}.key")))

    config = ServerConfig(
        train=TrainConfig(steps=STEPS),
        port=0,
        min_workers=2,
        linger_s=0.5,
        rpc_threads=32,
        heartbeat_streams=8,
        tls_cert=str(flood_creds / "server.pem"),
        tls_key=str(flood_creds / "server.key"),
        tls_ca=str(flood_creds / "ca.pem"),
        scheduler=SchedulerConfig(heartbeat_timeout_s=2.0),
    )
    ps = ParameterServer(config)
    ps.start()
    stop = threading.Event()

    def silent():
        stop.wait()
        yield from ()

    def flood(name):  # keeps opening silent streams under its credential, as fast as it can
        with channel(ps.address, files(name), grpc_options()) as ch:
            stub, calls = pb_grpc.CleaveStub(ch), []
            while not stop.is_set():
                calls.append(stub.Heartbeats(silent()))
                time.sleep(0.005)
            for call in calls:
                call.cancel()

    flooders = [threading.Thread(target=flood, args=(n,)) for n in ("m0", "m1", "m2")]
    for t in flooders:
        t.start()
    time.sleep(1.5)  # the table is full of the flood's streams before any worker comes
    results: dict = {}
    trainer = threading.Thread(target=lambda: results.update(metrics=ps.train()))
    workers = [
        threading.Thread(target=Worker(WorkerConfig(ps.address, n, tls=files(n), connect_timeout_s=10)).run)
        for n in ("w0", "w1")
    ]
    trainer.start()
    for t in workers:
        t.start()
    answered = 0
    try:
        while trainer.is_alive():
            answered += fetch_status(ps.address, timeout=5, tls=files("status"))["step"] >= 0
            trainer.join(0.2)
    finally:
        stop.set()
        for t in [*workers, *flooders]:
            t.join(30)
        ps.stop()
    _check(results["metrics"], reference_losses)
    streams = ps.service.streams
    assert answered >= 1 and streams.bound >= 2  # each honest worker got a stream, in the flood
    assert streams.displaced >= 2 and streams.refused >= 1
