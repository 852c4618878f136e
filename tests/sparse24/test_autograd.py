"""Gradients of the emulated sparse layers match a reference dense computation with the same masks."""

import pytest
import torch
import torch.nn.functional as F

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import (
    SparseLinear,
    SparsityConfig,
    SquaredReLUFFN,
    is_24,
    is_transposable_24,
    is_vnm,
    mask_24,
    mvue_24,
    soft_threshold_24,
    sparsify_activations,
    sparsify_ffn,
    transposable_mask_24,
    vnm_mask,
)
from frugalml.sparse24.autograd import VNMSparsify


def test_vnm_sparsifier_gradcheck_and_mask_reuse():
    x = torch.randn(8, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: VNMSparsify.apply(t, "4:2:8", "router"), (x,))
    y = sparsify_activations(x, "4:2:8")
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(g != 0, vnm_mask(x.detach(), "4:2:8")) and is_vnm(y.detach(), "4:2:8")


def test_sparsify_activations_pads_rows_to_v():
    x = torch.randn(10, 16)
    y = sparsify_activations(x, "4:2:8")
    assert y.shape == x.shape and ((y != 0).reshape(10, 2, 8).sum(-1) <= 2).all()


@pytest.mark.parametrize(
    "method, transposable", [("ste", False), ("sste", False), ("ste", True), ("sste", True)]
)
def test_sparse_linear_matches_reference(method, transposable):
    dense = torch.nn.Linear(16, 8)
    layer = SparseLinear.from_dense(
        dense,
        SparsityConfig(method=method, transposable=transposable, activations="4:2:8"),
        sparse_input=True,
    )
    x = torch.randn(2, 4, 16, requires_grad=True)
    y = layer(x)
    w = dense.weight.detach()
    mask = transposable_mask_24(w) if transposable else mask_24(w)
    w_eff = w * mask if method == "ste" else layer.beta * soft_threshold_24(w) * mask
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = w_eff.clone().requires_grad_(True)
    x_mask = vnm_mask(x_ref.detach().reshape(8, 16), "4:2:8").reshape(x.shape)
    y_ref = F.linear(x_ref * x_mask, w_ref, dense.bias)
    assert torch.allclose(y, y_ref, atol=1e-6)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-6)
    assert torch.allclose(dense.weight.grad, w_ref.grad, atol=1e-6)  # straight-through to the master
    assert is_24(layer.effective_weight().detach())
    if transposable:
        assert is_transposable_24(layer.effective_weight().detach())


def test_sste_beta_fixed_at_sparsify_time():
    dense = torch.nn.Linear(16, 8, bias=False)
    layer = SparseLinear.from_dense(dense, SparsityConfig(activations=None))
    beta = layer.beta
    with torch.no_grad():
        dense.weight.mul_(3)
    assert layer.beta == beta and beta > 1


def test_squared_relu_ffn_gradients_match_reference_with_same_masks():
    torch.manual_seed(1)
    ffn = SquaredReLUFFN(16, 32)
    w1, w2 = ffn.w1.weight.detach().clone(), ffn.w2.weight.detach().clone()
    sparsify_ffn(ffn, activations="4:2:8", method="ste", transposable=True)
    x = torch.randn(8, 16, dtype=torch.float32, requires_grad=True)
    y = ffn(x)
    # reference: masks computed from the same values, then plain dense autograd
    m1, m2 = transposable_mask_24(w1), transposable_mask_24(w2)
    xr = x.detach().clone().requires_grad_(True)
    w1r, w2r = (w1 * m1).requires_grad_(True), (w2 * m2).requires_grad_(True)
    h = F.relu(xr @ w1r.t()).square()
    hm = vnm_mask(h.detach(), "4:2:8")
    yr = (h * hm) @ w2r.t()
    assert torch.allclose(y, yr, atol=1e-5)
    y.square().sum().backward()
    yr.square().sum().backward()
    assert torch.allclose(x.grad, xr.grad, atol=1e-4)
    assert torch.allclose(ffn.w1.weight.grad, w1r.grad, atol=1e-4)
    assert torch.allclose(ffn.w2.weight.grad, w2r.grad, atol=1e-4)


def test_finite_differences_with_frozen_masks():
    torch.manual_seed(2)
    ffn = SquaredReLUFFN(8, 16).double()
    sparsify_ffn(ffn, activations=None, method="ste")
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ffn(t), (x,))  # masks depend on weights only


def test_mvue_is_unbiased_and_24():
    g = torch.randn(4, 16)
    gen = torch.Generator().manual_seed(0)
    samples = torch.stack([mvue_24(g, gen) for _ in range(4000)])
    assert all(is_24(s) for s in samples[:10])
    assert torch.allclose(samples.mean(0), g, atol=0.15)
    with pytest.raises(InvalidInputError, match="even"):
        mvue_24(torch.randn(3, 5))


def test_mvue_weight_gradient_is_unbiased():
    dense = torch.nn.Linear(8, 4, bias=False)
    layer = SparseLinear.from_dense(dense, SparsityConfig(activations=None, method="ste", mvue=True))
    x = torch.randn(16, 8)
    grad = torch.randn(16, 4)
    grads = []
    for _ in range(1500):
        dense.weight.grad = None
        layer(x).backward(grad)
        grads.append(dense.weight.grad.clone())
    exact = grad.t() @ x
    assert torch.allclose(torch.stack(grads).mean(0), exact, atol=0.3)
    assert not torch.allclose(grads[0], exact)
