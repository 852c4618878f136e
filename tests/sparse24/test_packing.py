"""The mask-independent packing rule: learned once per shape from a compress stand-in, it packs any 2:4
mask bit-identically to compress and to the per-mask learned gather (PackedLayout); it refuses layouts
that depend on the mask. Stand-ins: torch's CUTLASS conversion (real bit-level metadata, CPU) and the
shuffled fake format of test_cusparselt_logic. The real cuSPARSELt check runs in
benchmarks/sparse24/gpu.sh."""

from dataclasses import replace

import pytest
import torch
from torch.sparse._semi_structured_conversions import sparse_semi_structured_from_dense_cutlass

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import SparseLinear, SparsityConfig, mask_24, transposable_mask_24
from frugalml.sparse24.backends import DENSE_REFERENCE, PackedLayout, SparseKernels
from frugalml.sparse24.packing import PATTERNS, ShapeRule, pattern_ids, rule_layout

from .test_cusparselt_logic import FAKE_CUSPARSELT


def _cutlass_compress(a: torch.Tensor) -> torch.Tensor:
    values, metadata = sparse_semi_structured_from_dense_cutlass(a)
    return torch.cat([values.reshape(-1), metadata.view(a.dtype).reshape(-1)])


CUTLASS = SparseKernels(_cutlass_compress, DENSE_REFERENCE.matmul)


def _int16(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16)


@pytest.mark.parametrize("kernels", [CUTLASS, FAKE_CUSPARSELT], ids=["cutlass-layout", "fake-format"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rule_packs_any_mask_like_compress_and_the_learned_gather(kernels, dtype):
    torch.manual_seed(0)
    rows, cols = 64, 128
    rule = ShapeRule.learn(rows, cols, dtype, "cpu", kernels)
    rule_t = ShapeRule.learn(cols, rows, dtype, "cpu", kernels)
    for trial in range(3):
        w = torch.randn(rows, cols).to(dtype)
        mask = [mask_24(w), transposable_mask_24(w, method="greedy"), transposable_mask_24(w)][trial]
        transposable = trial > 0  # P^T is 2:4 only for a transposable mask
        layout = rule.layout(mask, rule_t if transposable else None)
        reference = PackedLayout.learn(mask, dtype, transposable, kernels)
        w2 = torch.randn(rows, cols).to(dtype)  # new values under the same mask
        (packed, packed_t), (expected, expected_t) = layout.pack(w2, True), reference.pack(w2, True)
        assert torch.equal(_int16(packed), _int16(expected))
        assert torch.equal(_int16(packed_t), _int16(expected_t))
        pruned = torch.where(mask, w2, 0)
        assert torch.equal(_int16(packed), _int16(kernels.compress(pruned)))
        if transposable:
            assert torch.equal(_int16(packed_t), _int16(kernels.compress(pruned.t().contiguous())))


def test_rule_is_cached_per_shape_and_builds_layouts_without_compress():
    calls = []

    def counting(a):
        calls.append(tuple(a.shape))
        return _cutlass_compress(a)

    kernels = SparseKernels(counting, DENSE_REFERENCE.matmul)
    w = torch.randn(32, 64, dtype=torch.bfloat16)
    rule_layout(mask_24(w), torch.bfloat16, False, kernels)
    learned = len(calls)
    for _ in range(3):
        w = torch.randn(32, 64, dtype=torch.bfloat16)
        layout = rule_layout(transposable_mask_24(w, method="greedy"), torch.bfloat16, False, kernels)
    assert len(calls) == learned  # later masks: no compress at all
    expected = _cutlass_compress(torch.where(layout.mask, w, 0))
    assert torch.equal(_int16(layout.pack(w, False)[0]), _int16(expected))


def _mask_dependent_compress(a: torch.Tensor) -> torch.Tensor:
    """A format whose value order depends on the data: values sorted by magnitude, then metadata."""
    values, metadata = sparse_semi_structured_from_dense_cutlass(a)
    values = values.reshape(-1)
    return torch.cat([values[values.float().abs().argsort(stable=True)], metadata.view(a.dtype).reshape(-1)])


def test_rule_refuses_a_layout_that_depends_on_the_mask():
    kernels = SparseKernels(_mask_dependent_compress, DENSE_REFERENCE.matmul)
    with pytest.raises(InvalidInputError, match="PackedLayout.learn per mask"):
        ShapeRule.learn(32, 64, torch.bfloat16, "cpu", kernels)


def test_pattern_ids_and_rule_input_errors():
    mask = torch.tensor([[True, True, False, False, False, False, False, True]])
    assert [PATTERNS[i] for i in pattern_ids(mask)] == [(0, 1), (3,)]
    with pytest.raises(InvalidInputError, match="not 2:4"):
        pattern_ids(torch.tensor([[True, True, True, False]]))
    with pytest.raises(InvalidInputError, match="16-bit dtype"):
        ShapeRule.learn(32, 64, torch.float32, "cpu", CUTLASS)
    rule = ShapeRule.learn(32, 64, torch.bfloat16, "cpu", CUTLASS)
    with pytest.raises(InvalidInputError, match="learned for 32x64"):
        rule.slots(torch.ones(64, 32, dtype=torch.bool))


@pytest.mark.parametrize("mask_every", [1, 2])
def test_cusparselt_layer_with_rule_packing_follows_emulation(mask_every):
    torch.manual_seed(mask_every)
    config = SparsityConfig(
        activations=None, method="ste", transposable=True, transposable_method="greedy", mask_every=mask_every
    )
    emulated = SparseLinear(32, 64, config=config, dtype=torch.bfloat16)
    fast = SparseLinear(32, 64, config=config, dtype=torch.bfloat16)
    fast.load_state_dict(emulated.state_dict())
    fast.config, fast.kernels = replace(config, backend="cusparselt", packing="rule"), FAKE_CUSPARSELT
    for step in range(4):
        x = torch.randn(16, 32, dtype=torch.bfloat16, requires_grad=True)
        y_fast, y_ref = fast(x), emulated(x)
        assert torch.allclose(y_fast.float(), y_ref.float(), atol=2e-2, rtol=2e-2), step
        y_fast.float().sum().backward()
        with torch.no_grad():
            update = torch.randn(64, 32, dtype=torch.bfloat16)
            fast.weight.add_(update)
            emulated.weight.add_(update)
    with pytest.raises(InvalidInputError, match="choose one of: learned, rule"):
        SparsityConfig(packing="fast")


def test_gpu_packing_agreement_helper_on_a_stand_in():
    from frugalml.sparse24.bench.gpu_checks import packing_agreement

    rule = ShapeRule.learn(32, 64, torch.bfloat16, "cpu", CUTLASS)
    rule_t = ShapeRule.learn(64, 32, torch.bfloat16, "cpu", CUTLASS)
    w = torch.randn(32, 64, dtype=torch.bfloat16)
    mask = transposable_mask_24(w, method="greedy")
    agree = packing_agreement(mask, torch.randn_like(w), rule, rule_t, CUTLASS)
    assert agree == {
        "P vs compress": 1.0,
        "P^T vs compress": 1.0,
        "P vs learned gather": 1.0,
        "P^T vs learned gather": 1.0,
    }
