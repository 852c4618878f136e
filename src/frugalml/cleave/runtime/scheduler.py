"""The PS's task queues: each GEMM's tiles are pulled by workers, re-queued, backed up, verified, counted.

Training calls :meth:`Scheduler.matmul` (it is the :class:`~.gemm.GemmExecutor`); the gRPC service
calls the worker-facing methods from its threads. One lock guards all state; Freivalds checks and
byte copies run outside it.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from frugalml.cleave.runtime.verify import freivalds_check
from frugalml.cleave.tiling import Tile, TileGrid, choose_grid, grid_cost, split_gemm
from frugalml.common.errors import FrugalError, InvalidInputError, ServiceUnavailableError

if TYPE_CHECKING:
    from frugalml.cleave.planfile import ExecutablePlan

log = logging.getLogger("frugalml.cleave.runtime")


class UnknownWorkerError(FrugalError):
    """A request names a worker the PS does not know (never registered, or declared lost)."""


class ExcludedWorkerError(FrugalError):
    """A request comes from a worker the PS excluded for returning a wrong tile."""


class TooManyRegistrationsError(InvalidInputError):
    """A name (credential) or the whole server took too many registrations in the last minute."""


class Throttled:
    """A warning for a kind of refusal: the first, then at most one line every ``every`` seconds
    (with the count so far), so a flood of refused calls is a line, not a line per call."""

    def __init__(self, every: float = 10.0):
        self.every, self.count, self._last = every, 0, -math.inf

    def __call__(self, message: str, *args) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            log.warning(message + " (%d so far)", *args, self.count)


@dataclass(frozen=True)
class Profile:
    """A device as it describes itself: links in bytes/s (0 = unknown), FLOP/s, memory in bytes,
    and its class in the device catalogue ("": none declared)."""

    down_bytes_per_s: float = 0.0
    up_bytes_per_s: float = 0.0
    flops: float = 0.0
    memory_bytes: int = 1 << 30
    device_class: str = ""

    def seconds_for(self, tile: Tile, dtype_bytes: int) -> float:
        """Expected time for ``tile``: download + compute + upload at the advertised speeds."""
        terms = (
            (tile.bytes_down(dtype_bytes), self.down_bytes_per_s),
            (tile.flops, self.flops),
            (tile.bytes_up(dtype_bytes), self.up_bytes_per_s),
        )
        return sum(amount / rate for amount, rate in terms if rate > 0)


@dataclass
class WorkerState:
    """What the PS knows and has counted about one worker."""

    worker_id: int
    name: str
    profile: Profile
    last_seen: float
    state: str = "alive"  # alive, lost, left, excluded
    tiles_done: int = 0
    tiles_rejected: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    control_bytes: int = 0
    model_bytes_down: int = 0
    model_bytes_up: int = 0
    in_flight: set[int] = field(default_factory=set)
    unverified_this_step: bool = False
    misses: int = 0  # deadlines missed or tiles never returned, in a row (an accepted tile resets it)
    sub_tiles: int = 0  # row sub-tiles it was given
    shrink: int = 0  # its tiles are cut by rows to 1/2**shrink (+1 per miss, -1 per tile in half its time)
    owed: dict[int, float] = field(default_factory=dict)  # copies out when their GEMM ended -> deadline
    departed: float = 0.0  # when it was lost or left (monotonic; departed workers are pruned)


@dataclass
class Assignment:
    """One copy of one tile handed to one worker."""

    task_id: int
    tile_index: int
    worker_id: int
    started: float
    deadline: float
    expired: bool = False


@dataclass
class GemmJob:
    """The task queue of one GEMM ``c = a @ b``."""

    gemm_id: int
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    tiles: list[Tile]
    pending: deque[int]
    done_by: list[int | None]
    remaining: int
    assignments: dict[int, Assignment] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    quota: dict[str, int] | None = None  # tiles each device class may still take (a plan's shares)
    children: dict[int, list[int]] = field(default_factory=dict)  # a tile cut by rows -> its sub-tiles
    parent: dict[int, int] = field(default_factory=dict)

    def covered(self, index: int) -> bool:
        """Whether tile ``index`` is in ``c``: accepted whole, or every one of its sub-tiles."""
        kids = self.children.get(index)
        if kids is None:
            return self.done_by[index] is not None
        return all(self.covered(kid) for kid in kids)

    def leaves(self, index: int) -> list[int]:
        """The tiles that make up ``index`` and are not cut further (``[index]`` if it is not cut)."""
        kids = self.children.get(index)
        return [index] if kids is None else [leaf for kid in kids for leaf in self.leaves(kid)]

    def root_rows(self, index: int) -> int:
        """Rows of the grid's tile that ``index`` was cut from."""
        while index in self.parent:
            index = self.parent[index]
        return self.tiles[index].rows


@dataclass(frozen=True)
class Task:
    """What a worker receives: the tile's rows of ``a`` and columns of ``b``."""

    task_id: int
    gemm_id: int
    tile_index: int
    step: int
    tile: Tile
    a: np.ndarray
    b: np.ndarray


SHUTDOWN = "shutdown"
MAX_NAME_BYTES = 64


@dataclass(frozen=True)
class SchedulerConfig:
    """Knobs of the task queues (defaults suit a LAN of phones; tests shorten the timeouts)."""

    tiles_per_worker: int = 1
    verify_rate: float = 1.0
    heartbeat_timeout_s: float = 3.0
    speculative: bool = True
    backup_factor: float = 2.0
    backup_min_s: float = 0.05
    min_deadline_s: float = 5.0
    deadline_slack: float = 10.0
    min_gemm_flops: float = 0.0
    seed: int = 0  # the training seed; verification draws from a per-run secret instead (see Scheduler)
    trusted_workers: bool = False  # allows verify_rate < 1 (tiles of a worker caught late are not redone)
    max_in_flight: int = 2  # tiles one worker may hold at once (1 once it missed a deadline)
    max_misses: int = 3  # deadlines missed in a row before a worker is excluded
    registrations_per_name: int = 10  # per minute, per name (with TLS: per credential)
    registrations_per_minute: int = 600  # all names together
    keep_departed: int = 256  # lost and left workers kept for status; older ones are forgotten
    min_tile_rows: int = 8  # a slow worker's tiles are cut by rows down to this many (not below)

    def __post_init__(self):
        if not 0.0 <= self.verify_rate <= 1.0:
            raise InvalidInputError(f"verify_rate must be in [0, 1], got {self.verify_rate}")
        if self.verify_rate < 1.0 and not self.trusted_workers:
            raise InvalidInputError(
                f"--verify-rate {self.verify_rate:g} leaves tiles unchecked, and the tiles a worker "
                "returned in earlier steps before it was caught are not recomputed; check every tile "
                "(--verify-rate 1), or pass --trusted-workers"
            )
        for knob, low, high in LIMITS:
            value = getattr(self, knob)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidInputError(
                    f"--{knob.replace('_', '-')} must be an integer in {low}..{high}, got {value!r}"
                )


# the limits a server takes from the command line: (field, least, most)
LIMITS = (
    ("tiles_per_worker", 1, 1024),
    ("max_in_flight", 1, 64),
    ("max_misses", 1, 1000),
    ("registrations_per_name", 1, 1_000_000),
    ("registrations_per_minute", 1, 1_000_000),
    ("keep_departed", 0, 1_000_000),
    ("min_tile_rows", 1, 1 << 20),
)


class Scheduler:
    """Hands GEMM tiles to pulling workers and assembles their results, exactly once per tile."""

    def __init__(
        self,
        config: SchedulerConfig,
        *,
        required_memory: int = 0,
        plan: ExecutablePlan | None = None,
        secret: bytes | None = None,
    ):
        """``secret``: what Freivalds' vectors and the choice of checked tiles are drawn from (default:
        32 bytes from ``os.urandom``, new for every server run and never sent anywhere, so a worker
        cannot predict which tiles are checked or with which vector; tests pass their own)."""
        self.config = config
        self._secret = int.from_bytes(secret if secret is not None else os.urandom(32), "little")
        self._excluded: set[str] = set()  # names (credentials) caught returning a wrong tile
        self.required_memory = required_memory
        self.plan = plan
        self.plan_note = "no plan: workers pull tiles" if plan is None else "following the plan"
        self.gemm_seconds: dict[str, list[float]] = {}  # wall time of each tiled GEMM, by name
        self.cond = threading.Condition()
        self.workers: dict[int, WorkerState] = {}
        self.job: GemmJob | None = None
        self.step = 0
        self.finished = False
        self.requeued_tiles = 0
        self.backup_tiles = 0
        self.split_tiles = 0  # tiles cut into row sub-tiles for workers that missed deadlines
        self.recovery_seconds: list[float] = []
        self._failures: list[float] = []
        self._tainted = False
        self._in_step = False
        self._next_task_id = 1
        self._next_gemm_id = 1
        self._joins: deque[tuple[float, str]] = deque()  # registrations of the last minute
        self._joins_by_name: dict[str, int] = {}
        self._refused_joins = Throttled()

    # ---- workers joining, beating, leaving ----------------------------------------------------
    def register(
        self, name: str, profile: Profile, nbytes: int = 0, *, credentialed: bool = False
    ) -> WorkerState:
        """Admit a worker; refuses one whose memory cannot hold the smallest tile of this model.

        ``credentialed``: the name is proven by a client certificate (TLS), so the name's first
        registration in a minute passes even when a flood took the minute's registrations: the CA
        bounds how many such names exist; on plain text anyone can make up new names."""
        if not name:
            raise InvalidInputError("a worker needs a non-empty name (--name)")
        self.register_limits(name)
        if profile.memory_bytes < self.required_memory:
            raise InvalidInputError(
                f"worker {name!r} has {profile.memory_bytes} bytes of memory, but the smallest tile "
                f"of this model needs {self.required_memory}; give it more (--memory) or use another device"
            )
        with self.cond:
            self._admit(name, time.monotonic(), credentialed)
            worker_id = secrets.randbits(63) | 1  # random: another client cannot guess a live worker's id
            while worker_id in self.workers:
                worker_id = secrets.randbits(63) | 1
            if name in self._excluded:  # by name: with TLS, the name is the worker's credential
                raise ExcludedWorkerError(
                    f"worker {name!r} was excluded: it returned a wrong tile; "
                    "registering again does not reset it"
                )
            worker = WorkerState(worker_id, name, profile, time.monotonic(), control_bytes=nbytes)
            self.workers[worker.worker_id] = worker
            self.cond.notify_all()
            return worker

    def _admit(self, name: str, now: float, credentialed: bool = False) -> None:
        """Registrations per name and in all per minute are capped; departed workers are pruned."""
        cfg = self.config
        while self._joins and now - self._joins[0][0] > 60.0:
            _, old = self._joins.popleft()
            self._joins_by_name[old] -= 1
            if not self._joins_by_name[old]:
                del self._joins_by_name[old]
        newcomer = credentialed and name not in self._joins_by_name
        if len(self._joins) >= cfg.registrations_per_minute and not newcomer:
            self._refused_joins(
                "refused registrations: more than %d in a minute", cfg.registrations_per_minute
            )
            raise TooManyRegistrationsError(
                f"this server takes at most {cfg.registrations_per_minute} registrations a minute; "
                "try again in a minute"
            )
        if self._joins_by_name.get(name, 0) >= cfg.registrations_per_name:
            self._refused_joins(
                "refused: %r registered %d times in a minute", name, cfg.registrations_per_name
            )
            raise TooManyRegistrationsError(
                f"worker {name!r} registered {cfg.registrations_per_name} times in the last minute; "
                "try again in a minute"
            )
        self._joins.append((now, name))
        self._joins_by_name[name] = self._joins_by_name.get(name, 0) + 1
        departed = [
            w for w in self.workers.values() if w.state in ("lost", "left", "revoked") and not w.in_flight
        ]
        if len(departed) > cfg.keep_departed:
            departed.sort(key=lambda w: w.departed)
            for worker in departed[: len(departed) - cfg.keep_departed]:
                del self.workers[worker.worker_id]

    def revoke(self, name: str | None, worker_ids: set[int] | None = None) -> None:
        """A credential was revoked: its live workers (those of ``name``, or only ``worker_ids``
        when one certificate of the name was revoked) leave as ``revoked`` (tiles re-queued)."""
        with self.cond:
            for worker in self.workers.values():
                chosen = worker_ids is None or worker.worker_id in worker_ids
                if worker.name == name and chosen and worker.state == "alive":
                    self._drop(worker, "revoked")

    def heartbeat(self, worker_id: int, nbytes: int = 0) -> bool:
        """Record a sign of life; returns whether training is over (the worker should leave)."""
        with self.cond:
            worker = self._active(worker_id)
            worker.last_seen = time.monotonic()
            worker.control_bytes += nbytes
            return self.finished

    def count_control(self, worker_id: int, nbytes: int) -> None:
        with self.cond:
            if worker_id in self.workers:
                self.workers[worker_id].control_bytes += nbytes

    def leave(self, worker_id: int) -> None:
        """A worker says goodbye; its in-flight tiles go back to the queue."""
        with self.cond:
            if worker_id in self.workers and self.workers[worker_id].state == "alive":
                self._drop(self.workers[worker_id], "left")

    def worker_lost(self, worker_id: int) -> None:
        """A worker's connection broke or it fell silent: re-queue its tiles, start a recovery clock."""
        with self.cond:
            worker = self.workers.get(worker_id)
            if worker is not None and worker.state == "alive":
                self._drop(worker, "lost")

    def sub_tiles(self) -> dict[str, int]:
        """Row sub-tiles given to each worker (by name) that got any."""
        with self.cond:
            out: dict[str, int] = {}
            for w in self.workers.values():
                if w.sub_tiles:
                    out[w.name] = out.get(w.name, 0) + w.sub_tiles
            return out

    def alive(self) -> list[WorkerState]:
        with self.cond:
            return [w for w in self.workers.values() if w.state == "alive"]

    def wait_for_workers(self, count: int, timeout: float | None = None) -> None:
        """Block until ``count`` workers are alive (or raise ServiceUnavailableError after ``timeout``)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while len([w for w in self.workers.values() if w.state == "alive"]) < count:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise ServiceUnavailableError(
                        f"only {len(self.alive())} of {count} workers joined within {timeout:.0f} s; "
                        "start more with 'frugal cleave worker --server HOST:PORT'"
                    )
                self.cond.wait(0.1 if left is None else min(left, 0.1))
                self._check_liveness(time.monotonic())

    # ---- the training side --------------------------------------------------------------------
    def matmul(self, a: np.ndarray, b: np.ndarray, name: str | None = None) -> np.ndarray:
        """``a @ b`` computed by the workers, tile by tile (small GEMMs stay on the PS).

        With a plan, the GEMM called ``name`` is cut by the plan's grid and each device class
        takes the plan's share of its tiles; otherwise (or when the fleet differs from the plan)
        the grid gives every live worker ``tiles_per_worker`` tiles and workers pull freely.
        """
        m, k = a.shape
        n = b.shape[1]
        if 2 * m * n * k < self.config.min_gemm_flops:
            return a @ b
        dtype_bytes = np.result_type(a, b).itemsize
        start = time.perf_counter()
        with self.cond:
            workers = self._wait_alive()
            tiles_wanted = len(workers) * self.config.tiles_per_worker
            memory = min(w.profile.memory_bytes for w in workers)
            planned = self._planned(name, (m, n, k), workers, memory, dtype_bytes)
        if planned is None:
            grid = choose_grid(m, n, k, tiles=tiles_wanted, max_memory=memory, dtype_bytes=dtype_bytes)
            quota = None
        else:
            grid, quota = planned
        tiles = split_gemm(m, n, k, grid_rows=grid.grid_rows, grid_cols=grid.grid_cols)
        with self.cond:
            job = GemmJob(
                self._next_gemm_id,
                a,
                b,
                np.empty((m, n), np.result_type(a, b)),
                tiles,
                deque(range(len(tiles))),
                [None] * len(tiles),
                len(tiles),
                quota=quota,
            )
            self._next_gemm_id += 1
            self.job = job
            self.cond.notify_all()
            while job.remaining:
                self.cond.wait(0.05)
                now = time.monotonic()
                self._check_liveness(now)
                self._check_deadlines(job, now)
                if job.remaining and not any(w.state == "alive" for w in self.workers.values()):
                    self._wait_alive()
            for assignment in job.assignments.values():  # copies still out are moot now
                holder = self.workers[assignment.worker_id]
                holder.in_flight.discard(assignment.task_id)
                if not assignment.expired:  # an expired copy was counted as a miss already
                    holder.owed[assignment.task_id] = assignment.deadline  # unreturned at its next pull,
                    # or returned after this deadline: a miss
            self.job = None
            self.gemm_seconds.setdefault(name or "?", []).append(time.perf_counter() - start)
        return job.c

    def begin_step(self, step: int) -> None:
        with self.cond:
            self.step = step
            self._in_step = True
            for worker in self.workers.values():
                worker.unverified_this_step = False

    def end_step(self) -> None:
        """Close the recovery clocks of failures seen during this step."""
        with self.cond:
            now = time.monotonic()
            self.recovery_seconds += [now - t for t in self._failures]
            self._failures.clear()
            self._in_step = False

    def take_tainted(self) -> bool:
        """Whether an excluded worker's unverified tiles fed this step (it must then be redone)."""
        with self.cond:
            tainted, self._tainted = self._tainted, False
            return tainted

    def finish(self) -> None:
        """Training is over: idle pulls and heartbeats now tell workers to leave."""
        with self.cond:
            self.finished = True
            self.cond.notify_all()

    # ---- the worker side ----------------------------------------------------------------------
    def next_task(self, worker_id: int, wait_s: float) -> Task | str | None:
        """A task for this worker, ``SHUTDOWN``, or None when nothing came within ``wait_s``."""
        end = time.monotonic() + wait_s
        with self.cond:
            while True:
                worker = self._active(worker_id)
                if worker.owed:  # it pulls again without returning what it held: those were misses
                    missed, worker.owed = len(worker.owed), {}
                    for _ in range(missed):
                        self._missed(worker_id)
                    worker = self._active(worker_id)
                now = time.monotonic()
                worker.last_seen = now
                if self.finished:
                    return SHUTDOWN
                job = self.job
                if job is not None and (task := self._assign(job, worker, now)) is not None:
                    break
                if now >= end:
                    return None
                self.cond.wait(end - now)
        tile = task.tile
        a = np.ascontiguousarray(job.a[tile.row_start : tile.row_stop])
        b = np.ascontiguousarray(job.b[:, tile.col_start : tile.col_stop])
        return Task(task.task_id, task.gemm_id, task.tile_index, task.step, tile, a, b)

    def count_down(self, worker_id: int, nbytes: int, model_bytes: int = 0) -> None:
        with self.cond:
            worker = self.workers[worker_id]
            worker.bytes_down += nbytes
            worker.model_bytes_down += model_bytes

    def abandon(self, worker_id: int, task_id: int) -> None:
        """A task's download broke off: put its tile back in the queue at once."""
        with self.cond:
            job = self.job
            if job is not None and (assignment := job.assignments.pop(task_id, None)) is not None:
                worker = self.workers[worker_id]
                worker.in_flight.discard(task_id)
                if not job.covered(assignment.tile_index) and assignment.tile_index not in job.children:
                    job.pending.appendleft(assignment.tile_index)
                    self.requeued_tiles += 1
                    if job.quota is not None:
                        cls = worker.profile.device_class
                        job.quota[cls] = job.quota.get(cls, 0) + 1
                self.cond.notify_all()

    def result_bytes(self, worker_id: int, task_id: int) -> int | None:
        """Data bytes of the tile ``task_id`` assigned to this worker (None: not its live task)."""
        with self.cond:
            job = self.job
            assignment = job.assignments.get(task_id) if job is not None else None
            if job is None or assignment is None or assignment.worker_id != worker_id:
                return None
            tile = job.tiles[assignment.tile_index]
            return tile.rows * tile.cols * job.c.dtype.itemsize

    def stale(self, worker_id: int, task_id: int, nbytes: int, model_bytes: int = 0) -> tuple[bool, str]:
        """A result for a task that is not (or no longer) this worker's: counted (``model_bytes``: its
        data, as the tiling model counts every result sent), not used."""
        with self.cond:
            worker = self._active(worker_id)
            worker.bytes_up += nbytes
            worker.model_bytes_up += model_bytes
            worker.last_seen = time.monotonic()
            worker.in_flight.discard(task_id)
            self._returned_late(worker, task_id)
            return False, "stale: this tile was already finished or reassigned"

    def register_limits(self, name: str) -> None:
        """Names are short (they travel in every status reply)."""
        if len(name.encode("utf-8", "replace")) > MAX_NAME_BYTES:
            raise InvalidInputError(f"a worker name is at most {MAX_NAME_BYTES} bytes, got {len(name)}")

    def complete(self, worker_id: int, task_id: int, c: np.ndarray, nbytes: int) -> tuple[bool, str]:
        """Accept a tile's result after Freivalds' check; a wrong one excludes its worker."""
        with self.cond:
            worker = self._active(worker_id)
            worker.bytes_up += nbytes
            worker.model_bytes_up += c.nbytes
            worker.last_seen = time.monotonic()
            job = self.job
            assignment = job.assignments.get(task_id) if job is not None else None
            if assignment is None or assignment.worker_id != worker_id:
                worker.in_flight.discard(task_id)
                self._returned_late(worker, task_id)
                return False, "stale: this tile was already finished or reassigned"
            tile = job.tiles[assignment.tile_index]
            if c.shape != (tile.rows, tile.cols) or c.dtype != job.c.dtype:
                self._release(job, worker, assignment, requeue=True)
                raise InvalidInputError(
                    f"result of task {task_id} is {c.dtype}{list(c.shape)}, expected "
                    f"{job.c.dtype}{[tile.rows, tile.cols]}"
                )
            verify = self.config.verify_rate >= 1.0 or (
                np.random.default_rng([self._secret, task_id]).random() < self.config.verify_rate
            )
        a = job.a[tile.row_start : tile.row_stop]
        b = job.b[:, tile.col_start : tile.col_stop]
        if verify:
            correct = freivalds_check(a, b, c, np.random.default_rng([self._secret, task_id, 1]))
        else:  # every tile: finite and within what its operands allow
            correct = plausible(a, b, c)
        with self.cond:
            if not correct:
                worker.tiles_rejected += 1
                self._drop(worker, "excluded")
                check = "Freivalds' check" if verify else "the bound its inputs put on it"
                return False, f"excluded: the tile failed {check}"
            if task_id not in job.assignments:
                return False, "stale: this tile was already finished or reassigned"
            self._release(job, worker, assignment, requeue=False)
            now = time.monotonic()
            covered = job.covered(assignment.tile_index)
            if not covered or now <= assignment.deadline:  # right (and in time, if no longer needed)
                worker.misses = 0
                if (
                    worker.shrink
                    and now - assignment.started < (assignment.deadline - assignment.started) / 2
                ):
                    worker.shrink -= 1  # it has time to spare: its tiles grow back
            if covered:
                worker.owed.pop(task_id, None)  # (its GEMM may have ended while it was checked)
                return False, "duplicate: a backup copy finished first"
            for leaf in job.leaves(assignment.tile_index):  # a tile cut since: fill its open sub-tiles
                if job.done_by[leaf] is None:
                    part = job.tiles[leaf]
                    rows = slice(part.row_start - tile.row_start, part.row_stop - tile.row_start)
                    job.c[part.row_start : part.row_stop, tile.col_start : tile.col_stop] = c[rows]
                    job.done_by[leaf] = worker_id
                    job.remaining -= 1
            job.durations.append(now - assignment.started)
            worker.tiles_done += 1
            worker.unverified_this_step |= not verify
            self.cond.notify_all()
            return True, "ok"

    # ---- internals (call with the lock held) --------------------------------------------------
    def _planned(
        self,
        name: str | None,
        shape: tuple[int, int, int],
        workers: list[WorkerState],
        memory: int,
        dtype_bytes: int,
    ) -> tuple[TileGrid, dict[str, int] | None] | None:
        """The plan's grid for GEMM ``name`` and each class's tile quota (None: no plan applies)."""
        if self.plan is None:
            return None
        planned = self.plan.gemm(name) if name else None
        m, n, k = shape
        if planned is None or planned.on_ps or planned.batch != 1:
            self.plan_note = f"pulling: GEMM {name or '?'} ({m}x{n}x{k}) is not in the plan"
            return None
        if (planned.m, planned.n, planned.k) == (m, n, k):
            grid = TileGrid(planned.grid_rows, planned.grid_cols)
        elif (planned.n, planned.m, planned.k) == (m, n, k):  # the same product, transposed
            grid = TileGrid(planned.grid_cols, planned.grid_rows)
        else:
            self.plan_note = (
                f"pulling: GEMM {name} is {m}x{n}x{k} here but "
                f"{planned.m}x{planned.n}x{planned.k} in the plan"
            )
            return None
        if grid_cost(m, n, k, grid, dtype_bytes=dtype_bytes).memory > memory:
            self.plan_note = f"pulling: a planned tile of {name} does not fit the smallest worker's memory"
            return None
        alive: dict[str, int] = {}
        for w in workers:
            alive[w.profile.device_class] = alive.get(w.profile.device_class, 0) + 1
        expected = {c: n for c, n in self.plan.classes.items() if n}
        if alive != expected:
            self.plan_note = (
                "plan grids, pulling: the fleet differs from the plan (plan "
                + ", ".join(f"{n} {c}" for c, n in sorted(expected.items()))
                + "; live "
                + ", ".join(f"{n} {c or 'undeclared'}" for c, n in sorted(alive.items()))
                + ")"
            )
            return grid, None
        self.plan_note = "following the plan"
        return grid, quotas(planned.shares, grid.tasks)

    def _active(self, worker_id: int) -> WorkerState:
        worker = self.workers.get(worker_id)
        if worker is None or worker.state in ("lost", "left", "revoked"):
            raise UnknownWorkerError(
                f"worker {worker_id} is not registered (or was declared lost); register again"
            )
        if worker.state == "excluded":
            raise ExcludedWorkerError(
                f"worker {worker.name!r} was excluded: it returned a tile that failed Freivalds' check"
            )
        return worker

    def _wait_alive(self) -> list[WorkerState]:
        while True:
            workers = [w for w in self.workers.values() if w.state == "alive"]
            if workers:
                return workers
            self.cond.wait(0.1)
            self._check_liveness(time.monotonic())

    def _assign(self, job: GemmJob, worker: WorkerState, now: float) -> _Picked | None:
        dtype_bytes = job.c.dtype.itemsize
        held = {job.assignments[t].tile_index for t in worker.in_flight if t in job.assignments}
        if len(held) >= (1 if worker.misses or worker.shrink else self.config.max_in_flight):
            return None  # it still holds its share: no more until it returns (or misses) them
        tile_index, skipped = None, []
        while job.pending:
            candidate = job.pending.popleft()
            if candidate in job.children or job.covered(candidate):  # cut into sub-tiles, or done
                continue
            if candidate in held:  # its own late copy: leave it for another worker
                skipped.append(candidate)
                continue
            tile_index = candidate
            break
        job.pending.extendleft(reversed(skipped))
        device_class = worker.profile.device_class
        if tile_index is not None and job.quota is not None:
            if job.quota.get(device_class, 0) <= 0:  # its class took its share: leave the tile
                job.pending.appendleft(tile_index)
                tile_index = None
            else:
                job.quota[device_class] -= 1
        if tile_index is not None and worker.shrink:
            tile_index = self._split(job, tile_index, worker)
        if tile_index is None and self.config.speculative and not worker.shrink:  # no backups from the slow
            tile_index = self._backup_candidate(job, held, now)
            if tile_index is not None:
                self.backup_tiles += 1
        if tile_index is None:
            return None
        tile = job.tiles[tile_index]
        budget = max(
            self.config.min_deadline_s,
            self.config.deadline_slack * worker.profile.seconds_for(tile, dtype_bytes),
        )
        assignment = Assignment(self._next_task_id, tile_index, worker.worker_id, now, now + budget)
        self._next_task_id += 1
        job.assignments[assignment.task_id] = assignment
        worker.in_flight.add(assignment.task_id)
        worker.sub_tiles += tile_index in job.parent
        return _Picked(assignment.task_id, job.gemm_id, tile_index, self.step, tile)

    def _split(self, job: GemmJob, index: int, worker: WorkerState) -> int:
        """Cut tile ``index`` by rows into sub-tiles of 1/2**shrink of its grid tile's rows (at least
        ``min_tile_rows``) for a worker that missed deadlines; returns the sub-tile it gets (the others
        go to the front of the queue). Each sub-tile is verified and written into ``c`` like a tile."""
        tile = job.tiles[index]
        target = max(self.config.min_tile_rows, -(-job.root_rows(index) >> min(worker.shrink, 30)))
        parts = -(-tile.rows // target)
        if parts < 2:
            return index
        base, extra = divmod(tile.rows, parts)
        kids, start = [], tile.row_start
        for i in range(parts):
            stop = start + base + (i < extra)
            kids.append(len(job.tiles))
            job.tiles.append(Tile(start, stop, tile.col_start, tile.col_stop, tile.k))
            job.done_by.append(None)
            job.parent[kids[-1]] = index
            start = stop
        job.children[index] = kids
        job.remaining += parts - 1
        job.pending.extendleft(reversed(kids[1:]))
        self.split_tiles += 1
        if job.quota is not None:
            job.quota = None
            self.plan_note = "plan grids, pulling: a slow worker's tiles are cut into sub-tiles"
        return kids[0]

    def _backup_candidate(self, job: GemmJob, held: set[int], now: float) -> int | None:
        """The longest-running unfinished tile, if it runs well past this GEMM's typical tile time."""
        patience = max(
            self.config.backup_min_s,
            self.config.backup_factor * statistics.median(job.durations) if job.durations else 0.0,
        )
        copies: dict[int, list[Assignment]] = {}
        for assignment in job.assignments.values():
            copies.setdefault(assignment.tile_index, []).append(assignment)
        candidates = [
            (min(a.started for a in group), index)
            for index, group in copies.items()
            if not job.covered(index)
            and index not in job.children
            and index not in held
            and len(group) < 2
            and now - min(a.started for a in group) > patience
        ]
        return min(candidates)[1] if candidates else None

    def _release(self, job: GemmJob, worker: WorkerState, assignment: Assignment, *, requeue: bool) -> None:
        job.assignments.pop(assignment.task_id, None)
        worker.in_flight.discard(assignment.task_id)
        index = assignment.tile_index
        if requeue and not job.covered(index) and index not in job.children:  # (sub-tiles queue apart)
            job.pending.append(index)
            self.requeued_tiles += 1
            if job.quota is not None:
                job.quota[worker.profile.device_class] = job.quota.get(worker.profile.device_class, 0) + 1

    def _drop(self, worker: WorkerState, state: str) -> None:
        worker.state = state
        worker.departed = time.monotonic()
        if state == "excluded":
            self._excluded.add(worker.name)
        job = self.job
        if job is not None and job.quota is not None and self.plan is not None:
            job.quota = None  # the fleet no longer matches the plan: everyone pulls
            self.plan_note = f"plan grids, pulling: worker {worker.name} is {state}"
        if job is not None:
            for task_id in list(worker.in_flight):
                if task_id in job.assignments:
                    self._release(job, worker, job.assignments[task_id], requeue=True)
            if state == "excluded":
                for index, by in enumerate(job.done_by):
                    if by == worker.worker_id:
                        job.done_by[index] = None
                        job.remaining += 1
                        job.pending.append(index)
                        self.requeued_tiles += 1
        worker.in_flight.clear()
        if state == "excluded" and worker.unverified_this_step:
            self._tainted = True
        if state == "lost" and self._in_step:
            self._failures.append(time.monotonic())
        self.cond.notify_all()

    def _check_liveness(self, now: float) -> None:
        for worker in list(self.workers.values()):
            if worker.state == "alive" and now - worker.last_seen > self.config.heartbeat_timeout_s:
                self._drop(worker, "lost")

    def _returned_late(self, worker: WorkerState, task_id: int) -> None:
        """A copy outlived by its GEMM came back: a miss if after its deadline."""
        deadline = worker.owed.pop(task_id, None)
        if deadline is not None and time.monotonic() > deadline:
            self._missed(worker.worker_id)

    def _missed(self, worker_id: int) -> None:
        owner = self.workers.get(worker_id)
        if owner is None or owner.state != "alive":
            return
        owner.misses += 1
        owner.shrink = min(owner.shrink + 1, 30)
        if owner.misses >= self.config.max_misses:
            log.warning("excluded worker %r: it missed %d deadlines in a row", owner.name, owner.misses)
            self._drop(owner, "excluded")
        else:
            log.info(
                "worker %r missed a deadline: it now gets 1 tile of 1/%d rows", owner.name, 1 << owner.shrink
            )

    def _check_deadlines(self, job: GemmJob, now: float) -> None:
        for assignment in list(job.assignments.values()):
            unfinished = not job.covered(assignment.tile_index)
            if not assignment.expired and now > assignment.deadline and unfinished:
                assignment.expired = True
                self._missed(assignment.worker_id)
                if assignment.task_id not in job.assignments:  # its worker was excluded: re-queued
                    continue
                if job.quota is not None:
                    job.quota = None
                    self.plan_note = "plan grids, pulling: a tile missed its deadline"
                if assignment.tile_index not in job.children:  # a tile cut since: its sub-tiles are queued
                    job.pending.append(assignment.tile_index)
                    self.requeued_tiles += 1
        if job.pending:
            self.cond.notify_all()


@dataclass(frozen=True)
class _Picked:
    task_id: int
    gemm_id: int
    tile_index: int
    step: int
    tile: Tile


def plausible(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> bool:
    """Whether ``c`` could be ``a @ b``: finite, and no entry above the Cauchy-Schwarz bound
    ``|c_ij| <= ||a_i|| ||b_j||`` (with a little room for rounding). O(mk + kn + mn)."""
    if not np.isfinite(c).all():
        return False
    rows = np.linalg.norm(np.asarray(a, dtype=np.float64), axis=1)
    cols = np.linalg.norm(np.asarray(b, dtype=np.float64), axis=0)
    return bool((np.abs(c) <= np.outer(rows, cols) * (1 + 1e-3) + 1e-30).all())


def quotas(shares: dict[str, float], tasks: int) -> dict[str, int]:
    """Tiles per class: ``shares`` of ``tasks`` rounded by largest remainder (they add up to ``tasks``).

    Examples
    --------
    >>> quotas({"phone": 0.25, "laptop": 0.75}, 6)
    {'phone': 2, 'laptop': 4}
    """
    total = sum(shares.values()) or 1.0
    exact = {c: tasks * s / total for c, s in shares.items()}
    out = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: exact[c] - out[c], reverse=True)[: tasks - sum(out.values())]:
        out[c] += 1
    return out
