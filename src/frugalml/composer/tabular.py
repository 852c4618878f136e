"""The tabular benchmark: precomputed proxy scores of a whole space, so engines compare in seconds.

A table is the JSON written by ``benchmarks/composer/make_tabular.py`` (scores of every
architecture plus the proxy settings). Six are built in (:data:`BUILTINS`): ``AM_6`` (all 64
six-layer A/M strings, one training seed) and ``AM_6_5seeds`` (the same proxy averaged over five
seeds: split-half rank agreement 0.33, predicted reliability 0.53, against 0.19 between two single
seeds; see ``benchmarks/composer/table_agreement.py``), ``ALCSM_3`` (the 125 three-layer
strings over attention, linear attention, short convolution, sliding window and MLP, where the
architectures really differ: 2-task MAD proxy, four seeds, seed-to-seed rho 0.91, 0.70 among the
better half, top-1 stays top-1 in 82% of seed resamples) and ``ALCSM_3_4tasks`` (the same space on
the 4-task proxy the proxy study chose: three seeds, seed-to-seed rho 0.92, 0.77 among the better
half, top-1 stays top-1 in 63% of seed resamples, 35 CPU-minutes) and ``ALCSM_3_lm`` (the same
space on the proxy study's byte-level LM proxy, 100 steps at width 32: three seeds, seed-to-seed rho
0.83, 0.63 among the better half, top-1 stays top-1 in 59% of seed resamples, 20 CPU-minutes; built
after the MAD tables' fidelity had been seen) and ``ALCSM_3_lm300`` (the recommended one: the same LM
proxy at 300 steps, the setting chosen by ``benchmarks/composer/proxy_validation.py``: three seeds,
seed-to-seed rho 0.94, 0.86 among the better half, top-1 stays top-1 in 82% of seed resamples, 57
CPU-minutes). :func:`compare_engines` runs each engine
on a table for many seeds and reports evaluations-to-top-1 and regret curves (best score of the
table minus the best found so far); :func:`bootstrap_ratio` gives a confidence interval for the
ratio of two engines' medians.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.common.progress import progress
from frugalml.common.validate import bounded
from frugalml.composer.engines import Space, make_engine
from frugalml.composer.limits import MAX_SEED, MAX_SEEDS
from frugalml.composer.strategies import run_engine

BUILTINS = {
    "AM_6": "tabular_AM_6.json",
    "AM_6_5seeds": "tabular_AM_6_5seeds.json",
    "ALCSM_3": "tabular_ALCSM_3.json",
    "ALCSM_3_4tasks": "tabular_ALCSM_3_4tasks.json",
    "ALCSM_3_lm": "tabular_ALCSM_3_lm.json",
    "ALCSM_3_lm300": "tabular_ALCSM_3_lm300.json",
}
DEFAULT_TABLE = "AM_6"
BUILTIN = BUILTINS[DEFAULT_TABLE]


@dataclass(frozen=True)
class Table:
    """Scores of every architecture of ``space`` on one proxy configuration."""

    space: Space
    scores: dict[str, float]
    config: dict
    name: str = ""
    seeds: tuple[int, ...] = ()

    def describe(self) -> str:
        """One line: which table, its space and how many training seeds each score averages."""
        n = len(self.seeds)
        seeds = f"{n} training seed{'s' * (n != 1)} per score" if n else "training seeds not recorded"
        return f"table {self.name}: {self.space.primitives} x {self.space.layers} layers, {seeds}"

    @property
    def top1(self) -> str:
        return max(self.scores, key=self.scores.__getitem__)

    def score(self, archs: list[str]) -> dict[str, float]:
        return {a: self.scores[a] for a in archs}


def load_table(path: str | Path | None = None) -> Table:
    """Read a tabular benchmark: a built-in table by name (see :data:`BUILTINS`; ``None`` is
    :data:`DEFAULT_TABLE`) or a JSON file written by ``make_tabular.py``.

    Raises
    ------
    DataNotFoundError, CorruptFileError
        The file is missing, or it is not a complete table of its space.
    """
    path = DEFAULT_TABLE if path is None else path
    if isinstance(path, str) and path in BUILTINS:
        ref = resources.files("frugalml.composer") / BUILTINS[path]
        if not ref.is_file():
            raise DataNotFoundError(
                f"the built-in table {BUILTINS[path]} is missing; run "
                "benchmarks/composer/make_tabular.py to compute it"
            )
        text, where, name = ref.read_text(), BUILTINS[path], path
    else:
        file = Path(path)
        if not file.is_file():
            raise DataNotFoundError(
                f"{file} is neither a file nor a built-in table "
                f"({', '.join(BUILTINS)}); compute a table with make_tabular.py"
            )
        text, where, name = file.read_text(), str(file), str(file)
    try:
        doc = json.loads(text)
        space = Space(doc["space"]["primitives"], int(doc["space"]["layers"]))
        scores = {str(a): float(s) for a, s in doc["scores"].items()}
        config = doc.get("config", {})
        seeds = tuple(int(x) for x in doc.get("seeds", ()))
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as exc:
        raise CorruptFileError(f"{where} is not a tabular benchmark ({exc})") from None
    # checked against what the file holds, never by enumerating a space it may inflate
    outside = [a for a in scores if len(a) != space.layers or not set(a) <= set(space.primitives)]
    if outside:
        raise CorruptFileError(
            f"{where} scores {len(outside)} strings outside its space {space.primitives} x "
            f"{space.layers}, e.g. {outside[0][:40]!r}"
        )
    if space.size != len(scores):
        raise CorruptFileError(
            f"{where} lacks the scores of {space.size - len(scores)} architectures of its space"
        )
    if not all(np.isfinite(v) for v in scores.values()):
        raise CorruptFileError(f"{where} holds scores that are not finite numbers")
    return Table(space, scores, config, name, seeds)


@dataclass(frozen=True)
class EngineRuns:
    """Many seeds of one engine on one table."""

    engine: str
    evals_to_top1: list[int]  # space size + 1 when the top-1 was never found
    regret: np.ndarray  # (seeds, budget) regret after each evaluation
    seconds: float
    seeds: tuple[int, ...] = ()  # the engine seeds, in the order of evals_to_top1

    @property
    def median_evals_to_top1(self) -> float:
        return float(np.median(self.evals_to_top1))


def compare_engines(
    table: Table,
    engines: list[str],
    *,
    seeds: int = 20,
    first_seed: int = 0,
    budget: int | None = None,
    quiet: bool = True,
    options: dict[str, dict] | None = None,
) -> dict[str, EngineRuns]:
    """Run each engine with seeds ``first_seed .. first_seed + seeds - 1`` on ``table`` until it
    evaluates the top-1 or spends ``budget`` evaluations (default: the whole space).

    ``options`` maps an engine name to keyword arguments of its constructor (e.g.
    ``{"bo": {"kernel": "mixed", "acquisition": "thompson", "initial": 8}}``).
    """
    import time

    if seeds < 1:
        raise InvalidInputError(f"seeds must be at least 1, got {seeds}")
    if first_seed < 0:
        raise InvalidInputError(f"first_seed must be >= 0, got {first_seed}")
    bounded(seeds, "seeds", 1, MAX_SEEDS)
    bounded(first_seed, "first_seed", 0, MAX_SEED - seeds)
    seed_list = tuple(range(first_seed, first_seed + seeds))
    budget = budget or table.space.size
    top1, best = table.top1, table.scores[table.top1]
    out = {}
    for name in engines:
        start = time.perf_counter()
        evals, curves = [], []
        for seed in progress(seed_list, desc=name, quiet=quiet):
            engine = make_engine(name, table.space, seed, **(options or {}).get(name, {}))
            result = run_engine(engine, table.score, budget, stop_when=lambda arch, score: arch == top1)
            archs = [a for a, _ in result.history]
            evals.append(archs.index(top1) + 1 if top1 in archs else table.space.size + 1)
            curve = best - result.best_so_far()  # zero from the top-1 on, so the search stops there
            curves.append(np.pad(curve, (0, budget - len(curve)), mode="edge"))
        out[name] = EngineRuns(name, evals, np.array(curves), time.perf_counter() - start, seed_list)
    return out


def bootstrap_ratio(
    ours: list[int], peer: list[int], resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """median(peer) / median(ours) and its 95% percentile bootstrap interval.

    The two engines' runs are independent, so each is resampled on its own.
    """
    ours_a, peer_a = np.asarray(ours, dtype=float), np.asarray(peer, dtype=float)
    if ours_a.size == 0 or peer_a.size == 0:
        raise InvalidInputError("bootstrap_ratio needs at least one run of each engine")
    gen = np.random.default_rng(seed)
    m_ours = np.median(ours_a[gen.integers(0, ours_a.size, (resamples, ours_a.size))], axis=1)
    m_peer = np.median(peer_a[gen.integers(0, peer_a.size, (resamples, peer_a.size))], axis=1)
    low, high = np.percentile(m_peer / m_ours, [2.5, 97.5])
    return float(np.median(peer_a) / np.median(ours_a)), float(low), float(high)


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
        _, low, high = bootstrap_ratio(mine.evals_to_top1, peer.evals_to_top1)
        out.append(
            Record(
                "composer",
                f"{workload}: evaluations until the top-1 architecture is found",
                "median evaluations to top-1",
                "evaluations",
                mine.median_evals_to_top1,
                {"tpe": "optuna TPE", "botorch": "BoTorch LogEI"}.get(name, name),
                peer.median_evals_to_top1,
                higher_is_better=False,
                spread={
                    "ours_quartiles": np.percentile(mine.evals_to_top1, [25, 75]).tolist(),
                    "peer_quartiles": np.percentile(peer.evals_to_top1, [25, 75]).tolist(),
                    "seeds": len(mine.evals_to_top1),
                    "seed_range": [min(mine.seeds), max(mine.seeds)] if mine.seeds else None,
                    "ratio_ci95": [low, high],
                    "ours_evals": list(mine.evals_to_top1),
                    "peer_evals": list(peer.evals_to_top1),
                    "ours_seconds": mine.seconds,
                    "peer_seconds": peer.seconds,
                },
                notes="lookups in a precomputed table; the count of distinct architectures evaluated, "
                "duplicates proposed by an engine are free; ratio_ci95: 95% bootstrap interval of "
                "median(peer) / median(ours), each engine's seeds resampled",
            )
        )
    return out
