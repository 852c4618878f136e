"""Energy and carbon of a training step: per device class for Cleave, and for the cloud reference.

Edge devices draw their class's training power while busy (download, compute, upload); the PS
draws its power for the whole step. The cloud reference draws ``gpus x power x PUE``. CO2 is
energy times a grid intensity (g CO2 per kWh; 400 by default, roughly the world average).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalml.cleave.devices import Pool
from frugalml.common.errors import InvalidInputError

JOULES_PER_KWH = 3.6e6
DEFAULT_GRID_G_PER_KWH = 400.0
DEFAULT_PUE = 1.2


@dataclass
class EnergyReport:
    """Energy of one step (kWh) by class, per token (J), and CO2 (g) at ``grid_g_per_kwh``."""

    kwh_by_class: dict[str, float]
    kwh: float
    joules_per_token: float
    co2_g: float
    grid_g_per_kwh: float

    def to_dict(self) -> dict:
        return {
            "kwh": self.kwh,
            "kwh_by_class": self.kwh_by_class,
            "joules_per_token": self.joules_per_token,
            "co2_g": self.co2_g,
            "grid_g_per_kwh": self.grid_g_per_kwh,
        }


def _check_grid(grid_g_per_kwh: float) -> None:
    if not grid_g_per_kwh >= 0:
        raise InvalidInputError(f"grid intensity must be >= 0 g CO2/kWh, got {grid_g_per_kwh}")


def edge_energy(
    pool: Pool,
    busy: np.ndarray,
    step_seconds: float,
    tokens: int,
    grid_g_per_kwh: float = DEFAULT_GRID_G_PER_KWH,
) -> EnergyReport:
    """Energy of a Cleave step from each device's busy seconds plus the PS for the whole step."""
    _check_grid(grid_g_per_kwh)
    joules = pool.power * busy
    by_class = {
        c.name: float(joules[pool.class_index == i].sum() / JOULES_PER_KWH)
        for i, c in enumerate(pool.classes)
    }
    by_class["parameter-server"] = pool.ps.power_w * pool.ps.shards * step_seconds / JOULES_PER_KWH
    kwh = sum(by_class.values())
    return EnergyReport(by_class, kwh, kwh * JOULES_PER_KWH / tokens, kwh * grid_g_per_kwh, grid_g_per_kwh)


def cloud_energy(
    step_seconds: float,
    gpus: int,
    power_w: float,
    tokens: int,
    pue: float = DEFAULT_PUE,
    grid_g_per_kwh: float = DEFAULT_GRID_G_PER_KWH,
) -> EnergyReport:
    """Energy of the cloud reference: ``gpus`` at ``power_w`` for the step, times the PUE."""
    _check_grid(grid_g_per_kwh)
    kwh = gpus * power_w * pue * step_seconds / JOULES_PER_KWH
    return EnergyReport(
        {"cloud-gpus": kwh}, kwh, kwh * JOULES_PER_KWH / tokens, kwh * grid_g_per_kwh, grid_g_per_kwh
    )
