"""SQLite cache of evaluation results keyed by (architecture, proxy, configuration, seed).

Each result is committed as soon as it is known, so a search killed mid-way resumes by reading
what it already paid for. A file that is not a readable SQLite database raises CorruptFileError.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from frugalml.common.errors import CorruptFileError, InvalidInputError

SCHEMA_VERSION = 1


def config_key(proxy: str, config: dict) -> str:
    """A stable hash of a proxy's name and configuration."""
    text = json.dumps({"proxy": proxy, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CachedResult:
    """One stored evaluation."""

    arch: str
    proxy: str
    config_key: str
    seed: int
    score: float
    metrics: dict
    seconds: float


class ResultCache:
    """Evaluation results on disk (or in memory with ``":memory:"``).

    Parameters
    ----------
    path : path-like
        The SQLite file; created when missing.

    Raises
    ------
    CorruptFileError
        The file exists but is not a result cache this version can read.
    """

    def __init__(self, path: str | os.PathLike = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA user_version")
            self._db.executescript(
                """CREATE TABLE IF NOT EXISTS results (
                       arch TEXT NOT NULL, proxy TEXT NOT NULL, config_key TEXT NOT NULL,
                       seed INTEGER NOT NULL, score REAL NOT NULL, metrics TEXT NOT NULL,
                       seconds REAL NOT NULL, created REAL NOT NULL,
                       PRIMARY KEY (arch, proxy, config_key, seed));
                   CREATE TABLE IF NOT EXISTS configs (
                       config_key TEXT PRIMARY KEY, proxy TEXT NOT NULL, config TEXT NOT NULL);"""
            )
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise CorruptFileError(
                    f"{self.path} is a result cache of schema {version}, newer than "
                    f"this frugalml reads ({SCHEMA_VERSION}); upgrade frugalml"
                )
            self._db.execute(
                "SELECT arch, proxy, config_key, seed, score, metrics, seconds FROM results LIMIT 1"
            ).fetchall()
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise CorruptFileError(
                f"{self.path} is not a readable result cache ({exc}); move it away or pass another "
                "--cache path (nothing was changed)"
            ) from None

    def get(self, arch: str, proxy: str, config_key: str, seed: int) -> CachedResult | None:
        row = self._db.execute(
            "SELECT score, metrics, seconds FROM results WHERE arch=? AND proxy=? AND config_key=? "
            "AND seed=?",
            (arch, proxy, config_key, seed),
        ).fetchone()
        if row is None:
            return None
        return CachedResult(arch, proxy, config_key, seed, row[0], json.loads(row[1]), row[2])

    def put(
        self, arch: str, proxy: str, config: dict, seed: int, score: float, metrics: dict, seconds: float
    ) -> CachedResult:
        if score != score:
            raise InvalidInputError(f"score of {arch!r} is NaN; the evaluation failed to produce a number")
        key = config_key(proxy, config)
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO configs VALUES (?, ?, ?)",
                (key, proxy, json.dumps(config, sort_keys=True, default=str)),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    arch,
                    proxy,
                    key,
                    seed,
                    float(score),
                    json.dumps(metrics, default=float),
                    float(seconds),
                    time.time(),
                ),
            )
        return CachedResult(arch, proxy, key, seed, float(score), metrics, float(seconds))

    def all(self, proxy: str | None = None, config_key: str | None = None) -> list[CachedResult]:
        """Every stored result, optionally of one proxy / configuration, oldest first."""
        query, args = "SELECT arch, proxy, config_key, seed, score, metrics, seconds FROM results", []
        conds = []
        if proxy is not None:
            conds.append("proxy=?")
            args.append(proxy)
        if config_key is not None:
            conds.append("config_key=?")
            args.append(config_key)
        if conds:
            query += " WHERE " + " AND ".join(conds)
        rows = self._db.execute(query + " ORDER BY created", args).fetchall()
        return [CachedResult(a, p, k, s, sc, json.loads(m), sec) for a, p, k, s, sc, m, sec in rows]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()
