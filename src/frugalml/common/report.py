"""Benchmark results as JSON records, a rich table and PNG plots.

Every ``frugal <system> bench`` / ``reproduce`` writes a list of :class:`Record` with ``--json``.
``ratio`` is oriented so that above 1 always means ours is better (peer time / our time for
latencies, our score / peer score for accuracies).

Version 2 records may also state a paper's claim they check (``claim``, ``paper_*``, ``verdict``,
``reason``, ``command``); version-1 files read as records without a claim.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from frugalml.common.env import environment
from frugalml.common.errors import CorruptFileError, DataNotFoundError
from frugalml.common.files import atomic_write

REPORT_VERSION = 2
VERDICTS = ("reproduced", "better than the paper", "not reproduced", "")
CLAIM_FIELDS = ("claim", "paper_statement", "paper_value", "paper_source", "verdict", "reason", "command")


@dataclass
class Record:
    """One measured number of ours against one peer on one workload."""

    system: str
    workload: str
    metric: str
    unit: str
    ours: float
    peer: str | None = None
    peer_value: float | None = None
    higher_is_better: bool = False
    spread: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    claim: str = ""  # a stable id of the paper's claim this record checks, e.g. "pacset/cold-query"
    paper_statement: str = ""  # the claim in the paper's words
    paper_value: float | None = None  # the paper's number, in this record's metric
    paper_source: str = ""  # where the paper says it (table, figure, section)
    verdict: str = ""  # one of VERDICTS ("" for a measurement that checks no claim)
    reason: str = ""  # the measured reason behind the verdict
    command: str = ""  # the command that regenerates this record

    @property
    def ratio(self) -> float | None:
        """Above 1 means ours is better, whichever way the metric points."""
        if self.peer_value is None:
            return None
        num, den = (self.ours, self.peer_value) if self.higher_is_better else (self.peer_value, self.ours)
        return num / den if den else math.inf

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; the claim fields are left out of a record that checks no claim."""
        doc = {**asdict(self), "ratio": self.ratio}
        if not self.claim:
            for name in CLAIM_FIELDS:
                doc.pop(name)
        return doc

    @classmethod
    def from_comparison(
        cls, comparison, *, system: str, workload: str, peer: str, metric: str = "time", notes: str = ""
    ) -> Record:
        """A latency record from :func:`frugalml.common.timing.compare` (seconds, lower wins)."""
        return cls(
            system,
            workload,
            metric,
            "s",
            comparison.ours.median,
            peer,
            comparison.peer.median,
            higher_is_better=False,
            spread={
                "ours": [comparison.ours.min, comparison.ours.max],
                "peer": [comparison.peer.min, comparison.peer.max],
                "rounds": comparison.rounds,
                "threads": comparison.threads,
            },
            notes=notes,
        )


def write_json(records: list[Record], path: str | os.PathLike) -> Path:
    """Write records with the environment they were measured in, atomically."""
    doc = {
        "version": REPORT_VERSION,
        "environment": environment(),
        "records": [r.to_dict() for r in records],
    }
    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=2, default=str)
    return Path(path)


def read_document(path: str | os.PathLike) -> dict[str, Any]:
    """A results file written by :func:`write_json` (version 1 or 2), checked for its shape.

    Raises DataNotFoundError when it is missing and CorruptFileError when it is not a results file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; check the path")
    try:
        with open(path) as f:
            doc = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON ({exc}); regenerate it") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("records"), list)
        or not all(isinstance(r, dict) for r in doc["records"])
    ):
        raise CorruptFileError(f"{path} is not a frugalml results file (no list of records)")
    if int(doc.get("version", 1)) > REPORT_VERSION:
        raise CorruptFileError(f"{path} has results version {doc['version']}; upgrade frugalml to read it")
    return doc


def read_json(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read the records written by :func:`write_json`."""
    return read_document(path)["records"]


def read_records(path: str | os.PathLike) -> list[Record]:
    """The records of a results file written by :func:`write_json`, as :class:`Record` objects
    (derived fields such as ``ratio`` are computed again)."""
    return records_of(read_document(path), path)


def records_of(doc: dict[str, Any], path: str | os.PathLike) -> list[Record]:
    """The :class:`Record` objects of a document read by :func:`read_document` from ``path``."""
    names = {f.name for f in fields(Record)}
    try:
        return [Record(**{k: v for k, v in r.items() if k in names}) for r in doc["records"]]
    except TypeError as exc:
        raise CorruptFileError(f"{path} holds a record of the wrong shape ({exc}); regenerate it") from None


def merge_json(
    records: list[Record], path: str | os.PathLike, *, replaces: Callable[[Record], bool] | None = None
) -> int:
    """Write ``records`` into the results file at ``path`` (created if missing), dropping the earlier
    records that ``replaces`` accepts (by default those of the same workload, metric and peer as a
    new one) and keeping all others; returns how many were kept."""
    if replaces is None:
        keys = {(r.workload, r.metric, r.peer) for r in records}

        def replaces(r: Record) -> bool:
            return (r.workload, r.metric, r.peer) in keys

    earlier = read_records(path) if Path(path).is_file() else []
    kept = [r for r in earlier if not replaces(r)]
    write_json(kept + records, path)
    return len(kept)


def print_table(records: list[Record], title: str = "results", console=None) -> None:
    """Show records as a rich table; ratios below 1 (ours worse) are shown in red."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("workload", "metric", "ours", "peer", "peer value", "ratio"):
        table.add_column(col, justify="left" if col in ("workload", "metric", "peer") else "right")
    for r in records:
        ratio = r.ratio
        shown = "" if ratio is None else f"[{'green' if ratio >= 1 else 'red'}]{ratio:.2f}x[/]"
        table.add_row(
            r.workload, f"{r.metric} ({r.unit})", _fmt(r.ours), r.peer or "", _fmt(r.peer_value), shown
        )
    (console or Console()).print(table)


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def save_plot(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def new_figure(*args, **kwargs):
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)
