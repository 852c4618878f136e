"""Proxy fidelity of one or more tables against LM runs already trained, as far as they have got.

A fidelity run (:mod:`frugalml.composer.bench.fidelity`) rewrites its ``*-runs.json`` after every
architecture, comparing the LM losses with the table it loaded when it started. This module reads
that file (untrusted: its shape is checked) and scores the finished picks against any table, e.g.
a table rebuilt with another proxy while the LM runs go on, so that the LM runs need not be
repeated. Each table gets Spearman's rho between its scores and minus the LM loss (mean over the LM
seeds) with a bootstrap interval over the architectures; with two LM seeds, the LM's own
seed-to-seed rho is the noise ceiling beside it. Every record says how many of the planned
architectures are done ("n of 16"). A name joining tables with ``+`` (``ALCSM_3_lm+ALCSM_3_4tasks``)
scores their combination: the mean of each architecture's ranks in the tables (ranked over the
whole space). A caveat, when given, opens every record's notes (e.g. that a table was built after
the fidelity of others had been seen, so its figure is not a blind test).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from frugalml.common import env
from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.common.report import Record
from frugalml.composer.bench.fidelity import bootstrap_spearman, rho_record
from frugalml.composer.tabular import load_table

MIN_DONE = 4  # below this a rank correlation and its interval mean nothing


@dataclass(frozen=True)
class FinishedRuns:
    """The finished picks of a fidelity run: per-seed LM losses, sizes and cost."""

    planned: list[str]
    done: list[str]
    losses: np.ndarray  # (len(done), seeds): validation loss of each finished pick and LM seed
    params: list[int]  # non-embedding parameters of each finished pick (stacked)
    seeds: list[int]
    width: int
    stack: int
    steps: int
    lm_seconds: float  # wall seconds of the finished LM runs
    lm_cpu_seconds: float  # CPU seconds of the finished LM runs (0 where not recorded)

    def describe(self) -> str:
        grown = f", stacked x{self.stack}" if self.stack > 1 else ""
        return (
            f"{len(self.done)} of {len(self.planned)} archs{grown}, {min(self.params) / 1e6:.2f}-"
            f"{max(self.params) / 1e6:.2f}M non-embedding params (width {self.width}, {self.steps} steps, "
            f"LM seeds {self.seeds})"
        )


def read_runs(path: str | Path) -> FinishedRuns:
    """The finished picks of the fidelity run whose ``*-runs.json`` is ``path``.

    Raises DataNotFoundError when it is missing and CorruptFileError when it is not such a file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; give the *-runs.json of a fidelity run")
    try:
        doc = json.loads(path.read_text())
        s = doc["settings"]
        width, stack, steps = int(s["width"]), int(doc.get("stack", s.get("stack", 1))), int(s["steps"])
        seeds = [int(x) for x in s["seeds"]]
        planned = [str(a) for a in doc["picks"]]
        runs = doc["runs"]
        done, losses, params, wall, cpu = [], [], [], 0.0, 0.0
        for arch in planned:
            r = runs.get(f"{arch * stack}@{width}")
            if r is None:
                continue
            by_seed = {int(p["seed"]): p for p in r["runs"]}
            losses.append([float(by_seed[seed]["val_loss"]) for seed in seeds])
            params.append(int(r["non_embedding_params"]))
            wall += sum(float(by_seed[seed]["seconds"]) for seed in seeds)
            cpu += sum(float(by_seed[seed].get("cpu_seconds", 0.0)) for seed in seeds)
            done.append(arch)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptFileError(f"{path} is not the runs file of a fidelity run ({exc!r})") from None
    if not 1 <= stack <= 64 or not seeds or not planned:
        raise CorruptFileError(f"{path} is not the runs file of a fidelity run (stack, seeds or picks)")
    values = np.array(losses, dtype=float).reshape(len(done), len(seeds))
    if not np.all(np.isfinite(values)):
        raise CorruptFileError(f"{path} holds validation losses that are not finite numbers")
    return FinishedRuns(planned, done, values, params, seeds, width, stack, steps, wall, cpu)


def proxy_scores(name: str) -> tuple[dict[str, float], str, str, str]:
    """The scores a table name stands for, what kind they are, the table's name and its seeds: one
    table (built-in name or file),
    or ``A+B+...``: the mean over the tables of each architecture's rank (1 = worst)."""
    if "+" not in name or Path(name).is_file():
        table = load_table(name)
        kind = "LM-proxy table" if "corpus" in table.config else "MAD table"
        return dict(table.scores), kind, Path(table.name).stem, f"table seeds {list(table.seeds)}"
    tables = [load_table(part) for part in name.split("+")]
    archs = sorted(tables[0].scores)
    if any(sorted(t.scores) != archs for t in tables[1:]):
        raise InvalidInputError(f"the tables of {name!r} do not score the same space")
    ranks = np.mean([rankdata([t.scores[a] for a in archs]) for t in tables], axis=0)
    stems = [Path(t.name).stem for t in tables]
    seeds = "; ".join(f"{stem} seeds {list(t.seeds)}" for stem, t in zip(stems, tables, strict=True))
    return dict(zip(archs, map(float, ranks), strict=True)), "rank mean of", " + ".join(stems), seeds


def table_fidelity(runs_path: str | Path, tables: list[str], caveat: str = "") -> list[Record]:
    """Each table against the finished LM runs of ``runs_path``, then the LM's noise ceiling;
    ``caveat`` opens every record's notes."""
    runs = read_runs(runs_path)
    if len(runs.done) < MIN_DONE:
        raise InvalidInputError(
            f"{runs_path} has {len(runs.done)} finished architectures; a rank correlation needs {MIN_DONE}"
        )
    neg_loss = list(-runs.losses.mean(axis=1))
    cost = training_cost(runs)
    lead = f"{caveat.rstrip('. ')}. " if caveat else ""
    records = []
    for name in tables:
        scores, kind, stem, seeds = proxy_scores(name)
        missing = [a for a in runs.done if a not in scores]
        if missing:
            raise InvalidInputError(f"table {name} has no score for {missing[0]!r}; is it the same space?")
        rec = rho_record(
            f"proxy fidelity: {kind} {stem} vs LM loss, {runs.describe()}",
            bootstrap_spearman([scores[a] for a in runs.done], neg_loss),
            f"{lead}paper: 0.9-0.97 at its scale; 95% CI from 5000 bootstrap resamples of the "
            f"architectures; {seeds}; " + cost,
        )
        rec.spread.update(archs=runs.done, planned=len(runs.planned), table=stem)
        records.append(rec)
    if len(runs.seeds) >= 2:
        records.append(ceiling_record(runs, lead))
    return records


def training_cost(runs: FinishedRuns) -> str:
    """What the finished LM runs cost, in words."""
    return (
        f"LM training {runs.lm_seconds / 3600:.2f} h wall, {runs.lm_cpu_seconds / 3600:.2f} CPU-h"
        f" on {env.machine()}"
    )


def ceiling_record(runs: FinishedRuns, lead: str = "") -> Record:
    """The LMs' own seed-to-seed Spearman rho (first two LM seeds) with its interval: the noise
    ceiling of any proxy's fidelity against them; ``lead`` opens the notes."""
    if len(runs.seeds) < 2:
        raise InvalidInputError("a noise ceiling needs LM runs on two seeds")
    rec = rho_record(
        f"noise ceiling: LM seed {runs.seeds[0]} vs seed {runs.seeds[1]}, {runs.describe()}",
        bootstrap_spearman(list(-runs.losses[:, 0]), list(-runs.losses[:, 1])),
        f"{lead}the larger models' own seed-to-seed agreement; a proxy cannot be expected to rank "
        "them better than one seed ranks the other; " + training_cost(runs),
    )
    rec.spread.update(archs=runs.done, planned=len(runs.planned))
    return rec
