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

MARKER = "# Runtime overheads, fitted and written by 'frugal cleave validate --calibrate':"


@dataclass(frozen=True)
class Overheads:
    """Runtime costs outside the simulator's task model, fitted on a measured run.

    ``task_s``: seconds per task beyond its transfers and GEMM (RPC round trips, (de)serialisation,
    the worker's side of the exchange; measured not to grow with a tighter CPU cap for tasks
    this small, so it is not scaled by the cap); ``ps_task_s``: PS seconds per task, one task after
    another (handing it out, receiving and checking its result: the PS serves every worker);
    ``gemm_ps_s``: PS seconds per tiled GEMM (cutting, assembly, wake-ups); ``step_ps_s``: PS seconds per step
    outside the tiled GEMMs (attention, norms, loss, AdamW).

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
        return Overheads(**found)
    except TypeError as exc:
        raise InvalidInputError(f"runtime_overheads in the catalogue are malformed: {exc}") from None


def save_overheads(overheads: Overheads, path: str | Path | None = None) -> Path:
    """Record ``overheads`` in the catalogue file (replacing an earlier record), atomically."""
    import yaml

    from frugalml.common.files import atomic_write

    path = _existing(path)
    text = path.read_text().split(MARKER)[0].rstrip("\n")
    values = {k: v if isinstance(v, str) else float(v) for k, v in asdict(overheads).items()}
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
    worker-side task overhead as a per-task latency."""
    return replace(
        pool,
        down=pool.down / overheads.wire_down,
        up=pool.up / overheads.wire_up,
        rtt=np.full(len(pool), overheads.task_s),
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
        contention=True, churn=False, traces=False, backups=False, straggler_prob=0.0, lockstep=True
    )
    result = simulate_step(p, config)
    ends = np.concatenate([[0.0], result.stage_end])
    order = p.graph.schedule()
    tiled = {gp.gemm.name for gp in p.gemm_plans if not gp.on_ps}
    per: dict[str, list[float]] = {}
    tasks = {gp.gemm.name: gp.grid.tasks for gp in p.gemm_plans if not gp.on_ps}
    extra = 0.0
    for i, (name, _) in enumerate(order):
        if name in tiled:
            ps = overheads.gemm_ps_s + overheads.ps_task_s * tasks[name]
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
        if _wait_server(fleet, timeout=1800) != 0:
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
    return Measured(statistics.median(seconds), seconds, gemms, moved, mode, (load_start, os.getloadavg()[0]))


def fit_wire(payload: np.ndarray, measured: np.ndarray, step_s: float) -> dict[str, float]:
    """The byte fields of :class:`Overheads` that turn planned payload rows ``(down, up, tasks)``
    into the measured interface bytes ``(down, up)`` per worker.

    Per direction, non-negative least squares of the bytes beyond the payload on the payload
    (framing) and the task count (per-task messages) over the workers with tiles; the idle rate
    is the mean of the workers without tiles (0 when every worker has tiles). Acknowledgements
    are left in the framing: on the emulated links they measured below 0.3% of the other
    direction's bytes, too small to fit apart from it.
    """
    from scipy.optimize import nnls

    payload = np.asarray(payload, dtype=float).reshape(-1, 3)
    measured = np.asarray(measured, dtype=float).reshape(-1, 2)
    busy = payload[:, 2] > 0
    fitted: dict[str, float] = {}
    for col, (wire, per_task, idle) in enumerate(
        (("wire_down", "task_bytes_down", "idle_down_bps"), ("wire_up", "task_bytes_up", "idle_up_bps"))
    ):
        rate = float(measured[~busy, col].mean() / step_s) if (~busy).any() and step_s > 0 else 0.0
        same, tasks = payload[busy, col], payload[busy, 2]
        design = np.column_stack([same, tasks])
        scale = np.maximum(np.abs(design).max(axis=0), 1e-12)
        coef, _ = nnls(design / scale, measured[busy, col] - same - rate * step_s)
        coef = coef / scale
        fitted |= {wire: 1.0 + float(coef[0]), per_task: float(coef[1]), idle: rate}
    return fitted


def _wait_server(fleet, timeout: float) -> int:
    """The server's exit code; a worker that dies first (the server would wait for it forever,
    since the plan needs every worker) ends the run with its log."""
    import time

    from frugalml.cleave.runtime.fleet import FleetError

    end = time.monotonic() + timeout
    while (code := fleet.server.poll()) is None:
        dead = [name for name, w in fleet.workers.items() if w.poll() not in (None, 0)]
        if dead:
            raise FleetError(f"worker {dead[0]} exited during the run: {fleet.log(dead[0])[-600:]}")
        if time.monotonic() > end:
            raise FleetError(f"the parameter server did not finish within {timeout:.0f} s")
        time.sleep(0.5)
    return code


def calibrate(
    p: Plan, measured: Measured, cores: float, calibrated_on: str, ep: ExecutablePlan | None = None
) -> Overheads:
    """Fit :class:`Overheads` so the simulation of ``p`` matches ``measured``: the interface bytes
    per worker (:func:`fit_wire`), then the GEMM times by a search over the per-task overhead (what
    each GEMM still lacks is PS work: a fixed part plus a part per task, fitted across GEMMs of
    different task counts), then the rest of the step (PS work outside the GEMMs)."""
    from scipy.optimize import nnls

    ep = ep or executable_plan(p, "float32")
    payload = np.array(planned_payload(p, ep))
    wire = fit_wire(payload, np.array(measured.bytes_per_worker), measured.step_s)
    tasks = {gp.gemm.name: gp.grid.tasks for gp in p.gemm_plans if not gp.on_ps}
    best: tuple[float, Overheads] | None = None
    for task_s in np.concatenate([[0.0], np.geomspace(1e-4, 0.2, 24)]):
        trial = Overheads(float(task_s), calibrated_on=calibrated_on, **wire)
        sim = predict(replace(p, pool=simulation_pool(p.pool, trial, cores)), trial, ep)
        names = [n for n in sim.gemm_s if n in measured.gemm_s]
        if not names:
            raise FrugalError("the measured run timed no planned GEMM; is the plan for tiny-gpt?")
        gap = np.array([measured.gemm_s[n] - sim.gemm_s[n] for n in names])
        design = np.column_stack([np.ones(len(names)), [tasks[n] for n in names]])
        (fixed, per_task), _ = nnls(design, gap)
        score = float(np.sum(np.abs(gap - design @ (fixed, per_task))))
        if best is None or score < best[0]:
            best = (score, replace(trial, gemm_ps_s=float(fixed), ps_task_s=float(per_task)))
    assert best is not None
    fitted = best[1]
    sim = predict(replace(p, pool=simulation_pool(p.pool, fitted, cores)), fitted, ep)
    return replace(fitted, step_ps_s=max(0.0, measured.step_s - sim.step_s))


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
    ``calibrate_here``, fit the overheads on this run and record them in ``catalogue`` first.

    With ``plan_file`` the fleet is the plan's devices (one per planned device, its class's links)
    and both the server and the simulator use exactly the file's grids and class shares.
    """
    import tempfile

    from frugalml.cleave.runtime.worker import measure_flops

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
    cores = cpus / max(workers, 1)
    flops = measure_flops() * min(1.0, cores)
    if plan_file is not None:
        ep, pool = load_plan_fleet(plan_file, seed, flops)
        p = plan_from_file(ep, simulation_pool(pool, overheads, cores))
    else:
        pool = fleet_pool(workers, pool_file, seed, flops)
        p = plan_for(simulation_pool(pool, overheads, cores))
        ep = executable_plan(p, "float32")
    with tempfile.TemporaryDirectory(prefix="cleave-validate-") as tmp:
        measured = measure(ep, pool, steps, cpus, flops, "clval", Path(tmp))
    if calibrate_here:
        on = f"{workers} workers, {cpus:g} cores, {steps} steps"
        overheads = calibrate(p, measured, cores, on, ep)
        save_overheads(overheads, catalogue)
        p = replace(p, pool=simulation_pool(pool, overheads, cores))
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
