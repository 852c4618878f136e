"""The parameter server's peak memory while a client pushes oversized results (push-memory.json).

Writes benchmarks/results/cleave/push-memory.json.
Run: .venv/bin/python benchmarks/cleave/push_memory.py [--chunks 200] [--chunk-mb 7]
A server process (tiny-gpt, plain text on loopback); one client registers, pulls a tile, then
pushes ``chunks`` x ``chunk-mb`` MB twice: for its own task claiming a huge tile (cut off once the
bytes pass the tile's size) and for a task that is not its own (read and dropped, never stored).
The server's resident memory is read from /proc: VmRSS once it holds its tile (idle), sampled
every 10 ms during the pushes, and VmHWM (the kernel's peak) afterwards. Goal: peak <= idle + 256 MB.
"""

import argparse
import threading
import time
from pathlib import Path

import grpc

from frugalml.cleave.runtime import cleave_runtime_pb2 as pb
from frugalml.cleave.runtime import cleave_runtime_pb2_grpc as pb_grpc
from frugalml.cleave.runtime.local import LocalCluster
from frugalml.cleave.runtime.protocol import PROTOCOL_VERSION, grpc_options
from frugalml.common.report import Record, print_table, write_json

OUT = Path(__file__).resolve().parents[1] / "results" / "cleave" / "push-memory.json"
GOAL_MB = 256


def _kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def _push(stub, worker_id: int, task_id: int, chunks: int, chunk_bytes: int) -> str:
    total = chunks * chunk_bytes // 4
    claimed = pb.TensorMeta(dtype="float32", shape=[total // 1024, 1024])
    header = pb.ResultHeader(worker_id=worker_id, task_id=task_id, c=claimed)
    block = b"\0" * chunk_bytes

    def flood():
        yield pb.ResultChunk(header=header, data=block)
        for _ in range(chunks - 1):
            yield pb.ResultChunk(data=block)

    try:
        return stub.PushResult(flood(), timeout=120).reason
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"


def measure(chunks: int = 200, chunk_mb: float = 7.0) -> dict:
    """Idle and peak resident MB of a server under the two oversized pushes, and their replies."""
    chunk_bytes = int(chunk_mb * (1 << 20)) // 4096 * 4096
    with LocalCluster() as cluster:
        address = cluster.start_server(steps=2, min_workers=1)
        pid = cluster.server.pid
        with grpc.insecure_channel(address, options=grpc_options()) as ch:
            stub = pb_grpc.CleaveStub(ch)
            profile = pb.Profile(memory_bytes=1 << 30)
            request = pb.RegisterRequest(protocol_version=PROTOCOL_VERSION, name="big", profile=profile)
            me = stub.Register(request, timeout=30).worker_id
            task = list(stub.PullTask(pb.PullRequest(worker_id=me, wait_s=10), timeout=30))[0].header
            time.sleep(0.5)
            idle = _kb(pid, "VmRSS")
            samples, done = [idle], threading.Event()

            def sample():
                while not done.wait(0.01):
                    samples.append(_kb(pid, "VmRSS"))

            sampler = threading.Thread(target=sample)
            sampler.start()
            start = time.perf_counter()
            own = _push(stub, me, task.task_id, chunks, chunk_bytes)
            other = _push(stub, me, task.task_id + 10_000, chunks, chunk_bytes)
            seconds = time.perf_counter() - start
            done.set()
            sampler.join()
            peak = _kb(pid, "VmHWM")
    mb = 1 / 1024
    return {
        "chunks": chunks,
        "chunk_mb": chunk_bytes / (1 << 20),
        "pushed_mb": 2 * chunks * chunk_bytes / (1 << 20),
        "idle_mb": idle * mb,
        "sampled_peak_mb": max(samples) * mb,
        "vmhwm_mb": peak * mb,
        "growth_mb": (max(peak, max(samples)) - idle) * mb,
        "goal_mb": GOAL_MB,
        "own_task_reply": own,
        "other_task_reply": other,
        "seconds": seconds,
        "samples": len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--chunk-mb", type=float, default=7.0)
    args = parser.parse_args()
    result = measure(args.chunks, args.chunk_mb)
    record = Record(
        system="cleave",
        workload=f"PS under 2 pushes of {args.chunks} x {args.chunk_mb:g} MB (tiny-gpt, loopback)",
        metric="peak resident growth over idle",
        unit="MB",
        ours=round(result["growth_mb"], 1),
        peer="goal (idle + 256 MB)",
        peer_value=GOAL_MB,
        spread={**result, "load_average": _load()},
        notes="VmHWM of the server process and VmRSS sampled every 10 ms; idle = VmRSS holding one tile",
    )
    write_json([record], OUT)
    print_table([record], title="cleave push memory")


def _load() -> tuple[float, ...]:
    return tuple(float(x) for x in Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()
