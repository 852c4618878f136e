"""Autograd pieces: straight-through 2:4 weights (STE / S-STE), a sparse matmul with optional MVUE
weight gradients, and a V:N:M activation sparsifier whose backward re-applies the forward mask.
"""

from __future__ import annotations

import torch

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24.backends import vnm_gather_matmul
from frugalml.sparse24.masks import (
    VNM,
    activation_mask,
    mask_24,
    mvue_24,
    soft_threshold_24_with_mask,
    transposable_mask_24,
    vnm_columns,
)


def weight_mask(w: torch.Tensor, transposable: bool, transposable_method: str = "exact") -> torch.Tensor:
    """The 2:4 mask of a weight: per-row groups, or transposable 4x4 blocks (exact or greedy)."""
    if transposable:
        return transposable_mask_24(w, validate=False, method=transposable_method)
    return mask_24(w, validate=False)


def sparse_value(
    w: torch.Tensor,
    method: str,
    transposable: bool = False,
    beta: float = 1.0,
    transposable_method: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2:4 value of a (detached) weight and its mask.

    ``method="ste"`` keeps the masked values; ``"sste"`` soft-thresholds them and scales by the fixed
    per-tensor ``beta`` (S-STE).
    """
    if method == "ste":
        mask = weight_mask(w, transposable, transposable_method)
        return torch.where(mask, w, 0), mask
    if method == "sste":
        value, mask = soft_threshold_24_with_mask(w, validate=False)
        if transposable:
            mask = weight_mask(w, transposable, transposable_method)
            value = value * mask
        return value * beta, mask
    raise InvalidInputError(f"unknown weight method {method!r}; choose one of: ste, sste")


def sparse_weight(
    w: torch.Tensor,
    method: str,
    transposable: bool = False,
    beta: float = 1.0,
    transposable_method: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The effective 2:4 weight with a straight-through gradient to the dense master ``w``, and its mask.

    See :func:`sparse_value` for ``method``. Either way ``d loss / d w`` is the gradient of the
    effective weight.
    """
    detached = w.detach()
    value, mask = sparse_value(detached, method, transposable, beta, transposable_method)
    return w + (value - detached).detach(), mask


class SparseMatmul(torch.autograd.Function):
    """``y = x W^T + b`` whose weight gradient can use an MVUE 2:4-sparsified ``dY^T`` (over tokens)."""

    @staticmethod
    def forward(ctx, x, w, bias, mvue, generator):
        ctx.save_for_backward(x, w)
        ctx.mvue, ctx.generator, ctx.has_bias = mvue, generator, bias is not None
        return torch.nn.functional.linear(x, w, bias)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        grad_x = grad @ w if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_t = mvue_24(grad.t(), ctx.generator) if ctx.mvue else grad.t()
            grad_w = grad_t @ x
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None


VNM_KERNELS = ("mask", "gather", "triton")


class VNMMatmul(torch.autograd.Function):
    """``y = x W^T + b`` for V:N:M-sparse ``x`` on a kernel that reads only each block's kept columns
    (``"gather"``: gather + batched matmul; ``"triton"``: the Triton kernel); dense backward (the
    V:N:M mask is re-applied to ``dX`` by :class:`VNMSparsify`). Rows are zero-padded to V.
    """

    @staticmethod
    def forward(ctx, x, w, bias, pattern, kernel):
        rows = x.shape[0]
        pad = -rows % pattern.v
        padded = torch.nn.functional.pad(x, (0, 0, 0, pad)) if pad else x
        columns = vnm_columns(padded, pattern, validate=False)
        if kernel == "triton":
            from frugalml.sparse24.vnm_kernel import vnm_triton_matmul

            y = vnm_triton_matmul(padded, w.t().contiguous(), pattern, columns)
        else:
            y = vnm_gather_matmul(padded, w, pattern, columns)
        y = y[:rows] if bias is None else y[:rows] + bias
        ctx.save_for_backward(x, w)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        grad_x = grad @ w if ctx.needs_input_grad[0] else None
        grad_w = grad.t() @ x if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None


class VNMSparsify(torch.autograd.Function):
    """Zero all but the V:N:M-selected activations; the backward applies the same mask to the gradient.

    ``dense_fraction`` and ``permutation_seed`` are the 95/5 split and the fixed token permutation of
    :func:`frugalml.sparse24.masks.activation_mask`.
    """

    @staticmethod
    def forward(ctx, x, pattern, method, dense_fraction=0.0, permutation_seed=None):
        mask = activation_mask(x, pattern, method, dense_fraction, permutation_seed, validate=False)
        ctx.save_for_backward(mask)
        return torch.where(mask, x, 0)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad, 0), None, None, None, None


def sparsify_activations(
    x: torch.Tensor,
    pattern: VNM | str,
    method: str = "router",
    dense_fraction: float = 0.0,
    permutation_seed: int | None = None,
) -> torch.Tensor:
    """V:N:M-sparsify (tokens, features) activations; token rows are zero-padded to a multiple of V.

    Padding rows are zeros, so they never win a column and are dropped again afterwards. See
    :func:`frugalml.sparse24.masks.activation_mask` for ``dense_fraction`` (the 95/5 split) and
    ``permutation_seed`` (the fixed token permutation).
    """
    pattern = VNM.parse(pattern)
    rows = x.shape[0]
    pad = -rows % pattern.v
    if pad:
        x = torch.cat([x, x.new_zeros(pad, x.shape[1])])
    out = VNMSparsify.apply(x, pattern, method, dense_fraction, permutation_seed)
    return out[:rows] if pad else out


class MaskedDecay(torch.autograd.Function):
    """Identity on the dense master weight whose backward adds Hu et al.'s masked decay,
    ``decay * (1 - mask) * w``, to its gradient: pruned weights are pulled towards zero, kept ones
    untouched. ``holder["mask"]`` is the 2:4 mask this forward used (filled by the layer's forward)."""

    @staticmethod
    def forward(ctx, w, holder, decay):
        ctx.save_for_backward(w)
        ctx.holder, ctx.decay = holder, decay
        return w.view_as(w)

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad + ctx.decay * torch.where(ctx.holder["mask"], 0, w), None, None
