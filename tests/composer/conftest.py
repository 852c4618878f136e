"""Fixtures for composer tests: one torch thread, and a cheap deterministic proxy for search tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch.set_num_threads(1)


class FormulaProxy:
    """A proxy whose score is a closed-form function of the architecture (fast, for search tests).

    ``crash_after`` makes ``evaluate`` raise after that many calls, simulating a killed search.
    """

    name = "formula"

    def __init__(self, crash_after: int | None = None):
        self.crash_after = crash_after
        self.calls = 0

    def config(self) -> dict:
        return {"formula": "attention early, ratio 1:2"}

    def evaluate(self, arch: str, seed: int) -> dict:
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise KeyboardInterrupt("simulated crash")
        early = sum(1.0 / (i + 1) for i, c in enumerate(arch) if c == "A")
        ratio = -abs(arch.count("A") / len(arch) - 1 / 3)
        return {"score": early + 3 * ratio + 0.01 * seed}
