"""Edge-training baselines on the same pools and links: per-batch time and failure recovery.

Each baseline gets the same devices (effective FLOP/s, trace-effective link rates, task memory)
and the same op graph FLOPs as Cleave, and searches its own best configuration:

* ``asteroid``: Asteroid-like hybrid data x pipeline parallelism (dp pipelines of pp stages,
  layers split by device speed, GPipe schedule with sends overlapping compute, ring all-reduce of
  each stage's gradients over uplinks); also a task graph the simulator runs
  (:mod:`frugalml.cleave.pipeline`), where a failure re-plans, migrates the lost stage's weights
  and replays the lost activations.
* ``megatron``: Megatron-style tensor parallelism inside groups of t devices (4 activation
  all-reduces per layer over uplinks) plus data parallelism across groups.
* ``swarm``: SWARM-like randomised pipelines (devices wired to stages at random; throughput of
  the slowest stage; activations cross stage boundaries over uplinks; stage-wise averaging;
  devices below an uplink cut may be left out).
* ``dp``: plain data parallelism, only where the whole model fits a device.
* ``cloud``: k datacenter GPUs at a stated utilisation (the reference, not an edge method).

Every edge baseline's best configuration also runs as a task graph on the same pool
(:func:`frugalml.cleave.taskgraphs.simulate_baseline`); the closed forms here are its checks.

Memory, applied to every baseline alike: a device that trains a stage (or a tensor-parallel shard)
holds its fp16 weights, fp16 gradients and mixed-precision Adam state (fp32 master weights, m and v:
16 bytes per parameter, the ZeRO paper's accounting) plus the activations its schedule keeps until
their backward (GPipe: every in-flight micro-batch). Each search also tries activation
recomputation (keep only each layer's input, redo the forward before the backward: one extra
forward of compute) and keeps the faster feasible option. :func:`run_baselines` leaves out devices
whose trace is mostly outage (effective link below a quarter of nominal), since a synchronous ring or
pipeline would wait on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frugalml.cleave.devices import Pool
from frugalml.cleave.opgraph import OpGraph
from frugalml.cleave.pipeline import REPLAN_SECONDS, PipelineConfig, pipeline_seconds

STATE_BYTES_PER_PARAM = 16  # fp16 weights + fp16 gradients + fp32 master, Adam m, Adam v
RECOMPUTE = (False, True)
SWARM_UPLINK_CUTS = (0.0, 0.25, 0.5, 0.75)
MIN_LINK_FACTOR = 0.25
BASELINES = ("asteroid", "megatron", "swarm", "dp")


@dataclass
class BaselineResult:
    """Best configuration found for one baseline; ``seconds`` is inf when it cannot run."""

    name: str
    seconds: float
    config: dict = field(default_factory=dict)
    devices_used: int = 0
    recovery_seconds: float = float("inf")
    reason: str = ""
    pipeline: PipelineConfig | None = None  # the Asteroid-like plan, for the task graph simulator
    layout: dict = field(default_factory=dict)  # devices per stage / group, for the task graph simulator
    pool: Pool | None = None  # the pool the layout's device indices refer to


def _shapes(graph: OpGraph) -> tuple[float, float, float, float]:
    """FLOPs per layer and head for the whole batch (fwd + bwd), and bytes of layer / head state."""
    layer_flops = sum(g.flops for g in graph.layer_gemms)
    head_flops = sum(g.flops for g in graph.head_gemms)
    model = graph.model
    return layer_flops, head_flops, model.layer_params * 2.0, model.vocab * model.hidden * 2.0


def _working_memory(graph: OpGraph, tokens: float) -> float:
    """Activation working set of one layer for ``tokens`` tokens (Korthikanti et al. 2022, fp16)."""
    m = graph.model
    return tokens * (34 * m.hidden + 5 * m.heads * graph.seq)


def _kept_activations(graph: OpGraph, tokens: float, layers, micro_tokens: float, recompute: bool):
    """Activation bytes a device keeps for ``tokens`` in-flight tokens through ``layers`` layers,
    working on ``micro_tokens`` at a time: every layer's stored set (Korthikanti et al.), or with
    recomputation each layer's fp16 input plus one layer's working set."""
    if recompute:
        return layers * tokens * graph.model.hidden * 2.0 + _working_memory(graph, micro_tokens)
    return layers * _working_memory(graph, tokens)


def _compute_factor(recompute: bool) -> float:
    """Compute relative to forward + backward (1 : 2): recomputation adds one forward."""
    return 4 / 3 if recompute else 1.0


def asteroid(graph: OpGraph, pool: Pool) -> BaselineResult:
    """Hybrid data x pipeline parallelism with a speed-aware layer split (Asteroid-like).

    Every ``pp`` (with ``dp = devices // pp`` pipelines) is tried; its step time is the GPipe
    schedule's, in closed form (:func:`~frugalml.cleave.pipeline.pipeline_seconds`); the best
    configuration is kept with its :class:`~frugalml.cleave.pipeline.PipelineConfig` so the task
    graph simulator can run it (:func:`~frugalml.cleave.pipeline.simulate_pipeline`).
    """
    layer_flops, head_flops, layer_bytes, head_bytes = _shapes(graph)
    L, seq = graph.model.layers, graph.seq
    token_layer_flops = layer_flops / graph.tokens
    best = BaselineResult("asteroid", np.inf, reason="no pipeline configuration fits device memory")
    mb_tokens = seq
    per_layer_mem = layer_bytes / 2 * STATE_BYTES_PER_PARAM
    up, down = pool.effective_up, pool.effective_down
    act = mb_tokens * graph.model.hidden * 2.0
    for pp, recompute in ((pp, r) for pp in range(1, L + 1) for r in RECOMPUTE):
        dp = min(len(pool) // pp, graph.batch)
        for _ in range(3):  # the devices that hold one layer and its in-flight micro-batches set dp
            micro = max(1, int(np.ceil(graph.batch / max(dp, 1))))
            devices = np.flatnonzero(
                pool.memory
                >= per_layer_mem + _kept_activations(graph, micro * mb_tokens, 1, mb_tokens, recompute)
            )
            dp = min(len(devices) // pp, graph.batch)
        if dp < 1:
            continue
        order = devices[np.argsort(-pool.flops[devices], kind="stable")]
        micro = max(1, int(np.ceil(graph.batch / dp)))
        used = order[: dp * pp]
        pipes = used.reshape(pp, dp).T  # pipeline j gets every dp-th device: balanced pipelines
        flops = pool.flops[pipes]
        # every stage gets one layer, the rest split by speed (largest remainder)
        spare = (flops / flops.sum(axis=1, keepdims=True)) * (L - pp)
        layers = np.floor(spare).astype(int)
        extra = (L - pp) - layers.sum(axis=1)
        rank = np.argsort(np.argsort(-(spare - layers), axis=1, kind="stable"), axis=1)
        layers += 1 + (rank < extra[:, None])
        memory_need = layers * per_layer_mem + _kept_activations(
            graph, micro * mb_tokens, layers, mb_tokens, recompute
        )
        if np.any(memory_need > pool.memory[pipes]):
            continue
        compute = layers * token_layer_flops * mb_tokens / flops  # forward + backward (1 : 2)
        compute[:, -1] += head_flops / graph.tokens * mb_tokens / flops[:, -1]
        send = np.zeros((dp, pp))
        send[:, :-1] = act / np.minimum(up[pipes[:, :-1]], down[pipes[:, 1:]])
        send_back = np.zeros((dp, pp))
        send_back[:, 1:] = act / np.minimum(up[pipes[:, 1:]], down[pipes[:, :-1]])
        ring = (
            (2 * (dp - 1) / dp * (layers * layer_bytes).max(axis=0) / up[pipes].min(axis=0))
            if dp > 1
            else np.zeros(pp)
        )
        cfg = PipelineConfig(
            pipes,
            micro,
            compute / 3,
            (3 * _compute_factor(recompute) - 1) * compute / 3,
            send,
            send_back,
            ring,
            layers * layer_bytes / down[pipes],
        )
        seconds = pipeline_seconds(cfg)
        if seconds < best.seconds:
            worst = np.unravel_index(np.argmax(layers), layers.shape)
            replay = float(micro * (cfg.fwd[worst] + send[worst]))
            best = BaselineResult(
                "asteroid",
                seconds,
                {"dp": dp, "pp": pp, "micro_batches": micro, "recompute": recompute},
                int(dp * pp),
                REPLAN_SECONDS + float(cfg.migrate[worst]) + replay,
                pipeline=cfg,
                pool=pool,
            )
    return best


def megatron(graph: OpGraph, pool: Pool) -> BaselineResult:
    """Tensor parallelism in groups of ``t`` devices, data parallelism across groups.

    Every degree ``t`` (a divisor of the heads) is tried with the devices that hold ``1/t`` of the
    model ranked by FLOP/s or by uplink (groups of neighbours in that ranking), and with all of
    them or only the best half, quarter, ... (the gradient ring waits on the slowest uplink).
    """
    model = graph.model
    total_state = model.params * STATE_BYTES_PER_PARAM
    best = BaselineResult("megatron", np.inf, reason="no tensor-parallel degree fits device memory")
    up = pool.effective_up
    degrees = [d for d in range(1, model.heads + 1) if model.heads % d == 0]
    for t, recompute in ((t, r) for t in degrees for r in RECOMPUTE):
        need = total_state / t  # micro-batches of one sequence, gradients accumulated
        devices = np.flatnonzero(
            pool.memory >= need + _kept_activations(graph, graph.seq, model.layers, graph.seq, recompute) / t
        )
        most = min(len(devices) // t, graph.batch)
        counts = sorted({max(1, most >> i) for i in range(12)}) if most >= 1 else []
        for key in (pool.flops, up):
            ranked = devices[np.argsort(-key[devices], kind="stable")]
            for groups in counts:
                order = ranked[: groups * t]
                members = order.reshape(groups, t)
                seconds, per_layer = megatron_seconds(graph, pool, members, recompute)
                if seconds < best.seconds:
                    recovery = REPLAN_SECONDS + need / np.median(pool.effective_down[order]) + per_layer
                    config = {"tp": t, "dp": groups, "recompute": recompute}
                    best = BaselineResult(
                        "megatron",
                        seconds,
                        config,
                        groups * t,
                        recovery,
                        pool=pool,
                        layout={"members": members, "recompute": recompute},
                    )
    return best


def megatron_seconds(
    graph: OpGraph, pool: Pool, members: np.ndarray, recompute: bool = False
) -> tuple[float, float]:
    """Closed-form step time (and time per layer) of tensor-parallel groups ``members[group, rank]``:
    compute at the group's slowest device (one more forward with recomputation), 4 activation
    all-reduces per layer as rings over its slowest uplink, then a gradient ring per rank over the
    slowest uplink of all."""
    layer_flops, head_flops, _, _ = _shapes(graph)
    model = graph.model
    groups, t = members.shape
    up = pool.effective_up
    slowest = pool.flops[members].min(axis=1)
    tokens = graph.tokens / groups
    compute = (
        (layer_flops * model.layers + head_flops)
        / graph.tokens
        * tokens
        / t
        / slowest
        * _compute_factor(recompute)
    )
    act = tokens * model.hidden * 2.0
    comm = 4 * model.layers * 2 * (t - 1) / t * act / up[members].min(axis=1) if t > 1 else 0 * slowest
    grads = 2 * (groups - 1) / groups * (model.params * 2.0 / t) / up[members].min() if groups > 1 else 0.0
    return float((compute + comm).max() + grads), float((compute + comm).max()) / model.layers


def swarm(graph: OpGraph, pool: Pool, seed: int = 0) -> BaselineResult:
    """Randomised pipelines: stages of L/pp layers, devices wired to stages at random.

    Every stage count ``pp`` is tried with every uplink cut (all devices, or only those whose
    uplink is at least the 25th / 50th / 75th percentile: a stage's gradient averaging waits on its
    slowest uplink, so leaving slow devices out can pay); the fastest is kept.
    """
    layer_flops, head_flops, layer_bytes, head_bytes = _shapes(graph)
    model, L = graph.model, graph.model.layers
    gen = np.random.default_rng(seed)
    best = BaselineResult("swarm", np.inf, reason="no stage size fits device memory")
    up = pool.effective_up
    cuts = np.unique(np.quantile(up, SWARM_UPLINK_CUTS)) if len(pool) else np.zeros(0)
    for pp, recompute in ((pp, r) for pp in range(1, L + 1) for r in RECOMPUTE):
        per_stage = int(np.ceil(L / pp))
        if (pp - 1) * per_stage >= L:  # the same stages as a smaller pp, one of them empty
            continue
        state = per_stage * layer_bytes / 2 * STATE_BYTES_PER_PARAM
        for cut in cuts:
            devices = np.flatnonzero(
                (pool.memory >= state + _kept_activations(graph, graph.seq, per_stage, graph.seq, recompute))
                & (up >= cut)
            )
            if len(devices) < pp:
                continue
            # a member keeps the activations of its share of the batch's sequences until their backward
            share = int(np.ceil(graph.batch / max(1, len(devices) // pp)))
            devices = devices[
                pool.memory[devices]
                >= state + _kept_activations(graph, share * graph.seq, per_stage, graph.seq, recompute)
            ]
            if len(devices) < pp:
                continue
            stage_of = gen.permutation(np.arange(len(devices)) % pp)
            flops = np.bincount(stage_of, weights=pool.flops[devices], minlength=pp)
            upl = np.bincount(stage_of, weights=up[devices], minlength=pp)
            layers = np.full(pp, per_stage)
            layers[-1] = L - (pp - 1) * per_stage
            work = layers * layer_flops * _compute_factor(recompute)
            work[-1] += head_flops * _compute_factor(recompute)
            compute = work / flops
            act = graph.tokens * model.hidden * 2.0
            comm = np.where(np.arange(pp) < pp - 1, 2 * act / upl, 0.0)
            members = np.bincount(stage_of, minlength=pp)
            slow_up = np.array([up[devices][stage_of == s].min() for s in range(pp)])
            avg = 2 * (members - 1) / members * layers * layer_bytes / slow_up
            seconds = float((compute + comm).max() + avg.max())
            if seconds < best.seconds:
                micro = graph.batch
                recovery = float((compute + comm).max()) / micro * members.max() / max(1, members.min())
                best = BaselineResult(
                    "swarm",
                    seconds,
                    {
                        "stages": pp,
                        "devices_per_stage": int(members.min()),
                        "min_uplink_mbit": round(float(cut) * 8 / 1e6, 2),
                        "recompute": recompute,
                    },
                    len(devices),
                    recovery,
                    layout={
                        "stages": [devices[stage_of == s] for s in range(pp)],
                        "layers": layers,
                        "recompute": recompute,
                    },
                    pool=pool,
                )
    return best


def data_parallel(graph: OpGraph, pool: Pool) -> BaselineResult:
    """Plain data parallelism over the devices that hold the whole model (speed-balanced shards)."""
    model = graph.model
    grads = model.params * 2.0
    best = BaselineResult("dp", np.inf)
    for recompute in RECOMPUTE:
        need = model.params * STATE_BYTES_PER_PARAM + _kept_activations(
            graph, graph.seq, model.layers, graph.seq, recompute
        )
        devices = np.flatnonzero(pool.memory >= need)[: graph.batch]
        if not len(devices):
            best.reason = (
                f"the model needs {need / 1e9:.1f} GB per device; the largest device has "
                f"{pool.memory.max() / 1e9:.1f} GB"
            )
            continue
        compute = graph.gemm_flops * _compute_factor(recompute) / pool.flops[devices].sum()
        comm = grads / pool.effective_down[devices].min() + grads / pool.effective_up[devices].min()
        if compute + comm < best.seconds:
            recovery = REPLAN_SECONDS + grads / np.median(pool.effective_down[devices])
            best = BaselineResult(
                "dp",
                compute + comm,
                {"replicas": len(devices), "recompute": recompute},
                len(devices),
                recovery,
                pool=pool,
                layout={"devices": devices, "recompute": recompute},
            )
    return best


def cloud(graph: OpGraph, gpus: int = 64, tflops: float = 312.0, utilisation: float = 0.45) -> BaselineResult:
    """The datacenter reference: ``gpus`` GPUs of ``tflops`` at ``utilisation`` (MFU)."""
    seconds = graph.gemm_flops / (gpus * tflops * 1e12 * utilisation)
    config = {"gpus": gpus, "tflops": tflops, "utilisation": utilisation}
    return BaselineResult("cloud", seconds, config, gpus)


def run_baselines(graph: OpGraph, pool: Pool, seed: int = 0) -> dict[str, BaselineResult]:
    """Every edge baseline on ``pool`` (without devices whose links are mostly down)."""
    pool = pool.subset(pool.link_factor >= MIN_LINK_FACTOR)
    return {
        "asteroid": asteroid(graph, pool),
        "megatron": megatron(graph, pool),
        "swarm": swarm(graph, pool, seed),
        "dp": data_parallel(graph, pool),
    }
