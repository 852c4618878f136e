"""Energy and CO2 per trained token: the edge pool against the cloud reference."""

from __future__ import annotations

from frugalml.cleave.analytic import analytic_step
from frugalml.cleave.baselines import cloud
from frugalml.cleave.bench.speedup import Comparison
from frugalml.cleave.bench.workload import SYSTEM, Setup
from frugalml.cleave.energy import cloud_energy, edge_energy
from frugalml.common.report import Record

CLOUD_GPUS = 64
GPU_WATTS = 400.0  # an A100 at full load


def energy_record(setup: Setup, cmp: Comparison) -> Record:
    """Joules per token of Cleave's planned step on the main pool and of the cloud reference."""
    est = analytic_step(cmp.plan)
    edge = edge_energy(setup.pool, est.busy, est.seconds, setup.graph.tokens)
    cloud_e = cloud_energy(cloud(setup.graph).seconds, CLOUD_GPUS, GPU_WATTS, setup.graph.tokens)
    by_class = {k: round(v, 3) for k, v in edge.kwh_by_class.items()}
    return Record(
        SYSTEM,
        setup.on_pool,
        "energy per token",
        "J/token",
        edge.joules_per_token,
        "cloud reference (64 x A100, PUE 1.2)",
        cloud_e.joules_per_token,
        notes=f"CO2 per step at 400 g/kWh: edge {edge.co2_g:.0f} g, cloud "
        f"{cloud_e.co2_g:.0f} g; edge kWh by class {by_class}",
    )
