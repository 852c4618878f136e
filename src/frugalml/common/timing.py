"""The one way we compare against a peer: interleaved rounds after warm-up, medians and a ratio."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from frugalml.common.env import thread_settings


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one contender over the measured rounds."""

    median: float
    min: float
    max: float
    samples: list[float]

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        return cls(statistics.median(samples), min(samples), max(samples), list(samples))


@dataclass(frozen=True)
class Comparison:
    """Ours against a peer, measured in one run. ``ratio`` = peer median / our median (>1: we win)."""

    ours: Timing
    peer: Timing
    rounds: int
    warmup: int
    threads: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.peer.median / self.ours.median

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def time_call(
    fn: Callable[[], Any], *, number: int = 1, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Seconds per call of ``fn``, averaged over ``number`` back-to-back calls, by ``clock``."""
    start = clock()
    for _ in range(number):
        fn()
    return (clock() - start) / number


def compare(
    ours: Callable[[], Any],
    peer: Callable[[], Any],
    *,
    rounds: int = 7,
    warmup: int = 1,
    number: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    order: str = "abba",
) -> Comparison:
    """Time ``ours`` and ``peer`` interleaved: warm both up, then alternate who goes first.

    Each round runs both contenders once (``number`` calls each), ABBA-ordered so neither always
    benefits from a cache the other warmed. ``order="alternate"`` runs ours, peer, ours, peer, ...
    instead, so every timed call follows one of the other contender: use it where a call right
    after its own contender's call runs faster (e.g. two copies of a small model, whose weights
    stay in cache), since ABBA would split each contender's samples into two modes and put the
    median on the edge between them. Noise from other work on the machine shows in min/max; the
    medians are robust to it. ``clock=time.thread_time`` measures the CPU time of the calling
    thread only: for single-threaded contenders on a busy machine it ignores the time other
    processes take from us (it misses work done on other threads).

    Examples
    --------
    >>> c = compare(lambda: sum(range(1000)), lambda: sum(range(4000)), rounds=5)
    >>> c.ratio > 1
    True
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    if order not in ("abba", "alternate"):
        raise ValueError(f"order must be 'abba' or 'alternate', not {order!r}")
    for _ in range(warmup):
        ours()
        peer()
    ours_samples: list[float] = []
    peer_samples: list[float] = []
    for r in range(rounds):
        pair = ((ours, ours_samples), (peer, peer_samples))
        for fn, samples in pair if order == "alternate" or r % 2 == 0 else reversed(pair):
            samples.append(time_call(fn, number=number, clock=clock))
    return Comparison(Timing.of(ours_samples), Timing.of(peer_samples), rounds, warmup, thread_settings())
