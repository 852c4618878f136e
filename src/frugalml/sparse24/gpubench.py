"""GPU benchmarks: cusparselt-vs-dense numerics, the mask-independent packing rule vs _cslt_compress,
the Triton V:N:M kernel vs the gather and mask paths, the train CLI on cuda with cusparselt in bf16, a
per-GEMM time breakdown of a 2:4 Linear, FFN fwd+bwd at Llama-1B/7B shapes vs dense bf16 and torch's
tile-kernel recipe, and a Llama-1B-shaped step.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from frugalml.common.report import Record
from frugalml.common.timing import compare
from frugalml.sparse24.backends import (
    CUSPARSELT,
    CUSPARSELT_ALG0,
    PackedLayout,
    SparseKernels,
    cusparselt_status,
    fused_greedy_prune,
    sparse_times_dense_t,
    vnm_gather_matmul,
)
from frugalml.sparse24.bench import FFN_SHAPES, SYSTEM
from frugalml.sparse24.layers import SparseLinear, SparsityConfig, SquaredReLUFFN
from frugalml.sparse24.masks import transposable_mask_24, vnm_columns, vnm_mask
from frugalml.sparse24.model import LlamaConfig
from frugalml.sparse24.packing import ShapeRule, rule_layout
from frugalml.sparse24.swap import sparsify_ffn

FAST = {
    "activations": None,
    "method": "ste",
    "transposable": True,
    "transposable_method": "greedy",
    "backend": "cusparselt",
    "flip_every": 0,
}
HELD = {**FAST, "mask_every": 10}
RULE = {**FAST, "packing": "rule"}
VARIANTS = {
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


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
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
                _relative_error(y, F.linear(x, pruned, base.bias)),
                "y = x P^T + b vs dense with P",
            )
            record(f"ours dX = dY P, {label}", _relative_error(xg.grad, grad @ pruned), "through packed P^T")
            record(
                f"ours dW = dY^T X, {label}",
                _relative_error(base.weight.grad, grad.t() @ x),
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
            _relative_error(base(x), emulated(x)),
            "run 1's 3.74 came from torch's tile-kernel packing on this GPU",
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
            _relative_error(y, x @ fused_greedy_prune(w).t()),
            "torch's fused tile kernel packing; peer recipe",
        )
        return []

    records += guarded("numerics tile cuSPARSELt", tile_check)
    return records


def _gpu_seconds(fn: Callable[[], Any], iters: int = 10, repeats: int = 5) -> float:
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


def gpu_breakdown(tokens: int = 8192) -> list[Record]:
    """Per-GEMM and per-step-overhead times of one 2:4 Linear at each FFN shape (W: hidden x dim).

    The three GEMMs of a Linear (forward ``X W^T``, ``dX = dY W``, ``dW = dY^T X``) dense vs
    cuSPARSELt (searched and default algorithm), and what the sparse path adds per step: pruning
    (torch's fused greedy tile kernel; our exact and greedy masks in torch ops), packing ``P`` and
    ``P^T`` with ``_cslt_compress``, or with a held mask by the learned gather (learning it once).
    """
    name = torch.cuda.get_device_name(0)
    records = []
    for shape, (dim, hidden) in FFN_SHAPES.items():

        def items(dim=dim, hidden=hidden, shape=shape):
            torch.manual_seed(0)
            w = torch.randn(hidden, dim, device="cuda", dtype=torch.bfloat16)
            x = torch.randn(tokens, dim, device="cuda", dtype=torch.bfloat16)
            dy = torch.randn(tokens, hidden, device="cuda", dtype=torch.bfloat16)
            pruned = fused_greedy_prune(w)
            packed, packed_t = CUSPARSELT.compress(pruned), CUSPARSELT.compress(pruned.t().contiguous())
            layout = PackedLayout.learn(pruned != 0, w.dtype, True)
            times = {
                "forward X W^T dense": _gpu_seconds(lambda: F.linear(x, w)),
                "forward X P^T cuSPARSELt (searched alg)": _gpu_seconds(
                    lambda: sparse_times_dense_t(packed, x, None)
                ),
                "forward X P^T cuSPARSELt (alg 0)": _gpu_seconds(
                    lambda: sparse_times_dense_t(packed, x, None, CUSPARSELT_ALG0)
                ),
                "dX = dY W dense": _gpu_seconds(lambda: dy @ w),
                "dX = dY P cuSPARSELt (searched alg)": _gpu_seconds(
                    lambda: sparse_times_dense_t(packed_t, dy, None)
                ),
                "dX = dY P cuSPARSELt (alg 0)": _gpu_seconds(
                    lambda: sparse_times_dense_t(packed_t, dy, None, CUSPARSELT_ALG0)
                ),
                "dW = dY^T X dense": _gpu_seconds(lambda: dy.t() @ x),
                "prune: torch fused greedy tile kernel": _gpu_seconds(lambda: fused_greedy_prune(w)),
                "prune: ours greedy (torch ops)": _gpu_seconds(
                    lambda: w * transposable_mask_24(w, False, "greedy"), iters=2, repeats=3
                ),
                "prune: ours exact 90 patterns (torch ops)": _gpu_seconds(
                    lambda: w * transposable_mask_24(w, False), iters=2, repeats=3
                ),
                "pack P (_cslt_compress)": _gpu_seconds(lambda: CUSPARSELT.compress(pruned)),
                "pack P^T (transpose + _cslt_compress)": _gpu_seconds(
                    lambda: CUSPARSELT.compress(pruned.t().contiguous())
                ),
                "pack P and P^T by the learned gather (held mask)": _gpu_seconds(
                    lambda: layout.pack(w, True)
                ),
                "learn the gather (once per held mask)": _gpu_seconds(
                    lambda: PackedLayout.learn(pruned != 0, w.dtype, True), iters=1, repeats=3
                ),
                "pack P and P^T by the shape rule (new mask: layout + gather)": _gpu_seconds(
                    lambda: rule_layout(pruned != 0, w.dtype, True).pack(pruned, True), iters=5
                ),
            }
            peers = {
                "forward X P^T cuSPARSELt (searched alg)": "forward X W^T dense",
                "forward X P^T cuSPARSELt (alg 0)": "forward X W^T dense",
                "dX = dY P cuSPARSELt (searched alg)": "dX = dY W dense",
                "dX = dY P cuSPARSELt (alg 0)": "dX = dY W dense",
            }
            out = [
                Record(
                    SYSTEM,
                    f"GEMM breakdown {shape} W {hidden}x{dim}, {tokens} tok bf16: {op}",
                    "time",
                    "s",
                    t,
                    peer=peers.get(op),
                    peer_value=times[peers[op]] if op in peers else None,
                    higher_is_better=False,
                    notes=f"{name}; CUDA events, median of 5 x 10 calls",
                )
                for op, t in times.items()
            ]
            dense = times["forward X W^T dense"] + times["dX = dY W dense"] + times["dW = dY^T X dense"]
            gemms = (
                times["forward X P^T cuSPARSELt (searched alg)"]
                + times["dX = dY P cuSPARSELt (searched alg)"]
                + times["dW = dY^T X dense"]
            )
            every_step = (
                times["prune: torch fused greedy tile kernel"]
                + times["pack P (_cslt_compress)"]
                + times["pack P^T (transpose + _cslt_compress)"]
            )
            gather = times["pack P and P^T by the learned gather (held mask)"]
            refresh = (
                times["prune: torch fused greedy tile kernel"]
                + times["learn the gather (once per held mask)"]
            )
            rule_step = (
                times["prune: torch fused greedy tile kernel"]
                + times["pack P and P^T by the shape rule (new mask: layout + gather)"]
            )
            for label, overhead in (
                ("mask every step", every_step),
                ("mask every step, shape-rule packing", rule_step),
                ("mask held 10 steps", gather + refresh / 10),
                ("mask held 100 steps", gather + refresh / 100),
                ("GEMMs only", 0.0),
            ):
                out.append(
                    Record(
                        SYSTEM,
                        f"GEMM breakdown {shape}: one Linear fwd+bwd, sum of parts, {label}",
                        "time",
                        "s",
                        gemms + overhead,
                        peer="dense: 3 GEMMs",
                        peer_value=dense,
                        higher_is_better=False,
                        notes=f"{name}; 2 cuSPARSELt GEMMs + dense dW + per-step overhead "
                        f"{overhead * 1e3:.3f} ms",
                    )
                )
            return out

        records += guarded(f"GEMM breakdown {shape}", items)
    return records


def gpu_vnm(
    tokens: int = 8192, features: int = 8192, out: int = 2048, spec: str = "vnm:64:2:8"
) -> list[Record]:
    """V:N:M-sparse activations x dense weight: the Triton kernel (a few tile sizes) and gather + bmm
    vs the dense matmul of the same (masked) activations; and the Triton kernel's numerics."""
    from frugalml.sparse24.vnm_kernel import vnm_triton_matmul

    name = torch.cuda.get_device_name(0)
    generator = torch.Generator(device="cuda").manual_seed(0)
    h = F.relu(torch.randn(tokens, features, device="cuda", generator=generator)).square()
    h = (h * vnm_mask(h, spec)).to(torch.bfloat16)
    w = (torch.randn(out, features, device="cuda", generator=generator) / features**0.5).to(torch.bfloat16)
    w_t, columns = w.t().contiguous(), vnm_columns(h.float(), spec)
    dense = _gpu_seconds(lambda: F.linear(h, w))
    workload = f"V:N:M {spec} activations {tokens}x{features} @ weight {features}x{out} bf16"
    error = _relative_error(vnm_triton_matmul(h, w_t, spec, columns), F.linear(h, w))
    records = [
        Record(
            SYSTEM,
            f"numerics: Triton V:N:M kernel vs dense, {workload}",
            "max abs error / max abs reference",
            "fraction",
            error,
            notes=f"{name}",
        )
    ]
    for block_n, block_k in ((128, 64), (64, 64), (128, 32), (256, 64)):
        t = _gpu_seconds(lambda bn=block_n, bk=block_k: vnm_triton_matmul(h, w_t, spec, columns, bn, bk))
        records.append(
            Record(
                SYSTEM,
                f"{workload}: Triton kernel (BLOCK_N {block_n}, BLOCK_K {block_k})",
                "time",
                "s",
                t,
                peer="dense torch matmul (cuBLAS)",
                peer_value=dense,
                higher_is_better=False,
                notes=f"{name}; column choice precomputed; 4/M = 50% of the dense FLOPs",
            )
        )
    gather = _gpu_seconds(lambda: vnm_gather_matmul(h, w, spec, columns), iters=2, repeats=3)
    records.append(
        Record(
            SYSTEM,
            f"{workload}: gather + bmm",
            "time",
            "s",
            gather,
            peer="dense torch matmul (cuBLAS)",
            peer_value=dense,
            higher_is_better=False,
            notes=f"{name}; materialises each block's gathered weight rows",
        )
    )
    return records


def _cuda_calls(fn: Callable[[], Any], calls: int) -> Callable[[], Any]:
    def run():
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()

    return run


def gpu_speed(tokens: int = 8192, rounds: int = 10, layers_1b: int = 4) -> list[Record]:
    """FFN fwd+bwd at Llama-1B/7B shapes in bf16: ours (mask every step, mask held 10 steps, exact
    mask) and torch's tile-kernel recipe (torchao SemiSparseLinear on core) vs dense; V:N:M gather
    matmul; a Llama-1B-shaped training step (``layers_1b`` layers), dense vs sparse.
    Each item that fails is recorded with its error instead of stopping the run.
    """
    ok, reason = cusparselt_status()
    if not ok:
        return [Record(SYSTEM, "GPU benchmarks", "skipped", "", 0.0, notes=f"not run: {reason}")]
    device, dtype, records = "cuda", torch.bfloat16, []
    name = torch.cuda.get_device_name(0)
    for shape, (dim, hidden) in FFN_SHAPES.items():

        def ffn_items(dim=dim, hidden=hidden, shape=shape):
            x = torch.randn(tokens, dim, device=device, dtype=dtype, requires_grad=True)
            dense = SquaredReLUFFN(dim, hidden).to(device, dtype)
            contenders = {
                f"ours, {label}": sparsify_ffn(copy.deepcopy(dense), **options)
                for label, options in VARIANTS.items()
            }

            def tile_recipe():
                h = F.relu(F.linear(x, TorchTileSparsify.apply(dense.w1.weight, False))).square()
                return F.linear(h, TorchTileSparsify.apply(dense.w2.weight, False))

            def fwd_bwd(fn):
                return lambda: fn().float().square().mean().backward()

            dense_run = _cuda_calls(fwd_bwd(lambda: dense(x)), rounds)
            runs = {label: (lambda model=model: model(x)) for label, model in contenders.items()}
            runs["torch tile recipe, cuSPARSELt packing (peer; numerically WRONG on non-SM8x)"] = tile_recipe
            out = []
            for label, fn in runs.items():

                def item(fn=fn, label=label):
                    c = compare(_cuda_calls(fwd_bwd(fn), rounds), dense_run, rounds=5, warmup=1)
                    return [
                        Record.from_comparison(
                            c,
                            system=SYSTEM,
                            workload=f"FFN fwd+bwd {shape} {dim}->{hidden}, {tokens} tok bf16: {label}",
                            peer="dense bf16 (nn.Linear)",
                            notes=f"{name}; {rounds} calls per sample (a held mask is re-learned 1 in 10); "
                            "goal 7B >= 1.3x",
                        )
                    ]

                out += guarded(f"FFN {shape} {label}", item)
            return out

        records += guarded(f"FFN {shape}", ffn_items)
    records += guarded("V:N:M kernels", lambda: gpu_vnm(tokens))

    def llama_step():
        from frugalml.sparse24.model import TinyLlama

        config = LlamaConfig(
            vocab_size=32000, dim=2048, n_layers=layers_1b, n_heads=16, hidden=8192, max_seq_len=2048
        )
        batch = torch.randint(0, 32000, (4, 2048), device=device)
        dense = TinyLlama(config).to(device, dtype)

        def step(model):
            return lambda: model(batch, batch)[1].backward()

        out = []
        for label in STEP_VARIANTS:
            sparse = sparsify_ffn(copy.deepcopy(dense), **VARIANTS[label])
            c = compare(_cuda_calls(step(sparse), 10), _cuda_calls(step(dense), 10), rounds=3, warmup=1)
            out.append(
                Record.from_comparison(
                    c,
                    system=SYSTEM,
                    workload=f"Llama-1B-shaped training step ({layers_1b} layers, 4x2048 tokens, "
                    f"bf16), sparse phase (2:4 FFN weights, cusparselt, {label})",
                    peer="same model dense bf16",
                    notes=f"{name}; goal >= 1.2x; fewer layers than Llama-1B's 16; squared-ReLU FFN; "
                    "10 steps per sample",
                )
            )
            del sparse
        return out

    records += guarded("Llama-1B step", llama_step)
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
                "build a mask's layout by the rule (P and P^T)": _gpu_seconds(
                    lambda: rule.layout(mask, rule_t), iters=2, repeats=3
                ),
                "learn a mask's gather per mask (PackedLayout.learn)": _gpu_seconds(
                    lambda: PackedLayout.learn(mask, w.dtype, True), iters=1, repeats=3
                ),
                "pack P and P^T by _cslt_compress (prune given)": _gpu_seconds(
                    lambda: (CUSPARSELT.compress(pruned), CUSPARSELT.compress(pruned.t().contiguous()))
                ),
            }
            layout = rule.layout(mask, rule_t)
            times["pack P and P^T by the gather"] = _gpu_seconds(lambda: layout.pack(w2, True))
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
                _relative_error(triton_y, reference),
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
        outputs[kernel] = (y, xg.grad, ffn.w1.weight.grad, ffn.w2.weight.grad)
    for kernel in ("gather", "triton"):
        for part, got, want in zip(("y", "dX", "dW1", "dW2"), outputs[kernel], outputs["mask"], strict=True):
            records.append(
                Record(
                    SYSTEM,
                    f"numerics: FFN {dim}->{hidden} {spec}, vnm_kernel {kernel} vs mask: {part}",
                    "max abs error / max abs reference",
                    "fraction",
                    _relative_error(got, want),
                    notes=f"{name}; same masks, bf16",
                )
            )
    return records


CLI_MODEL = {
    "dim": 256,
    "layers": 2,
    "heads": 4,
    "hidden": 1024,
    "batch_size": 8,
    "seq_len": 128,
    "eval_every": 4,
    "threads": 1,
}
GREEDY_STE = {"method": "ste", "transposable": True, "transposable_method": "greedy", "activations": "dense"}
CLI_RUNS = {
    "emulate (reference)": GREEDY_STE,
    "cusparselt": {**GREEDY_STE, "backend": "cusparselt"},
    "cusparselt, --packing rule": {**GREEDY_STE, "backend": "cusparselt", "packing": "rule"},
    "cusparselt + vnm:64:2:8 activations, sste": {"backend": "cusparselt", "activations": "vnm:64:2:8"},
}


def _cli_args(options: dict[str, Any]) -> list[str]:
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def _run_cli(options: dict[str, Any], history: str) -> tuple[int, str]:
    """``frugal sparse24 train`` in this process; (exit code, output). Without typer in this Python it
    runs the same TrainConfig through the library and says so."""
    out, err = io.StringIO(), io.StringIO()
    try:
        from frugalml.cli import main
    except ImportError as exc:
        from frugalml.common.corpus import stdlib_bytes
        from frugalml.sparse24.train import TrainConfig, train

        model = {k: options[k] for k in ("dim", "hidden")}
        shape_keys = ("dim", "layers", "heads", "hidden", "threads")
        config = {k: v for k, v in options.items() if k not in shape_keys}
        config["activations"] = None if config.get("activations") == "dense" else config.get("activations")
        result = train(
            LlamaConfig(
                **model, n_layers=options["layers"], n_heads=options["heads"], max_seq_len=options["seq_len"]
            ),
            TrainConfig(**config),
            stdlib_bytes(),
            quiet=True,
        )
        with open(history, "w") as f:
            json.dump({"history": result.history}, f)
        return 0, f"library path ({exc}; the CLI needs typer)"
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["sparse24", "train", *_cli_args(options), "--quiet", "--json", history])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    return code, (out.getvalue() + err.getvalue()).strip()


def gpu_train_cli(steps: int = 8) -> list[Record]:
    """``frugal sparse24 train --device cuda --dtype bfloat16`` for a few steps per backend / packing:
    exit code, final validation loss (vs the emulated run with the same seed) and tokens/s."""
    skipped = gpu_skip("train CLI on cuda")
    if skipped:
        return skipped
    name, records, reference = torch.cuda.get_device_name(0), [], None
    for label, options in CLI_RUNS.items():
        with tempfile.TemporaryDirectory() as folder:
            history = f"{folder}/h.json"
            run = {
                "device": "cuda",
                "dtype": "bfloat16",
                "steps": steps,
                "sparse_fraction": 1,
                **CLI_MODEL,
                **options,
            }
            code, output = _run_cli(run, history)
            if code:
                records.append(
                    Record(
                        SYSTEM,
                        f"train CLI cuda bf16 {label}",
                        "failed",
                        "",
                        float(code),
                        notes=f"{name}; exit {code}: {output[-300:]}",
                    )
                )
                continue
            with open(history) as f:
                entry = json.load(f)["history"][-1]
        emulated = label.startswith("emulate")
        reference = entry["val_loss"] if emulated else reference
        records.append(
            Record(
                SYSTEM,
                f"train CLI cuda bf16 {label}: {steps} sparse steps, 2x256/1024 relu2, 8x128 tokens",
                "validation loss",
                "nats/byte",
                entry["val_loss"],
                peer=None if emulated else "emulate (same CLI run, seed)",
                peer_value=None if emulated else reference,
                higher_is_better=False,
                spread={"tokens_per_s": entry.get("tokens_per_s")},
                notes=f"{name}; exit 0; {_cli_args(options)}; {output[-200:]}",
            )
        )
    return records
