"""maskedmm inside torch models: the op, the module swap, exactness, gradients and bad input."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from frugalml.common.errors import InvalidInputError  # noqa: E402
from frugalml.maskedmm import torch as mt  # noqa: E402
from frugalml.maskedmm.bench import tinylm  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_model(dtype=torch.float32, scale=8.0, seed=0):
    """A random ReLU^2 decoder whose weights are scaled up so greedy choices are never near ties."""
    torch.manual_seed(seed)
    model = tinylm.TinyLM(tinylm.LMConfig(d_model=64, n_layer=2, n_head=4, block_size=256)).eval().to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


class GatedMLP(nn.Module):
    """A Llama-style gated FFN with ReLU on the gate."""

    def __init__(self, d=32, hidden=96):
        super().__init__()
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)
        self.act_fn = nn.ReLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def test_eligible_layers_are_the_relu_fed_down_projections():
    model = small_model()
    assert mt.eligible_layers(model) == ["blocks.0.mlp.c_proj", "blocks.1.mlp.c_proj"]
    assert mt.eligible_layers(nn.Sequential(GatedMLP())) == ["0.down_proj"]
    gelu = small_model()
    for block in gelu.blocks:
        block.mlp.act = nn.GELU()
    assert mt.eligible_layers(gelu) == []


@pytest.mark.parametrize("method", ["auto", "masked", "sparse"])
def test_every_swapped_layer_matches_dense_within_1e_5_of_its_largest_output(method):
    model = small_model(scale=1.0)
    model.blocks[1].mlp.act = nn.ReLU()
    names = mt.sparsify_(model, method=method)
    worst = []

    def check(module, inputs, output):
        (x,) = inputs
        expected = nn.functional.linear(x, module.weight, module.bias)
        worst.append(float((output - expected).abs().max() / expected.abs().max()))

    hooks = [model.get_submodule(n).register_forward_hook(check) for n in names]
    with torch.inference_mode():
        model(torch.randint(0, 256, (4, 32)))
        tinylm.generate(model, torch.randint(0, 256, (3, 5)), 4)
    for h in hooks:
        h.remove()
    assert len(worst) == 2 * (1 + 5) and max(worst) <= 1e-5
    report = mt.layer_report(model)
    assert [r.name for r in report] == names
    # a layer that retires (auto: dense at these row counts) stops counting: nn.Linear runs
    assert all((r.calls == 6 or r.retired and 1 <= r.calls < 6) and 0.3 < r.density < 0.7 for r in report)
    if method != "auto":
        assert all(r.methods == {method: 6} for r in report)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_greedy_tokens_over_200_tokens_equal_the_dense_models(dtype):
    dense = small_model(dtype)
    ours = copy.deepcopy(dense)
    mt.sparsify_(ours, method="masked")
    prompt = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = tinylm.generate(dense, prompt, 200)
        got = tinylm.generate(ours, prompt, 200)
    assert torch.equal(got, expected)
    assert len(set(expected[0].tolist())) > 10  # a real sequence, not one token repeated
    assert all(r.calls == 201 and r.methods == {"masked": 201} for r in mt.layer_report(ours))


def test_unsparsify_puts_the_original_layers_back():
    model = small_model()
    originals = [b.mlp.c_proj for b in model.blocks]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mt.sparsify_(model)
    assert set(model.state_dict()) == set(state)
    assert mt.unsparsify_(model) == ["blocks.0.mlp.c_proj", "blocks.1.mlp.c_proj"]
    assert [b.mlp.c_proj for b in model.blocks] == originals and mt.layer_report(model) == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_gated_relu_ffn_down_projection_is_swapped_and_exact():
    torch.manual_seed(0)
    model = nn.Sequential(GatedMLP())
    x = torch.randn(5, 7, 32)
    with torch.no_grad():
        expected = model(x)
    mt.sparsify_(model, method="masked")
    with torch.inference_mode():
        got = model(x)
    assert float((got - expected).abs().max()) <= 1e-5 * float(expected.detach().abs().max())


def test_ops_are_registered_and_differentiate_exactly():
    a = torch.relu(torch.randn(3, 6, dtype=torch.float64)).requires_grad_()
    b = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(torch.ops.frugalml.maskedmm(a, b), a @ b)
    assert torch.autograd.gradcheck(mt.maskedmm, (a, b))
    model = nn.Sequential(nn.Linear(4, 24), nn.ReLU(), nn.Linear(24, 4)).double()
    mt.sparsify_(model, method="masked")
    layer = model[2]
    x = torch.relu(torch.randn(2, 3, 24, dtype=torch.float64)).requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, bias: mt.maskedmm_linear(x, layer.weight, bias, layer.key), (x, bias)
    )
    # the weight is prepared once, so its gradient is checked against torch's own linear
    grad = torch.randn(2, 3, 4, dtype=torch.float64)
    ours = torch.autograd.grad(layer(x), (x, layer.weight, layer.bias), grad)
    dense = torch.autograd.grad(
        nn.functional.linear(x, layer.weight, layer.bias), (x, layer.weight, layer.bias), grad
    )
    assert all(torch.allclose(o, d, rtol=1e-12, atol=1e-12) for o, d in zip(ours, dense, strict=True))


def test_training_step_reprepares_the_weight():
    model = small_model(scale=1.0)
    mt.sparsify_(model, method="masked")
    layer = model.blocks[0].mlp.c_proj
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    idx = torch.randint(0, 256, (2, 16))
    model(idx).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    opt.step()
    x = torch.relu(torch.randn(4, 256))
    with torch.inference_mode():
        got = layer(x)
    expected = nn.functional.linear(x, layer.weight.detach(), layer.bias.detach())
    assert torch.allclose(got, expected, atol=1e-5 * float(expected.abs().max()))


def test_nan_activations_run_dense_and_give_the_dense_output():
    model = small_model(scale=1.0)
    mt.sparsify_(model, method="masked")
    layer = model.blocks[0].mlp.c_proj
    x = torch.relu(torch.randn(3, 256))
    x[1, 5] = float("nan")
    x[2, 7] = float("inf")
    with torch.inference_mode():
        got = layer(x)
    expected = nn.functional.linear(x, layer.weight.detach(), layer.bias.detach())
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    finite = torch.isfinite(expected)
    assert torch.equal(got[finite], expected[finite])
    assert layer.report.nonfinite_calls == 1 and layer.report.methods == {"dense": 1}


def _structure(model):
    return [(n, type(m)) for n, m in model.named_modules()]


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: small_model().half(), "float16"),
        (lambda: small_model().bfloat16(), "bfloat16"),
        (lambda: small_model().to("meta"), "meta"),
        (lambda: nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8)), "no FFN down projection"),
    ],
)
def test_bad_models_are_refused_and_left_unchanged(make, message):
    model = make()
    before = _structure(model)
    with pytest.raises(InvalidInputError, match=message):
        mt.sparsify_(model)
    assert _structure(model) == before


def test_refusals_of_a_second_sparsify_a_filter_that_keeps_nothing_and_an_unknown_method():
    model = small_model()
    with pytest.raises(InvalidInputError, match="filter_fn rejected"):
        mt.sparsify_(model, lambda name, layer: False)
    with pytest.raises(InvalidInputError, match="unknown method"):
        mt.sparsify_(model, method="fast")
    assert mt.sparsify_(model, lambda name, layer: name.startswith("blocks.1")) == ["blocks.1.mlp.c_proj"]
    with pytest.raises(InvalidInputError, match="already sparsified"):
        mt.sparsify_(model, lambda name, layer: name.startswith("blocks.1"))


def test_bad_inputs_to_the_ops_are_clear_errors():
    model = small_model()
    mt.sparsify_(model)
    layer = model.blocks[0].mlp.c_proj
    with pytest.raises(InvalidInputError, match=r"shape \(\.\.\., 256\)"):
        layer(torch.zeros(3, 255))
    with pytest.raises(InvalidInputError, match="float16"):
        layer(torch.zeros(3, 256, dtype=torch.float16))
    with pytest.raises(InvalidInputError, match="float64 but its weight is torch.float32"):
        layer(torch.zeros(3, 256, dtype=torch.float64))
    a = torch.zeros(8, 6)
    with pytest.raises(InvalidInputError, match="not contiguous"):
        mt.maskedmm(a.T, torch.zeros(8, 3))
    with pytest.raises(InvalidInputError, match=r"a \(M, K\) and b \(K, N\)"):
        mt.maskedmm(a, torch.zeros(5, 3))
    with pytest.raises(InvalidInputError, match="bfloat16"):
        mt.maskedmm(a.bfloat16(), torch.zeros(6, 3).bfloat16())
    assert layer.report.calls == 0


@pytest.mark.gpu
def test_cuda_inputs_are_refused():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    with pytest.raises(InvalidInputError, match="cuda"):
        mt.maskedmm(torch.zeros(2, 2, device="cuda"), torch.zeros(2, 2, device="cuda"))


def test_non_contiguous_activations_into_a_swapped_layer_give_the_dense_result():
    model = small_model(scale=1.0)
    mt.sparsify_(model, method="masked")
    layer = model.blocks[0].mlp.c_proj
    x = torch.relu(torch.randn(256, 6)).T
    with torch.inference_mode():
        got = layer(x)
    expected = nn.functional.linear(x, layer.weight.detach(), layer.bias.detach())
    assert np.allclose(got.numpy(), expected.numpy(), atol=1e-5 * float(expected.abs().max()))


@pytest.mark.slow
def test_a_sparsified_model_compiles_with_torch_compile():
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64))
    mt.sparsify_(model, method="masked")
    x = torch.randn(8, 64)
    with torch.inference_mode():
        expected = model(x)
        try:
            got = torch.compile(model)(x)
        except Exception as exc:  # noqa: BLE001  no C++ compiler or another torch.compile limit
            pytest.skip(f"torch.compile cannot run here: {type(exc).__name__}")
    assert torch.allclose(got, expected, atol=1e-6)
    assert model[2].report.methods == {"masked": 2}


def _never_dense_outright(linear: nn.Linear) -> mt.MaskedLinear:
    """A swapped down projection that is never dense outright at one thread: its cases and trials decide."""
    layer = mt.MaskedLinear(linear, "down")
    layer.dense_rows[1] = (0, float("inf"), 256)
    layer._outright.clear()
    return layer


def _plan(method: str):
    from frugalml.maskedmm import planner

    return planner.Plan(method, 1, "avx512", "rows", {}, 0.1, 1.0, False)


def test_a_case_settles_on_the_method_measured_faster():
    from frugalml.maskedmm import planner

    slow = mt._Choice(_plan("masked"), planner.calibration())
    for _ in range(mt.TRIALS):
        assert slow.method() == "dense"  # dense first, then alternating
        slow.record("dense", 1.0)
        assert slow.method() == "masked"
        slow.record("masked", 1.2)
    assert slow.settled == "dense" and slow.method() == "dense"
    fast = mt._Choice(_plan("masked"), planner.calibration())
    for _ in range(mt.TRIALS):
        fast.record(fast.method(), 1.0)
        fast.record(fast.method(), 0.5)
    assert fast.settled == "masked"
    assert mt._Choice(_plan("dense"), planner.calibration(), settled="dense").method() == "dense"


def test_inference_calls_try_both_methods_then_keep_one_and_stay_exact():
    torch.manual_seed(0)
    linear = nn.Linear(2048, 512)
    layer = mt.MaskedLinear(linear, "down")
    x = torch.relu(torch.randn(2, 2048)) * (torch.rand(2, 2048) < 0.1)
    with torch.inference_mode():
        expected = linear(x)
        outs = [layer(x) for _ in range(2 * mt.TRIALS + 4)]
    for out in outs:
        assert float((out - expected).abs().max()) <= 1e-5 * float(expected.abs().max())
    report = layer.report
    assert report.calls == len(outs) and report.rows == 2 * len(outs)
    assert 0.01 < report.density < 0.1
    (choice,) = layer._choices.values()
    assert choice.settled in ("dense", choice.plan.method)
    if choice.plan.method != "dense":  # the trial ran both
        assert report.methods.get("dense", 0) >= mt.TRIALS


def test_small_layers_run_torch_linear_and_count_zeros_on_sampled_calls(monkeypatch):
    monkeypatch.setattr(mt, "RETIRE_OUTRIGHT", 10**9)  # not retiring: every call is counted
    monkeypatch.setattr(mt, "RETIRE_MEASURED", 10**9)
    torch.manual_seed(0)
    linear = nn.Linear(64, 16)
    layer = mt.MaskedLinear(linear, "small")
    x = torch.relu(torch.randn(1, 64))
    with torch.inference_mode():
        for _ in range(2 * mt.SAMPLE_EVERY):
            assert torch.equal(layer(x), linear(x))
    report = layer.report
    assert report.methods == {"dense": 2 * mt.SAMPLE_EVERY} and report.counted_rows == 2
    assert report.density == pytest.approx(float((x != 0).float().mean()))


def test_a_layer_dense_on_every_recent_call_retires_to_torch_linears_own_forward_until_reset():
    torch.manual_seed(0)
    linear = nn.Linear(512, 128)
    model = nn.Sequential(nn.Linear(128, 512), nn.ReLU(), linear)
    assert mt.sparsify_(model) == ["2"]
    layer = model[2]
    layer._outright[(1, torch.float32, 1)] = "costs"  # one row: dense outright by the planner's costs
    x = torch.relu(torch.randn(1, 512))
    with torch.inference_mode():
        for _ in range(mt.RETIRE_OUTRIGHT + 5):
            assert torch.equal(layer(x), linear(x))
    report = layer.report
    assert report.retired and report.calls == mt.RETIRE_OUTRIGHT and "retired" in str(report)
    assert layer.forward == linear.forward  # nn.Module.__call__ runs nn.Linear's own forward
    with torch.no_grad():
        linear.weight.mul_(2.0)  # a retired layer follows the current weight
    with torch.inference_mode():
        assert torch.equal(layer(x), linear(x))
    mt.reset_layer_report(model)
    assert not layer.report.retired and "forward" not in layer.__dict__
    layer._outright[(1, torch.float32, 1)] = "measured"  # the layer's own timing found dense faster
    layer._fast.clear()
    with torch.inference_mode():
        for _ in range(3):
            assert torch.equal(layer(x), linear(x))
    assert layer.report.retired and layer.report.calls == mt.RETIRE_MEASURED == 1  # retired at once


def test_layers_that_cannot_win_are_kept_as_plain_linears_with_the_measured_reason():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16))
    linear = model[2]
    assert mt.sparsify_(model) == []
    assert model[2] is linear and type(linear) is nn.Linear
    (report,) = mt.layer_report(model)
    assert report.name == "2" and report.kept_dense and report.to_dict()["kept_dense"] == report.kept_dense
    assert "kept dense: skipping cannot beat torch's linear" in str(report)
    assert "measured at 1 row" in str(report)
    assert mt.unsparsify_(model) == [] and mt.layer_report(model) == []
    assert mt.sparsify_(model, method="masked") == ["2"]  # a forced method swaps it anyway


class UpFirstMLP(GatedMLP):
    """The same block computing the up projection before the gate."""

    def forward(self, x):
        up = self.up_proj(x)
        return self.down_proj(up * self.act_fn(self.gate_proj(x)))


def up_report(model):
    (report,) = [r for r in mt.layer_report(model) if r.name == "0.up_proj"]
    return report


def sparse_gated(cls=GatedMLP, bias=-0.6):
    torch.manual_seed(0)
    block = cls()
    block.gate_proj = nn.Linear(32, 96)
    with torch.no_grad():
        block.gate_proj.bias.fill_(bias)  # about 15% of the gate's outputs positive
    return nn.Sequential(block)


@pytest.mark.parametrize("shape", [(1, 1, 32), (1, 32), (5, 7, 32)])
def test_gated_up_projection_computes_only_live_outputs_and_the_block_stays_exact(shape):
    model = sparse_gated()
    dense = copy.deepcopy(model)
    assert mt.sparsify_(model)[-1] == "0.up_proj"  # the down projection, this small, is kept dense
    assert isinstance(model[0].up_proj, mt.GatedUpLinear)
    x = torch.randn(*shape)
    with torch.inference_mode():
        expected, got = dense(x), model(x)
    assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())
    report = up_report(model)
    assert report.calls == 1
    rows = x.numel() // 32
    assert report.methods == ({"gather": 1} if rows == 1 else {"dense": 1})  # 35 rows: union fills up
    assert 0.0 < report.density < 0.5
    with torch.inference_mode():
        for _ in range(4):  # a fresh input each call: nothing of the last call's gate is reused
            x = torch.randn(*shape)
            expected, got = dense(x), model(x)
            assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


def test_gated_up_projection_runs_dense_out_of_order_with_autograd_and_is_removed_cleanly():
    model = sparse_gated(UpFirstMLP)
    dense = copy.deepcopy(model)
    mt.sparsify_(model)
    x = torch.randn(1, 32)
    with torch.inference_mode():
        for _ in range(3):  # the up projection runs before its gate: never a stale gate
            assert torch.allclose(model(x), dense(x), atol=1e-6)
    assert up_report(model).methods == {"dense": 3}
    model, dense = sparse_gated(), sparse_gated()
    mt.sparsify_(model)
    x = torch.randn(1, 32, requires_grad=True)
    model(x).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    dense(x).sum().backward()
    assert torch.allclose(grad, x.grad, atol=1e-6)
    assert up_report(model).methods == {"dense": 1}
    gate = model[0].gate_proj
    assert mt.unsparsify_(model)[-1] == "0.up_proj"
    assert type(model[0].up_proj) is nn.Linear and not gate._forward_hooks
    assert mt.sparsify_(model, method="masked", gated_up=False) == ["0.down_proj"]


def test_dense_row_ranges_cover_only_the_row_counts_where_dense_won():
    won = {1: True, 2: True, 4: False, 8: True, 16: False, 32: True, 64: True}
    assert mt._dense_row_ranges(won) == (2, 32, 64)
    assert mt._dense_row_ranges({1: False, 2: False}) == (0, float("inf"), 2)
    assert mt._dense_row_ranges({1: True, 2: True}) == (2, 1, 2)


def test_a_small_model_layer_takes_torchs_linear_at_the_row_counts_where_dense_won_when_timed():
    torch.manual_seed(0)
    model = tinylm.TinyLM(tinylm.LMConfig(d_model=128, n_layer=1, n_head=4, block_size=256)).eval()
    linear = model.blocks[0].mlp.c_proj
    layer = mt.MaskedLinear(linear, "down")
    upto, start, top = layer.dense_rows[1]  # timed when the layer was made (on torch's 1 thread)
    assert top == max(r for r in mt.MEASURE_ROWS if r * 512 * 128 <= mt.MEASURE_MACS)
    for rows in mt.MEASURE_ROWS:  # wherever dense won, the case is dense outright
        if rows <= upto or start <= rows <= top:
            assert layer._dense_outright(rows, torch.float32, 1)
    layer.dense_rows[1] = (32, float("inf"), top)  # as if dense had won at 1-32 rows when timed
    layer._outright.clear()
    with torch.inference_mode():
        for rows in (32, 64):
            x = torch.relu(torch.randn(rows, 512)) * (torch.rand(rows, 512) < 0.05)
            assert torch.allclose(layer(x), linear(x), atol=1e-5)
            assert torch.allclose(layer(x), linear(x), atol=1e-5)
    assert (torch.Size([32, 512]), torch.float32, 1) in layer._fast  # dense fast path, no trial
    assert all(case[0] == 64 for case in layer._choices)  # only 64 rows was planned


def test_a_case_settled_on_skipping_is_tried_again_now_and_then():
    from frugalml.maskedmm import planner

    choice = mt._Choice(_plan("masked"), planner.calibration())
    for _ in range(mt.TRIALS):
        choice.record(choice.method(), 1.0)
        choice.record(choice.method(), 0.5)
    assert choice.settled == "masked"
    for _ in range(mt.RECHECK_EVERY - 1):
        choice.use()
    assert choice.settled == "masked"
    choice.use()
    assert choice.settled is None and choice.times == {} and choice.method() == "dense"
    dense = mt._Choice(_plan("masked"), planner.calibration(), settled="dense")
    for _ in range(mt.RECHECK_EVERY):
        dense.use()
    assert dense.settled == "dense"  # a dense case retires the layer instead


def test_a_dense_trial_times_torchs_linear_alone_and_a_skipping_trial_its_density_estimate_too(monkeypatch):
    import time

    from frugalml.maskedmm import planner

    estimate = planner.density_estimate

    def slow_estimate(a):
        time.sleep(0.005)
        return estimate(a)

    monkeypatch.setattr(planner, "density_estimate", slow_estimate)
    torch.manual_seed(0)
    layer = _never_dense_outright(nn.Linear(2048, 512))
    x = torch.relu(torch.randn(2, 2048)) * (torch.rand(2, 2048) < 0.05)
    with torch.inference_mode():
        for _ in range(2 * mt.TRIALS + 1):  # the last trial's period ends at the next call
            layer(x)
    (choice,) = layer._choices.values()
    if choice.plan.method == "dense":
        pytest.skip("the planner picks dense for this shape here")
    assert choice.settled == "dense"  # the estimate alone costs skipping the trial
    assert max(choice.times["dense"]) < 0.005 <= min(choice.times[choice.plan.method])


def test_a_shape_settled_on_dense_skips_the_density_estimate_and_is_planned_again_now_and_then(monkeypatch):
    from frugalml.maskedmm import planner

    estimates = []
    estimate = planner.density_estimate

    def counted(a):
        estimates.append(a.shape)
        return estimate(a)

    monkeypatch.setattr(planner, "density_estimate", counted)
    monkeypatch.setattr(mt, "RETIRE_AFTER", 10**9)  # not retiring: the fast path is what runs
    torch.manual_seed(0)
    linear = nn.Linear(2048, 512)
    layer = _never_dense_outright(linear)
    dense_x = torch.relu(torch.randn(4, 2048))  # about half zeros: the planner picks dense
    shape = (dense_x.shape, torch.float32, 1)
    before = len(estimates)  # the layer's timing when made estimates densities too
    with torch.inference_mode():
        for _ in range(mt.DENSE_STREAK):
            assert shape not in layer._settled_dense  # planned until a streak of settled-dense calls
            assert torch.equal(layer(dense_x), linear(dense_x))
        (choice,) = layer._choices.values()
        assert choice.settled == "dense"
        assert shape in layer._settled_dense and len(estimates) == before + mt.DENSE_STREAK
        planned = len(estimates)
        for _ in range(mt.DENSE_RECHECK_EVERY - 1):  # the fast path: torch's linear, no estimate
            assert torch.equal(layer(dense_x), linear(dense_x))
        calls = mt.DENSE_STREAK + mt.DENSE_RECHECK_EVERY - 1
        assert len(estimates) == planned and layer.report.calls == calls
        sparse_x = dense_x * (torch.rand(4, 2048) < 0.03)  # the density falls to where skipping can win
        assert layer._settled_dense[shape].calls == mt.DENSE_RECHECK_EVERY - 1
        out = layer(sparse_x)  # the re-check: this call is planned again
        assert len(estimates) == planned + 1
        assert torch.allclose(out, linear(sparse_x), atol=1e-5 * float(linear(sparse_x).abs().max()))
        sparse_case = [c for c in layer._choices.values() if c is not choice]
        assert len(sparse_case) == 1 and sparse_case[0].plan.method != "dense"  # a new case: trials
        if sparse_case[0].settled is None:
            assert shape not in layer._settled_dense
        for _ in range(2 * mt.TRIALS):
            layer(sparse_x)
        assert sparse_case[0].settled is not None  # its trials ran
        assert len(estimates) >= planned + 1 + 2 * mt.TRIALS - 1


def test_on_more_threads_a_case_also_tries_the_skipping_kernel_on_one_thread(monkeypatch):
    import dataclasses

    from frugalml.maskedmm import planner

    times = {"dense": 1.0, "masked": 0.99, "masked@1": 0.5}  # two threads barely beat dense, one does
    choice = mt._Choice(_plan("masked"), planner.calibration(), threads=2)
    assert choice.candidates() == ("dense", "masked", "masked" + mt.ONE_THREAD)
    for _ in range(3 * mt.TRIALS):
        choice.record(choice.method(), times[choice.method()])
    assert choice.settled == "masked@1" and {len(v) for v in choice.times.values()} == {mt.TRIALS}
    assert mt._Choice(_plan("masked"), planner.calibration(), threads=1).candidates() == ("dense", "masked")

    # in a layer on 2 threads: the kernel runs on the thread count of the candidate on trial
    from frugalml.maskedmm import core

    seen = []
    check = core.check_operands

    def recorded(a, b, *args, threads=None, **kwargs):
        seen.append(threads)
        return check(a, b, *args, threads=threads, **kwargs)

    monkeypatch.setattr(core, "check_operands", recorded)
    choose = planner.choose
    monkeypatch.setattr(planner, "choose", lambda **kw: dataclasses.replace(choose(**kw), method="masked"))
    torch.manual_seed(0)
    linear = nn.Linear(2048, 512)
    torch.set_num_threads(2)
    layer = mt.MaskedLinear(linear, "down")
    layer.dense_rows[2] = (0, float("inf"), 256)  # never dense outright: the trials decide
    layer._outright.clear()
    x = torch.relu(torch.randn(4, 2048)) * (torch.rand(4, 2048) < 0.03)
    with torch.inference_mode():
        expected = linear(x)
        for _ in range(mt.TRIAL_CALLS):
            out = layer(x)
            assert torch.allclose(out, expected, atol=1e-5 * float(expected.abs().max()))
    (choice,) = layer._choices.values()
    assert choice.settled is not None and set(choice.times) == set(choice.candidates())
    assert seen.count(1) == mt.TRIALS + (mt.TRIAL_CALLS - 3 * mt.TRIALS) * (choice.settled.endswith("@1"))
    assert seen.count(2) >= mt.TRIALS
    assert layer.report.methods["masked (1 thread)"] >= mt.TRIALS  # the report names the kernel's threads


def test_a_shape_whose_density_wanders_between_a_dense_and_a_skipping_case_stays_planned(monkeypatch):
    monkeypatch.setattr(mt, "RETIRE_AFTER", 10**9)
    torch.manual_seed(0)
    linear = nn.Linear(2048, 512)
    layer = _never_dense_outright(linear)
    dense_x = torch.relu(torch.randn(1, 2048))  # a dense case (the planner picks dense)
    sparse_x = dense_x * (torch.rand(1, 2048) < 0.03)  # a case where skipping can win
    with torch.inference_mode():
        for i in range(4 * mt.DENSE_STREAK + 2 * mt.TRIAL_CALLS):
            x = dense_x if i % mt.DENSE_STREAK else sparse_x  # never DENSE_STREAK dense in a row
            out, expected = layer(x), linear(x)
            assert torch.allclose(out, expected, atol=1e-5 * float(expected.abs().max()))
    cases = {c.plan.method for c in layer._choices.values()}
    if cases == {"dense"}:
        pytest.skip("the planner picks dense for both densities here")
    assert not layer._settled_dense  # one dense call must not send the shape dense


def _trials(choice, own, period):
    """Run a case's trials: each candidate's calls take ``own[m]`` and ``period[m]`` (a callable
    of the call's index, or a value)."""
    for i in range(len(choice.candidates()) * mt.TRIALS):
        m = choice.method()
        p = period[m](i) if callable(period[m]) else period[m]
        choice.record(m, own[m], p)


def test_trials_are_judged_by_the_call_to_call_period_where_comparable_else_by_own_times():
    from frugalml.maskedmm import planner

    own = {"dense": 3.0, "masked": 1.0}  # the skipping call alone is faster...
    slower_model = {"dense": 10.0, "masked": 20.0}  # ...but the model runs slower after it
    choice = mt._Choice(_plan("masked"), planner.calibration())
    _trials(choice, own, slower_model)
    assert choice.settled == "dense" and choice.judged_by == "periods"
    choice = mt._Choice(_plan("masked"), planner.calibration())
    _trials(choice, own, {"dense": 10.0, "masked": 8.0})
    assert choice.settled == "masked" and choice.judged_by == "own times and periods"
    choice = mt._Choice(_plan("masked"), planner.calibration())  # skipping must save a share of dense
    _trials(
        choice, {"dense": 1.0, "masked": 1.0 - 0.5 * (1 - mt.SKIP_MARGIN)}, {"dense": 10.0, "masked": 8.0}
    )
    assert choice.settled == "dense" and choice.judged_by == "own times"  # periods cannot make it win
    choice = mt._Choice(_plan("masked"), planner.calibration())  # no period comparable: own times
    _trials(choice, own, {"dense": None, "masked": None})
    assert choice.settled == "masked" and choice.judged_by == "own times"
    # a period far longer than the case's others (the model idle between calls) is left out
    idle = {m: (lambda i, v=v: 1000.0 if i < 2 else v) for m, v in slower_model.items()}
    choice = mt._Choice(_plan("masked"), planner.calibration())
    _trials(choice, own, idle)
    assert choice.settled == "dense" and choice.judged_by == "periods"
    assert choice.periods["dense"][0] == 1000.0
    # too few comparable periods for a candidate: own times decide
    few = {"dense": 10.0, "masked": lambda i: 20.0 if i == 1 else None}
    choice = mt._Choice(_plan("masked"), planner.calibration())
    _trials(choice, own, few)
    assert choice.settled == "masked" and choice.judged_by == "own times"


class _FakeClock:
    """``time.perf_counter`` for the layer: it moves only when a test says so."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_a_layers_trial_loses_when_the_model_pays_after_it_even_if_its_own_call_is_faster(monkeypatch):
    import dataclasses
    import types

    from frugalml.maskedmm import planner

    choose = planner.choose
    monkeypatch.setattr(planner, "choose", lambda **kw: dataclasses.replace(choose(**kw), method="masked"))
    monkeypatch.setattr(mt, "RETIRE_AFTER", 10**9)
    torch.manual_seed(0)
    linear = nn.Linear(2048, 512)
    layer = _never_dense_outright(linear)
    clock, ran = _FakeClock(), []
    monkeypatch.setattr(mt, "time", clock)

    def slow_linear(*args):  # dense alone: 3 units
        clock.now += 3.0
        ran.append("dense")
        return nn.functional.linear(*args)

    skip = mt._skip_or_dense

    def fast_skip(*args):  # skipping alone: 1 unit
        clock.now += 1.0
        ran.append("skip")
        return skip(*args)

    monkeypatch.setattr(mt, "F", types.SimpleNamespace(linear=slow_linear))
    monkeypatch.setattr(mt, "_skip_or_dense", fast_skip)
    x = torch.relu(torch.randn(2, 2048)) * (torch.rand(2, 2048) < 0.03)
    with torch.inference_mode():
        expected = nn.functional.linear(x, linear.weight, linear.bias)
        for _ in range(mt.TRIAL_CALLS):
            out = layer(x)
            assert torch.allclose(out, expected, atol=1e-5 * float(expected.abs().max()))
            clock.now += 10.0 if ran[-1] == "dense" else 20.0  # the rest of the model, after each
    (choice,) = layer._choices.values()
    assert choice.settled == "dense" and choice.judged_by == "periods"
    assert min(choice.times["masked"]) < min(choice.times["dense"])  # its own calls were faster

    # inputs of alternating shapes: no period is comparable, so the calls' own times decide
    layer = _never_dense_outright(linear)
    other = torch.cat([x, x[:1]])
    with torch.inference_mode():
        for i in range(2 * mt.TRIAL_CALLS):
            layer(x if i % 2 else other)
            clock.now += 10.0 if ran[-1] == "dense" else 20.0
    assert len(layer._choices) == 2
    assert all(c.settled == "masked" and c.judged_by == "own times" for c in layer._choices.values())
