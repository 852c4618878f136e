"""The 95/5 split, the fixed token permutation and masked decay: patterns hold and gradients match a dense
reference computed with the same masks (emulated layers and the cusparselt path with stand-in kernels)."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import SparseLinear, SparsityConfig, SquaredReLUFFN, is_vnm, sparsify_ffn, vnm_mask
from frugalml.sparse24.backends import DENSE_REFERENCE
from frugalml.sparse24.masks import activation_mask, dense_feature_count, token_permutation


def test_dense_feature_count_rounds_up_to_whole_groups():
    assert dense_feature_count(512, 0.05, 8) == 32  # 25.6 -> 32: the rest is 480 = 60 groups of 8
    assert dense_feature_count(64, 0.05, 8) == 8
    assert dense_feature_count(64, 0.0, 8) == 0


def test_95_5_split_keeps_the_largest_l1_features_dense_and_the_rest_vnm():
    torch.manual_seed(0)
    x = F.relu(torch.randn(32, 64)).square()
    x[:, [5, 40]] *= 50  # two outlier features
    mask = activation_mask(x, "8:2:8", dense_fraction=0.05)
    dense = mask.all(0)
    assert int(dense.sum()) == 8 and dense[5] and dense[40]
    chosen = x.abs().sum(0).topk(8).indices
    assert torch.equal(dense.nonzero().squeeze(1), chosen.sort().values)
    rest = (~dense).nonzero().squeeze(1)
    assert is_vnm((x * mask)[:, rest], "8:2:8")
    assert torch.equal(mask[:, rest], vnm_mask(x[:, rest], "8:2:8"))


def test_token_permutation_is_fixed_and_blocks_permuted_rows():
    torch.manual_seed(1)
    x = torch.randn(32, 16).abs()
    order, inverse = token_permutation(32, seed=3)
    again, _ = token_permutation(32, seed=3)
    assert torch.equal(order, again) and not torch.equal(order, token_permutation(32, seed=4)[0])
    assert torch.equal(order[inverse], torch.arange(32))
    mask = activation_mask(x, "8:2:8", permutation_seed=3)
    assert torch.equal(mask[order], vnm_mask(x[order], "8:2:8"))  # V:N:M over the permuted rows
    assert is_vnm((x * mask)[order], "8:2:8") and not torch.equal(mask, vnm_mask(x, "8:2:8"))


@pytest.mark.parametrize("dense_features, permute", [(0.05, False), (0.0, True), (0.1, True)])
def test_ffn_gradients_match_dense_reference_with_the_same_masks(dense_features, permute):
    torch.manual_seed(2)
    ffn = SquaredReLUFFN(16, 64)
    w1, w2 = ffn.w1.weight.detach().clone(), ffn.w2.weight.detach().clone()
    sparsify_ffn(
        ffn,
        activations="4:2:8",
        method="ste",
        dense_features=dense_features,
        token_permutation=permute,
        seed=7,
    )
    x = torch.randn(10, 16, requires_grad=True)  # 10 rows: padded to 12 for V=4
    y = ffn(x)
    xr = x.detach().clone().requires_grad_(True)
    m1, m2 = ffn.w1.mask(), ffn.w2.mask()
    w1r, w2r = (w1 * m1).requires_grad_(True), (w2 * m2).requires_grad_(True)
    h = F.relu(xr @ w1r.t()).square()
    padded = torch.cat([h.detach(), h.new_zeros(2, 64)])
    hm = activation_mask(padded, "4:2:8", "router", dense_features, 7 if permute else None)[:10]
    yr = (h * hm) @ w2r.t()
    assert torch.allclose(y, yr, atol=1e-5)
    grad = torch.randn_like(y)
    y.backward(grad)
    yr.backward(grad)
    for got, want in ((x.grad, xr.grad), (ffn.w1.weight.grad, w1r.grad), (ffn.w2.weight.grad, w2r.grad)):
        assert torch.allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("method, mask_every", [("ste", 1), ("sste", 1), ("ste", 3)])
def test_masked_decay_adds_decay_times_pruned_weights_to_the_gradient(method, mask_every):
    torch.manual_seed(3)
    decay = 0.5
    config = SparsityConfig(activations=None, method=method, mask_every=mask_every)
    plain = SparseLinear(16, 8, config=config)
    decayed = SparseLinear(16, 8, config=replace(config, masked_decay=decay))
    decayed.load_state_dict(plain.state_dict())
    decayed.beta = plain.beta  # S-STE's beta was fixed from each layer's own initial weights
    x, grad = torch.randn(6, 16), torch.randn(6, 8)
    y0, y1 = plain(x), decayed(x)
    assert torch.equal(y0, y1)  # the forward is unchanged
    y0.backward(grad)
    y1.backward(grad)
    mask = decayed.mask()
    expected = plain.weight.grad + decay * plain.weight.detach() * ~mask
    assert torch.allclose(decayed.weight.grad, expected, atol=1e-6)
    assert torch.equal(decayed.weight.grad[mask], plain.weight.grad[mask])
    decayed.eval()
    decayed.weight.grad = None
    decayed(x).backward(grad)  # evaluation forwards carry no decay
    assert torch.allclose(decayed.weight.grad, plain.weight.grad, atol=1e-6)


@pytest.mark.parametrize("mask_every", [1, 2])
def test_masked_decay_on_the_cusparselt_path_uses_its_packed_mask(mask_every):
    torch.manual_seed(4)
    config = SparsityConfig(
        activations=None, method="ste", transposable=True, mask_every=mask_every, masked_decay=0.25
    )
    layer = SparseLinear(32, 16, config=config, dtype=torch.bfloat16)
    layer.config, layer.kernels = replace(config, backend="cusparselt"), DENSE_REFERENCE  # no GPU here
    x = torch.randn(8, 32, dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(8, 16, dtype=torch.bfloat16)
    layer(x).backward(grad)
    mask = layer.mask()
    reference = grad.float().t() @ x.detach().float() + 0.25 * layer.weight.detach().float() * ~mask
    assert torch.allclose(layer.weight.grad.float(), reference, atol=5e-2, rtol=2e-2)
    pruned_part = (layer.weight.grad.float() - grad.float().t() @ x.detach().float())[~mask]
    assert torch.allclose(pruned_part, 0.25 * layer.weight.detach().float()[~mask], atol=5e-2)


def test_trick_options_are_validated():
    with pytest.raises(InvalidInputError, match="dense_features"):
        SparsityConfig(dense_features=1.0)
    with pytest.raises(InvalidInputError, match="masked_decay"):
        SparsityConfig(masked_decay=-1e-4)
    with pytest.raises(InvalidInputError, match="vnm_kernel 'mask'"):
        SparsityConfig(vnm_kernel="gather", token_permutation=True)
