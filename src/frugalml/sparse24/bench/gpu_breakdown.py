"""GPU per-GEMM breakdown of one 2:4 Linear: the three GEMMs dense vs cuSPARSELt and what the sparse
path adds per step (pruning, packing ``P`` and ``P^T``, learning a held mask's gather).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from frugalml.common.report import Record
from frugalml.sparse24.backends import (
    CUSPARSELT,
    CUSPARSELT_ALG0,
    PackedLayout,
    fused_greedy_prune,
    sparse_times_dense_t,
)
from frugalml.sparse24.bench.shared import FFN_SHAPES, SYSTEM, gpu_seconds, guarded
from frugalml.sparse24.masks import transposable_mask_24
from frugalml.sparse24.packing import rule_layout

FWD_DENSE = "forward X W^T dense"
FWD_SPARSE = "forward X P^T cuSPARSELt (searched alg)"
DX_DENSE = "dX = dY W dense"
DX_SPARSE = "dX = dY P cuSPARSELt (searched alg)"
DW_DENSE = "dW = dY^T X dense"
PRUNE = "prune: torch fused greedy tile kernel"
PACK_P = "pack P (_cslt_compress)"
PACK_PT = "pack P^T (transpose + _cslt_compress)"
PACK_GATHER = "pack P and P^T by the learned gather (held mask)"
LEARN_GATHER = "learn the gather (once per held mask)"
PACK_RULE = "pack P and P^T by the shape rule (new mask: layout + gather)"
GEMM_PEERS = {
    FWD_SPARSE: FWD_DENSE,
    "forward X P^T cuSPARSELt (alg 0)": FWD_DENSE,
    DX_SPARSE: DX_DENSE,
    "dX = dY P cuSPARSELt (alg 0)": DX_DENSE,
}


@dataclass(frozen=True)
class Operands:
    """One shape's tensors: weight ``w``, input ``x``, output gradient ``dy`` (bf16 on CUDA), the pruned
    weight, its packed ``P`` and ``P^T`` and the gather learned for its mask."""

    w: torch.Tensor
    x: torch.Tensor
    dy: torch.Tensor
    pruned: torch.Tensor
    packed: torch.Tensor
    packed_t: torch.Tensor
    layout: PackedLayout

    @classmethod
    def random(cls, tokens: int, dim: int, hidden: int) -> Operands:
        torch.manual_seed(0)
        w = torch.randn(hidden, dim, device="cuda", dtype=torch.bfloat16)
        x = torch.randn(tokens, dim, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(tokens, hidden, device="cuda", dtype=torch.bfloat16)
        pruned = fused_greedy_prune(w)
        packed, packed_t = CUSPARSELT.compress(pruned), CUSPARSELT.compress(pruned.t().contiguous())
        return cls(w, x, dy, pruned, packed, packed_t, PackedLayout.learn(pruned != 0, w.dtype, True))


def op_times(ops: Operands) -> dict[str, float]:
    """Seconds per call of each GEMM (dense and cuSPARSELt) and each per-step overhead."""
    w, x, dy, pruned = ops.w, ops.x, ops.dy, ops.pruned
    return {
        FWD_DENSE: gpu_seconds(lambda: F.linear(x, w)),
        FWD_SPARSE: gpu_seconds(lambda: sparse_times_dense_t(ops.packed, x, None)),
        "forward X P^T cuSPARSELt (alg 0)": gpu_seconds(
            lambda: sparse_times_dense_t(ops.packed, x, None, CUSPARSELT_ALG0)
        ),
        DX_DENSE: gpu_seconds(lambda: dy @ w),
        DX_SPARSE: gpu_seconds(lambda: sparse_times_dense_t(ops.packed_t, dy, None)),
        "dX = dY P cuSPARSELt (alg 0)": gpu_seconds(
            lambda: sparse_times_dense_t(ops.packed_t, dy, None, CUSPARSELT_ALG0)
        ),
        DW_DENSE: gpu_seconds(lambda: dy.t() @ x),
        PRUNE: gpu_seconds(lambda: fused_greedy_prune(w)),
        "prune: ours greedy (torch ops)": gpu_seconds(
            lambda: w * transposable_mask_24(w, False, "greedy"), iters=2, repeats=3
        ),
        "prune: ours exact 90 patterns (torch ops)": gpu_seconds(
            lambda: w * transposable_mask_24(w, False), iters=2, repeats=3
        ),
        PACK_P: gpu_seconds(lambda: CUSPARSELT.compress(pruned)),
        PACK_PT: gpu_seconds(lambda: CUSPARSELT.compress(pruned.t().contiguous())),
        PACK_GATHER: gpu_seconds(lambda: ops.layout.pack(w, True)),
        LEARN_GATHER: gpu_seconds(lambda: PackedLayout.learn(pruned != 0, w.dtype, True), iters=1, repeats=3),
        PACK_RULE: gpu_seconds(lambda: rule_layout(pruned != 0, w.dtype, True).pack(pruned, True), iters=5),
    }


class LinearStep(NamedTuple):
    """One Linear's fwd+bwd as a sum of parts: the 3 dense GEMMs, the sparse path's GEMMs (2 on
    cuSPARSELt, dense dW) and its per-step overhead under each way of handling the mask."""

    dense: float
    gemms: float
    overheads: dict[str, float]

    @classmethod
    def from_times(cls, times: dict[str, float]) -> LinearStep:
        gather, refresh = times[PACK_GATHER], times[PRUNE] + times[LEARN_GATHER]
        overheads = {
            "mask every step": times[PRUNE] + times[PACK_P] + times[PACK_PT],
            "mask every step, shape-rule packing": times[PRUNE] + times[PACK_RULE],
            "mask held 10 steps": gather + refresh / 10,
            "mask held 100 steps": gather + refresh / 100,
            "GEMMs only": 0.0,
        }
        dense = times[FWD_DENSE] + times[DX_DENSE] + times[DW_DENSE]
        return cls(dense, times[FWD_SPARSE] + times[DX_SPARSE] + times[DW_DENSE], overheads)


def breakdown_records(shape: str, workload: str, times: dict[str, float], device: str) -> list[Record]:
    """One record per op (sparse GEMMs against their dense peer), then one per step variant."""
    records = [
        Record(
            SYSTEM,
            f"GEMM breakdown {workload}: {op}",
            "time",
            "s",
            t,
            peer=GEMM_PEERS.get(op),
            peer_value=times[GEMM_PEERS[op]] if op in GEMM_PEERS else None,
            higher_is_better=False,
            notes=f"{device}; CUDA events, median of 5 x 10 calls",
        )
        for op, t in times.items()
    ]
    step = LinearStep.from_times(times)
    for label, overhead in step.overheads.items():
        records.append(
            Record(
                SYSTEM,
                f"GEMM breakdown {shape}: one Linear fwd+bwd, sum of parts, {label}",
                "time",
                "s",
                step.gemms + overhead,
                peer="dense: 3 GEMMs",
                peer_value=step.dense,
                higher_is_better=False,
                notes=f"{device}; 2 cuSPARSELt GEMMs + dense dW + per-step overhead {overhead * 1e3:.3f} ms",
            )
        )
    return records


def gpu_breakdown(tokens: int = 8192) -> list[Record]:
    """Per-GEMM and per-step-overhead times of one 2:4 Linear at each FFN shape (W: hidden x dim).

    The three GEMMs of a Linear (forward ``X W^T``, ``dX = dY W``, ``dW = dY^T X``) dense vs
    cuSPARSELt (searched and default algorithm), and what the sparse path adds per step: pruning
    (torch's fused greedy tile kernel; our exact and greedy masks in torch ops), packing ``P`` and
    ``P^T`` with ``_cslt_compress``, or with a held mask by the learned gather (learning it once).
    """
    device = torch.cuda.get_device_name(0)
    records = []
    for shape, (dim, hidden) in FFN_SHAPES.items():

        def items(dim=dim, hidden=hidden, shape=shape):
            times = op_times(Operands.random(tokens, dim, hidden))
            workload = f"{shape} W {hidden}x{dim}, {tokens} tok bf16"
            return breakdown_records(shape, workload, times, device)

        records += guarded(f"GEMM breakdown {shape}", items)
    return records
