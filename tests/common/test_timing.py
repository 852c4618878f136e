import time

import pytest

from frugalml.common.report import Record
from frugalml.common.timing import compare


def test_ratio_of_two_known_workloads():
    fast = lambda: time.sleep(0.001)  # noqa: E731
    slow = lambda: time.sleep(0.030)  # noqa: E731
    c = compare(fast, slow, rounds=5, warmup=1)
    assert 2.5 < c.ratio < 40, c.to_dict()  # wide: sleeps overshoot on a loaded machine
    assert len(c.ours.samples) == len(c.peer.samples) == 5
    assert c.ours.min <= c.ours.median <= c.ours.max
    assert "blas" in c.threads


def test_ratio_below_one_when_ours_is_slower():
    c = compare(lambda: time.sleep(0.030), lambda: time.sleep(0.001), rounds=3, warmup=0)
    assert c.ratio < 0.6, c.to_dict()


def test_interleaving_alternates_order():
    calls = []
    compare(lambda: calls.append("o"), lambda: calls.append("p"), rounds=4, warmup=0)
    assert calls == ["o", "p", "p", "o", "o", "p", "p", "o"]


def test_alternate_order_makes_every_timed_call_follow_the_other_contender():
    calls = []
    ticks = iter(range(1000))
    ours, peer = lambda: calls.append("o"), lambda: calls.append("p")
    c = compare(ours, peer, rounds=4, clock=lambda: next(ticks), order="alternate")
    assert calls == ["o", "p"] * 5  # one warm-up call each, then strictly alternating
    assert c.rounds == 4 and len(c.ours.samples) == len(c.peer.samples) == 4
    with pytest.raises(ValueError, match="order"):
        compare(lambda: None, lambda: None, order="random")


def test_record_ratio_orientation():
    latency = Record("x", "w", "time", "s", ours=1.0, peer="p", peer_value=3.0)
    accuracy = Record("x", "w", "f1", "", ours=0.9, peer="p", peer_value=0.6, higher_is_better=True)
    assert latency.ratio == 3.0
    assert accuracy.ratio == 1.5
    assert Record("x", "w", "f1", "", ours=0.9).ratio is None


def test_thread_time_clock_ignores_sleeping():
    busy = lambda: sum(range(20000))  # noqa: E731
    c = compare(busy, lambda: (time.sleep(0.01), busy()), rounds=3, warmup=0, clock=time.thread_time)
    assert 0.2 < c.ratio < 5, c.to_dict()
