"""``frugal demo`` for maskedmm: speedup over numpy at a few sparsities, one thread (< 60 s)."""

from __future__ import annotations

SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.99)


def measure(n: int = 768, sparsities=SPARSITIES, rounds: int = 9) -> list[tuple[float, float, float]]:
    """(sparsity, speedup of auto with B prepared, speedup of auto with B as given) vs numpy."""
    import time

    from threadpoolctl import threadpool_limits

    from frugalml.common.timing import compare
    from frugalml.maskedmm import core, patterns

    def one(sparsity: float) -> tuple[float, float, float]:
        A, B = patterns.operands("random", n, sparsity, seed=3)
        prepared = core.prepare_b(B, threads=1)
        masked = compare(
            lambda: core.matmul(A, prepared, method="auto", threads=1),
            lambda: A @ B,
            rounds=rounds,
            clock=time.thread_time,
        )
        auto = compare(
            lambda: core.matmul(A, B, method="auto", threads=1),
            lambda: A @ B,
            rounds=rounds,
            clock=time.thread_time,
        )
        return sparsity, masked.ratio, auto.ratio

    with threadpool_limits(limits=1):
        return [one(s) for s in sparsities]


def summary(rows, n: int = 768) -> str:
    parts = ", ".join(f"{s:.0%}: {m:.2f}x (B per call {a:.2f}x)" for s, m, a in rows)
    return f"{n}^3 fp32, 1 thread (thread time), auto's speedup vs numpy with B prepared at zeros {parts}"


def run(quiet: bool = False) -> str:
    """Measure and return a one-line summary of the speedups."""
    return summary(measure())
