"""``frugal reproduce``: one static web page of every system's claims, figures and peers.

The page is built from a results folder laid out as ``benchmarks/results`` (``<system>/<claim>.json``
plus PNG plots, and a ``README.md`` whose tables list each claim, its figure, file, command and
date/machine). Figures taken from stored files are labelled with the date and machine they were
measured on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from frugalml import SYSTEMS
from frugalml.common.env import machine
from frugalml.common.errors import DataNotFoundError, FrugalError
from frugalml.common.htmlpage import ClaimRow, ResultsFile, Section, write_page
from frugalml.common.report import read_document, read_records

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
            environment = read_document(path).get("environment") or {}
            section.files.append(ResultsFile(path, read_records(path), environment))
        except FrugalError as exc:
            if _is_other_results(path):  # results of another shape (summaries, tables): linked as they are
                section.data.append(path)
            else:
                errors.append(str(exc))
    section.images = sorted(folder.glob("*.png"))
    section.error = "; ".join(errors)
    return section


def _is_other_results(path: Path) -> bool:
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
                figure = f"{r.ours:.4g} {r.unit} vs {r.peer or 'no peer'} {r.peer_value or ''}".strip()
                if r.paper_value is not None:
                    figure += f"; paper {r.paper_value:.4g} ({r.paper_source})"
                rows.append(
                    ClaimRow(
                        section.system,
                        claim=r.paper_statement or r.claim,
                        figure=figure,
                        verdict=r.verdict,
                        source=f"{section.system}/{results.path.name}",
                        command=r.command,
                        when=machine(recorded=results.environment),
                    )
                )
    return rows


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
    return write_page(
        out, sections, claims, title="frugalml: the papers' claims beside ours", intro=intro, force=force
    )
