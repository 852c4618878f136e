"""The workload every claim is measured on: one model, batch and pool of mixed edge devices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from frugalml.cleave.devices import Pool, make_pool
from frugalml.cleave.models import ModelSpec, load_model
from frugalml.cleave.opgraph import OpGraph, build_graph
from frugalml.cleave.traces import TraceSet

SYSTEM = "cleave"


@dataclass
class Setup:
    """What the claims share: the model, the batch, the main pool and how to draw other pools."""

    model: str
    batch: int
    seq: int
    devices: int
    seed: int
    traces: TraceSet | None
    quiet: bool
    spec: ModelSpec
    graph: OpGraph
    pool: Pool

    @classmethod
    def build(
        cls,
        model: str,
        batch: int,
        seq: int,
        devices: int,
        *,
        seed: int = 0,
        traces: TraceSet | None = None,
        quiet: bool = True,
    ) -> Setup:
        """Load ``model``, build its op graph for ``batch`` x ``seq`` tokens, draw ``devices`` devices."""
        spec = load_model(model)
        pool = make_pool(devices, seed=seed, traces=traces)
        return cls(model, batch, seq, devices, seed, traces, quiet, spec, build_graph(spec, batch, seq), pool)

    def make(self, n: int) -> Pool:
        """A pool of ``n`` devices drawn like the main one (same seed and traces)."""
        return make_pool(n, seed=self.seed, traces=self.traces)

    @property
    def workload(self) -> str:
        return f"{self.model} {self.batch}x{self.seq} tokens, mixed phone/laptop/edge pool"

    @property
    def on_pool(self) -> str:
        """The workload on the main pool, as records name it."""
        return f"{self.workload}, {self.devices} devices"


def mean_finite(values: Iterable[float]) -> float:
    """The mean of the finite values (nan when there is none).

    Examples
    --------
    >>> mean_finite([1.0, float("nan"), 3.0])
    2.0
    """
    array = np.asarray(list(values), dtype=float)
    array = array[np.isfinite(array)]
    return float(array.mean()) if len(array) else float("nan")
