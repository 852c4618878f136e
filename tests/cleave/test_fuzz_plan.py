"""Fuzzing plan files: crafted copies (also with a recomputed checksum, as an attacker would) end
in a one-line FrugalError or in a plan whose every field passed the reader's checks; never a
crash, a hang or another exception."""

import json
import os
import tempfile

import numpy as np
import pytest

from frugalml.cleave.devices import make_pool
from frugalml.cleave.models import DTYPE_BYTES, load_model
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.planfile import _digest, executable_plan, write_plan
from frugalml.cleave.planner import plan
from tests.fuzz import INTERESTING, Sandbox, mutations

ODD_VALUES = [
    *INTERESTING,
    2**64,
    -(2**63),
    1e308,
    -0.0,
    0.5,
    float("nan"),
    float("inf"),
    True,
    None,
    "",
    "x",
    [],
    {},
]


def read_case(data: bytes):
    """Runs in the sandbox: the plan reader on ``data``."""
    from frugalml.cleave.planfile import read_plan

    fd, path = tempfile.mkstemp(suffix=".json")
    try:
        os.write(fd, data)
        os.close(fd)
        return read_plan(path)
    finally:
        os.unlink(path)


def reseal(data: bytes) -> bytes:
    """The checksum recomputed over whatever the mutated file holds (unparsable bytes unchanged)."""
    try:
        doc = json.loads(data)
        doc["sha256"] = _digest({"execute": doc.get("execute"), "details": doc.get("details")})
        return json.dumps(doc).encode()
    except Exception:
        return data


def field_mutations(data: bytes, count: int, seed: int):
    """Copies whose JSON stays valid and sealed but one field (anywhere in the plan) holds an odd
    value or is gone: what a crafted file looks like once byte damage is out of the way."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        doc = json.loads(data)
        node, key = doc, None
        for _ in range(int(rng.integers(1, 6))):  # walk a random path into the document
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = keys[int(rng.integers(len(keys)))]
            child = node[key]
            if not isinstance(child, (dict, list)) or not child or rng.random() < 0.3:
                break
            node, key = child, None
        if key is None:
            continue
        if rng.random() < 0.2 and isinstance(node, dict):
            del node[key]
            what = f"deleted {key}"
        else:
            node[key] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
            what = f"{key} = {node[key]!r}"
        yield what, reseal(json.dumps(doc).encode())


@pytest.mark.timeout(300)
def test_crafted_plan_files_are_refused_cleanly_or_read_whole(tmp_path):
    pool = make_pool(counts={"laptop": 2, "phone-flagship": 2}, jitter=0)
    path = tmp_path / "plan.json"
    write_plan(path, executable_plan(plan(build_graph(load_model("tiny-gpt"), 8, 32, 4), pool), "float32"))
    data = path.read_bytes()
    kinds = {"answer": 0, "error": 0}
    with Sandbox(timeout=20) as box:
        assert box.run(read_case, data).kind == "answer"
        cases = [
            *mutations(data, 150, seed=16, reseal=reseal, resealed_share=0.7),
            *field_mutations(data, 300, 16),
        ]
        for what, mutated in cases:
            outcome = box.run(read_case, mutated)
            assert outcome.clean, f"{what}: {outcome}"
            kinds[outcome.kind] += 1
            if outcome.kind == "answer":
                p = outcome.value
                assert p.dtype in DTYPE_BYTES and all(n >= 0 for n in p.classes.values())
                for g in p.gemms:
                    assert (
                        1 <= g.grid_rows <= g.m and 1 <= g.grid_cols <= g.n and 1 <= g.batch_chunks <= g.batch
                    )
                    assert all(v >= 0 for v in g.shares.values())
    assert kinds["error"] > 100 and kinds["answer"] > 0  # both paths were exercised
