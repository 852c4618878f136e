"""GPU correctness checks: every cuSPARSELt 2:4 path against dense bf16, the mask-independent packing
rule against ``_cslt_compress``, and the Triton V:N:M kernel against the gather and mask paths.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from frugalml.common.report import Record
from frugalml.sparse24.backends import (
    CUSPARSELT,
    PackedLayout,
    SparseKernels,
    fused_greedy_prune,
    vnm_gather_matmul,
)
from frugalml.sparse24.bench.shared import (
    FAST,
    FFN_SHAPES,
    SYSTEM,
    VARIANTS,
    TorchTileSparsify,
    gpu_seconds,
    gpu_skip,
    guarded,
    relative_error,
)
from frugalml.sparse24.layers import SparseLinear, SparsityConfig, SquaredReLUFFN
from frugalml.sparse24.masks import transposable_mask_24, vnm_columns, vnm_mask
from frugalml.sparse24.packing import ShapeRule
from frugalml.sparse24.swap import sparsify_ffn


def gpu_numerics(tokens: int = 1004, dim: int = 1024, hidden: int = 4096) -> list[Record]:
    """Relative max error of every 2:4 path against a dense bf16 matmul with the same pruned weight.

    ``tokens`` is not a multiple of 8 on purpose (the padding path). The torch tile-kernel rows show
    whether its packed cuSPARSELt layout is right on this GPU (torch tests it on SM8x only).
    """
    name = torch.cuda.get_device_name(0)
    torch.manual_seed(0)
    x = torch.randn(tokens, dim, device="cuda", dtype=torch.bfloat16)
    grad = torch.randn(tokens, hidden, device="cuda", dtype=torch.bfloat16)
    records = []

    def record(label: str, error: float, note: str) -> None:
        records.append(
            Record(
                SYSTEM,
                f"numerics: {label} ({tokens} tok, {dim}->{hidden}, bf16)",
                "max abs error / max abs reference",
                "fraction",
                error,
                notes=f"{name}; {note}; bf16 rounding alone gives < ~1e-2",
            )
        )

    for label, options in VARIANTS.items():

        def layer_check(label=label, options=options):
            base = torch.nn.Linear(dim, hidden, device="cuda", dtype=torch.bfloat16)
            layer = SparseLinear.from_dense(base, SparsityConfig(**options))
            layer(x)  # a held mask is learned here; the measured forward packs by the gather
            with torch.no_grad():
                base.weight.add_(torch.randn_like(base.weight), alpha=0.01)
            xg = x.clone().requires_grad_()
            y = layer(xg)
            y.backward(grad)
            mask = layer._held[0] if layer._held is not None else layer._prune(base.weight.detach()) != 0
            pruned = base.weight.detach() * mask
            record(
                f"ours forward, {label}",
                relative_error(y, F.linear(x, pruned, base.bias)),
                "y = x P^T + b vs dense with P",
            )
            record(f"ours dX = dY P, {label}", relative_error(xg.grad, grad @ pruned), "through packed P^T")
            record(
                f"ours dW = dY^T X, {label}",
                relative_error(base.weight.grad, grad.t() @ x),
                "dense weight gradient, straight through",
            )
            return []

        records += guarded(f"numerics {label}", layer_check)

    def layout_check():
        w = torch.randn(hidden, dim, device="cuda", dtype=torch.bfloat16)
        mask = fused_greedy_prune(w) != 0
        layout = PackedLayout.learn(mask, w.dtype, True)
        w2 = torch.randn_like(w)
        packed, packed_t = layout.pack(w2, backward=True)
        same = float((packed == CUSPARSELT.compress(w2 * mask)).float().mean())
        same_t = float((packed_t == CUSPARSELT.compress((w2 * mask).t().contiguous())).float().mean())
        return [
            Record(
                SYSTEM,
                f"gather packing vs _cslt_compress ({hidden}x{dim} bf16, P and P^T)",
                "identical packed elements",
                "fraction",
                min(same, same_t),
                notes=f"{name}; P {same:.6f}, P^T {same_t:.6f}; 1.0 = bit-identical",
            )
        ]

    records += guarded("numerics gather packing", layout_check)

    def ffn_check():
        base = SquaredReLUFFN(dim, hidden).to("cuda", torch.bfloat16)
        emulated = copy.deepcopy(base)
        sparsify_ffn(emulated, activations=None, method="ste", transposable=True)
        sparsify_ffn(base, **{**FAST, "transposable_method": "exact"})
        record(
            "FFN cusparselt vs emulate (exact mask both)",
            relative_error(base(x), emulated(x)),
            "both through our packing (torch's tile-kernel packing is checked on its own below)",
        )
        w = base.w1.weight.detach()
        agree = float(
            (transposable_mask_24(w, method="greedy") == (fused_greedy_prune(w) != 0)).float().mean()
        )
        return [
            Record(
                SYSTEM,
                f"greedy mask: torch fused tile kernel vs ours ({hidden}x{dim} bf16)",
                "entries agreeing",
                "fraction",
                agree,
                notes=f"{name}; differences are ties",
            )
        ]

    records += guarded("numerics FFN", ffn_check)

    def tile_check():
        w = torch.randn(hidden, dim, device="cuda", dtype=torch.bfloat16)
        y = F.linear(x, TorchTileSparsify.apply(w, False))
        record(
            "torch prune_dense_static_sort (cuSPARSELt packing) forward",
            relative_error(y, x @ fused_greedy_prune(w).t()),
            "torch's fused tile kernel packing; peer recipe",
        )
        return []

    records += guarded("numerics tile cuSPARSELt", tile_check)
    return records


def packing_agreement(
    mask: torch.Tensor,
    w: torch.Tensor,
    rule: ShapeRule,
    rule_t: ShapeRule,
    kernels: SparseKernels = CUSPARSELT,
) -> dict[str, float]:
    """Fraction of identical packed elements of the rule's P and P^T for ``mask`` and values ``w``
    against ``kernels.compress`` and against the per-mask learned gather."""
    pruned = torch.where(mask, w, 0)
    packed, packed_t = rule.layout(mask, rule_t).pack(w, backward=True)
    learned, learned_t = PackedLayout.learn(mask, w.dtype, True, kernels).pack(w, backward=True)

    def same(a, b):
        return float((a.view(torch.int16) == b.view(torch.int16)).float().mean())

    return {
        "P vs compress": same(packed, kernels.compress(pruned)),
        "P^T vs compress": same(packed_t, kernels.compress(pruned.t().contiguous())),
        "P vs learned gather": same(packed, learned),
        "P^T vs learned gather": same(packed_t, learned_t),
    }


def gpu_packing_rule(shapes: dict[str, tuple[int, int]] | None = None) -> list[Record]:
    """The mask-independent packing rule on the real ``_cslt_compress``: learned (and self-checked) once
    per weight shape, then for a fresh greedy-transposable mask: identical packed elements vs
    ``_cslt_compress`` and vs the per-mask learned gather (P and P^T), and the time to build a mask's
    layout by the rule vs learning it per mask, and to pack P and P^T by the gather vs compressing."""
    skipped = gpu_skip("packing rule")
    if skipped:
        return skipped
    name, records = torch.cuda.get_device_name(0), []
    for shape, (dim, hidden) in (shapes or FFN_SHAPES).items():

        def items(dim=dim, hidden=hidden, shape=shape):
            start = time.perf_counter()
            rule, rule_t = (
                ShapeRule.learn(hidden, dim, torch.bfloat16, "cuda"),
                ShapeRule.learn(dim, hidden, torch.bfloat16, "cuda"),
            )
            torch.cuda.synchronize()
            learn_seconds = time.perf_counter() - start
            torch.manual_seed(1)
            w = torch.randn(hidden, dim, device="cuda", dtype=torch.bfloat16)
            mask = fused_greedy_prune(w) != 0
            w2 = torch.randn_like(w)
            agree = packing_agreement(mask, w2, rule, rule_t)
            pruned = torch.where(mask, w2, 0)
            workload = f"packing rule {shape} W {hidden}x{dim} bf16"
            identical = "identical packed elements"
            out = [
                Record(
                    SYSTEM,
                    f"{workload}: rule vs _cslt_compress, P and P^T",
                    identical,
                    "fraction",
                    min(agree["P vs compress"], agree["P^T vs compress"]),
                    notes=f"{name}; {agree}; 1.0 = bit-identical; the rule was learned on other masks",
                ),
                Record(
                    SYSTEM,
                    f"{workload}: rule vs learned gather, P and P^T",
                    identical,
                    "fraction",
                    min(agree["P vs learned gather"], agree["P^T vs learned gather"]),
                    notes=name,
                ),
                Record(
                    SYSTEM,
                    f"{workload}: learn the rule (once per shape, W and W^T, self-checked)",
                    "time",
                    "s",
                    learn_seconds,
                    notes=f"{name}; wall clock, one call each",
                ),
            ]
            times = {
                "build a mask's layout by the rule (P and P^T)": gpu_seconds(
                    lambda: rule.layout(mask, rule_t), iters=2, repeats=3
                ),
                "learn a mask's gather per mask (PackedLayout.learn)": gpu_seconds(
                    lambda: PackedLayout.learn(mask, w.dtype, True), iters=1, repeats=3
                ),
                "pack P and P^T by _cslt_compress (prune given)": gpu_seconds(
                    lambda: (CUSPARSELT.compress(pruned), CUSPARSELT.compress(pruned.t().contiguous()))
                ),
            }
            layout = rule.layout(mask, rule_t)
            times["pack P and P^T by the gather"] = gpu_seconds(lambda: layout.pack(w2, True))
            peer = "learn a mask's gather per mask (PackedLayout.learn)"
            for op, t in times.items():
                out.append(
                    Record(
                        SYSTEM,
                        f"{workload}: {op}",
                        "time",
                        "s",
                        t,
                        peer=peer if op.startswith("build") else None,
                        peer_value=times[peer] if op.startswith("build") else None,
                        higher_is_better=False,
                        notes=f"{name}; CUDA events, median",
                    )
                )
            return out

        records += guarded(f"packing rule {shape}", items)
    return records


def gpu_vnm_paths(
    tokens: int = 4096, dim: int = 1024, hidden: int = 4096, spec: str = "vnm:64:2:8"
) -> list[Record]:
    """The Triton V:N:M kernel against the gather and mask paths: raw matmul, and a squared-ReLU FFN's
    forward and backward with ``vnm_kernel`` triton / gather vs mask (same masks, bf16)."""
    skipped = gpu_skip("Triton V:N:M paths")
    if skipped:
        return skipped
    from frugalml.sparse24.vnm_kernel import triton_status, vnm_triton_matmul

    ok, reason = triton_status("cuda")
    if not ok:
        return [Record(SYSTEM, "Triton V:N:M paths", "skipped", "", 0.0, notes=f"not run: {reason}")]
    name, records = torch.cuda.get_device_name(0), []
    generator = torch.Generator(device="cuda").manual_seed(0)
    h = F.relu(torch.randn(tokens, hidden, device="cuda", generator=generator)).square()
    h = (h * vnm_mask(h, spec)).to(torch.bfloat16)
    w = (torch.randn(dim, hidden, device="cuda", generator=generator) / hidden**0.5).to(torch.bfloat16)
    columns = vnm_columns(h.float(), spec)
    triton_y = vnm_triton_matmul(h, w.t().contiguous(), spec, columns)
    for label, reference in (
        ("gather + bmm", vnm_gather_matmul(h, w, spec, columns)),
        ("mask (dense matmul of the masked input)", F.linear(h, w)),
    ):
        records.append(
            Record(
                SYSTEM,
                f"numerics: Triton V:N:M kernel vs {label}, {tokens}x{hidden} @ {hidden}x{dim} {spec} bf16",
                "max abs error / max abs reference",
                "fraction",
                relative_error(triton_y, reference),
                notes=f"{name}; bf16 rounding ~1e-2",
            )
        )
    x = torch.randn(tokens, dim, device="cuda", dtype=torch.bfloat16, generator=generator)
    grad = torch.randn(tokens, dim, device="cuda", dtype=torch.bfloat16, generator=generator)
    base = SquaredReLUFFN(dim, hidden).to("cuda", torch.bfloat16)
    outputs = {}
    for kernel in ("mask", "gather", "triton"):
        ffn = sparsify_ffn(copy.deepcopy(base), activations=spec, method="ste", vnm_kernel=kernel)
        xg = x.clone().requires_grad_()
        y = ffn(xg)
        y.backward(grad)
        w1, w2 = ffn.get_submodule("w1"), ffn.get_submodule("w2")
        outputs[kernel] = (y, xg.grad, w1.weight.grad, w2.weight.grad)
    for kernel in ("gather", "triton"):
        for part, got, want in zip(("y", "dX", "dW1", "dW2"), outputs[kernel], outputs["mask"], strict=True):
            records.append(
                Record(
                    SYSTEM,
                    f"numerics: FFN {dim}->{hidden} {spec}, vnm_kernel {kernel} vs mask: {part}",
                    "max abs error / max abs reference",
                    "fraction",
                    relative_error(got, want),
                    notes=f"{name}; same masks, bf16",
                )
            )
    return records
