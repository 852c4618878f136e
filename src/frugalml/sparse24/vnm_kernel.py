"""V:N:M-sparse activations times a dense weight in Triton: per block of V token rows only the 4 chosen
columns of every M are loaded and multiplied (4/M of the dense FLOPs), with no gathered copies.
"""

from __future__ import annotations

import os
from functools import cache

import torch

from frugalml.common.errors import InvalidInputError, PeerUnavailableError
from frugalml.sparse24.masks import VNM, vnm_columns


def triton_status(device: torch.device | str | None = None) -> tuple[bool, str]:
    """Whether the Triton V:N:M kernel can run on ``device`` here, and why not."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False, "triton is not installed (pip install triton)"
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    on_cuda = device is not None and torch.device(device).type == "cuda"
    if not on_cuda and not interpreted:
        return False, "Triton kernels run on CUDA tensors (or on CPU with TRITON_INTERPRET=1)"
    return True, "interpreter" if interpreted else "available"


@cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def vnm_matmul_kernel(
        x_ptr,
        w_ptr,
        index_ptr,
        y_ptr,
        n_out,
        kept,
        stride_x,
        stride_w,
        stride_y,
        V: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        block = tl.program_id(0)
        rows = block * V + tl.arange(0, V)
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        col_ok = cols < n_out
        acc = tl.zeros((V, BLOCK_N), dtype=tl.float32)
        for start in range(0, kept, BLOCK_K):
            k = start + tl.arange(0, BLOCK_K)
            k_ok = k < kept
            index = tl.load(index_ptr + block * kept + k, mask=k_ok, other=0)
            a = tl.load(x_ptr + rows[:, None] * stride_x + index[None, :], mask=k_ok[None, :], other=0.0)
            b = tl.load(
                w_ptr + index[:, None] * stride_w + cols[None, :],
                mask=k_ok[:, None] & col_ok[None, :],
                other=0.0,
            )
            acc += tl.dot(a, b)
        tl.store(
            y_ptr + rows[:, None] * stride_y + cols[None, :],
            acc.to(y_ptr.dtype.element_ty),
            mask=col_ok[None, :],
        )

    return triton, vnm_matmul_kernel


def kept_columns(columns: torch.Tensor, pattern: VNM) -> torch.Tensor:
    """Global feature index of each block's kept columns, (row blocks, 4 x column groups), int32."""
    groups = columns.shape[1]
    offsets = torch.arange(groups, device=columns.device).mul_(pattern.m).view(1, groups, 1)
    return (columns.long() + offsets).reshape(columns.shape[0], groups * 4).to(torch.int32).contiguous()


def vnm_triton_matmul(
    x: torch.Tensor,
    w_t: torch.Tensor,
    pattern: VNM | str,
    columns: torch.Tensor | None = None,
    block_n: int = 128,
    block_k: int = 64,
) -> torch.Tensor:
    """``x @ w_t`` for V:N:M-sparse ``x`` (tokens, K) and a dense ``w_t`` (K, out), i.e. ``x W^T`` with
    ``w_t = W.t().contiguous()``; reads only each block's kept columns of ``x`` and rows of ``w_t``.

    ``columns`` comes from :func:`frugalml.sparse24.vnm_columns` (recomputed when omitted: any
    4 columns per block that cover its non-zeros give the same product). Needs V >= 16, a power of 2.
    """
    pattern = VNM.parse(pattern)
    ok, reason = triton_status(x.device)
    if not ok:
        raise PeerUnavailableError(f"the Triton V:N:M kernel cannot run: {reason}; use vnm_gather_matmul")
    rows, k = x.shape
    if w_t.shape[0] != k:
        raise InvalidInputError(
            f"x has {k} features but w_t has {w_t.shape[0]} rows; pass W.t().contiguous()"
        )
    if pattern.v < 16 or pattern.v & (pattern.v - 1) or rows % pattern.v or k % pattern.m:
        raise InvalidInputError(
            f"the Triton V:N:M kernel needs V a power of 2 >= 16, rows divisible by V and features by M; "
            f"got {pattern} with x of shape {tuple(x.shape)}; use vnm_gather_matmul"
        )
    if columns is None:
        columns = vnm_columns(x, pattern, validate=False)
    index = kept_columns(columns, pattern)
    x, w_t = x.contiguous(), w_t.contiguous()
    y = torch.empty(rows, w_t.shape[1], device=x.device, dtype=x.dtype)
    triton, kernel = _kernel()
    grid = (rows // pattern.v, triton.cdiv(w_t.shape[1], block_n))
    kernel[grid](
        x,
        w_t,
        index,
        y,
        w_t.shape[1],
        index.shape[1],
        x.stride(0),
        w_t.stride(0),
        y.stride(0),
        V=pattern.v,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
    )
    return y
