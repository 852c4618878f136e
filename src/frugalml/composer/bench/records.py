"""Results files shared by several composer benchmarks: records replaced by workload, others kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from frugalml.common.report import Record, read_json, write_json

_FIELDS = {f.name for f in fields(Record)}


def as_record(doc: dict[str, Any]) -> Record:
    """A :class:`Record` again from its JSON form (the derived ``ratio`` dropped)."""
    return Record(**{k: v for k, v in doc.items() if k in _FIELDS})


def kept_records(path: Path, keep: Callable[[str], bool]) -> list[Record]:
    """The records of ``path`` (none when it does not exist) whose workload ``keep`` accepts."""
    earlier = read_json(path) if path.exists() else []
    return [as_record(r) for r in earlier if keep(r["workload"])]


def replace_records(path: Path, records: list[Record], prefix: str) -> None:
    """Write ``records`` to ``path``, replacing earlier records whose workload starts with ``prefix``."""
    kept = kept_records(path, lambda workload: not workload.startswith(prefix))
    write_json(kept + records, path)
