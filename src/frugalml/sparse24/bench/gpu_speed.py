"""GPU speed: FFN fwd+bwd at Llama-1B/7B shapes in bf16 (ours vs dense and torch's tile-kernel recipe),
the V:N:M kernels vs the dense matmul, and a Llama-1B-shaped training step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from frugalml.common.report import Record
from frugalml.common.timing import compare
from frugalml.sparse24.backends import vnm_gather_matmul
from frugalml.sparse24.bench.shared import (
    FFN_SHAPES,
    STEP_VARIANTS,
    SYSTEM,
    VARIANTS,
    TorchTileSparsify,
    cuda_calls,
    gpu_seconds,
    gpu_skip,
    guarded,
    relative_error,
)
from frugalml.sparse24.layers import SquaredReLUFFN
from frugalml.sparse24.masks import vnm_columns, vnm_mask
from frugalml.sparse24.model import LlamaConfig, TinyLlama
from frugalml.sparse24.swap import sparsify_ffn


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
    dense = gpu_seconds(lambda: F.linear(h, w))
    workload = f"V:N:M {spec} activations {tokens}x{features} @ weight {features}x{out} bf16"
    error = relative_error(vnm_triton_matmul(h, w_t, spec, columns), F.linear(h, w))
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
        t = gpu_seconds(partial(vnm_triton_matmul, h, w_t, spec, columns, block_n, block_k))
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
    gather = gpu_seconds(lambda: vnm_gather_matmul(h, w, spec, columns), iters=2, repeats=3)
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


def _fwd_bwd(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    return lambda: fn().float().square().mean().backward()


def ffn_speed(shape: str, dim: int, hidden: int, tokens: int, rounds: int) -> list[Record]:
    """FFN fwd+bwd at one shape in bf16: each of our variants and torch's tile-kernel recipe vs dense;
    each contender that fails is recorded with its error."""
    name = torch.cuda.get_device_name(0)
    x = torch.randn(tokens, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    dense = SquaredReLUFFN(dim, hidden).to("cuda", torch.bfloat16)
    contenders = {
        f"ours, {label}": sparsify_ffn(copy.deepcopy(dense), **options) for label, options in VARIANTS.items()
    }

    def tile_recipe():
        h = F.relu(F.linear(x, TorchTileSparsify.apply(dense.w1.weight, False))).square()
        return F.linear(h, TorchTileSparsify.apply(dense.w2.weight, False))

    dense_run = cuda_calls(_fwd_bwd(lambda: dense(x)), rounds)
    runs: dict[str, Callable[[], torch.Tensor]] = {
        label: partial(model, x) for label, model in contenders.items()
    }
    runs["torch tile recipe, cuSPARSELt packing (peer; numerically WRONG on non-SM8x)"] = tile_recipe
    out = []
    for label, fn in runs.items():

        def item(fn=fn, label=label):
            c = compare(cuda_calls(_fwd_bwd(fn), rounds), dense_run, rounds=5, warmup=1)
            return [
                Record.from_comparison(
                    c,
                    system=SYSTEM,
                    workload=f"FFN fwd+bwd {shape} {dim}->{hidden}, {tokens} tok bf16: {label}",
                    peer="dense bf16 (nn.Linear)",
                    notes=f"{name}; {rounds} calls per sample (a held mask is re-learned 1 in 10); "
                    "target 7B >= 1.3x",
                )
            ]

        out += guarded(f"FFN {shape} {label}", item)
    return out


def llama_step_speed(layers_1b: int) -> list[Record]:
    """A Llama-1B-shaped training step (``layers_1b`` layers, 4x2048 tokens, bf16), each sparse-phase
    variant vs the same model dense."""
    name = torch.cuda.get_device_name(0)
    config = LlamaConfig(
        vocab_size=32000, dim=2048, n_layers=layers_1b, n_heads=16, hidden=8192, max_seq_len=2048
    )
    batch = torch.randint(0, 32000, (4, 2048), device="cuda")
    dense = TinyLlama(config).to("cuda", torch.bfloat16)

    def step(model):
        return lambda: model(batch, batch)[1].backward()

    out = []
    for label in STEP_VARIANTS:
        sparse = sparsify_ffn(copy.deepcopy(dense), **VARIANTS[label])
        c = compare(cuda_calls(step(sparse), 10), cuda_calls(step(dense), 10), rounds=3, warmup=1)
        out.append(
            Record.from_comparison(
                c,
                system=SYSTEM,
                workload=f"Llama-1B-shaped training step ({layers_1b} layers, 4x2048 tokens, "
                f"bf16), sparse phase (2:4 FFN weights, cusparselt, {label})",
                peer="same model dense bf16",
                notes=f"{name}; target >= 1.2x; fewer layers than Llama-1B's 16; squared-ReLU FFN; "
                "10 steps per sample",
            )
        )
        del sparse
    return out


def gpu_speed(tokens: int = 8192, rounds: int = 10, layers_1b: int = 4) -> list[Record]:
    """FFN fwd+bwd at Llama-1B/7B shapes in bf16: ours (mask every step, mask held 10 steps, exact
    mask) and torch's tile-kernel recipe (torchao SemiSparseLinear on core) vs dense; V:N:M gather
    matmul; a Llama-1B-shaped training step (``layers_1b`` layers), dense vs sparse.
    Each item that fails is recorded with its error instead of stopping the run.
    """
    skipped = gpu_skip()
    if skipped:
        return skipped
    records = []
    for shape, (dim, hidden) in FFN_SHAPES.items():
        records += guarded(f"FFN {shape}", partial(ffn_speed, shape, dim, hidden, tokens, rounds))
    records += guarded("V:N:M kernels", lambda: gpu_vnm(tokens))
    records += guarded("Llama-1B step", lambda: llama_step_speed(layers_1b))
    return records
