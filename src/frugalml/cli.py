"""The ``frugal`` command: mounts each system's CLI as a sub-command, plus ``info``, ``demo`` and
``reproduce``.

Each system ships ``frugalml/<system>/cli.py`` with a ``typer.Typer`` named ``app`` (heavy imports
inside its commands, so ``frugal --help`` stays fast) and ``frugalml/<system>/demo.py`` with
``run(quiet: bool) -> str``, a one-line summary of a demo on embedded defaults.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

import typer
from typer._click.exceptions import NoArgsIsHelpError

from frugalml import SYSTEMS, __version__
from frugalml.common.errors import FrugalError

app = typer.Typer(
    name="frugal",
    help="frugalml: seven research systems for cheaper machine learning.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _unavailable(system: str, reason: str) -> typer.Typer:
    """A stand-in sub-command for a system that cannot load, explaining why when used."""
    stub = typer.Typer(help=f"{SYSTEMS[system]}  [unavailable: {reason}]")

    @stub.callback(invoke_without_command=True)
    def _explain() -> None:
        raise FrugalError(f"frugal {system} is unavailable: {reason}")

    return stub


def _load_system_cli(system: str) -> typer.Typer:
    try:
        return importlib.import_module(f"frugalml.{system}.cli").app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(f"frugalml.{system}"):
            return _unavailable(system, "not built yet")
        return _unavailable(system, f"needs {exc.name}; pip install 'frugalml[{system}]'")


for _system, _help in SYSTEMS.items():
    app.add_typer(_load_system_cli(_system), name=_system, help=_help)


@app.command()
def info(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """Print the environment that matters for our numbers (CPU, SIMD, BLAS, torch, numba, cc)."""
    from rich.console import Console
    from rich.table import Table

    from frugalml.common.env import environment

    env = environment()
    if as_json:
        print(json.dumps(env, indent=2, default=str))
        return
    cpu, threads = env["cpu"], env["threads"]
    table = Table(title=f"frugalml {__version__}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("python", f"{env['python']} on {env['platform']}"),
        ("cpu", f"{cpu['model']} ({cpu['cores']} logical cores, {cpu['usable_cores']} usable)"),
        ("simd", " ".join(cpu["simd"]) or "none detected"),
        ("numpy", env["numpy"]),
    ]
    for lib in threads["blas"]:
        rows.append(
            (
                lib.get("internal_api", "?"),
                ", ".join(
                    f"{k}={lib[k]}"
                    for k in ("version", "architecture", "num_threads", "threading_layer")
                    if lib.get(k) is not None
                ),
            )
        )
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        if var in threads:
            rows.append((var, threads[var]))
    torch = env["torch"]
    if torch["version"] is None:
        torch_line = "not installed"
    else:
        cuda = f"CUDA available: {torch['device']}" if torch["cuda"] else "CUDA not available"
        torch_line = f"{torch['version']} ({cuda})"
    rows += [
        ("torch", torch_line),
        ("numba", env["numba"] or "not installed"),
        ("compiler", env["compiler"] or "none found (maskedmm falls back to numba)"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


@app.command()
def demo(
    system: list[str] = typer.Option(None, "--system", "-s", help="Run only these systems."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show each demo's own output."),
):
    """Run every installed system's demo on embedded defaults (no downloads) and summarise."""
    from rich.console import Console
    from rich.table import Table

    chosen = system or list(SYSTEMS)
    for name in chosen:
        if name not in SYSTEMS:
            raise FrugalError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    table = Table(title="frugal demo")
    for col in ("system", "status", "seconds", "summary"):
        table.add_column(col)
    failed = 0
    for name in chosen:
        status, summary, start = "ok", "", time.perf_counter()
        try:
            module = importlib.import_module(f"frugalml.{name}.demo")
        except ModuleNotFoundError as exc:
            missing = exc.name and exc.name.startswith(f"frugalml.{name}")
            status = "no demo yet" if missing else "not installed"
            summary = "" if missing else f"pip install 'frugalml[{name}]' ({exc.name} missing)"
        else:
            try:
                summary = module.run(quiet=not verbose)
            except Exception as exc:  # a demo's failure is reported in the table, not hidden
                status, summary, failed = "[red]failed[/]", f"{type(exc).__name__}: {exc}", 1
        seconds = f"{time.perf_counter() - start:.1f}" if status != "no demo yet" else ""
        table.add_row(name, status, seconds, summary)
    Console().print(table)
    raise typer.Exit(failed)


@app.command()
def reproduce(
    output: Path = typer.Option(Path("report"), "-o", "--output", help="Folder for index.html and data/."),
    systems: str = typer.Option("", "--systems", help="Comma-separated systems (default: all seven)."),
    quick: bool = typer.Option(False, "--quick", help="Run every check at scaled-down sizes (the default)."),
    full: bool = typer.Option(False, "--full", help="Run every check at the papers' sizes (hours)."),
    from_dir: Path | None = typer.Option(
        None,
        "--from",
        help="Re-render from a results folder laid out as benchmarks/results instead of running anything.",
    ),
    stored: Path = typer.Option(
        Path("benchmarks/results"), "--stored", help="Stored results for checks a mode cannot re-run."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the report in an existing, non-empty folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in the same folder."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars."),
):
    """Run each system's checks of its paper's claims and write one static web page of the claims,
    our figures and the peers' (plots embedded, opens offline).

    Quick: all seven systems in about 15 minutes on 2 cores. Full: the papers' sizes, resumable (--resume).

    Examples: frugal reproduce --quick -o report/ && open report/index.html;
    frugal reproduce --from benchmarks/results -o report/ (no runs, the stored figures)
    """
    from frugalml.common.errors import InvalidInputError
    from frugalml.common.parsing import comma_list
    from frugalml.reproduce import build, run

    chosen = comma_list(systems, name="system", allowed=SYSTEMS)
    if quick and full:
        raise InvalidInputError("choose one of --quick and --full")
    if from_dir is not None:
        if quick or full or resume:
            raise InvalidInputError(
                "--from re-renders stored results; it runs nothing, so drop --quick/--full/--resume"
            )
        page = build(from_dir, output, chosen, force=force)
    else:
        started = time.perf_counter()
        page = run(
            "full" if full else "quick",
            output,
            chosen,
            results=stored,
            force=force,
            resume=resume,
            quiet=quiet,
        )
        print(f"ran in {time.perf_counter() - started:.0f} s")
    print(f"wrote {page}")


def _print_version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
):
    """frugalml: seven research systems for cheaper machine learning."""


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> None:
    """Entry point: FrugalErrors and usage errors become one line on stderr and exit code 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="frugal", standalone_mode=False)
    except FrugalError as exc:
        _fail(_one_line(str(exc)), 2)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(0)
    except typer.TyperException as exc:  # usage errors: unknown command or option, bad value
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(_one_line(exc.format_message()) + hint, exc.exit_code)
    except typer.Abort:
        _fail("aborted", 130)
    sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int) -> None:
    print(f"frugal: error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
