"""Modules: the 2:4 sparse Linear (dense master weights, optional V:N:M input), squared-ReLU and
SwiGLU FFNs, and a mixture of FFN experts. FFNs are written dense; :func:`sparsify_ffn` swaps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from frugalml.common.errors import InvalidInputError, PeerUnavailableError
from frugalml.common.validate import one_of
from frugalml.sparse24.autograd import (
    VNM_KERNELS,
    MaskedDecay,
    SparseMatmul,
    VNMMatmul,
    sparse_value,
    sparse_weight,
    sparsify_activations,
    weight_mask,
)
from frugalml.sparse24.backends import (
    BACKENDS,
    CUSPARSELT,
    Cusparselt24Linear,
    PackedLayout,
    check_backend,
    check_cusparselt_dtypes,
    check_cusparselt_shapes,
    fused_greedy_prune,
    pack_pruned,
)
from frugalml.sparse24.masks import TRANSPOSABLE_METHODS, VNM, soft_threshold_24
from frugalml.sparse24.packing import rule_layout

PACKINGS = ("learned", "rule")


@dataclass(frozen=True)
class SparsityConfig:
    """How FFN matmuls are made sparse.

    Parameters
    ----------
    weights : {"2:4", None}
        2:4 weights (recomputed from the dense master weights every forward), or dense.
    activations : str or None
        V:N:M pattern for the input of each FFN's output projection (``"vnm:64:2:8"``), ``"2:4"``
        (the same as ``vnm:1:2:4``), or None for dense activations.
    method : {"sste", "ste"}
        S-STE soft-thresholding with a fixed per-tensor beta, or plain masked straight-through.
    transposable : bool
        Use transposable 2:4 masks so ``W^T`` is 2:4 too (the backward ``dX = dY W``).
    transposable_method : {"exact", "greedy"}
        Transposable mask: best of the 90 patterns per 4x4 block, or greedy by |w| (torch's fused
        CUDA tile kernel's rule; with ``method="ste"`` the cusparselt backend then prunes in that kernel).
    mvue : bool
        Sparsify ``dY^T`` with the unbiased MVUE estimator in the weight-gradient matmul.
    router : {"router", "exact"}
        How V:N:M picks the 4 columns of each block: L1 router or exact search.
    backend : {"emulate", "cusparselt"}
        Masked dense matmuls (any device) or cuSPARSELt 2:4 kernels (CUDA sm80+, fp16/bf16).
    seed : int
        Seed of the MVUE sampling.
    flip_every : int
        Measure the mask flip rate on every ``flip_every``-th training forward (0: never). Telemetry
        stays on the device; it is read (one host sync) only when asked for.
    mask_every : int
        Recompute the 2:4 mask every ``mask_every`` training forwards and hold it in between
        (``method="ste"`` only); the weights' values are re-read every forward. On cusparselt the
        held mask's packing is learned once, so each forward packs by a gather instead of pruning
        and ``_cslt_compress``. With ``mask_every > 1`` the flip rate compares consecutive masks.
    vnm_kernel : {"mask", "gather", "triton"}
        How the V:N:M-sparse input is multiplied (emulate backend): masked dense matmul, gather +
        batched matmul, or the Triton kernel (CUDA, or CPU with ``TRITON_INTERPRET=1``); the last two
        read only each block's kept columns. MVUE training steps use the masked matmul.
    dense_features : float
        The 95/5 split of Haziza et al.: this fraction of the V:N:M input's features (rounded up to
        a multiple of M) is kept dense, the features with the largest L1 norm over the batch's tokens
        (see :func:`frugalml.sparse24.masks.activation_mask`); 0.05 is the paper's 5%.
    token_permutation : bool
        Form V:N:M blocks of V tokens after a fixed (``seed``-ed) permutation of the token rows.
    masked_decay : float
        Hu et al.'s masked decay: add ``masked_decay * (1 - mask) * w`` to the dense master weight's
        gradient, pulling the pruned weights towards zero (0: off).
    packing : {"learned", "rule"}
        cusparselt only: pack with ``_cslt_compress`` every step (or, with ``mask_every > 1``, by a
        gather learned per held mask), or by the mask-independent rule learned once per weight shape
        (:mod:`frugalml.sparse24.packing`): each mask's gather is then built without compress calls.
    """

    weights: str | None = "2:4"
    activations: str | None = "vnm:64:2:8"
    method: str = "sste"
    transposable: bool = False
    mvue: bool = False
    router: str = "router"
    backend: str = "emulate"
    seed: int = 0
    transposable_method: str = "exact"
    flip_every: int = 1
    mask_every: int = 1
    vnm_kernel: str = "mask"
    dense_features: float = 0.0
    token_permutation: bool = False
    masked_decay: float = 0.0
    packing: str = "learned"

    def __post_init__(self) -> None:
        if self.weights not in (None, "2:4", "dense"):
            raise InvalidInputError(f"unknown weight sparsity {self.weights!r}; choose 2:4 or dense")
        if self.weights == "dense":
            object.__setattr__(self, "weights", None)
        if self.activations in ("dense", "none"):
            object.__setattr__(self, "activations", None)
        if self.activations is not None:
            spec = "vnm:1:2:4" if self.activations == "2:4" else self.activations
            object.__setattr__(self, "activations", str(VNM.parse(spec)))
        one_of(self.method, ("sste", "ste"), "weight method")
        one_of(self.router, ("router", "exact"), "V:N:M column method")
        one_of(self.backend, BACKENDS, "backend")
        one_of(self.transposable_method, TRANSPOSABLE_METHODS, "transposable mask method")
        if self.flip_every < 0:
            raise InvalidInputError(f"flip_every must be >= 0 (0: no flip rate), got {self.flip_every}")
        if self.mask_every < 1 or (self.mask_every > 1 and self.method != "ste"):
            raise InvalidInputError(
                f"mask_every must be >= 1, and > 1 only with method='ste' (S-STE re-thresholds every "
                f"step), got mask_every={self.mask_every}, method={self.method!r}"
            )
        one_of(self.vnm_kernel, VNM_KERNELS, "V:N:M kernel")
        one_of(self.packing, PACKINGS, "packing")
        if self.backend == "cusparselt" and self.vnm_kernel != "mask":
            raise InvalidInputError("vnm_kernel 'gather'/'triton' runs on backend 'emulate'; use 'mask'")
        if not 0.0 <= self.dense_features < 1.0:
            raise InvalidInputError(
                f"dense_features is the fraction of features kept dense, in [0, 1), got {self.dense_features}"
            )
        if self.masked_decay < 0:
            raise InvalidInputError(f"masked_decay must be >= 0 (0: off), got {self.masked_decay}")
        if self.vnm_kernel != "mask" and (self.dense_features or self.token_permutation):
            raise InvalidInputError(
                "dense_features and token_permutation change which rows and columns form V:N:M blocks; "
                f"they run with vnm_kernel 'mask', not {self.vnm_kernel!r}"
            )
        if self.backend == "cusparselt" and self.weights is None:
            raise InvalidInputError("backend 'cusparselt' accelerates 2:4 weights; set weights='2:4'")

    @property
    def pattern(self) -> VNM | None:
        return None if self.activations is None else VNM.parse(self.activations)


class SparseLinear(nn.Module):
    """A Linear whose weight is made 2:4 on the fly from dense master weights, and whose input can
    be V:N:M-sparsified. ``weight`` and ``bias`` keep their names, so state dicts match nn.Linear.

    Build it from a dense layer with :meth:`from_dense` (sharing its parameters) and turn it back
    with :meth:`to_dense`. Telemetry of the last training forward: ``last_flip_rate`` (fraction of
    weight-mask entries that changed, measured every ``config.flip_every`` forwards; NaN until the
    first measurement),
    ``last_activation_density``; both are kept on the device until read.
    """

    _last_mask: torch.Tensor | None  # a buffer (moves with the module), None between measurements

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        config: SparsityConfig | None = None,
        sparse_input: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dense = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._adopt(dense, config or SparsityConfig(), sparse_input)

    def _adopt(self, dense: nn.Linear, config: SparsityConfig, sparse_input: bool) -> None:
        self.in_features, self.out_features = dense.in_features, dense.out_features
        self.weight, self.bias = dense.weight, dense.bias
        self.config, self.sparse_input = config, sparse_input and config.activations is not None
        check_backend(config.backend, dense.weight.device)
        if config.weights and (self.in_features % 4 or (config.transposable and self.out_features % 4)):
            need = "both dimensions" if config.transposable else "in_features"
            raise InvalidInputError(
                f"a 2:4 Linear needs {need} divisible by 4, got out={self.out_features}, "
                f"in={self.in_features}; resize the layer or leave it dense"
            )
        pattern = config.pattern
        if self.sparse_input and pattern is not None and self.in_features % pattern.m:
            raise InvalidInputError(
                f"{config.activations} activations need in_features divisible by M={pattern.m}, "
                f"got {self.in_features}; pick another M or leave activations dense"
            )
        if config.backend == "cusparselt":
            check_cusparselt_shapes(self.out_features, self.in_features)
        if self.sparse_input and config.vnm_kernel == "triton":
            from frugalml.sparse24.vnm_kernel import triton_status

            ok, reason = triton_status(dense.weight.device)
            if not ok:
                raise PeerUnavailableError(f"vnm_kernel 'triton' cannot run: {reason}; use 'gather'/'mask'")
        self.beta = self.compute_beta() if config.weights and config.method == "sste" else 1.0
        self.kernels = CUSPARSELT
        self._generator: torch.Generator | None = None
        self.register_buffer("_last_mask", None, persistent=False)
        self._training_forwards = 0
        self._held: tuple[torch.Tensor, Any] | None = None
        self._mask_age = 0
        self._flip_rate: torch.Tensor | None = None
        self._activation_density: torch.Tensor | float = 1.0

    @property
    def last_flip_rate(self) -> float:
        return float("nan") if self._flip_rate is None else float(self._flip_rate)

    @property
    def last_activation_density(self) -> float:
        return float(self._activation_density)

    @classmethod
    def from_dense(
        cls, linear: nn.Linear, config: SparsityConfig, sparse_input: bool = False
    ) -> SparseLinear:
        """Wrap ``linear``'s own parameters (no copy); S-STE's beta is fixed from them now."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._adopt(linear, config, sparse_input)
        return layer

    def to_dense(self) -> nn.Linear:
        """An nn.Linear holding this layer's parameters (the dense master weights)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight, linear.bias = self.weight, self.bias
        return linear

    def compute_beta(self) -> float:
        """S-STE's per-tensor scale for the current weights (least-squares fit of the kept weights)."""
        w = self.weight.detach()
        s = soft_threshold_24(w, validate=False) * self.mask()
        denominator = float((s.double() ** 2).sum())
        return float((w.double() * s).sum()) / denominator if denominator > 0 else 1.0

    def mask(self) -> torch.Tensor:
        """The current 2:4 mask of the weight."""
        return weight_mask(self.weight.detach(), self.config.transposable, self.config.transposable_method)

    def effective_weight(self) -> torch.Tensor:
        """The weight the forward multiplies by (2:4, with a straight-through gradient)."""
        return self._effective(self.weight)

    def _effective(self, weight: torch.Tensor, holder: dict | None = None) -> torch.Tensor:
        """2:4 value of ``weight`` (the master or its masked-decay wrapper); its mask goes to ``holder``."""
        if not self.config.weights:
            return weight
        c = self.config
        if c.mask_every > 1:
            detached = weight.detach()
            mask = self._hold(detached, lambda m: m)
            value = weight + (torch.where(mask, detached, 0) - detached).detach()
        else:
            value, mask = sparse_weight(weight, c.method, c.transposable, self.beta, c.transposable_method)
            if self.training:
                self._track_flips(lambda: mask)
        if holder is not None:
            holder["mask"] = mask
        return value

    def _hold(self, w: torch.Tensor, learn: Callable[[torch.Tensor], Any]) -> Any:
        """``learn(mask)`` of the mask held for ``mask_every`` training forwards, recomputed when due
        (or when the weight moved or changed shape); the flip rate compares consecutive masks."""
        held = self._held
        stale = held is None or held[0].shape != w.shape or held[0].device != w.device
        if held is None or stale or (self.training and self._mask_age >= self.config.mask_every):
            mask = self._prune(w) != 0 if self.config.backend == "cusparselt" else self.mask()
            if held is not None and self.training and not stale and self.config.flip_every:
                self._flip_rate = (mask != held[0]).float().mean()
            held = self._held = (mask, learn(mask))
            self._mask_age = 0
        if self.training:
            self._mask_age += 1
        return held[1]

    def _pack(
        self, w: torch.Tensor, backward: bool, holder: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """cusparselt operands of the detached weight: packed ``P`` and the backward operand; the
        mask goes to ``holder`` (masked decay)."""
        c = self.config
        if c.mask_every > 1:

            def learn(mask):
                if c.packing == "rule":
                    return rule_layout(mask, w.dtype, c.transposable, self.kernels)
                return PackedLayout.learn(mask, w.dtype, c.transposable, self.kernels)

            packed = self._hold(w, learn).pack(w, backward)
            if holder is not None and self._held is not None:
                holder["mask"] = self._held[0]
            return packed
        pruned = self._prune(w)
        mask = pruned != 0 if holder is not None or c.packing == "rule" else None
        if self.training:
            self._track_flips(lambda: pruned != 0 if mask is None else mask)
        if holder is not None:
            holder["mask"] = mask
        if c.packing == "rule":
            rule_mask = pruned != 0 if mask is None else mask
            return rule_layout(rule_mask, w.dtype, c.transposable, self.kernels).pack(pruned, backward)
        return pack_pruned(pruned, c.transposable, backward, self.kernels)

    def _track_flips(self, mask: Callable[[], torch.Tensor]) -> None:
        """Every ``flip_every``-th training forward, the fraction of mask entries that changed since
        the forward before it (a device tensor: no host sync here)."""
        every = self.config.flip_every
        if not every:
            return
        self._training_forwards += 1
        count = self._training_forwards
        if count % every == 0 and self._last_mask is not None:
            current = mask()
            if current.shape == self._last_mask.shape:
                self._flip_rate = (current != self._last_mask).float().mean()
        self._last_mask = mask() if (count + 1) % every == 0 else None

    def _prune(self, w: torch.Tensor) -> torch.Tensor:
        """The 2:4 value of the detached weight ``w`` for the cusparselt backend."""
        c = self.config
        if c.method == "ste" and c.transposable and c.transposable_method == "greedy" and w.is_cuda:
            return fused_greedy_prune(w)
        return sparse_value(w, c.method, c.transposable, self.beta, c.transposable_method)[0]

    def _mvue_generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.config.seed)
        return self._generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        c = self.config
        pattern = c.pattern
        if self.sparse_input and pattern is not None:
            x2 = sparsify_activations(
                x2, pattern, c.router, c.dense_features, c.seed if c.token_permutation else None
            )
            if self.training:
                self._activation_density = (x2 != 0).float().mean()
        decay = c.weights and c.masked_decay and self.training
        holder: dict[str, torch.Tensor] | None = {} if decay else None
        weight = self.weight if holder is None else MaskedDecay.apply(self.weight, holder, c.masked_decay)
        if c.backend == "cusparselt":
            check_cusparselt_dtypes(self.weight, x2)
            mvue = c.mvue and self.training
            pack = self._pack if holder is None else partial(self._pack, holder=holder)
            y = Cusparselt24Linear.apply(
                x2,
                weight,
                self.bias,
                pack,
                c.transposable,
                mvue,
                self._mvue_generator(x2.device) if mvue else None,
                self.kernels,
            )
            return y.reshape(*shape[:-1], self.out_features)
        w = self._effective(weight, holder)
        if self.sparse_input and c.vnm_kernel != "mask" and not (c.mvue and self.training):
            y = VNMMatmul.apply(x2, w, self.bias, c.pattern, c.vnm_kernel)
        elif self.config.mvue and self.training:
            y = SparseMatmul.apply(x2, w, self.bias, True, self._mvue_generator(x2.device))
        else:
            y = F.linear(x2, w, self.bias)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"weights={c.weights}, activations={c.activations if self.sparse_input else None}, "
            f"method={c.method}, transposable={c.transposable and c.transposable_method}, "
            f"backend={c.backend}"
            + (f", dense_features={c.dense_features}" if self.sparse_input and c.dense_features else "")
            + (", token_permutation" if self.sparse_input and c.token_permutation else "")
            + (f", masked_decay={c.masked_decay}" if c.masked_decay else "")
        )


class SquaredReLUFFN(nn.Module):
    """``Y = ReLU(X W1^T)^2 W2^T``: the FFN whose activations are naturally sparse."""

    def __init__(self, dim: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=bias)
        self.w2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.relu(self.w1(x)).square())


class SwiGLUFFN(nn.Module):
    """Llama's FFN, ``down(silu(gate(x)) * up(x))``, with HF LlamaMLP's attribute names."""

    def __init__(self, dim: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=bias)
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


FFN_KINDS = {"relu2": SquaredReLUFFN, "swiglu": SwiGLUFFN}


class MoEFFN(nn.Module):
    """Top-k mixture of FFN experts with a dense linear router; each expert can be made sparse.

    Tokens are dispatched with index_select / index_add (no per-token Python loop).
    """

    def __init__(
        self, dim: int, hidden: int, n_experts: int = 4, top_k: int = 2, expert: str = "relu2"
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise InvalidInputError(f"top_k must be in [1, n_experts={n_experts}], got {top_k}")
        self.top_k = top_k
        self.router = nn.Linear(dim, n_experts, bias=False)
        expert_cls = FFN_KINDS[one_of(expert, FFN_KINDS, "expert kind")]
        self.experts = nn.ModuleList(expert_cls(dim, hidden) for _ in range(n_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        weights, chosen = self.router(flat).topk(self.top_k, dim=-1)
        weights = weights.softmax(dim=-1)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = (chosen == e).nonzero(as_tuple=True)
            if token.numel():
                y = expert(flat.index_select(0, token)) * weights[token, slot].unsqueeze(-1)
                out.index_add_(0, token, y)
        return out.reshape(x.shape)
