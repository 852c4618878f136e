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
) -> Comparison:
    """Time ``ours`` and ``peer`` interleaved: warm both up, then alternate who goes first.

    Each round runs both contenders once (``number`` calls each), ABBA-ordered so neither always
    benefits from a cache the other warmed. Noise from other work on the machine shows in
    min/max; the medians are robust to it. ``clock=time.thread_time`` measures the CPU time of
    the calling thread only: for single-threaded contenders on a busy machine it ignores the time
    other processes take from us (it misses work done on other threads).

    Examples
    --------
    >>> c = compare(lambda: sum(range(1000)), lambda: sum(range(4000)), rounds=5)
    >>> c.ratio > 1
    True
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    for _ in range(warmup):
        ours()
        peer()
    ours_samples: list[float] = []
    peer_samples: list[float] = []
    for r in range(rounds):
        order = ((ours, ours_samples), (peer, peer_samples))
        for fn, samples in order if r % 2 == 0 else reversed(order):
            samples.append(time_call(fn, number=number, clock=clock))
    return Comparison(Timing.of(ours_samples), Timing.of(peer_samples), rounds, warmup, thread_settings())
