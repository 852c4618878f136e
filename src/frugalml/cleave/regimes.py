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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from frugalml.cleave.analytic import analytic_step, overlap_parts, overlap_step
from frugalml.cleave.baselines import run_baselines
from frugalml.cleave.devices import DEFAULT_MIX, ParameterServer, make_pool
from frugalml.cleave.models import load_model
from frugalml.cleave.opgraph import MICRO_TOKENS, build_graph, default_micro_batch
from frugalml.cleave.planner import OVERLAP_TOKENS, Plan, micro_batch_candidates, plan
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
    "overlap": "GEMMs overlapped across layers and micro-batches: a micro-batch group's next GEMM "
    "(and the next layer's weight tiles) starts as soon as its own inputs are done, instead of a "
    "barrier after every GEMM; the update still waits for every gradient (simulator option: the "
    "runtime runs lockstep)",
    "micro_tokens": "per cell the fastest of several micro-batch sizes (more, smaller micro-batches "
    "give the overlap more independent work; weight-gradient parts go up once per micro-batch) "
    "(simulator option: a plan file for the runtime holds one micro-batch)",
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
    lockstep_s: float = math.nan  # Cleave's step with a barrier after every GEMM (= cleave_s without overlap)
    micro_batches: int = 0  # micro-batches of Cleave's plan (0: not recorded)

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


def lever_label(
    resident_weights: bool = True,
    ps_shards: int = PS_SHARDS,
    ffn_split: bool = False,
    overlap: bool = False,
    micro_tokens: tuple[int, ...] = (),
) -> str:
    """The simulator options switched on, as every output names them ("": none)."""
    used = (("resident_weights", resident_weights), ("ffn_split", ffn_split), ("overlap", overlap))
    on = [name for name, flag in used if flag]
    if ps_shards != PS_SHARDS:
        on.append(f"ps_shards={ps_shards}")
    if micro_tokens:
        on.append("micro-batch tokens " + "|".join(str(t) for t in (MICRO_TOKENS, *micro_tokens)))
    return ", ".join(on) + " (simulator options)" if on else ""


def measure_cell(
    model: str,
    batch: int,
    devices: int,
    pool: str,
    asymmetry: float,
    seq: int,
    seed: int,
    *,
    resident_weights: bool = True,
    ps_shards: int = PS_SHARDS,
    ffn_split: bool = False,
    overlap: bool = False,
    micro_tokens: tuple[int, ...] = (),
) -> Cell:
    """Plan Cleave (analytic model) and every baseline on one pool; see :class:`Cell`. The levers
    change only Cleave's plan and schedule; the baselines run the plain model. ``micro_tokens``:
    micro-batch sizes (tokens) Cleave may use besides the default, the fastest kept."""
    graph = build_graph(load_model(model), batch, seq)
    devices_pool = draw_pool(pool, devices, asymmetry, seed, ps_shards)
    best_plan = None
    for mb in micro_batch_sizes(batch, seq, micro_tokens):
        ours = build_graph(load_model(model), batch, seq, micro_batch=mb, ffn_split=ffn_split)
        p = plan(ours, devices_pool, churn=False, resident_weights=resident_weights)
        lockstep = analytic_step(p).seconds
        seconds = overlap_step(p) if overlap else lockstep
        if best_plan is None or seconds < best_plan[0]:
            best_plan = (seconds, lockstep, p)
    assert best_plan is not None
    seconds, lockstep, p = best_plan
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
        lever_label(resident_weights, ps_shards, ffn_split, overlap, micro_tokens),
        float(lockstep),
        int(p.graph.micro_batches),
    )


def micro_batch_sizes(batch: int, seq: int, micro_tokens: tuple[int, ...] = ()) -> list[int | None]:
    """Sequences per micro-batch to try: the default (None) and one near each of ``micro_tokens``."""
    default = default_micro_batch(batch, seq)
    extra = sorted({default_micro_batch(batch, seq, t) for t in micro_tokens} - {default})
    return [None, *extra]


def regime_map(
    grid: Grid | None = None,
    *,
    seed: int = 0,
    quiet: bool = True,
    resident_weights: bool = True,
    ps_shards: int = PS_SHARDS,
    ffn_split: bool = False,
    overlap: bool = False,
    micro_tokens: tuple[int, ...] = (),
) -> list[Cell]:
    """Every cell of ``grid`` (default: 4 models x 4 batches x 4 counts x 3 pools x 2 asymmetries),
    Cleave planned with or without each lever (see :data:`LEVERS`)."""
    grid = grid or Grid()
    return [
        measure_cell(
            m,
            b,
            n,
            p,
            a,
            grid.seq,
            seed,
            resident_weights=resident_weights,
            ps_shards=ps_shards,
            ffn_split=ffn_split,
            overlap=overlap,
            micro_tokens=micro_tokens,
        )
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
    overlap: bool = False,
) -> list[dict]:
    """The analytic model against the discrete-event simulator on ``sample`` cells drawn with
    ``seed``, in both schedules: lockstep (a barrier after every GEMM) and dataflow (a micro-batch's
    next GEMM starts when its own inputs are done); the PS NIC shared, no churn, traces, stragglers
    or backups. ``relative_difference`` compares the analytic step with the simulator's schedule
    that it models (dataflow with ``overlap``, else lockstep)."""
    from frugalml.cleave.des import SimConfig, simulate_step

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cells))[: max(0, sample)]
    config = SimConfig(churn=False, traces=False, backups=False, straggler_prob=0.0)
    out = []
    for i in sorted(order, key=lambda i: (cells[i].devices, MODELS.index(cells[i].model), cells[i].batch)):
        c = cells[i]
        micro = c.batch // c.micro_batches if c.micro_batches else None  # the cell's own micro-batches
        graph = build_graph(load_model(c.model), c.batch, seq, micro_batch=micro, ffn_split=ffn_split)
        p = plan(
            graph,
            draw_pool(c.pool, c.devices, c.asymmetry, seed, ps_shards),
            churn=False,
            resident_weights=resident_weights,
        )
        start = time.perf_counter()
        dataflow = simulate_step(p, config, seed=seed).seconds
        lockstep = simulate_step(p, replace(config, lockstep=True), seed=seed).seconds
        sim = dataflow if overlap else lockstep
        out.append(
            {
                **_key(c),
                "schedule": "dataflow" if overlap else "lockstep",
                "analytic_s": c.cleave_s,
                "des_s": float(sim),
                "relative_difference": abs(sim - c.cleave_s) / sim if sim else math.inf,
                "analytic_lockstep_s": c.lockstep_s,
                "des_lockstep_s": float(lockstep),
                "des_dataflow_s": float(dataflow),
                "micro_batches": p.graph.micro_batches,
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
                "cleave_lockstep_s",
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
                    f"{c.lockstep_s:.6g}",
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
    verdict = floor_verdict(cells)
    if verdict["floor_prevents"] or verdict["schedule_prevents"]:
        text += (
            " Where the 4x does not hold, even a step at Cleave's binding floor would miss it in "
            + ", ".join(
                f"{v} cells ({k})"
                for k, v in sorted(verdict["floor_prevents"].items(), key=lambda kv: -kv[1])
            )
            + f"; in {verdict['schedule_prevents']} the schedule above the floor stands between (at the "
            f"median the best baseline's step is {verdict['median_baseline_over_floor']:.2g}x Cleave's "
            "floor)."
        )
    overlapped = [c for c in rivals if np.isfinite(c.lockstep_s) and c.lockstep_s != c.cleave_s]
    if overlapped:
        gain = np.array([c.lockstep_s / c.cleave_s for c in cells if np.isfinite(c.lockstep_s)])
        before = sum(c.baseline_s > c.lockstep_s for c in rivals)
        flips = [c for c in rivals if c.cleave_wins and not c.baseline_s > c.lockstep_s]
        over = [
            float(
                np.median([getattr(c, k) / c.floors[c.binding] for c in cells if np.isfinite(c.lockstep_s)])
            )
            for k in ("lockstep_s", "cleave_s")
        ]
        text += (
            " Overlapping GEMMs across layers and micro-batches shortens Cleave's step "
            f"{float(np.median(gain)):.2f}x at the median (up to {float(gain.max()):.2f}x); Cleave wins "
            f"{len(wins)} of {len(rivals)} cells with it, {before} in lockstep"
            + (f" (flipped: {', '.join(_name(c) for c in flips[:4])})" if flips else "")
            + f"; its floors stay (the same tiles move the same bytes), its step falls from {over[0]:.2f}x "
            f"to {over[1]:.2f}x its binding floor at the median."
        )
    if agreement:
        diffs = [a["relative_difference"] for a in agreement]
        text += (
            f" The event simulator ({agreement[0].get('schedule', 'dataflow')} schedule) is within "
            f"{100 * max(diffs):.0f}% of the analytic model on {len(agreement)} sampled cells (median "
            f"{100 * float(np.median(diffs)):.1f}%)."
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


# The goal configurations: OPT-13B on 1024 devices of the default mixed pool, sequences of 1024 tokens,
# as `frugal cleave plan --model opt-13b --batch B --seq 1024 --devices 1024 -q` plans them (churn on)
GOAL_MODEL, GOAL_DEVICES, GOAL_SEQ = "opt-13b", 1024, 1024
GOAL_BATCHES = {16: 2.0, 512: 1.3}  # batch: >= 2x faster than today / within 1.3x of the binding floor


def weight_bytes(p: Plan) -> float:
    """Bytes of weight tiles the PS sends per step: every weight GEMM's weight goes to each of its
    row blocks (a resident weight once to each device that keeps it)."""
    total = 0.0
    eligible = p.eligible()
    for i, gp in enumerate(p.gemm_plans):
        g = gp.gemm
        if gp.on_ps or not (g.weight_operand or g.fused):
            continue
        if gp.resident_bytes:
            total += gp.repeats * gp.resident_bytes * min(gp.grid.tasks, int(eligible[i].sum()))
            continue
        per_task = (2 if g.gated else 1) + 1 if g.fused else 1
        total += gp.repeats * gp.grid.tasks * per_task * g.k * (g.n / gp.grid.grid_cols) * p.graph.dtype_bytes
    return total


def _goal_plan(batch: int, micro_batch: int | None, resident_weights: bool, ps_shards: int, ffn_split: bool):
    pool = make_pool(GOAL_DEVICES, seed=0, ps=ParameterServer(shards=ps_shards))
    graph = build_graph(load_model(GOAL_MODEL), batch, GOAL_SEQ, micro_batch=micro_batch, ffn_split=ffn_split)
    return plan(graph, pool, churn=True, resident_weights=resident_weights)


def goal_verdict(
    *,
    resident_weights: bool = True,
    ps_shards: int = PS_SHARDS,
    ffn_split: bool = False,
    overlap: bool = False,
    micro_tokens: tuple[int, ...] = (),
) -> dict:
    """The two targets on OPT-13B, 1024 mixed devices: batch 16 >= 2x faster than today's plan, batch 512
    within 1.3x of its binding floor; with ``overlap`` the micro-batch size is chosen for it (see
    :data:`~frugalml.cleave.planner.OVERLAP_TOKENS`). Per batch: today's step, the step with the
    levers, the floors, the bytes behind the binding one, and ``text``: one paragraph naming the
    floor that stands in the way of a goal not met."""
    out: dict = {"levers": lever_label(resident_weights, ps_shards, ffn_split, overlap, micro_tokens)}
    parts = []
    for batch, goal in GOAL_BATCHES.items():
        today = _goal_plan(batch, None, True, PS_SHARDS, False).batch_seconds
        micro: list = (
            micro_batch_candidates(batch, GOAL_SEQ, OVERLAP_TOKENS)
            if overlap
            else micro_batch_sizes(batch, GOAL_SEQ, micro_tokens)
        )
        best = None
        for mb in micro:
            p = _goal_plan(batch, mb, resident_weights, ps_shards, ffn_split)
            seconds = overlap_step(p) if overlap else analytic_step(p).seconds
            if best is None or seconds < best[0]:
                best = (seconds, p)
        assert best is not None
        seconds, p = best
        floors = cleave_floors(p)
        binding = max(floors, key=lambda k: floors[k])
        pool, n = p.pool, len(p.pool)
        tiled = [gp for gp in p.gemm_plans if not gp.on_ps]
        down = sum(gp.repeats * gp.grid.tasks * gp.cost.bytes_down for gp in tiled)
        up = sum(gp.repeats * gp.grid.tasks * gp.cost.bytes_up for gp in tiled)
        row = {
            "today_s": today,
            "seconds": seconds,
            "speedup": today / seconds,
            "micro_batches": p.graph.micro_batches,
            "floors_s": floors,
            "binding": binding,
            "over_binding_floor": seconds / floors[binding],
            "down_gb": down / 1e9,
            "weight_gb": weight_bytes(p) / 1e9,
            "up_gb": up / 1e9,
            "mean_down_mbit": float(pool.effective_down.mean() * 8 / 1e6),
            "mean_up_mbit": float(pool.effective_up.mean() * 8 / 1e6),
            "devices_used": int(p.used_devices().sum()),
            **floor_ladder(p),
        }
        row["met"] = bool(row["speedup"] >= goal if batch == 16 else row["over_binding_floor"] <= goal)
        out[batch] = row
        parts.append(_goal_text(batch, goal, row, n))
    out["text"] = (
        f"Targets on {GOAL_MODEL.upper()}, {GOAL_DEVICES} mixed devices"
        + (f", Cleave with {out['levers']}" if out["levers"] else "")
        + ": "
        + " ".join(parts)
    )
    return out


def _goal_text(batch: int, goal: float, r: dict, devices: int) -> str:
    head = (
        f"batch {batch}: {r['today_s']:.1f} s today, {r['seconds']:.1f} s with the levers "
        f"({r['micro_batches']} micro-batch(es); {r['speedup']:.2f}x, {r['over_binding_floor']:.2f}x its "
        f"{r['binding']} floor of {r['floors_s'][r['binding']]:.0f} s)"
    )
    if batch == 16:
        target = r["today_s"] / goal
        head += f"; target >= {goal:g}x ({target:.0f} s): " + ("met." if r["met"] else "NOT met")
    else:
        target = goal * r["floors_s"][r["binding"]]
        head += f"; target within {goal:g}x of the floor ({target:.0f} s): " + (
            "met." if r["met"] else "NOT met"
        )
    if r["met"]:
        return head
    if r["binding"] == "downlink":
        why = (
            f": each step sends {r['down_gb']:.0f} GB of tile inputs ({r['weight_gb']:.0f} GB of weight "
            "tiles, re-sent to every row block of a GEMM; the rest activation rows, re-sent to every "
            "column block), "
            f"{1e3 * r['down_gb'] / devices:.0f} MB per device over a mean {r['mean_down_mbit']:.0f} "
            f"Mbit/s downlink: {r['floors_s']['downlink']:.0f} s even with all {devices} devices "
            "downloading all step long"
        )
    elif r["binding"] == "uplink":
        why = (
            f": each step returns {r['up_gb']:.0f} GB of output tiles, {1e3 * r['up_gb'] / devices:.0f} MB "
            f"per device over a mean {r['mean_up_mbit']:.0f} Mbit/s uplink: "
            f"{r['floors_s']['uplink']:.0f} s even with all {devices} devices uploading all step long"
        )
    else:
        why = f": the {r['binding']} floor is {r['floors_s'][r['binding']]:.0f} s"
    lo, hi = r["gemm_devices_range"]
    span = str(lo) if lo == hi else f"{lo}-{hi}"
    return (
        head
        + why
        + f". Above that floor: the plan gives each GEMM only the devices that finish its tiles soonest "
        f"({span} of {devices}), whose {r['binding']}s need {r['planned_devices_s']:.0f} s; a device "
        "serves one GEMM at a time, so the larger of downlink, uplink and compute per GEMM adds up to "
        f"{r['per_gemm_max_s']:.0f} s, its pull period (the slowest stage; longer where memory holds "
        f"fewer tiles than stages) to {r['pull_periods_s']:.0f} s, and the tails and first-task latency "
        "that the next GEMM's tasks cannot fill (a GEMM gives each device "
        f"{r['tasks_per_device_median']:.1f} tasks at the median) to the {r['seconds']:.0f} s step"
        + (
            f"; the target's {target:.0f} s is below what the planned devices' {r['binding']}s alone need, "
            "so no schedule of these tiles on these devices reaches it: it takes fewer bytes or more "
            "devices per GEMM."
            if target < r["planned_devices_s"]
            else "."
        )
    )


def floor_ladder(p: Plan) -> dict:
    """From Cleave's binding floor to its step, one restriction at a time (seconds per batch): the
    binding resource over only the devices the plan lets pull each GEMM (``planned_devices_s``), one
    resource per GEMM at a time (``per_gemm_max_s``: the larger of downlink, uplink and compute, GEMM
    by GEMM), every device at its pull period (``pull_periods_s``), and the tasks per device per GEMM
    (median over the step's occurrences)."""
    floors = cleave_floors(p)
    binding = max(floors, key=lambda k: floors[k])
    pool, eligible, x = p.pool, p.eligible(), overlap_parts(p)
    planned = per_gemm = periods = 0.0
    counts, occ = [], []
    for i, gp in enumerate(p.gemm_plans):
        if gp.on_ps:
            continue
        e = eligible[i]
        t = gp.grid.tasks
        times = {
            "downlink": t * gp.cost.bytes_down / pool.effective_down[e].sum(),
            "uplink": t * gp.cost.bytes_up / pool.effective_up[e].sum(),
            "compute": t * gp.cost.flops / pool.flops[e].sum(),
            "ps_egress": t * gp.cost.bytes_down / pool.ps.egress,
            "ps_ingress": t * gp.cost.bytes_up / pool.ps.ingress,
        }
        planned += gp.repeats * times[binding]
        per_gemm += gp.repeats * max(times.values())
        periods += gp.repeats * x.devices[i]
        counts.append(int(e.sum()))
        occ += [i] * gp.repeats
    return {
        "planned_devices_s": planned,
        "per_gemm_max_s": per_gemm,
        "pull_periods_s": periods,
        "gemm_devices_range": [min(counts), max(counts)] if counts else [0, 0],
        "tasks_per_device_median": float(np.median(x.rounds[occ])) if occ else math.nan,
    }


def floor_verdict(cells: list[Cell], claim: float = 4.0) -> dict:
    """The paper's claim (``claim`` x faster than the best edge baseline) per cell where a baseline
    runs: the cells where it holds, and where it does not, whether even a schedule at Cleave's
    binding floor would miss it (and which floor) or the schedule above the floor stands between."""
    rivals = [c for c in cells if np.isfinite(c.baseline_s)]
    holds = [c for c in rivals if c.ratio >= claim]
    floor_bound: dict[str, int] = {}
    schedule = 0
    for c in rivals:
        if c.ratio >= claim:
            continue
        if c.baseline_s / c.floors[c.binding] < claim:
            floor_bound[c.binding] = floor_bound.get(c.binding, 0) + 1
        else:
            schedule += 1
    return {
        "claim": claim,
        "cells": len(rivals),
        "holds": [_name(c) for c in sorted(holds, key=lambda c: -c.ratio)],
        "floor_prevents": floor_bound,
        "schedule_prevents": schedule,
        "median_baseline_over_floor": float(np.median([c.baseline_s / c.floors[c.binding] for c in rivals]))
        if rivals
        else math.nan,
    }


def lever_effect(before: list[Cell], after: list[Cell]) -> dict:
    """What a lever setting does on a map, cell by cell (same grid): the step and each floor as a
    ratio after / before (medians, extremes), the cells where the winner flips, and the fraction of
    cells (where a baseline runs) that Cleave wins before and after."""
    by_key = {tuple(_key(c).values()): c for c in before}
    pairs = [(by_key[tuple(_key(a).values())], a) for a in after if tuple(_key(a).values()) in by_key]
    if not pairs:
        raise InvalidInputError("the two maps share no cell")
    speed = np.array([b.cleave_s / a.cleave_s for b, a in pairs])
    floors = {
        k: float(np.median([a.floors[k] / b.floors[k] for b, a in pairs if b.floors[k] > 0])) for k in FLOORS
    }
    binding = [a.floors[b.binding] / b.floors[b.binding] for b, a in pairs]
    rivals = [(b, a) for b, a in pairs if np.isfinite(b.baseline_s)]
    return {
        "cells": len(pairs),
        "levers_before": before[0].levers,
        "levers_after": after[0].levers,
        "faster": int(np.sum(speed > 1 + 1e-9)),
        "slower": int(np.sum(speed < 1 - 1e-9)),
        "speedup_median": float(np.median(speed)),
        "speedup_min": float(speed.min()),
        "speedup_max": float(speed.max()),
        "floor_ratio_median": floors,
        "binding_floor_ratio_median": float(np.median(binding)),
        "over_binding_floor_before_median": float(
            np.median([b.cleave_s / b.floors[b.binding] for b, _ in pairs])
        ),
        "over_binding_floor_after_median": float(
            np.median([a.cleave_s / a.floors[a.binding] for _, a in pairs])
        ),
        "rival_cells": len(rivals),
        "wins_before": sum(b.cleave_wins for b, _ in rivals),
        "wins_after": sum(a.cleave_wins for _, a in rivals),
        "flips_to_win": [_name(a) for b, a in rivals if a.cleave_wins and not b.cleave_wins],
        "flips_to_loss": [_name(a) for b, a in rivals if b.cleave_wins and not a.cleave_wins],
    }


def cell_from_dict(d: dict) -> Cell:
    """A cell read back from a map's JSON (``cells``)."""
    known = {f for f in Cell.__dataclass_fields__}
    return Cell(**{k: v for k, v in d.items() if k in known})
