"""A plan as a file the parameter server executes: per-GEMM grids and each device class's share.

``frugal cleave plan --json plan.json`` writes it, ``frugal cleave serve --plan plan.json`` runs
it. The file is JSON (readable, diffable) with a format name, a version and the SHA-256 of its
canonical body, written atomically; :func:`read_plan` refuses a truncated or edited file, another
version, and any field of the wrong type before anything uses it.

Example
-------
>>> from frugalml.cleave import build_graph, load_model, make_pool, plan
>>> p = plan(build_graph(load_model("tiny-gpt"), 8, 32, 4), make_pool(counts={"laptop": 2}, jitter=0))
>>> ep = executable_plan(p, "float32")
>>> ep.model, ep.classes, len(ep.gemms) > 0
('tiny-gpt', {'laptop': 2}, True)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.cleave.models import DTYPE_BYTES
from frugalml.cleave.tiling import TileGrid
from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.common.files import atomic_write

if TYPE_CHECKING:
    from frugalml.cleave.planner import Plan

FORMAT = "frugalml-cleave-plan"
VERSION = 2  # 2: tasks_in_flight
MAX_BYTES = 64 << 20  # a plan for 10,000 devices is a few hundred kB


@dataclass(frozen=True)
class PlannedGemm:
    """One GEMM of the step: its shape, the grid it is cut by, and each class's share of its tiles."""

    name: str
    m: int
    n: int
    k: int
    batch: int
    repeats: int
    grid_rows: int
    grid_cols: int
    batch_chunks: int
    on_ps: bool
    shares: dict[str, float]
    seconds: float

    @property
    def grid(self) -> TileGrid:
        return TileGrid(self.grid_rows, self.grid_cols, self.batch_chunks)


@dataclass(frozen=True)
class ExecutablePlan:
    """What the parameter server needs from a plan: the model and batch it was made for, the
    device classes it expects (how many of each), and every GEMM's grid and class shares."""

    model: str
    batch: int
    seq: int
    dtype: str
    classes: dict[str, int]
    gemms: tuple[PlannedGemm, ...]
    batch_seconds: float
    tasks_in_flight: int  # tasks a device holds at once, as planned (the runtime's workers: one)

    def gemm(self, name: str) -> PlannedGemm | None:
        """The planned GEMM called ``name`` (``qkv.fwd``, ``ffn_up.dw1``...), or None."""
        return next((g for g in self.gemms if g.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gemms": [asdict(g) for g in self.gemms]}


def executable_plan(p: Plan, dtype: str) -> ExecutablePlan:
    """The parts of planner output ``p`` a server executes; shares are the LP's tiles per class."""
    if dtype not in DTYPE_BYTES:
        raise InvalidInputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_BYTES)}")
    if DTYPE_BYTES[dtype] != p.graph.dtype_bytes:
        raise InvalidInputError(
            f"the plan was made for {p.graph.dtype_bytes}-byte elements, not {dtype} ({DTYPE_BYTES[dtype]})"
        )
    if any(gp.gemm.fused for gp in p.gemm_plans):
        raise InvalidInputError(
            "the column-then-row FFN split is a simulator option the runtime does not execute; "
            "plan without --ffn-split to write a plan file"
        )
    names = p.pool.class_names
    counts = np.bincount(p.pool.class_index, minlength=len(names))
    group_class = p.groups.group_class
    tiled = iter(range(len(p.assignment.tiles)))
    gemms = []
    for gp in p.gemm_plans:
        shares: dict[str, float] = {}
        if not gp.on_ps:
            tiles = p.assignment.tiles[next(tiled)]
            per_class = np.bincount(group_class, weights=tiles, minlength=len(names))
            total = per_class.sum()
            shares = {names[c]: float(per_class[c] / total) for c in range(len(names)) if per_class[c] > 0}
        g = gp.gemm
        gemms.append(
            PlannedGemm(
                g.name,
                g.m,
                g.n,
                g.k,
                g.batch,
                gp.repeats,
                gp.grid.grid_rows,
                gp.grid.grid_cols,
                gp.grid.batch_chunks,
                gp.on_ps,
                shares,
                float(gp.seconds),
            )
        )
    return ExecutablePlan(
        p.graph.model.name,
        p.graph.batch,
        p.graph.seq,
        dtype,
        {names[c]: int(counts[c]) for c in range(len(names)) if counts[c]},
        tuple(gemms),
        float(p.batch_seconds),
        int(p.pool.tasks_in_flight),
    )


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=float).encode()).hexdigest()


def write_plan(path: str | Path, executable: ExecutablePlan, details: dict | None = None) -> None:
    """Write ``executable`` (plus the planner's ``details``, for people) atomically, checksummed."""
    body = {"execute": executable.to_dict(), "details": details or {}}
    doc = {"format": FORMAT, "version": VERSION, "sha256": _digest(body), **body}
    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=2, default=float)


def read_plan(path: str | Path) -> ExecutablePlan:
    """Read and check a plan file.

    Raises
    ------
    DataNotFoundError
        No such file.
    CorruptFileError
        Not a cleave plan, truncated, edited (checksum mismatch), another version, or a field of
        the wrong type; the message says which.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"plan {path} does not exist; write one with 'frugal cleave plan --json'")
    if path.stat().st_size > MAX_BYTES:
        raise CorruptFileError(f"plan {path} is larger than {MAX_BYTES >> 20} MiB; it is not a cleave plan")
    try:
        doc = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptFileError(f"plan {path} is not complete JSON ({exc}); write it again") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is not a cleave plan; write one with 'frugal cleave plan --json'")
    if doc.get("version") != VERSION:
        raise CorruptFileError(
            f"plan {path} has format version {doc.get('version')!r}; this frugalml reads version "
            f"{VERSION}; make the plan again with this version"
        )
    body = {"execute": doc.get("execute"), "details": doc.get("details")}
    if doc.get("sha256") != _digest(body):
        raise CorruptFileError(
            f"plan {path} was changed after it was written (checksum mismatch); write it again"
        )
    try:
        return _parse(body["execute"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"plan {path} has a malformed field ({exc!r}); write it again") from None


def _int(value: Any, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"expected an integer >= {low}, got {value!r}")
    return value


def _float(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
        raise ValueError(f"expected a non-negative number, got {value!r}")
    return float(value)


def _parse(doc: Any) -> ExecutablePlan:
    if (
        not isinstance(doc, dict)
        or not isinstance(doc["gemms"], list)
        or not isinstance(doc["classes"], dict)
    ):
        raise TypeError("'execute' must hold 'classes' (a mapping) and 'gemms' (a list)")
    gemms = []
    for g in doc["gemms"]:
        shares = g["shares"]
        if not isinstance(shares, dict) or not all(isinstance(c, str) for c in shares):
            raise TypeError(f"GEMM {g.get('name')!r}: 'shares' must map class names to fractions")
        m, n, k, batch, repeats, rows, cols, chunks = (
            _int(g[f]) for f in ("m", "n", "k", "batch", "repeats", "grid_rows", "grid_cols", "batch_chunks")
        )
        planned = PlannedGemm(
            str(g["name"]),
            m,
            n,
            k,
            batch,
            repeats,
            rows,
            cols,
            chunks,
            bool(g["on_ps"]),
            {c: _float(v) for c, v in shares.items()},
            _float(g["seconds"]),
        )
        if (
            planned.grid_rows > planned.m
            or planned.grid_cols > planned.n
            or planned.batch_chunks > planned.batch
        ):
            raise ValueError(f"GEMM {planned.name}: grid {planned.grid} is finer than its output")
        gemms.append(planned)
    dtype = str(doc["dtype"])
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}")
    return ExecutablePlan(
        str(doc["model"]),
        _int(doc["batch"]),
        _int(doc["seq"]),
        dtype,
        {str(c): _int(n, 0) for c, n in doc["classes"].items()},
        tuple(gemms),
        _float(doc["batch_seconds"]),
        _int(doc["tasks_in_flight"]),
    )
