"""The search loop and Composer's strategies: one-shot, end-layer and middle-layer incremental.

A strategy decides which strings an engine searches and how they become full architectures (a
searched suffix appended to a fixed prefix, or a searched block inserted in the middle); the loop
asks the engine, scores through a ``score`` function (an :class:`Evaluator`'s ``scores`` or a
table lookup) and tells the results back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import one_of
from frugalml.composer.engines import Engine, Space, make_engine

STRATEGIES = ("one-shot", "end-incremental", "middle-incremental")
MAX_DUPLICATES = 200

ScoreFn = Callable[[list[str]], dict[str, float]]


@dataclass
class SearchResult:
    """Architectures in the order they were first evaluated, with their scores."""

    history: list[tuple[str, float]] = field(default_factory=list)
    stopped: str = "budget"

    @property
    def best(self) -> tuple[str, float]:
        """The best architecture of full length (incremental searches also score shorter ones)."""
        if not self.history:
            raise InvalidInputError("the search evaluated nothing")
        full = max(len(a) for a, _ in self.history)
        return max((h for h in self.history if len(h[0]) == full), key=lambda h: h[1])

    def best_so_far(self) -> np.ndarray:
        """Best score after each evaluation."""
        return np.maximum.accumulate(np.array([s for _, s in self.history], dtype=float))


def run_engine(
    engine: Engine,
    score: ScoreFn,
    budget: int,
    *,
    compose: Callable[[str], str] = str,
    batch: int = 1,
    known: dict[str, float] | None = None,
    on_result: Callable[[str, float], None] | None = None,
    stop_when: Callable[[str, float], bool] | None = None,
) -> SearchResult:
    """Ask/tell until ``budget`` distinct architectures are scored (or the space is exhausted, or
    ``stop_when(arch, score)`` is true of a result: ``stopped`` is then ``"target"``).

    An engine that proposes an architecture scored before (``tpe`` can) is told the known score,
    which costs no budget; after ``MAX_DUPLICATES`` such proposals in a row the search stops.
    """
    if budget < 1:
        raise InvalidInputError(f"budget must be at least 1 evaluation, got {budget}")
    if batch < 1:
        raise InvalidInputError(f"batch must be at least 1, got {batch}")
    known = {} if known is None else known
    result, duplicates = SearchResult(), 0
    while len(result.history) < budget:
        if engine.exhausted:
            result.stopped = "exhausted"
            break
        asked: list[str] = []
        while len(asked) < min(batch, budget - len(result.history)) and not engine.exhausted:
            free = engine.propose()
            arch = compose(free)
            if arch in known or free in asked:
                engine.tell(free, known[arch]) if arch in known else engine.pending.discard(free)
                duplicates += 1
                if duplicates >= MAX_DUPLICATES:
                    break
                continue
            duplicates = 0
            asked.append(free)
        if duplicates >= MAX_DUPLICATES and not asked:
            result.stopped = "duplicates"
            break
        scores = score([compose(f) for f in asked])
        for free in asked:
            arch = compose(free)
            known[arch] = scores[arch]
            engine.tell(free, scores[arch])
            result.history.append((arch, scores[arch]))
            if on_result is not None:
                on_result(arch, scores[arch])
            if stop_when is not None and stop_when(arch, scores[arch]):
                result.stopped = "target"
        if result.stopped == "target":
            break
    return result


def search(
    score: ScoreFn,
    primitives: str,
    layers: int,
    *,
    engine: str = "bo",
    budget: int = 40,
    strategy: str = "one-shot",
    step: int = 2,
    seed: int = 0,
    batch: int = 1,
    on_result: Callable[[str, float], None] | None = None,
    **engine_options,
) -> SearchResult:
    """Search ``layers``-layer architectures over ``primitives`` with one of :data:`STRATEGIES`.

    Parameters
    ----------
    score : callable
        Maps a list of architectures to ``{arch: score}`` (higher is better).
    primitives : str
        The symbols to search over, e.g. ``"AM"``.
    layers : int
        Length of the final architecture.
    engine : str
        One of :data:`frugalml.composer.engines.ENGINES`.
    budget : int
        Distinct evaluations in total (split evenly over the rounds of incremental strategies).
    strategy : str
        ``one-shot`` searches all layers at once; ``end-incremental`` appends ``step`` searched
        layers to the best prefix each round; ``middle-incremental`` inserts ``step`` searched
        layers in the middle of the best architecture so far.
    step : int
        Layers searched per round of the incremental strategies.
    seed : int
        Seed of the engine.
    batch : int
        Candidates proposed before scoring (parallel executors).

    Examples
    --------
    >>> table = lambda archs: {a: a.count("A") - abs(a.count("A") - 2) for a in archs}
    >>> search(table, "AM", 4, engine="exhaustive", budget=16).best[1]
    2
    """
    one_of(strategy, STRATEGIES, "strategy")
    if layers < 1:
        raise InvalidInputError(f"layers must be at least 1, got {layers}")
    if budget < 1:
        raise InvalidInputError(f"budget must be at least 1 evaluation, got {budget}")
    if strategy == "one-shot":
        eng = make_engine(engine, Space(primitives, layers), seed, **engine_options)
        return run_engine(eng, score, budget, batch=batch, on_result=on_result)
    if not 1 <= step <= layers:
        raise InvalidInputError(f"step must be between 1 and layers ({layers}), got {step}")
    rounds = math.ceil(layers / step)
    known: dict[str, float] = {}
    total = SearchResult()
    best = ""
    place = _append if strategy == "end-incremental" else _insert_middle
    for r in range(rounds):
        width = min(step, layers - len(best))
        share = max(1, (budget - len(total.history)) // (rounds - r))
        eng = make_engine(engine, Space(primitives, width), seed + r, **engine_options)
        part = run_engine(
            eng, score, share, compose=partial(place, best), batch=batch, known=known, on_result=on_result
        )
        total.history += part.history
        best = max((a for a in known if len(a) == len(best) + width), key=known.__getitem__)
    return total


def _append(base: str, free: str) -> str:
    return base + free


def _insert_middle(base: str, free: str) -> str:
    middle = len(base) // 2
    return base[:middle] + free + base[middle:]
