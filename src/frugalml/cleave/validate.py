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
import statistics
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from frugalml.cleave.des import SimConfig, simulate_step
from frugalml.cleave.devices import Pool, load_pool, make_pool
from frugalml.cleave.models import load_model
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.planfile import executable_plan, write_plan
from frugalml.cleave.planner import Plan, plan
from frugalml.common import env
from frugalml.common.errors import DataNotFoundError, FrugalError, InvalidInputError
from frugalml.common.report import Record

MARKER = "# Runtime overheads, fitted and written by 'frugal cleave validate --calibrate':"


@dataclass(frozen=True)
class Overheads:
    """Runtime costs outside the simulator's task model, fitted on a measured run.

    ``task_s``: seconds per task beyond its transfers and GEMM (RPC round trips, (de)serialisation,
    the PS handing it out and checking it; measured not to grow with a tighter CPU cap for tasks
    this small, so it is not scaled by the cap); ``gemm_ps_s``: PS seconds per
    tiled GEMM (cutting, Freivalds checks, assembly, wake-ups); ``step_ps_s``: PS seconds per step
    outside the tiled GEMMs (attention, norms, loss, AdamW); ``wire_down`` / ``wire_up``: interface
    bytes per model byte (TCP/IP, HTTP/2 and gRPC framing, acknowledgements, heartbeats).
    """

    task_s: float = 0.0
    gemm_ps_s: float = 0.0
    step_ps_s: float = 0.0
    wire_down: float = 1.0
    wire_up: float = 1.0
    calibrated_on: str = "not calibrated"


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
    pool = load_pool(pool_path, devices=workers) if pool_path else make_pool(workers, seed=seed)
    return replace(pool, flops=np.full(len(pool), float(flops)))


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


@dataclass
class Prediction:
    step_s: float
    gemm_s: dict[str, float]
    bytes_per_worker: list[tuple[float, float]]  # (down, up) per step, on the wire


def predict(p: Plan, overheads: Overheads) -> Prediction:
    """Simulate ``p`` (lockstep, no churn, no stragglers, no backups) and add the PS overheads."""
    config = SimConfig(
        contention=True, churn=False, traces=False, backups=False, straggler_prob=0.0, lockstep=True
    )
    result = simulate_step(p, config)
    ends = np.concatenate([[0.0], result.stage_end])
    order = p.graph.schedule()
    tiled = {gp.gemm.name for gp in p.gemm_plans if not gp.on_ps}
    per: dict[str, list[float]] = {}
    for i, (name, _) in enumerate(order):
        if name in tiled:
            per.setdefault(name, []).append(float(ends[i + 1] - ends[i]) + overheads.gemm_ps_s)
    occurrences = sum(len(v) for v in per.values())
    step = float(result.seconds) + occurrences * overheads.gemm_ps_s + overheads.step_ps_s
    return Prediction(step, {k: statistics.median(v) for k, v in per.items()}, _planned_bytes(p, overheads))


def _planned_bytes(p: Plan, overheads: Overheads) -> list[tuple[float, float]]:
    """Wire bytes per worker per step when each class takes the plan's share, split evenly in it."""
    from frugalml.cleave.runtime.scheduler import quotas

    ep = executable_plan(p, "float32")
    names = p.pool.class_names
    per_class = {c: [0.0, 0.0] for c in names}
    for gp, planned in zip(p.gemm_plans, ep.gemms, strict=True):
        if gp.on_ps:
            continue
        for cls, tiles in quotas(planned.shares, gp.grid.tasks).items():
            per_class[cls][0] += tiles * gp.cost.bytes_down * gp.repeats
            per_class[cls][1] += tiles * gp.cost.bytes_up * gp.repeats
    count = np.bincount(p.pool.class_index, minlength=len(names))
    return [
        (
            per_class[names[c]][0] / count[c] * overheads.wire_down,
            per_class[names[c]][1] / count[c] * overheads.wire_up,
        )
        for c in p.pool.class_index
    ]


@dataclass
class Measured:
    step_s: float
    step_seconds: list[float]
    gemm_s: dict[str, float]
    bytes_per_worker: list[tuple[float, float]]
    mode: str


def measure(
    p: Plan, pool: Pool, steps: int, cpus: float, flops: float, prefix: str, workdir: Path
) -> Measured:
    """Train ``steps`` steps with ``p`` on a namespace fleet of ``pool``'s devices (links: the
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
    write_plan(plan_path, executable_plan(p, "float32"))
    with Fleet(hosts, prefix=prefix, cpus=cpus, workdir=workdir) as fleet:
        if fleet.up() != "namespaces":
            raise FrugalError(f"validate needs network namespaces: {fleet.why_fallback}")
        before = fleet.counters()
        fleet.start_server(  # as simulated: no speculative backup copies
            port=50051,
            steps=steps,
            min_workers=len(hosts),
            plan=str(plan_path),
            metrics=workdir / "m.json",
            backups=False,
        )
        fleet.start_workers(connect_timeout=60)
        if fleet.wait_server(timeout=3600) != 0:
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
    return Measured(statistics.median(seconds), seconds, gemms, moved, mode)


def calibrate(p: Plan, measured: Measured, cores: float, calibrated_on: str) -> Overheads:
    """Fit :class:`Overheads` so the simulation of ``p`` matches ``measured`` (its GEMM times
    first, by a search over the per-task overhead; the rest of the step is PS work)."""
    model = _planned_bytes(p, Overheads())
    wire_down = float(sum(m[0] for m in measured.bytes_per_worker) / max(sum(m[0] for m in model), 1.0))
    wire_up = float(sum(m[1] for m in measured.bytes_per_worker) / max(sum(m[1] for m in model), 1.0))
    best: tuple[float, Overheads] | None = None
    for task_s in np.concatenate([[0.0], np.geomspace(1e-4, 0.2, 24)]):
        trial = Overheads(float(task_s), 0.0, 0.0, wire_down, wire_up, calibrated_on)
        sim = predict(replace(p, pool=simulation_pool(p.pool, trial, cores)), trial)
        gap = [measured.gemm_s[n] - sim.gemm_s[n] for n in sim.gemm_s if n in measured.gemm_s]
        if not gap:
            raise FrugalError("the measured run timed no planned GEMM; is the plan for tiny-gpt?")
        ps = max(0.0, float(np.median(gap)))
        score = float(np.sum(np.abs(np.array(gap) - ps)))
        if best is None or score < best[0]:
            best = (score, replace(trial, gemm_ps_s=ps))
    assert best is not None
    fitted = best[1]
    sim = predict(replace(p, pool=simulation_pool(p.pool, fitted, cores)), fitted)
    return replace(fitted, step_ps_s=max(0.0, measured.step_s - sim.step_s))


def relative(predicted: float, measured: float) -> float:
    return abs(predicted - measured) / measured if measured else float("inf")


def run_validation(
    workers: int,
    steps: int,
    pool_file: str | Path | None,
    cpus: float,
    calibrate_here: bool,
    catalogue: str | Path | None = None,
    seed: int = 0,
) -> tuple[list[Record], Prediction, Measured]:
    """Measure ``steps`` steps on ``workers`` emulated hosts and simulate the same plan; with
    ``calibrate_here``, fit the overheads on this run and record them in ``catalogue`` first."""
    import tempfile

    from frugalml.cleave.runtime.worker import measure_flops

    if not 0.01 <= cpus <= 64:
        raise InvalidInputError(f"--cpus must be in [0.01, 64], got {cpus}")
    cores = cpus / workers
    flops = measure_flops() * min(1.0, cores)
    overheads = Overheads() if calibrate_here else load_overheads(catalogue)
    pool = fleet_pool(workers, pool_file, seed, flops)
    p = plan_for(simulation_pool(pool, overheads, cores))
    with tempfile.TemporaryDirectory(prefix="cleave-validate-") as tmp:
        measured = measure(p, pool, steps, cpus, flops, "clval", Path(tmp))
    if calibrate_here:
        overheads = calibrate(p, measured, cores, f"{workers} workers, {cpus:g} cores, {steps} steps")
        save_overheads(overheads, catalogue)
        p = replace(p, pool=simulation_pool(pool, overheads, cores))
    predicted = predict(p, overheads)
    return validation_records(workers, cpus, steps, predicted, measured, overheads), predicted, measured


def validation_records(
    workers: int, cpus: float, steps: int, predicted: Prediction, measured: Measured, overheads: Overheads
) -> list[Record]:
    """The step-time and bytes-per-worker records (``step_time_relative_error`` among their fields)."""
    # workers the plan gives no tiles move only registration and heartbeats: reported, not compared
    pairs = list(zip(predicted.bytes_per_worker, measured.bytes_per_worker, strict=True))
    busy = [(p, m) for p, m in pairs if p[0] > 0]
    idle = [m for p, m in pairs if p[0] == 0]
    down_err = [relative(p[0], m[0]) for p, m in busy]
    up_err = [relative(p[1], m[1]) for p, m in busy]
    notes = f"{measured.mode}; {cpus:g} cores for all workers; {env.machine()} (shared with other work)"
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
                "measured_bytes_per_step": measured.bytes_per_worker,
                "down_relative_error": down_err,
                "idle_workers_measured_bytes_per_step": idle,
                "up_relative_error": up_err,
            },
            notes=notes,
            command=f"frugal cleave validate --workers {workers} --steps {steps} --cpus {cpus:g}",
            system="cleave",
            workload=workload,
            peer="measured runtime",
        ),
    ]
