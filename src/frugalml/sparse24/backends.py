"""Matmul backends: ``emulate`` (masked dense, any device), ``cusparselt`` (torch semi-structured 2:4
tensors on NVIDIA sm80+), and ``vnm_gather`` (V:N:M as gather + batched matmul, any device).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from frugalml.common.errors import InvalidInputError, PeerUnavailableError
from frugalml.sparse24.masks import VNM, mvue_24, vnm_columns

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
    """Every backend (and V:N:M kernel) with (usable here, reason)."""
    from frugalml.sparse24.vnm_kernel import triton_status

    return {
        "emulate": (True, "masked dense matmuls, any device"),
        "cusparselt": cusparselt_status(),
        "vnm_kernel=triton": triton_status("cuda" if torch.cuda.is_available() else None),
    }


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
            self.algorithms[key] = int(
                torch._cslt_sparse_mm_search(packed, b, bias=bias, transpose_result=transpose_result)
            )
        return torch._cslt_sparse_mm(
            packed, b, bias=bias, transpose_result=transpose_result, alg_id=self.algorithms[key]
        )


CUSPARSELT = SparseKernels(lambda a: torch._cslt_compress(a), _SearchedCsltMatmul())
CUSPARSELT_ALG0 = SparseKernels(lambda a: torch._cslt_compress(a), _cslt_matmul)  # cuSPARSELt's default


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


def sparse_times_dense_t(
    packed: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None, kernels: SparseKernels = CUSPARSELT
) -> torch.Tensor:
    """``x A^T (+ bias)`` for a packed 2:4 ``A`` (m, k) and dense (tokens, k) ``x``: one cuSPARSELt
    call ``A x^T`` with a transposed result; token rows padded to a multiple of 8 and cut again.
    """
    rows = x.shape[0]
    return kernels.matmul(packed, _pad_rows(x, TOKEN_MULTIPLE).t(), bias, True)[:rows]


CODE_BASE = 255  # position digits are packed as 1..255: integers fp16 and bf16 hold exactly


def _learn_slots(
    positions: torch.Tensor, keep: torch.Tensor, dtype: torch.dtype, kernels: SparseKernels
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which entry of ``positions`` fills each slot of ``kernels.compress`` of a matrix with nonzeros
    ``keep``, assuming nothing about the packed layout: pack the positions' base-255 digits (+1, so
    kept entries are nonzero) one digit at a time, plus the first digit shifted by one; slots whose
    bits change with the shift hold values, the others (metadata, fillers) are constant.
    Returns (index per slot, value-slot mask, constant bits as int16).
    """

    def pack_digit(digit: int, shift: int = 0) -> torch.Tensor:
        code = ((positions // CODE_BASE**digit + shift) % CODE_BASE + 1).to(dtype) * keep
        return kernels.compress(code)

    first = pack_digit(0)
    is_value = first.view(torch.int16) != pack_digit(0, shift=1).view(torch.int16)
    index = torch.zeros(first.shape, dtype=torch.long, device=first.device)
    digit = 0
    while CODE_BASE**digit < positions.numel():
        packed = first if digit == 0 else pack_digit(digit)
        slot = torch.where(is_value, packed.float(), 1).round().long()
        index += (slot - 1) * CODE_BASE**digit
        digit += 1
    return index, is_value, first.view(torch.int16).masked_fill(is_value, 0)


@dataclass
class PackedLayout:
    """A fixed 2:4 mask's cuSPARSELt packing as a gather: between mask updates, ``pack(w)`` builds
    the packed ``P`` (and ``P^T``) from the dense weight with one gather each instead of pruning and
    ``_cslt_compress`` (learned once per mask by :func:`_learn_slots`; bit-identical to compressing)."""

    mask: torch.Tensor
    slots: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    slots_t: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None

    @classmethod
    def learn(
        cls, mask: torch.Tensor, dtype: torch.dtype, transposable: bool, kernels: SparseKernels = CUSPARSELT
    ) -> PackedLayout:
        kind = torch.int32 if mask.numel() < 2**31 else torch.int64
        positions = torch.arange(mask.numel(), device=mask.device, dtype=kind).reshape(mask.shape)
        slots = _learn_slots(positions, mask, dtype, kernels)
        slots_t = (
            _learn_slots(positions.t().contiguous(), mask.t().contiguous(), dtype, kernels)
            if transposable
            else None
        )
        return cls(mask, slots, slots_t)

    def matches(self, w: torch.Tensor) -> bool:
        return self.mask.shape == w.shape and self.mask.device == w.device

    @staticmethod
    def _gather(w: torch.Tensor, slots) -> torch.Tensor:
        index, is_value, constant = slots
        values = w.reshape(-1).take(index).view(torch.int16)
        return torch.where(is_value, values, constant).view(w.dtype)

    def pack(self, w: torch.Tensor, backward: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Packed ``P`` and, if ``backward``, packed ``P^T`` (transposable) or the dense ``P``."""
        packed = self._gather(w, self.slots)
        if not backward:
            return packed, None
        return packed, self._gather(w, self.slots_t) if self.slots_t is not None else w * self.mask


def pack_pruned(
    pruned: torch.Tensor, transposable: bool, backward: bool, kernels: SparseKernels = CUSPARSELT
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Packed ``P`` and, if ``backward``, packed ``P^T`` (transposable) or the dense ``P``."""
    packed = kernels.compress(pruned)
    if not backward:
        return packed, None
    return packed, kernels.compress(pruned.t().contiguous()) if transposable else pruned


class Cusparselt24Linear(torch.autograd.Function):
    """``y = x P^T + b`` with ``P`` the 2:4 weight on cuSPARSELt; straight-through gradient to ``w``.

    ``pack(w, backward)`` returns packed ``P`` and the backward operand: packed ``P^T`` when ``P``
    is transposable (so ``dX = dY P`` is sparse too), else the dense ``P``. ``dW = dY^T X`` is
    dense (optionally with an MVUE-sparsified ``dY^T``).
    """

    @staticmethod
    def forward(ctx, x, w, bias, pack, transposable, mvue, generator, kernels):
        packed, operand = pack(w.detach(), ctx.needs_input_grad[0])
        y = sparse_times_dense_t(packed, x, bias, kernels)
        ctx.save_for_backward(x, operand)
        ctx.transposable, ctx.mvue, ctx.generator, ctx.kernels = transposable, mvue, generator, kernels
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, operand = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0] and ctx.transposable:
            grad_x = sparse_times_dense_t(operand, grad, None, ctx.kernels)
        elif ctx.needs_input_grad[0]:
            grad_x = grad @ operand
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


def vnm_gather_matmul(
    x: torch.Tensor, w: torch.Tensor, pattern: VNM | str, columns: torch.Tensor | None = None
) -> torch.Tensor:
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
