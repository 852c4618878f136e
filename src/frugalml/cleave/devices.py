"""Device classes (a YAML catalogue with sources), the parameter server, and pools of devices.

A :class:`Pool` holds one array per device property (effective FLOP/s, task memory, link
bandwidths, latency, power, churn), drawn from a mix of classes with a seeded per-device jitter,
optionally with a real bandwidth trace per device (see :mod:`frugalml.cleave.traces`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from frugalml.cleave.traces import TraceSet, load_traces
from frugalml.common.errors import DataNotFoundError, InvalidInputError
from frugalml.common.seeding import rng as make_rng

KINDS = ("phone", "laptop", "edge", "desktop", "cloud")
MBIT = 1e6 / 8
GB = 1e9

MAX_DEVICES = 1 << 20  # a pool larger than this is a typo, not a fleet


@dataclass(frozen=True)
class DeviceClass:
    """One kind of device; see ``data/devices.yaml`` for what each field means and its source."""

    name: str
    kind: str
    tflops: float
    efficiency: float
    memory_gb: float
    down_mbps: float
    up_mbps: float
    rtt_ms: float
    power_w: float
    session_shape: float
    session_hours: float
    absence_shape: float
    absence_hours: float
    source: str

    @property
    def flops(self) -> float:
        """Sustained FLOP/s on training GEMM tiles."""
        return self.tflops * 1e12 * self.efficiency

    @property
    def mean_session_s(self) -> float:
        from math import gamma

        return self.session_hours * 3600 * gamma(1 + 1 / self.session_shape)


_NUMERIC = [f.name for f in fields(DeviceClass) if f.name not in ("name", "kind", "source")]


def _read_yaml(path: Path, what: str) -> dict:
    import yaml

    if not path.exists():
        raise DataNotFoundError(f"{what} {path} does not exist; check the path")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{what} {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{what} {path} must be a mapping at the top level")
    return doc


def parse_catalogue(doc: dict, origin: str = "catalogue") -> dict[str, DeviceClass]:
    """Device classes from a ``{"classes": {name: {field: value}}}`` mapping.

    Raises
    ------
    InvalidInputError
        A class lacks a field, has a non-positive number or an unknown kind; the message names
        the class and the field.
    """
    classes = doc.get("classes") if isinstance(doc, dict) else None
    if not isinstance(classes, dict) or not classes:
        raise InvalidInputError(f"{origin}: needs a non-empty 'classes' mapping of device classes")
    out = {}
    for name, spec in classes.items():
        if not isinstance(spec, dict):
            raise InvalidInputError(f"{origin}: class {name!r} must be a mapping of fields")
        missing = [f for f in ("kind", *_NUMERIC, "source") if f not in spec]
        if missing:
            raise InvalidInputError(f"{origin}: class {name!r} lacks field(s) {', '.join(missing)}")
        if spec["kind"] not in KINDS:
            raise InvalidInputError(
                f"{origin}: class {name!r} field 'kind' is {spec['kind']!r}; use one of {', '.join(KINDS)}"
            )
        values = {}
        for f in _NUMERIC:
            try:
                values[f] = float(spec[f])
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"{origin}: class {name!r} field {f!r} must be a number, got {spec[f]!r}"
                ) from None
            if not values[f] > 0 or not np.isfinite(values[f]):
                raise InvalidInputError(
                    f"{origin}: class {name!r} field {f!r} must be positive, got {spec[f]!r}"
                )
        if values["efficiency"] > 1:
            raise InvalidInputError(f"{origin}: class {name!r} field 'efficiency' must be in (0, 1]")
        out[name] = DeviceClass(name=name, kind=spec["kind"], source=str(spec["source"]), **values)
    return out


def load_catalogue(path: str | Path | None = None) -> dict[str, DeviceClass]:
    """The built-in catalogue, or one read from ``path`` (same format)."""
    if path is None:
        text = resources.files("frugalml.cleave").joinpath("data/devices.yaml").read_text()
        import yaml

        return parse_catalogue(yaml.safe_load(text), "built-in catalogue")
    return parse_catalogue(_read_yaml(Path(path), "device catalogue"), str(path))


@dataclass(frozen=True)
class ParameterServer:
    """The PS: NIC bandwidth per shard, shards, memory bandwidth and FLOP/s for non-GEMM ops."""

    nic_gbps: float = 100.0
    shards: int = 4
    mem_bandwidth_gbs: float = 2000.0
    tflops: float = 100.0
    power_w: float = 1500.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise InvalidInputError(f"parameter server field {f.name!r} must be positive, got {value!r}")

    @property
    def egress(self) -> float:
        """Bytes/s the PS can send to devices, all shards together."""
        return self.nic_gbps * 1e9 / 8 * self.shards

    @property
    def ingress(self) -> float:
        """Bytes/s the PS can receive from devices (full-duplex NICs: the same as egress)."""
        return self.egress


# Tasks a device pipelines (download / compute / upload of different tiles at once) unless its runtime
# says otherwise; the networked runtime's workers hold one (frugalml.cleave.runtime.protocol).
TASKS_IN_FLIGHT = 3


@dataclass
class Pool:
    """Devices as arrays (one entry per device). Build with :func:`make_pool` or :func:`load_pool`."""

    classes: tuple[DeviceClass, ...]
    class_index: np.ndarray
    flops: np.ndarray
    memory: np.ndarray
    down: np.ndarray
    up: np.ndarray
    rtt: np.ndarray
    power: np.ndarray
    ps: ParameterServer = field(default_factory=ParameterServer)
    traces: TraceSet | None = None
    trace_index: np.ndarray | None = None
    trace_offset: np.ndarray | None = None
    seed: int = 0
    tasks_in_flight: int = TASKS_IN_FLIGHT  # tasks one device holds at once (its memory may allow fewer)

    @cached_property
    def link_factor(self) -> np.ndarray:
        """Effective / nominal link rate: the harmonic mean of each device's trace (1 without).

        Transfers of fixed size take ``bytes / rate`` on average over a varying link only when
        the rate is this harmonic mean, so planners and analytic models use it.
        """
        if self.traces is None:
            return np.ones(len(self))
        t = self.traces
        harmonic = np.array(
            [1.0 / np.mean(1.0 / t.data[s : s + n]) for s, n in zip(t.start, t.length, strict=True)]
        )
        return harmonic[self.trace_index]

    @property
    def effective_down(self) -> np.ndarray:
        return self.down * self.link_factor

    @property
    def effective_up(self) -> np.ndarray:
        return self.up * self.link_factor

    def __len__(self) -> int:
        return len(self.flops)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def churn_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per device Weibull (session shape, session scale s, absence shape, absence scale s)."""
        c = self.classes
        idx = self.class_index
        pick = lambda f: np.array([f(x) for x in c])[idx]  # noqa: E731
        return (
            pick(lambda x: x.session_shape),
            pick(lambda x: x.session_hours * 3600),
            pick(lambda x: x.absence_shape),
            pick(lambda x: x.absence_hours * 3600),
        )

    def mean_session(self) -> np.ndarray:
        return np.array([c.mean_session_s for c in self.classes])[self.class_index]

    def subset(self, keep: np.ndarray) -> Pool:
        """The pool restricted to devices ``keep`` (indices or a boolean mask)."""
        pick = lambda a: None if a is None else a[keep]  # noqa: E731
        return Pool(
            self.classes,
            self.class_index[keep],
            self.flops[keep],
            self.memory[keep],
            self.down[keep],
            self.up[keep],
            self.rtt[keep],
            self.power[keep],
            self.ps,
            self.traces,
            pick(self.trace_index),
            pick(self.trace_offset),
            self.seed,
            self.tasks_in_flight,
        )

    def summary(self) -> str:
        counts = np.bincount(self.class_index, minlength=len(self.classes))
        parts = [f"{n} {c.name}" for c, n in zip(self.classes, counts, strict=True) if n]
        return f"{len(self)} devices ({', '.join(parts)})"


DEFAULT_MIX = {
    "phone-midrange": 0.25,
    "phone-flagship": 0.25,
    "laptop": 0.3,
    "laptop-gpu": 0.05,
    "jetson-orin-nano": 0.1,
    "jetson-agx-orin": 0.05,
}


def _counts(mix: dict[str, float], devices: int) -> dict[str, int]:
    """Largest-remainder rounding of ``devices * share``, so small pools keep the mix."""
    total = sum(mix.values())
    exact = {k: devices * v / total for k, v in mix.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[
        : devices - sum(counts.values())
    ]:
        counts[k] += 1
    return counts


def make_pool(
    devices: int | None = None,
    mix: dict[str, float] | None = None,
    *,
    counts: dict[str, int] | None = None,
    catalogue: dict[str, DeviceClass] | None = None,
    jitter: float = 0.2,
    uplink_ratio: float | None = None,
    traces: TraceSet | None = None,
    ps: ParameterServer | None = None,
    seed: int = 0,
) -> Pool:
    """Draw a pool: ``devices`` devices split by ``mix`` shares (or exact ``counts`` per class).

    Parameters
    ----------
    jitter : float
        Log-normal sigma applied per device to FLOP/s and link bandwidth (heterogeneity within a
        class); 0 gives identical devices.
    uplink_ratio : float, optional
        When given, uplink = downlink / ``uplink_ratio`` instead of the class's uplink.
    traces : TraceSet, optional
        Real bandwidth traces; each device gets one (mobile traces for phones) at a random offset.

    Raises
    ------
    InvalidInputError
        Unknown class names, non-positive counts, negative jitter.
    """
    catalogue = catalogue or load_catalogue()
    if counts is None:
        if devices is None or not 1 <= devices <= MAX_DEVICES:
            raise InvalidInputError(f"devices must be an integer in 1..{MAX_DEVICES:,}, got {devices!r}")
        mix = DEFAULT_MIX if mix is None else mix
        if (
            not mix
            or any((not isinstance(v, (int, float))) or v < 0 for v in mix.values())
            or sum(mix.values()) <= 0
        ):
            raise InvalidInputError(f"mix must map class names to non-negative shares, got {mix!r}")
        counts = _counts(mix, devices)
    unknown = [k for k in counts if k not in catalogue]
    if unknown:
        raise InvalidInputError(
            f"unknown device class(es) {', '.join(unknown)}; the catalogue has {', '.join(catalogue)}"
        )
    if any(not isinstance(v, int) or v < 0 for v in counts.values()) or sum(counts.values()) < 1:
        raise InvalidInputError(f"counts must be non-negative integers with a positive total, got {counts!r}")
    if jitter < 0 or (uplink_ratio is not None and uplink_ratio <= 0):
        raise InvalidInputError("jitter must be >= 0 and uplink_ratio > 0")
    used = [catalogue[k] for k in counts if counts[k] > 0]
    class_index = np.concatenate([np.full(counts[c.name], i) for i, c in enumerate(used)])
    gen = make_rng(seed)
    class_index = gen.permutation(class_index)
    pick = lambda f: np.array([f(c) for c in used], dtype=float)[class_index]  # noqa: E731
    n = len(class_index)
    noise = (lambda: np.exp(gen.normal(0, jitter, n))) if jitter else (lambda: np.ones(n))
    down = pick(lambda c: c.down_mbps * MBIT) * noise()
    up = down / uplink_ratio if uplink_ratio else pick(lambda c: c.up_mbps * MBIT) * noise()
    pool = Pool(
        tuple(used),
        class_index,
        pick(lambda c: c.flops) * noise(),
        pick(lambda c: c.memory_gb * GB),
        down,
        up,
        pick(lambda c: c.rtt_ms / 1e3),
        pick(lambda c: c.power_w),
        ps or ParameterServer(),
        seed=seed,
    )
    if traces is not None:
        is_mobile = pick(lambda c: c.kind == "phone").astype(bool)
        pool.traces = traces
        pool.trace_index, pool.trace_offset = traces.assign(is_mobile, gen)
    return pool


_POOL_KEYS = {"devices", "mix", "counts", "seed", "jitter", "uplink_ratio", "traces", "catalogue", "ps"}


def load_pool(path: str | Path, devices: int | None = None, traces_path: str | Path | None = None) -> Pool:
    """Read a pool description (YAML) and draw the pool.

    The file holds ``devices`` + ``mix`` (shares per class) or ``counts``, and optionally
    ``seed``, ``jitter``, ``uplink_ratio``, ``traces`` (true: use the real traces), ``catalogue``
    (path to another catalogue, relative to the file) and ``ps`` (ParameterServer fields).
    ``devices`` overrides the file's device count (for sweeps).

    Raises
    ------
    InvalidInputError
        Unknown keys or bad values, naming them.
    """
    path = Path(path)
    doc = _read_yaml(path, "device pool")
    unknown = set(doc) - _POOL_KEYS
    if unknown:
        raise InvalidInputError(
            f"device pool {path}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_POOL_KEYS))}"
        )
    catalogue = load_catalogue(path.parent / doc["catalogue"]) if doc.get("catalogue") else None
    ps_fields = doc.get("ps") or {}
    if not isinstance(ps_fields, dict) or set(ps_fields) - {f.name for f in fields(ParameterServer)}:
        raise InvalidInputError(
            f"device pool {path}: field 'ps' must map ParameterServer fields "
            f"({', '.join(f.name for f in fields(ParameterServer))})"
        )
    trace_set = load_traces(traces_path) if doc.get("traces") else None
    n = devices if devices is not None else doc.get("devices")
    mix, counts = doc.get("mix"), doc.get("counts")
    if devices is not None and mix is None and counts:
        mix, counts = counts, None  # an explicit device count keeps the file's proportions
    return make_pool(
        n,
        mix,
        counts=None if devices is not None else counts,
        catalogue=catalogue,
        jitter=float(doc.get("jitter", 0.2)),
        uplink_ratio=doc.get("uplink_ratio"),
        traces=trace_set,
        ps=ParameterServer(**ps_fields),
        seed=int(doc.get("seed", 0)),
    )
