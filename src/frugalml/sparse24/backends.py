"""Matmul backends: ``emulate`` (masked dense, any device), ``cusparselt`` (torch semi-structured 2:4
tensors on NVIDIA sm80+), and ``vnm_gather`` (V:N:M as gather + batched matmul, any device).
"""

from __future__ import annotations

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


class _ToCusparselt(torch.autograd.Function):
    """Pack an already 2:4 (transposable) weight for cuSPARSELt; gradients pass straight through."""

    @staticmethod
    def forward(ctx, w):
        from torch.sparse import SparseSemiStructuredTensorCUSPARSELT

        return SparseSemiStructuredTensorCUSPARSELT.prune_dense_static_sort(w)

    @staticmethod
    def backward(ctx, grad):
        return grad


def cusparselt_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x W^T + b`` with ``W`` packed for cuSPARSELt (both W and W^T, so the backward is sparse too).

    ``w`` must be fp16/bf16 on CUDA and transposable 2:4 (4x4 tiles are pruned to 2:4 both ways).
    """
    if w.dtype not in (torch.float16, torch.bfloat16):
        raise InvalidInputError(
            f"backend 'cusparselt' needs float16 or bfloat16 weights, got {w.dtype}; cast the model "
            "(model.to(torch.bfloat16)) or use backend='emulate'"
        )
    return torch.nn.functional.linear(x, _ToCusparselt.apply(w), bias)


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
