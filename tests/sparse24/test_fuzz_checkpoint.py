"""Fuzzing sparse24 checkpoints: mutated copies of valid files (bytes flipped, truncated, extended,
spliced; tensor tables edited; payloads swapped between two models; checksums recomputed as an
attacker would) end in a one-line CorruptFileError or in exactly the tensors a slow, independent
reference reader (:mod:`tests.sparse24.checkpoint_reference`) unpacks from the same bytes; never a
crash, a hang, another exception or a refusal of bytes the reference reads."""

import numpy as np
import pytest
import torch

from frugalml.sparse24 import mask_24, pack_vnm, save_checkpoint, vnm_mask
from tests.fuzz import check_cases, container_metadata, mutations, reseal_container, with_metadata
from tests.sparse24.checkpoint_reference import Rejected, load_for_fuzz, reference_load, warm_up

HOSTILE = [-1, 0, 1, 2, 3, 4, 7, 8, 255, 256, 2**31, 2**48, 2**63, 10**30, 1.0, True, None, "8", [], {}]
KINDS = ["dense", "2:4", "vnm:2:2:8", "vnm:1:2:4", "vnm:1:2:300", "vnm:0:2:8", "vnm:2:3:8", "VNM:2:2:8", 7]
ACTIONS = [
    "part int",
    "part int",
    "shape",
    "part shape",
    "kind",
    "dtype",
    "part dtype",
    "swap",
    "dup",
    "drop",
]
DTYPES = ["float32", "float16", "bfloat16", "float64", "int64", "bool", "uint8", "object", "float128", 3]


def _valid(path, seed: int) -> bytes:
    """A checkpoint with every kind of tensor: 2:4 (float32, bfloat16, odd group count), V:N:M
    (uint8 and int16 columns), dense float, int and bool tensors."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(4, 16, generator=g)
    odd = torch.randn(3, 4, generator=g)
    x = torch.relu(torch.randn(4, 16, generator=g)) + 0.25
    wide = torch.relu(torch.randn(2, 600, generator=g)) + 0.25
    state = {
        "ffn.w1": w * mask_24(w),
        "ffn.half": (w * mask_24(w)).bfloat16(),
        "odd": odd * mask_24(odd),
        "act": pack_vnm(x * vnm_mask(x, "vnm:2:2:8"), "vnm:2:2:8"),
        "wide": pack_vnm(wide * vnm_mask(wide, "vnm:1:2:300"), "vnm:1:2:300"),
        "norm": torch.randn(6, generator=g),
        "steps": torch.arange(3),
        "flags": torch.tensor([True, False, True]),
    }
    save_checkpoint(state, path, {"model": {"dim": 16}, "seed": seed})
    return path.read_bytes()


def _table_edits(data: bytes, count: int, seed: int):
    """Copies whose tensor table has one field set to a hostile value, parts moved onto each other,
    an entry duplicated or a part dropped (checksums valid)."""
    rng = np.random.default_rng(seed)
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    for _ in range(count):
        meta = container_metadata(data)
        entries = meta["tensors"]
        entry = pick(entries)
        part = entry["parts"][pick(sorted(entry["parts"]))]
        action = pick(ACTIONS)
        if action == "part int":
            key = pick(["offset", "length"])
            part[key] = pick([*HOSTILE, part[key] + 1, part[key] - 1, part[key] * 2])
        elif action in ("shape", "part shape"):
            target = entry if action == "shape" else part
            shape = list(target["shape"])
            if shape and rng.random() < 0.7:
                shape[int(rng.integers(len(shape)))] = pick(HOSTILE)
            else:
                shape = pick([[], [0], shape + [1], shape[:-1], [1] * 20, "4"])
            target["shape"] = shape
        elif action == "kind":
            entry["kind"] = pick(KINDS)
        elif action in ("dtype", "part dtype"):
            (entry if action == "dtype" else part)["dtype"] = pick(DTYPES)
        elif action == "swap":  # a part pointed at another tensor's bytes
            other = pick(entries)
            other_part = other["parts"][pick(sorted(other["parts"]))]
            part["offset"], other_part["offset"] = other_part["offset"], part["offset"]
        elif action == "dup":
            entries.append(dict(entry))
        else:
            entry["parts"].pop(pick(sorted(entry["parts"])))
        yield f"table {action} of {entry['name']!r}", with_metadata(data, meta)


def _swaps(data: bytes, other: bytes, count: int, seed: int):
    """Copies with a run of payload bytes taken from another model of the same layout (resealed)."""
    rng = np.random.default_rng(seed)
    assert len(data) == len(other)  # same tensors and shapes, other values
    for _ in range(count):
        at = int(rng.integers(0, len(data)))
        size = int(rng.integers(1, 256))
        mixed = data[:at] + other[at : at + size] + data[at + size :]
        yield f"swap {size} bytes at {at} from another model", reseal_container(mixed)


TIMEOUT = 20.0  # seconds per case; reading one of these files takes milliseconds


def _reference(data: bytes):
    try:
        return reference_load(data)
    except Rejected:
        return None


def _check(cases) -> dict[str, int]:
    return check_cases(cases, load_for_fuzz, _reference, timeout=TIMEOUT, warm_up=warm_up)


def _cases(tmp_path, mutated: int, edits: int, swaps: int, seed: int):
    data, other = _valid(tmp_path / "a.sp24", 0), _valid(tmp_path / "b.sp24", 1)
    assert reference_load(data)["tensors"].keys() == load_for_fuzz(data)["tensors"].keys()
    return [
        ("valid", data),
        *mutations(data, mutated, seed=seed, reseal=reseal_container),
        *_table_edits(data, edits, seed=seed + 1),
        *_swaps(data, other, swaps, seed=seed + 2),
    ]


def test_fuzz_reference_agrees_with_the_loader_on_valid_files(tmp_path):
    data = _valid(tmp_path / "a.sp24", 3)
    assert reference_load(data) == load_for_fuzz(data)


def test_fuzz_checkpoints_seeded_subset(tmp_path):
    counts = _check(_cases(tmp_path, mutated=150, edits=100, swaps=30, seed=1))
    assert counts["error"] > 100 and counts["answer"] > 10  # both outcomes exercised


@pytest.mark.slow
def test_fuzz_checkpoints_full(tmp_path):
    counts = _check(_cases(tmp_path, mutated=2500, edits=1200, swaps=300, seed=101))
    assert counts["error"] + counts["answer"] == 4001
