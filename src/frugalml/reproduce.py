"""``frugal reproduce``: one static web page of every system's claims, figures and peers.

Two ways to fill it:

- :func:`run` (``--quick`` or ``--full``) runs each system's claim checks (its
  ``bench.reproduce.reproductions()``, see :mod:`frugalml.common.reproduction`) and writes their
  records and plots into ``<report>/data/<system>/``; checks a mode cannot re-run (GPU-only,
  hours-long) are shown from the stored results with their date and machine. A full run interrupted
  part-way continues with ``--resume``.
- :func:`build` (``--from``) re-renders the page from a results folder laid out as
  ``benchmarks/results`` (``<system>/<claim>.json`` plus PNG plots, and a ``README.md`` whose tables
  list each claim, its figure, file, command and date/machine).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from frugalml import SYSTEMS
from frugalml.common.env import environment, machine
from frugalml.common.errors import DataNotFoundError, FrugalError, InvalidInputError
from frugalml.common.files import atomic_write, require_folder
from frugalml.common.htmlpage import ClaimRow, ResultsFile, Section, write_page
from frugalml.common.progress import progress
from frugalml.common.report import Record, read_document, records_of, write_json
from frugalml.common.reproduction import MODES, Reproduction

TITLE = "frugalml: the papers' claims beside ours"
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def stored_section(results: Path, system: str) -> Section:
    """A system's results files and plots; a file that cannot be read is named in the section's error."""
    folder = results / system
    section = Section(system, note=f"figures from the results stored in {folder}")
    if not folder.is_dir():
        section.error = f"no results folder {folder}"
        return section
    errors = []
    for path in sorted(folder.glob("*.json")):
        if path.name.endswith("-runs.json"):  # resumable run caches, not results
            continue
        try:
            section.files.append(results_file(path))
        except FrugalError as exc:
            if is_other_results(path):  # results of another shape (summaries, tables): linked as they are
                section.data.append(path)
            else:
                errors.append(str(exc))
    section.images = sorted(folder.glob("*.png"))
    section.error = "; ".join(errors)
    return section


def results_file(path: Path, *, stored: bool = False, date: str = "") -> ResultsFile:
    """A results file read once: its records and the environment they were measured in."""
    doc = read_document(path)
    return ResultsFile(path, records_of(doc, path), doc.get("environment") or {}, stored=stored, date=date)


def is_other_results(path: Path) -> bool:
    """Valid JSON that is not meant as a list of records (a damaged results file is an error)."""
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError):
        return False
    return not (isinstance(doc, dict) and "records" in doc)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def indexed_claims(results: Path, systems: Sequence[str]) -> list[ClaimRow]:
    """The claims listed in ``results/README.md`` (one table per ``## <system>`` heading)."""
    index = results / "README.md"
    if not index.is_file():
        return []
    rows, system = [], ""
    for line in index.read_text().splitlines():
        if line.startswith("## "):
            system = line[3:].strip()
            continue
        if system not in systems or not line.startswith("|") or line.startswith("|---"):
            continue
        cells = _cells(line)
        if len(cells) < 5 or cells[0] == "claim":
            continue
        link = _LINK.search(cells[2])
        rows.append(
            ClaimRow(
                system,
                claim=cells[0],
                figure=cells[1],
                source=link.group(1) if link else "",
                command=cells[3].strip("`"),
                when=cells[4],
            )
        )
    return rows


def record_claims(sections: Sequence[Section]) -> list[ClaimRow]:
    """Claims stated by the records themselves (results format version 2)."""
    rows = []
    for section in sections:
        for results in section.files:
            for r in results.records:
                if not r.claim:
                    continue
                rows.append(
                    ClaimRow(
                        section.system,
                        claim=r.paper_statement or r.claim,
                        figure=claim_figure(r),
                        verdict=r.verdict,
                        source=f"{section.system}/{results.path.name}",
                        command=r.command,
                        when=results.measured,
                    )
                )
    return rows


def claim_figure(r: Record) -> str:
    """A record's figures in one line: workload, ours, the peer's, the ratio and the paper's.

    Examples
    --------
    >>> claim_figure(Record("x", "helix", "P@50", "", 0.9231, "isomap", 0.5, higher_is_better=True,
    ...                     paper_value=0.75, paper_source="Fig. 3"))
    'helix: 0.9231 vs isomap 0.5 (1.85x); paper 0.75 (Fig. 3)'
    """
    unit = f" {r.unit}" if r.unit else ""
    figure = f"{r.workload}: {r.ours:.4g}{unit}"
    if r.peer_value is not None:
        figure += f" vs {r.peer or 'peer'} {r.peer_value:.4g}{unit} ({r.ratio:.2f}x)"
    if r.paper_value is not None:
        figure += f"; paper {r.paper_value:.4g} ({r.paper_source})"
    return figure


def build(results: str | Path, out: str | Path, systems: Sequence[str] = (), *, force: bool = False) -> Path:
    """Write the page for ``systems`` (default: all) from ``results`` into ``out``; returns its path."""
    results = Path(results)
    if not results.is_dir():
        raise DataNotFoundError(f"results folder {results} does not exist; pass --from benchmarks/results")
    chosen = list(systems) or list(SYSTEMS)
    sections = [stored_section(results, system) for system in chosen]
    claims = record_claims(sections) + indexed_claims(results, chosen)
    intro = (
        "Every figure below was measured by the command beside it and stored with the machine it ran on; "
        "a ratio above 1 means ours is better. Systems: " + ", ".join(chosen) + "."
    )
    return write_page(out, sections, claims, title=TITLE, intro=intro, force=force)


PROGRESS_FILE = "progress.json"


def run(
    mode: str,
    out: str | Path,
    systems: Sequence[str] = (),
    *,
    results: str | Path = "benchmarks/results",
    force: bool = False,
    resume: bool = False,
    quiet: bool = False,
) -> Path:
    """Run the claim checks of ``systems`` (default: all) at the sizes of ``mode`` ("quick" or
    "full") and write the page into ``out``; checks the mode cannot re-run come from ``results``.

    A system whose checks fail shows the one-line error in its section; the rest of the page is
    still written. Each finished check is kept, so ``resume=True`` continues an interrupted run.
    """
    if mode not in MODES:
        raise InvalidInputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    out, results = Path(out), Path(results)
    chosen = list(systems) or list(SYSTEMS)
    done = _start(out, mode, chosen, force=force, resume=resume)
    started = environment()["date"]
    sections = [_run_system(system, mode, out, results, done, quiet=quiet) for system in chosen]
    sizes = "scaled-down sizes, stated in each record's notes" if mode == "quick" else "the papers' sizes"
    intro = (
        f"Measured by <code>frugal reproduce --{mode}</code> ({sizes}) from {started} on "
        f"{machine(load=True)}. A ratio above 1 means ours is better. Figures marked "
        "'stored result' could not be re-run in this mode (GPU-only or hours long) and show the date "
        "and machine they were measured on. Systems: " + ", ".join(chosen) + "."
    )
    return write_page(out, sections, record_claims(sections), title=TITLE, intro=intro, force=True)


def _start(out: Path, mode: str, systems: Sequence[str], *, force: bool, resume: bool) -> dict[str, float]:
    """The checks already finished in ``out`` (seconds each) when resuming; otherwise prepares an
    empty or replaceable ``out``."""
    marker = out / PROGRESS_FILE
    if resume:
        if not marker.is_file():
            raise InvalidInputError(f"{out} holds no interrupted run to resume; run without --resume")
        earlier, done = _read_progress(marker)
        if earlier != mode:
            raise InvalidInputError(f"{out} holds a --{earlier} run; resume it with --{earlier} --resume")
        return done
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} is a file; choose a folder for the report")
    if out.exists() and any(out.iterdir()) and not force:
        raise InvalidInputError(
            f"{out} already exists and is not empty; choose another folder, pass --force to replace "
            "its report or --resume to continue its run"
        )
    require_folder(out)
    out.mkdir(exist_ok=True)
    for system in systems:
        shutil.rmtree(out / "data" / system, ignore_errors=True)
    _write_progress(marker, mode, {})
    return {}


def _read_progress(path: Path) -> tuple[str, dict[str, float]]:
    try:
        state = json.loads(path.read_text())
        mode, done = state["mode"], state["done"]
        numbers = isinstance(done, dict) and all(isinstance(s, (int, float)) for s in done.values())
        if mode in MODES and numbers:
            return mode, {str(k): float(v) for k, v in done.items()}
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        pass
    raise InvalidInputError(f"{path} is damaged; start the report again with --force")


def _write_progress(path: Path, mode: str, done: dict[str, float]) -> None:
    with atomic_write(path, "w") as f:
        json.dump({"mode": mode, "done": done}, f, indent=1)


def checks_of(system: str) -> list[Reproduction]:
    """A system's claim checks, from ``frugalml.<system>.bench.reproduce.reproductions()``."""
    return importlib.import_module(f"frugalml.{system}.bench.reproduce").reproductions()


def _run_system(
    system: str, mode: str, out: Path, results: Path, done: dict[str, float], *, quiet: bool
) -> Section:
    """One system's section: its checks run at ``mode`` (or taken from ``results``), errors kept."""
    folder = out / "data" / system
    folder.mkdir(parents=True, exist_ok=True)
    section = Section(system)
    try:
        checks = checks_of(system)
    except Exception as exc:  # noqa: BLE001 - one system failing must leave the rest of the report
        section.error = f"its checks could not be loaded: {_one_line(exc)}"
        return section
    errors, seconds = [], 0.0
    dates = {row.source: row.when for row in indexed_claims(results, [system])}  # for stored results
    for check in progress(checks, desc=f"{system} ({mode})", quiet=quiet):
        key = f"{system}/{check.name}"
        try:
            if mode not in check.modes:
                _add_stored(section, check, mode, results, folder, dates)
                continue
            path = folder / f"{check.name}.json"
            if key not in done or not path.is_file():
                done[key] = _run_check(check, mode, folder, path, system)
                _write_progress(out / PROGRESS_FILE, mode, done)
            seconds += done[key]
            section.files.append(results_file(path))
        except Exception as exc:  # noqa: BLE001 - a failed check is shown in its section
            errors.append(f"{check.name} failed: {_one_line(exc)}")
    section.images = sorted(folder.glob("*.png"))
    section.error = "; ".join(errors)
    measured = sum(not f.stored for f in section.files)
    section.note = f"{measured} of {len(checks)} checks measured in this run ({mode} mode, {seconds:.0f} s)"
    return section


def _run_check(check: Reproduction, mode: str, folder: Path, path: Path, system: str) -> float:
    """Run one check, write its records to ``path`` and what it printed to ``<name>.log`` beside
    them; returns the seconds it took."""
    start = time.perf_counter()
    with open(path.with_suffix(".log"), "w") as log, contextlib.redirect_stdout(log):
        records: list[Record] = check.run(mode, folder)
    for r in records:
        r.command = r.command or f"frugal reproduce --systems {system} --{mode}"
    write_json(records, path)
    return time.perf_counter() - start


def _add_stored(
    section: Section, check: Reproduction, mode: str, results: Path, folder: Path, dates: dict[str, str]
) -> None:
    """Show a check that cannot run in ``mode`` from its stored results (and plot), copied beside
    the page; results of another shape (summaries, tables) are linked as they are."""
    if not check.stored:
        raise InvalidInputError(f"it cannot run in {mode} mode and names no stored results")
    source = results / check.stored
    if not source.is_file():
        raise DataNotFoundError(f"its stored results {source} do not exist; pass --stored benchmarks/results")
    target = folder / source.name
    shutil.copyfile(source, target)
    plot = source.with_suffix(".png")
    if plot.is_file():
        shutil.copyfile(plot, folder / plot.name)
    if is_other_results(source):
        section.data.append(target)
        return
    section.files.append(results_file(target, stored=True, date=dates.get(check.stored, "")))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, FrugalError) else f"{type(exc).__name__}: {text}"
