"""Tiny Llama, training with the schedule, checkpoints, the CLI (exit code 2 on bad input) and the demo."""

import json

import pytest
import torch

from frugalml.cli import main
from frugalml.common.corpus import corpus_bytes, stdlib_bytes
from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import LlamaConfig, TinyLlama, densify, load_checkpoint, sparsify_ffn
from frugalml.sparse24.corpus import ByteBatches
from frugalml.sparse24.model import apply_rope, rope_tables
from frugalml.sparse24.swap import export_sparse_state
from frugalml.sparse24.train import TrainConfig, save_model, train

SMALL = LlamaConfig(dim=32, n_layers=1, n_heads=2, hidden=64, max_seq_len=32)


def test_rope_rotation_preserves_norm_and_is_relative():
    cos, sin = rope_tables(8, 16, 10000.0)
    q = torch.randn(1, 1, 16, 8)
    rotated = apply_rope(q, cos, sin)
    assert torch.allclose(rotated.norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    same = q[:, :, :1].expand(1, 1, 16, 8)
    r = apply_rope(same, cos, sin)
    dots = (r[0, 0, :-1] * r[0, 0, 1:]).sum(-1)  # angle between neighbours is position-independent
    assert torch.allclose(dots, dots[0].expand_as(dots), atol=1e-4)


def test_model_is_causal():
    model = TinyLlama(SMALL, seed=0).eval()
    tokens = torch.randint(0, 256, (1, 16))
    changed = tokens.clone()
    changed[0, 10] = (changed[0, 10] + 1) % 256
    a, b = model(tokens)[0], model(changed)[0]
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6) and not torch.allclose(a[0, 10:], b[0, 10:])
    with pytest.raises(InvalidInputError, match="max_seq_len"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="ffn kind"):
        LlamaConfig(ffn="gelu")


def test_training_runs_schedule_and_checkpoint(tmp_path):
    config = TrainConfig(
        steps=6,
        batch_size=4,
        seq_len=32,
        eval_every=3,
        eval_batches=1,
        activations="vnm:16:2:8",
        sparse_fraction=0.5,
        checkpoint=str(tmp_path / "m.sp24"),
    )
    result = train(SMALL, config, stdlib_bytes(50_000), quiet=True)
    assert [h["phase"] for h in result.history] == ["sparse", "dense-tail"]
    assert result.history[0]["weight_density"] == 0.5 and all(
        torch.isfinite(torch.tensor(h["val_loss"])) for h in result.history
    )
    state, meta = load_checkpoint(tmp_path / "m.sp24")
    assert meta["model"]["dim"] == 32 and meta["train"]["steps"] == 6
    restored = TinyLlama(SMALL)
    restored.load_state_dict(state)
    tokens = torch.randint(0, 256, (2, 16))
    assert torch.equal(restored(tokens)[0], result.model(tokens)[0])


def test_compressed_checkpoint_reproduces_sparse_weights(tmp_path):
    model = sparsify_ffn(TinyLlama(SMALL), activations=None, method="sste")
    stats = save_model(model, tmp_path / "s.sp24", SMALL)
    assert stats["packed_tensors"] == 2 and stats["file_payload_bytes"] < stats["dense_bytes"]
    state, _ = load_checkpoint(tmp_path / "s.sp24")
    expected = export_sparse_state(model)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    loaded = TinyLlama(SMALL)
    loaded.load_state_dict(state)
    sparsify_ffn(loaded, activations=None, method="ste")  # already 2:4: the mask keeps every value
    tokens = torch.randint(0, 256, (1, 16))
    assert torch.allclose(loaded(tokens)[0], model(tokens)[0], atol=1e-5)
    densify(loaded)


def test_corpus_loading(shared_data, monkeypatch):
    assert len(corpus_bytes(None, max_bytes=1000)) == 1000
    monkeypatch.setenv("FRUGAL_DATA", str(shared_data))
    assert corpus_bytes("tinyshakespeare.txt", max_bytes=100).startswith(b"First Citizen")
    assert corpus_bytes(str(shared_data / "corpora" / "tinyshakespeare.txt"), max_bytes=5) == b"First"
    with pytest.raises(InvalidInputError, match="too small"):
        ByteBatches(b"abc" * 10, seq_len=64)


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sparse24", *args])
    return exit_info.value.code, capsys.readouterr()


def test_cli_train_inspect_and_errors(tmp_path, capsys):
    ckpt, history = tmp_path / "cli.sp24", tmp_path / "h.json"
    code, out = _cli(
        [
            "train",
            "--steps",
            "4",
            "--dim",
            "32",
            "--layers",
            "1",
            "--heads",
            "2",
            "--hidden",
            "64",
            "--batch-size",
            "2",
            "--seq-len",
            "32",
            "--eval-every",
            "2",
            "--activations",
            "vnm:16:2:8",
            "-o",
            str(ckpt),
            "--json",
            str(history),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0 and "final validation loss" in out.out
    assert len(json.loads(history.read_text())["history"]) == 2
    code, out = _cli(["inspect", str(ckpt)], capsys)
    assert code == 0 and "format v1" in out.out
    for bad, message in (
        (["train", "--activations", "vnm:64:3:8"], "N == 2"),
        (["train", "--data", "no-such-corpus.txt"], "not found"),
        (["train", "--hidden", "1022", "--steps", "1"], "divisible"),
        (["inspect", str(tmp_path / "missing.sp24")], "does not exist"),
        (["quality", "--arms", "dense,bogus"], "unknown arm"),
    ):
        code, out = _cli(bad, capsys)
        assert code == 2 and message in out.err, (bad, out.err)
    code, out = _cli(["backends"], capsys)
    assert code == 0 and "cusparselt" in out.out


def test_demo_is_one_line():
    from frugalml.sparse24.demo import run

    summary = run(quiet=True, steps=4)
    assert "\n" not in summary and "val loss" in summary


def test_cli_module_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, frugalml.sparse24.cli, frugalml.sparse24; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
