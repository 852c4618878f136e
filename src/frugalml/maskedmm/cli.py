"""``frugal maskedmm``: info, verify, bench, calibrate and demo for the masked matrix multiply."""

from __future__ import annotations

from pathlib import Path

import typer

MAX_TRIALS = 10_000  # random cases per variant: more takes hours and finds nothing new

app = typer.Typer(
    help="Masked matrix multiply: C = A @ B skipping the zeros that appear at run time.", no_args_is_help=True
)


def _positive_ints(text: str, name: str) -> tuple[int, ...]:
    """A comma-separated list of positive integers (at least one), else InvalidInputError."""
    from frugalml.common.errors import InvalidInputError
    from frugalml.common.parsing import comma_list

    values = tuple(comma_list(text, int, name=f"--{name} value", non_empty=True))
    if min(values) < 1:
        raise InvalidInputError(f"--{name} needs positive integers, got {text!r}")
    return values


@app.command()
def info():
    """Show the kernels this machine runs (ISA, extension or numba), numpy's BLAS kernel, calibration."""
    import os

    from rich.console import Console
    from rich.table import Table

    from frugalml.common.env import blas
    from frugalml.maskedmm import backend, planner
    from frugalml.maskedmm.bench.spin import SPIN_SETTINGS

    console = Console()
    table = Table(title="frugal maskedmm", show_header=False)
    table.add_row("C extension", "built" if backend.has_extension() else "missing (numba fallback)")
    table.add_row("ISAs supported", ", ".join(backend.supported_isas()) or "-")
    table.add_row("ISA selected", f"{backend.choose_isa()} (override with {backend.ISA_ENV})")
    for lib in (lib for lib in blas() if lib.get("user_api") == "blas"):
        table.add_row(
            f"BLAS ({lib.get('internal_api')})",
            f"{lib.get('version')} kernel {lib.get('architecture')}, {lib.get('num_threads')} threads",
        )
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    table.add_row("OPENBLAS_CORETYPE", coretype or "unset")
    spin = {name: os.environ.get(name) for name in SPIN_SETTINGS}
    for name, value in spin.items():
        table.add_row(name, value or "unset")
    cal = planner.calibration()
    table.add_row(
        "calibration",
        f"{planner.cache_path()}" if cal.measured else "defaults (run 'frugal maskedmm calibrate')",
    )
    console.print(table)
    if coretype:
        console.print(
            f"[yellow]warning: OPENBLAS_CORETYPE={coretype} forces an OpenBLAS kernel that may "
            "be slower than the one detected; ratios against numpy are then flattering. "
            "Unset it for fair comparisons.[/]"
        )
    if spin != SPIN_SETTINGS:
        settings = " ".join(f"{name}={value}" for name, value in SPIN_SETTINGS.items())
        console.print(
            f"note: with more than one thread in a process that also calls numpy's BLAS, start "
            f"Python with {settings}: otherwise OpenMP's and OpenBLAS's idle threads spin on "
            "each other's cores (up to 3x slower calls on a machine with few cores)."
        )


@app.command()
def verify(
    trials: int = typer.Option(10, help="Random cases per variant, dtype and row block."),
    seed: int = typer.Option(0, help="Seed of the random cases."),
    isa: list[str] = typer.Option(None, "--isa", help="Only these variants (avx512, avx2, scalar, numba)."),
):
    """Check every kernel variant against the numpy oracle on random shapes, orders and masks."""
    from rich.console import Console
    from rich.table import Table

    from frugalml.common.errors import InvalidInputError
    from frugalml.common.validate import one_of
    from frugalml.maskedmm import verify as checks

    if not 1 <= trials <= MAX_TRIALS:
        raise InvalidInputError(f"--trials must lie between 1 and {MAX_TRIALS}, got {trials}")
    for name in isa or []:
        one_of(name, checks.variants(), "variant")
    results = checks.verify(trials, seed, list(isa) if isa else None)
    table = Table(title="maskedmm kernels vs the numpy oracle")
    for col in ("variant", "trials", "worst relative error", "status"):
        table.add_column(col)
    for c in results:
        table.add_row(
            c.variant, str(c.trials), f"{c.worst_error:.2e}", "[green]ok[/]" if c.ok else "[red]MISMATCH[/]"
        )
    Console().print(table)
    raise typer.Exit(0 if all(c.ok for c in results) else 1)


@app.command()
def bench(
    n: int = typer.Option(1024, help="Matrix size (n x n times n x n)."),
    sparsity: str = typer.Option("0.5,0.6,0.7,0.8,0.9,0.95,0.99", help="Fractions of zeros."),
    pattern: str = typer.Option("random,block16,columns,relu", help="Zero patterns."),
    threads: str = typer.Option("1,2", help="Thread counts (BLAS and OpenMP alike)."),
    rounds: int = typer.Option(5, help="Interleaved rounds per comparison."),
    peers: str = typer.Option(
        "scipy,torch,mkl", help="Peers beyond numpy: scipy, torch, mkl (empty: numpy only)."
    ),
    json_path: Path = typer.Option(None, "--json", help="Write the records here (and a PNG plot beside)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Time ours against numpy/OpenBLAS, scipy CSR, torch (dense, sparse CSR) and MKL, in one run."""
    from frugalml.common.errors import InvalidInputError
    from frugalml.common.parsing import comma_list
    from frugalml.common.report import print_table, write_json
    from frugalml.maskedmm.bench import sweep
    from frugalml.maskedmm.bench.contenders import blas_note
    from frugalml.maskedmm.patterns import PATTERNS

    chosen = tuple(comma_list(pattern, name="pattern", allowed=PATTERNS))
    levels = tuple(comma_list(sparsity, float, name="--sparsity value"))
    if not levels or any(not 0 <= s <= 1 for s in levels):
        raise InvalidInputError("--sparsity values must lie between 0 and 1")
    if n < 1 or rounds < 1:
        raise InvalidInputError("--n and --rounds must be positive")
    if rounds > sweep.MAX_ROUNDS:
        raise InvalidInputError(
            f"--rounds {rounds} is more than {sweep.MAX_ROUNDS}; medians settle long before"
        )
    chosen_peers = tuple(comma_list(peers, name="peer", allowed=sweep.PEERS))
    sweep.check_memory(n)
    config = sweep.BenchConfig(n, levels, chosen, _positive_ints(threads, "threads"), rounds, chosen_peers)
    records = sweep.run(config, quiet=quiet)
    print_table(records, title=f"maskedmm bench ({blas_note()})")
    if json_path is not None:
        write_json(records, json_path)
        sweep.plot(records, Path(json_path).with_suffix(".png"))
        print(f"wrote {json_path} and {Path(json_path).with_suffix('.png')}")


@app.command()
def calibrate(
    size: int = typer.Option(1024, help="Matrix size of the calibration runs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Measure this machine's costs for the planner (method='auto') and cache them."""
    import json
    from dataclasses import asdict

    from frugalml.common.errors import InvalidInputError
    from frugalml.maskedmm import planner
    from frugalml.maskedmm.calibration import calibrate as measure

    if size < 64:
        raise InvalidInputError("--size must be at least 64")
    from frugalml.maskedmm.bench.sweep import check_memory

    check_memory(size, option="--size")
    cal = measure(size, quiet=quiet)
    print(json.dumps(asdict(cal), indent=2))
    print(f"saved to {planner.cache_path()}")


@app.command()
def demo(quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary line.")):
    """Speedups over numpy at a few sparsities (768^3 fp32, one thread; under a minute)."""
    from rich.console import Console
    from rich.table import Table

    from frugalml.maskedmm import demo as runner

    rows = runner.measure()
    if not quiet:
        table = Table(title="maskedmm vs numpy/OpenBLAS (768^3 fp32, 1 thread, median of 9)")
        for col in ("zeros", "auto, B prepared", "auto, B per call"):
            table.add_column(col, justify="right")
        for s, m, a in rows:
            table.add_row(f"{s:.0%}", f"{m:.2f}x", f"{a:.2f}x")
        Console().print(table)
    print(runner.summary(rows))
