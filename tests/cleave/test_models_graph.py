"""Model specs, config files, the op graph, and tiling cost sums."""

import json

import numpy as np
import pytest

from frugalml.cleave.costmodel import best_grid, candidate_grids, gemm_cost
from frugalml.cleave.models import BUILTIN, load_model, spec_from_dict
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.tiling import TileGrid, grid_cost, split_gemm
from frugalml.common.errors import DataNotFoundError, InvalidInputError


@pytest.mark.parametrize(
    "name, billions",
    [
        ("opt-1.3b", 1.3),
        ("opt-6.7b", 6.7),
        ("opt-13b", 12.9),
        ("opt-30b", 30.0),
        ("llama-1b", 1.2),
        ("llama-3b", 3.2),
        ("llama-7b", 6.7),
        ("llama-13b", 13.0),
    ],
)
def test_builtin_parameter_counts_match_the_names(name, billions):
    assert load_model(name).params / 1e9 == pytest.approx(billions, rel=0.08)


def test_hugging_face_config_json_is_read(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(
        json.dumps(
            {
                "hidden_size": 256,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 688,
                "vocab_size": 1000,
                "num_key_value_heads": 2,
                "hidden_act": "silu",
            }
        )
    )
    spec = load_model(path)
    assert (spec.hidden, spec.layers, spec.kv_heads, spec.gated_ffn) == (256, 2, 2, True)


def test_yaml_config_with_missing_field_names_it(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("hidden: 256\nlayers: 2\nheads: 4\nvocab: 100\n")
    with pytest.raises(InvalidInputError, match="'ffn'"):
        load_model(path)


@pytest.mark.parametrize(
    "fields, word", [({"hidden": 250}, "hidden"), ({"kv_heads": 3}, "kv_heads"), ({"layers": 0}, "layers")]
)
def test_inconsistent_shapes_name_the_field(fields, word):
    config = {"hidden": 256, "layers": 2, "heads": 4, "ffn": 512, "vocab": 100, **fields}
    with pytest.raises(InvalidInputError, match=word):
        spec_from_dict(config)


def test_unknown_model_and_missing_file():
    with pytest.raises(InvalidInputError, match="unknown model"):
        load_model("gpt-5")
    with pytest.raises(DataNotFoundError):
        load_model("/nonexistent/model.yaml")


def test_graph_has_forward_and_two_backward_gemms_per_forward_gemm():
    g = build_graph(BUILTIN["opt-1.3b"], batch=4, seq=128)
    fwd = [x for x in g.layer_gemms if x.phase == "forward"]
    bwd = [x for x in g.layer_gemms if x.phase == "backward"]
    assert len(bwd) == 2 * len(fwd) == 12
    assert sum(x.flops for x in bwd) == 2 * sum(x.flops for x in fwd)  # training = 3x forward
    qkv = fwd[0]
    dx = next(x for x in bwd if x.name == "qkv.dx")
    dw = next(x for x in bwd if x.name == "qkv.dwqkv")
    assert (dx.m, dx.n, dx.k) == (qkv.m, qkv.k, qkv.n)
    assert (dw.m, dw.n, dw.k) == (qkv.k, qkv.n, qkv.m)
    # 6 N D rule of thumb: GEMM FLOPs per step ~ 6 x parameters x tokens (plus attention)
    assert g.gemm_flops == pytest.approx(6 * g.model.params * g.tokens, rel=0.15)
    assert len(g.schedule()) == 18 * g.model.layers + 3
    with pytest.raises(InvalidInputError, match="batch"):
        build_graph(BUILTIN["opt-1.3b"], batch=0, seq=128)


def test_micro_batches_split_only_the_weight_gradients_and_keep_the_flops():
    model = BUILTIN["opt-1.3b"]
    whole = build_graph(model, batch=16, seq=512, micro_batch=16)
    micro = build_graph(model, batch=16, seq=512, micro_batch=4)
    assert (whole.micro_batches, micro.micro_batches, micro.micro_tokens) == (1, 4, 2048)
    assert micro.gemm_flops == whole.gemm_flops
    for a, b in zip(whole.layer_gemms + whole.head_gemms, micro.layer_gemms + micro.head_gemms, strict=True):
        if b.partial_sums:  # dW = X^T dY: one product per micro-batch over its 2048 tokens
            assert (b.m, b.n, b.k, b.batch) == (a.m, a.n, a.k // 4, 4) and a.batch == 1
            assert b.bytes_out(2) == 4 * a.bytes_out(2)  # the PS receives one gradient part each
        else:
            assert b == a
    assert sum(g.partial_sums for g in micro.layer_gemms) == 4  # wqkv, wo, w1, w2
    accumulate = {op.name: op for op in micro.layer_ps_ops}["grad_accumulate"]
    assert accumulate.elements == 3 * 4 * model.layer_params
    assert "grad_accumulate" not in {op.name for op in whole.layer_ps_ops}
    # default: about 16384 tokens per micro-batch (the design doc's example), a divisor of the batch
    assert build_graph(model, batch=512, seq=1024).micro_tokens == 16384
    assert build_graph(model, batch=24, seq=1024).micro_tokens == 12 * 1024
    for bad in (0, 5, 1.5):
        with pytest.raises(InvalidInputError, match="micro_batch"):
            build_graph(model, batch=16, seq=512, micro_batch=bad)


@pytest.mark.parametrize(
    "m, n, k, batch, grid",
    [(100, 60, 7, 1, TileGrid(7, 5)), (33, 17, 5, 6, TileGrid(4, 3, 3)), (8, 8, 3, 1, TileGrid(1, 1))],
)
def test_tiled_cost_sums_equal_untiled_totals(m, n, k, batch, grid):
    cost = grid_cost(m, n, k, grid, batch=batch, dtype_bytes=2)
    assert cost.tasks * cost.flops == pytest.approx(2 * batch * m * n * k)
    assert cost.tasks * cost.bytes_up == pytest.approx(batch * m * n * 2)
    replicated = batch * (m * grid.grid_cols + n * grid.grid_rows) * k * 2
    assert cost.tasks * cost.bytes_down == pytest.approx(replicated)
    tiles = split_gemm(m, n, k, grid_rows=grid.grid_rows, grid_cols=grid.grid_cols)
    assert sum(t.flops for t in tiles) * batch == pytest.approx(cost.tasks * cost.flops)
    assert max(t.memory(2) for t in tiles) * -(-batch // grid.batch_chunks) == cost.memory


def test_best_grid_has_exact_task_count_and_fewest_bytes():
    for tasks in (1, 6, 64, 96):
        grid = best_grid(4096, 1024, 512, 1, tasks)
        assert grid.tasks == tasks
        others = [TileGrid(r, tasks // r) for r in range(1, tasks + 1) if tasks % r == 0]
        down = lambda g: grid_cost(4096, 1024, 512, g).bytes_down  # noqa: E731
        assert down(grid) == min(down(o) for o in others)
    # batched products are split across the batch before any product is cut
    assert best_grid(128, 128, 64, 32, 16) == TileGrid(1, 1, 16)
    gemm = build_graph(BUILTIN["opt-1.3b"], 2, 64).layer_gemms[0]
    counts = [g.tasks for g in candidate_grids(gemm, 100)]
    assert counts == sorted(counts) and counts[0] == 1 and counts[-1] <= 100
    assert gemm_cost(gemm, TileGrid(2, 2), 2).tasks == 4


def test_grid_finer_than_output_is_rejected():
    with pytest.raises(InvalidInputError, match="does not fit"):
        grid_cost(4, 4, 4, TileGrid(5, 1))
    assert np.isfinite(grid_cost(4, 4, 4, TileGrid(4, 4)).memory)


@pytest.mark.parametrize("devices, mb_down, mb_up", [(16, 94.4, 41.9), (256, 23.6, 2.62), (4096, 5.9, 0.164)])
def test_design_doc_example_traffic_per_device(devices, mb_down, mb_up):
    # OPT-13B first FFN GEMM, 16 x 1024 tokens, fp16: the per-device numbers in the design doc
    grid = best_grid(16384, 20480, 5120, 1, devices)
    cost = grid_cost(16384, 20480, 5120, grid, dtype_bytes=2)
    assert cost.bytes_down / 1e6 == pytest.approx(mb_down, rel=0.01)
    assert cost.bytes_up / 1e6 == pytest.approx(mb_up, rel=0.01)


@pytest.mark.parametrize("model", ["opt-1.3b", "llama-1b"])
def test_the_ffn_split_replaces_four_ffn_gemms_per_pass_by_one_fused_task(model):
    spec = load_model(model)
    plain, split = build_graph(spec, 4, 256), build_graph(spec, 4, 256, ffn_split=True)
    names = [g.name for g in split.layer_gemms]
    assert "ffn.fwd" in names and "ffn.bwd" in names and not any(n.startswith("ffn_") for n in names)
    order = [n for n, layer in split.schedule() if layer == 0]
    assert order.index("ffn.fwd") > order.index("out.fwd") and order.index("ffn.bwd") < order.index(
        "out.dctx"
    )
    fwd = {g.name: g for g in plain.layer_gemms}
    fused = {g.name: g for g in split.layer_gemms}
    assert fused["ffn.fwd"].flops == fwd["ffn_up.fwd"].flops + fwd["ffn_down.fwd"].flops
    plain_bwd = sum(fwd[n].flops for n in ("ffn_down.dact", "ffn_down.dw2", "ffn_up.dx", "ffn_up.dw1"))
    assert fused["ffn.bwd"].flops == plain_bwd + fwd["ffn_up.fwd"].flops  # the up projection recomputed
    assert not any(op.name.startswith("activation") for op in split.layer_ps_ops)


def test_fused_ffn_traffic_is_the_inputs_once_per_column_chunk_and_the_weights_once_per_row_block():
    spec = load_model("opt-1.3b")
    fused = {g.name: g for g in build_graph(spec, 4, 256, ffn_split=True).layer_gemms}
    t, h, f = 4 * 256, spec.hidden, spec.ffn
    for rows, cols in ((1, 1), (4, 8), (16, 2)):
        grid = TileGrid(rows, cols, 1)
        fwd, bwd = gemm_cost(fused["ffn.fwd"], grid, 2), gemm_cost(fused["ffn.bwd"], grid, 2)
        assert fwd.tasks * fwd.bytes_down == pytest.approx(2 * (cols * t * h + rows * 2 * h * f))
        assert fwd.tasks * fwd.bytes_up == pytest.approx(2 * cols * t * h)  # partial outputs
        assert bwd.tasks * bwd.bytes_down == pytest.approx(2 * (2 * cols * t * h + rows * 2 * h * f))
        assert bwd.tasks * bwd.bytes_up == pytest.approx(2 * (cols * t * h + rows * 2 * h * f))
        assert fwd.tasks * fwd.flops == pytest.approx(fused["ffn.fwd"].flops)
    grids = candidate_grids(fused["ffn.fwd"], 64)
    assert TileGrid(8, 8, 1) in grids and TileGrid(64, 1, 1) in grids and TileGrid(1, 64, 1) in grids
