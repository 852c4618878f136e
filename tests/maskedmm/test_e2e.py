"""The end-to-end benchmark's machinery on a tiny configuration (its figures come from the
benchmark, never from a test)."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from frugalml.common.errors import InvalidInputError  # noqa: E402
from frugalml.maskedmm.bench import e2e, tinylm  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config():
    return e2e.E2EConfig(
        trained=tinylm.LMConfig(d_model=32, n_layer=2, n_head=2, block_size=64),
        wide=tinylm.LMConfig(d_model=64, n_layer=1, n_head=2, block_size=64),
        train_steps=3,
        train_batch=2,
        train_seq=16,
        batches=(1, 2),
        threads=(1,),
        prompt=8,
        decode_tokens=2,
        rounds=1,
        compiled=False,
    )


def test_e2e_records_name_the_batch_the_peer_the_density_and_replayed_patterns(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    records = e2e.run(tiny_config(), quiet=True, corpus_path=corpus)
    tokens = [r for r in records if r.metric == "tokens/s"]
    assert len(tokens) == 2 * 2 * 2  # models x batches x phases
    assert {r.workload.split(", ")[0] + ", " + r.workload.split(", ")[1] for r in tokens} == {
        "decode, batch 1",
        "decode, batch 2",
        "prefill, batch 1",
        "prefill, batch 2",
    }
    assert all(r.peer == e2e.TORCH and "torch" in r.peer and r.ratio > 0 for r in tokens)
    assert all("activation density" in r.notes and "planner chose" in r.notes for r in tokens)
    replayed = [r for r in tokens if "replayed" in r.workload]
    assert len(replayed) == 4 and all(r.notes.startswith("replayed activation patterns") for r in replayed)
    assert all(e2e.BOUND in r.notes for r in tokens if r.workload.startswith("decode, batch 1,"))
    controls = [r for r in records if r.metric == e2e.CONTROL]
    assert len(controls) == 2 and all(r.workload.startswith("decode, batch 1,") for r in controls)
    parts = {r.metric for r in records if r.metric.startswith("decode ms per token")}
    assert parts == {f"decode ms per token: {p}" for p in e2e.PARTS}
    densities = [r for r in records if r.metric.startswith("FFN activation density")]
    assert len(densities) == 2 and all(0 < r.ours <= 1 for r in densities)
    out = tmp_path / "e2e.json"
    e2e.publish(records, out)
    assert out.exists() and out.with_suffix(".png").stat().st_size > 1000


def test_ideal_bound_counts_only_the_down_projection_rows_left():
    model = tinylm.TinyLM(tinylm.LMConfig(d_model=32, n_layer=2, n_head=2, block_size=16))
    total, down = e2e.weight_bytes(model)
    assert down == 2 * 4 * 32 * 32 * 4 and total > down
    assert e2e.ideal_bound(model, 1.0) == 1.0
    assert e2e.ideal_bound(model, 0.0) == pytest.approx(total / (total - down))


def test_replayed_activations_keep_the_recorded_density():
    gen = np.random.default_rng(0)
    patterns = gen.random((64, 48)) < 0.1
    act = tinylm.ReplayedReLUSquared(patterns, hidden=512, seed=1)
    out = act(torch.randn(4, 100, 512))
    assert abs(float((out != 0).float().mean()) - patterns.mean()) < 0.03
    assert int(act.next) == 400 % 64  # rows are taken in turn


def test_replayed_activations_compile_once_whatever_the_turn():
    import torch._dynamo

    patterns = np.random.default_rng(0).random((64, 48)) < 0.1
    act = tinylm.ReplayedReLUSquared(patterns, hidden=32, seed=1)
    reference = copy.deepcopy(act)
    torch._dynamo.reset()
    compiled = torch.compile(act, backend="eager")
    x = torch.randn(3, 32)
    with torch._dynamo.config.patch(error_on_recompile=True), torch.inference_mode():
        for _ in range(5):  # the turn advances on every call: a guard on it would recompile
            assert torch.equal(compiled(x), reference(x))
    assert int(act.next) == 15


def test_bad_settings_are_refused():
    with pytest.raises(InvalidInputError, match="--steps"):
        e2e.configure(steps=0)
    with pytest.raises(InvalidInputError, match="--rounds"):
        e2e.configure(quick=True, rounds=-1)
    assert e2e.configure(quick=True, steps=7).train_steps == 7


def test_gated_block_benchmark_names_its_synthetic_sparsity_and_stays_exact():
    from frugalml.maskedmm.bench import gated

    (record,) = gated.measure(d=32, hidden=128, live=0.1, rows=(1,), rounds=1)
    assert "synthetic" in record.workload and record.peer == gated.PEER and record.ratio > 0
    error = float(record.notes.split("= ")[1].split(";")[0])
    assert error <= 1e-5 and "up_proj" in record.notes


def test_floor_decode_batches_compare_ours_and_a_dense_copy_with_torch():
    from frugalml.maskedmm.bench import floor

    torch.manual_seed(0)
    model = tinylm.TinyLM(tinylm.LMConfig(d_model=32, n_layer=1, n_head=2, block_size=32)).eval()
    text = torch.randint(0, 256, (400,))
    records = floor.decode_batch_records(model, text, (4,), threads=(1,), rounds=1, tokens=2, prompt=4)
    assert [r.metric for r in records] == [
        "tokens/s, after the trials settle",
        "tokens/s, control: a copy of the dense model in ours' place",
    ]
    assert all("decode, batch 4, 1 thread(s)" in r.workload and r.ours > 0 for r in records)


def test_floor_prefill_compares_ours_and_a_dense_copy_with_torch_at_batch_1_and_4():
    from frugalml.maskedmm.bench import e2e, floor

    torch.manual_seed(0)
    model = tinylm.TinyLM(tinylm.LMConfig(d_model=32, n_layer=1, n_head=2, block_size=32)).eval()
    text = torch.randint(0, 256, (400,))
    subject = e2e.subject("tiny", model, False, text)
    records = floor._prefill_records(subject, text, threads=1, rounds=1, label="tiny", prompt=4)
    assert [r.workload.split(",")[1].strip() for r in records] == ["batch 1"] * 2 + ["batch 4"] * 2
    assert all(r.workload.startswith("prefill 4 tokens") and r.ours > 0 for r in records)


def test_floor_trial_note_says_what_each_settled_case_kept_and_what_judged_it():
    from torch import nn

    from frugalml.maskedmm import planner
    from frugalml.maskedmm import torch as mt
    from frugalml.maskedmm.bench import floor

    torch.manual_seed(0)
    layer = mt.MaskedLinear(nn.Linear(512, 128), "down")
    model = nn.Sequential(layer)
    assert floor.trial_note(model, 4, 1) == "trials settled (cases): none"
    plan = planner.Plan("masked", 1, "avx512", "rows", {}, 0.1, 1.0, False)
    for bucket, period in ((1, 5.0), (2, 20.0), (3, None)):
        choice = layer._choices[(4, 1, torch.float32, bucket)] = mt._Choice(plan, planner.calibration())
        for _ in range(2 * mt.TRIALS):
            m = choice.method()
            choice.record(m, {"dense": 3.0, "masked": 1.0}[m], 10.0 if m == "dense" else period)
    assert floor.trial_note(model, 8, 1) == "trials settled (cases): none"  # other rows
    assert floor.trial_note(model, 4, 1) == (
        "trials settled (cases): dense by periods 1, masked by own times 1, masked by own times and periods 1"
    )
