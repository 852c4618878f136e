"""What every sparse24 benchmark shares: the record's system name, the Llama FFN shapes, timing against
a peer, and the GPU tools (CUDA-event timing, error ratios, the sparse variants measured on a GPU).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch

from frugalml.common.report import Record
from frugalml.common.timing import compare
from frugalml.sparse24.backends import cusparselt_status

SYSTEM = "sparse24"
FFN_SHAPES = {"llama-1b": (2048, 8192), "llama-7b": (4096, 11008)}


def timed(
    name: str, workload: str, ours: Callable, peer: Callable, peer_name: str, rounds: int, notes: str = ""
) -> Record:
    """Time ``ours`` against ``peer`` interleaved (see :func:`frugalml.common.timing.compare`)."""
    comparison = compare(ours, peer, rounds=rounds, warmup=1)
    return Record.from_comparison(
        comparison, system=SYSTEM, workload=f"{name}: {workload}", peer=peer_name, notes=notes
    )


FAST: dict[str, Any] = {
    "activations": None,
    "method": "ste",
    "transposable": True,
    "transposable_method": "greedy",
    "backend": "cusparselt",
    "flip_every": 0,
}
HELD = {**FAST, "mask_every": 10}
RULE = {**FAST, "packing": "rule"}
VARIANTS: dict[str, dict[str, Any]] = {
    "mask every step (fused greedy prune + _cslt_compress)": FAST,
    "mask held 10 steps (gather packing)": HELD,
    "exact 90-pattern mask every step": {**FAST, "transposable_method": "exact"},
    "mask every step, shape-rule packing (fused greedy prune + rule gather)": RULE,
}
STEP_VARIANTS = (
    "mask every step (fused greedy prune + _cslt_compress)",
    "mask held 10 steps (gather packing)",
    "mask every step, shape-rule packing (fused greedy prune + rule gather)",
)


def gpu_skip(label: str = "GPU benchmarks") -> list[Record] | None:
    """A 'skipped' record (with the reason) when cuSPARSELt cannot run here, else None."""
    ok, reason = cusparselt_status()
    return None if ok else [Record(SYSTEM, label, "skipped", "", 0.0, notes=f"not run: {reason}")]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


class TorchTileSparsify(torch.autograd.Function):
    """torchao SemiSparseLinear's recipe on torch core: the fused tile kernel prunes ``w`` and packs it
    and ``w^T`` (cuSPARSELt or CUTLASS layout) every call; straight-through gradient."""

    @staticmethod
    def forward(ctx, w, use_cutlass):
        from torch.sparse import SparseSemiStructuredTensorCUSPARSELT, SparseSemiStructuredTensorCUTLASS

        cls = SparseSemiStructuredTensorCUTLASS if use_cutlass else SparseSemiStructuredTensorCUSPARSELT
        return cls.prune_dense_static_sort(w, algorithm="largest_abs_values_greedy")

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def guarded(label: str, fn: Callable[[], list[Record]]) -> list[Record]:
    """Run one GPU item; a failure becomes a 'failed' record instead of stopping the run."""
    try:
        return fn()
    except Exception as exc:  # one failed GPU item must not lose the others' numbers
        return [Record(SYSTEM, label, "failed", "", 0.0, notes=f"{type(exc).__name__}: {exc}"[:400])]


def gpu_seconds(fn: Callable[[], Any], iters: int = 10, repeats: int = 5) -> float:
    """Median seconds per call of ``fn`` by CUDA events (``repeats`` x ``iters`` calls after warm-up)."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1000 / iters)
    return statistics.median(samples)


def cuda_calls(fn: Callable[[], Any], calls: int) -> Callable[[], Any]:
    """``fn`` called ``calls`` times, then a CUDA sync: one timed sample of a GPU comparison."""

    def run():
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()

    return run
