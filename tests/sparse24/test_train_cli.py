"""Tiny Llama, training with the schedule, checkpoints, the CLI (exit code 2 on bad input) and the demo."""

import json
import math

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


TINY = [
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
    "--activations",
    "vnm:16:2:8",
]


def test_cli_train_passes_sparsity_options_to_the_layers(tmp_path, capsys, monkeypatch):
    from frugalml.sparse24 import schedule

    seen = []

    def spy(model, **options):
        seen.append(options)
        return sparsify_ffn(model, **options)

    monkeypatch.setattr(schedule, "sparsify_ffn", spy)
    history = tmp_path / "h.json"
    options = [
        "--method",
        "ste",
        "--transposable",
        "--transposable-method",
        "greedy",
        "--mask-every",
        "2",
        "--flip-every",
        "2",
        "--vnm-kernel",
        "gather",
        "--backend",
        "emulate",
    ]
    code, out = _cli(
        [
            "train",
            "--steps",
            "4",
            "--eval-every",
            "4",
            *TINY,
            *options,
            "--sparse-fraction",
            "1",
            "--json",
            str(history),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0 and "final validation loss" in out.out, out.err
    assert seen and {
        k: seen[0][k]
        for k in (
            "method",
            "transposable",
            "transposable_method",
            "mask_every",
            "flip_every",
            "vnm_kernel",
            "backend",
        )
    } == {
        "method": "ste",
        "transposable": True,
        "transposable_method": "greedy",
        "mask_every": 2,
        "flip_every": 2,
        "vnm_kernel": "gather",
        "backend": "emulate",
    }
    sparse_entry = json.loads(history.read_text())["history"][0]  # forward 3 re-masked: a flip rate
    assert sparse_entry["phase"] == "sparse" and 0 <= sparse_entry["flip_rate"] <= 1


def test_cli_train_logs_flip_rate_only_when_measured(tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="frugalml.sparse24")
    history = tmp_path / "h.json"
    code, _ = _cli(
        [
            "train",
            "--steps",
            "2",
            "--eval-every",
            "2",
            *TINY,
            "--flip-every",
            "1",
            "--sparse-fraction",
            "1",
            "--json",
            str(history),
        ],
        capsys,
    )
    assert code == 0 and "flip_rate=" in caplog.text and "weight_density=" in caplog.text
    assert json.loads(history.read_text())["history"][0]["flip_rate"] >= 0
    caplog.clear()
    code, _ = _cli(
        [
            "train",
            "--steps",
            "2",
            "--eval-every",
            "2",
            *TINY,
            "--flip-every",
            "0",
            "--sparse-fraction",
            "1",
            "--json",
            str(history),
        ],
        capsys,
    )
    assert code == 0 and "weight_density=" in caplog.text and "flip_rate" not in caplog.text
    assert "flip_rate" not in json.loads(history.read_text())["history"][0]
    caplog.clear()
    code, _ = _cli(
        [
            "train",
            "--steps",
            "2",
            "--eval-every",
            "2",
            *TINY,
            "--method",
            "ste",
            "--mask-every",
            "2",
            "--sparse-fraction",
            "1",
        ],
        capsys,
    )  # one held mask: no flip yet
    assert code == 0 and "weight_density=" in caplog.text and "flip_rate" not in caplog.text


@pytest.mark.parametrize("command", ["train", "quality"])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["--vnm-kernel", "cuda"], "choose one of: mask, gather, triton"),
        (["--mask-every", "0"], "mask_every must be >= 1"),
        (["--mask-every", "4"], "method='ste'"),
        (["--flip-every", "-1"], "flip_every must be >= 0"),
        (["--transposable-method", "fast"], "choose one of: exact, greedy"),
        (["--backend", "tpu"], "choose one of: emulate, cusparselt"),
        (["--method", "ste", "--backend", "cusparselt", "--vnm-kernel", "gather"], "use 'mask'"),
    ],
)
def test_cli_rejects_bad_sparsity_options_in_one_line(command, bad, message, capsys):
    code, out = _cli([command, "--steps", "1", *TINY, *bad], capsys)
    assert code == 2 and message in out.err and out.err.count("\n") == 1, (bad, out.err)


def test_dense_runs_still_reject_bad_sparsity_options(capsys):
    code, out = _cli(
        ["train", "--steps", "1", *TINY, "--weights", "dense", "--activations", "dense", "--mask-every", "0"],
        capsys,
    )
    assert code == 2 and "mask_every must be >= 1" in out.err
    assert TrainConfig(sparse_fraction=0.0, backend="cusparselt").is_dense  # no backend needed when dense


@pytest.mark.parametrize("command", ["train", "quality"])
def test_cli_names_the_fallback_for_unavailable_kernels(command, capsys, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if not torch.cuda.is_available():
        code, out = _cli([command, "--steps", "1", *TINY, "--backend", "cusparselt"], capsys)
        assert code == 2 and "backend='emulate'" in out.err and out.err.count("\n") == 1, out.err
    code, out = _cli([command, "--steps", "1", *TINY, "--vnm-kernel", "triton"], capsys)
    assert code == 2 and "use 'gather' or 'mask'" in out.err, out.err


def test_cli_quality_runs_with_sparsity_options(tmp_path, capsys):
    records = tmp_path / "q.json"
    code, out = _cli(
        [
            "quality",
            "--steps",
            "2",
            "--eval-every",
            "2",
            *TINY,
            "--arms",
            "dense,sparse->dense",
            "--method",
            "ste",
            "--mask-every",
            "2",
            "--vnm-kernel",
            "gather",
            "--json",
            str(records),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, out.err
    notes = [r["notes"] for r in json.loads(records.read_text())["records"]]
    assert len(notes) == 2 and all("V:N:M kernel gather" in n for n in notes)


def test_cli_help_documents_sparsity_options(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    for command in ("train", "quality"):
        code, out = _cli([command, "--help"], capsys)
        text = " ".join(out.out.split())
        assert code == 0
        for option in (
            "--transposable-method",
            "--flip-every",
            "--mask-every",
            "--vnm-kernel",
            "--backend",
            "--device",
            "--dtype",
            "--dense-features",
            "--token-permutation",
            "--masked-decay",
            "--packing",
        ):
            assert option in text, (command, option)
        assert "vnm:64:2:8" in text and "no autocast" in text


@pytest.mark.parametrize("command", ["train", "quality"])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["--device", "tpu"], "choose one of: cpu, cuda"),
        (["--dtype", "float16"], "choose one of: float32, bfloat16"),
        (["--dense-features", "1.5"], "dense_features"),
        (["--masked-decay", "-1"], "masked_decay must be >= 0"),
        (["--token-permutation", "--vnm-kernel", "gather"], "vnm_kernel 'mask'"),
        (["--packing", "fast"], "choose one of: learned, rule"),
    ],
)
def test_cli_rejects_bad_device_dtype_and_trick_options(command, bad, message, capsys):
    code, out = _cli([command, "--steps", "1", *TINY, *bad], capsys)
    assert code == 2 and message in out.err and out.err.count("\n") == 1, (bad, out.err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("command", ["train", "quality"])
@pytest.mark.parametrize(
    "ask", [["--device", "cuda"], ["--device", "cuda", "--backend", "cusparselt", "--dtype", "bfloat16"]]
)
def test_cli_asking_for_cuda_on_a_cpu_machine_is_one_line(command, ask, capsys):
    code, out = _cli([command, "--steps", "1", *TINY, *ask], capsys)
    assert code == 2 and "use --device cpu" in out.err and out.err.count("\n") == 1, out.err


def test_cusparselt_needs_bfloat16():
    from frugalml.sparse24.train import check_runnable

    with pytest.raises(Exception, match="--dtype bfloat16|--device cuda|backend='emulate'"):
        check_runnable(TrainConfig(backend="cusparselt", device="cpu"))
    if torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="add --dtype bfloat16"):
            check_runnable(TrainConfig(backend="cusparselt", device="cuda"))


def test_cli_trains_in_bfloat16_on_cpu_with_the_tricks(tmp_path, capsys, monkeypatch):
    from frugalml.sparse24 import schedule

    seen = []

    def spy(model, **options):
        seen.append((options, {p.dtype for p in model.parameters()}))
        return sparsify_ffn(model, **options)

    monkeypatch.setattr(schedule, "sparsify_ffn", spy)
    history = tmp_path / "h.json"
    code, out = _cli(
        [
            "train",
            "--steps",
            "4",
            "--eval-every",
            "2",
            *TINY,
            "--dtype",
            "bfloat16",
            "--dense-features",
            "0.05",
            "--token-permutation",
            "--masked-decay",
            "1e-3",
            "--json",
            str(history),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0 and "final validation loss" in out.out, out.err
    options, dtypes = seen[0]
    assert dtypes == {torch.bfloat16}
    tricks = (options["dense_features"], options["token_permutation"], options["masked_decay"])
    assert tricks == (0.05, True, 1e-3)
    entries = json.loads(history.read_text())["history"]
    assert all(math.isfinite(e["val_loss"]) for e in entries) and entries[0]["phase"] == "sparse"


def test_bfloat16_training_keeps_bfloat16_parameters():
    config = TrainConfig(
        steps=2,
        batch_size=2,
        seq_len=32,
        eval_every=2,
        eval_batches=1,
        activations="vnm:16:2:8",
        dtype="bfloat16",
        sparse_fraction=1.0,
    )
    result = train(SMALL, config, stdlib_bytes(50_000), quiet=True)
    assert {p.dtype for p in result.model.parameters()} == {torch.bfloat16}
    assert math.isfinite(result.final_val_loss)
