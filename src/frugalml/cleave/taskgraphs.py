"""The edge baselines as task graphs run event by event: SWARM-like pipelines, Megatron TP + DP, DP.

Each baseline's best configuration (searched in closed form by :mod:`frugalml.cleave.baselines`)
becomes tasks on the same pool: compute on a device's processor, transfers on the sender's uplink
at ``min(sender up, receiver down)``, gradient rings; the list scheduler of
:mod:`frugalml.cleave.pipeline` runs it (each resource executes its tasks in the graph's order, a
task starts once its resource is free and its inputs have arrived). The closed forms stay as checks.

* SWARM-like: every sequence is one micro-batch routed through one device per stage; a stage sends
  each micro-batch to the member that would finish it earliest (SWARM's throughput-aware wiring);
  devices run their forwards, then their backwards (latest micro-batch first), sends overlap
  compute; each stage's gradients are averaged in a ring over its members once its backwards end.
* Megatron-style: per group of ``t`` devices and layer, two forward and two backward compute
  halves, each followed by a ring all-reduce of the activations (``2 (t - 1)`` steps, each member
  sending ``1/t`` of them to the next); no compute/communication overlap; then one gradient ring
  per tensor-parallel rank across groups.
* DP: every replica computes its speed-balanced share, then gradients go to and come from a
  parameter server over each replica's own links (the closed form's model).
"""

from __future__ import annotations

import numpy as np

from frugalml.cleave.baselines import BaselineResult, _shapes
from frugalml.cleave.devices import Pool
from frugalml.cleave.opgraph import OpGraph
from frugalml.cleave.pipeline import _run, simulate_pipeline
from frugalml.common.errors import InvalidInputError


class _Tasks:
    """Tasks in topological order (also each resource's order): duration, resource, predecessors."""

    def __init__(self) -> None:
        self.dur: list[float] = []
        self.res: list[int] = []
        self.preds: list[list[int]] = []

    def add(self, seconds: float, resource: int, preds: list[int]) -> int:
        self.dur.append(float(seconds))
        self.res.append(resource)
        self.preds.append(preds)
        return len(self.dur) - 1

    def run(self, resources: int) -> np.ndarray:
        return _run(self.dur, self.res, self.preds, np.zeros(resources))


def _pool(result: BaselineResult) -> Pool:
    """The pool ``result``'s device indices refer to."""
    if result.pool is None:
        raise InvalidInputError(f"the {result.name} result carries no pool; get it from run_baselines")
    return result.pool


def _extra_forwards(result: BaselineResult) -> float:
    """Forwards redone before each backward: 1 with activation recomputation, else 0."""
    return 1.0 if result.layout.get("recompute", False) else 0.0


def simulate_swarm(graph: OpGraph, result: BaselineResult) -> float:
    """Step time of the SWARM-like configuration in ``result``, simulated task by task."""
    pool, stages, layers = _pool(result), result.layout["stages"], result.layout["layers"]
    layer_flops, head_flops, layer_bytes, _ = _shapes(graph)
    seq, micro = graph.seq, graph.batch
    up, down, flops = pool.effective_up, pool.effective_down, pool.flops
    act = seq * graph.model.hidden * 2.0
    pp = len(stages)
    # per micro-batch and stage member: forward (1/3 of the FLOPs) and backward (2/3) seconds
    extra = _extra_forwards(result)
    work = [
        (layers[s] * layer_flops + (head_flops if s == pp - 1 else 0.0)) / graph.tokens * seq
        for s in range(pp)
    ]
    route = np.empty((micro, pp), dtype=np.int64)
    for s, members in enumerate(stages):  # earliest finish: compute and uplink load per member
        comp = work[s] / flops[members]
        send = act / up[members] if s < pp - 1 else np.zeros(len(members))
        back = act / up[members] if s > 0 else np.zeros(len(members))
        load_c, load_u = np.zeros(len(members)), np.zeros(len(members))
        for b in range(micro):
            j = int(np.argmin(np.maximum(load_c + comp, load_u + send + back)))
            route[b, s] = members[j]
            load_c[j] += comp[j]
            load_u[j] += send[j] + back[j]
    tasks = _Tasks()
    n = len(pool)  # resources: device d's compute is 2 d, its uplink 2 d + 1; rings after them
    fwd_end = np.empty((micro, pp), dtype=np.int64)
    for b in range(micro):
        came: list[int] = []
        for s in range(pp):
            d = route[b, s]
            f = tasks.add(work[s] / 3 / flops[d], 2 * d, came)
            fwd_end[b, s] = f
            if s < pp - 1:
                came = [tasks.add(act / min(up[d], down[route[b, s + 1]]), 2 * d + 1, [f])]
    last = {}
    for b in reversed(range(micro)):
        came = [int(fwd_end[b, pp - 1])]
        for s in reversed(range(pp)):
            d = route[b, s]
            g = tasks.add((2 + extra) * work[s] / 3 / flops[d], 2 * d, came)
            last[d] = g
            if s > 0:
                came = [tasks.add(act / min(up[d], down[route[b, s - 1]]), 2 * d + 1, [g])]
    for s, members in enumerate(stages):
        used = [d for d in members if d in last]
        k = len(used)
        if k > 1:
            ring = 2 * (k - 1) / k * layers[s] * layer_bytes / up[used].min()
            tasks.add(ring, 2 * n + s, [last[d] for d in used])
    return float(tasks.run(2 * n + pp).max())


def simulate_megatron(graph: OpGraph, result: BaselineResult) -> float:
    """Step time of the Megatron-style configuration in ``result``, simulated task by task.

    Groups run independently until the gradient rings, so each group's graph runs on its own and
    the rings start when the slowest group ends.
    """
    pool, members = _pool(result), result.layout["members"]
    layer_flops, head_flops, _, _ = _shapes(graph)
    model = graph.model
    groups, t = members.shape
    tokens = graph.tokens / groups
    act = tokens * model.hidden * 2.0
    up, down, flops = pool.effective_up, pool.effective_down, pool.flops
    ends = np.empty(groups)
    for g in range(groups):
        m = members[g]
        link = np.minimum(up[m], down[np.roll(m, -1)])  # member i sends to member i + 1
        layer = layer_flops / graph.tokens * tokens / t  # fwd + bwd FLOPs of one layer per member
        tasks = _Tasks()
        ready: list[list[int]] = [[] for _ in range(t)]  # what each member's next compute waits for
        extra = _extra_forwards(result)
        for _layer in range(model.layers):
            # attention and MLP halves, forward then backward
            for share in (1 / 6, 1 / 6, (2 + extra) / 6, (2 + extra) / 6):
                done = [tasks.add(share * layer / flops[m[i]], 2 * i, ready[i]) for i in range(t)]
                if t == 1:
                    ready = [[done[0]]]
                    continue
                prev = done  # ring: at step k member i sends what it got from member i - 1 at step k - 1
                for _step in range(2 * (t - 1)):
                    prev = [
                        tasks.add(act / t / link[i], 2 * i + 1, [prev[i - 1] if _step else done[i]])
                        for i in range(t)
                    ]
                ready = [[prev[i - 1], done[i]] for i in range(t)]
        end = tasks.run(2 * t).max()
        ends[g] = end + head_flops * (3 + extra) / 3 / graph.tokens * tokens / t / flops[m].min()
    grads = (
        2 * (groups - 1) / groups * (model.params * 2.0 / t) / up[members.ravel()].min()
        if groups > 1
        else 0.0
    )
    return float(ends.max() + grads)


def simulate_dp(graph: OpGraph, result: BaselineResult) -> float:
    """Step time of plain data parallelism: speed-balanced compute, then each replica's gradient
    upload to and model download from a parameter server over its own links."""
    pool, devices = _pool(result), result.layout["devices"]
    compute = graph.gemm_flops * (3 + _extra_forwards(result)) / 3 / pool.flops[devices].sum()
    grads = graph.model.params * 2.0
    tasks = _Tasks()
    n = len(devices)
    for i, d in enumerate(devices):
        c = tasks.add(compute, 2 * i, [])
        tasks.add(grads / pool.effective_up[d], 2 * i + 1, [c])
    pushed = tasks.run(2 * n)
    # the PS averages once every replica's gradients are in, then every replica downloads the model
    return float(pushed.max() + grads / pool.effective_down[devices].min())


def simulate_baseline(graph: OpGraph, result: BaselineResult) -> float:
    """Step time of any edge baseline's best configuration as a task graph (inf if it cannot run).

    Raises
    ------
    InvalidInputError
        An unknown baseline name.
    """
    if not np.isfinite(result.seconds):
        return float("inf")
    if result.name == "asteroid":
        if result.pipeline is None:
            raise InvalidInputError("the asteroid result carries no pipeline; get it from run_baselines")
        return float(simulate_pipeline(result.pipeline).seconds)
    run = {"swarm": simulate_swarm, "megatron": simulate_megatron, "dp": simulate_dp}
    if result.name not in run:
        raise InvalidInputError(
            f"no task graph for baseline {result.name!r}; use one of asteroid, {', '.join(run)}"
        )
    return float(run[result.name](graph, result))
