"""CPU speed behind ``frugal sparse24 speed``: mask costs vs torch.topk, emulation overhead vs plain
dense torch, the V:N:M gather matmul vs dense, router quality and analytic FLOPs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from frugalml.common.report import Record
from frugalml.sparse24.backends import vnm_gather_matmul
from frugalml.sparse24.bench.shared import FFN_SHAPES, SYSTEM, timed
from frugalml.sparse24.layers import SquaredReLUFFN
from frugalml.sparse24.masks import (
    VNM,
    mask_24,
    soft_threshold_24,
    transposable_mask_24,
    vnm_columns,
    vnm_mask,
)
from frugalml.sparse24.swap import sparsify_ffn


def _topk_reference(x: torch.Tensor, group: int) -> Callable[[], torch.Tensor]:
    groups = x.abs().reshape(-1, group)
    return lambda: torch.zeros_like(groups, dtype=torch.bool).scatter_(
        -1, groups.topk(2, dim=-1).indices, True
    )


def mask_costs(
    rows: int = 2048, cols: int = 2048, tokens: int = 4096, rounds: int = 5, seed: int = 0
) -> list[Record]:
    """Time of each mask against one torch.topk(2)+scatter pass over the same tensor's groups."""
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=generator)
    h = F.relu(torch.randn(tokens, cols, generator=generator)).square()
    peer = "torch.topk(2) + scatter over the same groups (the floor for a top-2 mask)"
    note = "ratio < 1 means the mask costs more than one top-k pass"
    return [
        timed(
            "mask 2:4 magnitude",
            f"{rows}x{cols}",
            lambda: mask_24(w, validate=False),
            _topk_reference(w, 4),
            peer,
            rounds,
            note,
        ),
        timed(
            "mask S-STE soft threshold",
            f"{rows}x{cols}",
            lambda: soft_threshold_24(w, validate=False),
            _topk_reference(w, 4),
            peer,
            rounds,
            note,
        ),
        timed(
            "mask transposable 2:4 (90 patterns)",
            f"{rows}x{cols}",
            lambda: transposable_mask_24(w, validate=False),
            _topk_reference(w, 4),
            peer,
            rounds,
            note,
        ),
        timed(
            "mask V:N:M 64:2:8 router",
            f"{tokens}x{cols} activations",
            lambda: vnm_mask(h, "64:2:8", validate=False),
            _topk_reference(h, 8),
            peer,
            rounds,
            note,
        ),
        timed(
            "mask V:N:M 64:2:8 exact search (70 subsets)",
            f"{tokens}x{cols} activations",
            lambda: vnm_mask(h, "64:2:8", "exact", validate=False),
            _topk_reference(h, 8),
            peer,
            max(1, rounds // 2),
            note,
        ),
    ]


def router_quality(tokens: int = 4096, features: int = 1024, seed: int = 0) -> list[Record]:
    """Activation energy kept by the L1 router vs the exact search on random ReLU^2 data (16:2:8)."""
    generator = torch.Generator().manual_seed(seed)
    h = F.relu(torch.randn(tokens, features, generator=generator)).square()
    energy = {}
    for method in ("router", "exact"):
        mask = vnm_mask(h, "16:2:8", method)
        energy[method] = float((h.square() * mask).sum() / h.square().sum())
    return [
        Record(
            SYSTEM,
            f"V:N:M 16:2:8 kept energy, random ReLU^2 {tokens}x{features}",
            "kept energy",
            "fraction",
            energy["router"],
            peer="exact search (ours)",
            peer_value=energy["exact"],
            higher_is_better=True,
            notes="paper (VENOM router note): router 0.801 vs exact 0.807 on random ReLU^2 data",
        )
    ]


def ffn_flops(
    tokens: int, dim: int, hidden: int, pattern: str = "vnm:64:2:8", mvue: bool = False
) -> dict[str, float]:
    """Analytic FLOPs of a squared-ReLU FFN forward+backward, dense and with 2:4 weights (transposable)
    plus V:N:M activations, counting each matmul at the density of its reduction-dim sparse operand.
    """
    vnm = VNM.parse(pattern)
    mm = 2.0 * tokens * dim * hidden  # one matmul of the FFN
    grad = 0.5 if mvue else 1.0
    sparse = mm * (0.5 + 0.5 + grad + vnm.density + 0.5 + grad)  # fwd1 dX1 dW1 fwd2 dH dW2
    return {"dense": 6 * mm, "sparse": sparse, "fraction": sparse / (6 * mm)}


def flop_records(tokens: int = 8192) -> list[Record]:
    records = []
    for name, (dim, hidden) in FFN_SHAPES.items():
        for mvue in (False, True):
            f = ffn_flops(tokens, dim, hidden, mvue=mvue)
            records.append(
                Record(
                    SYSTEM,
                    f"analytic FFN fwd+bwd FLOPs {name} ({dim}->{hidden}, {tokens} tokens), "
                    f"2:4 weights + vnm:64:2:8{' + MVUE' if mvue else ''}",
                    "FLOPs",
                    "TFLOP",
                    f["sparse"] / 1e12,
                    peer="dense FFN",
                    peer_value=f["dense"] / 1e12,
                    notes="ideal upper bound on speedup: each matmul counted at the density of its "
                    "reduction-dim sparse operand; not a measured time",
                )
            )
    return records


def emulation_overhead(
    tokens: int = 2048, dim: int = 256, hidden: int = 1024, rounds: int = 7, seed: int = 0
) -> list[Record]:
    """Training-step (fwd+bwd) time of the masked-dense sparse FFN vs the plain dense torch FFN."""
    torch.manual_seed(seed)
    dense = SquaredReLUFFN(dim, hidden)
    x = torch.randn(tokens, dim, requires_grad=True)

    def step(module):
        return lambda: module(x).square().mean().backward()

    records = []
    for label, options in (("2:4 weights + vnm:64:2:8", {}), ("2:4 weights only", {"activations": None})):
        sparse = sparsify_ffn(copy.deepcopy(dense), **options)
        records.append(
            timed(
                f"emulated sparse FFN fwd+bwd ({label})",
                f"{tokens} tokens, {dim}->{hidden}",
                step(sparse),
                step(dense),
                "plain dense torch FFN (nn.Linear)",
                rounds,
                "CPU emulation computes dense matmuls plus masks: it checks quality, it is "
                "not meant to be faster",
            )
        )
    return records


def vnm_gather_speed(
    tokens: int = 4096,
    features: int = 2048,
    out: int = 1024,
    rounds: int = 7,
    seed: int = 0,
    device: str = "cpu",
    dtype=torch.float32,
) -> Record:
    """V:N:M 64:2:8 gather+bmm matmul vs the dense matmul of the same (masked) activations."""
    generator = torch.Generator().manual_seed(seed)
    h = F.relu(torch.randn(tokens, features, generator=generator)).square()
    h = (h * vnm_mask(h, "64:2:8")).to(device, dtype)
    w = (torch.randn(out, features, generator=generator) / math.sqrt(features)).to(device, dtype)
    columns = vnm_columns(h.float(), "64:2:8")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def ours():
        vnm_gather_matmul(h, w, "64:2:8", columns)
        sync()

    def peer():
        F.linear(h, w)
        sync()

    return timed(
        "V:N:M 64:2:8 gather+bmm matmul",
        f"{tokens}x{features} @ {features}x{out} {dtype} on {device}",
        ours,
        peer,
        f"dense torch matmul ({device})",
        rounds,
        "column choice precomputed; 4/M = 50% of the dense FLOPs",
    )


def cpu_speed(quick: bool = False) -> list[Record]:
    """Everything meaningful on a CPU: mask costs, router quality, emulation overhead, gather matmul,
    analytic FLOPs. ``quick`` shrinks the shapes (for tests of this code path)."""
    if quick:
        return [
            *mask_costs(256, 256, 512, rounds=1),
            *router_quality(256, 64),
            *emulation_overhead(256, 64, 256, rounds=1),
            vnm_gather_speed(256, 256, 64, rounds=1),
            *flop_records(),
        ]
    return [*mask_costs(), *router_quality(), *emulation_overhead(), vnm_gather_speed(), *flop_records()]
