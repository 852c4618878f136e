"""Packing round-trips exactly, byte accounting is right, checkpoints detect damage."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.sparse24 import (
    VNM,
    load_checkpoint,
    mask_24,
    pack_24,
    pack_vnm,
    save_checkpoint,
    unpack_24,
    unpack_vnm,
    vnm_mask,
)


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(0, 10_000),
    st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]),
)
def test_pack_24_round_trips_exactly(rows, groups, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, groups * 4, generator=g).round()  # zeros and ties on purpose
    w = (w * mask_24(w)).to(dtype)
    packed = pack_24(w)
    assert torch.equal(unpack_24(packed), w)
    assert packed.parts["values"].shape == (rows, groups * 2)
    assert packed.parts["indices"].numel() == (rows * groups + 1) // 2  # 4 bits per group


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(["2:2:8", "4:2:8", "1:2:4", "2:2:12"]),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 10_000),
)
def test_pack_vnm_round_trips_exactly(spec, blocks, groups, seed):
    p = VNM.parse(spec)
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(p.v * blocks, p.m * groups, generator=g)).round()
    x = x * vnm_mask(x, p)
    packed = pack_vnm(x, p)
    assert torch.equal(unpack_vnm(packed), x)


def test_byte_accounting():
    w = torch.randn(64, 128)
    packed = pack_24(w * mask_24(w))
    assert packed.dense_nbytes == 64 * 128 * 4
    assert packed.nbytes == 64 * 64 * 4 + 64 * 32 // 2  # half the values + 4 bits per group of 4
    x = torch.randn(128, 64)
    vnm = pack_vnm(x * vnm_mask(x, "64:2:8"), "64:2:8")
    values, columns, positions = 128 * 16 * 4, 2 * 8 * 4, 128 * 8 // 2
    assert vnm.nbytes == values + columns + positions
    assert vnm.compression == pytest.approx(128 * 64 * 4 / (values + columns + positions))


def test_pack_rejects_dense_input():
    with pytest.raises(InvalidInputError, match="not 2:4"):
        pack_24(torch.ones(4, 8))
    with pytest.raises(InvalidInputError, match="vnm:4:2:8"):
        pack_vnm(torch.ones(4, 8), "4:2:8")


def test_checkpoint_round_trip_and_accounting(tmp_path):
    w = torch.randn(32, 64)
    state = {
        "ffn.weight": w * mask_24(w),
        "norm.weight": torch.ones(64),
        "dense.weight": torch.randn(8, 8),
        "half.weight": (w * mask_24(w)).bfloat16(),
    }
    stats = save_checkpoint(state, tmp_path / "m.sp24", {"note": "x"})
    assert stats["packed_tensors"] == 2 and stats["file_payload_bytes"] < stats["dense_bytes"]
    loaded, meta = load_checkpoint(tmp_path / "m.sp24")
    assert meta == {"note": "x"} and loaded.keys() == state.keys()
    for k in state:
        assert torch.equal(loaded[k], state[k]) and loaded[k].dtype == state[k].dtype


def test_checkpoint_damage_is_detected(tmp_path):
    path = tmp_path / "m.sp24"
    w = torch.randn(16, 16)
    save_checkpoint({"w": w * mask_24(w)}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_checkpoint(path)
    flipped = bytearray(raw)
    flipped[-3] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(CorruptFileError, match="checksum"):
        load_checkpoint(path)
    path.write_bytes(b"NOTACKPT" + raw[8:])
    with pytest.raises(CorruptFileError, match="not a"):
        load_checkpoint(path)
    with pytest.raises(DataNotFoundError):
        load_checkpoint(tmp_path / "missing.sp24")
