"""The parameter server: holds the model, optimiser and data, trains, and serves tiles over gRPC."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from concurrent import futures
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import torch

from frugalml.cleave.devices import load_catalogue
from frugalml.cleave.planfile import ExecutablePlan, read_plan
from frugalml.cleave.runtime import cleave_runtime_pb2 as pb
from frugalml.cleave.runtime import cleave_runtime_pb2_grpc as pb_grpc
from frugalml.cleave.runtime.checkpoint import load_checkpoint, save_checkpoint
from frugalml.cleave.runtime.gemm import attach_executor
from frugalml.cleave.runtime.model import TrainConfig, build, load_corpus
from frugalml.cleave.runtime.protocol import (
    CHUNK_BYTES,
    PROTOCOL_VERSION,
    TASKS_IN_FLIGHT,
    from_bytes,
    grpc_options,
    meta_of,
    nbytes_of,
    split_chunks,
    to_bytes,
)
from frugalml.cleave.runtime.scheduler import (
    SHUTDOWN,
    ExcludedWorkerError,
    Profile,
    Scheduler,
    SchedulerConfig,
    Throttled,
    TooManyRegistrationsError,
    UnknownWorkerError,
)
from frugalml.cleave.runtime.tls import certificate_ids, peer_certificate, peer_name, server_credentials
from frugalml.cleave.tiling import smallest_tile_memory
from frugalml.common.errors import InvalidInputError
from frugalml.common.files import atomic_write
from frugalml.common.threads import check_threads

log = logging.getLogger("frugalml.cleave.runtime")
STATUS_PAGE = 256  # workers per status reply


@dataclass
class ServerConfig:
    """Everything ``frugal cleave serve`` takes."""

    train: TrainConfig = field(default_factory=TrainConfig)
    data: str | None = None
    host: str = "127.0.0.1"
    plan: str | None = None
    port: int = 50051
    min_workers: int = 1
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    heartbeat_interval_s: float = 0.5
    checkpoint: str | None = None
    checkpoint_every: int = 10
    metrics: str | None = None
    address_file: str | None = None
    linger_s: float = 2.0
    torch_threads: int = 1
    chunk_bytes: int = CHUNK_BYTES
    rpc_threads: int = 256  # each worker holds a heartbeat stream and at most one task call
    heartbeat_streams: int = 0  # open heartbeat streams at most (0: three quarters of rpc_threads)
    tls_cert: str | None = None  # TLS: the server's certificate and key, and the CA of its clients
    tls_key: str | None = None
    tls_ca: str | None = None
    insecure: bool = False  # plain text on an address other than loopback, knowingly
    revoked: str | None = None  # a file of revoked certificate names, re-read while serving

    @property
    def tls(self) -> bool:
        given = [v is not None for v in (self.tls_cert, self.tls_key, self.tls_ca)]
        if any(given) and not all(given):
            raise InvalidInputError(
                "--tls-cert, --tls-key and --ca go together (make them with 'frugal cleave certs')"
            )
        return all(given)


def _status_code(exc: Exception) -> grpc.StatusCode:
    if isinstance(exc, UnknownWorkerError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, ExcludedWorkerError):
        return grpc.StatusCode.PERMISSION_DENIED
    return grpc.StatusCode.INVALID_ARGUMENT


class HandlerCpu:
    """CPU seconds the PS's handler threads spend per kind of call (``pull``, ``push``; calls that
    hand out or take in no tile count as ``idle``), and how many calls: what the PS does per task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @contextlib.contextmanager
    def count(self, kind: str):
        """Time this thread's CPU over the block; the block sets ``flag[0]`` when it moved a tile."""
        flag, start = [False], time.thread_time()
        try:
            yield flag
        finally:
            used = time.thread_time() - start
            key = kind if flag[0] else "idle"
            with self._lock:
                self.seconds[key] = self.seconds.get(key, 0.0) + used
                self.calls[key] = self.calls.get(key, 0) + 1

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {k: {"cpu_s": self.seconds[k], "calls": self.calls[k]} for k in sorted(self.seconds)}


class RevocationList:
    """Credentials that may no longer connect, from a file re-read when it changes (checked at most
    every ``every`` seconds): one a line, ``#`` starts a comment; a line is a certificate name (every
    credential of that name), ``serial:HEX`` or ``sha256:HEX`` (one certificate: rotate a name's
    credential with ``frugal cleave certs --add NAME``, then revoke the old one). Revoking takes
    effect without a restart; a file that becomes unreadable keeps the last list (with a warning)."""

    def __init__(self, path: str, every: float = 0.5):
        self.path, self.every = path, every
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.names: frozenset[str] = frozenset()
        self._ids: dict[bytes, tuple[str, str]] = {}
        self._load(strict=True)

    def _load(self, strict: bool) -> None:
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            if stat.st_size > 1 << 20:
                raise InvalidInputError(f"revocation list {self.path} is over 1 MB")
            text = Path(self.path).read_text(encoding="utf-8", errors="replace")
        except (OSError, InvalidInputError) as exc:
            if strict:
                raise InvalidInputError(f"cannot read the revocation list {self.path}: {exc}") from None
            log.warning("kept the last revocation list: cannot read %s (%s)", self.path, exc)
            return
        names = frozenset(
            n.lower() if n.lower().startswith(("serial:", "sha256:")) else n
            for line in text.splitlines()
            if (n := line.split("#", 1)[0].strip().replace(" ", ""))
        )
        if any(n.startswith("serial:") for n in names) and not self._cryptography():
            log.warning("serial: entries need the 'cryptography' package; revoke by sha256: instead")
        if names != self.names and self._stamp is not None:
            log.warning("revocation list now names %d credentials", len(names))
        self.names, self._stamp = names, stamp

    @staticmethod
    def _cryptography() -> bool:
        try:
            import cryptography  # noqa: F401
        except ImportError:
            return False
        return True

    def revoked(self, name: str | None, pem: bytes | None = None) -> bool:
        """Whether the credential (its name, and its certificate when given) is revoked."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked >= self.every:
                self._checked = now
                self._load(strict=False)
            names = self.names
        if name is not None and name in names:
            return True
        if pem is None or not any(":" in n for n in names):
            return False
        return any(i in names for i in self.ids(pem))

    def ids(self, pem: bytes) -> tuple[str, str]:
        with self._lock:
            found = self._ids.get(pem)
        if found is None:
            found = certificate_ids(pem)
            with self._lock:
                if len(self._ids) >= 4096:
                    self._ids.clear()
                self._ids[pem] = found
        return found


class HeartbeatStreams:
    """Open heartbeat streams, each holding one of the server's threads: at most ``limit`` at once,
    one per worker, and a stream that sends no beat for ``timeout`` seconds (or whose worker is no
    longer alive) is cancelled, so idle streams cannot starve status, tasks and honest workers.

    A flood of silent streams cannot lock newcomers out: while all ``limit`` are taken, a new stream
    takes the place of one that sent no beat for ``silent_s`` (two heartbeat intervals: a worker
    beats every interval, and at once when its stream opens). With TLS each credential holds at most
    ``per_credential`` streams, and a new stream displaces only a stream of a credential holding at
    least two more than its own (any, for a credential holding none; the most first, then the one
    silent longest): a newcomer gets in once a flood's streams fall silent, unless ``limit``
    credentials hold one each, while a flood cannot displace itself to keep the table churning.
    Streams that beat are never displaced. On plain text there are no credentials to tell a
    newcomer from a flood: any silent stream may be displaced, and a worker refused a stream asks
    again every two intervals."""

    def __init__(
        self, limit: int, timeout: float, scheduler: Scheduler, silent_s: float = 1.0, per_credential: int = 4
    ):
        self.limit, self.timeout, self.scheduler = limit, timeout, scheduler
        self.silent_s, self.per_credential = min(silent_s, timeout), per_credential
        self._lock = threading.Lock()
        self._open: dict[int, list] = {}  # id(context) -> [context, last beat (or open), worker id, who]
        self._reaper: threading.Thread | None = None
        self._stopped = threading.Event()
        self.refused = 0
        self.cancelled = 0
        self.displaced = 0  # silent streams cancelled to make room for a new one
        self._warn_refused, self._warn_displaced = Throttled(), Throttled()
        self.bound = 0  # streams that named their worker (sent a first beat that was accepted)

    def open(self, context, who: str | None = None) -> bool:
        """Admit a stream (``who``: its credential's name with TLS); False: refused."""
        now = time.monotonic()
        with self._lock:
            held: dict[str | None, int] = {}
            for entry in self._open.values():
                held[entry[3]] = held.get(entry[3], 0) + 1
            mine = held.get(who, 0)
            victim = None
            if who is not None and mine >= self.per_credential:
                return self._refuse(f"credential {who!r} holds {mine}")
            if len(self._open) >= self.limit:
                silent = [
                    e
                    for e in self._open.values()
                    if now - e[1] > self.silent_s
                    and (who is None or held[e[3]] >= mine + 2 or mine == 0 < held[e[3]])
                ]
                if not silent:
                    return self._refuse(f"{self.limit} are open, none silent")
                victim = min(silent, key=lambda e: (-held[e[3]], e[1]))
                del self._open[id(victim[0])]
                self.displaced += 1
            self._open[id(context)] = [context, now, None, who]
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="cleave-stream-reaper", daemon=True)
                self._reaper.start()
        if victim is not None:
            victim[0].cancel()
            self._warn_displaced(
                "all %d heartbeat streams taken: cancelled one silent for %.1f s to admit a new one",
                self.limit,
                now - victim[1],
            )
        return True

    def _refuse(self, why: str) -> bool:
        self.refused += 1
        self._warn_refused("refused a heartbeat stream: %s", why)
        return False

    def bind(self, context, worker_id: int) -> bool:
        with self._lock:
            if any(entry[2] == worker_id for entry in self._open.values()):
                return False
            entry = self._open.get(id(context))
            if entry is None:  # displaced before its first beat
                return False
            entry[2] = worker_id
            self.bound += 1
            return True

    def beat(self, context) -> None:
        with self._lock:
            entry = self._open.get(id(context))
            if entry is not None:  # (gone: displaced or reaped; its call is being cancelled)
                entry[1] = time.monotonic()

    def close(self, context) -> None:
        with self._lock:
            self._open.pop(id(context), None)

    def count(self) -> int:
        with self._lock:
            return len(self._open)

    def stop(self) -> None:
        self._stopped.set()

    def _reap(self) -> None:
        while not self._stopped.wait(min(0.25, self.timeout / 4)):
            now = time.monotonic()
            alive = {w.worker_id for w in self.scheduler.alive()}
            with self._lock:
                stale = [
                    entry[0]
                    for entry in self._open.values()
                    if now - entry[1] > self.timeout or (entry[2] is not None and entry[2] not in alive)
                ]
            for context in stale:
                self.close(context)
                self.cancelled += 1
                context.cancel()
            if stale:
                log.info("cancelled %d idle heartbeat streams", len(stale))


class CleaveService(pb_grpc.CleaveServicer):
    """The gRPC face of a :class:`ParameterServer`: registration, heartbeats, tasks, results, status."""

    def __init__(self, server: ParameterServer):
        self.ps = server
        self.scheduler = server.scheduler
        self.cpu = HandlerCpu()
        self._bound: dict[int, bytes | None] = {}  # worker id -> the certificate it registered with
        self._bound_lock = threading.Lock()
        self.streams = HeartbeatStreams(
            server.config.heartbeat_streams or max(1, server.config.rpc_threads * 3 // 4),
            server.config.scheduler.heartbeat_timeout_s,
            server.scheduler,
            silent_s=2 * server.config.heartbeat_interval_s,
        )

    def _admitted(self, context) -> str | None:
        """The caller's certificate name; a revoked credential is refused (its workers removed)."""
        who = peer_name(context)
        revocations = self.ps.revocations
        if revocations is not None:
            pem = peer_certificate(context)
            if revocations.revoked(who, pem):
                whole_name = who in revocations.names
                ids = None if whole_name or pem is None else self._bound_to(pem)
                self.scheduler.revoke(who, ids)
                what = "" if whole_name else " (this certificate; the name's other credentials still work)"
                log.warning("refused: a revoked credential of %r%s", who, what)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, f"this credential of {who!r} was revoked")
        return who

    def _bound_to(self, pem: bytes) -> set[int]:
        """The workers that registered with this certificate."""
        with self._bound_lock:
            return {wid for wid, cert in self._bound.items() if cert == pem}

    def _own(self, context, worker_id: int) -> None:
        """With TLS, a call naming a worker must come with that worker's certificate."""
        if not self.ps.config.tls:
            return
        who = self._admitted(context)
        worker = self.scheduler.workers.get(worker_id)
        if worker is not None and worker.name != who:
            log.warning("refused: the certificate of %r acted for worker %r", who, worker.name)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"this credential is {who!r}'s, not this worker's")
        with self._bound_lock:
            bound = self._bound.get(worker_id)
        if worker is not None and bound is not None and bound != peer_certificate(context):
            log.warning("refused: another credential of %r acted for its worker", who)
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "this worker registered with another credential",
            )

    def Register(self, request, context):
        if self.ps.config.tls and request.name != (who := self._admitted(context)):
            log.warning("refused: the certificate of %r tried to register as %r", who, request.name[:64])
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"this credential is for {who!r}; register with --name {who}",
            )
        if request.protocol_version != PROTOCOL_VERSION:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"worker speaks cleave protocol {request.protocol_version}, this server speaks "
                f"{PROTOCOL_VERSION}; install the same frugalml version on both",
            )
        p = request.profile
        profile = Profile(p.down_bytes_per_s, p.up_bytes_per_s, p.flops, p.memory_bytes, p.device_class)
        try:
            if profile.device_class and profile.device_class not in self.ps.catalogue:
                raise InvalidInputError(
                    f"worker {request.name!r} declares device class {profile.device_class!r}, which is not "
                    f"in the device catalogue ({', '.join(self.ps.catalogue)})"
                )
            worker = self.scheduler.register(
                request.name, profile, request.ByteSize(), credentialed=self.ps.config.tls
            )
        except InvalidInputError as exc:
            exhausted = "memory" in str(exc) or isinstance(exc, TooManyRegistrationsError)
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if exhausted else grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, str(exc))
        if self.ps.config.tls:  # the session is bound to this certificate, not only to its name
            with self._bound_lock:
                if len(self._bound) >= 1024:
                    live = self.scheduler.workers
                    self._bound = {w: c for w, c in self._bound.items() if w in live}
                self._bound[worker.worker_id] = peer_certificate(context)
        log.info("worker %s joined", request.name)  # its id is a session secret: never logged
        reply = pb.RegisterReply(
            worker_id=worker.worker_id,
            protocol_version=PROTOCOL_VERSION,
            heartbeat_interval_s=self.ps.config.heartbeat_interval_s,
            model=self.ps.config.train.model,
        )
        self.scheduler.count_control(worker.worker_id, reply.ByteSize())
        return reply

    def Heartbeats(self, request_iterator, context):
        worker_id = None
        if not self.streams.open(context, peer_name(context) if self.ps.config.tls else None):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "too many heartbeat streams are open; try again later"
            )
        try:
            for beat in request_iterator:
                if worker_id is None:
                    self._own(context, beat.worker_id)
                    if not self.streams.bind(context, beat.worker_id):
                        context.abort(
                            grpc.StatusCode.ALREADY_EXISTS, "this worker already has a heartbeat stream"
                        )
                elif self.ps.revocations is not None:
                    self._admitted(context)  # a revoked credential's stream ends at its next beat
                worker_id = beat.worker_id
                self.streams.beat(context)
                try:
                    finished = self.scheduler.heartbeat(worker_id, beat.ByteSize())
                except (UnknownWorkerError, ExcludedWorkerError) as exc:
                    context.abort(_status_code(exc), str(exc))
                yield pb.Command(shutdown=finished, reason="training finished" if finished else "")
        except grpc.RpcError:  # the stream was cancelled (idle, or its worker is gone)
            pass
        finally:
            self.streams.close(context)
            if worker_id is not None:
                self.scheduler.worker_lost(worker_id)

    def PullTask(self, request, context):
        with self.cpu.count("pull") as handed:
            yield from self._pull_task(request, context, handed)

    def _pull_task(self, request, context, handed: list[bool]):
        self._own(context, request.worker_id)
        try:
            task = self.scheduler.next_task(request.worker_id, min(max(request.wait_s, 0.0), 10.0))
        except (UnknownWorkerError, ExcludedWorkerError) as exc:
            context.abort(_status_code(exc), str(exc))
        if task is None or task == SHUTDOWN:
            reply = pb.TaskChunk(kind=pb.IDLE if task is None else pb.SHUTDOWN)
            self.scheduler.count_control(request.worker_id, reply.ByteSize() + request.ByteSize())
            yield reply
            return
        handed[0] = True
        header = pb.TaskHeader(
            task_id=task.task_id,
            gemm_id=task.gemm_id,
            tile_index=task.tile_index,
            step=task.step,
            a=meta_of(task.a),
            b=meta_of(task.b),
        )
        model_bytes = task.tile.bytes_down(task.a.dtype.itemsize)
        finished = False
        try:
            payload = to_bytes(task.a) + to_bytes(task.b)
            for i, chunk in enumerate(split_chunks(payload, self.ps.config.chunk_bytes)):
                message = pb.TaskChunk(kind=pb.TASK, header=header if i == 0 else None, data=bytes(chunk))
                first = i == 0
                self.scheduler.count_down(
                    request.worker_id,
                    message.ByteSize() + (request.ByteSize() if first else 0),
                    model_bytes if first else 0,
                )
                yield message
            finished = True
        finally:
            if not finished:
                self.scheduler.abandon(request.worker_id, task.task_id)

    def PushResult(self, request_iterator, context):
        with self.cpu.count("push") as counted:
            counted[0] = True
            return self._push_result(request_iterator, context)

    def _push_result(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or not first.HasField("header"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a result stream must start with a header chunk")
        header = first.header
        self._own(context, header.worker_id)
        # bytes are checked against the tile as they arrive: a push cannot grow the server past it
        expected = self.scheduler.result_bytes(header.worker_id, header.task_id)
        parts, nbytes, data = [first.data], first.ByteSize(), len(first.data)
        for chunk in request_iterator:
            if chunk.HasField("header"):
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "only the first result chunk may carry a header"
                )
            data += len(chunk.data)
            nbytes += chunk.ByteSize()
            if expected is not None and data > expected:
                log.warning(
                    "refused: worker %d pushed more than task %d's tile", header.worker_id, header.task_id
                )
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"the result is larger than its tile ({expected} bytes)"
                )
            if expected is not None:
                parts.append(chunk.data)
        try:
            if expected is None:  # stale or unknown task: the bytes were read and dropped
                if data != (want := nbytes_of(header.c)):
                    raise InvalidInputError(
                        f"the result needs {want} bytes, got {data}: the message was truncated or malformed"
                    )
                accepted, reason = self.scheduler.stale(header.worker_id, header.task_id, nbytes, data)
            else:
                c = from_bytes(header.c, b"".join(parts))
                accepted, reason = self.scheduler.complete(header.worker_id, header.task_id, c, nbytes)
        except (InvalidInputError, UnknownWorkerError, ExcludedWorkerError) as exc:
            context.abort(_status_code(exc), str(exc))
        reply = pb.PushReply(accepted=accepted, reason=reason)
        self.scheduler.count_control(header.worker_id, reply.ByteSize())
        return reply

    def Leave(self, request, context):
        self._own(context, request.worker_id)
        self.scheduler.leave(request.worker_id)
        return pb.LeaveReply()

    def Status(self, request, context):
        if self.ps.config.tls:
            self._admitted(context)
        return self.ps.status(request.offset, request.limit)


class ParameterServer:
    """Trains :class:`TrainConfig`'s model with every tileable GEMM done by remote workers.

    Examples
    --------
    >>> ps = ParameterServer(ServerConfig(port=0))   # doctest: +SKIP
    >>> address = ps.start(); metrics = ps.train(); ps.stop()   # doctest: +SKIP
    """

    def __init__(self, config: ServerConfig):
        _check_config(config)
        self.config = config
        torch.set_num_threads(check_threads(config.torch_threads, "torch_threads") or 1)
        cfg = config.train
        self.model, self.optimizer, self.data = build(cfg, load_corpus(config.data))
        gpt = cfg.gpt
        dtype_bytes = 8 if cfg.dtype == "float64" else 4
        depths = (gpt.n_embd, 4 * gpt.n_embd, 3 * gpt.n_embd, gpt.vocab_size, cfg.batch_size * gpt.block_size)
        self.catalogue = load_catalogue()
        self.plan = None if config.plan is None else check_plan(read_plan(config.plan), cfg, config.plan)
        self.scheduler = Scheduler(
            config.scheduler,
            required_memory=max(smallest_tile_memory(k, dtype_bytes) for k in depths),
            plan=self.plan,
        )
        attach_executor(self.model, self.scheduler)
        self.state = "waiting"
        self.start_step = 0
        self.losses: list[float] = []
        self.step_seconds: list[float] = []
        self.step_end_times: list[float] = []
        self.step_cpu: list[tuple[float, float]] = []  # (process, training thread) CPU seconds per step
        self.service: CleaveService | None = None
        if config.checkpoint and Path(config.checkpoint).exists():
            self.start_step, self.losses = load_checkpoint(
                config.checkpoint, self.model, self.optimizer, config=cfg.to_dict()
            )
            self.step_seconds = [float("nan")] * self.start_step
            self.step_end_times = [float("nan")] * self.start_step
        self._server: grpc.Server | None = None
        self.address = ""
        self.revocations = None if config.revoked is None else RevocationList(config.revoked)

    def start(self) -> str:
        """Start serving; returns ``host:port`` (the real port when 0 asked for a free one)."""
        pool = futures.ThreadPoolExecutor(max_workers=self.config.rpc_threads)
        # calls beyond the threads are refused at once instead of queueing behind idle streams
        self._server = grpc.server(
            pool, options=grpc_options(), maximum_concurrent_rpcs=self.config.rpc_threads
        )
        self.service = CleaveService(self)
        pb_grpc.add_CleaveServicer_to_server(self.service, self._server)
        port = self._listen(f"{self.config.host}:{self.config.port}")
        if port == 0:
            raise InvalidInputError(
                f"cannot listen on {self.config.host}:{self.config.port}; is the port taken?"
            )
        self._server.start()
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "::", "") else self.config.host
        self.address = f"{host}:{port}"
        if self.config.address_file:
            with atomic_write(self.config.address_file, "w") as f:
                f.write(self.address)
        return self.address

    def _listen(self, address: str) -> int:
        """TLS with client certificates when configured; plain text only on loopback, or knowingly."""
        assert self._server is not None
        cfg = self.config
        if cfg.tls:
            assert cfg.tls_cert and cfg.tls_key and cfg.tls_ca
            verbosity = os.environ.get("GRPC_VERBOSITY", "").upper()
            if verbosity in ("WARNING", "ERROR", "NONE"):  # refused handshakes never reach the service
                log.warning(
                    "GRPC_VERBOSITY=%s hides gRPC's line for each refused TLS handshake (plain-text "
                    "clients, certificates from another CA or expired); unset it to see them",
                    verbosity,
                )
            return self._server.add_secure_port(
                address, server_credentials(cfg.tls_cert, cfg.tls_key, cfg.tls_ca)
            )
        loopback = cfg.host in ("127.0.0.1", "::1", "localhost")
        if not loopback and not cfg.insecure:
            raise InvalidInputError(
                f"serving plain text on {cfg.host} lets anyone on that network read and forge tiles; "
                "give --tls-cert, --tls-key and --ca (see 'frugal cleave certs'), or --insecure on a "
                "network you trust"
            )
        if cfg.insecure:
            log.warning(
                "serving PLAIN TEXT on %s (--insecure): no encryption, no authentication of workers",
                cfg.host,
            )
        return self._server.add_insecure_port(address)

    def train(self) -> dict:
        """Run the remaining steps (resuming after a checkpoint); returns the metrics."""
        cfg = self.config.train
        self.scheduler.wait_for_workers(self.config.min_workers)
        self.state = "training"
        for step in range(self.start_step, cfg.steps):
            start, cpu_start, thread_start = time.perf_counter(), time.process_time(), time.thread_time()
            self.scheduler.begin_step(step)
            while True:
                self.optimizer.zero_grad(set_to_none=True)
                x, y = self.data.batch(step, cfg.batch_size, cfg.seed)
                loss = self.model(x, y)
                loss.backward()
                if not self.scheduler.take_tainted():
                    break
                log.warning("step %d used tiles of an excluded worker; redoing it", step)
            self.optimizer.step()
            self.scheduler.end_step()
            self.losses.append(float(loss.detach()))
            self.step_seconds.append(time.perf_counter() - start)
            self.step_end_times.append(time.time())
            self.step_cpu.append((time.process_time() - cpu_start, time.thread_time() - thread_start))
            done = step + 1
            if self.config.checkpoint and (done % self.config.checkpoint_every == 0 or done == cfg.steps):
                save_checkpoint(
                    self.config.checkpoint,
                    self.model,
                    self.optimizer,
                    step=done,
                    losses=self.losses,
                    config=cfg.to_dict(),
                )
            log.info("step %d loss %.4f %.3f s", step, self.losses[-1], self.step_seconds[-1])
        self.state = "done"
        self.scheduler.finish()
        metrics = self.metrics()
        if self.config.metrics:
            with atomic_write(self.config.metrics, "w") as f:
                json.dump(metrics, f, indent=2)
        return metrics

    def stop(self) -> None:
        """Let workers hear that training is over (up to ``linger_s``), then stop serving."""
        if self._server is None:
            return
        self.scheduler.finish()
        end = time.monotonic() + self.config.linger_s
        while time.monotonic() < end and self.scheduler.alive():
            time.sleep(0.05)
        self._server.stop(grace=0.5).wait()
        self._server = None
        if self.service is not None:
            self.service.streams.stop()

    def snapshot(self) -> dict:
        """Progress and per-worker counters as plain Python values (the status and the metrics file)."""
        sched = self.scheduler
        with sched.cond:
            workers = [
                {
                    "worker_id": w.worker_id,
                    "name": w.name,
                    "state": w.state,
                    "profile": asdict(w.profile),
                    "tiles_done": w.tiles_done,
                    "tiles_rejected": w.tiles_rejected,
                    "in_flight": len(w.in_flight),
                    "bytes_down": w.bytes_down,
                    "bytes_up": w.bytes_up,
                    "control_bytes": w.control_bytes,
                    "model_bytes_down": w.model_bytes_down,
                    "model_bytes_up": w.model_bytes_up,
                }
                for w in sched.workers.values()
            ]
            return {
                "protocol_version": PROTOCOL_VERSION,
                "model": self.config.train.model,
                "state": self.state,
                "step": len(self.losses),
                "total_steps": self.config.train.steps,
                "losses": list(self.losses),
                "step_seconds": list(self.step_seconds),
                "workers": workers,
                "requeued_tiles": sched.requeued_tiles,
                "backup_tiles": sched.backup_tiles,
                "recovery_seconds": list(sched.recovery_seconds),
                "plan": sched.plan_note,
            }

    def status(self, offset: int = 0, limit: int = 0) -> pb.StatusReply:
        """One page of the snapshot for ``frugal cleave status`` (at most ``STATUS_PAGE`` workers of
        names <= 64 bytes, the last ``STATUS_PAGE`` recovery times: bounded whatever the fleet),
        without worker ids: an id is the session's secret (on plain text, whoever knows it may push
        in that worker's name)."""
        snap = self.snapshot()
        page = snap["workers"][offset : offset + (min(limit, STATUS_PAGE) or STATUS_PAGE)]
        workers = [
            pb.WorkerStatus(**{**w, "worker_id": 0, "profile": pb.Profile(**w["profile"])}) for w in page
        ]
        return pb.StatusReply(
            **{
                **snap,
                "workers": workers,
                "recovery_seconds": snap["recovery_seconds"][-STATUS_PAGE:],
                "workers_total": len(snap["workers"]),
                "workers_offset": min(offset, len(snap["workers"])),
            }
        )

    def metrics(self) -> dict:
        """The snapshot plus the wall-clock end time of every step and the configuration."""
        return {
            **self.snapshot(),
            "step_end_times": list(self.step_end_times),
            "gemm_seconds": {k: list(v) for k, v in self.scheduler.gemm_seconds.items()},
            "split_tiles": self.scheduler.split_tiles,  # tiles cut by rows for workers that missed deadlines
            "sub_tiles": self.scheduler.sub_tiles(),  # row sub-tiles given, by worker name
            "ps_cpu": {
                "process_s_per_step": [c[0] for c in self.step_cpu],
                "training_thread_s_per_step": [c[1] for c in self.step_cpu],
                "handlers": self.service.cpu.snapshot() if self.service is not None else {},
            },
            "config": {"train": self.config.train.to_dict(), "scheduler": asdict(self.config.scheduler)},
        }


def _check_config(config: ServerConfig) -> None:
    """One line for a setting no server can run with (before anything starts)."""
    if not 0 <= config.port <= 65535:
        raise InvalidInputError(f"--port must be in 0..65535 (0: any free port), got {config.port}")
    timeout = config.scheduler.heartbeat_timeout_s
    if not (math.isfinite(timeout) and timeout > 0):
        raise InvalidInputError(f"--heartbeat-timeout must be a positive number of seconds, got {timeout}")
    if not 1 <= config.rpc_threads <= 4096:
        raise InvalidInputError(f"--rpc-threads must be in 1..4096, got {config.rpc_threads}")
    if not 0 <= config.heartbeat_streams <= config.rpc_threads:
        raise InvalidInputError(
            f"--heartbeat-streams must be in 0..{config.rpc_threads} (--rpc-threads; 0: three quarters "
            f"of them), got {config.heartbeat_streams}"
        )
    if config.tls and config.insecure:  # (reading .tls checks the TLS files come as a set)
        raise InvalidInputError("--insecure and TLS contradict each other; give one")
    if config.revoked is not None and not config.tls:
        raise InvalidInputError("--revoked names certificates: it needs TLS (--tls-cert, --tls-key, --ca)")


def check_plan(plan: ExecutablePlan, cfg: TrainConfig, path: str) -> ExecutablePlan:
    """``plan`` if it was made for exactly what this server trains, else one line saying what differs."""
    ours = {
        "model": cfg.model,
        "batch": cfg.batch_size,
        "seq": cfg.gpt.block_size,
        "dtype": cfg.dtype,
        "tasks_in_flight": TASKS_IN_FLIGHT,
    }
    theirs = {
        "model": plan.model,
        "batch": plan.batch,
        "seq": plan.seq,
        "dtype": plan.dtype,
        "tasks_in_flight": plan.tasks_in_flight,
    }
    if ours != theirs:
        differ = ", ".join(f"{k} {theirs[k]} (server: {ours[k]})" for k in ours if ours[k] != theirs[k])
        raise InvalidInputError(
            f"plan {path} is for another training run: {differ}; make it with 'frugal cleave plan --model "
            f"{cfg.model} --batch {cfg.batch_size} --seq {cfg.gpt.block_size} --dtype {cfg.dtype} "
            f"--json {path}'"
        )
    return plan


def serve(config: ServerConfig) -> dict:
    """Start a PS, train to the end, stop; returns the metrics (``frugal cleave serve``)."""
    ps = ParameterServer(config)
    ps.start()
    log.info("cleave parameter server listening on %s", ps.address)
    try:
        return ps.train()
    finally:
        ps.stop()
