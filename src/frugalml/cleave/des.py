"""Discrete-event simulator of a Cleave training step (numba; 10,000 devices in seconds).

One task queue per GEMM occurrence, executed in step order with a barrier between GEMMs (the
next GEMM needs this one's output, and PS ops run in between). Idle devices pull tasks: NONE ->
INGRESS (bytes over the downlink, sharing the PS NIC) -> COMPUTE (FLOPs, sometimes a straggler)
-> EGRESS (bytes over the uplink, plus one round trip). Links follow real traces; devices leave
and return (Weibull sessions and absences) and a leaving device's in-flight tile is re-queued;
when a GEMM's queue runs dry, idle devices run backup copies of the slowest in-flight tiles and
the first copy to finish wins.

Transfers integrate the device's trace over time. PS NIC sharing is weighted fair sharing:
while the active downloads ask for more than the PS egress, every download is slowed by the same
factor (``egress / sum of their rates``, each rate fixed when the download starts). The PS
ingress (small output tiles) is not shared.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numba
import numpy as np

from frugalml.cleave.analytic import stage_ps_seconds
from frugalml.cleave.planner import Plan
from frugalml.common.errors import InvalidInputError
from frugalml.common.seeding import rng as make_rng

_COMPUTE_END, _UPLOAD_END, _FAIL, _REJOIN, _STAGE_START, _DOWNLOAD_END = 0, 1, 2, 3, 4, 5
_IDLE, _DOWN, _COMPUTE, _UP = 0, 1, 2, 3
_INF = np.inf


@dataclass(frozen=True)
class SimConfig:
    """What the simulator models; turn everything off to reproduce the analytic model exactly.

    Parameters
    ----------
    contention : bool
        Share the PS egress among concurrent downloads.
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
    """

    contention: bool = True
    churn: bool = True
    traces: bool = True
    backups: bool = True
    straggler_prob: float = 0.02
    straggler_factor: float = 4.0
    churn_cycles: int = 16

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
def _simulate(st_plan, st_tasks, st_down, st_flops, st_up, st_ps, eligible,
              flops, down, up, rtt, use_traces, tr_pre, tr_start, tr_len, tr_off, tr_step,
              up_dur, down_dur, egress, backups, straggler_prob, straggler_factor, seed,
              inject_time, inject_device):
    np.random.seed(seed)
    n_dev = len(flops)
    n_stage = len(st_tasks)
    max_tasks = 1
    for s in range(n_stage):
        max_tasks = max(max_tasks, st_tasks[s])
    contention = np.isfinite(egress)
    # device state
    alive = np.ones(n_dev, dtype=np.bool_)
    phase = np.zeros(n_dev, dtype=np.int64)
    version = np.zeros(n_dev, dtype=np.int64)
    task_of = np.full(n_dev, -1, dtype=np.int64)
    cycle = np.zeros(n_dev, dtype=np.int64)
    rank = np.arange(n_dev)
    cap = np.zeros(n_dev)
    busy_start = np.zeros(n_dev)
    expected_end = np.zeros(n_dev)
    busy = np.zeros(n_dev)
    # task state of the running stage
    done = np.zeros(max_tasks, dtype=np.bool_)
    copies = np.zeros(max_tasks, dtype=np.int64)
    holder = np.full((max_tasks, 2), -1, dtype=np.int64)
    requeue = np.empty(max_tasks, dtype=np.int64)
    idle = np.empty(n_dev, dtype=np.int64)
    backup_order = np.empty(n_dev, dtype=np.int64)
    stage_end = np.zeros(n_stage)
    stats = np.zeros(6, dtype=np.int64)  # tasks, requeued, backups, backups won, failures, events
    requeued_at = np.full(max_tasks, -1.0)
    recovery = np.zeros(2)  # total seconds from a failure to its lost tile finishing again, count
    heap = [(0.0, 0, _STAGE_START, 0, 0)]
    vheap = [(0.0, 0, 0, 0)]
    vheap.pop()
    v_clock, v_time, phi, demand = 0.0, 0.0, 1.0, 0.0
    stage, running = -1, False
    next_task, n_done, n_requeue, n_idle = 0, 0, 0, 0
    n_backup, backup_pos, backup_built = 0, 0, False
    for d in range(n_dev):
        if np.isfinite(up_dur[d, 0]):
            heapq.heappush(heap, (up_dur[d, 0], d, _FAIL, d, -1))
    if inject_device >= 0:
        heapq.heappush(heap, (inject_time, inject_device, _FAIL, inject_device, -2))

    while True:
        while len(vheap) > 0 and (vheap[0][3] != version[vheap[0][2]] or phase[vheap[0][2]] != _DOWN):
            heapq.heappop(vheap)
        t_v = _INF
        if len(vheap) > 0:
            t_v = v_time + (vheap[0][0] - v_clock) / phi
        t_h = heap[0][0] if len(heap) > 0 else _INF
        if t_v == _INF and t_h == _INF:
            break
        if t_v < t_h:
            item = heapq.heappop(vheap)
            now, d, kind, ver = t_v, item[2], _DOWNLOAD_END, item[3]
        else:
            item = heapq.heappop(heap)
            now, d, kind, ver = item[0], item[3], item[2], item[4]
            if kind <= _UPLOAD_END or kind == _DOWNLOAD_END:
                if ver != version[d]:
                    continue
        stats[5] += 1
        wake = -1  # a device that should try to pull after this event
        if kind == _STAGE_START:
            if stage >= 0:
                stage_end[stage] = now
            stage = d
            if stage >= n_stage:
                break
            if st_tasks[stage] == 0:  # a GEMM the PS keeps: only PS time
                heapq.heappush(heap, (now + st_ps[stage], 0, _STAGE_START, stage + 1, 0))
                continue
            running = True
            next_task, n_done, n_requeue, n_idle, backup_built = 0, 0, 0, 0, False
            nt = st_tasks[stage]
            done[:nt] = False
            requeued_at[:nt] = -1.0
            copies[:nt] = 0
            holder[:nt] = -1
            est = st_down[stage] / down + st_flops[stage] / flops + st_up[stage] / up + rtt
            order = np.argsort(est, kind="mergesort")
            for r in range(n_dev):
                rank[order[r]] = r
            for r in range(n_dev):
                dd = order[r]
                if alive[dd] and eligible[st_plan[stage], dd]:
                    idle[n_idle] = dd
                    n_idle += 1
            # devices pull fastest first; the idle list is drained below
            pulling = idle[:n_idle].copy()
            n_idle = 0
            for dd in pulling:
                # pull (inlined below through the same code path)
                task = -1
                if next_task < nt:
                    task = next_task
                    next_task += 1
                if task < 0:
                    idle[n_idle] = dd
                    n_idle += 1
                    continue
                task_of[dd] = task
                copies[task] += 1
                holder[task, 0] = dd
                busy_start[dd] = now
                expected_end[dd] = now + est[dd]
                alone = _transfer_seconds(st_down[stage], down[dd], use_traces, tr_pre, tr_start, tr_len,
                                          tr_off, tr_step, dd, now)
                cap[dd] = st_down[stage] / alone
                phase[dd] = _DOWN
                if contention:
                    v_clock += phi * (now - v_time)
                    v_time = now
                    demand += cap[dd]
                    heapq.heappush(vheap, (v_clock + alone, rank[dd], dd, version[dd]))
                else:
                    heapq.heappush(heap, (now + alone, rank[dd], _DOWNLOAD_END, dd, version[dd]))
            if contention:
                phi = min(1.0, egress / demand) if demand > 0 else 1.0
            continue
        if kind == _DOWNLOAD_END:
            if contention:
                v_clock += phi * (now - v_time)
                v_time = now
                demand -= cap[d]
                if demand < 1e-9 * egress:
                    demand = 0.0
                phi = min(1.0, egress / demand) if demand > 0 else 1.0
            seconds = st_flops[stage] / flops[d]
            if straggler_prob > 0 and np.random.random() < straggler_prob:
                seconds *= straggler_factor
            phase[d] = _COMPUTE
            heapq.heappush(heap, (now + seconds, rank[d], _COMPUTE_END, d, version[d]))
            continue
        if kind == _COMPUTE_END:
            seconds = _transfer_seconds(st_up[stage], up[d], use_traces, tr_pre, tr_start, tr_len, tr_off,
                                        tr_step, d, now)
            phase[d] = _UP
            heapq.heappush(heap, (now + (seconds + rtt[d]), rank[d], _UPLOAD_END, d, version[d]))
            continue
        if kind == _UPLOAD_END:
            task = task_of[d]
            busy[d] += now - busy_start[d]
            phase[d] = _IDLE
            task_of[d] = -1
            copies[task] -= 1
            if not done[task]:
                done[task] = True
                n_done += 1
                stats[0] += 1
                if requeued_at[task] >= 0:
                    recovery[0] += now - requeued_at[task]
                    recovery[1] += 1
                if holder[task, 1] == d:
                    stats[3] += 1
                for j in range(2):
                    other = holder[task, j]
                    if other >= 0 and other != d and task_of[other] == task:
                        if phase[other] == _DOWN and contention:
                            v_clock += phi * (now - v_time)
                            v_time = now
                            demand -= cap[other]
                            if demand < 1e-9 * egress:
                                demand = 0.0
                            phi = min(1.0, egress / demand) if demand > 0 else 1.0
                        version[other] += 1
                        busy[other] += now - busy_start[other]
                        phase[other] = _IDLE
                        task_of[other] = -1
                        copies[task] -= 1
                        if n_done < st_tasks[stage]:
                            idle[n_idle] = other
                            n_idle += 1
            if n_done == st_tasks[stage]:
                running = False
                heapq.heappush(heap, (now + st_ps[stage], 0, _STAGE_START, stage + 1, 0))
                continue
            wake = d
        elif kind == _FAIL:
            if not alive[d]:
                continue
            alive[d] = False
            stats[4] += 1
            task = task_of[d]
            if task >= 0:
                if phase[d] == _DOWN and contention:
                    v_clock += phi * (now - v_time)
                    v_time = now
                    demand -= cap[d]
                    if demand < 1e-9 * egress:
                        demand = 0.0
                    phi = min(1.0, egress / demand) if demand > 0 else 1.0
                busy[d] += now - busy_start[d]
                copies[task] -= 1
                task_of[d] = -1
                if not done[task] and copies[task] == 0:
                    requeue[n_requeue] = task
                    n_requeue += 1
                    stats[1] += 1
                    requeued_at[task] = now
            phase[d] = _IDLE
            version[d] += 1
            absence = down_dur[d, cycle[d]] if ver == -1 else _INF
            if np.isfinite(absence):
                heapq.heappush(heap, (now + absence, d, _REJOIN, d, -1))
            # a re-queued tile wakes an idle device
            while n_requeue > 0 and n_idle > 0:
                cand = idle[n_idle - 1]
                n_idle -= 1
                if alive[cand] and phase[cand] == _IDLE:
                    wake = cand
                    break
            if wake < 0:
                continue
        elif kind == _REJOIN:
            alive[d] = True
            cycle[d] += 1
            if cycle[d] < up_dur.shape[1] and np.isfinite(up_dur[d, cycle[d]]):
                heapq.heappush(heap, (now + up_dur[d, cycle[d]], d, _FAIL, d, -1))
            wake = d
        # the woken device pulls: a re-queued tile, a fresh one, or a backup copy
        if wake < 0 or not running or not alive[wake] or phase[wake] != _IDLE:
            continue
        if not eligible[st_plan[stage], wake]:
            continue
        nt = st_tasks[stage]
        task = -1
        is_backup = False
        while n_requeue > 0 and task < 0:
            n_requeue -= 1
            cand_task = requeue[n_requeue]
            if not done[cand_task] and copies[cand_task] == 0:
                task = cand_task
        if task < 0 and next_task < nt:
            task = next_task
            next_task += 1
        my_time = st_down[stage] / down[wake] + st_flops[stage] / flops[wake] + st_up[stage] / up[wake] \
            + rtt[wake]
        if task < 0 and backups:
            if not backup_built:
                n_backup = 0
                for dd in range(n_dev):
                    if task_of[dd] >= 0:
                        backup_order[n_backup] = dd
                        n_backup += 1
                keys = np.empty(n_backup)
                for j in range(n_backup):
                    keys[j] = -expected_end[backup_order[j]]
                srt = np.argsort(keys, kind="mergesort")
                backup_order[:n_backup] = backup_order[:n_backup][srt]
                backup_pos, backup_built = 0, True
            while backup_pos < n_backup:
                h = backup_order[backup_pos]
                ht = task_of[h]
                if ht < 0 or done[ht] or copies[ht] >= 2:
                    backup_pos += 1
                    continue
                if expected_end[h] > now + my_time:
                    task = ht
                    is_backup = True
                    backup_pos += 1
                break
        if task < 0:
            idle[n_idle] = wake
            n_idle += 1
            continue
        task_of[wake] = task
        copies[task] += 1
        holder[task, 1 if is_backup else 0] = wake
        if is_backup:
            stats[2] += 1
        busy_start[wake] = now
        expected_end[wake] = now + my_time
        alone = _transfer_seconds(st_down[stage], down[wake], use_traces, tr_pre, tr_start, tr_len, tr_off,
                                  tr_step, wake, now)
        cap[wake] = st_down[stage] / alone
        phase[wake] = _DOWN
        if contention:
            v_clock += phi * (now - v_time)
            v_time = now
            demand += cap[wake]
            phi = min(1.0, egress / demand)
            heapq.heappush(vheap, (v_clock + alone, rank[wake], wake, version[wake]))
        else:
            heapq.heappush(heap, (now + alone, rank[wake], _DOWNLOAD_END, wake, version[wake]))
    return stage_end, busy, stats, stage, recovery


def simulate_step(plan: Plan, config: SimConfig | None = None, *, seed: int = 0,
                  fail_device: int = -1, fail_at: float = 0.0) -> SimResult:
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
    pool = plan.pool
    if config.traces and pool.traces is None:
        raise InvalidInputError("the pool has no bandwidth traces; draw it with traces=load_traces() "
                                "or pass SimConfig(traces=False)")
    if not -1 <= fail_device < len(pool):
        raise InvalidInputError(f"fail_device must be a device index below {len(pool)}, got {fail_device}")
    order = plan.graph.schedule()
    index = {gp.gemm.name: i for i, gp in enumerate(plan.gemm_plans)}
    st_plan = np.array([index[name] for name, _ in order], dtype=np.int64)
    gps = plan.gemm_plans
    per_plan = lambda f: np.array([f(gp) for gp in gps])[st_plan]  # noqa: E731
    ps = stage_ps_seconds(plan)[st_plan]
    gen = make_rng(seed)
    n = len(pool)
    if config.churn:
        s_shape, s_scale, a_shape, a_scale = pool.churn_params()
        k = config.churn_cycles
        up_dur = s_scale[:, None] * gen.weibull(s_shape[:, None], (n, k))
        down_dur = a_scale[:, None] * gen.weibull(a_shape[:, None], (n, k))
    else:
        up_dur = np.full((n, 1), np.inf)
        down_dur = np.full((n, 1), np.inf)
    traces = pool.traces if config.traces else None
    if traces:  # per-trace prefix sums of the multiplier, one extra leading zero per trace
        tr_pre = np.concatenate([np.concatenate([[0.0], np.cumsum(traces.data[s:s + n_s])])
                                 for s, n_s in zip(traces.start, traces.length, strict=True)])
    else:
        tr_pre = np.zeros(2)
    tr_start = (traces.start + np.arange(len(traces.start)))[pool.trace_index] if traces else \
        np.zeros(n, dtype=np.int64)
    tr_len = traces.length[pool.trace_index] if traces else np.ones(n, dtype=np.int64)
    tr_off = pool.trace_offset if traces else np.zeros(n)
    egress = pool.ps.egress if config.contention else np.inf
    stage_end, busy, stats, reached, recovery = _simulate(
        st_plan, per_plan(lambda gp: 0 if gp.on_ps else gp.grid.tasks).astype(np.int64),
        per_plan(lambda gp: gp.cost.bytes_down),
        per_plan(lambda gp: gp.cost.flops), per_plan(lambda gp: gp.cost.bytes_up), ps, plan.eligible(),
        pool.flops, pool.down, pool.up, pool.rtt, traces is not None, tr_pre, tr_start, tr_len, tr_off,
        traces.step_s if traces else 1.0, up_dur, down_dur, egress, config.backups,
        config.straggler_prob, config.straggler_factor, int(gen.integers(2**31)), fail_at, fail_device)
    if reached < len(st_plan):
        raise InvalidInputError(f"the step could not finish: GEMM occurrence {reached} of {len(st_plan)} "
                                "lost every device able to run it")
    return SimResult(float(stage_end[-1]), stage_end, busy, int(stats[0]), int(stats[1]), int(stats[2]),
                     int(stats[3]), int(stats[4]), int(stats[5]),
                     float(recovery[0] / recovery[1]) if recovery[1] else float("nan"))
