"""Crafted files with valid checksums, as an attacker makes them: each ends in a one-line error
(exit 2 from the CLI) instead of a hang, a crash, a huge allocation or a wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

from frugalml.common.errors import CorruptFileError
from frugalml.pacset import PackedForest, open_packed, pack
from tests.fuzz import Sandbox, container_metadata, reseal_container, with_metadata
from tests.pacset.fuzz_cases import predict_bytes, reseal_pacset
from tests.pacset.test_cli import run


@pytest.fixture(scope="module")
def packed(tmp_path_factory, rf):
    path = tmp_path_factory.mktemp("untrusted") / "rf.pacset"
    pack(rf, path, bins=2, interleave=1)
    return path


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(timeout=30) as box:
        yield box


def set_word(data: bytes, path, slot: int, word: int, value: int) -> bytes:
    """The file with one int32 word of one node slot replaced, every checksum recomputed."""
    p = open_packed(path)
    at = p.nodes_offset + slot * p.meta["slot_size"] + 4 * word
    buf = bytearray(data)
    buf[at : at + 4] = int(value % 2**32).to_bytes(4, "little")
    return reseal_pacset(bytes(buf))


def root_slot(path) -> int:
    return int(open_packed(path).index.root_code[0])


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize(
    "attack",
    [
        "self-loop",
        "child before parent",
        "child past the end",
        "feature one past the end",
        "class out of range",
    ],
)
def test_crafted_nodes_give_one_line_errors(packed, cls_data, sandbox, engine, attack):
    data, root = packed.read_bytes(), root_slot(packed)
    word, value = {
        "self-loop": (0, root),
        "child before parent": (1, max(root - 1, 0)),
        "child past the end": (1, 2**31 - 1),
        "feature one past the end": (2, cls_data[0].shape[1]),
        "class out of range": (0, -2 - 1000),
    }[attack]
    crafted = set_word(data, packed, root, word, value)
    rows = np.repeat(cls_data[0][:1], 1500, axis=0)  # enough rows for engine="auto" to pick numba too
    for backend in ("mmap", "pread"):
        outcome = sandbox.run(predict_bytes, crafted, rows, engine, backend)
        assert outcome.kind == "error" and "invalid node" in outcome.value, outcome


def test_inspect_verify_walks_every_node(packed, tmp_path, capsys):
    bad = tmp_path / "loop.pacset"
    bad.write_bytes(set_word(packed.read_bytes(), packed, root_slot(packed), 0, root_slot(packed)))
    code, _, err = run(["pacset", "inspect", str(bad), "--verify"], capsys)
    assert code == 2 and "invalid node" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(["pacset", "inspect", str(packed), "--verify"], capsys)
    assert code == 0 and "every block seal and node ok" in out


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("n_blocks", 2 * 10**8, "payload length"),
        ("n_trees", 10**9, "index words"),
        ("slot_size", 0, "slot_size"),
        ("block_size", 0, "block_size"),
        ("n_features", "8", "n_features"),
        ("classes", ["a"], "classes"),
    ],
)
def test_crafted_headers_refused_before_allocating(packed, cls_data, tmp_path, capsys, field, value, message):
    meta = container_metadata(packed.read_bytes())
    meta[field] = value
    bad = tmp_path / "bad.pacset"
    bad.write_bytes(with_metadata(packed.read_bytes(), meta))
    np.save(tmp_path / "x.npy", cls_data[0][:2])
    code, _, err = run(["pacset", "predict", str(bad), str(tmp_path / "x.npy"), "--backend", "pread"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_blocks_of_another_model_fail_their_seal(packed, rf, cls_data, tmp_path):
    other = tmp_path / "other.pacset"
    pack(rf, other, bins=2, interleave=1)  # the same model packed again: another key
    a, b = packed.read_bytes(), other.read_bytes()
    start, bs = open_packed(packed).nodes_offset, open_packed(packed).meta["block_size"]
    swapped = tmp_path / "swapped.pacset"
    swapped.write_bytes(reseal_container(a[:start] + b[start : start + bs] + a[start + bs :]))
    with PackedForest.open(swapped) as model, pytest.raises(CorruptFileError, match="another model"):
        model.predict(cls_data[0][:5])


def test_files_without_a_model_key_still_load(packed, rf, cls_data, tmp_path):
    """Files written before the model key existed have seals without it and no 'model_id'."""
    meta = container_metadata(packed.read_bytes())
    del meta["model_id"]
    old = tmp_path / "old.pacset"
    old.write_bytes(reseal_pacset(with_metadata(packed.read_bytes(), meta)))
    X = cls_data[0][:50]
    with PackedForest.open(old) as model:
        np.testing.assert_array_equal(model.predict_proba(X), rf.predict_proba(X))
