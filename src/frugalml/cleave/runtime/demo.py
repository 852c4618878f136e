"""A short local run for ``frugal demo``: a PS and two worker processes train the tiny GPT for a few steps."""

from __future__ import annotations

import statistics

from frugalml.cleave.runtime.local import LocalCluster


def run_local(steps: int = 5, workers: int = 2, quiet: bool = True, timeout: float = 55.0) -> str:
    """Start a PS and ``workers`` workers on localhost, train ``steps`` steps; return a one-line summary.

    Examples
    --------
    >>> run_local(steps=3)   # doctest: +SKIP
    'PS + 2 gRPC workers, tiny GPT 3 steps: loss 4.288 -> 3.767, 0.12 s/step, 0.71 MB down / ...'
    """
    with LocalCluster(quiet=quiet) as cluster:
        cluster.start_server(steps=steps, min_workers=workers)
        for i in range(workers):
            cluster.start_worker(f"device-{i + 1}")
        metrics = cluster.wait_server(timeout=timeout)
        cluster.wait_workers(timeout=5)
    losses = metrics["losses"]
    per_worker = metrics["workers"]
    down = statistics.mean(w["bytes_down"] for w in per_worker) / steps / 1e6
    up = statistics.mean(w["bytes_up"] for w in per_worker) / steps / 1e6
    return (
        f"PS + {workers} gRPC workers, tiny GPT {steps} steps: loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
        f"{statistics.median(metrics['step_seconds']):.2f} s/step, {down:.2f} MB down / {up:.2f} MB up "
        f"per worker per step"
    )
