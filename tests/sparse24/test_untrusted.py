"""Untrusted input: every option that sizes memory or time, or must be finite, is refused in one line
before any work; crafted checkpoints (valid checksums, inconsistent tables or indices) give one
CorruptFileError line instead of a crash, a hang or a huge allocation."""

import re

import numpy as np
import pytest
import torch

from frugalml.cli import main
from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.files import write_container
from frugalml.sparse24 import (
    LlamaConfig,
    Packed,
    TinyLlama,
    load_checkpoint,
    mask_24,
    pack_24,
    pack_vnm,
    save_checkpoint,
    unpack_24,
    unpack_vnm,
    vnm_mask,
)
from frugalml.sparse24.corpus import ByteBatches
from frugalml.sparse24.formats import CHECKPOINT_MAGIC, CHECKPOINT_VERSION

TINY = ["--dim", "32", "--layers", "1", "--heads", "2", "--hidden", "64", "--batch-size", "2"]
TINY += ["--seq-len", "16", "--eval-every", "1", "--quiet"]


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sparse24", *args])
    return exit_info.value.code, capsys.readouterr()


@pytest.fixture
def no_work(monkeypatch):
    """Training or reading the corpus fails the test: the checks must come first."""
    import frugalml.sparse24.train as train_module

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(train_module, "train", forbidden)
    monkeypatch.setattr(train_module, "corpus_bytes", forbidden)


BAD_OPTIONS = [
    (["--heads", "0"], "n_heads must be an integer in [1,"),
    (["--heads", "3"], "heads of even size"),
    (["--dim", "0"], "dim must be an integer in [1,"),
    (["--hidden", "99999999999"], "hidden must be an integer in [1, 2147483647]"),
    (["--layers", "-1"], "n_layers must be"),
    (["--seq-len", "0"], "seq_len must be an integer in [1,"),
    (["--batch-size", "0"], "batch_size must be an integer in [1,"),
    (["--steps", "0"], "steps must be an integer in [1, 1000000000]"),
    (["--steps", "99999999999"], "steps must be an integer in [1, 1000000000]"),
    (["--eval-every", "0"], "eval_every must be"),
    (["--seed", "-1"], "seed must be an integer in [0,"),
    (["--seed", "99999999999999999999999"], "seed must be"),
    (["--lr", "nan"], "lr must be > 0 and finite, got nan"),
    (["--lr", "inf"], "lr must be > 0 and finite, got inf"),
    (["--lr", "0"], "lr must be > 0"),
    (["--warmup-fraction", "-0.1"], "warmup_fraction must be in [0, 1]"),
    (["--warmup-fraction", "0.5", "--sparse-fraction", "0.8"], "lower one of them"),
    (["--sparse-fraction", "nan"], "sparse_fraction must be in [0, 1] and finite"),
    (["--sparse-fraction", "1.5"], "sparse_fraction must be in [0, 1]"),
    (["--dense-features", "nan"], "dense_features must be in [0, 1]"),
    (["--masked-decay", "inf"], "masked_decay must be >= 0 and finite"),
    (["--threads", "-3"], "--threads must be in [0, 1024]"),
    (["--threads", "100000"], "--threads must be in [0, 1024]"),
    (["--activations", "vnm:0:2:8"], "1 <= V <= 2147483647"),
    (["--activations", "vnm:99999999999999999999:2:8"], "1 <= V <= 2147483647"),
    (["--activations", "vnm:4:2:2"], "4 <= M"),
    (["--activations", "vnm:4:2"], "cannot read V:N:M pattern"),
    (["--dim", "1000000", "--heads", "4"], "GiB"),
    (["--batch-size", "1000000000"], "GiB"),
    (["--activations", "vnm:2000000000:2:8"], "the V of a V:N:M pattern"),
]
TRAIN_ONLY = ("--lr", "--warmup-fraction")


@pytest.mark.parametrize(
    ("command", "bad", "message"),
    [
        (command, bad, message)
        for command in ("train", "quality")
        for bad, message in BAD_OPTIONS
        if command == "train" or bad[0] not in TRAIN_ONLY
    ],
)
def test_cli_refuses_sizes_and_non_finite_numbers_before_any_work(command, bad, message, capsys, no_work):
    code, out = _cli([command, "--steps", "1", *TINY, *bad], capsys)
    assert code == 2 and message in out.err and out.err.count("\n") == 1, (bad, out.err)


def test_cli_refuses_warmup_then_unsparsifiable_shapes_before_training(capsys, monkeypatch):
    import frugalml.sparse24.train as train_module

    steps = []
    monkeypatch.setattr(train_module, "learning_rate", lambda step, config: steps.append(step) or 1e-3)
    args = ["--hidden", "68", "--warmup-fraction", "0.5", "--sparse-fraction", "0.5", "--steps", "4"]
    code, out = _cli(["train", *TINY, *args], capsys)
    assert code == 2 and "divisible by 4" not in out.err and "divisible by M=8" in out.err
    assert steps == []  # refused before the dense warm-up trained a single step


@pytest.mark.parametrize("content", [b"", b"abc"])
def test_cli_refuses_an_empty_or_tiny_corpus(content, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    code, out = _cli(["train", "--steps", "1", *TINY, "--data", str(corpus)], capsys)
    assert code == 2 and ("empty" in out.err or "too small" in out.err) and out.err.count("\n") == 1
    with pytest.raises(InvalidInputError, match="empty"):
        ByteBatches(b"", seq_len=4)


def test_cli_quality_refuses_an_empty_arm_list(capsys, no_work):
    code, out = _cli(["quality", "--steps", "1", *TINY, "--arms", " , "], capsys)
    assert code == 2 and "at least one arm" in out.err


@pytest.mark.parametrize("ffn", ["relu2", "swiglu", "moe"])
def test_parameter_count_matches_the_model(ffn):
    config = LlamaConfig(dim=32, n_layers=2, n_heads=2, hidden=64, ffn=ffn, max_seq_len=16)
    assert config.parameter_count() == TinyLlama(config).num_parameters()


def _write(path, tensors, payload=b"", user=None):
    """A checkpoint with a hand-made tensor table and valid checksums (what an attacker can write)."""
    meta = {"tensors": tensors, "user": {} if user is None else user}
    write_container(path, CHECKPOINT_MAGIC, CHECKPOINT_VERSION, meta, payload)
    return path


def _part(offset, length, shape, dtype):
    return {"offset": offset, "length": length, "shape": shape, "dtype": dtype}


def _dense(name, shape, dtype="float32", offset=0, length=None, itemsize=4):
    length = int(np.prod(shape)) * itemsize if length is None else length
    part = _part(offset, length, shape, dtype)
    return {"name": name, "kind": "dense", "shape": shape, "dtype": dtype, "parts": {"dense": part}}


def _packed_24(rows, cols, codes, values=None):
    """A 2:4 entry over a payload of its values and the given nibble bytes."""
    values = np.arange(1, rows * cols // 2 + 1, dtype=np.float32) if values is None else values
    raw_values, raw_codes = values.tobytes(), bytes(codes)
    parts = {
        "values": _part(0, len(raw_values), [rows, cols // 2], "float32"),
        "indices": _part(len(raw_values), len(raw_codes), [len(raw_codes)], "uint8"),
    }
    entry = {"name": "w", "kind": "2:4", "shape": [rows, cols], "dtype": "float32", "parts": parts}
    return [entry], raw_values + raw_codes


CRAFTED = {
    "tensors is not a list": ({"tensors": {"a": 1}}, b""),
    "entry without a name": ([{"kind": "dense"}], b""),
    "unknown dtype": ([_dense("a", [2], dtype="object")], b"\0" * 8),
    "unknown kind": ([{**_dense("a", [2]), "kind": "3:7"}], b"\0" * 8),
    "negative offset": ([_dense("a", [2], offset=-8)], b"\0" * 8),
    "part past the payload": ([_dense("a", [2], offset=4)], b"\0" * 8),
    "huge shape, tiny payload": ([_dense("a", [200_000, 200_000], length=8)], b"\0" * 8),
    "length that lies": ([_dense("a", [2, 2], length=8)], b"\0" * 16),
    "shape not a list": ([{**_dense("a", [2]), "shape": 7}], b"\0" * 8),
    "too many dimensions": ([_dense("a", [1] * 40)], b"\0" * 4),
    "boolean size": ([{**_dense("a", [2]), "shape": [True, 1]}], b"\0" * 8),
    "float size": ([{**_dense("a", [2]), "shape": [2.0]}], b"\0" * 8),
    "duplicate names": ([_dense("a", [2]), _dense("a", [2], offset=8)], b"\0" * 16),
    "overlapping parts": ([_dense("a", [4]), _dense("b", [4], offset=8)], b"\0" * 24),
    "user metadata not an object": ({"tensors": [], "user": [1]}, b""),
    "bool bytes other than 0 and 1": ([_dense("a", [4], dtype="bool", itemsize=1)], b"\0\1\2\1"),
    "2:4 code with equal positions": _packed_24(1, 8, [0x55]),
    "2:4 code with descending positions": _packed_24(1, 8, [0x34 | (0x4 << 4)]),
    "2:4 odd count, non-zero padding nibble": _packed_24(1, 4, [0x4 | (0x4 << 4)]),
    "2:4 indices of the wrong size": _packed_24(1, 8, [0x44, 0x44]),
    "2:4 integer values": (
        [{**_packed_24(1, 8, [0x44])[0][0], "dtype": "int32"}],
        _packed_24(1, 8, [0x44])[1],
    ),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_checkpoints_give_one_line_errors(case, tmp_path, capsys):
    table, payload = CRAFTED[case]
    path = tmp_path / "c.sp24"
    if isinstance(table, dict):  # the whole metadata
        write_container(path, CHECKPOINT_MAGIC, CHECKPOINT_VERSION, table, payload)
    else:
        _write(path, table, payload)
    with pytest.raises(CorruptFileError) as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    code, out = _cli(["inspect", str(path)], capsys)
    assert code == 2 and out.err.count("\n") == 1 and "Traceback" not in out.err


def _vnm_checkpoint(tmp_path, columns=None, positions=None, spec="vnm:2:2:8"):
    x = torch.relu(torch.randn(4, 16, generator=torch.Generator().manual_seed(0))) + 0.5
    packed = pack_vnm(x * vnm_mask(x, spec), spec)
    if columns is not None:
        packed.parts["columns"] = columns(packed.parts["columns"].clone())
    if positions is not None:
        packed.parts["positions"] = positions(packed.parts["positions"].clone())
    path = tmp_path / "v.sp24"
    save_checkpoint({"act": packed}, path)
    return path, packed


def test_vnm_tensors_round_trip_through_a_checkpoint(tmp_path, capsys):
    path, packed = _vnm_checkpoint(tmp_path)
    state, _ = load_checkpoint(path)
    assert torch.equal(state["act"], unpack_vnm(packed))
    code, out = _cli(["inspect", str(path)], capsys)
    assert code == 0 and "1 packed vnm:2:2:8" in out.out


@pytest.mark.parametrize(
    ("columns", "positions", "message"),
    [
        (lambda c: c.fill_(9), None, "strictly ascending in [0, 8)"),
        (lambda c: c.flip(-1).contiguous(), None, "strictly ascending"),
        (lambda c: c.fill_(1), None, "strictly ascending"),
        (None, lambda p: p.fill_(0xFF), "2 distinct ascending positions"),
    ],
)
def test_crafted_vnm_indices_give_one_line_errors(columns, positions, message, tmp_path):
    path, packed = _vnm_checkpoint(tmp_path, columns, positions)
    with pytest.raises(CorruptFileError, match=re.escape(message)):
        load_checkpoint(path)
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        unpack_vnm(packed)


def test_unpack_refuses_inconsistent_parts():
    w = torch.randn(4, 8)
    packed = pack_24(w * mask_24(w))
    with pytest.raises(InvalidInputError, match="part 'values'"):
        unpack_24(Packed("2:4", (4, 8), torch.float32, {**packed.parts, "values": torch.zeros(3)}))
    with pytest.raises(InvalidInputError, match="part 'indices'"):
        unpack_24(Packed("2:4", (4, 8), torch.float32, {"values": packed.parts["values"]}))
    with pytest.raises(InvalidInputError, match="2-D"):
        unpack_24(Packed("2:4", (4, 6), torch.float32, packed.parts))


def test_a_checkpoint_is_never_unpickled(tmp_path):
    import pickle

    path = tmp_path / "evil.sp24"
    path.write_bytes(pickle.dumps({"w": list(range(100))}))
    with pytest.raises(CorruptFileError, match="not a SP24CKPT file"):
        load_checkpoint(path)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_unpacking_keeps_every_bit_of_the_stored_values(dtype):
    """NaN payloads and signed zeros come back exactly as stored (values are moved as raw bits)."""
    w = torch.randn(2, 8)
    packed = pack_24(w * mask_24(w)).parts
    bits = {torch.float32: torch.int32, torch.float64: torch.int64}.get(dtype, torch.int16)
    raw = torch.full((2, 4), -7, dtype=bits)  # all ones but one bit: a NaN with a payload
    packed = Packed("2:4", (2, 8), dtype, {"values": raw.view(dtype), "indices": packed["indices"]})
    dense = unpack_24(packed)
    kept = dense.view(bits)[dense.view(bits) != 0]
    assert kept.numel() == 8 and bool((kept == -7).all())


def test_checkpoint_load_benchmark_measures_both_peers(tmp_path):
    from frugalml.sparse24.bench.checkpoint_load import checkpoint_load, unchecked_load

    records = checkpoint_load(dim=32, hidden=64, layers=1, rounds=1, folder=str(tmp_path))
    assert [r.peer.split(" ")[0] for r in records] == ["the", "torch.load(weights_only=True)"]
    assert all(r.ours > 0 and r.peer_value > 0 for r in records)
    w = torch.randn(8, 16)
    save_checkpoint({"w": w * mask_24(w), "n": torch.ones(3)}, tmp_path / "m.sp24")
    assert torch.equal(unchecked_load(tmp_path / "m.sp24")["w"], w * mask_24(w))


@pytest.mark.parametrize(
    ("command", "flag"), [("train", "-o"), ("train", "--json"), ("quality", "--json"), ("quality", "--plot")]
)
def test_cli_refuses_an_output_it_could_not_write_before_any_work(command, flag, tmp_path, capsys, no_work):
    missing = tmp_path / "no" / "such" / "folder" / "out.file"
    code, out = _cli([command, "--steps", "1", *TINY, flag, str(missing)], capsys)
    assert code == 2 and "does not exist" in out.err and not missing.parent.exists()
    code, out = _cli([command, "--steps", "1", *TINY, flag, str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in out.err
