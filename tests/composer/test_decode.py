"""Incremental decoding: step-by-step logits equal the full forward pass; real cache bytes equal analytic."""

import pytest
import torch

from frugalml.common.errors import InvalidInputError
from frugalml.composer import HybridConfig, HybridLM, kv_cache_bytes, state_bytes


def _model(arch: str, kernel: int = 3) -> HybridLM:
    torch.manual_seed(0)
    cfg = HybridConfig.make(
        arch, width=32, heads=4, kv_heads=2, vocab_size=40, window=5, conv_kernel=kernel, experts=4, top_k=2
    )
    return HybridLM(cfg).eval()


@pytest.mark.parametrize("arch", ["A", "S", "L", "C", "M", "E", "AMSLCE", "LCSA"])
@pytest.mark.parametrize("prompt", [0, 4])
def test_incremental_logits_equal_full_forward(arch, prompt):
    model = _model(arch)
    tokens = torch.randint(0, 40, (2, 14), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens)
        states = None
        if prompt:
            logits, states = model.prefill(tokens[:, :prompt])
            torch.testing.assert_close(logits, full[:, :prompt], rtol=1e-4, atol=1e-5)
        for pos in range(prompt, tokens.shape[1]):
            logits, states = model.step(tokens[:, pos], states, pos)
            torch.testing.assert_close(logits, full[:, pos], rtol=1e-4, atol=1e-5)
            assert state_bytes(states) == kv_cache_bytes(model.cfg, pos + 1, batch=2, bytes_per_element=4)


def test_conv_kernel_one_and_window_bound():
    model = _model("CS", kernel=1)
    tokens = torch.randint(0, 40, (1, 9))
    with torch.no_grad():
        full = model(tokens)
        states = None
        for pos in range(9):
            logits, states = model.step(tokens[:, pos], states, pos)
        torch.testing.assert_close(logits, full[:, -1], rtol=1e-4, atol=1e-5)
    assert states[0] == [] and states[1][0].shape[2] == 5  # S keeps only its window


def test_generate_greedy_matches_argmax_of_full_forward():
    model = _model("AMLC")
    prompt = torch.randint(0, 40, (2, 5))
    out = model.generate(prompt, 6)
    assert out.shape == (2, 11) and torch.equal(out[:, :5], prompt)
    with torch.no_grad():
        for t in range(5, 11):
            assert torch.equal(model(out[:, :t])[:, -1].argmax(-1), out[:, t])
    sampled = model.generate(prompt, 6, temperature=1.0, seed=3)
    assert torch.equal(sampled, model.generate(prompt, 6, temperature=1.0, seed=3))
    assert model.generate(prompt, 0).shape == (2, 5)


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(5, dtype=torch.long),
        torch.zeros(1, 3),
        torch.full((1, 3), 40),
        torch.zeros(1, 0, dtype=torch.long),
    ],
)
def test_generate_rejects_bad_prompts(bad):
    with pytest.raises(InvalidInputError):
        _model("AM").generate(bad, 2)


def test_generate_rejects_bad_options():
    prompt = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(InvalidInputError):
        _model("AM").generate(prompt, -1)
    with pytest.raises(InvalidInputError):
        _model("AM").generate(prompt, 2, temperature=-1.0)
