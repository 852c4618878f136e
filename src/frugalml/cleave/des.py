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

from frugalml.cleave.analytic import stage_ps_seconds
from frugalml.cleave.devices import Pool
from frugalml.cleave.opgraph import OpGraph
from frugalml.cleave.planner import GemmPlan, Plan
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
    """

    contention: bool = True
    churn: bool = True
    traces: bool = True
    backups: bool = True
    straggler_prob: float = 0.02
    straggler_factor: float = 4.0
    churn_cycles: int = 16
    lockstep: bool = False

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


@numba.njit(cache=True)
def _transfer_seconds(nbytes, rate, use, pre, pre_start, length, offset, step, d, now):
    """Seconds to move ``nbytes`` from ``now`` at ``rate * multiplier(t)``, integrating the trace."""
    if not use:
        return nbytes / rate
    n = length[d]
    base = pre_start[d]
    total = pre[base + n]
    pos = (now + offset[d]) / step
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
    return ((laps + more) * n + p1) * step - offset[d] - now


@numba.njit(cache=True)
def _share(ch, c, now, delta):
    """Advance NIC direction ``c``'s virtual clock to ``now`` and change its demand by ``delta``."""
    ch[c, _VCLOCK] += ch[c, _SLOWDOWN] * (now - ch[c, _REAL_TIME])
    ch[c, _REAL_TIME] = now
    ch[c, _DEMAND] += delta
    if ch[c, _DEMAND] < 1e-9 * ch[c, _CAPACITY]:
        ch[c, _DEMAND] = 0.0
    ch[c, _SLOWDOWN] = min(1.0, ch[c, _CAPACITY] / ch[c, _DEMAND]) if ch[c, _DEMAND] > 0 else 1.0


@numba.njit(cache=True)
def _start_transfer(
    c,
    kind,
    d,
    s,
    nbytes,
    rate,
    now,
    heap,
    vheap,
    ch,
    contention,
    rank,
    slot_ver,
    slot_rate,
    use,
    pre,
    pre_start,
    length,
    offset,
    step,
):
    """Start moving ``nbytes`` for slot ``(d, s)``: its end goes on the NIC's virtual clock or the heap."""
    alone = _transfer_seconds(nbytes, rate, use, pre, pre_start, length, offset, step, d, now)
    if contention:
        slot_rate[d, s] = nbytes / alone
        _share(ch, c, now, slot_rate[d, s])
        heapq.heappush(vheap, (ch[c, _VCLOCK] + alone, rank[d], d, s, slot_ver[d, s]))
    else:
        heapq.heappush(heap, (now + alone, rank[d], kind, d, s, slot_ver[d, s]))


@numba.njit(cache=True)
def _release_slot(d, s, task, now, slot_task, slot_phase, slot_ver, copies, in_flight, busy, busy_start):
    """Free slot ``s`` of device ``d``; stop its busy clock if idle."""
    slot_task[d, s] = -1
    slot_phase[d, s] = _FREE
    slot_ver[d, s] += 1
    copies[task] -= 1
    in_flight[d] -= 1
    if in_flight[d] == 0:
        busy[d] += now - busy_start[d]


@numba.njit(cache=True)
def _first_waiting(slot_phase, slot_seq, d, phase):
    """The slot of device ``d`` waiting longest in ``phase`` (FIFO per stage), or -1."""
    best = -1
    for s in range(slot_phase.shape[1]):
        if slot_phase[d, s] == phase and (best < 0 or slot_seq[d, s] < slot_seq[d, best]):
            best = s
    return best


@numba.njit(cache=True)
def _timing(o, d, st_down, st_flops, st_up, st_mem, st_weight, flops, est_down, est_up, memory, rtt, n_slot):
    """The cost model's pull period, task latency and pipeline depth of device ``d`` on occurrence ``o``
    (:func:`~frugalml.cleave.costmodel.task_timing`)."""
    t_d = st_down[o] / est_down[d]
    t_c = st_flops[o] / flops[d]
    t_u = st_up[o] / est_up[d]
    latency = t_d + t_c + t_u + rtt[d]
    depth = min(n_slot, int(max(memory[d] - st_weight[o], 0.0) // st_mem[o]))
    period = max(max(max(t_d, t_c), t_u), latency / depth) if depth >= 1 else _INF
    return period, latency, depth


@numba.njit(cache=True)
def _finish_part(o, k, width, now, ps_free, st_ps, st_parts, heap, parts_complete, stage_end):
    """The PS runs part ``k`` of occurrence ``o``'s ops, then its micro-batches start occurrence
    ``o + 1``. Returns when the PS is free again and whether occurrence ``o`` is now complete."""
    ps_free = max(ps_free, now) + st_ps[o] / st_parts[o]
    heapq.heappush(heap, (ps_free, 0, _STAGE_START, o + 1, k * width, (k + 1) * width))
    parts_complete[o] += 1
    if parts_complete[o] == st_parts[o]:
        stage_end[o] = ps_free
        return ps_free, True
    return ps_free, False


@numba.njit(cache=True)
def _start_compute(
    d,
    s,
    o,
    now,
    st_flops,
    flops,
    straggler_prob,
    straggler_factor,
    comp_busy,
    slot_phase,
    heap,
    rank,
    slot_ver,
):
    """Device ``d`` starts computing the task in slot ``s`` (occurrence ``o``); with probability
    ``straggler_prob`` it runs ``straggler_factor`` times slower. Every compute start goes here."""
    seconds = st_flops[o] / flops[d]
    if straggler_prob > 0 and np.random.random() < straggler_prob:
        seconds *= straggler_factor
    comp_busy[d] = True
    slot_phase[d, s] = _COMPUTE
    heapq.heappush(heap, (now + seconds, rank[d], _COMPUTE_END, d, s, slot_ver[d, s]))


@numba.njit(cache=True)
def _simulate(
    st_plan,
    st_tasks,
    st_parts,
    st_down,
    st_flops,
    st_up,
    st_mem,
    st_weight,
    st_key,
    n_keys,
    st_ps,
    micro,
    eligible,
    flops,
    down,
    up,
    est_down,
    est_up,
    memory,
    rtt,
    use_traces,
    tr_pre,
    tr_start,
    tr_len,
    tr_off,
    tr_step,
    up_dur,
    down_dur,
    egress,
    ingress,
    backups,
    straggler_prob,
    straggler_factor,
    seed,
    inject_time,
    inject_device,
    n_slot,
):
    np.random.seed(seed)
    n_dev = len(flops)
    n_stage = len(st_tasks)
    contention = np.isfinite(egress)
    ch = np.zeros((2, 5))  # per NIC direction: virtual clock, its real time, slow-down, demand, capacity
    ch[:, _SLOWDOWN] = 1.0
    ch[_EGRESS, _CAPACITY] = egress
    ch[_INGRESS, _CAPACITY] = ingress
    # occurrences, their parts (micro-batch groups) and their tasks (global ids)
    base = np.zeros(n_stage + 1, dtype=np.int64)
    part_base = np.zeros(n_stage + 1, dtype=np.int64)
    for o in range(n_stage):
        base[o + 1] = base[o] + st_tasks[o]
        part_base[o + 1] = part_base[o] + st_parts[o]
    n_task = max(1, base[n_stage])
    part_open = np.zeros(part_base[n_stage], dtype=np.bool_)
    part_next = np.zeros(part_base[n_stage], dtype=np.int64)  # tasks pulled (fresh) per part
    part_done = np.zeros(part_base[n_stage], dtype=np.int64)
    part_ready = np.zeros(part_base[n_stage], dtype=np.int64)  # micro-batches ready per part
    avail = np.zeros(n_stage, dtype=np.int64)  # released, never pulled tasks per occurrence
    n_req = np.zeros(n_stage, dtype=np.int64)  # re-queued tasks waiting per occurrence
    parts_complete = np.zeros(n_stage, dtype=np.int64)
    task_stage = np.empty(n_task, dtype=np.int64)
    for o in range(n_stage):
        task_stage[base[o] : base[o + 1]] = o
    # devices
    alive = np.ones(n_dev, dtype=np.bool_)
    cycle = np.zeros(n_dev, dtype=np.int64)
    rank = np.arange(n_dev)
    by_rank = np.arange(n_dev)
    in_flight = np.zeros(n_dev, dtype=np.int64)
    down_busy = np.zeros(n_dev, dtype=np.bool_)
    comp_busy = np.zeros(n_dev, dtype=np.bool_)
    up_busy = np.zeros(n_dev, dtype=np.bool_)
    next_pull = np.zeros(n_dev)
    pull_pending = np.zeros(n_dev, dtype=np.bool_)
    in_idle = np.zeros(n_dev, dtype=np.bool_)
    pulls = np.zeros(n_dev, dtype=np.int64)
    busy_start = np.zeros(n_dev)
    busy = np.zeros(n_dev)
    period = np.zeros(n_dev)
    # task slots of each device (one per pipeline stage at most)
    slot_task = np.full((n_dev, n_slot), -1, dtype=np.int64)
    slot_phase = np.zeros((n_dev, n_slot), dtype=np.int64)
    slot_seq = np.zeros((n_dev, n_slot), dtype=np.int64)
    slot_ver = np.zeros((n_dev, n_slot), dtype=np.int64)
    slot_rate = np.zeros((n_dev, n_slot))
    slot_end = np.zeros((n_dev, n_slot))
    slot_fetch = np.zeros((n_dev, n_slot), dtype=np.bool_)  # this download also brings the resident weight
    holds = np.zeros((n_dev, max(1, n_keys)), dtype=np.bool_)  # resident weights each device keeps
    done = np.zeros(n_task, dtype=np.bool_)
    copies = np.zeros(n_task, dtype=np.int64)
    holder = np.full((n_task, 2), -1, dtype=np.int64)  # slots (d * n_slot + s) holding each copy
    requeue = np.empty(n_task, dtype=np.int64)
    requeued_at = np.full(n_task, -1.0)
    idle = np.empty(n_dev, dtype=np.int64)
    backup_order = np.empty(n_dev * n_slot, dtype=np.int64)
    stage_end = np.zeros(n_stage)
    stats = np.zeros(6, dtype=np.int64)  # tasks, requeued, backups, backups won, failures, events
    recovery = np.zeros(2)  # total seconds from a failure to its lost tile finishing again, count
    heap = [(0.0, 0, _STAGE_START, 0, 0, micro)]  # micro-batches 0..micro ready for occurrence 0
    vdn = [(0.0, 0, 0, 0, 0)]
    vdn.pop()
    vup = [(0.0, 0, 0, 0, 0)]
    vup.pop()
    n_requeue, n_idle, open_tasks, stages_done = 0, 0, 0, 0
    lo, hi = n_stage, -1  # occurrences that may hold tasks to pull
    ps_free = 0.0  # the PS runs its ops one at a time
    n_backup, backup_pos, backup_built = 0, 0, False
    for d in range(n_dev):
        if np.isfinite(up_dur[d, 0]):
            heapq.heappush(heap, (up_dur[d, 0], d, _FAIL, d, 0, -1))
    if inject_device >= 0:
        heapq.heappush(heap, (inject_time, inject_device, _FAIL, inject_device, 0, -2))

    while stages_done < n_stage:
        while len(vdn) > 0 and (
            vdn[0][4] != slot_ver[vdn[0][2], vdn[0][3]] or slot_phase[vdn[0][2], vdn[0][3]] != _DOWN
        ):
            heapq.heappop(vdn)
        while len(vup) > 0 and (
            vup[0][4] != slot_ver[vup[0][2], vup[0][3]] or slot_phase[vup[0][2], vup[0][3]] != _UP
        ):
            heapq.heappop(vup)
        t_dn = (
            ch[_EGRESS, _REAL_TIME] + (vdn[0][0] - ch[_EGRESS, _VCLOCK]) / ch[_EGRESS, _SLOWDOWN]
            if len(vdn) > 0
            else _INF
        )
        t_up = (
            ch[_INGRESS, _REAL_TIME] + (vup[0][0] - ch[_INGRESS, _VCLOCK]) / ch[_INGRESS, _SLOWDOWN]
            if len(vup) > 0
            else _INF
        )
        t_h = heap[0][0] if len(heap) > 0 else _INF
        if t_dn == _INF and t_up == _INF and t_h == _INF:
            break
        if t_dn < t_h and t_dn <= t_up:
            item = heapq.heappop(vdn)
            now, kind, d, s, ver = t_dn, _DOWNLOAD_END, item[2], item[3], item[4]
        elif t_up < t_h:
            item = heapq.heappop(vup)
            now, kind, d, s, ver = t_up, _UPLOAD_END, item[2], item[3], item[4]
        else:
            ev = heapq.heappop(heap)
            now, kind, d, s, ver = ev[0], ev[2], ev[3], ev[4], ev[5]
            if kind <= _DOWNLOAD_END and ver != slot_ver[d, s]:
                continue
        stats[_EVENTS] += 1
        wake = -1  # a device that should try to pull after this event
        if kind == _STAGE_START:  # micro-batches s..ver-1 are ready for occurrence d
            o = d
            if o >= n_stage:
                continue
            width = micro // st_parts[o]
            for mb in range(s, ver):
                k = mb // width
                part_ready[part_base[o] + k] += 1
                if part_ready[part_base[o] + k] < width:
                    continue
                if st_tasks[o] == 0:  # a GEMM the PS keeps: only PS time
                    ps_free, complete = _finish_part(
                        o, k, width, now, ps_free, st_ps, st_parts, heap, parts_complete, stage_end
                    )
                    if complete:
                        stages_done += 1
                    continue
                part_open[part_base[o] + k] = True
                size = st_tasks[o] // st_parts[o]
                avail[o] += size
                if open_tasks == 0:  # nothing else running: rank devices by this GEMM's period
                    for dd in range(n_dev):
                        period[dd] = _timing(
                            o,
                            dd,
                            st_down,
                            st_flops,
                            st_up,
                            st_mem,
                            st_weight,
                            flops,
                            est_down,
                            est_up,
                            memory,
                            rtt,
                            n_slot,
                        )[0]
                    by_rank = np.argsort(period, kind="mergesort")
                    for r in range(n_dev):
                        rank[by_rank[r]] = r
                open_tasks += size
                lo, hi = min(lo, o), max(hi, o)
                kicks = 0
                for r in range(n_dev):  # devices free to pull do, fastest first, one per released task
                    if kicks >= size:
                        break
                    dd = by_rank[r]
                    if not alive[dd] or not eligible[st_plan[o], dd] or down_busy[dd] or pull_pending[dd]:
                        continue
                    if (
                        in_flight[dd]
                        >= _timing(
                            o,
                            dd,
                            st_down,
                            st_flops,
                            st_up,
                            st_mem,
                            st_weight,
                            flops,
                            est_down,
                            est_up,
                            memory,
                            rtt,
                            n_slot,
                        )[2]
                    ):
                        continue
                    if in_flight[dd] == 0:
                        next_pull[dd] = now
                    elif now < next_pull[dd]:
                        continue
                    kicks += 1
                    heapq.heappush(heap, (now, r, _KICK, dd, 0, 0))
            continue
        if kind == _DOWNLOAD_END:
            o = task_stage[slot_task[d, s]]
            if contention:
                _share(ch, _EGRESS, now, -slot_rate[d, s])
            down_busy[d] = False
            if slot_fetch[d, s]:
                holds[d, st_key[o]] = True
            if comp_busy[d]:
                slot_phase[d, s] = _WAIT_COMPUTE
            else:
                _start_compute(
                    d,
                    s,
                    o,
                    now,
                    st_flops,
                    flops,
                    straggler_prob,
                    straggler_factor,
                    comp_busy,
                    slot_phase,
                    heap,
                    rank,
                    slot_ver,
                )
            wake = d
        elif kind == _COMPUTE_END:
            comp_busy[d] = False
            o = task_stage[slot_task[d, s]]
            if up_busy[d]:
                slot_phase[d, s] = _WAIT_UP
            else:
                up_busy[d] = True
                slot_phase[d, s] = _UP
                _start_transfer(
                    _INGRESS,
                    _UPLOAD_END,
                    d,
                    s,
                    st_up[o],
                    up[d],
                    now,
                    heap,
                    vup,
                    ch,
                    contention,
                    rank,
                    slot_ver,
                    slot_rate,
                    use_traces,
                    tr_pre,
                    tr_start,
                    tr_len,
                    tr_off,
                    tr_step,
                )
            nxt = _first_waiting(slot_phase, slot_seq, d, _WAIT_COMPUTE)
            if nxt >= 0:
                _start_compute(
                    d,
                    nxt,
                    task_stage[slot_task[d, nxt]],
                    now,
                    st_flops,
                    flops,
                    straggler_prob,
                    straggler_factor,
                    comp_busy,
                    slot_phase,
                    heap,
                    rank,
                    slot_ver,
                )
            continue
        elif kind == _UPLOAD_END:
            if contention:
                _share(ch, _INGRESS, now, -slot_rate[d, s])
            up_busy[d] = False
            slot_phase[d, s] = _ACK
            heapq.heappush(heap, (now + rtt[d], rank[d], _DONE, d, s, slot_ver[d, s]))
            nxt = _first_waiting(slot_phase, slot_seq, d, _WAIT_UP)
            if nxt >= 0:
                up_busy[d] = True
                slot_phase[d, nxt] = _UP
                _start_transfer(
                    _INGRESS,
                    _UPLOAD_END,
                    d,
                    nxt,
                    st_up[task_stage[slot_task[d, nxt]]],
                    up[d],
                    now,
                    heap,
                    vup,
                    ch,
                    contention,
                    rank,
                    slot_ver,
                    slot_rate,
                    use_traces,
                    tr_pre,
                    tr_start,
                    tr_len,
                    tr_off,
                    tr_step,
                )
            continue
        elif kind == _DONE:
            task = slot_task[d, s]
            o = task_stage[task]
            _release_slot(
                d, s, task, now, slot_task, slot_phase, slot_ver, copies, in_flight, busy, busy_start
            )
            if not done[task]:
                done[task] = True
                open_tasks -= 1
                stats[_TASKS] += 1
                if requeued_at[task] >= 0:
                    recovery[_RECOVERY_SECONDS] += now - requeued_at[task]
                    recovery[_RECOVERY_COUNT] += 1
                if holder[task, 1] == d * n_slot + s:
                    stats[_BACKUPS_WON] += 1
                for j in range(2):  # cancel the other copy; its device moves on
                    other = holder[task, j]
                    if other < 0 or other == d * n_slot + s:
                        continue
                    od, os = other // n_slot, other % n_slot
                    if slot_task[od, os] != task:
                        continue
                    ph = slot_phase[od, os]
                    if ph == _DOWN:
                        down_busy[od] = False
                        if contention:
                            _share(ch, _EGRESS, now, -slot_rate[od, os])
                    elif ph == _UP:
                        up_busy[od] = False
                        if contention:
                            _share(ch, _INGRESS, now, -slot_rate[od, os])
                    elif ph == _COMPUTE:
                        comp_busy[od] = False
                    _release_slot(
                        od,
                        os,
                        task,
                        now,
                        slot_task,
                        slot_phase,
                        slot_ver,
                        copies,
                        in_flight,
                        busy,
                        busy_start,
                    )
                    if ph == _COMPUTE:
                        nxt = _first_waiting(slot_phase, slot_seq, od, _WAIT_COMPUTE)
                        if nxt >= 0:  # the cancelled copy freed the processor: the next task may straggle too
                            _start_compute(
                                od,
                                nxt,
                                task_stage[slot_task[od, nxt]],
                                now,
                                st_flops,
                                flops,
                                straggler_prob,
                                straggler_factor,
                                comp_busy,
                                slot_phase,
                                heap,
                                rank,
                                slot_ver,
                            )
                    elif ph == _UP:
                        nxt = _first_waiting(slot_phase, slot_seq, od, _WAIT_UP)
                        if nxt >= 0:
                            up_busy[od] = True
                            slot_phase[od, nxt] = _UP
                            _start_transfer(
                                _INGRESS,
                                _UPLOAD_END,
                                od,
                                nxt,
                                st_up[task_stage[slot_task[od, nxt]]],
                                up[od],
                                now,
                                heap,
                                vup,
                                ch,
                                contention,
                                rank,
                                slot_ver,
                                slot_rate,
                                use_traces,
                                tr_pre,
                                tr_start,
                                tr_len,
                                tr_off,
                                tr_step,
                            )
                    heapq.heappush(heap, (now, rank[od], _KICK, od, 0, 0))
                size = st_tasks[o] // st_parts[o]
                k = (task - base[o]) // size
                part_done[part_base[o] + k] += 1
                if part_done[part_base[o] + k] == size:  # this part's micro-batches go on after the PS ops
                    ps_free, complete = _finish_part(
                        o,
                        k,
                        micro // st_parts[o],
                        now,
                        ps_free,
                        st_ps,
                        st_parts,
                        heap,
                        parts_complete,
                        stage_end,
                    )
                    if complete:
                        stages_done += 1
                        backup_built = False
            wake = d
        elif kind == _FAIL:
            if not alive[d]:
                continue
            alive[d] = False
            stats[_FAILURES] += 1
            lost = 0
            for s2 in range(n_slot):
                task = slot_task[d, s2]
                if task < 0:
                    continue
                ph = slot_phase[d, s2]
                if contention and ph == _DOWN:
                    _share(ch, _EGRESS, now, -slot_rate[d, s2])
                elif contention and ph == _UP:
                    _share(ch, _INGRESS, now, -slot_rate[d, s2])
                slot_task[d, s2] = -1
                slot_phase[d, s2] = _FREE
                slot_ver[d, s2] += 1
                copies[task] -= 1
                if not done[task] and copies[task] == 0:
                    requeue[n_requeue] = task
                    n_requeue += 1
                    o = task_stage[task]
                    n_req[o] += 1
                    lo = min(lo, o)
                    lost += 1
                    stats[_REQUEUED] += 1
                    requeued_at[task] = now
            if in_flight[d] > 0:
                busy[d] += now - busy_start[d]
            in_flight[d] = 0
            holds[d, :] = False  # a device that leaves loses what it kept
            down_busy[d] = comp_busy[d] = up_busy[d] = False
            absence = down_dur[d, cycle[d]] if ver == -1 else _INF
            if np.isfinite(absence):
                heapq.heappush(heap, (now + absence, d, _REJOIN, d, 0, -1))
            while lost > 0 and n_idle > 0:  # re-queued tiles wake devices that found none
                cand = idle[n_idle - 1]
                n_idle -= 1
                in_idle[cand] = False
                if alive[cand]:
                    heapq.heappush(heap, (now, rank[cand], _KICK, cand, 0, 0))
                    lost -= 1
            continue
        elif kind == _REJOIN:
            alive[d] = True
            cycle[d] += 1
            if cycle[d] < up_dur.shape[1] and np.isfinite(up_dur[d, cycle[d]]):
                heapq.heappush(heap, (now + up_dur[d, cycle[d]], d, _FAIL, d, 0, -1))
            wake = d
        elif kind == _KICK:
            if pull_pending[d] and now >= next_pull[d]:
                pull_pending[d] = False
            wake = d
        # the woken device pulls (when its downlink is free, it has room and its period has passed):
        # from the earliest occurrence with work it can run, a re-queued tile, a fresh one, or a backup
        if wake < 0 or not alive[wake]:
            continue
        dd = wake
        if down_busy[dd] or in_flight[dd] >= n_slot:
            continue
        if now < next_pull[dd]:
            if not pull_pending[dd]:
                pull_pending[dd] = True
                heapq.heappush(heap, (next_pull[dd], rank[dd], _KICK, dd, 0, 0))
            continue
        while lo <= hi and avail[lo] == 0 and n_req[lo] == 0:
            lo += 1
        task, o = -1, -1
        is_backup = False
        for o2 in range(lo, hi + 1):
            if (avail[o2] == 0 and n_req[o2] == 0) or not eligible[st_plan[o2], dd]:
                continue
            if (
                in_flight[dd]
                >= _timing(
                    o2,
                    dd,
                    st_down,
                    st_flops,
                    st_up,
                    st_mem,
                    st_weight,
                    flops,
                    est_down,
                    est_up,
                    memory,
                    rtt,
                    n_slot,
                )[2]
            ):
                continue
            j = n_requeue - 1
            while n_req[o2] > 0 and j >= 0 and task < 0:
                cand_task = requeue[j]
                if task_stage[cand_task] == o2:
                    requeue[j] = requeue[n_requeue - 1]
                    n_requeue -= 1
                    n_req[o2] -= 1
                    if not done[cand_task] and copies[cand_task] == 0:
                        task = cand_task
                j -= 1
            if task < 0 and avail[o2] > 0:
                size = st_tasks[o2] // st_parts[o2]
                for k in range(st_parts[o2]):
                    p = part_base[o2] + k
                    if part_open[p] and part_next[p] < size:
                        task = base[o2] + k * size + part_next[p]
                        part_next[p] += 1
                        avail[o2] -= 1
                        break
            if task >= 0:
                o = o2
                break
        if task < 0 and backups and open_tasks > 0:
            if not backup_built:
                n_backup = 0
                for hd in range(n_dev):
                    for hs in range(n_slot):
                        if slot_task[hd, hs] >= 0:
                            backup_order[n_backup] = hd * n_slot + hs
                            n_backup += 1
                keys = np.empty(n_backup)
                for j in range(n_backup):
                    keys[j] = -slot_end[backup_order[j] // n_slot, backup_order[j] % n_slot]
                srt = np.argsort(keys, kind="mergesort")
                backup_order[:n_backup] = backup_order[:n_backup][srt]
                backup_pos, backup_built = 0, True
            while backup_pos < n_backup:
                hd, hs = backup_order[backup_pos] // n_slot, backup_order[backup_pos] % n_slot
                ht = slot_task[hd, hs]
                if ht < 0 or done[ht] or copies[ht] >= 2 or hd == dd:
                    backup_pos += 1
                    continue
                o2 = task_stage[ht]
                _, lat, dep = _timing(
                    o2,
                    dd,
                    st_down,
                    st_flops,
                    st_up,
                    st_mem,
                    st_weight,
                    flops,
                    est_down,
                    est_up,
                    memory,
                    rtt,
                    n_slot,
                )
                if not eligible[st_plan[o2], dd] or in_flight[dd] >= dep:
                    break
                if slot_end[hd, hs] > now + lat:
                    task, o = ht, o2
                    is_backup = True
                    backup_pos += 1
                break
        if task < 0:
            if not in_idle[dd]:
                in_idle[dd] = True
                idle[n_idle] = dd
                n_idle += 1
            continue
        per, lat, _ = _timing(
            o, dd, st_down, st_flops, st_up, st_mem, st_weight, flops, est_down, est_up, memory, rtt, n_slot
        )
        s = 0
        while slot_task[dd, s] >= 0:
            s += 1
        slot_task[dd, s] = task
        slot_seq[dd, s] = pulls[dd]
        pulls[dd] += 1
        copies[task] += 1
        holder[task, 1 if is_backup else 0] = dd * n_slot + s
        if is_backup:
            stats[_BACKUPS] += 1
        if in_flight[dd] == 0:
            busy_start[dd] = now
        in_flight[dd] += 1
        fetch = st_key[o] >= 0 and not holds[dd, st_key[o]]
        for s2 in range(n_slot):  # a weight already on its way with another of this device's tasks
            if (
                s2 != s
                and slot_task[dd, s2] >= 0
                and slot_fetch[dd, s2]
                and st_key[task_stage[slot_task[dd, s2]]] == st_key[o]
            ):
                fetch = False
        slot_fetch[dd, s] = fetch
        setup = st_weight[o] / est_down[dd] if fetch else 0.0
        slot_end[dd, s] = now + setup + lat
        next_pull[dd] = now + setup + per
        down_busy[dd] = True
        slot_phase[dd, s] = _DOWN
        _start_transfer(
            _EGRESS,
            _DOWNLOAD_END,
            dd,
            s,
            st_down[o] + (st_weight[o] if fetch else 0.0),
            down[dd],
            now,
            heap,
            vdn,
            ch,
            contention,
            rank,
            slot_ver,
            slot_rate,
            use_traces,
            tr_pre,
            tr_start,
            tr_len,
            tr_off,
            tr_step,
        )
    return stage_end, busy, stats, stages_done, recovery


def micro_batch_parts(gp: GemmPlan, graph: OpGraph) -> int:
    """Independent micro-batch groups in a GEMM's tiling: its tasks split into this many equal parts,
    each needing only its own micro-batches (tiles whose rows or products align with micro-batch
    boundaries); 1 when every tile needs the whole batch."""
    micro = graph.micro_batches
    if gp.on_ps:
        return micro
    if gp.gemm.batch % micro == 0:  # products grouped by sequence (attention) or micro-batch (dW)
        return math.gcd(gp.grid.batch_chunks, micro)
    if gp.gemm.m == graph.tokens and gp.grid.batch_chunks == 1:  # token rows
        return math.gcd(gp.grid.grid_rows, micro)
    return 1


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


def _check_inputs(plan: Plan, config: SimConfig, fail_device: int) -> None:
    if config.traces and plan.pool.traces is None:
        raise InvalidInputError(
            "the pool has no bandwidth traces; draw it with traces=load_traces() "
            "or pass SimConfig(traces=False)"
        )
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
    # numba's Dispatcher stub does not know the kernel's parameters
    stage_end, busy, stats, reached, recovery = _simulate(  # type: ignore[call-arg]
        occ.plan,
        occ.tasks,
        occ.parts,
        occ.down,
        occ.flops,
        occ.up,
        occ.memory,
        occ.weight,
        occ.key,
        occ.n_keys,
        occ.ps,
        int(plan.graph.micro_batches),
        np.ascontiguousarray(plan.eligible()),
        *(
            np.ascontiguousarray(a, dtype=float)
            for a in (
                pool.flops,
                links.down,
                links.up,
                pool.effective_down,
                pool.effective_up,
                pool.memory,
                pool.rtt,
            )
        ),
        links.use,
        links.prefix,
        links.start,
        links.length,
        links.offset,
        links.step_s,
        up_dur,
        down_dur,
        float(egress),
        float(ingress),
        bool(config.backups),
        float(config.straggler_prob),
        float(config.straggler_factor),
        int(gen.integers(2**31)),
        float(fail_at),
        int(fail_device),
        int(pool.tasks_in_flight),
    )
    if reached < len(occ.plan):
        raise InvalidInputError(
            f"the step could not finish: GEMM occurrence {reached} of {len(occ.plan)} "
            "lost every device able to run it"
        )
    return _result(stage_end, busy, stats, recovery)
