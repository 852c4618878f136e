"""The runtime as real processes on localhost: exactness, a SIGKILLed worker, a cheat, bad clients."""

import json
import signal
import threading
import time

import grpc
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from frugalml.cleave.runtime import cleave_runtime_pb2 as pb
from frugalml.cleave.runtime import cleave_runtime_pb2_grpc as pb_grpc
from frugalml.cleave.runtime.cli import add_runtime_commands
from frugalml.cleave.runtime.client import fetch_status
from frugalml.cleave.runtime.demo import run_local
from frugalml.cleave.runtime.local import LocalCluster
from frugalml.cleave.runtime.model import TrainConfig, train_single_process
from frugalml.cleave.runtime.protocol import PROTOCOL_VERSION, grpc_options
from frugalml.cleave.runtime.server import ParameterServer, ServerConfig
from frugalml.cleave.runtime.worker import WorkerConfig, run_worker
from frugalml.common.errors import FrugalError, InvalidInputError, ServiceUnavailableError
from frugalml.common.redis_server import free_port

pytestmark = [pytest.mark.net, pytest.mark.timeout(180)]
STEPS = 20


@pytest.fixture(scope="module")
def reference_losses():
    return train_single_process(TrainConfig(steps=STEPS))


def _assert_same_losses(ours, reference):
    assert len(ours) == len(reference)
    np.testing.assert_allclose(ours, reference, rtol=1e-5)


def _run(cluster, steps, workers, kill=None, **server_options):
    cluster.start_server(steps=steps, min_workers=len(workers), **server_options)
    for name, options in workers.items():
        cluster.start_worker(name, **options)
    if kill is not None:
        cluster.kill_while_holding_a_tile(kill, after_step=steps // 3, timeout=60)
    metrics = cluster.wait_server(timeout=120)
    return metrics, cluster.wait_workers(timeout=15)


def test_killed_and_cheating_workers_change_nothing(reference_losses):
    steps = 8
    workers = {"w0": {}, "w1": {}, "victim": {}, "cheat": {"corrupt_every": 5}}
    with LocalCluster() as cluster:
        metrics, codes = _run(cluster, steps, workers, kill="victim")
        cheat_log = cluster.log("cheat")
    _assert_same_losses(metrics["losses"], reference_losses[:steps])
    by_name = {w["name"]: w for w in metrics["workers"]}
    assert by_name["victim"]["state"] == "lost" and codes["victim"] == -signal.SIGKILL
    assert metrics["requeued_tiles"] + metrics["backup_tiles"] >= 1
    assert len(metrics["recovery_seconds"]) == 1
    assert by_name["cheat"]["state"] == "excluded" and by_name["cheat"]["tiles_rejected"] == 1
    assert codes["cheat"] == 2 and "Freivalds" in cheat_log
    assert codes["w0"] == codes["w1"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["none", "sigkill", "corrupt"])
def test_goal_twenty_steps_with_three_workers_match_one_process(fault, reference_losses):
    workers = {"w0": {}, "w1": {}, "w2": {"corrupt_every": 7} if fault == "corrupt" else {}}
    with LocalCluster() as cluster:
        metrics, codes = _run(cluster, STEPS, workers, kill="w2" if fault == "sigkill" else None)
    _assert_same_losses(metrics["losses"], reference_losses)
    state = {w["name"]: w["state"] for w in metrics["workers"]}["w2"]
    assert state == {"none": "alive", "sigkill": "lost", "corrupt": "excluded"}[fault]
    assert codes["w0"] == codes["w1"] == 0


def test_worker_facing_a_dead_server_says_so():
    with pytest.raises(ServiceUnavailableError, match="no cleave parameter server answers"):
        run_worker(WorkerConfig(server="127.0.0.1:1", name="lonely", connect_timeout_s=1))
    with pytest.raises(ServiceUnavailableError, match="no cleave parameter server answers"):
        fetch_status("127.0.0.1:1", timeout=1)
    with pytest.raises(InvalidInputError, match="HOST:PORT"):
        run_worker(WorkerConfig(server="nowhere", name="lonely"))


def test_bad_clients_are_refused_and_joining_workers_train_exactly_like_one_process(reference_losses):
    with LocalCluster() as cluster:
        address = cluster.start_server(steps=6, min_workers=1)
        app = typer.Typer()
        add_runtime_commands(app)
        result = CliRunner().invoke(app, ["status", "--server", address, "--json"])
        assert result.exit_code == 0, result.output
        status = json.loads(result.output)
        assert status["state"] == "waiting" and status["model"] == "tiny-gpt" and status["workers"] == []
        table = CliRunner().invoke(app, ["status", "--server", address])
        assert "waiting, step 0/6" in table.output
        with pytest.raises(FrugalError, match="protocol 99, this server speaks"):
            run_worker(WorkerConfig(server=address, name="old", protocol_version=99))
        with pytest.raises(InvalidInputError, match="smallest tile"):
            run_worker(WorkerConfig(server=address, name="watch", memory_bytes=512))
        with grpc.insecure_channel(address, options=grpc_options()) as channel:
            garbage = channel.unary_unary("/frugalml.cleave.v1.Cleave/Register")
            with pytest.raises(grpc.RpcError) as err:
                garbage(b"\xff\xff\xff\xff not a protobuf", timeout=5)
            assert err.value.code() != grpc.StatusCode.OK
            stub = pb_grpc.CleaveStub(channel)
            reply = stub.Register(
                pb.RegisterRequest(
                    protocol_version=PROTOCOL_VERSION, name="liar", profile=pb.Profile(memory_bytes=1 << 30)
                ),
                timeout=5,
            )
            truncated = pb.ResultChunk(
                header=pb.ResultHeader(
                    worker_id=reply.worker_id, task_id=1, c=pb.TensorMeta(dtype="float32", shape=[4, 4])
                ),
                data=b"\x00" * 10,
            )
            with pytest.raises(grpc.RpcError) as err:
                stub.PushResult(iter([truncated]), timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "truncated or malformed" in err.value.details()
            with pytest.raises(grpc.RpcError) as err:
                stub.PushResult(iter([pb.ResultChunk(data=b"1234")]), timeout=5)
            assert "header" in err.value.details()
            with pytest.raises(grpc.RpcError) as err:
                list(stub.PullTask(pb.PullRequest(worker_id=12345), timeout=5))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            stub.Leave(pb.LeaveRequest(worker_id=reply.worker_id), timeout=5)

        status = fetch_status(address)
        assert {w["name"]: w["state"] for w in status["workers"]} == {"liar": "left"}

        # training started when "liar" joined and waits for workers; three join one after another
        cluster.start_worker("phone-1", down="100mbit", up="20mbit", flops=2e11)
        cluster.start_worker("phone-2")
        cluster.start_worker("phone-3")
        metrics = cluster.wait_server(timeout=120)
        assert cluster.wait_workers(timeout=15) == {"phone-1": 0, "phone-2": 0, "phone-3": 0}
    _assert_same_losses(metrics["losses"], reference_losses[:6])
    workers = [w for w in metrics["workers"] if w["name"].startswith("phone")]
    assert len(workers) == 3 and all(w["tiles_done"] > 0 for w in workers)
    for w in workers:  # measured bytes follow the tiling model (protobuf framing adds < 1%)
        assert w["model_bytes_down"] <= w["bytes_down"] <= 1.01 * w["model_bytes_down"]
        assert w["model_bytes_up"] <= w["bytes_up"] <= 1.01 * w["model_bytes_up"]


def _train_in_process(steps: int, checkpoint) -> list[float]:
    config = ServerConfig(
        train=TrainConfig(steps=steps),
        host="127.0.0.1",
        port=0,
        linger_s=5,
        checkpoint=str(checkpoint),
        checkpoint_every=2,
        chunk_bytes=4096,
    )
    ps = ParameterServer(config)
    address = ps.start()
    streaming = WorkerConfig(server=address, name="w", chunk_bytes=1000)  # tiles of 8-260 kB: many chunks
    worker = threading.Thread(target=run_worker, args=(streaming,))
    worker.start()
    try:
        return ps.train()["losses"]
    finally:
        ps.stop()
        worker.join(timeout=10)


def test_restarted_server_resumes_from_its_checkpoint_streaming_small_chunks(tmp_path, reference_losses):
    checkpoint = tmp_path / "ps.ckpt"
    _assert_same_losses(_train_in_process(2, checkpoint), reference_losses[:2])
    _assert_same_losses(_train_in_process(4, checkpoint), reference_losses[:4])


@pytest.mark.slow
def test_killed_server_resumes_from_its_checkpoint_and_workers_rejoin(tmp_path, reference_losses):
    port, checkpoint, steps = free_port(), tmp_path / "ps.ckpt", 6
    options = {
        "steps": steps,
        "port": port,
        "checkpoint": checkpoint,
        "checkpoint_every": 2,
        "min_workers": 2,
    }
    with LocalCluster() as cluster:
        cluster.start_server(**options)
        cluster.start_worker("w0")
        cluster.start_worker("w1")
        while fetch_status(cluster.address)["step"] < 3:
            time.sleep(0.02)
        cluster.kill_server()
        cluster.start_server(**options)
        metrics = cluster.wait_server(timeout=120)
        assert cluster.wait_workers(timeout=15) == {"w0": 0, "w1": 0}
    _assert_same_losses(metrics["losses"], reference_losses[:steps])
    assert {w["name"] for w in metrics["workers"]} == {"w0", "w1"}


def test_demo_runs_a_short_local_training():
    summary = run_local(steps=2, workers=2)
    assert summary.startswith("PS + 2 gRPC workers, tiny GPT 2 steps: loss 4.")
    assert "\n" not in summary


def _fleet_plan(tmp_path, counts):
    from frugalml.cleave.devices import make_pool
    from frugalml.cleave.planfile import executable_plan, write_plan
    from frugalml.cleave.validate import plan_for

    executable = executable_plan(plan_for(make_pool(counts=counts, jitter=0, seed=0)), "float32")
    path = tmp_path / "plan.json"
    write_plan(path, executable)
    return path, executable


def test_a_plan_is_followed_share_for_share(tmp_path, reference_losses):
    from frugalml.cleave.runtime.model import GPTConfig
    from frugalml.cleave.runtime.scheduler import quotas

    steps = 3
    path, executable = _fleet_plan(tmp_path, {"laptop": 1, "jetson-orin-nano": 1})
    workers = {"lap": {"class": "laptop"}, "jet": {"class": "jetson-orin-nano"}}
    for options in workers.values():
        options.update(down="0", up="0")
    with LocalCluster() as cluster:
        metrics, codes = _run(cluster, steps, workers, plan=str(path), backups=False)
    _assert_same_losses(metrics["losses"], reference_losses[:steps])
    assert metrics["plan"] == "following the plan"
    expected = {"laptop": 0, "jetson-orin-nano": 0}
    for g in executable.gemms:
        if not g.on_ps:
            for cls, tiles in quotas(g.shares, g.grid.tasks).items():
                expected[cls] += tiles * g.repeats * steps
    done = {w["profile"]["device_class"]: w["tiles_done"] for w in metrics["workers"]}
    assert done == expected and GPTConfig().n_layer == 2
    assert codes == {"lap": 0, "jet": 0}
    # the PS counts its CPU: every tile handed out and taken in once, per step and per handler
    handlers = metrics["ps_cpu"]["handlers"]
    assert handlers["pull"]["calls"] == handlers["push"]["calls"] == sum(expected.values())
    assert handlers["pull"]["cpu_s"] > 0 and len(metrics["ps_cpu"]["process_s_per_step"]) == steps


@pytest.mark.slow
def test_a_planned_run_survives_a_killed_and_a_cheating_worker(tmp_path, reference_losses):
    steps = 6
    path, _ = _fleet_plan(tmp_path, {"laptop": 2, "phone-flagship": 2})
    workers = {
        "lap0": {"class": "laptop"},
        "lap1": {"class": "laptop", "corrupt_every": 3},
        "ph0": {"class": "phone-flagship"},
        "victim": {"class": "phone-flagship"},
    }
    for options in workers.values():
        options.update(down="0", up="0")
    with LocalCluster() as cluster:
        metrics, codes = _run(cluster, steps, workers, kill="victim", plan=str(path))
    _assert_same_losses(metrics["losses"], reference_losses[:steps])
    states = {w["name"]: w["state"] for w in metrics["workers"]}
    assert states == {"lap0": "alive", "lap1": "excluded", "ph0": "alive", "victim": "lost"}
    assert "pulling" in metrics["plan"]
