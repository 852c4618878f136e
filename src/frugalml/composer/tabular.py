"""The tabular benchmark: precomputed proxy scores of a whole space, so engines compare in seconds.

A table is the JSON written by ``benchmarks/composer/make_tabular.py`` (scores of every
architecture plus the proxy settings). :func:`compare_engines` runs each engine on it for many
seeds and reports evaluations-to-top-1 and regret curves (best score of the table minus the best
found so far).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.common.progress import progress
from frugalml.composer.engines import Space, make_engine
from frugalml.composer.strategies import run_engine

BUILTIN = "tabular_AM_6.json"


@dataclass(frozen=True)
class Table:
    """Scores of every architecture of ``space`` on one proxy configuration."""

    space: Space
    scores: dict[str, float]
    config: dict

    @property
    def top1(self) -> str:
        return max(self.scores, key=self.scores.get)

    def score(self, archs: list[str]) -> dict[str, float]:
        return {a: self.scores[a] for a in archs}


def load_table(path: str | Path | None = None) -> Table:
    """Read a tabular benchmark (the built-in six-layer A/M table when ``path`` is None).

    Raises
    ------
    DataNotFoundError, CorruptFileError
        The file is missing, or it is not a complete table of its space.
    """
    if path is None:
        ref = resources.files("frugalml.composer") / BUILTIN
        if not ref.is_file():
            raise DataNotFoundError(f"the built-in table {BUILTIN} is missing; run "
                                    "benchmarks/composer/make_tabular.py to compute it")
        text, where = ref.read_text(), BUILTIN
    else:
        where = Path(path)
        if not where.is_file():
            raise DataNotFoundError(f"{where} does not exist; compute a table with make_tabular.py")
        text = where.read_text()
    try:
        doc = json.loads(text)
        space = Space(doc["space"]["primitives"], int(doc["space"]["layers"]))
        scores = {str(a): float(s) for a, s in doc["scores"].items()}
        config = doc.get("config", {})
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(f"{where} is not a tabular benchmark ({exc})") from None
    missing = space.size - len(set(scores) & set(space.enumerate()))
    if missing:
        raise CorruptFileError(f"{where} lacks the scores of {missing} architectures of its space")
    return Table(space, scores, config)


@dataclass(frozen=True)
class EngineRuns:
    """Many seeds of one engine on one table."""

    engine: str
    evals_to_top1: list[int]          # space size + 1 when the top-1 was never found
    regret: np.ndarray                # (seeds, budget) regret after each evaluation
    seconds: float

    @property
    def median_evals_to_top1(self) -> float:
        return float(np.median(self.evals_to_top1))


def compare_engines(table: Table, engines: list[str], *, seeds: int = 20, budget: int | None = None,
                    quiet: bool = True) -> dict[str, EngineRuns]:
    """Run each engine ``seeds`` times on ``table`` until it finds the top-1 or spends ``budget``."""
    import time

    if seeds < 1:
        raise InvalidInputError(f"seeds must be at least 1, got {seeds}")
    budget = budget or table.space.size
    top1, best = table.top1, table.scores[table.top1]
    out = {}
    for name in engines:
        start = time.perf_counter()
        evals, curves = [], []
        for seed in progress(range(seeds), desc=name, quiet=quiet):
            found: list[int] = []

            def note(arch: str, score: float, found: list[int] = found) -> None:
                found.append(arch == top1)

            result = run_engine(make_engine(name, table.space, seed), table.score, budget, on_result=note)
            evals.append(found.index(True) + 1 if True in found else table.space.size + 1)
            curve = best - result.best_so_far()
            curves.append(np.pad(curve, (0, budget - len(curve)), mode="edge"))
        out[name] = EngineRuns(name, evals, np.array(curves), time.perf_counter() - start)
    return out


def plot_regret(runs: dict[str, EngineRuns], path: str | Path, title: str = "") -> Path:
    """Median regret (with quartile bands) against evaluations, one line per engine, as PNG."""
    from frugalml.common.report import new_figure, save_plot

    fig, ax = new_figure(figsize=(6, 4))
    for name, r in runs.items():
        x = np.arange(1, r.regret.shape[1] + 1)
        lo, med, hi = np.percentile(r.regret, [25, 50, 75], axis=0)
        ax.plot(x, med, label=f"{name} (median evals to top-1: {r.median_evals_to_top1:g})")
        ax.fill_between(x, lo, hi, alpha=0.2)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("regret (top-1 score - best found)")
    ax.set_title(title or "search progress on the tabular benchmark")
    ax.legend(fontsize=7)
    return save_plot(fig, path)


def records(runs: dict[str, EngineRuns], ours: str = "bo", workload: str = "tabular") -> list:
    """``report.Record``s of our engine against every other engine (evaluations to top-1, medians)."""
    from frugalml.common.report import Record

    mine = runs[ours]
    out = []
    for name, peer in runs.items():
        if name == ours:
            continue
        out.append(Record(
            "composer", f"{workload}: evaluations until the top-1 architecture is found",
            "median evaluations to top-1", "evaluations", mine.median_evals_to_top1,
            {"tpe": "optuna TPE", "botorch": "BoTorch LogEI"}.get(name, name),
            peer.median_evals_to_top1, higher_is_better=False,
            spread={"ours_quartiles": np.percentile(mine.evals_to_top1, [25, 75]).tolist(),
                    "peer_quartiles": np.percentile(peer.evals_to_top1, [25, 75]).tolist(),
                    "seeds": len(mine.evals_to_top1),
                    "ours_seconds": mine.seconds, "peer_seconds": peer.seconds},
            notes="lookups in a precomputed table; the count of distinct architectures evaluated, "
                  "duplicates proposed by an engine are free"))
    return out
