"""One grid rule for planner and runtime, and the planner knowing the model the runtime trains."""

from collections import Counter

from frugalml.cleave.costmodel import candidate_grids
from frugalml.cleave.models import RUNTIME_MODELS, default_dtype, load_model
from frugalml.cleave.opgraph import Gemm, build_graph
from frugalml.cleave.runtime.model import TrainConfig, gemm_shapes
from frugalml.cleave.tiling import choose_grid


def test_planner_knows_the_runtime_model_gemm_for_gemm():
    cfg = TrainConfig()
    spec = load_model("tiny-gpt")
    gpt = cfg.gpt
    assert (spec.hidden, spec.layers, spec.heads, spec.ffn, spec.vocab) == (
        gpt.n_embd,
        gpt.n_layer,
        gpt.n_head,
        4 * gpt.n_embd,
        gpt.vocab_size,
    )
    assert RUNTIME_MODELS["tiny-gpt"][0] == gpt.block_size and default_dtype("tiny-gpt") == cfg.dtype
    graph = build_graph(spec, cfg.batch_size, gpt.block_size, 4)
    planned: Counter = Counter()
    for g, repeats in graph.gemms():
        if g.batch == 1:  # batched per-head products stay on the PS in both
            key = tuple(sorted((g.m, g.n))) + (g.k,)
            planned[key] += repeats
    runtime = Counter(tuple(sorted((m, n))) + (k,) for m, n, k in gemm_shapes(cfg))
    assert +planned == runtime


def test_the_planner_cuts_every_task_count_the_way_the_runtime_does():
    for m, n, k in gemm_shapes(TrainConfig()):
        for grid in candidate_grids(Gemm("g", "forward", m, n, k), 64):
            assert choose_grid(m, n, k, tiles=grid.tasks) == grid
