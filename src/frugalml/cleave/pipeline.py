"""The Asteroid-like baseline as a task graph run event by event: step time and failure recovery.

``dp`` pipelines of ``pp`` stages (one device each) train ``micro`` micro-batches GPipe-style:
every stage runs its forwards, then its backwards, on its compute; activations and their
gradients cross stage boundaries on the sender's uplink (``min(sender up, receiver down)``),
overlapping compute; once every pipeline has finished a stage's backwards, that stage's gradients
are all-reduced in a ring. :func:`simulate_pipeline` runs the graph (each resource executes its
tasks in order, a task starts when its inputs are ready); :func:`pipeline_seconds` is the same
schedule in closed form (each phase is a flow shop of identical micro-batches: the sum of the
stage times plus ``micro - 1`` times the slowest), equal to the simulation without failures.

A failure (device, time) makes Asteroid re-plan (:data:`REPLAN_SECONDS`), migrate the lost
stage's weights to a replacement device (as fast as the lost one) over its downlink, replay the
forwards whose stashed activations died with the device, and redo the device's unfinished tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

REPLAN_SECONDS = 5.0


@dataclass(frozen=True)
class PipelineConfig:
    """Seconds per micro-batch of every stage (``[pipeline, stage]``) and per stage ring.

    ``send[j, s]`` moves stage ``s``'s activations to ``s + 1`` and ``send_back[j, s]`` the
    gradients from ``s`` to ``s - 1`` (0 where there is no neighbour); ``migrate[j, s]`` is the
    time to move stage ``s``'s weights to a replacement device.
    """

    devices: np.ndarray
    micro: int
    fwd: np.ndarray
    bwd: np.ndarray
    send: np.ndarray
    send_back: np.ndarray
    ring: np.ndarray
    migrate: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.fwd.shape


def _flow_shop_ends(times: np.ndarray, jobs: int) -> np.ndarray:
    """End of the last of ``jobs`` identical jobs on each machine of a chain (unlimited buffers)."""
    return np.cumsum(times, axis=-1) + (jobs - 1) * np.maximum.accumulate(times, axis=-1)


def pipeline_seconds(cfg: PipelineConfig) -> float:
    """Closed-form step time of the GPipe schedule (equals :func:`simulate_pipeline` with no failure)."""
    dp, pp = cfg.shape
    m = cfg.micro
    forward = np.empty((dp, 2 * pp - 1))  # compute, send, compute, ... through the last stage
    forward[:, 0::2], forward[:, 1::2] = cfg.fwd, cfg.send[:, :-1]
    t_fwd = _flow_shop_ends(forward, m)[:, -1]
    backward = np.empty((dp, 2 * pp - 1))  # last stage's backward, its gradient send, ...
    backward[:, 0::2], backward[:, 1::2] = cfg.bwd[:, ::-1], cfg.send_back[:, :0:-1]
    ends = t_fwd[:, None] + _flow_shop_ends(backward, m)[:, 0::2][:, ::-1]  # [pipeline, stage]
    return float(np.max(ends.max(axis=0) + cfg.ring))


def critical_pipeline(cfg: PipelineConfig) -> int:
    """The pipeline that finishes its backwards last (a failure there delays the step most)."""
    dur, res, preds, dev, _, _ = _graph(cfg)
    end = _run(dur, res, preds, np.zeros(2 * cfg.fwd.size + cfg.shape[1]))
    dev = np.asarray(dev)
    return int(np.argmax([end[dev // cfg.shape[1] == j].max() for j in range(cfg.shape[0])]))


def busy_until(cfg: PipelineConfig) -> np.ndarray:
    """When each device's last task (compute or send) ends in the clean schedule, ``[pipeline, stage]``."""
    dur, res, preds, dev, _, _ = _graph(cfg)
    end = _run(dur, res, preds, np.zeros(2 * cfg.fwd.size + cfg.shape[1]))
    dev = np.asarray(dev)
    last = np.zeros(cfg.fwd.size)
    np.maximum.at(last, dev[dev >= 0], end[dev >= 0])
    return last.reshape(cfg.shape)


def pipeline_recovery(cfg: PipelineConfig, trials: int = 3, seed: int = 0) -> tuple[float, float, float]:
    """Mean (redone, delay, clean step) over ``trials`` failures of random stages of the critical
    pipeline at random times in the middle 20-80% of the step."""
    gen = np.random.default_rng(seed)
    clean = simulate_pipeline(cfg).seconds
    j = critical_pipeline(cfg)
    runs = [
        simulate_pipeline(
            cfg, fail=(j, int(gen.integers(cfg.shape[1]))), fail_at=float(gen.uniform(0.2, 0.8) * clean)
        )
        for _ in range(trials)
    ]
    return float(np.mean([r.redone for r in runs])), float(np.mean([r.delay for r in runs])), clean


@numba.njit(cache=True)
def _list_schedule(duration, resource, pred_ptr, pred_idx, ready_at, fixed_end):
    """End of every task, given in a topological order that is also each resource's order.

    A task starts when its resource is free and its predecessors have ended; tasks with a
    ``fixed_end`` (>= 0) already happened and keep that end.
    """
    free = ready_at.copy()
    end = np.empty(len(duration))
    for t in range(len(duration)):
        if fixed_end[t] >= 0:
            end[t] = fixed_end[t]
            free[resource[t]] = max(free[resource[t]], end[t])
            continue
        s = free[resource[t]]
        for k in range(pred_ptr[t], pred_ptr[t + 1]):
            s = max(s, end[pred_idx[k]])
        end[t] = s + duration[t]
        free[resource[t]] = end[t]
    return end


def _graph(cfg: PipelineConfig):
    """Tasks in topological order: (duration, resource, predecessors, device, kind, micro-batch, stage).

    Resources: ``2 * (j * pp + s)`` is device (j, s)'s compute, ``+ 1`` its uplink; the rings follow.
    """
    dp, pp = cfg.shape
    m = cfg.micro
    dur, res, preds, dev, kind, mb = [], [], [], [], [], []
    last_bwd = np.empty((dp, pp), dtype=np.int64)

    def add(d, r, p, device, k, b):
        dur.append(d)
        res.append(r)
        preds.append(p)
        dev.append(device)
        kind.append(k)
        mb.append(b)
        return len(dur) - 1

    for j in range(dp):
        fwd_end = np.empty(pp, dtype=np.int64)
        for b in range(m):
            came: list[int] = []
            for s in range(pp):
                node = j * pp + s
                f = add(cfg.fwd[j, s], 2 * node, came, node, 0, b)
                fwd_end[s] = f
                came = [add(cfg.send[j, s], 2 * node + 1, [f], node, 1, b)] if s < pp - 1 else []
        for b in reversed(range(m)):
            came = [fwd_end[pp - 1]] if b == m - 1 else []
            for s in reversed(range(pp)):
                node = j * pp + s
                g = add(cfg.bwd[j, s], 2 * node, came, node, 2, b)
                last_bwd[j, s] = g
                came = [add(cfg.send_back[j, s], 2 * node + 1, [g], node, 3, b)] if s > 0 else []
    for s in range(pp):
        add(cfg.ring[s], 2 * dp * pp + s, list(last_bwd[:, s]), -1, 4, -1)
    return dur, res, preds, dev, kind, mb


def _run(dur, res, preds, ready_at, fixed_end=None) -> np.ndarray:
    ptr = np.concatenate([[0], np.cumsum([len(p) for p in preds])]).astype(np.int64)
    idx = np.array([q for p in preds for q in p], dtype=np.int64)
    fixed = np.full(len(dur), -1.0) if fixed_end is None else fixed_end
    return _list_schedule(
        np.asarray(dur, dtype=float), np.asarray(res, dtype=np.int64), ptr, idx, ready_at, fixed
    )


@dataclass
class PipelineRun:
    """A simulated step: its time and, with a failure, what the failure cost."""

    seconds: float
    clean_seconds: float
    failed_at: float = float("nan")
    delay: float = 0.0  # extra step time caused by the failure
    to_step_end: float = float("nan")  # from the failure to the step's end
    redone: float = 0.0  # from the failure until the lost device's unfinished tasks are done again


def simulate_pipeline(
    cfg: PipelineConfig, fail: tuple[int, int] | None = None, fail_at: float = 0.0
) -> PipelineRun:
    """Run the step's task graph; with ``fail=(pipeline, stage)``, that device dies at ``fail_at``.

    The failed device's unfinished tasks move to a replacement that starts after re-planning and
    migrating the stage's weights; it first replays the forwards whose activations were lost
    (those whose backward had not run), then carries on in the schedule's order.
    """
    dp, pp = cfg.shape
    dur, res, preds, dev, kind, mb = _graph(cfg)
    n_res = 2 * dp * pp + pp
    end = _run(dur, res, preds, np.zeros(n_res))
    clean = float(end.max())
    if fail is None:
        return PipelineRun(clean, clean)
    j, s = fail
    node = j * pp + s
    dev_a, kind_a, mb_a = np.asarray(dev), np.asarray(kind), np.asarray(mb)
    mine = dev_a == node
    lost = mine & (end > fail_at)
    if not lost.any():
        return PipelineRun(clean, clean, fail_at, 0.0, clean - fail_at)
    bwd_lost = set(mb_a[lost & (kind_a == 2)].tolist())
    replay = mine & ~lost & (kind_a == 0) & np.isin(mb_a, list(bwd_lost))
    replay_seconds = float(np.sum(np.asarray(dur)[replay]))
    if s > 0:  # the previous stage sends those activations again
        replay_seconds += float(replay.sum()) * cfg.send[j, s - 1]
    ready = np.zeros(n_res)
    ready[2 * node] = ready[2 * node + 1] = fail_at + REPLAN_SECONDS + cfg.migrate[j, s] + replay_seconds
    # everything that ended before the failure happened as it did (a task ending by then depends only
    # on tasks ending by then); the rest is scheduled again around the replacement
    end2 = _run(dur, res, preds, ready, np.where(end <= fail_at, end, -1.0))
    seconds = float(end2.max())
    return PipelineRun(
        seconds, clean, fail_at, seconds - clean, seconds - fail_at, float(end2[lost].max()) - fail_at
    )
