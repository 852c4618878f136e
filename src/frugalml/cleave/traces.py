"""Link bandwidth over time from real measured traces (shared/data/bandwidth-traces).

Two families: ``mobile`` (Norway HSDPA 3G logs: bus, car, ferry, metro, train, tram) and
``broadband`` (FCC Measuring Broadband America, the ``trace_*`` files). Each trace is resampled
to a 1 s grid and divided by its mean, so it gives the SHAPE of a link's variation; a device's
level comes from its class (``down(t) = down_nominal * multiplier(t)``, uplink likewise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalml.common.data import resolve
from frugalml.common.errors import CorruptFileError, InvalidInputError

FAMILIES = ("mobile", "broadband")
_MOBILE_PREFIXES = ("bus.", "car.", "ferry.", "metro.", "train.", "tram.")


@dataclass(frozen=True)
class TraceSet:
    """Normalised bandwidth multipliers (mean 1), all traces concatenated for fast lookup."""

    names: tuple[str, ...]
    family: np.ndarray  # 0 = mobile, 1 = broadband, per trace
    data: np.ndarray  # concatenated multipliers
    start: np.ndarray  # first index of each trace in ``data``
    length: np.ndarray  # samples per trace
    step_s: float = 1.0

    def multiplier(self, trace: np.ndarray, offset: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        """Multiplier of trace ``trace`` at time ``t + offset`` (traces repeat)."""
        idx = (np.floor((np.asarray(t) + offset) / self.step_s).astype(np.int64)) % self.length[trace]
        return self.data[self.start[trace] + idx]

    def assign(self, is_mobile: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random trace of the right family and a random start offset for each device."""
        trace = np.empty(len(is_mobile), dtype=np.int64)
        for fam, want in ((0, True), (1, False)):
            pool = np.flatnonzero(self.family == fam)
            members = np.flatnonzero(is_mobile == want)
            if len(members) and not len(pool):
                raise InvalidInputError(
                    f"no {FAMILIES[fam]} bandwidth trace is available for {len(members)} device(s)"
                )
            trace[members] = rng.choice(pool, size=len(members)) if len(members) else trace[members]
        offset = rng.uniform(0, self.length[trace] * self.step_s)
        return trace, offset


def _read_trace(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = np.loadtxt(path, ndmin=2)
    except ValueError as exc:
        raise CorruptFileError(f"bandwidth trace {path} is not two numeric columns: {exc}") from None
    if table.shape[1] < 2 or len(table) < 2:
        raise CorruptFileError(f"bandwidth trace {path} needs rows 'time_s Mbit_s', got shape {table.shape}")
    return table[:, 0], table[:, 1]


def load_traces(path: str | Path | None = None, step_s: float = 1.0) -> TraceSet:
    """Read every trace in the folder (default: ``bandwidth-traces`` under ``$FRUGAL_DATA``).

    Raises
    ------
    DataNotFoundError
        The folder is not found (set FRUGAL_DATA or pass ``path``).
    CorruptFileError
        A trace is not two numeric columns or has no positive bandwidth.
    """
    folder = resolve(
        "bandwidth-traces",
        path=path,
        hint="the traces come from github.com/hongzimao/pensieve (sim/cooked_traces)",
    )
    names, families, series = [], [], []
    for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        times, mbps = _read_trace(file)
        if not np.all(np.isfinite(mbps)) or mbps.mean() <= 0:
            raise CorruptFileError(f"bandwidth trace {file} has no positive finite bandwidth")
        grid = np.arange(times[0], times[-1], step_s)
        resampled = np.maximum(np.interp(grid, times, mbps), 1e-3 * mbps.mean())
        names.append(file.name)
        families.append(0 if file.name.startswith(_MOBILE_PREFIXES) else 1)
        series.append(resampled / resampled.mean())
    if not series:
        raise CorruptFileError(f"no bandwidth traces in {folder}")
    length = np.array([len(s) for s in series], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    return TraceSet(tuple(names), np.array(families), np.concatenate(series), start, length, step_s)
