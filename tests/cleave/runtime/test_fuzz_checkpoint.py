"""Fuzzing the parameter server's checkpoints: crafted copies (most re-sealed with valid checksums)
end in a one-line error or in exactly the weights a reference reading of the same bytes gives;
never a crash, a hang, another exception or a model changed by a refused file."""

import json
import os
import struct
import tempfile

import numpy as np
import pytest

from tests.fuzz import (
    Sandbox,
    container_metadata,
    mutations,
    read_arrays_reference,
    read_container_reference,
    reseal_container,
    with_metadata,
)

FIXED = struct.Struct("<8sIIQQ32s")


def _config():
    from frugalml.cleave.runtime.model import GPTConfig, TrainConfig

    return TrainConfig(steps=1, gpt=GPTConfig(n_layer=1, n_head=2, n_embd=16))


def _fresh():
    from frugalml.cleave.runtime.model import build, generated_corpus

    return build(_config(), generated_corpus(2000))


def warm_up() -> None:
    """Runs once in each sandbox child: import torch and build the model once."""
    _fresh()


def load_case(data: bytes):
    """Runs in the sandbox: the server's loader on ``data``; the loaded weights, or the model's own
    weights unchanged when the file is refused (checked by the caller)."""
    import torch

    from frugalml.cleave.runtime.checkpoint import load_checkpoint
    from frugalml.common.errors import FrugalError

    model, optimizer, _ = _fresh()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fd, path = tempfile.mkstemp(suffix=".ckpt")
    try:
        os.write(fd, data)
        os.close(fd)
        step, losses = load_checkpoint(path, model, optimizer, config=_config().to_dict())
    except FrugalError:
        unchanged = all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
        if not unchanged:
            return "changed the model, then refused the file"
        raise
    finally:
        os.unlink(path)
    return step, losses, {k: v.numpy().copy() for k, v in model.state_dict().items()}


def reference(data: bytes):
    """The same bytes read independently: (step, losses, weights) when the container, metadata and
    weight arrays are well-formed and fit the model, else None."""
    container = read_container_reference(data, b"CLVCKPT", 2)
    if container is None or FIXED.unpack_from(data)[1] != 2:
        return None
    meta, payload = container
    try:
        step, losses, config = meta["step"], meta["losses"], dict(meta["config"])
    except (KeyError, TypeError, ValueError):
        return None
    if type(step) is not int or step < 0 or not isinstance(losses, list) or len(losses) != step:
        return None
    if any(type(x) not in (int, float) for x in losses):
        return None
    expected = _config().to_dict()
    config.pop("steps", None)
    expected.pop("steps", None)
    if json.loads(json.dumps(config)) != json.loads(json.dumps(expected)):
        return None
    arrays = read_arrays_reference(meta, payload)
    if arrays is None:
        return None
    model, _, _ = _fresh()
    want = {f"model/{k}": v for k, v in model.state_dict().items()}
    weights = {k: v for k, v in arrays.items() if k.startswith("model/")}
    if weights.keys() != want.keys():
        return None
    for name, array in weights.items():
        if array.shape != tuple(want[name].shape) or array.dtype.newbyteorder("=") != np.dtype("float32"):
            return None
    return step, [float(x) for x in losses], {k[len("model/") :]: v.astype("=f4") for k, v in weights.items()}


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> tuple[bytes, bytes]:
    """Two checkpoints of the same model shape at different steps (for swapped payloads)."""
    from frugalml.cleave.runtime.checkpoint import save_checkpoint
    from frugalml.cleave.runtime.model import train_step

    out = []
    for steps in (1, 2):
        model, optimizer, data = _fresh()
        losses = [train_step(model, optimizer, data, _config(), s) for s in range(steps)]
        path = tmp_path_factory.mktemp("ckpt") / f"ps-{steps}.ckpt"
        save_checkpoint(path, model, optimizer, step=steps, losses=losses, config=_config().to_dict())
        out.append(path.read_bytes())
    return out[0], out[1]


def _metadata_edits(data: bytes, other: bytes, count: int, seed: int):
    rng = np.random.default_rng(seed)
    hostile = [-1, 0, 3, 2**63, 1e308, float("nan"), "x", None, [], {}, [1.0] * 5, {"steps": 1}]
    for _ in range(count):
        meta = container_metadata(data)
        field = str(rng.choice(["step", "losses", "config", "extra"]))
        meta[field] = hostile[int(rng.integers(len(hostile)))]
        yield f"metadata {field}", with_metadata(data, meta)
    # a payload from a checkpoint at another step, under this one's metadata (re-sealed)
    meta_len = FIXED.unpack_from(data)[2]
    other_offset, other_length = FIXED.unpack_from(other)[3:5]
    swapped = data[: FIXED.size + meta_len + 4] + other[other_offset : other_offset + other_length]
    yield (
        "payload of another checkpoint",
        reseal_container(_pad(swapped, FIXED.unpack_from(data)[3], other_length)),
    )


def _pad(head_and_payload: bytes, offset: int, length: int) -> bytes:
    """Place the payload at ``offset`` with the header's length field set to ``length``."""
    magic, version, meta_len, _, _, sha = FIXED.unpack_from(head_and_payload)
    head_end = FIXED.size + meta_len + 4
    head = FIXED.pack(magic, version, meta_len, offset, length, sha) + head_and_payload[FIXED.size : head_end]
    payload = head_and_payload[head_end:]
    return head + bytes(max(0, offset - len(head))) + payload


def _check(cases) -> None:
    problems = []
    with Sandbox(timeout=20, warm_up=warm_up) as box:
        for kind, data in cases:
            outcome = box.run(load_case, data)
            if not outcome.clean:
                problems.append(f"{kind}: {outcome.kind} {str(outcome.value)[-300:]}")
            elif outcome.kind == "answer":
                if isinstance(outcome.value, str):
                    problems.append(f"{kind}: {outcome.value}")
                    continue
                expected = reference(data)
                if expected is None:
                    problems.append(f"{kind}: answered although the reference finds the file invalid")
                    continue
                step, losses, weights = outcome.value
                same = (step, losses) == expected[:2] and all(
                    np.array_equal(weights[k], expected[2][k], equal_nan=True) for k in weights
                )
                if not same:
                    problems.append(f"{kind}: weights differ from the reference reading")
    assert not problems, f"{len(problems)} bad cases:\n" + "\n".join(problems[:20])


def test_reference_reads_the_valid_checkpoint(valid):
    assert reference(valid[0]) is not None and load_case(valid[0])[0] == 1


def test_fuzz_checkpoint_seeded_subset(valid):
    data, other = valid
    _check(
        [*mutations(data, 150, seed=3, reseal=reseal_container), *_metadata_edits(data, other, 50, seed=4)]
    )


@pytest.mark.slow
def test_fuzz_checkpoint_full(valid):
    data, other = valid
    _check(
        [
            *mutations(data, 2000, seed=13, reseal=reseal_container),
            *_metadata_edits(data, other, 300, seed=14),
        ]
    )
