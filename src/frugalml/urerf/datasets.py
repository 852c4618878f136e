"""Simulated manifolds with analytic geodesic distances, plus appended Gaussian noise dimensions.

The shapes follow the URerF paper: linear, helix, sphere (radius 9), Gaussian mixture,
Hardy-Weinberg curve, plus the swiss roll and S-curve. Noise columns are N(0, variance 70).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.seeding import rng
from frugalml.common.validate import one_of
from frugalml.urerf.limits import check_fits

NOISE_VARIANCE = 70.0


@dataclass
class Simulation:
    """Points on a manifold (first ``manifold_dims`` columns, then noise) and their true geodesics."""

    name: str
    X: np.ndarray
    geodesic: np.ndarray | None
    manifold_dims: int
    labels: np.ndarray | None = None


def _arc(u: np.ndarray, a2: float) -> np.ndarray:
    """Antiderivative of sqrt(u^2 + a2)."""
    return 0.5 * (u * np.sqrt(u * u + a2) + a2 * np.arcsinh(u / np.sqrt(a2)))


def _abs_diff(s: np.ndarray) -> np.ndarray:
    return np.abs(s[:, None] - s[None, :])


def _linear(n, g):
    t = g.uniform(0, 1, n)
    direction = np.array([21.0, 6.0, 14.0])
    return t[:, None] * direction, lambda: _abs_diff(t) * np.linalg.norm(direction), None


def _helix(n, g):
    t = g.uniform(0, 1, n)
    p = 1.5 * np.pi * (1 + 2 * t)
    X = np.column_stack([2 * p * np.cos(2 * p), 2 * p * np.sin(2 * p), 2 * p])
    # |d x / d p| = sqrt(8 + 16 p^2) = 4 sqrt(p^2 + 1/2)
    return X, lambda: 4.0 * _abs_diff(_arc(p, 0.5)), None


def _sphere(n, g, radius: float = 9.0):
    u = g.uniform(0, 2 * np.pi, n)
    v = g.uniform(0, np.pi, n)
    unit = np.column_stack([np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v)])
    return radius * unit, lambda: radius * np.arccos(np.clip(unit @ unit.T, -1.0, 1.0)), None


def _gaussian_mixture(n, g):
    """Three well separated isotropic Gaussian blobs in 3-D; disconnected parts of the manifold,
    so the geodesic is Euclidean within a blob and infinite across blobs."""
    centres = np.array([[0.0, 0.0, 0.0], [20.0, 0.0, 0.0], [0.0, 20.0, 0.0]])
    labels = g.integers(0, len(centres), n)
    X = centres[labels] + g.normal(0, 2.0, (n, 3))

    def geodesic():
        d = np.linalg.norm(X[:, None] - X[None, :], axis=-1)
        return np.where(labels[:, None] == labels[None, :], d, np.inf)

    return X, geodesic, labels


def _hardy_weinberg(n, g):
    t = g.uniform(0, 1, n)
    X = np.column_stack([t**2, 2 * t * (1 - t), (1 - t) ** 2])
    # |d x / d t| = sqrt(24 t^2 - 24 t + 8) = sqrt(24) sqrt((t - 1/2)^2 + 1/12)
    return X, lambda: np.sqrt(24.0) * _abs_diff(_arc(t - 0.5, 1.0 / 12.0)), None


def _swiss_roll(n, g):
    t = 1.5 * np.pi * (1 + 2 * g.uniform(0, 1, n))
    h = g.uniform(0, 21, n)
    X = np.column_stack([t * np.cos(t), h, t * np.sin(t)])
    s = _arc(t, 1.0)  # arc length of the spiral (t cos t, t sin t): |d/dt| = sqrt(1 + t^2)
    return X, lambda: np.hypot(_abs_diff(s), _abs_diff(h)), None


def _s_curve(n, g):
    t = 3 * np.pi * (g.uniform(0, 1, n) - 0.5)
    y = 2.0 * g.uniform(0, 1, n)
    X = np.column_stack([np.sin(t), y, np.sign(t) * (np.cos(t) - 1)])
    return X, lambda: np.hypot(_abs_diff(t), _abs_diff(y)), None  # the curve has unit speed in t


SIMULATIONS: dict[str, Callable] = {
    "linear": _linear,
    "helix": _helix,
    "sphere": _sphere,
    "gaussian_mixture": _gaussian_mixture,
    "hardy_weinberg": _hardy_weinberg,
    "swiss_roll": _swiss_roll,
    "s_curve": _s_curve,
}


def check_simulation_fits(n: int, noise_dims: int, geodesic: bool = True) -> None:
    """Refuse, before sampling, a simulation whose points (and n x n geodesics) cannot fit in memory."""
    dims = 3 + noise_dims  # every simulation has at most 3 manifold dimensions
    check_fits(
        8 * n * dims + (24 * n**2 if geodesic else 0),
        f"{n} simulated points with {noise_dims} noise dimensions"
        + (" and their n x n geodesic distances" if geodesic else ""),
        "use fewer points or noise dimensions",
    )


def simulate(
    name: str,
    n: int = 1000,
    noise_dims: int = 0,
    seed: int | None = 0,
    noise_variance: float = NOISE_VARIANCE,
    geodesic: bool = True,
) -> Simulation:
    """Sample ``n`` points of a named manifold, append ``noise_dims`` N(0, noise_variance) columns.

    With ``geodesic=False`` the n x n true distances are not formed (``geodesic`` is None), for
    large n.

    Examples
    --------
    >>> data = simulate("helix", n=100, noise_dims=10, seed=1)
    >>> data.X.shape, data.geodesic.shape
    ((100, 13), (100, 100))
    """
    one_of(name, SIMULATIONS, "simulation")
    if not isinstance(n, int | np.integer) or n < 2:
        raise InvalidInputError(f"n must be an integer >= 2, got {n!r}")
    if not isinstance(noise_dims, int | np.integer) or noise_dims < 0:
        raise InvalidInputError(f"noise_dims must be a non-negative integer, got {noise_dims!r}")
    check_simulation_fits(int(n), int(noise_dims), geodesic)
    g = rng(seed)
    X, truth, labels = SIMULATIONS[name](int(n), g)
    noise = g.normal(0.0, np.sqrt(noise_variance), (int(n), int(noise_dims)))
    return Simulation(name, np.hstack([X, noise]), truth() if geodesic else None, X.shape[1], labels)
