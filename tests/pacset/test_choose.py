"""The default layout (``auto``) reads no more blocks per cold single-row query than plain BFS on a
named matrix of models: multi-class XGBoost (many small per-class trees), 26-class XGBoost,
LightGBM and a random forest (a >= 100 MB forest in the slow run)."""

import numpy as np
import pytest
from sklearn.datasets import make_classification

from frugalml.pacset import PackedForest, open_packed, pack


def blocks_per_row(path, X) -> float:
    with PackedForest.open(path, engine="numpy") as model:
        touched = []
        for x in X:
            model.predict(x[None, :])
            touched.append(model.blocks_touched)
    return float(np.mean(touched))


def default_vs_bfs(model, X, tmp_path, name):
    pack(model, tmp_path / f"{name}-auto.pacset")
    pack(model, tmp_path / f"{name}-bfs.pacset", layout="bfs", bins=1, interleave=0)
    auto = blocks_per_row(tmp_path / f"{name}-auto.pacset", X)
    bfs = blocks_per_row(tmp_path / f"{name}-bfs.pacset", X)
    choice = open_packed(tmp_path / f"{name}-auto.pacset").meta["layout_choice"]
    assert (
        choice["chosen"] in choice["blocks_per_query"]
        and "bfs bins=1 interleave=0" in choice["blocks_per_query"]
    )
    return auto, bfs, choice


def xgb_multiclass(n_classes, rounds, depth, seed=0):
    xgb = pytest.importorskip("xgboost")
    X, y = make_classification(
        4000, 20, n_informative=12, n_classes=n_classes, n_clusters_per_class=1, random_state=seed
    )
    model = xgb.XGBClassifier(n_estimators=rounds, max_depth=depth, n_jobs=1, random_state=0)
    return model.fit(X[:3500], y[:3500]), X[3500:3560]


MATRIX = {
    "xgboost 5 classes": lambda: xgb_multiclass(5, 60, 6),
    "xgboost 26 classes": lambda: xgb_multiclass(26, 12, 4),
}


@pytest.mark.peers
@pytest.mark.parametrize("name", list(MATRIX))
def test_default_never_reads_more_than_bfs_on_boosted(name, tmp_path):
    model, X = MATRIX[name]()
    auto, bfs, choice = default_vs_bfs(model, X, tmp_path, name.replace(" ", "-"))
    assert auto <= bfs, (auto, bfs, choice)


@pytest.mark.peers
def test_default_never_reads_more_than_bfs_on_lightgbm(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    X, y = make_classification(6000, 20, n_informative=12, random_state=3)
    model = lgb.LGBMClassifier(n_estimators=100, num_leaves=63, verbose=-1, n_jobs=1).fit(X[:5000], y[:5000])
    auto, bfs, choice = default_vs_bfs(model, X[5000:5060], tmp_path, "lgb")
    assert auto <= bfs, (auto, bfs, choice)


def test_default_never_reads_more_than_bfs_on_a_random_forest(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(20_000, 20, n_informative=12, flip_y=0.1, random_state=0)
    rf = RandomForestClassifier(16, n_jobs=1, random_state=0).fit(X[:19_000], y[:19_000])
    auto, bfs, choice = default_vs_bfs(rf, X[19_000:19_040], tmp_path, "rf")
    assert auto < bfs / 2, (auto, bfs, choice)  # deep trees: bins and blockwise W-DFS pay off


@pytest.mark.slow
def test_default_never_reads_more_than_bfs_on_a_100mb_random_forest(tmp_path):
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(150_200, 20, n_informative=12, flip_y=0.1, random_state=0)
    rf = RandomForestClassifier(64, n_jobs=2, random_state=0).fit(X[:150_000], y[:150_000])
    joblib.dump(rf, tmp_path / "rf.joblib")
    assert (tmp_path / "rf.joblib").stat().st_size > 100 * 2**20
    auto, bfs, choice = default_vs_bfs(rf, X[150_000:150_030], tmp_path, "rf")
    assert auto <= bfs, (auto, bfs, choice)


def test_auto_with_explicit_bins_means_blockwise_and_calibration_rows_are_used(rf, cls_data, tmp_path):
    packer = pack(rf, tmp_path / "a.pacset", bins=2, interleave=1)
    meta = open_packed(tmp_path / "a.pacset").meta
    assert meta["layout"] == "blockwise-wdfs" and meta["bins"] == 2 and "layout_choice" not in meta
    assert packer.get_params()["layout"] == "auto"
    pack(rf, tmp_path / "b.pacset", X=cls_data[0][:100])
    assert "100 calibration rows" in open_packed(tmp_path / "b.pacset").meta["layout_choice"]["why"]


def test_simulated_walk_rounds_match_the_walk(rf, cls_data, tmp_path):
    """The remote target's simulation counts the rounds and blocks the real walk fetches, with the
    blocks of the header read already held."""
    from frugalml.pacset import LayoutConfig, compute_layout, from_model
    from frugalml.pacset.choose import walk_paths, walk_rounds

    forest, X = from_model(rf), cls_data[0][:12]
    for shared, resident in ((False, 0), (True, 2)):
        config = LayoutConfig("blockwise-wdfs", 3, 2, shared_top=shared)
        path = tmp_path / f"rf-{shared}.pacset"
        pack(rf, path, layout="blockwise-wdfs", bins=3, interleave=2, shared_top=shared)
        rounds, blocks = [], []
        for x in X:
            with PackedForest.open(path, backend="pread", engine="numpy") as model:
                if resident:
                    model.store.fetch(np.arange(resident))
                    model.store.stats.reset()
                model.predict(x[None, :])
                rounds.append(model.store.stats.round_trips)
                blocks.append(model.store.stats.blocks_fetched)
        simulated = walk_rounds(compute_layout(forest, config), walk_paths(forest, X), resident)
        assert simulated == pytest.approx((np.mean(rounds), np.mean(blocks)))


def test_remote_target_weighs_rounds_and_reports_every_candidate(rf, cls_data, tmp_path):
    from frugalml.common.errors import InvalidInputError

    pack(rf, tmp_path / "rf.pacset", target="remote")
    meta = open_packed(tmp_path / "rf.pacset").meta
    table = meta["layout_choice"]["remote_per_query"]
    assert meta["layout_choice"]["chosen"] in table and "round trips" in meta["layout_choice"]["why"]
    assert any("shared_top" in label for label in table)
    assert table[meta["layout_choice"]["chosen"]]["ms"] == min(row["ms"] for row in table.values())
    with pytest.raises(InvalidInputError, match="unknown target"):
        pack(rf, tmp_path / "x.pacset", target="cloud")
