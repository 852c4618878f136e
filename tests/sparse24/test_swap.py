"""sparsify_ffn / densify work on our tiny Llama and HF-Llama-style trees and restore them exactly."""

import copy

import pytest
import torch
from torch import nn

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import (
    LlamaConfig,
    MoEFFN,
    SparseLinear,
    SwiGLUFFN,
    TinyLlama,
    densify,
    find_ffns,
    is_24,
    sparsify_ffn,
)


class HFStyleMLP(nn.Module):
    """Same attribute names and forward as transformers' LlamaMLP."""

    def __init__(self, hidden_size, intermediate_size):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class HFStyleLayer(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.self_attn = nn.ModuleDict({"q_proj": nn.Linear(d, d), "o_proj": nn.Linear(d, d)})
        self.mlp = HFStyleMLP(d, h)

    def forward(self, x):
        return x + self.mlp(x + self.self_attn["o_proj"](self.self_attn["q_proj"](x)))


class HFStyleModel(nn.Module):
    def __init__(self, d=32, h=64, n=2):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = nn.ModuleList(HFStyleLayer(d, h) for _ in range(n))

    def forward(self, x):
        for layer in self.model.layers:
            x = layer(x)
        return x


def _tiny(ffn="relu2"):
    return TinyLlama(LlamaConfig(dim=32, n_layers=2, n_heads=2, hidden=64, ffn=ffn, max_seq_len=32), seed=0)


@pytest.mark.parametrize("ffn", ["relu2", "swiglu", "moe"])
def test_tiny_llama_round_trip_restores_identical_model(ffn):
    model = _tiny(ffn)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tokens = torch.randint(0, 256, (2, 32))
    logits_before = model(tokens)[0]
    sparsify_ffn(model, activations="vnm:16:2:8")
    assert all(
        isinstance(m, SparseLinear)
        for _, ffn_module in find_ffns(model)
        for m in ffn_module.children()
        if isinstance(m, nn.Linear | SparseLinear)
    )
    assert model.state_dict().keys() == before.keys()  # same names as nn.Linear
    assert not torch.allclose(model(tokens)[0], logits_before)
    densify(model)
    assert not any(isinstance(m, SparseLinear) for m in model.modules())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert torch.equal(model(tokens)[0], logits_before)


def test_hf_style_model_is_found_and_swapped():
    model = HFStyleModel()
    x = torch.randn(2, 16, 32)
    y = model(x)
    params = {id(p) for p in model.parameters()}
    sparsify_ffn(model, activations="vnm:16:2:8", method="ste")
    names = [n for n, _ in find_ffns(model)]
    assert names == ["model.layers.0.mlp", "model.layers.1.mlp"]
    mlp = model.model.layers[0].mlp
    assert isinstance(mlp.down_proj, SparseLinear) and mlp.down_proj.sparse_input
    assert not mlp.up_proj.sparse_input and isinstance(model.model.layers[0].self_attn["q_proj"], nn.Linear)
    assert {id(p) for p in model.parameters()} == params  # shared, not copied
    assert is_24(mlp.gate_proj.effective_weight().detach())
    model(x).sum().backward()
    assert mlp.gate_proj.weight.grad is not None
    assert torch.equal(densify(model)(x), y)


def test_optimizer_keeps_working_across_swaps():
    model = SwiGLUFFN(16, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 16)
    sparsify_ffn(model, activations="2:4")
    before = model.up_proj.weight.detach().clone()
    model(x).square().mean().backward()
    opt.step()
    assert not torch.equal(model.up_proj.weight.detach(), before)
    densify(model)
    assert isinstance(model.up_proj, nn.Linear)


def test_moe_experts_are_all_sparsified():
    moe = MoEFFN(16, 32, n_experts=3, top_k=2)
    sparsify_ffn(moe, activations="vnm:4:2:8")
    assert sum(isinstance(m, SparseLinear) for m in moe.modules()) == 6
    assert isinstance(moe.router, nn.Linear)
    out = moe(torch.randn(2, 5, 16))
    assert out.shape == (2, 5, 16) and torch.isfinite(out).all()


def test_resparsify_with_other_settings():
    model = _tiny()
    sparsify_ffn(model, activations=None)
    sparsify_ffn(model, weights=None, activations="2:4")
    layer = model.layers[0].mlp.w2
    assert layer.config.weights is None and layer.config.activations == "vnm:1:2:4"


def test_clear_errors():
    with pytest.raises(InvalidInputError, match="no FFN found"):
        sparsify_ffn(nn.Sequential(nn.Linear(4, 4)))
    with pytest.raises(InvalidInputError, match="divisible by 4"):
        sparsify_ffn(HFStyleMLP(6, 8), activations=None)
    with pytest.raises(InvalidInputError, match="M=8"):
        sparsify_ffn(HFStyleMLP(8, 12), activations="vnm:4:2:8")
    with pytest.raises(InvalidInputError, match="unknown sparsify option"):
        sparsify_ffn(HFStyleMLP(8, 16), sparsity=0.5)
    with pytest.raises(InvalidInputError, match="weight sparsity"):
        sparsify_ffn(HFStyleMLP(8, 16), weights="1:4")
    with pytest.raises(InvalidInputError, match="ste"):
        sparsify_ffn(HFStyleMLP(8, 16), method="magic")
    model = HFStyleMLP(8, 16)
    with pytest.raises(InvalidInputError, match="both dimensions"):
        sparsify_ffn(HFStyleModel(8, 18), activations=None, transposable=True)
    assert isinstance(copy.deepcopy(model).gate_proj, nn.Linear)


@pytest.mark.peers
def test_real_transformers_llama_mlp():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=64
    )
    model = transformers.LlamaForCausalLM(config)
    tokens = torch.randint(0, 64, (1, 16))
    before = model(tokens).logits
    sparsify_ffn(model, activations="vnm:16:2:8")
    assert isinstance(model.model.layers[0].mlp.down_proj, SparseLinear)
    model(tokens).logits.sum().backward()
    assert torch.equal(densify(model)(tokens).logits, before)


def test_sparse_ffn_trains_under_ddp(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = _tiny()
        ddp = DistributedDataParallel(model)
        sparsify_ffn(model, activations="vnm:16:2:8")  # parameters are shared, so DDP keeps them
        tokens = torch.randint(0, 256, (2, 32))
        ddp(tokens, tokens)[1].backward()
        assert model.layers[0].mlp.w1.weight.grad is not None
    finally:
        dist.destroy_process_group()


def test_densify_from_sparse_weights_keeps_the_function():
    model = _tiny()
    tokens = torch.randint(0, 256, (2, 32))
    sparsify_ffn(model, activations=None, method="sste")
    params = {id(p) for p in model.parameters()}
    sparse_logits = model(tokens)[0]
    densify(model, start_from="sparse")
    assert torch.allclose(model(tokens)[0], sparse_logits, atol=1e-5)
    assert {id(p) for p in model.parameters()} == params and is_24(model.layers[0].mlp.w1.weight.detach())
    with pytest.raises(InvalidInputError, match="master, sparse"):
        densify(model, start_from="both")
