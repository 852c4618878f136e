"""A self-contained static HTML page of results: a summary of claims, one section per system with
its plots embedded, every record, the machine, and links to the JSON files copied beside it.

Nothing on the page is fetched from the network: styles are inline and plots are embedded as PNG
data URIs, so the page opens from a folder, an archive or an e-mail attachment.
"""

from __future__ import annotations

import base64
import html
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugalml.common.env import machine
from frugalml.common.errors import InvalidInputError
from frugalml.common.files import atomic_write, require_folder
from frugalml.common.report import Record

VERDICT_COLOURS = {
    "reproduced": "#1a7f37",
    "better than the paper": "#0969da",
    "not reproduced": "#cf222e",
    "": "#57606a",
}
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1f2328}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2.5rem}
table{border-collapse:collapse;width:100%;margin:.8rem 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{color:#fff;border-radius:4px;padding:1px 6px;white-space:nowrap}
.error{background:#ffebe9;border:1px solid #cf222e;padding:.6rem;border-radius:6px}
.meta{color:#57606a;font-size:13px} img{max-width:100%;border:1px solid #d0d7de;margin:.5rem 0}
details{margin:.6rem 0} summary{cursor:pointer;color:#0969da}
code{white-space:pre-wrap;word-break:break-word}
"""


@dataclass
class ClaimRow:
    """One line of the summary: a claim, the figures behind it and how to regenerate it."""

    system: str
    claim: str
    figure: str
    verdict: str = ""
    source: str = ""  # the results file (relative to the page's data folder)
    command: str = ""
    when: str = ""  # date and machine of the measurement


@dataclass
class ResultsFile:
    """One results file: its path, its records and the environment they were measured in."""

    path: Path
    records: list[Record]
    environment: dict[str, Any] = field(default_factory=dict)
    stored: bool = False  # taken from results stored earlier, not measured in this run
    date: str = ""  # when measured, for files whose environment does not say

    @property
    def measured(self) -> str:
        """When and where the records were measured, marked when they come from stored results."""
        date = self.environment.get("date") or self.date
        return (
            ("stored result, " if self.stored else "")
            + (f"{date}, " if date else "")
            + machine(recorded=self.environment)
        )


@dataclass
class Section:
    """One system's part of the page."""

    system: str
    files: list[ResultsFile] = field(default_factory=list)  # copied to data/<system>/
    data: list[Path] = field(default_factory=list)  # other JSON results (summaries, tables), linked
    images: list[Path] = field(default_factory=list)
    error: str = ""  # why the section is incomplete (shown on the page)
    note: str = ""  # e.g. where the figures come from


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _verdict(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS[""])
    return f'<span class="verdict" style="background:{colour}">{_esc(verdict or "measured")}</span>'


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    caption = f'<figcaption class="meta">{_esc(path.name)}</figcaption>'
    return f'<figure><img alt="{_esc(path.name)}" src="data:image/png;base64,{data}">{caption}</figure>'


def _summary(rows: Sequence[ClaimRow]) -> str:
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICT_COLOURS}
    tally = ", ".join(f"{_verdict(v)} {n}" for v, n in counts.items() if n)
    lines = [
        f"<p>{len(rows)} figures: {tally}</p>",
        "<table><tr><th>system</th><th>claim</th><th>figure (ours vs peer)</th><th>verdict</th>"
        "<th>file</th><th>command</th><th>measured</th></tr>",
    ]
    for r in rows:
        link = f'<a href="data/{_esc(r.source)}">{_esc(r.source)}</a>' if r.source else ""
        lines.append(
            f"<tr><td>{_esc(r.system)}</td><td>{_esc(r.claim)}</td><td>{_esc(r.figure)}</td>"
            f"<td>{_verdict(r.verdict)}</td><td>{link}</td><td><code>{_esc(r.command)}</code></td>"
            f"<td>{_esc(r.when)}</td></tr>"
        )
    return "\n".join(lines) + "</table>"


def _records(records: Sequence[Record]) -> str:
    lines = [
        "<table><tr><th>workload</th><th>metric</th><th>ours</th><th>peer</th><th>peer value</th>"
        "<th>ratio</th><th>paper</th><th>notes</th></tr>"
    ]
    for r in records:
        ratio = r.ratio
        colour = (
            "" if ratio is None else (' style="color:#1a7f37"' if ratio >= 1 else ' style="color:#cf222e"')
        )
        paper = f"{_num(r.paper_value)} ({_esc(r.paper_source)})" if r.paper_value is not None else ""
        lines.append(
            f"<tr><td>{_esc(r.workload)}</td><td>{_esc(r.metric)} ({_esc(r.unit)})</td>"
            f'<td class="num">{_num(r.ours)}</td><td>{_esc(r.peer)}</td>'
            f'<td class="num">{_num(r.peer_value)}</td>'
            f'<td class="num"{colour}>{"" if ratio is None else f"{ratio:.2f}x"}</td><td>{paper}</td>'
            f"<td>{_esc(r.notes)}</td></tr>"
        )
    return "\n".join(lines) + "</table>"


def _section(section: Section) -> str:
    parts = [f'<h2 id="{_esc(section.system)}">{_esc(section.system)}</h2>']
    if section.note:
        parts.append(f'<p class="meta">{_esc(section.note)}</p>')
    if section.error:
        parts.append(f'<p class="error">{_esc(section.error)}</p>')
    parts += [_image(p) for p in section.images]
    for results in section.files:
        name = results.path.name
        parts.append(
            f"<details><summary>{_esc(name)}: {len(results.records)} records, measured on "
            f"{_esc(results.measured)}</summary>"
            f'<p><a href="data/{_esc(section.system)}/{_esc(name)}">{_esc(name)}</a></p>'
            f"{_records(results.records)}</details>"
        )
    if section.data:
        links = ", ".join(
            f'<a href="data/{_esc(section.system)}/{_esc(p.name)}">{_esc(p.name)}</a>' for p in section.data
        )
        parts.append(f'<p class="meta">other results: {links}</p>')
    return "\n".join(parts)


def write_page(
    out: str | Path,
    sections: Sequence[Section],
    claims: Sequence[ClaimRow],
    *,
    title: str,
    intro: str = "",
    force: bool = False,
) -> Path:
    """Write ``out/index.html`` and copy every section's results files to ``out/data/<system>/``.

    Refuses an existing, non-empty ``out`` unless ``force``; returns the page's path.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InvalidInputError(
            f"{out} already exists and is not empty; choose another folder or pass --force"
        )
    require_folder(out)  # the report's own folder is made, a missing parent is an error
    out.mkdir(exist_ok=True)
    data = out / "data"
    for section in sections:
        target = data / section.system
        target.mkdir(parents=True, exist_ok=True)
        for source in [results.path for results in section.files] + section.data:
            if source.resolve() != (target / source.name).resolve():  # a run writes into data/ itself
                shutil.copyfile(source, target / source.name)
    toc = " · ".join(f'<a href="#{_esc(s.system)}">{_esc(s.system)}</a>' for s in sections)
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{STYLE}</style></head><body>"
        f"<h1>{_esc(title)}</h1><p>{intro}</p><p>{toc}</p><h2>Claims</h2>{_summary(claims)}"
        + "".join(_section(s) for s in sections)
        + "</body></html>"
    )
    page_path = out / "index.html"
    with atomic_write(page_path, "w") as f:
        f.write(page)
    return page_path
