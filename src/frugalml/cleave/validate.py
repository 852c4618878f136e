"""The simulator checked against the runtime: one plan trained on emulated edge hosts and simulated.

:func:`validate` draws ``workers`` devices from a pool, caps their CPUs (all together ``cpus``
cores), plans tiny-gpt for exactly those devices (their capped FLOP/s, their shaped links, the
calibrated per-task overhead), trains ``steps`` steps with that plan on a :class:`Fleet` (one
network namespace per worker, tc-shaped links), and simulates the same plan in the discrete-event
simulator (lockstep GEMMs, no churn, no stragglers). It reports predicted and measured step time,
per-GEMM times and bytes per worker (measured: the namespaces' interface counters), each with its
relative error.

The runtime costs that the simulator does not model are :class:`Overheads`, fitted by
:func:`calibrate` on a run (4 workers by default) and recorded in the device catalogue
(``runtime_overheads`` in ``data/devices.yaml``), not in code.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from frugalml.cleave.des import SimConfig, simulate_step
from frugalml.cleave.devices import Pool, load_pool, make_pool
from frugalml.cleave.models import load_model
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.planfile import ExecutablePlan, executable_plan, read_plan, write_plan
from frugalml.cleave.planner import Plan, plan
from frugalml.cleave.tiling import grid_cost
from frugalml.common import env
from frugalml.common.errors import DataNotFoundError, FrugalError, InvalidInputError
from frugalml.common.report import Record

# the calibration runs (fraction of --cpus, pool seed offset): 4 workers under --cpus, a half and
# a quarter of it, so the per-task seconds are measured at the per-worker caps of 4, 8 and 16
# workers under --cpus; the last is another draw of workers under --cpus, whose other grids
# separate the bytes per task from the bytes per payload byte
CALIBRATION_RUNS = ((1.0, 0), (0.5, 0), (0.25, 0), (1.0, 1))
# the per-task seconds are searched on a log grid from 0.1 ms to 0.1 s, 3% apart
SEARCH_POINTS = 241
MARKER = "# Runtime overheads, fitted and written by 'frugal cleave validate --calibrate':"


@dataclass(frozen=True)
class Overheads:
    """Runtime costs outside the simulator's task model, fitted on a measured run.

    ``cap_cores`` / ``cap_task_s``: a worker's wall seconds per task beyond its transfers and GEMM
    (gRPC calls and (de)serialisation, which run under the worker's CPU cap, and the cap's
    throttling) at each calibrated cap (cores per worker); between and beyond them the simulator
    interpolates linearly in 1/cores (the CPU work per task is fixed, so its time grows as the cap
    shrinks; the measured curve is steeper at tight caps than a fixed CPU time over the cap).
    ``ps_task_s``: the PS process's CPU seconds per task (handing it out, receiving and checking its
    result, gRPC's own threads), measured from the PS's CPU time; the simulator runs it one task
    after another (one process serves every worker), ``ps_pull_share`` of it before the task's
    download and the rest after its upload (the measured split of the handlers' CPU).
    ``task_s``: wall seconds per task beyond all that (round trips through the emulated links),
    fitted; ``gemm_ps_s``: PS seconds per tiled GEMM (cutting, assembly, wake-ups), fitted;
    ``step_ps_s``: PS seconds per step outside the tiled GEMMs (attention, norms, loss, AdamW).

    Interface bytes per worker and step, as the namespaces' counters see them (:func:`wire_bytes`):
    ``wire_down`` / ``wire_up`` per payload byte (TCP/IP, HTTP/2 and gRPC framing, the other
    direction's acknowledgements); ``task_bytes_down`` / ``task_bytes_up`` per task (the pull
    request, headers and the push reply); ``idle_down_bps`` / ``idle_up_bps`` per second of the
    step (heartbeats and idle pulls, all a worker the plan gives no tiles moves).
    """

    task_s: float = 0.0
    gemm_ps_s: float = 0.0
    step_ps_s: float = 0.0
    wire_down: float = 1.0
    wire_up: float = 1.0
    calibrated_on: str = "not calibrated"
    task_bytes_down: float = 0.0
    task_bytes_up: float = 0.0
    idle_down_bps: float = 0.0
    idle_up_bps: float = 0.0
    ps_task_s: float = 0.0
    ps_pull_share: float = 0.5
    cap_cores: list[float] = field(default_factory=list)
    cap_task_s: list[float] = field(default_factory=list)

    def worker_task_s(self, cores: float) -> float:
        """A worker's per-task seconds under a cap of ``cores`` (``cap_task_s`` interpolated in
        1/cores, extended linearly past the calibrated caps, never below 0; 0 if none)."""
        if not self.cap_cores:
            return 0.0
        x = 1.0 / np.asarray(self.cap_cores, dtype=float)
        y = np.asarray(self.cap_task_s, dtype=float)
        order = np.argsort(x)
        x, y = x[order], y[order]
        at = 1.0 / min(1.0, cores)
        if len(x) == 1:
            return float(y[0] * at / x[0])
        i = 0 if at <= x[0] else len(x) - 2 if at >= x[-1] else int(np.searchsorted(x, at)) - 1
        slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i]) if x[i + 1] > x[i] else 0.0
        return max(0.0, float(y[i] + slope * (at - x[i])))

    def wire_bytes(self, payload: np.ndarray, step_s: float) -> list[tuple[float, float]]:
        """Interface bytes (down, up) per worker per step from its planned payload rows
        ``(bytes down, bytes up, tasks)`` and the step's length."""
        down, up, tasks = np.asarray(payload, dtype=float).reshape(-1, 3).T
        wire_d = self.wire_down * down + self.task_bytes_down * tasks
        wire_u = self.wire_up * up + self.task_bytes_up * tasks
        return [
            (float(d + self.idle_down_bps * step_s), float(u + self.idle_up_bps * step_s))
            for d, u in zip(wire_d, wire_u, strict=True)
        ]


def _catalogue_file() -> Path:
    return Path(str(resources.files("frugalml.cleave").joinpath("data/devices.yaml")))


def _existing(path: str | Path | None) -> Path:
    path = Path(path or _catalogue_file())
    if not path.is_file():
        raise DataNotFoundError(f"device catalogue {path} does not exist; check the path")
    return path


def load_overheads(path: str | Path | None = None) -> Overheads:
    """The overheads recorded in the catalogue (``path``, default the built-in one); zeros if none."""
    import yaml

    doc = yaml.safe_load(_existing(path).read_text()) or {}
    found = doc.get("runtime_overheads")
    if not isinstance(found, dict):
        return Overheads()
    try:
        overheads = Overheads(**found)
        cores = [float(x) for x in overheads.cap_cores]
        seconds = [float(x) for x in overheads.cap_task_s]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"runtime_overheads in the catalogue are malformed: {exc}") from None
    if len(cores) != len(seconds) or not all(0 < c <= 64 for c in cores) or not all(x >= 0 for x in seconds):
        raise InvalidInputError(
            "runtime_overheads in the catalogue are malformed: cap_cores and cap_task_s must be "
            "lists of the same length, cores in (0, 64] and seconds >= 0"
        )
    return replace(overheads, cap_cores=cores, cap_task_s=seconds)


def save_overheads(overheads: Overheads, path: str | Path | None = None) -> Path:
    """Record ``overheads`` in the catalogue file (replacing an earlier record), atomically."""
    import yaml

    from frugalml.common.files import atomic_write

    path = _existing(path)
    text = path.read_text().split(MARKER)[0].rstrip("\n")
    values = {
        k: v if isinstance(v, str) else [float(x) for x in v] if isinstance(v, list) else float(v)
        for k, v in asdict(overheads).items()
    }
    block = yaml.safe_dump({"runtime_overheads": values}, sort_keys=False)
    with atomic_write(path, "w") as f:
        f.write(f"{text}\n\n{MARKER}\n{block}")
    return path


def fleet_pool(workers: int, pool_path: str | Path | None, seed: int, flops: float) -> Pool:
    """``workers`` devices from the pool file (or the default mix), each computing at ``flops``."""
    if workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, got {workers}")
    from frugalml.cleave.runtime.protocol import TASKS_IN_FLIGHT

    pool = load_pool(pool_path, devices=workers) if pool_path else make_pool(workers, seed=seed)
    return replace(pool, flops=np.full(len(pool), float(flops)), tasks_in_flight=TASKS_IN_FLIGHT)


def simulation_pool(pool: Pool, overheads: Overheads, cores: float) -> Pool:
    """The pool as the simulator sees the runtime: payload rates (wire framing taken off) and the
    worker-side task overhead as a per-task latency (its CPU part stretched by the cap of ``cores``)."""
    return replace(
        pool,
        down=pool.down / overheads.wire_down,
        up=pool.up / overheads.wire_up,
        rtt=np.full(len(pool), overheads.task_s + overheads.worker_task_s(cores)),
    )


def plan_for(pool: Pool) -> Plan:
    """The plan tiny-gpt (as the server trains it: one task in flight per worker, no resident
    weights) gets on ``pool``, without churn."""
    from frugalml.cleave.runtime.protocol import TASKS_IN_FLIGHT

    pool = replace(pool, tasks_in_flight=TASKS_IN_FLIGHT)
    return plan(build_graph(load_model("tiny-gpt"), 8, 32, 4), pool, churn=False, resident_weights=False)


def plan_from_file(ep: ExecutablePlan, pool: Pool) -> Plan:
    """The plan of ``pool`` with every GEMM cut by ``ep``'s grid and pulled only by the classes
    ``ep`` gives a share of its tiles: what the server runs with ``--plan``, for the simulator."""
    p = plan_for(replace(pool, tasks_in_flight=ep.tasks_in_flight))
    names = p.pool.class_names
    gemm_plans = []
    for gp in p.gemm_plans:
        planned = ep.gemm(gp.gemm.name)
        if planned is None or planned.on_ps != gp.on_ps or planned.repeats != gp.repeats:
            raise InvalidInputError(
                f"the plan's GEMM {gp.gemm.name!r} does not match {ep.model} as the server trains it; "
                "make the plan again with 'frugal cleave plan --model tiny-gpt --json'"
            )
        if gp.on_ps:
            gemm_plans.append(gp)
            continue
        g = gp.gemm
        cost = grid_cost(g.m, g.n, g.k, planned.grid, batch=g.batch, dtype_bytes=p.graph.dtype_bytes)
        classes = [names.index(c) for c, share in planned.shares.items() if share > 0 and c in names]
        gemm_plans.append(
            replace(gp, grid=planned.grid, cost=cost, devices=np.isin(p.pool.class_index, classes))
        )
    return replace(p, gemm_plans=gemm_plans)


def load_plan_fleet(path: str | Path, seed: int, flops: float) -> tuple[ExecutablePlan, Pool]:
    """A plan file checked against what the server trains, and one device per planned device (each
    class's catalogue links and memory, computing at ``flops``)."""
    from frugalml.cleave.runtime.model import TrainConfig
    from frugalml.cleave.runtime.server import check_plan

    ep = check_plan(read_plan(path), TrainConfig(), str(path))
    pool = make_pool(counts=dict(ep.classes), jitter=0, seed=seed)
    return ep, replace(pool, flops=np.full(len(pool), float(flops)), tasks_in_flight=ep.tasks_in_flight)


@dataclass
class Prediction:
    step_s: float
    gemm_s: dict[str, float]
    bytes_per_worker: list[tuple[float, float]]  # (down, up) per step, on the wire
    payload: list[tuple[float, float, float]]  # (bytes down, bytes up, tasks) per step, as planned
    classes: list[str] = field(default_factory=list)  # each worker's device class


def predict(p: Plan, overheads: Overheads, ep: ExecutablePlan | None = None) -> Prediction:
    """Simulate ``p`` (lockstep, no churn, no stragglers, no backups) and add the PS overheads;
    bytes per worker follow ``ep``'s class shares (default: ``p``'s own)."""
    config = SimConfig(
        contention=True,
        churn=False,
        traces=False,
        backups=False,
        straggler_prob=0.0,
        lockstep=True,
        ps_task_out_s=overheads.ps_task_s * overheads.ps_pull_share,
        ps_task_in_s=overheads.ps_task_s * (1.0 - overheads.ps_pull_share),
    )
    result = simulate_step(p, config)
    ends = np.concatenate([[0.0], result.stage_end])
    order = p.graph.schedule()
    tiled = {gp.gemm.name for gp in p.gemm_plans if not gp.on_ps}
    per: dict[str, list[float]] = {}
    extra = 0.0
    for i, (name, _) in enumerate(order):
        if name in tiled:
            ps = overheads.gemm_ps_s
            per.setdefault(name, []).append(float(ends[i + 1] - ends[i]) + ps)
            extra += ps
    step = float(result.seconds) + extra + overheads.step_ps_s
    payload = planned_payload(p, ep or executable_plan(p, "float32"))
    return Prediction(
        step,
        {k: statistics.median(v) for k, v in per.items()},
        overheads.wire_bytes(np.array(payload), step),
        payload,
        [p.pool.class_names[int(c)] for c in p.pool.class_index],
    )


def planned_payload(p: Plan, ep: ExecutablePlan) -> list[tuple[float, float, float]]:
    """Per worker per step: tile bytes down, up and tasks when each class takes ``ep``'s share of
    every GEMM's tiles (the server's quotas), split evenly among the class's workers."""
    from frugalml.cleave.runtime.scheduler import quotas

    names = p.pool.class_names
    per_class = {c: np.zeros(3) for c in names}
    for gp in p.gemm_plans:
        planned = ep.gemm(gp.gemm.name)
        if gp.on_ps or planned is None:
            continue
        for cls, tiles in quotas(planned.shares, gp.grid.tasks).items():
            if cls in per_class:
                per_class[cls] += gp.repeats * tiles * np.array([gp.cost.bytes_down, gp.cost.bytes_up, 1.0])
    count = np.bincount(p.pool.class_index, minlength=len(names))
    return [tuple(float(x) for x in per_class[names[c]] / count[c]) for c in p.pool.class_index]  # type: ignore[misc]


@dataclass
class Measured:
    step_s: float
    step_seconds: list[float]
    gemm_s: dict[str, float]
    bytes_per_worker: list[tuple[float, float]]
    mode: str
    load_average: tuple[float, float] = (float("nan"), float("nan"))  # 1-minute, at start and end
    cpu: CpuUse | None = None


@dataclass
class CpuUse:
    """Where the CPU went in the measured steps (all but the first): per task, the workers' CPU
    seconds (idle workers' rate taken off) and the PS process's outside its training thread; the
    share of the PS handlers' CPU spent handing tasks out; the PS training thread per step."""

    worker_per_task_s: float
    ps_per_task_s: float
    ps_pull_share: float
    ps_handler_per_task_s: float  # the part in gRPC handler threads (Python, under the GIL)
    ps_training_s: float
    tasks_per_step: float
    worker_busy: list[float]  # each worker's CPU seconds per step over its cap's seconds per step


def measure(
    ep: ExecutablePlan, pool: Pool, steps: int, cpus: float, flops: float, prefix: str, workdir: Path
) -> Measured:
    """Train ``steps`` steps with plan ``ep`` on a namespace fleet of ``pool``'s devices (links: the
    pool's rates, shaped by tc; CPUs capped to ``cpus`` cores in all)."""
    from frugalml.cleave.runtime.fleet import Fleet, FleetError, Host

    hosts = [
        Host(
            f"w{i}",
            pool.class_names[int(c)],
            float(pool.down[i]),
            float(pool.up[i]),
            0.0,
            flops,
            int(pool.memory[i]),
        )
        for i, c in enumerate(pool.class_index)
    ]
    plan_path = workdir / "plan.json"
    write_plan(plan_path, ep)
    with Fleet(hosts, prefix=prefix, cpus=cpus, workdir=workdir) as fleet:
        if fleet.up() != "namespaces":
            raise FrugalError(f"validate needs network namespaces: {fleet.why_fallback}")
        load_start = os.getloadavg()[0]
        before = fleet.counters()
        fleet.start_server(  # as simulated: no speculative backup copies
            port=50051,
            steps=steps,
            min_workers=len(hosts),
            plan=str(plan_path),
            metrics=workdir / "m.json",
            backups=False,
        )
        fleet.start_workers(connect_timeout=120)
        samples: list[tuple[float, dict[str, float]]] = []
        if _wait_server(fleet, 1800, lambda: samples.append((time.time(), fleet.cpu_seconds()))) != 0:
            raise FleetError(f"the server failed: {fleet.log('server')[-600:]}")
        after = fleet.counters()
        mode = fleet.describe()
    metrics = json.loads((workdir / "m.json").read_text())
    seconds = metrics["step_seconds"][1:] or metrics["step_seconds"]  # the first step warms up
    gemms = {k: statistics.median(v) for k, v in metrics["gemm_seconds"].items()}
    moved = [
        ((after[h.name][0] - before[h.name][0]) / steps, (after[h.name][1] - before[h.name][1]) / steps)
        for h in hosts
    ]
    cpu = cpu_use(metrics, samples, cpus / len(hosts))
    load = (load_start, os.getloadavg()[0])
    return Measured(statistics.median(seconds), seconds, gemms, moved, mode, load, cpu)


def cpu_use(metrics: dict, samples: list[tuple[float, dict[str, float]]], cores: float) -> CpuUse | None:
    """:class:`CpuUse` from the server's metrics (its CPU per step and per handler) and the processes'
    CPU sampled during the run (interpolated at the ends of the first and the last step)."""
    ends, ps_cpu = metrics.get("step_end_times", []), metrics.get("ps_cpu", {})
    steps = len(ends) - 1
    if steps < 1 or len(samples) < 2 or not ps_cpu.get("process_s_per_step"):
        return None

    def used(name: str) -> float:
        have = [(t, c[name]) for t, c in samples if name in c]
        if len(have) < 2:
            return float("nan")
        at = np.interp([ends[0], ends[-1]], [t for t, _ in have], [c for _, c in have])
        return float(at[1] - at[0]) / steps

    tiles = {w["name"]: w["tiles_done"] / len(ends) for w in metrics["workers"]}
    per_step = {name: used(name) for name in tiles}
    idle = [per_step[n] for n, t in tiles.items() if t == 0 and np.isfinite(per_step[n])]
    idle_rate = statistics.mean(idle) if idle else 0.0
    busy = [(t, per_step[n] - idle_rate) for n, t in tiles.items() if t > 0 and np.isfinite(per_step[n])]
    tasks = sum(tiles.values())
    process = metrics["ps_cpu"]["process_s_per_step"][1:]
    training = metrics["ps_cpu"]["training_thread_s_per_step"][1:]
    handlers = ps_cpu.get("handlers", {})
    pull = handlers.get("pull", {}).get("cpu_s", 0.0)
    push = handlers.get("push", {}).get("cpu_s", 0.0)
    handled = handlers.get("pull", {}).get("calls", 0)
    step_s = statistics.median(metrics["step_seconds"][1:])
    return CpuUse(
        worker_per_task_s=sum(c for _, c in busy) / max(sum(t for t, _ in busy), 1e-12),
        ps_per_task_s=statistics.median(p - t for p, t in zip(process, training, strict=True)) / tasks,
        ps_pull_share=pull / (pull + push) if pull + push > 0 else 0.5,
        ps_handler_per_task_s=(pull + push) / handled if handled else 0.0,
        ps_training_s=statistics.median(training),
        tasks_per_step=tasks,
        worker_busy=[per_step[n] / (cores * step_s) for n in tiles],
    )


def fit_wire(runs: list[tuple[np.ndarray, np.ndarray, float]]) -> dict[str, float]:
    """The byte fields of :class:`Overheads` that turn planned payload rows ``(down, up, tasks)``
    into the measured interface bytes ``(down, up)`` per worker, over ``runs`` of
    ``(payload rows, measured rows, step seconds)``.

    Per direction, non-negative least squares of the bytes beyond the payload on the payload
    (framing), the task count (per-task messages) and the step's length (heartbeats, keepalive
    pings and idle pulls, which every worker sends), each worker's row weighted by its bytes so
    that the fit minimises relative errors. Runs with different grids and step lengths separate
    the three. Acknowledgements are left in the framing: on the emulated links they measured
    below 0.3% of the other direction's bytes, too small to fit apart from it.
    """
    from scipy.optimize import nnls

    payload = np.concatenate([np.asarray(r[0], dtype=float).reshape(-1, 3) for r in runs])
    measured = np.concatenate([np.asarray(r[1], dtype=float).reshape(-1, 2) for r in runs])
    seconds = np.concatenate([np.full(len(np.asarray(r[1]).reshape(-1, 2)), float(r[2])) for r in runs])
    fitted: dict[str, float] = {}
    for col, (wire, per_task, idle) in enumerate(
        (("wire_down", "task_bytes_down", "idle_down_bps"), ("wire_up", "task_bytes_up", "idle_up_bps"))
    ):
        same = payload[:, col]
        design = np.column_stack([same, payload[:, 2], seconds])
        weight = 1.0 / np.maximum(measured[:, col], 1.0)
        scale = np.maximum(np.abs(design * weight[:, None]).max(axis=0), 1e-12)
        coef, _ = nnls(design * weight[:, None] / scale, (measured[:, col] - same) * weight)
        coef = coef / scale
        fitted |= {wire: 1.0 + float(coef[0]), per_task: float(coef[1]), idle: float(coef[2])}
    return fitted


def _wait_server(fleet, timeout: float, sample=None) -> int:
    """The server's exit code; a worker that dies first (the server would wait for it forever,
    since the plan needs every worker) ends the run with its log. ``sample()`` runs every 0.1 s."""
    from frugalml.cleave.runtime.fleet import FleetError

    end = time.monotonic() + timeout
    while (code := fleet.server.poll()) is None:
        dead = [name for name, w in fleet.workers.items() if w.poll() not in (None, 0)]
        if dead:
            raise FleetError(f"worker {dead[0]} exited during the run: {fleet.log(dead[0])[-600:]}")
        if time.monotonic() > end:
            raise FleetError(f"the parameter server did not finish within {timeout:.0f} s")
        if sample is not None:
            sample()
        time.sleep(0.1 if sample is not None else 0.5)
    return code


@dataclass
class Run:
    """One measured calibration run: the plan it ran, what was measured, each worker's cores."""

    plan: Plan
    measured: Measured
    cores: float
    ep: ExecutablePlan | None = None


def calibrate(runs: list[Run], calibrated_on: str) -> Overheads:
    """Fit :class:`Overheads` so the simulations of ``runs`` (4 workers under different CPU caps)
    match their measurements.

    Measured, not fitted: the interface bytes per worker (:func:`fit_wire`, over all runs) and the
    PS's serial work per task (its handlers' CPU, under the GIL). Fitted per run: the worker's
    seconds per task under that run's cap (what the run's GEMMs lack beyond the simulated transfers,
    GEMMs and PS work; a search for the least mean relative error over the GEMMs). PS work per GEMM
    is not fitted apart: where every device runs one task per GEMM it cannot be told from work per
    task, so it stays in the latter (``gemm_ps_s`` 0). Across runs: the PS work per step outside the
    GEMMs (the mean of what each step still lacks).
    """
    if not runs:
        raise InvalidInputError("calibration needs at least one measured run")
    eps = [r.ep or executable_plan(r.plan, "float32") for r in runs]
    wire = fit_wire(
        [
            (np.array(planned_payload(r.plan, ep)), np.array(r.measured.bytes_per_worker), r.measured.step_s)
            for r, ep in zip(runs, eps, strict=True)
        ]
    )
    cpus = [r.measured.cpu for r in runs]
    measured_cpu = {
        "ps_task_s": statistics.median(c.ps_handler_per_task_s for c in cpus if c is not None),
        "ps_pull_share": statistics.median(c.ps_pull_share for c in cpus if c is not None),
    }
    base = Overheads(calibrated_on=calibrated_on, **wire, **measured_cpu)  # type: ignore[arg-type]
    per_task = []
    for r, ep in zip(runs, eps, strict=True):
        best: tuple[float, float] | None = None
        for seconds in np.concatenate([[0.0], np.geomspace(1e-4, 0.1, SEARCH_POINTS)]):
            trial = replace(base, cap_cores=[r.cores], cap_task_s=[float(seconds)])
            sim = predict(replace(r.plan, pool=simulation_pool(r.plan.pool, trial, r.cores)), trial, ep)
            names = [n for n in sim.gemm_s if n in r.measured.gemm_s]
            if not names:
                raise FrugalError("the measured run timed no planned GEMM; is the plan for tiny-gpt?")
            gaps = np.array([r.measured.gemm_s[n] - sim.gemm_s[n] for n in names])
            score = float(np.mean(np.abs(gaps) / np.array([r.measured.gemm_s[n] for n in names])))
            if best is None or score < best[0]:
                best = (score, float(seconds))
        assert best is not None
        per_task.append(best[1])
    # runs under the same cap give one point (their mean); a tighter cap cannot make a task faster:
    # from the loosest cap down, keep the running maximum
    caps = sorted({r.cores for r in runs}, reverse=True)
    seconds = [float(np.mean([t for r, t in zip(runs, per_task, strict=True) if r.cores == c])) for c in caps]
    seconds = list(np.maximum.accumulate(seconds))
    fitted = replace(base, cap_cores=caps, cap_task_s=[float(x) for x in seconds])
    rest = []
    for r, ep in zip(runs, eps, strict=True):
        sim = predict(replace(r.plan, pool=simulation_pool(r.plan.pool, fitted, r.cores)), fitted, ep)
        rest.append(r.measured.step_s - sim.step_s)
    return replace(fitted, step_ps_s=max(0.0, float(np.mean(rest))))


def one_core_flops() -> float:
    """One core's float32 GEMM rate (one BLAS thread, timed by this thread's CPU time, so other
    work on the machine does not lower it): what a worker's cap scales."""
    from threadpoolctl import threadpool_limits

    from frugalml.cleave.runtime.worker import measure_flops

    with threadpool_limits(1):
        return measure_flops(clock=time.thread_time)


def relative(predicted: float, measured: float) -> float:
    return abs(predicted - measured) / measured if measured else float("inf")


def run_validation(
    workers: int | None,
    steps: int,
    pool_file: str | Path | None,
    cpus: float,
    calibrate_here: bool,
    catalogue: str | Path | None = None,
    seed: int = 0,
    plan_file: str | Path | None = None,
) -> tuple[list[Record], Prediction, Measured]:
    """Measure ``steps`` steps on ``workers`` emulated hosts and simulate the same plan; with
    ``calibrate_here``, fit the overheads on this run and on runs of the same workers under tighter
    caps and on another draw of workers (:data:`CALIBRATION_RUNS`) and record them in ``catalogue`` first.

    With ``plan_file`` the fleet is the plan's devices (one per planned device, its class's links)
    and both the server and the simulator use exactly the file's grids and class shares.
    """
    import tempfile

    if not 0.01 <= cpus <= 64:
        raise InvalidInputError(f"--cpus must be in [0.01, 64], got {cpus}")
    if plan_file is not None and pool_file is not None:
        raise InvalidInputError("--plan and --pool both say which devices to emulate; give one")
    overheads = Overheads() if calibrate_here else load_overheads(catalogue)
    if plan_file is not None:
        planned = sum(read_plan(plan_file).classes.values())
        if workers is not None and workers != planned:
            raise InvalidInputError(
                f"the plan is for {planned} devices, not --workers {workers}; drop --workers"
            )
        workers = planned
    workers = 8 if workers is None else workers
    core_flops = one_core_flops()
    runs = []
    for fraction, draw in CALIBRATION_RUNS if calibrate_here else ((1.0, 0),):
        total = cpus * fraction
        cores = total / max(workers, 1)
        flops = core_flops * min(1.0, cores)
        if plan_file is not None:
            ep, pool = load_plan_fleet(plan_file, seed, flops)
            p = plan_from_file(ep, simulation_pool(pool, overheads, cores))
        else:
            pool = fleet_pool(workers, pool_file, seed + draw, flops)
            p = plan_for(simulation_pool(pool, overheads, cores))
            ep = executable_plan(p, "float32")
        with tempfile.TemporaryDirectory(prefix="cleave-validate-") as tmp:
            runs.append(Run(p, measure(ep, pool, steps, total, flops, "clval", Path(tmp)), cores, ep))
    p, measured, cores = runs[0].plan, runs[0].measured, runs[0].cores
    ep = runs[0].ep or executable_plan(p, "float32")
    if calibrate_here:
        caps = ", ".join(f"{cpus * f:g} cores (draw {seed + d})" for f, d in CALIBRATION_RUNS)
        on = f"{workers} workers: {caps}; {steps} steps"
        overheads = calibrate(runs, on)
        save_overheads(overheads, catalogue)
        p = replace(p, pool=simulation_pool(p.pool, overheads, cores))  # p.pool: as measured (no overheads)
    predicted = predict(p, overheads, ep)
    return validation_records(workers, cpus, steps, predicted, measured, overheads), predicted, measured


def validation_records(
    workers: int, cpus: float, steps: int, predicted: Prediction, measured: Measured, overheads: Overheads
) -> list[Record]:
    """The step-time and bytes-per-worker records (``step_time_relative_error`` among their fields)."""
    # workers the plan gives no tiles move only registration and heartbeats: reported, not compared
    pairs = list(zip(predicted.bytes_per_worker, measured.bytes_per_worker, strict=True))
    has_tiles = (
        [row[2] > 0 for row in predicted.payload]
        if predicted.payload
        else [p[0] > 0 for p in predicted.bytes_per_worker]
    )
    busy = [pm for pm, b in zip(pairs, has_tiles, strict=True) if b]
    idle = [pm[1] for pm, b in zip(pairs, has_tiles, strict=True) if not b]
    down_err = [relative(p[0], m[0]) for p, m in busy]
    up_err = [relative(p[1], m[1]) for p, m in busy]
    per_class = class_errors(predicted, measured, has_tiles)
    load = measured.load_average
    notes = (
        f"{measured.mode}; {cpus:g} cores for all workers; {env.machine()} (shared with other work); "
        f"1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
    )
    workload = f"tiny-gpt validate, {workers} workers"
    error = relative(predicted.step_s, measured.step_s)
    return [
        Record(
            metric="step_time_relative_error",
            unit="ratio",
            ours=error,
            spread={
                "step_time_relative_error": error,
                "predicted_step_s": predicted.step_s,
                "measured_step_s_median": measured.step_s,
                "measured_step_seconds": measured.step_seconds,
                "gemm_predicted_s": predicted.gemm_s,
                "gemm_measured_s": measured.gemm_s,
                "overheads": asdict(overheads),
                "steps": steps,
                "load_average_start_end": list(load),
            },
            notes=notes,
            command=f"frugal cleave validate --workers {workers} --steps {steps} --cpus {cpus:g}",
            system="cleave",
            workload=workload,
            peer="measured runtime",
        ),
        Record(
            metric="bytes_per_worker_relative_error_max",  # over workers the plan gives tiles
            unit="ratio",
            ours=max(down_err + up_err),
            spread={
                "predicted_bytes_per_step": predicted.bytes_per_worker,
                "planned_payload_per_step": predicted.payload,
                "measured_bytes_per_step": measured.bytes_per_worker,
                "down_relative_error": down_err,
                "idle_workers_measured_bytes_per_step": idle,
                "up_relative_error": up_err,
                "class_mean_relative_error": per_class,
            },
            notes=notes,
            command=f"frugal cleave validate --workers {workers} --steps {steps} --cpus {cpus:g}",
            system="cleave",
            workload=workload,
            peer="measured runtime",
        ),
        Record(
            # the plan fixes each class's share of every GEMM; inside a class workers pull freely,
            # so one may take a tile more than another: compare the class's mean worker
            metric="bytes_per_class_worker_relative_error_max",
            unit="ratio",
            ours=max((max(e) for e in per_class.values()), default=float("nan")),
            spread={"class_mean_relative_error": per_class},
            notes=notes + "; mean bytes per worker of each device class (the plan fixes class shares)",
            command=f"frugal cleave validate --workers {workers} --steps {steps} --cpus {cpus:g}",
            system="cleave",
            workload=workload,
            peer="measured runtime",
        ),
    ]


def class_errors(predicted: Prediction, measured: Measured, has_tiles: list[bool]) -> dict[str, list[float]]:
    """Per device class with tiles: the relative error (down, up) of its workers' mean bytes."""
    out: dict[str, list[float]] = {}
    classes = predicted.classes or ["all"] * len(has_tiles)
    for cls in sorted(set(classes)):
        rows = [i for i, c in enumerate(classes) if c == cls and has_tiles[i]]
        if rows:
            pred = np.mean([predicted.bytes_per_worker[i] for i in rows], axis=0)
            got = np.mean([measured.bytes_per_worker[i] for i in rows], axis=0)
            out[cls] = [relative(float(pred[0]), float(got[0])), relative(float(pred[1]), float(got[1]))]
    return out
