"""Fuzzing the array store every wing's model files build on (common.files + common.arrays):
crafted copies end in a one-line CorruptFileError or in exactly the arrays a reference parser
reads from the same bytes; never a crash, a hang or another exception."""

import os
import struct
import tempfile

import numpy as np
import pytest

from frugalml.common.arrays import save_arrays
from tests.fuzz import (
    Sandbox,
    container_metadata,
    mutations,
    read_arrays_reference,
    read_container_reference,
    reseal_container,
    with_metadata,
)

MAGIC = b"FUZZARR"
FIXED = struct.Struct("<8sIIQQ32s")


def load_case(data: bytes):
    """Runs in the sandbox: the store's reader on ``data``."""
    from frugalml.common.arrays import load_arrays

    fd, path = tempfile.mkstemp(suffix=".bin")
    try:
        os.write(fd, data)
        os.close(fd)
        return load_arrays(path, MAGIC, 1)
    finally:
        os.unlink(path)


def reference(data: bytes):
    """A slow, independent reading of the same bytes; None when they do not describe valid arrays."""
    container = read_container_reference(data, MAGIC, 1)
    if container is None or not isinstance(container[0].get("arrays"), list):
        return None
    meta, payload = container
    arrays = read_arrays_reference(meta, payload)
    return None if arrays is None else ({k: v for k, v in meta.items() if k != "arrays"}, arrays)


def _valid(tmp_path) -> bytes:
    path = tmp_path / "valid.bin"
    arrays = {
        "w": np.arange(12, dtype=np.float32).reshape(3, 4),
        "i": np.arange(5, dtype=np.int64),
        "e": np.zeros(0),
    }
    save_arrays(path, MAGIC, 1, {"params": {"k": 3}}, arrays)
    return path.read_bytes()


def _index_edits(data: bytes, count: int, seed: int):
    """Copies whose array index has one field set to a hostile value (checksums valid)."""
    rng = np.random.default_rng(seed)
    hostile = [-1, 0, 1, 2**31, 2**63 - 1, 10**12, "<f8", "|O", ">i4", "V8", None, [], [1, -1], "x"]
    for _ in range(count):
        meta = container_metadata(data)
        entry = meta["arrays"][int(rng.integers(len(meta["arrays"])))]
        field = str(rng.choice(["dtype", "shape", "offset", "nbytes", "name"]))
        value = hostile[int(rng.integers(len(hostile)))]
        entry[field] = [value] if field == "shape" and not isinstance(value, list) else value
        yield f"index {field}={value!r}", with_metadata(data, meta)


def _check(cases) -> None:
    problems = []
    with Sandbox(timeout=10) as box:
        for kind, data in cases:
            outcome = box.run(load_case, data)
            expected = reference(data)
            if not outcome.clean:
                problems.append(f"{kind}: {outcome.kind} {str(outcome.value)[:300]}")
            elif outcome.kind == "answer":
                meta, arrays = outcome.value
                if expected is None:
                    problems.append(f"{kind}: answered although the bytes are not valid arrays")
                    continue
                ref_meta, ref_arrays = expected
                same = meta == ref_meta and arrays.keys() == ref_arrays.keys()
                same = same and all(
                    arrays[k].shape == ref_arrays[k].shape  # pickling may swap bytes to native order
                    and arrays[k].dtype.newbyteorder("=") == ref_arrays[k].dtype.newbyteorder("=")
                    and arrays[k].astype(ref_arrays[k].dtype).tobytes() == ref_arrays[k].tobytes()
                    for k in arrays
                )
                if not same:
                    problems.append(f"{kind}: arrays differ from the reference reading")
    assert not problems, f"{len(problems)} bad cases:\n" + "\n".join(problems[:20])


def test_fuzz_array_store_seeded_subset(tmp_path):
    data = _valid(tmp_path)
    _check([*mutations(data, 300, seed=1, reseal=reseal_container), *_index_edits(data, 100, seed=2)])


@pytest.mark.slow
def test_fuzz_array_store_full(tmp_path):
    data = _valid(tmp_path)
    _check([*mutations(data, 2000, seed=11, reseal=reseal_container), *_index_edits(data, 500, seed=12)])
