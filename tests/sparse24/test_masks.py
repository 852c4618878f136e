"""Masks satisfy their patterns, keep what they should, and reject bad input clearly."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import (
    VNM,
    is_24,
    is_transposable_24,
    is_vnm,
    kept_fraction,
    mask_24,
    soft_threshold_24,
    sste_beta,
    transposable_mask_24,
    vnm_columns,
    vnm_mask,
)

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6))


def _tensor(rows, cols, seed, ties=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g)
    return x.round() if ties else x  # rounding creates ties and zeros


@settings(max_examples=20, deadline=None)
@given(shapes, st.integers(0, 10_000), st.booleans())
def test_mask_24_keeps_exactly_two_largest_per_group(shape, seed, ties):
    w = _tensor(shape[0] * 2, shape[1] * 4, seed, ties)
    m = mask_24(w)
    groups = m.reshape(-1, 4)
    assert (groups.sum(-1) == 2).all() and is_24(w * m)
    a = w.abs().reshape(-1, 4)
    kept_min = torch.where(groups, a, torch.inf).min(-1).values
    dropped_max = torch.where(groups, -torch.inf, a).max(-1).values
    assert (kept_min >= dropped_max).all()


@settings(max_examples=20, deadline=None)
@given(shapes, st.integers(0, 10_000), st.booleans())
def test_soft_threshold_is_24_shrinks_by_third_largest(shape, seed, ties):
    w = _tensor(shape[0], shape[1] * 4, seed, ties)
    s = soft_threshold_24(w)
    assert is_24(s)
    assert ((s == 0) | (torch.sign(s) == torch.sign(w))).all()
    third = w.abs().reshape(-1, 4).sort(-1, descending=True).values[:, 2:3]
    expected = (w.abs().reshape(-1, 4) - third).clamp_min(0)
    assert torch.allclose(s.abs().reshape(-1, 4), expected)


def test_sste_beta_is_least_squares_scale():
    w = _tensor(16, 32, 3)
    s = soft_threshold_24(w)
    beta = sste_beta(w)
    assert beta > 1  # soft thresholding shrinks, beta restores
    losses = [float(((w - b * s) ** 2).sum()) for b in (beta * 0.99, beta, beta * 1.01)]
    assert losses[1] < losses[0] and losses[1] < losses[2]
    assert sste_beta(torch.zeros(4, 4)) == 1.0


def _best_transposable(block):
    """Largest kept |w| over all 2^16 masks with at most 2 per row and column (brute force)."""
    bits = (torch.arange(1 << 16).unsqueeze(1) >> torch.arange(16)) & 1
    masks = bits.reshape(-1, 4, 4).float()
    valid = (masks.sum(1) <= 2).all(1) & (masks.sum(2) <= 2).all(1)
    return float((masks[valid] * block).sum((1, 2)).max())


def test_transposable_mask_is_optimal_against_brute_force():
    w = _tensor(8, 4, 7)
    m = transposable_mask_24(w)
    assert is_transposable_24(w * m)
    for r in (0, 4):
        block = w[r : r + 4].abs()
        assert float((block * m[r : r + 4]).sum()) == pytest.approx(_best_transposable(block), rel=1e-6)


@settings(max_examples=15, deadline=None)
@given(shapes, st.integers(0, 10_000))
def test_transposable_mask_pattern(shape, seed):
    w = _tensor(shape[0] * 4, shape[1] * 4, seed)
    m = transposable_mask_24(w)
    assert is_transposable_24(w * m) and (m.reshape(-1, 4).sum(-1) == 2).all()


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(["4:2:8", "2:2:4", "8:2:16", "1:2:4", "3:2:5"]),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 10_000),
    st.sampled_from(["router", "exact"]),
    st.booleans(),
)
def test_vnm_mask_pattern_and_density(spec, row_blocks, col_groups, seed, method, ties):
    p = VNM.parse(spec)
    x = _tensor(p.v * row_blocks, p.m * col_groups, seed, ties)
    m = vnm_mask(x, p, method)
    assert is_vnm(x * m, p)
    assert (m.reshape(x.shape[0], -1, p.m).sum(-1) == 2).all()  # exactly N per row per M


def test_exact_search_matches_brute_force_and_beats_router():
    p = VNM(4, 2, 8)
    h = torch.relu(_tensor(16, 16, 11)) ** 2
    exact, router = vnm_mask(h, p, "exact"), vnm_mask(h, p, "router")
    assert kept_fraction(h, exact) >= kept_fraction(h, router) - 1e-12
    columns = vnm_columns(h, p, "exact")
    block = h[:4, :8] ** 2
    best = max(
        float(block[:, list(c)].topk(2, dim=1).values.sum()) for c in itertools.combinations(range(8), 4)
    )
    chosen = float(block[:, columns[0, 0]].topk(2, dim=1).values.sum())
    assert chosen == pytest.approx(best)


def test_router_keeps_about_the_paper_energy():
    g = torch.Generator().manual_seed(0)
    h = torch.relu(torch.randn(1024, 256, generator=g)) ** 2
    assert kept_fraction(h, vnm_mask(h, "16:2:8")) == pytest.approx(0.801, abs=0.01)


def test_validators_reject_violations():
    assert not is_24(torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    assert not is_24(torch.ones(2, 6))
    dense = torch.ones(4, 4) * torch.tensor([1.0, 1.0, 0.0, 0.0])  # every row keeps columns 0, 1
    assert is_24(dense) and not is_transposable_24(dense)
    x = torch.zeros(2, 8)
    x[0, :2] = 1
    x[1, 2:4] = 1
    x[1, 4] = 0
    assert is_vnm(x, "2:2:8")
    x[1, 4:6] = 1  # row 1 now has 4 non-zeros
    assert not is_vnm(x, "2:2:8")
    y = torch.zeros(3, 8)
    y[0, [0, 1]] = 1
    y[1, [2, 3]] = 1
    y[2, [0, 2]] = 1
    assert is_vnm(y, "3:2:8")
    y[2, [0, 2]] = 0
    y[2, [4, 5]] = 1  # six distinct columns used in the block
    assert not is_vnm(y, "3:2:8")


@pytest.mark.parametrize("fn", [mask_24, soft_threshold_24, transposable_mask_24])
def test_weight_masks_reject_bad_input(fn):
    with pytest.raises(InvalidInputError, match="divisible by 4"):
        fn(torch.randn(8, 6))
    with pytest.raises(InvalidInputError, match="dtype"):
        fn(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(InvalidInputError, match="NaN"):
        fn(torch.full((4, 4), float("nan")))
    with pytest.raises(InvalidInputError, match="2-dimensional"):
        fn(torch.randn(4))


def test_vnm_rejects_bad_patterns_and_shapes():
    for spec in ("vnm:64:3:8", "vnm:0:2:8", "64-2-8", "vnm:4:2:3"):
        with pytest.raises(InvalidInputError, match="V:N:M"):
            VNM.parse(spec)
    with pytest.raises(InvalidInputError, match="divisible by 8"):
        vnm_mask(torch.randn(4, 12), "4:2:8")
    with pytest.raises(InvalidInputError, match="divisible by 4"):
        vnm_mask(torch.randn(6, 8), "4:2:8")
    with pytest.raises(InvalidInputError, match="router, exact"):
        vnm_mask(torch.randn(4, 8), "4:2:8", method="greedy")
    assert VNM.parse("64:2:8").density == 0.25 and str(VNM.parse("VNM:128:2:32")) == "vnm:128:2:32"
