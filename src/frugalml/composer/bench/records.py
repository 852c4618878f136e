"""Results files shared by several composer benchmarks: records selected or replaced by workload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from frugalml.common.report import Record, merge_json, read_records


def kept_records(path: Path, keep: Callable[[str], bool]) -> list[Record]:
    """The records of ``path`` (none when it does not exist) whose workload ``keep`` accepts."""
    return [r for r in (read_records(path) if path.exists() else []) if keep(r.workload)]


def replace_records(path: Path, records: list[Record], prefix: str) -> None:
    """Write ``records`` to ``path``, replacing earlier records whose workload starts with ``prefix``."""
    merge_json(records, path, replaces=lambda r: r.workload.startswith(prefix))
