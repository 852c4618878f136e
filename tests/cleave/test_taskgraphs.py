"""The baselines as task graphs: equal to their closed forms where those are exact, bounded otherwise."""

import numpy as np
import pytest

from frugalml.cleave.baselines import (
    BaselineResult,
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


@pytest.mark.parametrize("t, groups", [(1, 4), (2, 3), (4, 2)])
def test_megatron_task_graph_equals_closed_form_on_identical_devices(t, groups):
    graph = build_graph(SMALL, batch=8, seq=256)
    pool = make_pool(counts={"laptop": 12}, jitter=0.0, seed=0)
    members = np.arange(groups * t).reshape(groups, t)
    seconds, _ = megatron_seconds(graph, pool, members)
    result = BaselineResult("megatron", seconds, layout={"members": members}, pool=pool)
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
    rings = [2 * (len(s) - 1) / len(s) * n * layer_bytes / up[s].min() for s, n in zip(stages, layers,
                                                                                   strict=True) if len(s) > 1]
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
