"""Backends report themselves unavailable on CPU; the V:N:M gather kernel is exact; benchmarks run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from frugalml.common.errors import InvalidInputError, PeerUnavailableError
from frugalml.sparse24 import (
    SparseLinear,
    SparsityConfig,
    SquaredReLUFFN,
    available_backends,
    check_backend,
    is_transposable_24,
    sparsify_ffn,
    vnm_gather_matmul,
    vnm_mask,
)
from frugalml.sparse24.bench.cpu_speed import cpu_speed, ffn_flops
from frugalml.sparse24.bench.gpu_speed import gpu_speed

REPO = Path(__file__).resolve().parents[2]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")


@no_cuda
def test_gpu_backend_is_unavailable_with_a_clear_error():
    ok, reason = available_backends()["cusparselt"]
    assert not ok and "CUDA" in reason
    with pytest.raises(PeerUnavailableError, match="backend='emulate'"):
        check_backend("cusparselt")
    with pytest.raises(PeerUnavailableError, match="cusparselt"):
        sparsify_ffn(SquaredReLUFFN(8, 16), backend="cusparselt")
    with pytest.raises(InvalidInputError, match="emulate, cusparselt"):
        SparsityConfig(backend="triton")


def test_vnm_gather_matmul_equals_dense_masked_matmul():
    x = torch.relu(torch.randn(32, 64)) ** 2
    x = x * vnm_mask(x, "8:2:8")
    w = torch.randn(16, 64)
    assert torch.allclose(vnm_gather_matmul(x, w, "8:2:8"), x @ w.t(), atol=1e-4)
    with pytest.raises(InvalidInputError, match="features"):
        vnm_gather_matmul(x, torch.randn(16, 32), "8:2:8")


def test_flop_model():
    f = ffn_flops(1024, 64, 256, "vnm:64:2:8")
    assert f["dense"] == 6 * 2 * 1024 * 64 * 256
    assert f["fraction"] == pytest.approx((0.5 + 0.5 + 1 + 0.25 + 0.5 + 1) / 6)


def test_cpu_benchmark_path_and_gpu_skip(tmp_path):
    records = cpu_speed(quick=True)
    assert {r.metric for r in records} >= {"time", "kept energy", "FLOPs"}
    assert all(r.ours > 0 for r in records)
    if not torch.cuda.is_available():
        (skipped,) = gpu_speed()
        assert skipped.metric == "skipped" and "CUDA" in skipped.notes


@no_cuda
def test_gpu_script_skips_cleanly_on_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(
        [str(REPO / "benchmarks/sparse24/gpu.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    records = json.loads((tmp_path / "gpu.json").read_text())["records"]
    assert records[0]["metric"] == "skipped"


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["exact", "greedy"])
def test_cusparselt_matches_emulation_on_gpu(method):
    if not available_backends()["cusparselt"][0]:
        pytest.skip(available_backends()["cusparselt"][1])
    torch.manual_seed(0)
    x = torch.randn(250, 256, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    layer = torch.nn.Linear(256, 1024, device="cuda", dtype=torch.bfloat16)
    fast = SparseLinear.from_dense(
        layer,
        SparsityConfig(
            activations=None,
            method="ste",
            transposable=True,
            transposable_method=method,
            backend="cusparselt",
        ),
    )
    y = fast(x)
    y.float().square().sum().backward()
    pruned = fast._prune(layer.weight.detach())
    assert is_transposable_24(pruned)
    x_ref = x.detach().clone().requires_grad_()
    y_ref = torch.nn.functional.linear(x_ref, pruned, layer.bias)
    y_ref.float().square().sum().backward()
    scale = float(y_ref.float().abs().max())
    assert float((y - y_ref).float().abs().max()) < 2e-2 * scale
    assert float((x.grad - x_ref.grad).float().abs().max()) < 2e-2 * float(x_ref.grad.float().abs().max())


def test_quality_benchmark_records_and_plot(tmp_path):
    from frugalml.common.corpus import stdlib_bytes
    from frugalml.sparse24 import LlamaConfig
    from frugalml.sparse24.bench.quality import quality
    from frugalml.sparse24.train import TrainConfig

    model = LlamaConfig(dim=32, n_layers=1, n_heads=2, hidden=64, max_seq_len=32)
    config = TrainConfig(
        steps=4, batch_size=2, seq_len=32, eval_every=2, eval_batches=1, activations="vnm:16:2:8"
    )
    records, runs = quality(
        model, config, stdlib_bytes(40_000), ["dense", "sparse->dense"], tmp_path / "q.png"
    )
    assert (tmp_path / "q.png").stat().st_size > 1000 and set(runs) == {"dense", "sparse->dense"}
    dense, sparse = records
    assert dense.peer is None and sparse.peer_value == dense.ours
    assert "target (within 2% of dense)" in sparse.notes


def test_seed_summary_gaps_are_per_seed_and_the_target_judges_their_mean():
    from frugalml.sparse24 import LlamaConfig
    from frugalml.sparse24.bench.quality import seed_summary_records
    from frugalml.sparse24.train import TrainConfig

    def run(loss):
        return {"final_val_loss": loss}

    runs = {
        0: {"dense": run(2.0), "sparse->dense": run(2.06), "weights-only": run(2.0)},
        1: {"dense": run(1.0), "sparse->dense": run(0.99)},
    }  # weights-only missing in seed 1
    (record,) = seed_summary_records(
        runs, LlamaConfig(dim=32, n_layers=1, n_heads=2, hidden=64), TrainConfig(steps=10)
    )
    assert record.workload.startswith("quality sparse->dense, mean of seeds 0-1")
    assert record.spread["gaps"] == pytest.approx([0.03, -0.01])
    assert record.spread["mean_gap"] == pytest.approx(0.01) and record.spread["seeds_within_2pct"] == 1
    assert record.ours == pytest.approx(1.525) and record.peer_value == pytest.approx(1.5)
    assert "target (within 2% of dense) MET: gap +1.00% (mean over seeds)" in record.notes


@no_cuda
def test_new_gpu_checks_skip_cleanly_on_cpu():
    from frugalml.sparse24.bench.gpu_checks import gpu_packing_rule, gpu_vnm_paths
    from frugalml.sparse24.bench.gpu_train_cli import gpu_train_cli

    for check in (gpu_packing_rule, gpu_train_cli, gpu_vnm_paths):
        (skipped,) = check()
        assert skipped.metric == "skipped" and "CUDA" in skipped.notes


def test_gpu_train_cli_runner_drives_the_real_cli(tmp_path):
    from frugalml.sparse24.bench.gpu_train_cli import CLI_RUNS, _cli_args, _run_cli

    assert _cli_args({"transposable": True, "packing": "rule"}) == ["--transposable", "--packing", "rule"]
    options = {
        **CLI_RUNS["emulate (reference)"],
        "device": "cpu",
        "dtype": "bfloat16",
        "steps": 2,
        "sparse_fraction": 1,
        "dim": 32,
        "layers": 1,
        "heads": 2,
        "hidden": 64,
        "batch_size": 2,
        "seq_len": 32,
        "eval_every": 2,
        "threads": 1,
    }
    code, output = _run_cli(options, str(tmp_path / "h.json"))
    assert code == 0 and "final validation loss" in output, output
    assert json.loads((tmp_path / "h.json").read_text())["history"][0]["phase"] == "sparse"
    code, output = _run_cli({**options, "backend": "cusparselt"}, str(tmp_path / "x.json"))
    assert (code == 2 and "emulate" in output) or torch.cuda.is_available()


def test_quality_over_seeds_resumes_from_its_run_cache(tmp_path, monkeypatch):
    from frugalml.common.errors import CorruptFileError
    from frugalml.sparse24 import LlamaConfig
    from frugalml.sparse24.bench import quality as bench_quality
    from frugalml.sparse24.train import TrainConfig

    trained = []

    def fake_arm(arm, model_config, train_config, corpus, quiet=False):
        trained.append((arm, train_config.seed))
        loss = 2.0 if arm == "dense" else 2.0 + 0.01 * (train_config.seed + 1)
        return {"history": [], "final_val_loss": loss, "tokens_per_s": 1.0, "parameters": 10}

    monkeypatch.setattr(bench_quality, "run_arm", fake_arm)
    model, config = LlamaConfig(dim=32, n_layers=1, n_heads=2, hidden=64), TrainConfig(steps=10)
    cache_path = tmp_path / "runs.json"
    arms = ["dense", "sparse->dense"]
    records, runs = bench_quality.quality_over_seeds(
        model, config, b"", "corpus", arms, [0, 1], bench_quality.RunCache(cache_path)
    )
    assert trained == [("dense", 0), ("sparse->dense", 0), ("dense", 1), ("sparse->dense", 1)]
    assert set(runs) == {0, 1} and records[-1].spread["gaps"] == pytest.approx([0.005, 0.01])
    again, _ = bench_quality.quality_over_seeds(
        model, config, b"", "corpus", arms, [0, 1], bench_quality.RunCache(cache_path)
    )
    assert len(trained) == 4 and [r.ours for r in again] == [r.ours for r in records]
    cache_path.write_text("{")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        bench_quality.RunCache(cache_path)


def test_gemm_breakdown_sums_the_parts_of_one_linear_step():
    from frugalml.sparse24.bench import gpu_breakdown as b

    times = {op: 1.0 for op in (b.FWD_DENSE, b.DX_DENSE, b.DW_DENSE, b.FWD_SPARSE, b.DX_SPARSE)}
    times.update({b.PRUNE: 0.5, b.PACK_P: 0.25, b.PACK_PT: 0.25, b.PACK_GATHER: 0.1})
    times.update({b.LEARN_GATHER: 9.5, b.PACK_RULE: 0.2})
    step = b.LinearStep.from_times(times)
    assert step.dense == 3.0 and step.gemms == 3.0
    assert step.overheads["mask every step"] == 1.0
    assert step.overheads["mask every step, shape-rule packing"] == pytest.approx(0.7)
    assert step.overheads["mask held 10 steps"] == pytest.approx(1.1)
    records = b.breakdown_records("tiny", "tiny W 8x8", times, "stand-in")
    assert [r.peer_value for r in records if r.workload.endswith(b.FWD_SPARSE)] == [1.0]
    assert sum("sum of parts" in r.workload for r in records) == 5


def test_summary_merges_the_result_files_and_says_when_the_gpu_was_not_measured(tmp_path):
    from frugalml.common.report import Record, read_json, write_json
    from frugalml.sparse24.bench.reproduce import summary

    write_json([Record("sparse24", "w", "time", "s", 1.0, notes="n")], tmp_path / "speed-cpu.json")
    records = summary(tmp_path, tmp_path / "summary.json")
    assert [r.metric for r in records] == ["time", "not measured"]
    assert read_json(tmp_path / "summary.json")[0]["notes"] == "n [from speed-cpu.json]"
