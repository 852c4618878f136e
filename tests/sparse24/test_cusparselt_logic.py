"""The cusparselt 2:4 path's use of cuSPARSELt (which operand is packed, transposes, padding, bias,
straight-through gradients) checked on CPU with dense stand-ins of the two kernels, and the greedy
transposable mask against torch's reference of its fused tile kernel."""

import math
from dataclasses import replace

import pytest
import torch

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import SparsityConfig, is_transposable_24, transposable_mask_24
from frugalml.sparse24.autograd import sparse_value
from frugalml.sparse24.backends import (
    DENSE_REFERENCE,
    Cusparselt24Linear,
    PackedLayout,
    SparseKernels,
    check_cusparselt_dtypes,
    check_cusparselt_shapes,
    pack_pruned,
)
from frugalml.sparse24.layers import SparseLinear


def _fake_compress(a: torch.Tensor) -> torch.Tensor:
    """A stand-in with the shape of cuSPARSELt's packed format: the 2 kept values per group of 4
    (non-zeros first, then zeros), shuffled by a fixed shape-dependent permutation, then metadata."""
    groups = a.reshape(a.shape[0], -1, 4)
    order = torch.argsort((groups == 0).to(torch.uint8), dim=-1, stable=True)[..., :2].sort(-1).values
    values = groups.gather(-1, order).reshape(-1)
    shuffle = torch.randperm(values.numel(), generator=torch.Generator().manual_seed(a.shape[0]))
    metadata = (order[..., 0] * 4 + order[..., 1]).reshape(-1).to(a.dtype)
    return torch.cat([values[shuffle], metadata])


def _fake_unpack(packed: torch.Tensor, k: int) -> torch.Tensor:
    m = packed.numel() * 4 // (3 * k)
    values = torch.empty(m * k // 2, dtype=packed.dtype)
    shuffle = torch.randperm(values.numel(), generator=torch.Generator().manual_seed(m))
    values[shuffle] = packed[: m * k // 2]
    codes = packed[m * k // 2 : m * k // 2 + m * k // 4].long()
    dense = torch.zeros(m, k // 4, 4, dtype=packed.dtype)
    positions = torch.stack([codes // 4, codes % 4], -1).reshape(m, k // 4, 2)
    dense.scatter_(-1, positions, values.reshape(m, k // 4, 2))
    return dense.reshape(m, k)


def _fake_matmul(packed, b, bias, transpose_result):
    a = _fake_unpack(packed, b.shape[0])
    return DENSE_REFERENCE.matmul(a, b, bias, transpose_result)


FAKE_CUSPARSELT = SparseKernels(_fake_compress, _fake_matmul)


@pytest.mark.parametrize("kernels", [DENSE_REFERENCE, FAKE_CUSPARSELT], ids=["dense", "fake-format"])
@pytest.mark.parametrize("transposable", [True, False])
@pytest.mark.parametrize("tokens", [13, 32])
def test_cusparselt_linear_matches_the_emulated_layer(kernels, transposable, tokens):
    torch.manual_seed(tokens)
    config = SparsityConfig(activations=None, method="ste", transposable=transposable)
    layer = SparseLinear(32, 48, config=config)
    x = torch.randn(tokens, 32, requires_grad=True)
    y_ref = layer(x)
    y_ref.square().sum().backward()
    grads_ref = [t.grad.clone() for t in (x, layer.weight, layer.bias)]
    for t in (x, layer.weight, layer.bias):
        t.grad = None

    def pack(w, backward):
        return pack_pruned(sparse_value(w, "ste", transposable)[0], transposable, backward, kernels)

    y = Cusparselt24Linear.apply(x, layer.weight, layer.bias, pack, transposable, False, None, kernels)
    y.square().sum().backward()
    assert y.shape == (tokens, 48)
    assert torch.allclose(y, y_ref, atol=1e-5)
    for t, ref in zip((x, layer.weight, layer.bias), grads_ref, strict=True):
        assert torch.allclose(t.grad, ref, atol=1e-4)


def test_fake_format_round_trips():
    w = torch.randn(16, 32)
    pruned = w * transposable_mask_24(w, method="greedy")  # some groups keep fewer than 2
    assert torch.equal(_fake_unpack(_fake_compress(pruned), 32), pruned)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_packed_layout_gathers_exactly_what_compress_packs(dtype):
    torch.manual_seed(0)
    w = torch.randn(48, 64).to(dtype)
    mask = transposable_mask_24(w, method="greedy")
    layout = PackedLayout.learn(mask, dtype, True, FAKE_CUSPARSELT)
    w2 = torch.randn(48, 64).to(dtype)  # new values, same mask: no pruning, no compress
    packed, packed_t = layout.pack(w2, backward=True)
    assert torch.equal(packed, _fake_compress(w2 * mask))
    assert torch.equal(packed_t, _fake_compress((w2 * mask).t().contiguous()))
    dense_layout = PackedLayout.learn(mask, dtype, False, FAKE_CUSPARSELT)
    assert torch.equal(dense_layout.pack(w2, backward=True)[1], w2 * mask)
    assert layout.pack(w2, backward=False)[1] is None


def test_cusparselt_linear_skips_the_transposed_pack_without_input_grad():
    packed = []

    def compress(a):
        packed.append(tuple(a.shape))
        return a.clone()

    kernels = SparseKernels(compress, DENSE_REFERENCE.matmul)

    def pack(w, backward):
        return pack_pruned(w * transposable_mask_24(w), True, backward, kernels)

    w = torch.randn(16, 32, requires_grad=True)
    Cusparselt24Linear.apply(torch.randn(8, 32), w, None, pack, True, False, None, kernels)
    assert packed == [(16, 32)]
    x = torch.randn(8, 32, requires_grad=True)
    Cusparselt24Linear.apply(x, w, None, pack, True, False, None, kernels)
    assert packed[1:] == [(16, 32), (32, 16)]


def test_held_mask_is_recomputed_every_mask_every_forwards():
    torch.manual_seed(0)
    layer = SparseLinear(8, 16, config=SparsityConfig(activations=None, method="ste", mask_every=3))
    x = torch.randn(4, 8)
    layer(x)
    first = layer.mask()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(16, 8))
    y = layer(x)
    assert torch.allclose(y, torch.nn.functional.linear(x, layer.weight * first, layer.bias))  # still held
    layer(x)
    layer(x)  # the 4th forward recomputes
    assert torch.equal(layer._held[0], layer.mask()) and layer.last_flip_rate > 0
    with pytest.raises(InvalidInputError, match="mask_every"):
        SparsityConfig(mask_every=2, method="sste")


def test_greedy_transposable_mask_is_torchs_tile_rule():
    from torch.sparse._semi_structured_conversions import _sparse_semi_structured_tile

    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        w = torch.randn(32, 64).to(dtype)
        mask = transposable_mask_24(w, method="greedy")
        reference = _sparse_semi_structured_tile(w.abs().float() + 1) != 0  # + 1: nothing starts at zero
        assert torch.equal(mask, reference)
        assert is_transposable_24(w * mask)
    quad = torch.tensor([[2, -1, -2, -3], [-1, 8, -1, 6], [-1, -1, 4, 5], [-1, 3, 7, -1]]).float()
    assert transposable_mask_24(quad, method="greedy").sum() == 7  # torch's edge case: 7 of 16 kept
    exact = transposable_mask_24(w.float())
    greedy = transposable_mask_24(w.float(), method="greedy")
    assert float((w.abs() * exact).sum()) >= float((w.abs() * greedy).sum())
    with pytest.raises(InvalidInputError, match="exact, greedy"):
        transposable_mask_24(w, method="best")


def test_cusparselt_shape_dtype_and_config_errors():
    with pytest.raises(InvalidInputError, match="divisible by 16"):
        check_cusparselt_shapes(24, 32)
    with pytest.raises(InvalidInputError, match="bfloat16"):
        check_cusparselt_dtypes(torch.zeros(16, 16), torch.zeros(4, 16))
    with pytest.raises(InvalidInputError, match="cast"):
        check_cusparselt_dtypes(torch.zeros(16, 16, dtype=torch.bfloat16), torch.zeros(4, 16))
    with pytest.raises(InvalidInputError, match="flip_every"):
        SparsityConfig(flip_every=-1)
    with pytest.raises(InvalidInputError, match="transposable mask method"):
        SparsityConfig(transposable_method="fast")


def test_flip_rate_every_n_forwards_stays_on_device_until_read():
    torch.manual_seed(0)
    layer = SparseLinear(8, 16, config=SparsityConfig(activations=None, flip_every=2))
    x = torch.randn(4, 8)
    assert math.isnan(layer.last_flip_rate)  # not measured yet
    layer(x)
    assert layer._last_mask is not None and math.isnan(layer.last_flip_rate)  # kept for forward 2
    layer(x)
    assert isinstance(layer._flip_rate, torch.Tensor) and layer.last_flip_rate == 0.0
    assert layer._last_mask is None
    with torch.no_grad():
        layer.weight.copy_(torch.randn(16, 8))
    layer(x)
    layer(x)
    assert layer.last_flip_rate == 0.0  # no change between forwards 3 and 4
    layer(x)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(16, 8))
    layer(x)
    assert layer.last_flip_rate > 0


@pytest.mark.parametrize("mask_every", [1, 2])
def test_cusparselt_layer_path_with_fake_kernels_follows_emulation(mask_every):
    torch.manual_seed(mask_every)
    config = SparsityConfig(
        activations=None, method="ste", transposable=True, transposable_method="greedy", mask_every=mask_every
    )
    emulated = SparseLinear(32, 48, config=config, dtype=torch.bfloat16)
    fast = SparseLinear(32, 48, config=config, dtype=torch.bfloat16)
    fast.load_state_dict(emulated.state_dict())
    fast.config, fast.kernels = replace(config, backend="cusparselt"), FAKE_CUSPARSELT  # no GPU here
    for step in range(5):
        x = torch.randn(16, 32, dtype=torch.bfloat16, requires_grad=True)
        y_fast, y_ref = fast(x), emulated(x)
        assert torch.allclose(y_fast.float(), y_ref.float(), atol=2e-2, rtol=2e-2), step
        y_fast.float().sum().backward()
        with torch.no_grad():
            update = torch.randn(48, 32, dtype=torch.bfloat16)
            fast.weight.add_(update)
            emulated.weight.add_(update)
    assert fast.weight.grad is not None and fast.last_flip_rate >= 0
