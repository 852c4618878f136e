"""Sparsity masks: 2:4 by magnitude, S-STE soft-thresholding, transposable 2:4, V:N:M (router, exact)
and the unbiased (MVUE) 2:4 sparsification of gradients.

Every function is vectorised torch and works on any device. Weights are (out_features, in_features)
and are made 2:4 along the input (reduction) dimension; activations are (tokens, features) and are
made V:N:M with blocks of V tokens by M features.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from functools import cache

import torch

from frugalml.common.errors import InvalidInputError

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
VNM_MAX = 2**31 - 1  # the largest V or M (a block's rows or columns)


@dataclass(frozen=True)
class VNM:
    """A V:N:M pattern: blocks of ``v`` rows by ``m`` columns; 4 columns per block, N=2 kept of them.

    ``density`` is ``n / m``: 64:2:8 keeps 25% of the entries, 128:2:32 keeps 6.25%.
    """

    v: int
    n: int
    m: int

    def __post_init__(self) -> None:
        if not (1 <= self.v <= VNM_MAX and 4 <= self.m <= VNM_MAX and self.n == 2):
            raise InvalidInputError(
                f"V:N:M pattern {self} is not supported: need 1 <= V <= {VNM_MAX}, N == 2 (the hardware "
                f"2:4 inside the 4 chosen columns) and 4 <= M <= {VNM_MAX}, e.g. vnm:64:2:8"
            )

    @property
    def density(self) -> float:
        return self.n / self.m

    def __str__(self) -> str:
        return f"vnm:{self.v}:{self.n}:{self.m}"

    @classmethod
    def parse(cls, spec: str | VNM) -> VNM:
        """Read ``"vnm:64:2:8"`` (or ``"64:2:8"``) into a pattern."""
        if isinstance(spec, VNM):
            return spec
        match = re.fullmatch(r"(?:vnm:)?(\d+):(\d+):(\d+)", str(spec).strip().lower())
        if match is None:
            raise InvalidInputError(
                f"cannot read V:N:M pattern {spec!r}; write it as vnm:V:N:M, e.g. vnm:64:2:8"
            )
        return cls(*(int(g) for g in match.groups()))


def check_float_tensor(x: torch.Tensor, name: str, ndim: int | None = 2) -> torch.Tensor:
    """Raise InvalidInputError unless ``x`` is a floating torch tensor (of ``ndim`` dims) without NaN."""
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise InvalidInputError(
            f"{name} has dtype {x.dtype}; sparsity masks need float32, float64, float16 or bfloat16"
        )
    if ndim is not None and x.ndim != ndim:
        raise InvalidInputError(f"{name} must be {ndim}-dimensional, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values; fix them before sparsifying")
    return x


def _check_divisible(x: torch.Tensor, name: str, dim: int, by: int, what: str) -> None:
    if x.shape[dim] % by:
        raise InvalidInputError(
            f"{name} has {x.shape[dim]} {what} (shape {tuple(x.shape)}), not divisible by {by}; "
            f"pad or resize it to a multiple of {by}, or leave this layer dense"
        )


def group_ranks(scores: torch.Tensor) -> torch.Tensor:
    """Rank (0 = largest) of each entry in its group along the last dim; ties go to the lower index."""
    a = scores.unsqueeze(-1)  # entry i
    b = scores.unsqueeze(-2)  # entry j
    size = scores.shape[-1]
    earlier = torch.ones(size, size, dtype=torch.bool, device=scores.device).tril(-1)
    beats = (b > a) | ((b == a) & earlier)  # beats[i, j]: j ranks above i
    return beats.sum(-1)


def _keep_top2(scores: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the 2 largest entries along the last dim (exactly 2, ties broken by topk)."""
    index = scores.topk(2, dim=-1).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, index, True)


def mask_24(w: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """Boolean 2:4 mask keeping the two largest |w| in each group of 4 along the last dim.

    Parameters
    ----------
    w : torch.Tensor
        A 2-D float tensor whose last dimension is a multiple of 4.
    validate : bool
        Check dtype, shape and finiteness first (layers skip it in their hot path).

    Returns
    -------
    torch.Tensor
        Boolean tensor of ``w``'s shape with exactly 2 True per group of 4.

    Examples
    --------
    >>> mask_24(torch.tensor([[0.1, -3.0, 2.0, 0.5]])).tolist()
    [[False, True, True, False]]
    """
    if validate:
        check_float_tensor(w, "weight")
        _check_divisible(w, "weight", -1, 4, "columns")
    groups = w.detach().abs().reshape(*w.shape[:-1], -1, 4)
    return _keep_top2(groups).reshape(w.shape)


def soft_threshold_24(w: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """S-STE's soft-thresholded 2:4 weight: the two largest |w| per group, each shrunk by the third.

    ``S(w) = sign(w) * max(|w| - t, 0)`` with ``t`` the third-largest |w| of the group, so the result
    is continuous in ``w`` and has at most 2 non-zeros per group of 4.
    """
    return soft_threshold_24_with_mask(w, validate)[0]


def soft_threshold_24_with_mask(w: torch.Tensor, validate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`soft_threshold_24` and the 2:4 magnitude mask (:func:`mask_24`) from one top-3 pass."""
    if validate:
        check_float_tensor(w, "weight")
        _check_divisible(w, "weight", -1, 4, "columns")
    groups = w.reshape(*w.shape[:-1], -1, 4)
    magnitude = groups.abs()
    top = magnitude.topk(3, dim=-1)
    mask = torch.zeros_like(magnitude, dtype=torch.bool).scatter_(-1, top.indices[..., :2], True)
    shrunk = torch.where(mask, torch.sign(groups) * (magnitude - top.values[..., 2:3]).clamp_min(0), 0)
    return shrunk.reshape(w.shape), mask.reshape(w.shape)


def sste_beta(w: torch.Tensor) -> float:
    """S-STE's fixed per-tensor scale ``<w, S(w)> / <S(w), S(w)>`` (computed once, when sparsity starts).

    Scaling ``S(w)`` by beta makes it the least-squares fit of ``w``, restoring the magnitude the
    soft threshold removed. Returns 1.0 for an all-zero tensor.
    """
    s = soft_threshold_24(w.detach()).double()
    denominator = float((s * s).sum())
    return float((w.detach().double() * s).sum()) / denominator if denominator > 0 else 1.0


@cache
def _transposable_patterns(device_type: str) -> torch.Tensor:
    """The 90 binary 4x4 patterns with exactly two ones in every row and every column, as (16, 90)."""
    rows = [r for r in itertools.product((0, 1), repeat=4) if sum(r) == 2]
    patterns = [
        block
        for block in itertools.product(rows, repeat=4)
        if all(sum(col) == 2 for col in zip(*block, strict=True))
    ]
    return torch.tensor(patterns, dtype=torch.float32).reshape(len(patterns), 16).t().contiguous()


TRANSPOSABLE_METHODS = ("exact", "greedy")


def transposable_mask_24(w: torch.Tensor, validate: bool = True, method: str = "exact") -> torch.Tensor:
    """Boolean mask that is 2:4 along rows AND columns (per 4x4 block, at most 2 per row and column).

    The backward pass ``dX = dY W`` multiplies by ``W`` along its other dimension, so a mask that is
    2:4 in both directions lets both matmuls use the sparse hardware.

    ``method="exact"`` picks, in every 4x4 block, the one of the 90 patterns with exactly two per row
    and column that keeps the largest total |w| (one small matmul). ``"greedy"`` visits the block's
    entries by decreasing |w| (ties: lower row-major index first) and keeps each one whose row and
    column still hold fewer than 2: the rule of torch's fused ``_sparse_semi_structured_tile`` kernel
    (``largest_abs_values_greedy``), which can keep 7 of 16.
    """
    if validate:
        check_float_tensor(w, "weight")
        _check_divisible(w, "weight", 0, 4, "rows")
        _check_divisible(w, "weight", 1, 4, "columns")
    rows, cols = w.shape
    blocks = w.detach().abs().float().reshape(rows // 4, 4, cols // 4, 4).permute(0, 2, 1, 3)
    if method == "greedy":
        keep = _greedy_tiles(blocks.reshape(-1, 16))
        return keep.reshape(rows // 4, cols // 4, 4, 4).permute(0, 2, 1, 3).reshape(rows, cols)
    if method != "exact":
        raise InvalidInputError(
            f"unknown transposable mask method {method!r}; choose one of: {', '.join(TRANSPOSABLE_METHODS)}"
        )
    patterns = _transposable_patterns(w.device.type).to(w.device)
    best = (blocks.reshape(-1, 16) @ patterns).argmax(dim=1)
    chosen = patterns.t()[best].reshape(rows // 4, cols // 4, 4, 4).permute(0, 2, 1, 3)
    return chosen.reshape(rows, cols).bool()


def _greedy_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """Greedy transposable 2:4 of (tiles, 16) row-major 4x4 magnitudes: 16 vectorised steps."""
    order = tiles.argsort(dim=1, descending=True, stable=True)
    row_used = torch.zeros(tiles.shape[0], 4, dtype=torch.int8, device=tiles.device)
    col_used = torch.zeros_like(row_used)
    keep = torch.zeros(tiles.shape, dtype=torch.bool, device=tiles.device)
    for step in range(16):
        index = order[:, step : step + 1]
        row, col = index // 4, index % 4
        ok = (row_used.gather(1, row) < 2) & (col_used.gather(1, col) < 2)
        keep.scatter_(1, index, ok)
        row_used.scatter_add_(1, row, ok.to(torch.int8))
        col_used.scatter_add_(1, col, ok.to(torch.int8))
    return keep


def _vnm_blocks(x: torch.Tensor, pattern: VNM) -> torch.Tensor:
    """View |x| as (row blocks, V, column groups, M)."""
    rows, cols = x.shape
    return x.detach().abs().float().reshape(rows // pattern.v, pattern.v, cols // pattern.m, pattern.m)


@cache
def _subsets(m: int, device_type: str) -> torch.Tensor:
    return torch.tensor(list(itertools.combinations(range(m), 4)), dtype=torch.long)


def vnm_columns(
    x: torch.Tensor,
    pattern: VNM | str,
    method: str = "router",
    chunk_elements: int = 1 << 24,
    validate: bool = True,
) -> torch.Tensor:
    """The 4 columns kept in each V x M block: (row blocks, column groups, 4), ascending within a group.

    Parameters
    ----------
    x : torch.Tensor
        (rows, cols) with rows divisible by V and cols by M.
    pattern : VNM or str
        E.g. ``"vnm:64:2:8"``.
    method : {"router", "exact"}
        ``router``: the 4 columns with the largest L1 norm over the block's V rows (cheap).
        ``exact``: the 4 columns whose per-row top-2 keeps the most energy (sum of squares),
        searched over all C(M, 4) subsets, in chunks scoring at most ``chunk_elements`` values.
    validate : bool
        Check dtype, shape and finiteness first (layers skip it in their hot path).
    """
    pattern = VNM.parse(pattern)
    if validate:
        check_float_tensor(x, "activations")
        _check_divisible(x, "activations", 0, pattern.v, "rows (tokens)")
        _check_divisible(x, "activations", 1, pattern.m, "columns (features)")
    blocks = _vnm_blocks(x, pattern)
    if method == "router":
        picked = blocks.sum(dim=1).topk(4, dim=-1).indices
    elif method == "exact":
        subsets = _subsets(pattern.m, x.device.type).to(x.device)
        energy = blocks.square()
        chunk = max(1, chunk_elements // (energy.numel() // pattern.m * 4))
        best_score: torch.Tensor | None = None
        best_index = torch.empty(0, dtype=torch.long)
        for start in range(0, len(subsets), chunk):
            part = subsets[start : start + chunk]  # (S, 4)
            chosen = energy[..., part]  # (B, V, G, S, 4)
            score = chosen.topk(2, dim=-1).values.sum(-1).sum(1)  # (B, G, S)
            value, index = score.max(dim=-1)
            if best_score is None:
                best_score, best_index = value, index + start
            else:
                better = value > best_score
                best_score = torch.where(better, value, best_score)
                best_index = torch.where(better, index + start, best_index)
        picked = subsets[best_index]
    else:
        raise InvalidInputError(f"unknown V:N:M column method {method!r}; choose one of: router, exact")
    return picked.sort(dim=-1).values


def vnm_mask(
    x: torch.Tensor, pattern: VNM | str, method: str = "router", validate: bool = True
) -> torch.Tensor:
    """Boolean V:N:M mask: 4 shared columns per V x M block, then each row's top 2 of them.

    See :func:`vnm_columns` for ``method``. Exactly 2 entries per row per M columns are kept.
    """
    pattern = VNM.parse(pattern)
    columns = vnm_columns(x, pattern, method, validate=validate)  # (B, G, 4)
    blocks = _vnm_blocks(x, pattern)  # (B, V, G, M)
    index = columns.unsqueeze(1).expand(-1, pattern.v, -1, -1)  # (B, V, G, 4)
    top2 = blocks.gather(-1, index).topk(2, dim=-1).indices
    mask = torch.zeros_like(blocks, dtype=torch.bool)
    mask.scatter_(-1, index.gather(-1, top2), True)
    return mask.reshape(x.shape)


def is_24(x: torch.Tensor) -> bool:
    """True when every group of 4 along the last dim has at most 2 non-zeros."""
    if x.shape[-1] % 4:
        return False
    return bool(((x != 0).reshape(*x.shape[:-1], -1, 4).sum(-1) <= 2).all())


def is_transposable_24(x: torch.Tensor) -> bool:
    """True when ``x`` and ``x.T`` are both 2:4 (at most 2 non-zeros per row and column of each 4x4)."""
    return x.ndim == 2 and is_24(x) and is_24(x.t())


def is_vnm(x: torch.Tensor, pattern: VNM | str) -> bool:
    """True when ``x`` follows V:N:M: per V x M block at most 4 non-zero columns and per row at most 2."""
    pattern = VNM.parse(pattern)
    if x.ndim != 2 or x.shape[0] % pattern.v or x.shape[1] % pattern.m:
        return False
    nonzero = (x != 0).reshape(x.shape[0] // pattern.v, pattern.v, -1, pattern.m)
    columns_used = nonzero.any(dim=1).sum(-1)
    per_row = nonzero.sum(-1)
    return bool((columns_used <= 4).all() and (per_row <= pattern.n).all())


def kept_fraction(x: torch.Tensor, mask: torch.Tensor, power: float = 2.0) -> float:
    """Fraction of ``sum |x|^power`` that ``mask`` keeps (energy for power 2, magnitude for 1)."""
    total = x.detach().abs().double().pow(power).sum()
    return float((x.detach().abs().double().pow(power) * mask).sum() / total) if total > 0 else 1.0


def dense_feature_count(features: int, fraction: float, m: int) -> int:
    """Features kept dense by the 95/5 split: ``fraction`` of ``features`` rounded up to a multiple
    of M (so the sparse rest still splits into whole M-column groups); 0 when ``fraction`` is 0."""
    if fraction <= 0:
        return 0
    return min(features, math.ceil(fraction * features / m) * m)


@cache
def _token_order(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed))
    return order, order.argsort()


def token_permutation(
    rows: int, seed: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed permutation of ``rows`` token rows for ``seed`` and its inverse (cached per rows, seed)."""
    order, inverse = _token_order(rows, seed)
    return order.to(device), inverse.to(device)


def activation_mask(
    x: torch.Tensor,
    pattern: VNM | str,
    method: str = "router",
    dense_fraction: float = 0.0,
    permutation_seed: int | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """V:N:M mask of (tokens, features) activations with the two tricks of Haziza et al. (2025).

    Parameters
    ----------
    x, pattern, method :
        See :func:`vnm_mask`; rows must be a multiple of V and features of M.
    dense_fraction : float
        The 95/5 split: this fraction of the features (count from :func:`dense_feature_count`) is
        kept dense; the rule picks the features with the largest L1 norm over this batch's tokens (the
        outlier features V:N:M would cut most), and the other features, in their order, are V:N:M.
    permutation_seed : int or None
        Form the blocks of V tokens after a fixed random permutation of the token rows (seeded,
        the same every step for a given number of rows), so a block mixes positions and sequences
        instead of V consecutive tokens; the mask is returned in the original row order.
    """
    pattern = VNM.parse(pattern)
    if validate:
        check_float_tensor(x, "activations")
        _check_divisible(x, "activations", 0, pattern.v, "rows (tokens)")
        _check_divisible(x, "activations", 1, pattern.m, "columns (features)")
    if permutation_seed is not None:
        order, inverse = token_permutation(x.shape[0], permutation_seed, x.device)
        return activation_mask(x[order], pattern, method, dense_fraction, None, False)[inverse]
    dense = dense_feature_count(x.shape[1], dense_fraction, pattern.m)
    if not dense:
        return vnm_mask(x, pattern, method, validate=False)
    keep = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
    keep[x.detach().abs().sum(0).topk(dense).indices] = True
    mask = torch.ones(x.shape, dtype=torch.bool, device=x.device)
    if dense < x.shape[1]:
        rest = (~keep).nonzero().squeeze(1)
        mask[:, rest] = vnm_mask(x[:, rest], pattern, method, validate=False)
    return mask


def mvue_24(g: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Unbiased 2:4 sparsification along the last dim: in each pair keep one entry at random.

    Entry ``a`` of the pair ``(a, b)`` survives with probability ``|a| / (|a| + |b|)`` and becomes
    ``sign(a) (|a| + |b|)``, so the expectation equals the input (the MVUE of Chmiel et al., used by
    Hu et al. for the weight gradient). One survivor per pair makes every group of 4 2:4.
    """
    if g.shape[-1] % 2:
        raise InvalidInputError(
            f"MVUE pairs entries along the last dim, which has odd size {g.shape[-1]}; use an even "
            "number of tokens per batch or disable mvue"
        )
    a, b = g[..., 0::2], g[..., 1::2]
    total = a.abs() + b.abs()
    p = torch.where(total > 0, a.abs() / total.clamp_min(torch.finfo(g.dtype).tiny), 0.5)
    draw = torch.rand(p.shape, generator=generator, device=g.device, dtype=p.dtype)
    keep_a = draw < p
    out_a = torch.where(keep_a, torch.sign(a) * total, 0)
    out_b = torch.where(keep_a, 0, torch.sign(b) * total)
    return torch.stack([out_a, out_b], dim=-1).reshape(g.shape)
