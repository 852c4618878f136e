"""HybridLM and the primitives: analytic counts equal the built modules, causality, the registry."""

import copy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from frugalml.common.errors import InvalidInputError
from frugalml.composer import (
    PRIMITIVES,
    HybridConfig,
    HybridLM,
    Primitive,
    flops_per_token,
    kv_cache_bytes,
    param_count,
    register_primitive,
)
from frugalml.composer.model import check_arch, from_runs, non_embedding_params, runs
from frugalml.composer.primitives import LayerConfig, unregister_primitive


def _cfg(arch: str) -> HybridConfig:
    return HybridConfig.make(
        arch, width=32, heads=4, kv_heads=2, vocab_size=40, window=5, conv_kernel=3, experts=4, top_k=2
    )


@pytest.mark.parametrize("arch", ["A", "M", "S", "L", "C", "E", "AMSLCE"])
def test_analytic_counts_equal_built_model(arch):
    cfg = _cfg(arch)
    model = HybridLM(cfg)
    tokens = torch.randint(0, 40, (2, 12))
    assert sum(p.numel() for p in model.parameters()) == param_count(cfg)
    assert model.non_embedding_params() == non_embedding_params(arch, cfg.layer)
    with FlopCounterMode(display=False) as counter:
        model(tokens)
    assert counter.get_total_flops() == flops_per_token(cfg, 12) * 2 * 12
    state = model.decode_state(tokens)
    assert sum(t.numel() for t in state) == kv_cache_bytes(cfg, 12, batch=2, bytes_per_element=1)


def test_kv_cache_grows_only_for_full_attention():
    cfg = _cfg("ASLC")
    short, long = (kv_cache_bytes(HybridConfig("A", 40, cfg.layer), t) for t in (10, 100))
    assert long == 10 * short
    for const in ("S", "L", "C"):
        a, b = (kv_cache_bytes(HybridConfig(const, 40, cfg.layer), t) for t in (10, 100))
        assert a == b > 0


@pytest.mark.parametrize("arch", ["A", "S", "L", "C", "E", "M"])
def test_every_primitive_is_causal(arch):
    torch.manual_seed(0)
    model = HybridLM(_cfg(arch + arch)).eval()
    x = torch.randint(0, 40, (1, 10))
    y = x.clone()
    y[0, 6:] = (y[0, 6:] + 1) % 40
    with torch.no_grad():
        assert torch.allclose(model(x)[:, :6], model(y)[:, :6], atol=1e-5)
        assert not torch.allclose(model(x)[:, 6:], model(y)[:, 6:])


def test_sliding_window_forgets_beyond_window():
    torch.manual_seed(0)
    model = HybridLM(_cfg("S")).eval()  # window 5, one layer
    x = torch.randint(0, 40, (1, 12))
    y = x.clone()
    y[0, 0] = (y[0, 0] + 1) % 40
    with torch.no_grad():
        assert torch.allclose(model(x)[:, 5:], model(y)[:, 5:], atol=1e-5)


def test_model_trains_one_step():
    model = HybridLM(_cfg("AMCE"))
    tokens = torch.randint(0, 40, (2, 8))
    loss = torch.nn.functional.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten())
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "router" not in n)


@pytest.mark.parametrize("bad", ["", "AXM", "am", 3, None])
def test_invalid_architectures(bad):
    with pytest.raises(InvalidInputError):
        check_arch(bad)


def test_invalid_layer_config():
    with pytest.raises(InvalidInputError, match="divisible"):
        LayerConfig(width=30, heads=4)
    with pytest.raises(InvalidInputError, match="top_k"):
        LayerConfig(experts=2, top_k=3)
    with pytest.raises(InvalidInputError, match="positive"):
        LayerConfig(width=0)


def test_runs_round_trip():
    assert runs("AAMMMA") == [("A", 2), ("M", 3), ("A", 1)]
    assert from_runs(runs("AAMMMMMAAMMMAMMM")) == "AAMMMMMAAMMMAMMM"


def test_user_primitive_registers_and_builds():
    @register_primitive("Z")
    class Scale(Primitive):
        description = "learned per-channel scale"

        def __init__(self, cfg):
            super().__init__(cfg)
            self.gain = torch.nn.Parameter(torch.ones(cfg.width))

        def mix(self, h):
            return h * self.gain

        @classmethod
        def param_count(cls, cfg):
            return 2 * cfg.width

        @classmethod
        def flops_per_token(cls, cfg, seq_len):
            return 0

    try:
        cfg = _cfg("AZM")
        assert sum(p.numel() for p in HybridLM(cfg).parameters()) == param_count(cfg)
        with pytest.raises(InvalidInputError, match="already registered"):
            register_primitive("Z")(type("Other", (Primitive,), {}))
    finally:
        unregister_primitive("Z")
    assert "Z" not in PRIMITIVES
    with pytest.raises(InvalidInputError):
        register_primitive("too long")
    with pytest.raises(InvalidInputError):
        unregister_primitive("A")


def test_moe_load_balancing_loss():
    cfg = _cfg("E")
    model = HybridLM(cfg)
    tokens = torch.randint(0, 40, (2, 12))
    model(tokens)
    moe = model.layers[0]
    assert moe.aux_loss.ndim == 0 and 0 < moe.aux_loss.item() < cfg.layer.experts
    # uniform router: every expert equally likely and equally chosen -> exactly 1
    logits = torch.zeros(8, 4)
    chosen = torch.tensor([[0, 1], [2, 3]] * 4)
    assert moe.load_balancing_loss(logits, chosen).item() == pytest.approx(1.0)
    # collapsed router: all tokens to experts 0 and 1 with high probability -> near experts / top_k
    logits = torch.tensor([[20.0, 20.0, -20.0, -20.0]] * 8)
    chosen = torch.tensor([[0, 1]] * 8)
    assert moe.load_balancing_loss(logits, chosen).item() == pytest.approx(2.0, rel=1e-4)
    # HybridLM.loss adds it with its coefficient; it has gradients to the router
    targets = torch.randint(0, 40, (2, 12))
    plain = model.loss(tokens, targets, aux_coef=0.0)
    weighted = model.loss(tokens, targets, aux_coef=0.5)
    assert (weighted - plain).item() == pytest.approx(0.5 * model.aux_loss().item(), rel=1e-5)
    weighted.backward()
    assert model.layers[0].router.weight.grad.abs().sum() > 0
    assert HybridLM(_cfg("AM")).aux_loss().item() == 0.0
    assert copy.deepcopy(model).layers[0].aux_loss is None  # a trained model still copies
