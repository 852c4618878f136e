"""``frugal cleave``: plan, simulate and sweep training on edge devices; reproduce the claims."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from frugalml.cleave.runtime.cli import add_runtime_commands

app = typer.Typer(
    help="Plan, simulate and run model training on many weak edge devices.", no_args_is_help=True
)
add_runtime_commands(app)

MODEL = typer.Option(
    "opt-13b",
    "--model",
    "-m",
    help="Built-in model (opt-1.3b/6.7b/13b/30b, llama-1b/3b/7b/13b) or a YAML/JSON config.",
)
DEVICES = typer.Option(
    "1024", "--devices", "-d", help="A pool YAML file, or a device count drawn from the default mixed pool."
)
BATCH = typer.Option(512, "--batch", "-b", help="Sequences per training step.")
SEQ = typer.Option(1024, "--seq", "-s", help="Tokens per sequence.")
MICRO = typer.Option(
    None,
    "--micro-batch",
    help="Sequences per micro-batch (weight gradients summed on the PS); 0: the planner "
    "picks the fastest; default: about 16384 tokens.",
)
SEED = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed for the pool, churn and stragglers.")
TRACES = typer.Option(
    None, "--traces-path", help="Folder of bandwidth traces (default: $FRUGAL_DATA/bandwidth-traces)."
)
QUIET = typer.Option(False, "--quiet", "-q", help="Print only the headline.")


def _pool(devices: str, seed: int, use_traces: bool, traces_path: Path | None, count: int | None = None):
    from frugalml.cleave.devices import load_pool, make_pool
    from frugalml.cleave.traces import load_traces
    from frugalml.common.errors import InvalidInputError

    if devices.lower().endswith((".yaml", ".yml")):
        return load_pool(devices, devices=count, traces_path=traces_path)
    try:
        n = count if count is not None else int(devices)
    except ValueError:
        raise InvalidInputError(
            f"--devices must be a pool .yaml file or a device count, got {devices!r}"
        ) from None
    return make_pool(n, seed=seed, traces=load_traces(traces_path) if use_traces else None)


def _graph(
    model: str,
    batch: int,
    seq: int,
    micro_batch: int | None = None,
    dtype_bytes: int = 2,
    ffn_split: bool = False,
):
    from frugalml.cleave.models import load_model
    from frugalml.cleave.opgraph import build_graph

    return build_graph(
        load_model(model), batch, seq, dtype_bytes, micro_batch=micro_batch, ffn_split=ffn_split
    )


def _plan(
    model: str,
    batch: int,
    seq: int,
    micro_batch: int | None,
    pool,
    churn: bool,
    dtype_bytes: int = 2,
    ffn_split: bool = False,
    overlap: bool = False,
):
    """Plan with the given micro-batch, or the fastest one (lockstep, or with GEMMs overlapped) when
    ``micro_batch`` is 0; a model the networked runtime trains is planned as it runs there (workers
    keep no weights between tasks and hold one task at a time)."""
    from dataclasses import replace

    from frugalml.cleave.models import RUNTIME_MODELS, load_model
    from frugalml.cleave.planner import OVERLAP_TOKENS, micro_batch_candidates, plan, plan_micro_batch
    from frugalml.cleave.runtime.protocol import TASKS_IN_FLIGHT

    resident = model.lower() not in RUNTIME_MODELS
    if not resident:
        pool = replace(pool, tasks_in_flight=TASKS_IN_FLIGHT)
    if micro_batch == 0:
        return plan_micro_batch(
            load_model(model),
            batch,
            seq,
            pool,
            churn=churn,
            dtype_bytes=dtype_bytes,
            resident_weights=resident,
            ffn_split=ffn_split,
            micro_batches=micro_batch_candidates(batch, seq, OVERLAP_TOKENS) if overlap else None,
            key=_overlap_seconds if overlap else None,
        )
    return plan(
        _graph(model, batch, seq, micro_batch, dtype_bytes, ffn_split),
        pool,
        churn=churn,
        resident_weights=resident,
    )


def _overlap_seconds(p) -> float:
    from frugalml.cleave.analytic import overlap_step

    return overlap_step(p)


def _write_json(doc: dict, path: Path) -> None:
    from frugalml.common.files import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=2, default=float)


@app.command()
def plan(
    model: str = MODEL,
    devices: str = DEVICES,
    batch: int = typer.Option(
        None, "--batch", "-b", help="Sequences per training step (default 512; tiny-gpt: the server's 8)."
    ),
    seq: int = typer.Option(
        None, "--seq", "-s", help="Tokens per sequence (default 1024; tiny-gpt: its context, 32)."
    ),
    micro_batch: int = MICRO,
    dtype: str = typer.Option(
        None,
        "--dtype",
        help="Element type: fp16/bf16/float32/float64 (default fp16; tiny-gpt: float32, as served).",
    ),
    seed: int = SEED,
    traces: bool = typer.Option(False, "--traces/--no-traces", help="Draw links from the real traces."),
    traces_path: Path = TRACES,
    churn: bool = typer.Option(True, "--churn/--no-churn", help="Account for devices leaving mid-task."),
    ffn_split: bool = typer.Option(
        False,
        "--ffn-split/--no-ffn-split",
        help="Plan each FFN column-then-row (simulator option: the runtime does not execute it).",
    ),
    overlap: bool = typer.Option(
        False,
        "--overlap/--no-overlap",
        help="Also estimate the step with GEMMs overlapped across layers and micro-batches (simulator "
        "option: the runtime runs lockstep); with --micro-batch 0 the micro-batch is chosen for it.",
    ),
    as_json: Path = typer.Option(
        None,
        "--json",
        help="Write the plan here (versioned, checksummed; 'frugal cleave serve --plan' runs it).",
    ),
    quiet: bool = QUIET,
):
    """Plan one training step: tile grid per GEMM, devices chosen and dropped (and why), LP split.

    Example: frugal cleave plan --model opt-13b --devices pool.yaml --batch 512 --seq 1024;
    for the server: frugal cleave plan --model tiny-gpt --devices fleet.yaml --json plan.json
    """
    from frugalml.cleave.analytic import analytic_step
    from frugalml.cleave.models import DTYPE_BYTES, RUNTIME_MODELS, default_dtype
    from frugalml.cleave.planfile import executable_plan, write_plan
    from frugalml.common.errors import InvalidInputError
    from frugalml.common.validate import one_of

    runtime = RUNTIME_MODELS.get(model.lower())
    batch = batch if batch is not None else (8 if runtime else 512)
    seq = seq if seq is not None else (runtime[0] if runtime else 1024)
    dtype = one_of(dtype or default_dtype(model), tuple(DTYPE_BYTES), "dtype")
    if overlap and as_json:
        raise InvalidInputError(
            "--overlap is a simulator option (the runtime runs lockstep); "
            "plan without it to write a plan file"
        )
    pool = _pool(devices, seed, traces, traces_path)
    p = _plan(model, batch, seq, micro_batch, pool, churn, DTYPE_BYTES[dtype], ffn_split, overlap)
    est = analytic_step(p)
    if as_json:
        write_plan(as_json, executable_plan(p, dtype), {**p.to_dict(), "analytic_seconds": est.seconds})
    if not quiet:
        print(p.explain())
    print(
        f"planned {p.batch_seconds:.1f} s per batch, analytic model {est.seconds:.1f} s, "
        f"{int(p.used_devices().sum())}/{len(p.pool)} devices used"
        + ("; FFN split: a simulator option" if ffn_split else "")
    )
    if overlap:
        print(
            f"with GEMMs overlapped across layers and micro-batches: {_overlap_seconds(p):.1f} s per batch "
            f"({p.graph.micro_batches} micro-batch(es); overlap: a simulator option, the runtime runs "
            "lockstep)"
        )


@app.command()
def simulate(
    model: str = MODEL,
    devices: str = DEVICES,
    batch: int = BATCH,
    seq: int = SEQ,
    micro_batch: int = MICRO,
    seed: int = SEED,
    traces: bool = typer.Option(False, "--traces/--no-traces", help="Trace-driven links."),
    traces_path: Path = TRACES,
    churn: bool = typer.Option(True, "--churn/--no-churn", help="Devices leave and return."),
    contention: bool = typer.Option(True, "--contention/--no-contention", help="Share the PS NIC."),
    backups: bool = typer.Option(True, "--backups/--no-backups", help="Backup tiles at GEMM tails."),
    stragglers: float = typer.Option(
        0.02, "--stragglers", min=0.0, max=1.0, help="Chance a task computes 4x slower."
    ),
    lockstep: bool = typer.Option(
        False,
        "--lockstep/--dataflow",
        help="A barrier after every GEMM (the analytic model's "
        "schedule) instead of each micro-batch going on once its "
        "inputs are done.",
    ),
    as_json: Path = typer.Option(None, "--json", help="Write the result as JSON here."),
    quiet: bool = QUIET,
):
    """Simulate one training step event by event and compare with the analytic (lockstep) model."""
    from frugalml.cleave.analytic import analytic_step
    from frugalml.cleave.des import SimConfig, simulate_step

    if stragglers != stragglers:  # NaN passes a range check
        raise typer.BadParameter("must be a number in [0, 1]", param_hint="--stragglers")
    pool = _pool(devices, seed, traces, traces_path)
    p = _plan(model, batch, seq, micro_batch, pool, churn)
    config = SimConfig(
        contention=contention,
        churn=churn,
        traces=traces,
        backups=backups,
        straggler_prob=stragglers,
        lockstep=lockstep,
    )
    result = simulate_step(p, config, seed=seed)
    est = analytic_step(p, contention=contention, churn=churn)
    doc = {
        "model": model,
        "devices": len(pool),
        "batch": batch,
        "seq": seq,
        "micro_batches": p.graph.micro_batches,
        "config": config.__dict__,
        "simulated_seconds": result.seconds,
        "analytic_seconds": est.seconds,
        "tasks": result.tasks,
        "requeued": result.requeued,
        "backups": result.backups,
        "backups_won": result.backups_won,
        "failures": result.failures,
        "events": result.events,
    }
    if as_json:
        _write_json(doc, as_json)
    if not quiet:
        for key, value in doc.items():
            print(f"{key:>18}: {value}")
    print(f"simulated {result.seconds:.1f} s per batch (analytic {est.seconds:.1f} s) on {pool.summary()}")


@app.command()
def sweep(
    model: str = MODEL,
    devices: str = typer.Option("16..4096", "--devices", "-d", help="Counts: 16..4096, 16,64 or 1024."),
    pool_file: Path = typer.Option(None, "--pool", help="Pool YAML whose mix is scaled to each count."),
    batch: int = BATCH,
    seq: int = SEQ,
    micro_batch: int = MICRO,
    seed: int = SEED,
    csv_path: Path = typer.Option(Path("cleave_sweep.csv"), "--csv", help="Where to write the CSV."),
    png_path: Path = typer.Option(Path("cleave_sweep.png"), "--png", help="Where to write the plot."),
    quiet: bool = QUIET,
):
    """Per-batch time against device count for Cleave and every baseline (CSV + PNG)."""
    from frugalml.cleave.bench.sweep import parse_counts, plot_sweep, write_sweep_csv
    from frugalml.cleave.bench.sweep import sweep as run_sweep

    counts = parse_counts(devices)
    graph = _graph(model, batch, seq, micro_batch or None)
    make = (
        (lambda n: _pool(str(pool_file), seed, False, None, count=n))
        if pool_file
        else (lambda n: _pool(str(n), seed, False, None))
    )
    rows = run_sweep(graph, counts, make, seed=seed, quiet=quiet)
    write_sweep_csv(rows, csv_path)
    plot_sweep(rows, png_path, f"{model}, batch {batch}x{seq}")
    if not quiet:
        for r in rows:
            name, best = r.best_baseline()
            print(
                f"{r.devices:>6} devices: cleave {r.cleave:10.1f} s   best baseline {name:<9} "
                f"{best:10.1f} s   "
                f"ratio {best / r.cleave:6.2f}"
            )
    print(f"wrote {csv_path} and {png_path}")


@app.command()
def reproduce(
    as_json: Path = typer.Option(None, "--json", help="Write records here (sweep CSV/PNG beside)."),
    traces: bool = typer.Option(True, "--traces/--no-traces", help="Use the real link traces."),
    traces_path: Path = TRACES,
    seed: int = SEED,
    quiet: bool = QUIET,
):
    """Measure the papers' claims (speed-up, scaling, recovery, simulator speed, energy) as ratios."""
    from frugalml.cleave.bench.reproduce import reproduce as run
    from frugalml.cleave.traces import load_traces
    from frugalml.common.report import print_table, write_json

    out_dir = as_json.parent if as_json else None
    trace_set = load_traces(traces_path) if traces else None
    records = run(traces=trace_set, seed=seed, quiet=quiet, out_dir=out_dir)
    if as_json:
        write_json(records, as_json)
    print_table(records, title="cleave: the claims, measured (ratio > 1: Cleave better)")


@app.command()
def compare(
    out: Path = typer.Option(
        Path("."), "--out", "-o", help="Folder for compare.csv, compare.json and compare-<model>.png."
    ),
    models: str = typer.Option("opt-1.3b,opt-6.7b,opt-13b,opt-30b", "--models", help="Models (comma list)."),
    batches: str = typer.Option("8,32,128,512", "--batches", help="Sequences per batch (comma list)."),
    counts: str = typer.Option("64,256,1024,4096", "--devices", "-d", help="Device counts (comma list)."),
    pools: str = typer.Option(
        "phones,phones+laptops,mixed", "--pools", help="Device mixes: phones, phones+laptops, mixed."
    ),
    asymmetries: str = typer.Option("2,10", "--asymmetry", help="Downlink / uplink ratios (comma list)."),
    seq: int = typer.Option(1024, "--seq", "-s", min=1, help="Tokens per sequence."),
    des_sample: int = typer.Option(10, "--des-sample", min=0, help="Cells also run in the event simulator."),
    resident: bool = typer.Option(
        True,
        "--resident-weights/--no-resident-weights",
        help="Devices keep a weight from the forward to the backward (simulator option: the runtime "
        "does not execute it yet).",
    ),
    ps_shards: int = typer.Option(
        4,
        "--ps-shards",
        min=1,
        help="Parameter server shards, each with its own NIC (above 4: simulator option).",
    ),
    ffn_split: bool = typer.Option(
        False,
        "--ffn-split/--no-ffn-split",
        help="The column-then-row FFN split: up projection, activation and down projection in one "
        "task, partial sums up (simulator option: the runtime does not execute it).",
    ),
    overlap: bool = typer.Option(
        False,
        "--overlap/--no-overlap",
        help="GEMMs overlapped across layers and micro-batches, no barrier after each GEMM (simulator "
        "option: the runtime runs lockstep).",
    ),
    micro_tokens: str = typer.Option(
        "",
        "--micro-tokens",
        help="Micro-batch sizes in tokens Cleave may also use, per cell the fastest (comma list, e.g. "
        "2048; default: about 16384 tokens only; simulator option).",
    ),
    targets: bool = typer.Option(
        True,
        "--targets/--no-targets",
        help="Add the verdict on two OPT-13B, 1024-device targets to the summary: batch 16 twice as fast "
        "as the plain plan, batch 512 within 1.3x of its binding floor.",
    ),
    name: str = typer.Option("compare", "--name", help="Stem of the output files."),
    seed: int = SEED,
    quiet: bool = QUIET,
):
    """The regime map: Cleave against the best edge baseline on every cell of models x batches x
    devices x pools x link asymmetry (analytic model; the event simulator on a sample), with what
    binds Cleave and whether one device could train the model alone.

    Example: frugal cleave compare -o results/ (about 500 cells in a few minutes)
    """
    from frugalml.cleave.regimes import (
        LEVERS,
        POOLS,
        PS_SHARDS,
        Grid,
        des_agreement,
        goal_verdict,
        plot_heatmaps,
        regime_map,
        summary,
        to_dict,
        write_csv,
    )
    from frugalml.common.errors import InvalidInputError
    from frugalml.common.files import require_folder
    from frugalml.common.parsing import comma_list

    grid = Grid(
        tuple(comma_list(models, str, name="model", non_empty=True)),
        tuple(comma_list(batches, int, name="batch", non_empty=True)),
        tuple(comma_list(counts, int, name="device count", non_empty=True)),
        tuple(comma_list(pools, str, name="pool", allowed=list(POOLS), non_empty=True)),
        tuple(comma_list(asymmetries, float, name="asymmetry", non_empty=True)),
        seq,
    )
    require_folder(Path(out) / f"{name}.csv")
    options = {
        "resident_weights": resident,
        "ps_shards": ps_shards,
        "ffn_split": ffn_split,
        "overlap": overlap,
    }
    tokens = tuple(comma_list(micro_tokens, int, name="micro-batch tokens")) if micro_tokens else ()
    if any(t < 1 for t in tokens):
        raise InvalidInputError("--micro-tokens must be positive token counts")
    cells = regime_map(grid, seed=seed, quiet=quiet, micro_tokens=tokens, **options)
    agreement = des_agreement(cells, des_sample, seq=seq, seed=seed, **options)
    levers = {"resident_weights": LEVERS["resident_weights"]} if resident else {}
    if ps_shards != PS_SHARDS:
        levers["ps_shards"] = f"{ps_shards} shards: " + LEVERS["ps_shards"]
    if ffn_split:
        levers["ffn_split"] = LEVERS["ffn_split"]
    if overlap:
        levers["overlap"] = LEVERS["overlap"]
    if tokens:
        levers["micro_tokens"] = (
            f"micro-batches of {', '.join(map(str, tokens))} tokens too: " + LEVERS["micro_tokens"]
        )
    text = summary(cells, agreement) + "".join(f" Lever on: {v}." for v in levers.values())
    verdict = goal_verdict(micro_tokens=tokens, **options) if targets else None
    if verdict:
        text += " " + verdict["text"]
    write_csv(cells, Path(out) / f"{name}.csv")
    plot_heatmaps(cells, out, name)
    doc = {"summary": text, "levers": levers, "cells": to_dict(cells), "des_agreement": agreement}
    if verdict:
        doc["targets"] = verdict
    _write_json(doc, Path(out) / f"{name}.json")
    print(text)


@app.command()
def validate(
    workers: int = typer.Option(
        None, "--workers", "-n", min=1, max=64, help="Emulated devices (default 8; with --plan: the plan's)."
    ),
    plan_file: Path = typer.Option(
        None, "--plan", help="Validate exactly this plan (its devices, grids and class shares)."
    ),
    steps: int = typer.Option(
        10, "--steps", "-k", min=2, max=10_000, help="Training steps measured (the first warms up)."
    ),
    pool_file: Path = typer.Option(
        None, "--pool", help="Pool YAML the devices are drawn from (default: mixed)."
    ),
    cpus: float = typer.Option(1.5, "--cpus", help="CPU cores all workers together may use (cgroup caps)."),
    calibrate: bool = typer.Option(
        False,
        "--calibrate",
        help="Fit the runtime overheads on these workers under --cpus, half and a quarter of it, and on "
        "another draw; record them in the catalogue.",
    ),
    catalogue: Path = typer.Option(
        None, "--catalogue", help="Catalogue to read/record overheads (default: built-in)."
    ),
    seed: int = SEED,
    as_json: Path = typer.Option(
        None, "--json", help="Write the records (step_time_relative_error...) here."
    ),
    quiet: bool = QUIET,
):
    """Train on emulated edge hosts and simulate the same plan: predicted vs measured step time,
    per-GEMM times and bytes per worker (from the namespaces' interface counters). Needs root.

    Example: sudo frugal cleave validate --workers 4 --calibrate; sudo frugal cleave validate --workers 8;
    sudo frugal cleave validate --plan plan.json
    """
    from frugalml.cleave.validate import run_validation
    from frugalml.common.report import print_table, write_json

    records, predicted, measured = run_validation(
        workers, steps, pool_file, cpus, calibrate, catalogue, seed, plan_file
    )
    if as_json:
        write_json(records, as_json)
    if not quiet:
        print(measured.mode)
        for name, seconds in sorted(predicted.gemm_s.items()):
            got = measured.gemm_s.get(name, float("nan"))
            print(f"  {name:<16} predicted {seconds * 1e3:8.2f} ms  measured {got * 1e3:8.2f} ms")
    print_table(
        records, title=f"cleave validate: simulator vs runtime, {len(measured.bytes_per_worker)} workers"
    )


@app.command()
def demo(quiet: bool = QUIET):
    """Plan and simulate OPT-1.3B on 256 mixed devices vs the baselines, then train a tiny GPT over gRPC."""
    from frugalml.cleave.demo import run

    print(run(quiet=quiet))
