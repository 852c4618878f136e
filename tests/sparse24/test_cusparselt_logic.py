"""The cusparselt 2:4 path's use of cuSPARSELt (which operand is packed, transposes, padding, bias,
straight-through gradients) checked on CPU with dense stand-ins of the two kernels, and the greedy
transposable mask against torch's reference of its fused tile kernel."""

import pytest
import torch

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import SparsityConfig, is_transposable_24, transposable_mask_24
from frugalml.sparse24.autograd import sparse_value
from frugalml.sparse24.backends import (
    DENSE_REFERENCE,
    Cusparselt24Linear,
    check_cusparselt_dtypes,
    check_cusparselt_shapes,
)
from frugalml.sparse24.layers import SparseLinear


@pytest.mark.parametrize("transposable", [True, False])
@pytest.mark.parametrize("tokens", [13, 32])
def test_cusparselt_linear_matches_the_emulated_layer(transposable, tokens):
    torch.manual_seed(tokens)
    config = SparsityConfig(activations=None, method="ste", transposable=transposable)
    layer = SparseLinear(32, 48, config=config)
    x = torch.randn(tokens, 32, requires_grad=True)
    y_ref = layer(x)
    y_ref.square().sum().backward()
    grads_ref = [t.grad.clone() for t in (x, layer.weight, layer.bias)]
    for t in (x, layer.weight, layer.bias):
        t.grad = None

    def prune(w):
        return sparse_value(w, "ste", transposable)[0]

    y, pruned = Cusparselt24Linear.apply(x, layer.weight, layer.bias, prune, transposable, False, None,
                                         DENSE_REFERENCE)
    y.square().sum().backward()
    assert y.shape == (tokens, 48)
    assert torch.allclose(y, y_ref, atol=1e-5)
    assert torch.equal(pruned != 0, layer.mask() & (layer.weight != 0))
    for t, ref in zip((x, layer.weight, layer.bias), grads_ref, strict=True):
        assert torch.allclose(t.grad, ref, atol=1e-4)


def test_cusparselt_linear_skips_the_transposed_pack_without_input_grad():
    packed = []

    def compress(a):
        packed.append(tuple(a.shape))
        return a.clone()

    kernels = type(DENSE_REFERENCE)(compress, DENSE_REFERENCE.matmul)
    w = torch.randn(16, 32, requires_grad=True)
    Cusparselt24Linear.apply(torch.randn(8, 32), w, None, lambda v: v * transposable_mask_24(v), True, False,
                             None, kernels)
    assert packed == [(16, 32)]
    Cusparselt24Linear.apply(torch.randn(8, 32, requires_grad=True), w, None, lambda v: v, True, False, None,
                             kernels)
    assert packed[1:] == [(16, 32), (32, 16)]


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
    layer(x)
    assert layer._last_mask is not None  # forward 1 keeps the mask for forward 2
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
