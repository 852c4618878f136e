"""The baselines as task graphs: equal to their closed forms where those are exact, bounded otherwise."""

import numpy as np
import pytest

from frugalml.cleave.baselines import (
    STATE_BYTES_PER_PARAM,
    BaselineResult,
    _kept_activations,
    _shapes,
    data_parallel,
    megatron,
    megatron_seconds,
    run_baselines,
    swarm,
)
from frugalml.cleave.devices import make_pool
from frugalml.cleave.models import BUILTIN, ModelSpec
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.taskgraphs import simulate_baseline, simulate_dp, simulate_megatron, simulate_swarm
from frugalml.common.errors import InvalidInputError

SMALL = ModelSpec("small", hidden=1024, layers=4, heads=8, ffn=4096, vocab=8000)


@pytest.mark.parametrize("t, groups, recompute", [(1, 4, False), (2, 3, False), (4, 2, False), (2, 3, True)])
def test_megatron_task_graph_equals_closed_form_on_identical_devices(t, groups, recompute):
    graph = build_graph(SMALL, batch=8, seq=256)
    pool = make_pool(counts={"laptop": 12}, jitter=0.0, seed=0)
    members = np.arange(groups * t).reshape(groups, t)
    seconds, _ = megatron_seconds(graph, pool, members, recompute)
    result = BaselineResult(
        "megatron", seconds, layout={"members": members, "recompute": recompute}, pool=pool
    )
    assert simulate_megatron(graph, result) == pytest.approx(seconds, rel=1e-9)


def test_megatron_task_graph_is_no_slower_than_its_closed_form_on_mixed_devices():
    graph = build_graph(BUILTIN["opt-1.3b"], batch=16, seq=512)
    best = megatron(graph, make_pool(96, seed=1))
    assert np.isfinite(best.seconds)
    assert best.layout["members"].shape == (best.config["dp"], best.config["tp"])
    # the closed form runs every member at its group's slowest speed; events use each member's own
    assert simulate_baseline(graph, best) <= best.seconds * (1 + 1e-9)


def test_dp_task_graph_equals_closed_form():
    graph = build_graph(SMALL, batch=8, seq=256)
    best = data_parallel(graph, make_pool(16, seed=2))
    assert simulate_dp(graph, best) == pytest.approx(best.seconds, rel=1e-12)


def test_swarm_task_graph_routes_every_micro_batch_and_respects_bounds():
    graph = build_graph(BUILTIN["opt-1.3b"], batch=32, seq=512)
    pool = make_pool(64, seed=3)
    best = swarm(graph, pool)
    stages, layers = best.layout["stages"], best.layout["layers"]
    assert len(stages) == best.config["stages"] and layers.sum() == graph.model.layers
    assert min(len(s) for s in stages) == best.config["devices_per_stage"]
    seconds = simulate_swarm(graph, best)
    layer_flops, head_flops, layer_bytes, _ = _shapes(graph)
    up = pool.effective_up
    # never faster than all FLOPs on all its devices, nor than any stage's gradient ring
    everything = np.concatenate(stages)
    assert seconds >= (layer_flops * graph.model.layers + head_flops) / pool.flops[everything].sum()
    rings = [
        2 * (len(s) - 1) / len(s) * n * layer_bytes / up[s].min()
        for s, n in zip(stages, layers, strict=True)
        if len(s) > 1
    ]
    assert seconds >= max(rings, default=0.0)
    # the closed form is a fluid estimate; the events stay within a small factor of it
    assert 0.3 * best.seconds <= seconds <= 3 * best.seconds


def test_swarm_uplink_cut_is_searched_and_baselines_carry_their_pool():
    graph = build_graph(BUILTIN["opt-1.3b"], batch=16, seq=512)
    results = run_baselines(graph, make_pool(128, seed=0))
    assert "min_uplink_mbit" in results["swarm"].config
    for name, result in results.items():
        if np.isfinite(result.seconds):
            assert result.pool is not None
            assert np.isfinite(simulate_baseline(graph, result)), name
    assert simulate_baseline(graph, BaselineResult("dp", np.inf)) == np.inf
    with pytest.raises(InvalidInputError, match="no task graph"):
        simulate_baseline(graph, BaselineResult("ring-of-phones", 1.0))


def test_baselines_hold_adam_state_and_kept_activations_or_recompute():
    graph = build_graph(BUILTIN["opt-1.3b"], batch=32, seq=512)
    pool = make_pool(256, seed=0)
    results = run_baselines(graph, pool)
    model = graph.model
    layer_state = model.layer_params * STATE_BYTES_PER_PARAM
    assert STATE_BYTES_PER_PARAM == 16  # fp16 weights + grads, fp32 master + Adam m, v
    ast = results["asteroid"]
    cfg = ast.pipeline
    layers = np.rint(cfg.migrate * pool.effective_down[cfg.devices] / _shapes(graph)[2]).astype(int)
    assert layers.sum(axis=1).tolist() == [model.layers] * cfg.shape[0]
    kept = _kept_activations(graph, cfg.micro * graph.seq, layers, graph.seq, ast.config["recompute"])
    assert np.all(layers * layer_state + kept <= pool.memory[cfg.devices])
    # recomputation: one more forward of compute, so the backward is 3/3 of the FLOPs instead of 2/3
    ratio = cfg.bwd / cfg.fwd
    assert np.allclose(ratio, 3.0 if ast.config["recompute"] else 2.0)
    meg = results["megatron"]
    t = meg.config["tp"]
    need = model.params * STATE_BYTES_PER_PARAM / t
    assert np.all(pool.memory[meg.layout["members"]] >= need)  # state sharded over the tp group


def test_recompute_is_chosen_only_when_activations_do_not_fit():
    graph = build_graph(SMALL, batch=8, seq=256)
    state = SMALL.params * STATE_BYTES_PER_PARAM
    full = _kept_activations(graph, graph.seq, SMALL.layers, graph.seq, False)
    lean = _kept_activations(graph, graph.seq, SMALL.layers, graph.seq, True)
    assert lean < full
    roomy = make_pool(counts={"laptop": 4}, jitter=0.0, seed=0)
    assert data_parallel(graph, roomy).config["recompute"] is False
    tight = roomy.subset(np.ones(4, dtype=bool))
    tight.memory[:] = state + (lean + full) / 2
    best = data_parallel(graph, tight)
    assert best.config["recompute"] is True
    assert simulate_dp(graph, best) == pytest.approx(best.seconds, rel=1e-12)
    tight.memory[:] = state + lean / 2
    assert data_parallel(graph, tight).seconds == np.inf
