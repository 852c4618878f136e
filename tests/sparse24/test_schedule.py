"""The schedule swaps at phase boundaries and logs telemetry."""

import pytest
import torch

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import SparseLinear, SparsitySchedule, SquaredReLUFFN, is_24, telemetry


def test_phases_and_swaps():
    schedule = SparsitySchedule(
        10, sparse_fraction=0.6, warmup_fraction=0.2, sparsity={"activations": "vnm:4:2:8"}
    )
    assert [schedule.phase(s) for s in range(10)] == ["dense-warmup"] * 2 + ["sparse"] * 6 + [
        "dense-tail"
    ] * 2
    ffn = SquaredReLUFFN(8, 16)
    x = torch.randn(8, 8)
    kinds = []
    for step in range(10):
        schedule.update(ffn, step)
        ffn(x).sum().backward()
        kinds.append(isinstance(ffn.w1, SparseLinear))
        if step in (3, 9):
            schedule.record(ffn, step + 1, loss=1.0)
    assert kinds == [False] * 2 + [True] * 6 + [False] * 2
    sparse_entry, dense_entry = schedule.history
    assert sparse_entry["phase"] == "sparse" and sparse_entry["weight_density"] == 0.5
    assert 0 <= sparse_entry["flip_rate"] <= 1 and sparse_entry["activation_density"] <= 0.25 + 1e-9
    assert 0.5 < sparse_entry["kept_magnitude"] < 1
    assert dense_entry["phase"] == "dense-tail" and "weight_density" not in dense_entry


def test_flip_rate_sees_mask_changes():
    ffn = SquaredReLUFFN(8, 16)
    SparsitySchedule(4, 1.0, sparsity={"activations": None}).update(ffn, 0)
    x = torch.randn(4, 8)
    ffn(x)
    with torch.no_grad():
        ffn.w1.weight.copy_(torch.randn(16, 8))
    ffn(x)
    assert telemetry(ffn)["flip_rate"] > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total_steps": 0},
        {"total_steps": 5, "sparse_fraction": 1.5},
        {"total_steps": 5, "sparse_fraction": 0.8, "warmup_fraction": 0.5},
    ],
)
def test_bad_schedules(kwargs):
    with pytest.raises(InvalidInputError):
        SparsitySchedule(**kwargs)


def test_dense_tail_start_from_choice():
    for dense_from, expect_24 in (("sparse", True), ("master", False)):
        ffn = SquaredReLUFFN(8, 16)
        schedule = SparsitySchedule(2, 0.5, sparsity={"activations": None}, dense_from=dense_from)
        schedule.update(ffn, 0)
        schedule.update(ffn, 1)
        assert isinstance(ffn.w1, torch.nn.Linear) and is_24(ffn.w1.weight.detach()) == expect_24
    with pytest.raises(InvalidInputError, match="dense_from"):
        SparsitySchedule(2, dense_from="magic")
