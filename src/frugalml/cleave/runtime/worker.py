"""A device worker: registers its profile, pulls tiles, multiplies them, returns them over a shaped link."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import grpc
import numpy as np

from frugalml.cleave.runtime import cleave_runtime_pb2 as pb
from frugalml.cleave.runtime import cleave_runtime_pb2_grpc as pb_grpc
from frugalml.cleave.runtime.protocol import (
    CHUNK_BYTES,
    PROTOCOL_VERSION,
    from_bytes,
    grpc_options,
    meta_of,
    nbytes_of,
    split_chunks,
    to_bytes,
)
from frugalml.cleave.runtime.shaping import TokenBucket
from frugalml.cleave.runtime.tls import ClientFiles, channel
from frugalml.common.errors import FrugalError, InvalidInputError, ServiceUnavailableError

log = logging.getLogger("frugalml.cleave.runtime")


@dataclass
class WorkerConfig:
    """Everything ``frugal cleave worker`` takes; rates in bytes/s (0 = unshaped), memory in bytes."""

    server: str
    name: str
    down_bytes_per_s: float = 0.0
    up_bytes_per_s: float = 0.0
    flops: float = 0.0
    memory_bytes: int = 1 << 30
    connect_timeout_s: float = 10.0
    reconnect_timeout_s: float = 30.0
    rpc_timeout_s: float = 120.0
    pull_wait_s: float = 1.0
    chunk_bytes: int = CHUNK_BYTES
    corrupt_every: int = 0  # fault injection: perturb every n-th result (tests of verification)
    protocol_version: int = PROTOCOL_VERSION
    device_class: str = ""
    shape_links: bool = True  # False: the network shapes the links (tc); the rates are only declared
    tls: ClientFiles | None = None  # TLS with this worker's certificate (None: plain text)


@dataclass
class WorkerSummary:
    """What a worker did, counted on its side (data bytes of tiles, not protobuf framing)."""

    name: str
    tiles: int = 0
    rejected: int = 0
    data_bytes_down: int = 0
    data_bytes_up: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"worker {self.name}: {self.tiles} tiles ({self.rejected} not accepted), "
            f"{self.data_bytes_down / 1e6:.2f} MB down, {self.data_bytes_up / 1e6:.2f} MB up "
            f"in {self.seconds:.1f} s"
        )


class _Finished(Exception):
    """The PS said training is over."""


class Worker:
    """One device's connection to a parameter server (see :func:`run_worker`)."""

    def __init__(self, config: WorkerConfig):
        if not config.server or ":" not in config.server:
            raise InvalidInputError(f"--server must be HOST:PORT, got {config.server!r}")
        self.config = config
        self.down = TokenBucket(config.down_bytes_per_s if config.shape_links else 0.0)
        self.up = TokenBucket(config.up_bytes_per_s if config.shape_links else 0.0)
        self.summary = WorkerSummary(config.name)
        self.worker_id = 0
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._channel = channel(config.server, config.tls, grpc_options())
        self._stub = pb_grpc.CleaveStub(self._channel)
        self._beats: grpc.Future | None = None

    def run(self) -> WorkerSummary:
        start = time.perf_counter()
        try:
            self._connect()
            self._register()
            while not self._finished.is_set():
                try:
                    self._work_once()
                except _Finished:
                    break
        except KeyboardInterrupt:
            log.info("interrupted; leaving")
        finally:
            self.close()
            self.summary.seconds = time.perf_counter() - start
        return self.summary

    def close(self) -> None:
        self._stop.set()
        if self.worker_id:
            try:
                self._stub.Leave(pb.LeaveRequest(worker_id=self.worker_id), timeout=2)
            except grpc.RpcError:
                pass
        if self._beats is not None:
            self._beats.cancel()
        self._channel.close()

    def _connect(self) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self.config.connect_timeout_s)
        except grpc.FutureTimeoutError:
            raise ServiceUnavailableError(
                f"no cleave parameter server answers at {self.config.server} (waited "
                f"{self.config.connect_timeout_s:g} s); start one with 'frugal cleave serve' "
                "or check the address"
                + ("" if self.config.tls else " (a server with TLS needs --ca, --cert and --key)")
            ) from None

    def _register(self) -> None:
        c = self.config
        request = pb.RegisterRequest(
            protocol_version=c.protocol_version,
            name=c.name,
            profile=pb.Profile(
                down_bytes_per_s=c.down_bytes_per_s,
                up_bytes_per_s=c.up_bytes_per_s,
                flops=c.flops,
                memory_bytes=c.memory_bytes,
                device_class=c.device_class,
            ),
        )
        try:
            reply = self._stub.Register(request, timeout=self.config.connect_timeout_s)
        except grpc.RpcError as exc:
            raise _as_frugal_error(exc, self.config.server) from None
        self.worker_id = reply.worker_id
        log.info("registered with %s as %s (model %s)", c.server, c.name, reply.model)  # (its id is a secret)
        self._start_heartbeats(reply.heartbeat_interval_s)

    def _start_heartbeats(self, interval: float) -> None:
        """A stream of beats; a server whose streams are all taken refuses it, so it is asked again
        every two intervals (the server makes room by cancelling a stream that fell silent)."""
        worker_id = self.worker_id

        def beats():
            while not self._stop.is_set():
                yield pb.Heartbeat(worker_id=worker_id)
                self._stop.wait(interval)

        def open_stream():
            self._beats = self._stub.Heartbeats(beats())
            return self._beats

        first = open_stream()

        def listen():
            responses = first
            while True:
                try:
                    for command in responses:
                        if command.shutdown:
                            self._finished.set()
                            return
                    return
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or self._stop.wait(2 * interval):
                        return
                    if self._beats is not responses:  # registered again meanwhile: a new stream runs
                        return
                    responses = open_stream()

        threading.Thread(target=listen, name="cleave-heartbeats", daemon=True).start()

    def _work_once(self) -> None:
        request = pb.PullRequest(worker_id=self.worker_id, wait_s=self.config.pull_wait_s)
        try:
            stream = self._stub.PullTask(request, timeout=self.config.rpc_timeout_s)
            header, parts = None, []
            for chunk in stream:
                if chunk.kind == pb.SHUTDOWN:
                    raise _Finished
                if chunk.kind == pb.IDLE:
                    return
                if header is None:
                    header = chunk.header
                self.down.consume(len(chunk.data))
                parts.append(chunk.data)
        except grpc.RpcError as exc:
            self._on_rpc_error(exc)
            return
        payload = b"".join(parts)
        split = len(payload) - nbytes_of(header.b)
        a, b = from_bytes(header.a, payload[:split]), from_bytes(header.b, payload[split:])
        self.summary.data_bytes_down += len(payload)
        c = a @ b
        if self.config.corrupt_every and (self.summary.tiles + 1) % self.config.corrupt_every == 0:
            c = c.copy()
            c.flat[0] += 1.0 + abs(c.flat[0])
        self._push(header.task_id, c)

    def _push(self, task_id: int, c: np.ndarray) -> None:
        data = to_bytes(c)
        header = pb.ResultHeader(worker_id=self.worker_id, task_id=task_id, c=meta_of(c))

        def chunks():
            for i, part in enumerate(split_chunks(data, self.config.chunk_bytes)):
                self.up.consume(len(part))
                yield pb.ResultChunk(header=header if i == 0 else None, data=bytes(part))

        try:
            reply = self._stub.PushResult(chunks(), timeout=self.config.rpc_timeout_s)
        except grpc.RpcError as exc:
            self._on_rpc_error(exc)
            return
        self.summary.data_bytes_up += len(data)
        if reply.accepted:
            self.summary.tiles += 1
        else:
            self.summary.rejected += 1
            log.info("result of task %d not used: %s", task_id, reply.reason)

    def _on_rpc_error(self, exc: grpc.RpcError) -> None:
        if self._finished.is_set():
            raise _Finished
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            log.warning("the server forgot this worker (%s); registering again", exc.details())
            self._rejoin(self.config.connect_timeout_s)
            return
        if exc.code() == grpc.StatusCode.UNAVAILABLE and self.config.reconnect_timeout_s > 0:
            log.warning(
                "lost the server (%s); waiting up to %g s for it to come back",
                exc.details(),
                self.config.reconnect_timeout_s,
            )
            self._rejoin(self.config.reconnect_timeout_s)
            return
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return
        raise _as_frugal_error(exc, self.config.server)

    def _rejoin(self, timeout: float) -> None:
        """Register again (a restarted PS resumes from its checkpoint and knows no workers)."""
        if self._beats is not None:
            self._beats.cancel()
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ServiceUnavailableError(
                f"the cleave parameter server at {self.config.server} went away and did not come back "
                f"within {timeout:g} s"
            ) from None
        self._register()


def _as_frugal_error(exc: grpc.RpcError, server: str) -> FrugalError:
    """A gRPC failure as the error a user can act on."""
    code, details = exc.code(), exc.details()
    if code == grpc.StatusCode.UNAVAILABLE:
        return ServiceUnavailableError(
            f"lost the cleave parameter server at {server} ({details}); is it running?"
        )
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FrugalError(f"the server at {server} refused this worker: {details}")
    if code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT):
        return InvalidInputError(f"the server at {server} refused this worker: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return FrugalError(f"the server at {server} refused this credential: {details}")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return FrugalError(f"the server at {server} excluded this worker: {details}")
    return ServiceUnavailableError(f"call to {server} failed: {code.name} {details}")


def class_defaults(device_class: str | None) -> dict[str, float]:
    """Links (bytes/s) and memory (bytes) of a catalogue class; {} for None.

    Raises
    ------
    InvalidInputError
        The class is not in the device catalogue (the message lists the classes).
    """
    if device_class is None:
        return {}
    from frugalml.cleave.devices import GB, MBIT, load_catalogue

    catalogue = load_catalogue()
    if device_class not in catalogue:
        raise InvalidInputError(
            f"device class {device_class!r} is not in the catalogue; use one of {', '.join(catalogue)}"
        )
    c = catalogue[device_class]
    return {"down": c.down_mbps * MBIT, "up": c.up_mbps * MBIT, "memory": c.memory_gb * GB}


def measure_flops(size: int = 192, seconds: float = 0.2, clock=time.perf_counter) -> float:
    """This machine's float32 GEMM rate in FLOP/s, measured for about ``seconds`` of ``clock``
    (tile-sized products; ``time.thread_time`` counts only this thread's CPU time)."""
    gen = np.random.default_rng(0)
    a, b = gen.random((size, size), dtype=np.float32), gen.random((size, size), dtype=np.float32)
    a @ b  # warm-up
    runs, start = 0, clock()
    while (elapsed := clock() - start) < seconds:
        a @ b
        runs += 1
    return 2.0 * size**3 * runs / elapsed


def run_worker(config: WorkerConfig) -> WorkerSummary:
    """Serve one parameter server until training ends (``frugal cleave worker``).

    Raises
    ------
    ServiceUnavailableError
        No server answers at ``config.server``, or it went away mid-training.
    FrugalError
        The server refused the worker (protocol version, too little memory) or excluded it.
    """
    return Worker(config).run()
