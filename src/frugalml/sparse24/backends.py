"""Matmul backends: ``emulate`` (masked dense, any device), ``cusparselt`` (torch semi-structured 2:4
tensors on NVIDIA sm80+), and ``vnm_gather`` (V:N:M as gather + batched matmul, any device).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from frugalml.common.errors import InvalidInputError, PeerUnavailableError
from frugalml.sparse24.masks import VNM, vnm_columns

BACKENDS = ("emulate", "cusparselt")


def cusparselt_status(device: torch.device | str | None = None) -> tuple[bool, str]:
    """Whether torch's cuSPARSELt 2:4 path can run here, and why not."""
    if not torch.cuda.is_available():
        return False, "no CUDA GPU is visible (torch's 2:4 kernels run only on CUDA tensors)"
    if device is not None and torch.device(device).type != "cuda":
        return False, f"tensors are on {device}, cuSPARSELt needs CUDA tensors"
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return False, f"GPU compute capability {major}.{minor} < 8.0 (needs Ampere or newer)"
    if not getattr(torch.backends, "cusparselt", None) or not torch.backends.cusparselt.is_available():
        return False, "this torch build has no cuSPARSELt"
    return True, "available"


def available_backends() -> dict[str, tuple[bool, str]]:
    """Every backend with (usable here, reason)."""
    return {"emulate": (True, "masked dense matmuls, any device"), "cusparselt": cusparselt_status()}


def check_backend(name: str, device: torch.device | str | None = None) -> str:
    """Return ``name`` if the backend can run on ``device``, else raise a clear error."""
    if name not in BACKENDS:
        raise InvalidInputError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    if name == "cusparselt":
        ok, reason = cusparselt_status(device)
        if not ok:
            raise PeerUnavailableError(
                f"backend 'cusparselt' cannot run: {reason}; use backend='emulate' on this machine"
            )
    return name


@dataclass(frozen=True)
class SparseKernels:
    """The two cuSPARSELt entry points of the 2:4 matmuls, swappable so their use is testable on CPU.

    ``compress(a)`` packs a 2:4 (m, k) matrix; ``matmul(packed, b, bias, transpose_result)`` returns
    ``a @ b + bias[:, None]`` for a dense (k, n) ``b``, as (n, m) when ``transpose_result``.
    """

    compress: Callable[[torch.Tensor], torch.Tensor]
    matmul: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, bool], torch.Tensor]


def _cslt_matmul(packed, b, bias, transpose_result):
    return torch._cslt_sparse_mm(packed, b, bias=bias, transpose_result=transpose_result)


class _SearchedCsltMatmul:
    """cuSPARSELt matmul whose algorithm id is searched (``_cslt_sparse_mm_search``) once per shape."""

    def __init__(self) -> None:
        self.algorithms: dict[tuple, int] = {}

    def __call__(self, packed, b, bias, transpose_result):
        key = (packed.shape, b.shape, b.stride(), b.dtype, bias is not None, transpose_result)
        if key not in self.algorithms:
            self.algorithms[key] = int(torch._cslt_sparse_mm_search(packed, b, bias=bias,
                                                                    transpose_result=transpose_result))
        return torch._cslt_sparse_mm(packed, b, bias=bias, transpose_result=transpose_result,
                                     alg_id=self.algorithms[key])


CUSPARSELT = SparseKernels(lambda a: torch._cslt_compress(a), _cslt_matmul)
CUSPARSELT_SEARCHED = SparseKernels(lambda a: torch._cslt_compress(a), _SearchedCsltMatmul())


def _dense_matmul(a, b, bias, transpose_result):
    out = a @ b if bias is None else a @ b + bias[:, None]
    return out.t().contiguous() if transpose_result else out


DENSE_REFERENCE = SparseKernels(torch.clone, _dense_matmul)
TOKEN_MULTIPLE = 8  # cuSPARSELt's dense operand needs its dims in multiples of 8 (fp16/bf16)
FEATURE_MULTIPLE = 16  # and the 2:4 operand (W and W^T) multiples of 16


def fused_greedy_prune(w: torch.Tensor) -> torch.Tensor:
    """``w`` pruned to transposable 2:4 by torch's fused CUDA tile kernel (greedy by |w|; see
    :func:`frugalml.sparse24.masks.transposable_mask_24` ``method="greedy"``), returned dense.

    Only the kernel's bitmask is used: its packed cuSPARSELt output follows the sm8x layout and is
    wrong on other GPUs (torch tests it on SM8x only), so packing goes through ``_cslt_compress``.
    """
    tiles = torch._sparse_semi_structured_tile(w, algorithm="largest_abs_values_greedy", use_cutlass=True)
    bitmask = tiles[4]
    return torch._sparse_semi_structured_apply_dense(w, bitmask)


def _pad_rows(x: torch.Tensor, multiple: int) -> torch.Tensor:
    pad = -x.shape[0] % multiple
    return torch.nn.functional.pad(x, (0, 0, 0, pad)) if pad else x


def sparse_times_dense_t(packed: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None,
                         kernels: SparseKernels = CUSPARSELT) -> torch.Tensor:
    """``x A^T (+ bias)`` for a packed 2:4 ``A`` (m, k) and dense (tokens, k) ``x``: one cuSPARSELt
    call ``A x^T`` with a transposed result; token rows padded to a multiple of 8 and cut again.
    """
    rows = x.shape[0]
    return kernels.matmul(packed, _pad_rows(x, TOKEN_MULTIPLE).t(), bias, True)[:rows]


class Cusparselt24Linear(torch.autograd.Function):
    """``y = x P^T + b`` with ``P = prune(w)`` 2:4 on cuSPARSELt; straight-through gradient to ``w``.

    Forward: ``P`` packed and multiplied sparse. Backward: ``dX = dY P`` sparse too when ``P`` is
    transposable (``P^T`` packed in the forward and kept for the backward), else dense with ``P``;
    ``dW = dY^T X`` dense (optionally MVUE-sparsified ``dY^T``). Returns the output and ``P``.
    """

    @staticmethod
    def forward(ctx, x, w, bias, prune, transposable, mvue, generator, kernels):
        pruned = prune(w.detach())
        y = sparse_times_dense_t(kernels.compress(pruned), x, bias, kernels)
        saved = pruned
        if ctx.needs_input_grad[0] and transposable:
            saved = kernels.compress(pruned.t().contiguous())
        ctx.save_for_backward(x, saved if ctx.needs_input_grad[0] else None)
        ctx.transposable, ctx.mvue, ctx.generator, ctx.kernels = transposable, mvue, generator, kernels
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(pruned)
        return y, pruned

    @staticmethod
    def backward(ctx, grad, _):
        from frugalml.sparse24.autograd import mvue_24

        x, saved = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0] and ctx.transposable:
            grad_x = sparse_times_dense_t(saved, grad, None, ctx.kernels)
        elif ctx.needs_input_grad[0]:
            grad_x = grad @ saved
        if ctx.needs_input_grad[1]:
            grad_t = mvue_24(grad.t(), ctx.generator) if ctx.mvue else grad.t()
            grad_w = grad_t @ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b, None, None, None, None, None


def check_cusparselt_shapes(out_features: int, in_features: int) -> None:
    """Raise a clear error unless cuSPARSELt can hold a (out, in) weight and its transpose as 2:4."""
    if out_features % FEATURE_MULTIPLE or in_features % FEATURE_MULTIPLE:
        raise InvalidInputError(
            f"backend 'cusparselt' needs both weight dimensions divisible by {FEATURE_MULTIPLE}, got "
            f"out={out_features}, in={in_features}; resize the layer or use backend='emulate'"
        )


def check_cusparselt_dtypes(w: torch.Tensor, x: torch.Tensor) -> None:
    """Raise a clear error unless ``w`` is fp16/bf16 and ``x`` has its dtype."""
    if w.dtype not in (torch.float16, torch.bfloat16):
        raise InvalidInputError(
            f"backend 'cusparselt' needs float16 or bfloat16 weights, got {w.dtype}; cast the model "
            "(model.to(torch.bfloat16)) or use backend='emulate'"
        )
    if x.dtype != w.dtype:
        raise InvalidInputError(f"input dtype {x.dtype} differs from the weight's {w.dtype}; cast either")


def vnm_gather_matmul(x: torch.Tensor, w: torch.Tensor, pattern: VNM | str,
                      columns: torch.Tensor | None = None) -> torch.Tensor:
    """``x W^T`` for V:N:M-sparse ``x``, touching only each block's 4 chosen columns of every M.

    Gathers the chosen columns of ``x`` and the matching rows of ``W^T`` per block of V rows and
    runs one batched matmul: 4/M of the dense FLOPs (the 2:4 inside would halve them again on
    sparse tensor cores). ``columns`` comes from :func:`vnm_columns` (recomputed when omitted).
    """
    pattern = VNM.parse(pattern)
    rows, k = x.shape
    if w.shape[1] != k:
        raise InvalidInputError(f"x has {k} features but the weight expects {w.shape[1]}")
    if columns is None:
        columns = vnm_columns(x, pattern)
    blocks, groups = rows // pattern.v, k // pattern.m
    offsets = torch.arange(groups, device=x.device).mul_(pattern.m).view(1, groups, 1)
    index = (columns.long() + offsets).reshape(blocks, groups * 4)  # global feature indices
    x_blocks = x.reshape(blocks, pattern.v, k)
    x_kept = x_blocks.gather(2, index.unsqueeze(1).expand(-1, pattern.v, -1))
    w_kept = w.t()[index]  # (blocks, groups*4, out)
    return torch.bmm(x_kept, w_kept).reshape(rows, w.shape[0])
