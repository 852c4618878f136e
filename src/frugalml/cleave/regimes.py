"""Where Cleave wins: a regime map over models, batches, device counts, pools and link asymmetry.

:func:`regime_map` plans every cell of a fixed grid with the analytic model, runs every edge
baseline on the same pool and links, and reports per cell Cleave's per-batch time, the best
baseline and which one, their ratio, Cleave's floors (what binds it: downlink, uplink, PS egress
or ingress, compute) and whether any single device of the pool could train the model alone (the
data-parallel baseline runs). :func:`des_agreement` checks the analytic model against the
discrete-event simulator on a sample of cells.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from frugalml.cleave.analytic import analytic_step
from frugalml.cleave.baselines import run_baselines
from frugalml.cleave.devices import DEFAULT_MIX, ParameterServer, make_pool
from frugalml.cleave.models import load_model
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.planner import Plan, plan
from frugalml.common.errors import InvalidInputError
from frugalml.common.files import atomic_write
from frugalml.common.progress import progress

MODELS = ("opt-1.3b", "opt-6.7b", "opt-13b", "opt-30b")
BATCHES = (8, 32, 128, 512)
COUNTS = (64, 256, 1024, 4096)
POOLS = {
    "phones": {"phone-midrange": 0.5, "phone-flagship": 0.5},
    "phones+laptops": {"phone-midrange": 0.25, "phone-flagship": 0.25, "laptop": 0.5},
    "mixed": dict(DEFAULT_MIX),
}
ASYMMETRIES = (2.0, 10.0)  # downlink / uplink
SEQ = 1024
FLOORS = ("downlink", "uplink", "ps_egress", "ps_ingress", "compute")
# Design levers the map can switch, and whether the networked runtime executes each (a lever it
# does not execute is a simulator option, named so wherever its results are shown)
LEVERS = {
    "resident_weights": "a device keeps a whole weight it downloaded for the forward until the "
    "backward of the same layer (simulator option: the runtime re-sends weight tiles for every GEMM)",
    "ps_shards": "the parameter server split over more shards, each with its own network card "
    "(simulator option: the runtime has one server process)",
    "ffn_split": "the column-then-row FFN split: one task per (token rows, FFN column chunk) runs "
    "the up projection, the activation and the down projection on the device, partial sums go up "
    "(simulator option: the runtime runs the FFN as separate GEMMs with the activation on the PS)",
}
PS_SHARDS = 4  # the catalogue's parameter server


@dataclass(frozen=True)
class Grid:
    """The cells of a map: every combination of these (at most about 500)."""

    models: tuple[str, ...] = MODELS
    batches: tuple[int, ...] = BATCHES
    counts: tuple[int, ...] = COUNTS
    pools: tuple[str, ...] = tuple(POOLS)
    asymmetries: tuple[float, ...] = ASYMMETRIES
    seq: int = SEQ

    def __post_init__(self) -> None:
        unknown = [p for p in self.pools if p not in POOLS]
        if unknown:
            raise InvalidInputError(f"unknown pool {unknown[0]!r}; use one of {', '.join(POOLS)}")
        if any(b < 1 for b in self.batches) or any(c < 1 for c in self.counts) or self.seq < 1:
            raise InvalidInputError("batches, device counts and the sequence length must be positive")
        if any(not a > 0 for a in self.asymmetries):
            raise InvalidInputError("link asymmetries (downlink / uplink) must be positive")
        for model in self.models:
            load_model(model)  # an unknown model is a one-line error before any work

    def cells(self) -> list[tuple[str, int, int, str, float]]:
        return [
            (m, b, n, p, a)
            for m in self.models
            for p in self.pools
            for a in self.asymmetries
            for b in self.batches
            for n in self.counts
        ]


@dataclass
class Cell:
    """One regime: Cleave's planned step against the best edge baseline on the same devices."""

    model: str
    batch: int
    devices: int
    pool: str
    asymmetry: float
    cleave_s: float
    best_baseline: str
    baseline_s: float
    ratio: float  # baseline seconds / Cleave seconds: above 1 Cleave is faster
    binding: str  # Cleave's largest floor
    floors: dict[str, float] = field(default_factory=dict)  # seconds per batch, per floor
    single_device: bool = False  # some device of the pool trains the model alone (data parallel runs)
    baselines: dict[str, float] = field(default_factory=dict)
    levers: str = ""  # the simulator options Cleave was planned with ("": none)

    @property
    def cleave_wins(self) -> bool:
        return self.ratio > 1.0


def cleave_floors(p: Plan) -> dict[str, float]:
    """Seconds no schedule of ``p``'s tiles beats, per resource: every tile input over all
    downlinks, every output over all uplinks, the inputs through the PS egress and the outputs
    through its ingress, every tiled FLOP over all devices' FLOP/s."""
    tiled = [gp for gp in p.gemm_plans if not gp.on_ps]
    down = sum(gp.repeats * gp.grid.tasks * gp.cost.bytes_down for gp in tiled)
    up = sum(gp.repeats * gp.grid.tasks * gp.cost.bytes_up for gp in tiled)
    flops = sum(gp.repeats * gp.grid.tasks * gp.cost.flops for gp in tiled)
    pool = p.pool
    return {
        "downlink": float(down / pool.effective_down.sum()),
        "uplink": float(up / pool.effective_up.sum()),
        "ps_egress": float(down / pool.ps.egress),
        "ps_ingress": float(up / pool.ps.ingress),
        "compute": float(flops / pool.flops.sum()),
    }


def draw_pool(pool: str, devices: int, asymmetry: float, seed: int = 0, ps_shards: int = PS_SHARDS):
    """``devices`` devices of the named mix with uplink = downlink / ``asymmetry``, served by a
    parameter server of ``ps_shards`` shards."""
    return make_pool(
        devices, POOLS[pool], uplink_ratio=asymmetry, seed=seed, ps=ParameterServer(shards=ps_shards)
    )


def lever_label(resident_weights: bool = True, ps_shards: int = PS_SHARDS, ffn_split: bool = False) -> str:
    """The simulator options switched on, as every output names them ("": none)."""
    on = [name for name, used in (("resident_weights", resident_weights), ("ffn_split", ffn_split)) if used]
    if ps_shards != PS_SHARDS:
        on.append(f"ps_shards={ps_shards}")
    return ", ".join(on) + " (simulator options)" if on else ""


def measure_cell(
    model: str,
    batch: int,
    devices: int,
    pool: str,
    asymmetry: float,
    seq: int,
    seed: int,
    resident_weights: bool = True,
    ps_shards: int = PS_SHARDS,
    ffn_split: bool = False,
) -> Cell:
    """Plan Cleave (analytic model) and every baseline on one pool; see :class:`Cell`. The levers
    change only Cleave's plan; the baselines run the plain model."""
    graph = build_graph(load_model(model), batch, seq)
    devices_pool = draw_pool(pool, devices, asymmetry, seed, ps_shards)
    ours = build_graph(load_model(model), batch, seq, ffn_split=ffn_split) if ffn_split else graph
    p = plan(ours, devices_pool, churn=False, resident_weights=resident_weights)
    seconds = analytic_step(p).seconds
    base = {k: v.seconds for k, v in run_baselines(graph, devices_pool, seed).items()}
    best = min(base, key=lambda k: base[k])
    floors = cleave_floors(p)
    ratio = base[best] / seconds if seconds > 0 else math.inf
    return Cell(
        model,
        batch,
        devices,
        pool,
        asymmetry,
        float(seconds),
        best,
        float(base[best]),
        float(ratio),
        max(floors, key=lambda k: floors[k]),
        floors,
        bool(np.isfinite(base["dp"])),
        base,
        lever_label(resident_weights, ps_shards, ffn_split),
    )


def regime_map(
    grid: Grid | None = None,
    *,
    seed: int = 0,
    quiet: bool = True,
    resident_weights: bool = True,
    ps_shards: int = PS_SHARDS,
    ffn_split: bool = False,
) -> list[Cell]:
    """Every cell of ``grid`` (default: 4 models x 4 batches x 4 counts x 3 pools x 2 asymmetries),
    Cleave planned with or without each lever (see :data:`LEVERS`)."""
    grid = grid or Grid()
    return [
        measure_cell(m, b, n, p, a, grid.seq, seed, resident_weights, ps_shards, ffn_split)
        for m, b, n, p, a in progress(grid.cells(), desc="regime map", quiet=quiet)
    ]


def des_agreement(
    cells: list[Cell],
    sample: int = 10,
    *,
    seq: int = SEQ,
    seed: int = 0,
    resident_weights: bool = True,
    ps_shards: int = PS_SHARDS,
    ffn_split: bool = False,
) -> list[dict]:
    """The analytic model against the discrete-event simulator on ``sample`` cells drawn with
    ``seed``: the dataflow schedule (a micro-batch's next GEMM starts when its own inputs are done),
    the PS NIC shared, no churn, traces, stragglers or backups."""
    from frugalml.cleave.des import SimConfig, simulate_step

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cells))[: max(0, sample)]
    config = SimConfig(churn=False, traces=False, backups=False, straggler_prob=0.0)
    out = []
    for i in sorted(order, key=lambda i: (cells[i].devices, MODELS.index(cells[i].model), cells[i].batch)):
        c = cells[i]
        graph = build_graph(load_model(c.model), c.batch, seq, ffn_split=ffn_split)
        p = plan(
            graph,
            draw_pool(c.pool, c.devices, c.asymmetry, seed, ps_shards),
            churn=False,
            resident_weights=resident_weights,
        )
        start = time.perf_counter()
        sim = simulate_step(p, config, seed=seed).seconds
        out.append(
            {
                **_key(c),
                "analytic_s": c.cleave_s,
                "des_s": float(sim),
                "relative_difference": abs(sim - c.cleave_s) / sim if sim else math.inf,
                "des_wall_s": time.perf_counter() - start,
            }
        )
    return out


def _key(c: Cell) -> dict:
    return {
        "model": c.model,
        "batch": c.batch,
        "devices": c.devices,
        "pool": c.pool,
        "asymmetry": c.asymmetry,
    }


def write_csv(cells: Iterable[Cell], path: str | Path) -> Path:
    """One row per cell: the key, Cleave, the best baseline, the ratio, the floors, single device."""
    names = ("asteroid", "megatron", "swarm", "dp")
    with atomic_write(path, "w") as f:
        w = csv.writer(f)
        w.writerow(
            [
                *_key(Cell("", 0, 0, "", 0.0, 0.0, "", 0.0, 0.0, "")),
                "cleave_s",
                "best_baseline",
                "baseline_s",
                "ratio",
                "cleave_binding",
                *(f"floor_{k}_s" for k in FLOORS),
                "single_device_can_train",
                *(f"{b}_s" for b in names),
                "cleave_levers",
            ]
        )
        for c in cells:
            w.writerow(
                [
                    *_key(c).values(),
                    f"{c.cleave_s:.6g}",
                    c.best_baseline,
                    f"{c.baseline_s:.6g}",
                    f"{c.ratio:.4g}",
                    c.binding,
                    *(f"{c.floors[k]:.6g}" for k in FLOORS),
                    int(c.single_device),
                    *(f"{c.baselines.get(b, math.inf):.6g}" for b in names),
                    c.levers,
                ]
            )
    return Path(path)


def plot_heatmaps(cells: list[Cell], folder: str | Path, stem: str = "compare") -> list[Path]:
    """One PNG per model: ratio (baseline / Cleave, log colour scale) with batch x devices across and
    pool x asymmetry down; cells where no edge baseline runs are hatched and marked."""
    from matplotlib.colors import LogNorm

    from frugalml.common.report import new_figure, save_plot

    paths = []
    for model in dict.fromkeys(c.model for c in cells):
        mine = [c for c in cells if c.model == model]
        cols = sorted({(c.batch, c.devices) for c in mine})
        rows = sorted({(c.pool, c.asymmetry) for c in mine}, key=lambda r: (list(POOLS).index(r[0]), r[1]))
        ratio = np.full((len(rows), len(cols)), np.nan)
        text = [["" for _ in cols] for _ in rows]
        for c in mine:
            i, j = rows.index((c.pool, c.asymmetry)), cols.index((c.batch, c.devices))
            if np.isfinite(c.baseline_s):
                ratio[i, j] = c.ratio
                text[i][j] = f"{c.ratio:.2g}"
            else:
                text[i][j] = "only\nCleave"
        fig, ax = new_figure(figsize=(max(7, 0.55 * len(cols) + 2), 0.5 * len(rows) + 2.2))
        finite = ratio[np.isfinite(ratio)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.1, 10.0)
        span = max(abs(np.log10(max(lo, 1e-6))), abs(np.log10(max(hi, 1e-6))), 0.5)
        im = ax.imshow(ratio, cmap="RdBu", norm=LogNorm(10**-span, 10**span), aspect="auto")
        for i in range(len(rows)):
            for j in range(len(cols)):
                ax.text(j, i, text[i][j], ha="center", va="center", fontsize=6)
                if not np.isfinite(ratio[i, j]):
                    ax.add_patch(_hatch(j, i))
        ax.set_xticks(range(len(cols)), [f"B{b}\n{n}" for b, n in cols], fontsize=6)
        ax.set_yticks(range(len(rows)), [f"{p} d/u={a:g}" for p, a in rows], fontsize=7)
        levers = mine[0].levers
        ax.set_title(
            f"{model}: best edge baseline / Cleave per-batch time (>1: Cleave faster)"
            + (f"\nCleave with {levers}" if levers else ""),
            fontsize=9,
        )
        fig.colorbar(im, ax=ax, label="ratio (log)")
        paths.append(save_plot(fig, Path(folder) / f"{stem}-{model.replace('.', '-')}.png"))
    return paths


def _hatch(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", lw=0)


def summary(cells: list[Cell], agreement: list[dict] | None = None) -> str:
    """One paragraph: where Cleave wins against a baseline that runs, where only Cleave runs, the
    cells meeting the paper's 4x, and what binds Cleave where it loses."""
    if not cells:
        return "no cells"
    only = [c for c in cells if not np.isfinite(c.baseline_s)]
    rivals = [c for c in cells if np.isfinite(c.baseline_s)]
    wins = [c for c in rivals if c.cleave_wins]
    four = sorted((c for c in rivals if c.ratio >= 4), key=lambda c: -c.ratio)
    binds: dict[str, int] = {}
    for c in rivals:
        if not c.cleave_wins:
            binds[c.binding] = binds.get(c.binding, 0) + 1
    text = (
        f"Of {len(cells)} cells, {len(only)} have no edge baseline that runs (no device set holds "
        f"their pipeline stages or replicas; {_where(only)}); Cleave runs in all of them. Where a "
        f"baseline runs, Cleave is faster in {len(wins)} of {len(rivals)} cells"
        + (f" ({_where(wins)})" if wins else "")
        + f" and >= 4x faster (the paper's claim) in {len(four)}"
        + (
            " (best: " + ", ".join(f"{_name(c)} {c.ratio:.1f}x vs {c.best_baseline}" for c in four[:3]) + ")"
            if four
            else ""
        )
        + ". Where it loses, its step is bound by "
        + ", ".join(f"{k} in {v}" for k, v in sorted(binds.items(), key=lambda kv: -kv[1]))
        + f" cells; a single device could train the model alone in {sum(c.single_device for c in cells)}."
    )
    if agreement:
        diffs = [a["relative_difference"] for a in agreement]
        text += (
            f" The event simulator (dataflow schedule) is within {100 * max(diffs):.0f}% of the analytic "
            f"model on {len(agreement)} sampled cells (median {100 * float(np.median(diffs)):.0f}%)."
        )
    return text


def _name(c: Cell) -> str:
    return f"{c.model} B{c.batch} {c.devices} {c.pool} d/u {c.asymmetry:g}"


def _where(cells: list[Cell]) -> str:
    """How many of ``cells`` per model and per device count (a compact description of a region)."""
    parts = []
    for key in ("model", "devices"):
        counts: dict = {}
        for c in cells:
            counts[getattr(c, key)] = counts.get(getattr(c, key), 0) + 1
        parts.append(", ".join(f"{v} at {k}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))))
    return "; ".join(parts)


def to_dict(cells: list[Cell]) -> list[dict]:
    return [asdict(c) for c in cells]
