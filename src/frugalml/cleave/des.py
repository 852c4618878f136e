"""Discrete-event simulator of a Cleave training step (numba; 10,000 devices in seconds).

Dataflow over (micro-batch, GEMM occurrence): each GEMM occurrence's tiles fall into parts, one per
group of micro-batches its tiling keeps apart (:func:`micro_batch_parts`), and a part's tiles join
their occurrence's queue as soon as the previous occurrence's parts holding the same micro-batches
are done and the PS has run their ops (the PS runs ops one at a time), so one micro-batch's next
GEMM overlaps another's tail (``SimConfig(lockstep=True)``: one part per occurrence, a barrier per
GEMM, the analytic model's schedule). Devices pull from the earliest occurrence with work they can
run and pipeline tasks: a task goes INGRESS (bytes over the downlink) -> COMPUTE (FLOPs, sometimes
a straggler) -> EGRESS (bytes over the uplink) -> one round trip, and a device runs each stage for
one task at a time (FIFO), pulling its next task one period (its slowest stage, see
:func:`~frugalml.cleave.costmodel.task_timing`) after the last, once its downlink is free and it
holds fewer tasks than its memory allows. Links follow real traces; devices leave and return
(Weibull sessions and absences) and a leaving device's in-flight tiles are re-queued; when no
queue has work, devices run backup copies of the slowest in-flight tiles and the first copy to
finish wins. Where the plan keeps a whole weight on devices, a device's first task of that weight
also downloads it, and the device keeps it (until it leaves) for the backward dX of the same layer.

Transfers integrate the device's trace over time. The PS NIC is shared in both directions
(egress: downloads; ingress: uploads) by weighted fair sharing: while the active transfers of one
direction ask for more than the NIC gives, each is slowed by the same factor (``capacity / sum of
their rates``, each rate fixed when the transfer starts).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from numba.core import types
from numba.experimental import structref

from frugalml.cleave.analytic import micro_batch_parts, stage_ps_seconds
from frugalml.cleave.devices import Pool
from frugalml.cleave.planner import Plan
from frugalml.common.errors import InvalidInputError
from frugalml.common.seeding import rng as make_rng

# event kinds (at equal times and ranks the lower kind goes first) and the phases of a task slot
_DONE, _UPLOAD_END, _COMPUTE_END, _DOWNLOAD_END, _KICK, _FAIL, _REJOIN, _STAGE_START = range(8)
_FREE, _DOWN, _WAIT_COMPUTE, _COMPUTE, _WAIT_UP, _UP, _ACK = range(7)
_INF = np.inf
# the PS NIC state ``ch``: one row per direction, one column per quantity
_EGRESS, _INGRESS = range(2)
_VCLOCK, _REAL_TIME, _SLOWDOWN, _DEMAND, _CAPACITY = range(5)
# the kernel's counters ``stats`` and its ``recovery`` sums
_TASKS, _REQUEUED, _BACKUPS, _BACKUPS_WON, _FAILURES, _EVENTS = range(6)
_RECOVERY_SECONDS, _RECOVERY_COUNT = range(2)


@dataclass(frozen=True)
class SimConfig:
    """What the simulator models; turn everything off to reproduce the analytic model exactly.

    Parameters
    ----------
    contention : bool
        Share the PS NIC among concurrent transfers (egress: downloads, ingress: uploads).
    churn : bool
        Devices leave and return (Weibull sessions / absences from the device classes).
    traces : bool
        Link bandwidth follows each device's real trace (needs a pool drawn with traces).
    backups : bool
        Backup copies of the slowest in-flight tiles at each GEMM's tail.
    straggler_prob, straggler_factor : float
        Chance that a task's compute is ``straggler_factor`` times slower (background load).
    churn_cycles : int
        Session/absence cycles drawn per device (a device stays up after the last one).
    lockstep : bool
        Every GEMM occurrence waits for all micro-batches of the one before (a barrier per GEMM, the
        analytic model's schedule) instead of running each micro-batch's next GEMM once its own
        inputs are done.
    ps_task_out_s, ps_task_in_s : float
        PS seconds of work per task handed out (before its download starts) and per result taken
        in (before the task counts as done), done one task after another: a PS that serves every
        device from one process (the networked runtime under Python's GIL). 0: not modelled.
    """

    contention: bool = True
    churn: bool = True
    traces: bool = True
    backups: bool = True
    straggler_prob: float = 0.02
    straggler_factor: float = 4.0
    churn_cycles: int = 16
    lockstep: bool = False
    ps_task_out_s: float = 0.0
    ps_task_in_s: float = 0.0

    @classmethod
    def ideal(cls) -> SimConfig:
        """No contention, churn, traces, stragglers or backups: the analytic model's world."""
        return cls(contention=False, churn=False, traces=False, backups=False, straggler_prob=0.0)


@dataclass
class SimResult:
    """What one simulated step produced."""

    seconds: float
    stage_end: np.ndarray  # end time of every GEMM occurrence (after its PS ops)
    busy: np.ndarray  # per device busy seconds
    tasks: int
    requeued: int
    backups: int
    backups_won: int
    failures: int
    events: int
    recovery_seconds: float  # mean time from a failure to its re-queued tile finishing (nan: none)


class _Stages(NamedTuple):
    """The kernel's read-only view of the GEMM occurrences (per-occurrence arrays) and their tasks."""

    plan: np.ndarray  # index into plan.gemm_plans (row of ``eligible``)
    tasks: np.ndarray
    parts: np.ndarray
    down: np.ndarray
    flops: np.ndarray
    up: np.ndarray
    mem: np.ndarray
    weight: np.ndarray
    key: np.ndarray
    ps: np.ndarray
    base: np.ndarray  # first global task id of each occurrence (one more entry: the total)
    part_base: np.ndarray  # first part of each occurrence (one more entry: the total)
    task_stage: np.ndarray  # occurrence of each global task id
    micro: int


class _Fleet(NamedTuple):
    """The kernel's read-only view of the devices, their links and what the simulator models."""

    eligible: np.ndarray  # (plan GEMM, device): may run its tiles
    flops: np.ndarray
    est_down: np.ndarray  # the cost model's (trace-effective) link rates
    est_up: np.ndarray
    memory: np.ndarray
    rtt: np.ndarray
    up_dur: np.ndarray  # (device, cycle): seconds up, then seconds away
    down_dur: np.ndarray
    n_slot: int
    contention: bool
    backups: bool
    straggler_prob: float
    straggler_factor: float
    ps_task_out: float  # PS seconds per task handed out and per result taken in (serial; 0: none)
    ps_task_in: float


class _World(NamedTuple):
    """What the kernel reads; it and :class:`_State` reach the kernel as numba structs with the same
    fields (``_WorldRef``, ``_StateRef``), so a handler call costs one reference count, not one per
    array."""

    stages: _Stages
    fleet: _Fleet
    links: _Links


# the kernel's scalar counters ``State.sc``
_N_REQUEUE, _N_IDLE, _OPEN_TASKS, _STAGES_DONE, _LO, _HI, _N_BACKUP, _BACKUP_POS, _BACKUP_BUILT = range(9)


class _State(NamedTuple):
    """Everything the kernel changes, by name (arrays; scalars live in ``sc`` and ``ps_free``)."""

    ch: np.ndarray  # PS NIC: per direction virtual clock, its real time, slow-down, demand, capacity
    sc: np.ndarray  # scalar counters, indexed by _N_REQUEUE ... _BACKUP_BUILT
    ps_free: np.ndarray  # [when the PS is free again of its ops, of its per-task work] (one at a time)
    # parts (micro-batch groups of an occurrence) and occurrences
    part_open: np.ndarray
    part_next: np.ndarray  # tasks pulled (fresh) per part
    part_done: np.ndarray
    part_ready: np.ndarray  # micro-batches ready per part
    avail: np.ndarray  # released, never pulled tasks per occurrence
    n_req: np.ndarray  # re-queued tasks waiting per occurrence
    parts_complete: np.ndarray
    stage_end: np.ndarray
    # devices
    alive: np.ndarray
    cycle: np.ndarray
    rank: np.ndarray
    by_rank: np.ndarray
    in_flight: np.ndarray
    down_busy: np.ndarray
    comp_busy: np.ndarray
    up_busy: np.ndarray
    next_pull: np.ndarray
    pull_pending: np.ndarray
    in_idle: np.ndarray
    pulls: np.ndarray
    busy_start: np.ndarray
    busy: np.ndarray
    period: np.ndarray
    holds: np.ndarray  # (device, key): resident weights each device keeps
    idle: np.ndarray  # stack of devices that found no work
    # task slots (device, slot)
    slot_task: np.ndarray
    slot_phase: np.ndarray
    slot_seq: np.ndarray
    slot_ver: np.ndarray
    slot_rate: np.ndarray
    slot_end: np.ndarray
    slot_fetch: np.ndarray  # this download also brings the resident weight
    backup_order: np.ndarray
    # tasks
    done: np.ndarray
    copies: np.ndarray
    holder: np.ndarray  # slots (d * n_slot + s) holding each copy
    requeue: np.ndarray
    requeued_at: np.ndarray
    stats: np.ndarray  # tasks, requeued, backups, backups won, failures, events
    recovery: np.ndarray  # total seconds from a failure to its lost tile finishing again, count


def _new_state(
    stages: _Stages, n_dev: int, n_slot: int, n_keys: int, egress: float, ingress: float
) -> _State:
    n_stage = len(stages.tasks)
    n_part = int(stages.part_base[-1])
    n_task = len(stages.task_stage)
    ch = np.zeros((2, 5))
    ch[:, _SLOWDOWN] = 1.0
    ch[_EGRESS, _CAPACITY] = egress
    ch[_INGRESS, _CAPACITY] = ingress
    sc = np.zeros(9, dtype=np.int64)
    sc[_LO], sc[_HI] = n_stage, -1  # occurrences that may hold tasks to pull

    def ints(n: int | tuple[int, int], fill: int = 0) -> np.ndarray:
        return np.full(n, fill, dtype=np.int64)

    def flags(n: int | tuple[int, int]) -> np.ndarray:
        return np.zeros(n, dtype=np.bool_)

    slots = (n_dev, n_slot)
    return _State(
        ch, sc, np.zeros(2),
        flags(n_part), ints(n_part), ints(n_part), ints(n_part), ints(n_stage), ints(n_stage), ints(n_stage),
        np.zeros(n_stage),
        np.ones(n_dev, dtype=np.bool_), ints(n_dev), np.arange(n_dev, dtype=np.int64),
        np.arange(n_dev, dtype=np.int64), ints(n_dev), flags(n_dev), flags(n_dev), flags(n_dev),
        np.zeros(n_dev), flags(n_dev), flags(n_dev), ints(n_dev), np.zeros(n_dev), np.zeros(n_dev),
        np.zeros(n_dev), flags((n_dev, max(1, n_keys))), ints(n_dev),
        ints(slots, -1), ints(slots), ints(slots), ints(slots), np.zeros(slots), np.zeros(slots),
        flags(slots),
        ints(n_dev * n_slot),
        flags(n_task), ints(n_task), ints((n_task, 2), -1), ints(n_task), np.full(n_task, -1.0),
        ints(6), np.zeros(2),
    )  # fmt: skip


class _StructType(types.StructRef):
    """The numba type of a kernel struct: named fields behind one reference (passing a tuple of
    arrays to a handler costs one atomic reference count per array; a struct costs one)."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


@structref.register
class _StagesType(_StructType):
    pass


@structref.register
class _FleetType(_StructType):
    pass


@structref.register
class _LinksType(_StructType):
    pass


@structref.register
class _WorldType(_StructType):
    pass


@structref.register
class _StateType(_StructType):
    pass


def _struct_of(name: str, fields: tuple[str, ...], struct_type: type) -> type:
    """A struct class named ``name`` (built in Python from a NamedTuple's ``fields``, passed to the
    kernel, read there by the same names)."""
    proxy = type(name, (structref.StructRefProxy,), {})
    structref.define_proxy(proxy, struct_type, list(fields))
    return proxy


@numba.njit(cache=True)
def _transfer_seconds(nbytes, rate, links, d, now):
    """Seconds to move ``nbytes`` from ``now`` at ``rate * multiplier(t)``, integrating the trace."""
    if not links.use:
        return nbytes / rate
    pre, step = links.prefix, links.step_s
    n = links.length[d]
    base = links.start[d]
    total = pre[base + n]
    pos = (now + links.offset[d]) / step
    laps = np.floor(pos / n)
    p = pos - laps * n
    i = min(int(p), n - 1)
    here = pre[base + i] + (p - i) * (pre[base + i + 1] - pre[base + i])
    target = here + nbytes / rate / step
    more = np.floor(target / total)
    target -= more * total
    lo, hi = 0, n
    while hi - lo > 1:  # last sample whose prefix is <= target
        mid = (lo + hi) // 2
        if pre[base + mid] <= target:
            lo = mid
        else:
            hi = mid
    p1 = lo + (target - pre[base + lo]) / (pre[base + lo + 1] - pre[base + lo])
    return ((laps + more) * n + p1) * step - links.offset[d] - now


@numba.njit(cache=True)
def _share(ch, c, now, delta):
    """Advance NIC direction ``c``'s virtual clock to ``now`` and change its demand by ``delta``."""
    ch[c, _VCLOCK] += ch[c, _SLOWDOWN] * (now - ch[c, _REAL_TIME])
    ch[c, _REAL_TIME] = now
    ch[c, _DEMAND] += delta
    if ch[c, _DEMAND] < 1e-9 * ch[c, _CAPACITY]:
        ch[c, _DEMAND] = 0.0
    ch[c, _SLOWDOWN] = min(1.0, ch[c, _CAPACITY] / ch[c, _DEMAND]) if ch[c, _DEMAND] > 0 else 1.0


@numba.njit(cache=True, inline="always")
def _start_transfer(c, kind, d, s, nbytes, now, w, st, heap, vheap, wait=0.0):
    """Start moving ``nbytes`` for slot ``(d, s)`` (direction ``c``: egress down, ingress up), after
    ``wait`` seconds for the PS (counted in the transfer): its end goes on the NIC's virtual clock
    ``vheap`` or, without contention, on the heap as event ``kind``."""
    rate = w.links.down[d] if c == _EGRESS else w.links.up[d]
    alone = _transfer_seconds(nbytes, rate, w.links, d, now + wait) + wait
    if w.fleet.contention:
        st.slot_rate[d, s] = nbytes / alone
        _share(st.ch, c, now, st.slot_rate[d, s])
        heapq.heappush(vheap, (st.ch[c, _VCLOCK] + alone, st.rank[d], d, s, st.slot_ver[d, s]))
    else:
        heapq.heappush(heap, (now + alone, st.rank[d], kind, d, s, st.slot_ver[d, s]))


@numba.njit(cache=True, inline="always")
def _start_upload(d, s, now, w, st, heap, vup):
    """Device ``d`` starts uploading the output of the task in slot ``s``."""
    st.up_busy[d] = True
    st.slot_phase[d, s] = _UP
    o = w.stages.task_stage[st.slot_task[d, s]]
    _start_transfer(_INGRESS, _UPLOAD_END, d, s, w.stages.up[o], now, w, st, heap, vup, 0.0)


@numba.njit(cache=True, inline="always")
def _start_compute(d, s, now, w, st, heap):
    """Device ``d`` starts computing the task in slot ``s``; with probability ``straggler_prob`` it
    runs ``straggler_factor`` times slower. Every compute start goes here."""
    o = w.stages.task_stage[st.slot_task[d, s]]
    seconds = w.stages.flops[o] / w.fleet.flops[d]
    if w.fleet.straggler_prob > 0 and np.random.random() < w.fleet.straggler_prob:
        seconds *= w.fleet.straggler_factor
    st.comp_busy[d] = True
    st.slot_phase[d, s] = _COMPUTE
    heapq.heappush(heap, (now + seconds, st.rank[d], _COMPUTE_END, d, s, st.slot_ver[d, s]))


@numba.njit(cache=True, inline="always")
def _release_slot(d, s, task, now, st):
    """Free slot ``s`` of device ``d``; stop its busy clock if idle."""
    st.slot_task[d, s] = -1
    st.slot_phase[d, s] = _FREE
    st.slot_ver[d, s] += 1
    st.copies[task] -= 1
    st.in_flight[d] -= 1
    if st.in_flight[d] == 0:
        st.busy[d] += now - st.busy_start[d]


@numba.njit(cache=True, inline="always")
def _first_waiting(st, d, phase):
    """The slot of device ``d`` waiting longest in ``phase`` (FIFO per stage), or -1."""
    best = -1
    for s in range(st.slot_phase.shape[1]):
        if st.slot_phase[d, s] == phase and (best < 0 or st.slot_seq[d, s] < st.slot_seq[d, best]):
            best = s
    return best


@numba.njit(cache=True, inline="always")
def _timing(o, d, w):
    """The cost model's pull period, task latency and pipeline depth of device ``d`` on occurrence ``o``
    (:func:`~frugalml.cleave.costmodel.task_timing`)."""
    g, f = w.stages, w.fleet
    t_d = g.down[o] / f.est_down[d]
    t_c = g.flops[o] / f.flops[d]
    t_u = g.up[o] / f.est_up[d]
    latency = t_d + t_c + t_u + f.rtt[d]
    depth = min(f.n_slot, int(max(f.memory[d] - g.weight[o], 0.0) // g.mem[o]))
    period = max(max(max(t_d, t_c), t_u), latency / depth) if depth >= 1 else _INF
    return period, latency, depth


@numba.njit(cache=True, inline="always")
def _finish_part(o, k, now, w, st, heap):
    """The PS runs part ``k`` of occurrence ``o``'s ops, then its micro-batches start occurrence
    ``o + 1``. Returns whether occurrence ``o`` is now complete."""
    g = w.stages
    width = g.micro // g.parts[o]
    st.ps_free[0] = max(st.ps_free[0], now) + g.ps[o] / g.parts[o]
    heapq.heappush(heap, (st.ps_free[0], 0, _STAGE_START, o + 1, k * width, (k + 1) * width))
    st.parts_complete[o] += 1
    if st.parts_complete[o] == g.parts[o]:
        st.stage_end[o] = st.ps_free[0]
        st.sc[_STAGES_DONE] += 1
        return True
    return False


@numba.njit(cache=True)
def _rank_devices(o, w, st):
    """Nothing else is running: rank the devices by their pull period on occurrence ``o``."""
    for d in range(len(st.rank)):
        st.period[d] = _timing(o, d, w)[0]
    st.by_rank[:] = np.argsort(st.period, kind="mergesort")
    for r in range(len(st.rank)):
        st.rank[st.by_rank[r]] = r


@numba.njit(cache=True, inline="always")
def _kick_free_devices(o, size, now, w, st, heap):
    """Devices free to pull do, fastest first, one per task of ``size`` just released."""
    # the loop reads arrays held in locals (a struct member read in a loop costs a reference count)
    by_rank, alive, down_busy, pull_pending = st.by_rank, st.alive, st.down_busy, st.pull_pending
    in_flight, next_pull = st.in_flight, st.next_pull
    eligible = w.fleet.eligible[w.stages.plan[o]]
    kicks = 0
    for r in range(len(by_rank)):
        if kicks >= size:
            break
        d = by_rank[r]
        if not alive[d] or not eligible[d] or down_busy[d] or pull_pending[d]:
            continue
        if in_flight[d] >= _timing(o, d, w)[2]:
            continue
        if in_flight[d] == 0:
            next_pull[d] = now
        elif now < next_pull[d]:
            continue
        kicks += 1
        heapq.heappush(heap, (now, r, _KICK, d, 0, 0))


@numba.njit(cache=True, inline="always")
def _on_stage_start(o, first, end, now, w, st, heap):
    """Micro-batches ``first..end-1`` are ready for occurrence ``o``: release the parts they complete."""
    g = w.stages
    if o >= len(g.tasks):
        return
    width = g.micro // g.parts[o]
    for mb in range(first, end):
        k = mb // width
        p = g.part_base[o] + k
        st.part_ready[p] += 1
        if st.part_ready[p] < width:
            continue
        if g.tasks[o] == 0:  # a GEMM the PS keeps: only PS time
            _finish_part(o, k, now, w, st, heap)
            continue
        st.part_open[p] = True
        size = g.tasks[o] // g.parts[o]
        st.avail[o] += size
        if st.sc[_OPEN_TASKS] == 0:
            _rank_devices(o, w, st)
        st.sc[_OPEN_TASKS] += size
        st.sc[_LO], st.sc[_HI] = min(st.sc[_LO], o), max(st.sc[_HI], o)
        _kick_free_devices(o, size, now, w, st, heap)


@numba.njit(cache=True, inline="always")
def _on_download_end(d, s, now, w, st, heap):
    o = w.stages.task_stage[st.slot_task[d, s]]
    if w.fleet.contention:
        _share(st.ch, _EGRESS, now, -st.slot_rate[d, s])
    st.down_busy[d] = False
    if st.slot_fetch[d, s]:
        st.holds[d, w.stages.key[o]] = True
    if st.comp_busy[d]:
        st.slot_phase[d, s] = _WAIT_COMPUTE
    else:
        _start_compute(d, s, now, w, st, heap)


@numba.njit(cache=True, inline="always")
def _on_compute_end(d, s, now, w, st, heap, vup):
    st.comp_busy[d] = False
    if st.up_busy[d]:
        st.slot_phase[d, s] = _WAIT_UP
    else:
        _start_upload(d, s, now, w, st, heap, vup)
    nxt = _first_waiting(st, d, _WAIT_COMPUTE)
    if nxt >= 0:
        _start_compute(d, nxt, now, w, st, heap)


@numba.njit(cache=True, inline="always")
def _on_upload_end(d, s, now, w, st, heap, vup):
    if w.fleet.contention:
        _share(st.ch, _INGRESS, now, -st.slot_rate[d, s])
    st.up_busy[d] = False
    st.slot_phase[d, s] = _ACK
    ack = now + w.fleet.rtt[d]
    if w.fleet.ps_task_in > 0:  # the PS takes results in one at a time
        st.ps_free[1] = max(st.ps_free[1], now) + w.fleet.ps_task_in
        ack = st.ps_free[1] + w.fleet.rtt[d]
    heapq.heappush(heap, (ack, st.rank[d], _DONE, d, s, st.slot_ver[d, s]))
    nxt = _first_waiting(st, d, _WAIT_UP)
    if nxt >= 0:
        _start_upload(d, nxt, now, w, st, heap, vup)


@numba.njit(cache=True, inline="always")
def _cancel_copy(d, s, task, now, w, st, heap, vup):
    """The other copy of ``task`` (slot ``s`` of device ``d``) lost: free it; its device moves on."""
    ph = st.slot_phase[d, s]
    if ph == _DOWN:
        st.down_busy[d] = False
        if w.fleet.contention:
            _share(st.ch, _EGRESS, now, -st.slot_rate[d, s])
    elif ph == _UP:
        st.up_busy[d] = False
        if w.fleet.contention:
            _share(st.ch, _INGRESS, now, -st.slot_rate[d, s])
    elif ph == _COMPUTE:
        st.comp_busy[d] = False
    _release_slot(d, s, task, now, st)
    if ph == _COMPUTE:
        nxt = _first_waiting(st, d, _WAIT_COMPUTE)
        if nxt >= 0:  # the cancelled copy freed the processor: the next task may straggle too
            _start_compute(d, nxt, now, w, st, heap)
    elif ph == _UP:
        nxt = _first_waiting(st, d, _WAIT_UP)
        if nxt >= 0:
            _start_upload(d, nxt, now, w, st, heap, vup)
    heapq.heappush(heap, (now, st.rank[d], _KICK, d, 0, 0))


@numba.njit(cache=True, inline="always")
def _on_done(d, s, now, w, st, heap, vup):
    """The PS acknowledged slot ``s``'s output: the first copy to get here completes its task."""
    g, n_slot = w.stages, w.fleet.n_slot
    task = st.slot_task[d, s]
    o = g.task_stage[task]
    _release_slot(d, s, task, now, st)
    if st.done[task]:
        return
    st.done[task] = True
    st.sc[_OPEN_TASKS] -= 1
    st.stats[_TASKS] += 1
    if st.requeued_at[task] >= 0:
        st.recovery[_RECOVERY_SECONDS] += now - st.requeued_at[task]
        st.recovery[_RECOVERY_COUNT] += 1
    if st.holder[task, 1] == d * n_slot + s:
        st.stats[_BACKUPS_WON] += 1
    for j in range(2):  # cancel the other copy
        other = st.holder[task, j]
        if other < 0 or other == d * n_slot + s:
            continue
        if st.slot_task[other // n_slot, other % n_slot] == task:
            _cancel_copy(other // n_slot, other % n_slot, task, now, w, st, heap, vup)
    size = g.tasks[o] // g.parts[o]
    k = (task - g.base[o]) // size
    st.part_done[g.part_base[o] + k] += 1
    if st.part_done[g.part_base[o] + k] == size:  # this part's micro-batches go on after the PS ops
        if _finish_part(o, k, now, w, st, heap):
            st.sc[_BACKUP_BUILT] = 0


@numba.njit(cache=True, inline="always")
def _on_fail(d, ver, now, w, st, heap):
    """Device ``d`` leaves (``ver`` -1: churn, it comes back; -2: injected, for good): its in-flight
    tiles are re-queued and wake devices that found no work."""
    if not st.alive[d]:
        return
    st.alive[d] = False
    st.stats[_FAILURES] += 1
    lost = 0
    for s in range(w.fleet.n_slot):
        task = st.slot_task[d, s]
        if task < 0:
            continue
        ph = st.slot_phase[d, s]
        if w.fleet.contention and ph == _DOWN:
            _share(st.ch, _EGRESS, now, -st.slot_rate[d, s])
        elif w.fleet.contention and ph == _UP:
            _share(st.ch, _INGRESS, now, -st.slot_rate[d, s])
        st.slot_task[d, s] = -1
        st.slot_phase[d, s] = _FREE
        st.slot_ver[d, s] += 1
        st.copies[task] -= 1
        if not st.done[task] and st.copies[task] == 0:
            st.requeue[st.sc[_N_REQUEUE]] = task
            st.sc[_N_REQUEUE] += 1
            o = w.stages.task_stage[task]
            st.n_req[o] += 1
            st.sc[_LO] = min(st.sc[_LO], o)
            lost += 1
            st.stats[_REQUEUED] += 1
            st.requeued_at[task] = now
    if st.in_flight[d] > 0:
        st.busy[d] += now - st.busy_start[d]
    st.in_flight[d] = 0
    st.holds[d, :] = False  # a device that leaves loses what it kept
    st.down_busy[d] = st.comp_busy[d] = st.up_busy[d] = False
    absence = w.fleet.down_dur[d, st.cycle[d]] if ver == -1 else _INF
    if np.isfinite(absence):
        heapq.heappush(heap, (now + absence, d, _REJOIN, d, 0, -1))
    while lost > 0 and st.sc[_N_IDLE] > 0:  # re-queued tiles wake devices that found none
        cand = st.idle[st.sc[_N_IDLE] - 1]
        st.sc[_N_IDLE] -= 1
        st.in_idle[cand] = False
        if st.alive[cand]:
            heapq.heappush(heap, (now, st.rank[cand], _KICK, cand, 0, 0))
            lost -= 1


@numba.njit(cache=True, inline="always")
def _on_rejoin(d, now, w, st, heap):
    st.alive[d] = True
    st.cycle[d] += 1
    c = st.cycle[d]
    if c < w.fleet.up_dur.shape[1] and np.isfinite(w.fleet.up_dur[d, c]):
        heapq.heappush(heap, (now + w.fleet.up_dur[d, c], d, _FAIL, d, 0, -1))


@numba.njit(cache=True, inline="always")
def _pick_queued(d, w, st):
    """The task device ``d`` pulls from the earliest occurrence with work it can run: a re-queued tile
    first, else a fresh one. Returns ``(task, occurrence)``, ``(-1, -1)`` if none."""
    g = w.stages
    for o in range(st.sc[_LO], st.sc[_HI] + 1):
        if (st.avail[o] == 0 and st.n_req[o] == 0) or not w.fleet.eligible[g.plan[o], d]:
            continue
        if st.in_flight[d] >= _timing(o, d, w)[2]:
            continue
        task = -1
        j = st.sc[_N_REQUEUE] - 1
        while st.n_req[o] > 0 and j >= 0 and task < 0:
            cand = st.requeue[j]
            if g.task_stage[cand] == o:
                st.requeue[j] = st.requeue[st.sc[_N_REQUEUE] - 1]
                st.sc[_N_REQUEUE] -= 1
                st.n_req[o] -= 1
                if not st.done[cand] and st.copies[cand] == 0:
                    task = cand
            j -= 1
        if task < 0 and st.avail[o] > 0:
            size = g.tasks[o] // g.parts[o]
            for k in range(g.parts[o]):
                p = g.part_base[o] + k
                if st.part_open[p] and st.part_next[p] < size:
                    task = g.base[o] + k * size + st.part_next[p]
                    st.part_next[p] += 1
                    st.avail[o] -= 1
                    break
        if task >= 0:
            return task, o
    return -1, -1


@numba.njit(cache=True)
def _build_backup_order(w, st):
    """In-flight slots, latest expected end first (the backup candidates)."""
    n_slot = w.fleet.n_slot
    n = 0
    for d in range(st.slot_task.shape[0]):
        for s in range(n_slot):
            if st.slot_task[d, s] >= 0:
                st.backup_order[n] = d * n_slot + s
                n += 1
    keys = np.empty(n)
    for j in range(n):
        keys[j] = -st.slot_end[st.backup_order[j] // n_slot, st.backup_order[j] % n_slot]
    srt = np.argsort(keys, kind="mergesort")
    st.backup_order[:n] = st.backup_order[:n][srt]
    st.sc[_N_BACKUP], st.sc[_BACKUP_POS], st.sc[_BACKUP_BUILT] = n, 0, 1


@numba.njit(cache=True, inline="always")
def _pick_backup(d, now, w, st):
    """A backup copy for device ``d``: the in-flight tile expected to end last, if ``d`` would finish
    it sooner. Returns ``(task, occurrence)``, ``(-1, -1)`` if none."""
    n_slot = w.fleet.n_slot
    if st.sc[_BACKUP_BUILT] == 0:
        _build_backup_order(w, st)
    while st.sc[_BACKUP_POS] < st.sc[_N_BACKUP]:
        slot = st.backup_order[st.sc[_BACKUP_POS]]
        hd, hs = slot // n_slot, slot % n_slot
        ht = st.slot_task[hd, hs]
        if ht < 0 or st.done[ht] or st.copies[ht] >= 2 or hd == d:
            st.sc[_BACKUP_POS] += 1
            continue
        o = w.stages.task_stage[ht]
        _, lat, dep = _timing(o, d, w)
        if not w.fleet.eligible[w.stages.plan[o], d] or st.in_flight[d] >= dep:
            break
        if st.slot_end[hd, hs] > now + lat:
            st.sc[_BACKUP_POS] += 1
            return ht, o
        break
    return -1, -1


@numba.njit(cache=True, inline="always")
def _assign(d, task, o, is_backup, now, w, st, heap, vdn):
    """Device ``d`` takes ``task`` (occurrence ``o``) into a free slot and starts its download (with the
    resident weight when the device does not hold it and none of its tasks is bringing it)."""
    g = w.stages
    n_slot = w.fleet.n_slot
    per, lat, _ = _timing(o, d, w)
    s = 0
    while st.slot_task[d, s] >= 0:
        s += 1
    st.slot_task[d, s] = task
    st.slot_seq[d, s] = st.pulls[d]
    st.pulls[d] += 1
    st.copies[task] += 1
    st.holder[task, 1 if is_backup else 0] = d * n_slot + s
    if is_backup:
        st.stats[_BACKUPS] += 1
    if st.in_flight[d] == 0:
        st.busy_start[d] = now
    st.in_flight[d] += 1
    fetch = g.key[o] >= 0 and not st.holds[d, g.key[o]]
    for s2 in range(n_slot):  # a weight already on its way with another of this device's tasks
        if (
            s2 != s
            and st.slot_task[d, s2] >= 0
            and st.slot_fetch[d, s2]
            and g.key[g.task_stage[st.slot_task[d, s2]]] == g.key[o]
        ):
            fetch = False
    st.slot_fetch[d, s] = fetch
    setup = g.weight[o] / w.fleet.est_down[d] if fetch else 0.0
    st.slot_end[d, s] = now + setup + lat
    st.next_pull[d] = now + setup + per
    st.down_busy[d] = True
    st.slot_phase[d, s] = _DOWN
    nbytes = g.down[o] + (g.weight[o] if fetch else 0.0)
    wait = 0.0
    if w.fleet.ps_task_out > 0:  # the PS hands tasks out one at a time: the bytes flow after
        st.ps_free[1] = max(st.ps_free[1], now) + w.fleet.ps_task_out
        wait = st.ps_free[1] - now
    _start_transfer(_EGRESS, _DOWNLOAD_END, d, s, nbytes, now, w, st, heap, vdn, wait)


@numba.njit(cache=True, inline="always")
def _pull(d, now, w, st, heap, vdn):
    """Device ``d`` pulls (when its downlink is free, it has room and its period has passed): from the
    earliest occurrence with work it can run, a re-queued tile, a fresh one, or a backup copy."""
    if st.down_busy[d] or st.in_flight[d] >= w.fleet.n_slot:
        return
    if now < st.next_pull[d]:
        if not st.pull_pending[d]:
            st.pull_pending[d] = True
            heapq.heappush(heap, (st.next_pull[d], st.rank[d], _KICK, d, 0, 0))
        return
    while st.sc[_LO] <= st.sc[_HI] and st.avail[st.sc[_LO]] == 0 and st.n_req[st.sc[_LO]] == 0:
        st.sc[_LO] += 1
    task, o = _pick_queued(d, w, st)
    is_backup = False
    if task < 0 and w.fleet.backups and st.sc[_OPEN_TASKS] > 0:
        task, o = _pick_backup(d, now, w, st)
        is_backup = task >= 0
    if task < 0:
        if not st.in_idle[d]:
            st.in_idle[d] = True
            st.idle[st.sc[_N_IDLE]] = d
            st.sc[_N_IDLE] += 1
        return
    _assign(d, task, o, is_backup, now, w, st, heap, vdn)


@numba.njit(cache=True, inline="always")
def _nic_next(vq, c, st, phase):
    """When the earliest live transfer on NIC direction ``c``'s virtual clock ends (inf: none);
    drops entries of slots that moved on."""
    while len(vq) > 0 and (
        vq[0][4] != st.slot_ver[vq[0][2], vq[0][3]] or st.slot_phase[vq[0][2], vq[0][3]] != phase
    ):
        heapq.heappop(vq)
    if len(vq) == 0:
        return _INF
    return st.ch[c, _REAL_TIME] + (vq[0][0] - st.ch[c, _VCLOCK]) / st.ch[c, _SLOWDOWN]


@numba.njit(cache=True, inline="always")
def _next_event(st, heap, vdn, vup):
    """The next event ``(now, kind, device, slot, version)``: kind -1 when nothing is left, -2 for a
    stale slot event (its slot moved on)."""
    t_dn = _nic_next(vdn, _EGRESS, st, _DOWN)
    t_up = _nic_next(vup, _INGRESS, st, _UP)
    t_h = heap[0][0] if len(heap) > 0 else _INF
    if t_dn == _INF and t_up == _INF and t_h == _INF:
        return _INF, -1, 0, 0, 0
    if t_dn < t_h and t_dn <= t_up:
        item = heapq.heappop(vdn)
        return t_dn, _DOWNLOAD_END, item[2], item[3], item[4]
    if t_up < t_h:
        item = heapq.heappop(vup)
        return t_up, _UPLOAD_END, item[2], item[3], item[4]
    ev = heapq.heappop(heap)
    if ev[2] <= _DOWNLOAD_END and ev[5] != st.slot_ver[ev[3], ev[4]]:
        return ev[0], -2, 0, 0, 0
    return ev[0], ev[2], ev[3], ev[4], ev[5]


@numba.njit(cache=True)
def _simulate(w, st, seed, inject_time, inject_device):
    """The event loop: one handler per event kind, then the device it woke pulls. Returns the
    occurrences completed."""
    np.random.seed(seed)
    n_stage = len(w.stages.tasks)
    heap = [(0.0, 0, _STAGE_START, 0, 0, w.stages.micro)]  # micro-batches 0..micro ready for occurrence 0
    vdn = [(0.0, 0, 0, 0, 0)]
    vdn.pop()
    vup = [(0.0, 0, 0, 0, 0)]
    vup.pop()
    for d in range(len(st.alive)):
        if np.isfinite(w.fleet.up_dur[d, 0]):
            heapq.heappush(heap, (w.fleet.up_dur[d, 0], d, _FAIL, d, 0, -1))
    if inject_device >= 0:
        heapq.heappush(heap, (inject_time, inject_device, _FAIL, inject_device, 0, -2))
    while st.sc[_STAGES_DONE] < n_stage:
        now, kind, d, s, ver = _next_event(st, heap, vdn, vup)
        if kind == -1:
            break
        if kind == -2:
            continue
        st.stats[_EVENTS] += 1
        if kind == _STAGE_START:  # micro-batches s..ver-1 are ready for occurrence d
            _on_stage_start(d, s, ver, now, w, st, heap)
            continue
        if kind == _DOWNLOAD_END:
            _on_download_end(d, s, now, w, st, heap)
        elif kind == _COMPUTE_END:
            _on_compute_end(d, s, now, w, st, heap, vup)
            continue
        elif kind == _UPLOAD_END:
            _on_upload_end(d, s, now, w, st, heap, vup)
            continue
        elif kind == _DONE:
            _on_done(d, s, now, w, st, heap, vup)
        elif kind == _FAIL:
            _on_fail(d, ver, now, w, st, heap)
            continue
        elif kind == _REJOIN:
            _on_rejoin(d, now, w, st, heap)
        elif kind == _KICK and st.pull_pending[d] and now >= st.next_pull[d]:
            st.pull_pending[d] = False
        if st.alive[d]:  # the device this event concerns tries to pull
            _pull(d, now, w, st, heap, vdn)
    return st.sc[_STAGES_DONE]


class _Links(NamedTuple):
    """Each device's bandwidth trace as the kernel reads it (dummies when traces are off)."""

    use: bool
    prefix: np.ndarray  # per-trace prefix sums of the multiplier, one leading zero per trace
    start: np.ndarray  # where each device's trace starts in ``prefix``
    length: np.ndarray  # samples in each device's trace
    offset: np.ndarray  # each device's starting point in its trace (seconds)
    step_s: float  # seconds per sample
    down: np.ndarray  # link rates the multiplier scales (the trace-effective rates without traces)
    up: np.ndarray


class _Occurrences(NamedTuple):
    """The step's GEMM occurrences in schedule order, as flat per-occurrence arrays for the kernel."""

    plan: np.ndarray  # index into plan.gemm_plans
    tasks: np.ndarray
    parts: np.ndarray
    down: np.ndarray
    flops: np.ndarray
    up: np.ndarray
    memory: np.ndarray
    weight: np.ndarray  # bytes of the weight a device keeps, 0 if none
    key: np.ndarray  # resident-weight cache key (-1: none)
    n_keys: int
    ps: np.ndarray  # PS seconds after each occurrence


# the kernel's structs: each NamedTuple's fields behind one reference
_StagesRef = _struct_of("_StagesRef", _Stages._fields, _StagesType)
_FleetRef = _struct_of("_FleetRef", _Fleet._fields, _FleetType)
_LinksRef = _struct_of("_LinksRef", _Links._fields, _LinksType)
_WorldRef = _struct_of("_WorldRef", _World._fields, _WorldType)
_StateRef = _struct_of("_StateRef", _State._fields, _StateType)


@numba.njit(cache=True)
def _run(world, state, seed, inject_time, inject_device):
    """Build the structs from the NamedTuples in compiled (cached) code, then run the event loop."""
    w = _WorldRef(_StagesRef(*world.stages), _FleetRef(*world.fleet), _LinksRef(*world.links))
    return _simulate(w, _StateRef(*state), seed, inject_time, inject_device)


def _check_inputs(plan: Plan, config: SimConfig, fail_device: int) -> None:
    if config.traces and plan.pool.traces is None:
        raise InvalidInputError(
            "the pool has no bandwidth traces; draw it with traces=load_traces() "
            "or pass SimConfig(traces=False)"
        )
    for name in ("ps_task_out_s", "ps_task_in_s"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise InvalidInputError(f"{name} must be a finite number of seconds >= 0, got {value}")
    devices = len(plan.pool)
    if not -1 <= fail_device < devices:
        raise InvalidInputError(f"fail_device must be a device index below {devices}, got {fail_device}")


def _occurrences(plan: Plan, config: SimConfig) -> _Occurrences:
    order = plan.graph.schedule()
    gps = plan.gemm_plans
    index = {gp.gemm.name: i for i, gp in enumerate(gps)}
    st_plan = np.array([index[name] for name, _ in order], dtype=np.int64)

    def per_plan(f) -> np.ndarray:
        return np.array([f(gp) for gp in gps], dtype=float)[st_plan]

    # resident weights: one cache key per (weight, layer), shared by a forward and its backward dX
    keys: dict[tuple[str, int], int] = {}
    st_key = np.array(
        [
            keys.setdefault((gps[i].gemm.b, layer), len(keys)) if gps[i].resident_bytes else -1
            for i, (_, layer) in zip(st_plan, order, strict=True)
        ],
        dtype=np.int64,
    )
    return _Occurrences(
        st_plan,
        per_plan(lambda gp: 0 if gp.on_ps else gp.grid.tasks).astype(np.int64),
        per_plan(lambda gp: 1 if config.lockstep else micro_batch_parts(gp, plan.graph)).astype(np.int64),
        per_plan(lambda gp: gp.cost.bytes_down),
        per_plan(lambda gp: gp.cost.flops),
        per_plan(lambda gp: gp.cost.bytes_up),
        per_plan(lambda gp: gp.cost.memory),
        per_plan(lambda gp: gp.resident_bytes),
        st_key,
        len(keys),
        stage_ps_seconds(plan)[st_plan],
    )


def _stages(occ: _Occurrences, micro: int) -> _Stages:
    """The occurrences as the kernel reads them, with each one's first task and first part."""
    n_stage = len(occ.tasks)
    base = np.concatenate([[0], np.cumsum(occ.tasks)]).astype(np.int64)
    part_base = np.concatenate([[0], np.cumsum(occ.parts)]).astype(np.int64)
    task_stage = np.zeros(max(1, int(base[-1])), dtype=np.int64)
    task_stage[: base[-1]] = np.repeat(np.arange(n_stage, dtype=np.int64), occ.tasks)
    return _Stages(
        occ.plan, occ.tasks, occ.parts, occ.down, occ.flops, occ.up, occ.memory, occ.weight, occ.key, occ.ps,
        base, part_base, task_stage, micro,
    )  # fmt: skip


def _churn(pool: Pool, config: SimConfig, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per device and cycle: seconds available, then seconds away (inf: never leaves)."""
    n = len(pool)
    if not config.churn:
        return np.full((n, 1), np.inf), np.full((n, 1), np.inf)
    s_shape, s_scale, a_shape, a_scale = pool.churn_params()
    k = config.churn_cycles
    up_dur = s_scale[:, None] * gen.weibull(s_shape[:, None], (n, k))
    down_dur = a_scale[:, None] * gen.weibull(a_shape[:, None], (n, k))
    return up_dur, down_dur


def _links(pool: Pool, config: SimConfig) -> _Links:
    traces = pool.traces if config.traces else None
    n = len(pool)
    if not traces:  # without traces a link runs at its trace-effective rate (what the planner expects)
        return _Links(
            False,
            np.zeros(2),
            np.zeros(n, dtype=np.int64),
            np.ones(n, dtype=np.int64),
            np.zeros(n),
            1.0,
            pool.effective_down,
            pool.effective_up,
        )
    index, offset = pool.trace_index, pool.trace_offset
    if index is None or offset is None:
        raise InvalidInputError(
            "the pool has traces but no trace per device; draw it with make_pool(traces=...)"
        )
    prefix = np.concatenate(
        [
            np.concatenate([[0.0], np.cumsum(traces.data[s : s + n_s])])
            for s, n_s in zip(traces.start, traces.length, strict=True)
        ]
    )
    return _Links(
        True,
        prefix,
        (traces.start + np.arange(len(traces.start)))[index].astype(np.int64),
        traces.length[index].astype(np.int64),
        offset.astype(float),
        float(traces.step_s),
        pool.down,
        pool.up,
    )


def _result(stage_end: np.ndarray, busy: np.ndarray, stats: np.ndarray, recovery: np.ndarray) -> SimResult:
    count = recovery[_RECOVERY_COUNT]
    return SimResult(
        float(stage_end.max()),
        stage_end,
        busy,
        int(stats[_TASKS]),
        int(stats[_REQUEUED]),
        int(stats[_BACKUPS]),
        int(stats[_BACKUPS_WON]),
        int(stats[_FAILURES]),
        int(stats[_EVENTS]),
        float(recovery[_RECOVERY_SECONDS] / count) if count else float("nan"),
    )


def simulate_step(
    plan: Plan, config: SimConfig | None = None, *, seed: int = 0, fail_device: int = -1, fail_at: float = 0.0
) -> SimResult:
    """Simulate one training step of ``plan`` event by event.

    Parameters
    ----------
    config : SimConfig
        What to model (default: everything on).
    seed : int
        Seeds stragglers and churn draws.
    fail_device, fail_at : int, float
        Kill this device at this time (seconds into the step) and never bring it back; used to
        measure recovery.

    Raises
    ------
    InvalidInputError
        Traces asked for on a pool drawn without them, a bad device index, or a step that cannot
        finish (every eligible device gone for good).
    """
    config = config or SimConfig()
    _check_inputs(plan, config, fail_device)
    pool = plan.pool
    occ = _occurrences(plan, config)
    gen = make_rng(seed)
    up_dur, down_dur = _churn(pool, config, gen)
    links = _links(pool, config)
    egress, ingress = (pool.ps.egress, pool.ps.ingress) if config.contention else (np.inf, np.inf)
    stages = _stages(occ, int(plan.graph.micro_batches))
    flops, est_down, est_up, memory, rtt = (
        np.ascontiguousarray(a, dtype=float)
        for a in (pool.flops, pool.effective_down, pool.effective_up, pool.memory, pool.rtt)
    )
    fleet = _Fleet(
        np.ascontiguousarray(plan.eligible()),
        flops,
        est_down,
        est_up,
        memory,
        rtt,
        up_dur,
        down_dur,
        int(pool.tasks_in_flight),
        bool(np.isfinite(egress)),  # an unlimited NIC shares nothing
        bool(config.backups),
        float(config.straggler_prob),
        float(config.straggler_factor),
        float(config.ps_task_out_s),
        float(config.ps_task_in_s),
    )
    links = links._replace(
        down=np.ascontiguousarray(links.down, dtype=float), up=np.ascontiguousarray(links.up, dtype=float)
    )
    state = _new_state(stages, len(pool), fleet.n_slot, occ.n_keys, float(egress), float(ingress))
    seed_k = int(gen.integers(2**31))
    reached = _run(_World(stages, fleet, links), state, seed_k, float(fail_at), int(fail_device))
    if reached < len(occ.plan):
        raise InvalidInputError(
            f"the step could not finish: GEMM occurrence {reached} of {len(occ.plan)} "
            "lost every device able to run it"
        )
    return _result(state.stage_end, state.busy, state.stats, state.recovery)
