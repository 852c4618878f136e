"""Recovery from a device failing for good: the same events in Cleave's DES and Asteroid's task graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalml.cleave.baselines import MIN_LINK_FACTOR, BaselineResult
from frugalml.cleave.bench.speedup import CLEAN, Comparison
from frugalml.cleave.bench.workload import SYSTEM, Setup, mean_finite
from frugalml.cleave.des import simulate_step
from frugalml.cleave.pipeline import busy_until, critical_pipeline, simulate_pipeline
from frugalml.cleave.planner import Plan
from frugalml.common.errors import InvalidInputError
from frugalml.common.report import Record
from frugalml.common.seeding import rng as make_rng


@dataclass
class RecoveryEvent:
    """One device failing at one fraction of the step, measured in Cleave's DES and in Asteroid's task
    graph (each at that fraction of its own clean step). Seconds; ``nan`` where nothing was lost."""

    device: int
    fraction: float
    cleave_redone: float  # failure -> the re-queued tiles of the device finished again
    cleave_stage_delay: float  # extra time of the GEMM occurrence the failure hit
    cleave_step_delay: float  # failed step - clean step (includes the changed pull order after it)
    cleave_to_step_end: float  # failure -> the step (the next finished one) ends
    asteroid_redone: float  # failure -> the lost device's unfinished tasks done again (after re-plan)
    asteroid_step_delay: float
    asteroid_to_step_end: float


def recovery_events(
    p: Plan,
    asteroid_result: BaselineResult,
    fractions: tuple[float, ...] = (0.3, 0.5, 0.7),
    seed: int = 0,
    attempts: int = 4,
) -> tuple[list[RecoveryEvent], float, float]:
    """The same failure events in both simulators: a device that both Cleave and the Asteroid-like
    baseline use (in Asteroid's critical pipeline, with work left there at that moment), dying for
    good at each ``fraction`` of the step: of Cleave's step, and of Asteroid's compute phase (until
    its devices' last task; its gradient rings after that are not attributed to devices, so a failure
    during them is not modelled). A device idle in Cleave at that moment loses nothing; up to
    ``attempts`` devices are tried (a random one, then Cleave's busiest) until one loses a tile.

    Cleave's DES runs with PS contention and backups, without churn, traces or stragglers, so the
    failure is the only difference from the clean run. Returns the events and both clean step times.

    Raises
    ------
    InvalidInputError
        The Asteroid-like baseline has no plan on this pool.
    """
    cfg = asteroid_result.pipeline
    if cfg is None:
        raise InvalidInputError(
            "the Asteroid-like baseline found no configuration; recovery cannot be compared"
        )
    keep = np.flatnonzero(p.pool.link_factor >= MIN_LINK_FACTOR)  # run_baselines' device subset
    clean = simulate_step(p, CLEAN, seed=seed)
    a_clean = simulate_pipeline(cfg).seconds
    j = critical_pipeline(cfg)
    until = busy_until(cfg)[j]
    gen = make_rng(seed)
    events = []
    for fraction in fractions:  # a stage device that still has work in Asteroid and that Cleave uses
        a_at = fraction * until.max()
        stages = [s for s in range(cfg.shape[1]) if until[s] > a_at]
        used = [s for s in stages if clean.busy[keep[cfg.devices[j, s]]] > 0]
        # a random one first, then the ones Cleave keeps busiest, until the failure hits a tile in flight
        busiest = sorted(used, key=lambda s: -clean.busy[keep[cfg.devices[j, s]]])
        tries = [int(gen.choice(used or stages)), *busiest]
        at = fraction * clean.seconds
        for stage in tries[:attempts]:
            device = int(keep[cfg.devices[j, stage]])
            failed = simulate_step(p, CLEAN, seed=seed, fail_device=device, fail_at=at)
            if failed.requeued:
                break
        hit = int(np.searchsorted(clean.stage_end, at))
        a = simulate_pipeline(cfg, fail=(j, stage), fail_at=a_at)
        events.append(
            RecoveryEvent(
                device,
                fraction,
                failed.recovery_seconds if failed.requeued else float("nan"),
                float(failed.stage_end[hit] - clean.stage_end[hit]),
                failed.seconds - clean.seconds,
                failed.seconds - at,
                a.redone,
                a.delay,
                a.to_step_end,
            )
        )
    return events, clean.seconds, a_clean


def recovery_records(setup: Setup, cmp: Comparison) -> list[Record]:
    """Failure until the lost work is redone, the extra delay, and failure until the next finished step."""
    events, c_clean, a_clean = recovery_events(cmp.plan, cmp.baselines["asteroid"], seed=setup.seed)
    where = (
        f"{setup.on_pool}, one device used by both fails for good at 30/50/70% of the step (Asteroid: "
        "of its compute phase) "
        f"(devices {[e.device for e in events]})"
    )
    lost = [e for e in events if np.isfinite(e.cleave_redone)]

    def record(metric: str, chosen: list[RecoveryEvent], field: str, peer: str, notes: str) -> Record:
        """Mean of ``cleave_<field>`` against the mean of ``asteroid_<field>`` over ``chosen``."""
        ours = mean_finite(getattr(e, f"cleave_{field}") for e in chosen)
        theirs = mean_finite(getattr(e, f"asteroid_{field}") for e in chosen)
        return Record(SYSTEM, where, metric, "s", ours, peer, theirs, notes=notes)

    return [
        record(
            "recovery: failure until the lost work is redone",
            lost,
            "redone",
            "asteroid (task graph: re-plan 5 s + migrate stage weights + replay)",
            f"target: ratio >= 100; Cleave: its re-queued tiles finished again (DES); "
            f"mean over the {len(lost)} of {len(events)} events where the device held a tile",
        ),
        Record(
            SYSTEM,
            where,
            "recovery: extra delay caused by the failure",
            "s",
            mean_finite(e.cleave_stage_delay for e in events),
            "asteroid (extra step time)",
            mean_finite(e.asteroid_step_delay for e in events),
            notes="Cleave: extra time of the GEMM the failure hit (later GEMMs pull in a "
            "changed order, which moves the whole step by "
            f"{[round(e.cleave_step_delay, 1) for e in events]} s, either sign); "
            f"clean steps: Cleave {c_clean:.0f} s (DES), Asteroid {a_clean:.0f} s",
        ),
        record(
            "recovery: failure until the next finished step",
            events,
            "to_step_end",
            "asteroid (task graph)",
            "the papers' definition of recovery time; dominated by the rest of the step, not by "
            "the failure (same fractions of each system's own step)",
        ),
    ]
