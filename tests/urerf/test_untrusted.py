"""Saved forests are untrusted input: crafted files with valid checksums are refused in one line;
the tree walkers stop on malformed trees; sizes that cannot fit in memory are refused up front;
output folders are never created silently."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from frugalml.cli import main
from frugalml.common.arrays import load_arrays, save_arrays
from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.urerf import UnsupervisedRandomerForest
from frugalml.urerf.fileformat import FORMAT_VERSION, MAGIC
from frugalml.urerf.limits import check_fits, check_forest_fits


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    X = np.random.default_rng(3).normal(size=(50, 4))
    path = tmp_path_factory.mktemp("urerf-untrusted") / "ok.urerf"
    UnsupervisedRandomerForest(5, min_parent=5, random_state=0, normalize=True).fit(X).save(path)
    meta, arrays = load_arrays(path, MAGIC, FORMAT_VERSION)
    return X, path, meta, arrays


def _first_inner(arrays) -> int:
    return int(np.flatnonzero(arrays["children_left_"] >= 0)[0])


def _set(name, index, value):
    def edit(meta, arrays):
        arrays[name] = arrays[name].copy()
        arrays[name].reshape(-1)[index(arrays) if callable(index) else index] = value

    return edit


def _meta(key, value, params=False):
    def edit(meta, arrays):
        (meta["params"] if params else meta)[key] = value

    return edit


def _replace(name, make):
    def edit(meta, arrays):
        arrays[name] = make(arrays[name])

    return edit


CRAFTED = {
    "root is its own child (a walk would loop)": (_set("children_left_", 0, 0), "after their node"),
    "child index 1e8 (a walk would read far outside)": (_set("children_left_", 0, 10**8), "inside the tree"),
    "two nodes pointing at each other": (
        _set("children_right_", lambda a: int(a["children_left_"][0]), 0),
        "tree 0",
    ),
    "leaf with a right child": (_set("children_right_", lambda a: a["children_left_"].argmin(), 1), "leaf"),
    "feature index one past the end": (_set("proj_feature_", 0, 4), "feature outside 0..3"),
    "negative feature index": (_set("proj_feature_", 0, -1), "feature outside"),
    "projection range past the entries": (_set("proj_end_", _first_inner, 10**6), "projection range"),
    "parent after its child": (_set("node_parent_", 1, 5), "parent must come before"),
    "wrong depth": (_set("node_depth_", 1, 7), "depth"),
    "member outside the training points": (_set("_members", 0, 50), "leaf member outside"),
    "member pointers falling": (_set("_member_ptr", 1, 10**6), "member pointers"),
    "tree offsets not rising": (_set("tree_offsets_", 1, 0), "tree offsets"),
    "children as int64": (_replace("children_left_", lambda a: a.astype(np.int64)), "dtype"),
    "children one element short": (_replace("children_left_", lambda a: a[:-1]), "shape"),
    "zero scale range": (_set("scale_range_", 0, 0.0), "scale_range_"),
    "NaN scale": (_set("scale_min_", 0, np.nan), "NaN"),
    "n_estimators 1e8": (_meta("n_estimators", 10**8, params=True), "expected (100000001,)"),
    "n_samples_fit 1e12": (_meta("n_samples_fit", 10**12), "leaves_ has shape"),
    "n_samples_fit a string": (_meta("n_samples_fit", "50"), "n_samples_fit"),
    "projection a list": (_meta("projection", [1], params=True), "projection"),
    "n_jobs negative": (_meta("n_jobs", -3, params=True), "n_jobs"),
    "normalize a string": (_meta("normalize", "yes", params=True), "normalize"),
    "unknown parameter": (_meta("evil", 1, params=True), "evil"),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_forest_is_refused_in_one_line(case, saved, tmp_path):
    _, path, meta, arrays = saved
    edit, message = CRAFTED[case]
    meta = {**meta, "params": dict(meta["params"])}
    arrays = dict(arrays)
    edit(meta, arrays)
    save_arrays(tmp_path / "crafted.urerf", MAGIC, FORMAT_VERSION, meta, arrays)  # valid checksums
    with pytest.raises(CorruptFileError, match="crafted.urerf") as info:
        UnsupervisedRandomerForest.load(tmp_path / "crafted.urerf")
    assert message in str(info.value) and "\n" not in str(info.value)


TRAINING_LEAVES = {
    "training leaf outside its tree": (_set("leaves_", 0, 10**6), "outside its tree"),
    "training leaf on an inner node": (_set("leaves_", 0, 0), "inner node"),
    "member lists tampered": (_set("_members", 0, 49), "member lists"),
}


@pytest.mark.parametrize("case", TRAINING_LEAVES)
@pytest.mark.parametrize("use", ["kneighbors", "path_distances", "similarity"])
def test_crafted_training_leaves_are_refused_on_first_use(case, use, saved, tmp_path):
    X, path, meta, arrays = saved
    edit, message = TRAINING_LEAVES[case]
    arrays = dict(arrays)
    edit(meta, arrays)
    save_arrays(tmp_path / "crafted.urerf", MAGIC, FORMAT_VERSION, meta, arrays)
    forest = UnsupervisedRandomerForest.load(tmp_path / "crafted.urerf")
    with pytest.raises(CorruptFileError, match=message):
        getattr(forest, use)()
    with pytest.raises(CorruptFileError, match=message):  # and every time after
        forest.kneighbors(n_neighbors=3)


def test_header_with_garbage_metadata_and_valid_crc_is_refused(saved, tmp_path):
    _, path, _, _ = saved
    for meta in (b"\xff\xfe not json", b"[1, 2, 3]", b"[" * 100_000):
        fixed = struct.pack(
            "<8sIIQQ32s", MAGIC.ljust(8, b"\0"), 1, len(meta), 64 + len(meta) + 4, 0, bytes(32)
        )
        head = fixed + meta
        (tmp_path / "g.urerf").write_bytes(head + struct.pack("<I", zlib.crc32(head)))
        with pytest.raises(CorruptFileError):
            UnsupervisedRandomerForest.load(tmp_path / "g.urerf")


def test_big_endian_index_entry_is_refused(saved, tmp_path):
    from tests.fuzz import container_metadata, with_metadata

    _, path, _, _ = saved
    data = path.read_bytes()
    meta = container_metadata(data)
    entry = next(item for item in meta["arrays"] if item["name"] == "children_left_")
    entry["dtype"] = ">i4"  # the same bytes read big-endian: every child index wrong
    (tmp_path / "be.urerf").write_bytes(with_metadata(data, meta))
    with pytest.raises(CorruptFileError, match="dtype >i4"):
        UnsupervisedRandomerForest.load(tmp_path / "be.urerf")


def test_cli_refuses_a_crafted_forest_with_exit_2(saved, tmp_path, capsys):
    X, _, meta, arrays = saved
    arrays = {**arrays, "children_left_": arrays["children_left_"].copy()}
    arrays["children_left_"][0] = 0  # self-loop
    save_arrays(tmp_path / "loop.urerf", MAGIC, FORMAT_VERSION, meta, arrays)
    np.save(tmp_path / "q.npy", X[:3])
    argv = [
        "urerf",
        "neighbours",
        str(tmp_path / "loop.urerf"),
        str(tmp_path / "q.npy"),
        "-o",
        str(tmp_path / "o.npz"),
    ]
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "not a valid forest" in err and err.count("\n") == 1
    assert not (tmp_path / "o.npz").exists()


def test_walkers_stop_on_a_malformed_tree_in_memory(saved):
    """The step bound behind the load-time checks: a forest broken after loading neither hangs nor
    reads outside its tree."""
    X, path, _, _ = saved
    forest = UnsupervisedRandomerForest.load(path)
    forest.children_left_ = forest.children_left_.copy()
    inner = np.flatnonzero(forest.children_left_[: forest.tree_offsets_[1]] >= 0)
    forest.children_left_[inner] = inner  # every inner node of tree 0 its own left child
    forest.children_right_ = forest.children_left_.copy()
    with pytest.raises(CorruptFileError, match="malformed"):
        forest.kneighbors(X[:4], 3)
    forest = UnsupervisedRandomerForest.load(path)
    forest.node_parent_ = forest.node_parent_.copy()
    forest.node_parent_[1:] = np.arange(2, len(forest.node_parent_) + 1)  # parents after children
    assert forest.path_distances(X[:2]).shape == (2, 50)  # ends (the answer is meaningless)


def test_memory_bounds_name_the_limit_and_the_remedy():
    with pytest.raises(InvalidInputError, match=r"100000000 trees .* use fewer trees \(at most about"):
        check_forest_fits(10**8, 1000, available=2**34)
    check_forest_fits(100, 1000, available=2**34)
    with pytest.raises(InvalidInputError, match="lower k"):
        check_fits(2**40, "k-NN", "lower k", available=2**30)
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(InvalidInputError, match="use fewer trees"):
        UnsupervisedRandomerForest(10**12).fit(X)  # refused before growing a single tree


def test_save_refuses_a_missing_folder(saved, tmp_path):
    _, path, _, _ = saved
    forest = UnsupervisedRandomerForest.load(path)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        forest.save(tmp_path / "missing" / "f.urerf")
    assert not (tmp_path / "missing").exists()


def _run(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--trees", "100000000"], "use fewer trees"),
        (["--trees", "0"], "--trees"),
        (["--k", "30"], "choose --k below 30"),
        (["--k", "10000000000000"], "choose --k below 30"),
        (["--model", "{tmp}/missing/m.urerf"], "does not exist"),
    ],
)
def test_fit_refuses_sizes_and_folders_before_work(extra, message, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(30, 3)))
    argv = ["urerf", "fit", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.npz"), "--k", "3"]
    code, err = _run(argv + [e.format(tmp=tmp_path) for e in extra], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "missing").exists()


def test_fit_does_not_create_the_output_folder(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(30, 3)))
    out = tmp_path / "nonexistent" / "dir" / "x.npz"
    code, err = _run(["urerf", "fit", str(tmp_path / "x.npy"), "-o", str(out)], capsys)
    assert code == 2 and "does not exist; create it first" in err
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["urerf", "sim", "--n", "10000000"], "use fewer points or noise dimensions"),
        (["urerf", "sim", "--noise", "0,1000000000"], "1000000000 noise dimensions"),
        (["urerf", "sim", "--n", "100", "--k", "200"], "choose --k below 100"),
        (["urerf", "sim", "--n", "1"], "--n"),
        (["urerf", "sim", "--json", "/nonexistent-urerf/s.json"], "does not exist"),
        (["urerf", "reproduce", "--n", "10000000"], "use fewer points"),
        (["urerf", "bench", "--scale", "100000000000", "--peers", "rf"], "use fewer points"),
        (["urerf", "bench", "--rounds", "0"], "--rounds"),
    ],
)
def test_sizes_refused_in_one_line(argv, message, capsys):
    code, err = _run(argv, capsys)
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["urerf", "sim", "--trees", "100000000000", "--n", "100", "--k", "5"], "use fewer trees"),
        (["urerf", "sim", "--projection", "bogus", "--n", "100", "--k", "5"], "unknown --projection"),
        (["urerf", "sim", "--seeds", "100000000000"], "--seeds"),
        (["urerf", "sim", "--dataset", ""], "give at least one dataset"),
        (["urerf", "reproduce", "--datasets", ""], "give at least one dataset"),
        (["urerf", "reproduce", "--trees", "100000000000", "--peers", ""], "use fewer trees"),
        (["urerf", "reproduce", "--seeds", "1001"], "--seeds"),
        (["urerf", "bench", "--trees", "100000000000", "--peers", "rf"], "use fewer trees"),
        (["urerf", "bench", "--rounds", "100000000000", "--peers", "rf"], "--rounds"),
        (["urerf", "drosophila", "--seeds", "100000000000"], "--seeds"),
    ],
)
def test_sizes_and_repeats_refused_before_work(argv, message, capsys):
    code, err = _run(argv, capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_drosophila_refuses_a_forest_that_cannot_fit(shared_data, capsys):
    argv = ["urerf", "drosophila", "--path", str(shared_data / "connectome"), "--trees", "100000000000"]
    code, err = _run(argv + ["--peers", ""], capsys)
    assert code == 2 and "use fewer trees" in err and err.count("\n") == 1


def test_our_own_failure_is_not_reported_as_a_skipped_peer():
    from frugalml.common.errors import InvalidInputError
    from frugalml.urerf.bench.quality import noise_sweep

    with pytest.raises(InvalidInputError, match="projection"):
        noise_sweep(
            ["helix"], [0], ["urerf"], n=60, n_trees=2, seeds=[0], k=5, projection="bogus", quiet=True
        )


@pytest.mark.parametrize("content", ["", "\n"])
def test_data_without_points_and_folders_as_outputs(content, saved, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text(content)
    fit = ["urerf", "fit", str(empty), "-o", str(tmp_path / "o.npz")]
    code, err = _run(fit, capsys)
    assert code == 2 and "holds no rows" in err and err.count("\n") == 1
    X, path = saved[0], saved[1]
    code, err = _run(["urerf", "neighbours", str(path), str(empty), "-o", str(tmp_path / "o.npz")], capsys)
    assert code == 2 and "holds no rows" in err and err.count("\n") == 1
    np.save(tmp_path / "x.npy", X)
    for argv in (
        ["urerf", "fit", str(tmp_path / "x.npy"), "-o", str(tmp_path)],
        ["urerf", "fit", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.npz"), "--model", str(tmp_path)],
        ["urerf", "neighbours", str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path)],
        ["urerf", "sim", "--json", str(tmp_path)],
    ):
        code, err = _run(argv, capsys)
        assert code == 2 and "is a folder" in err and err.count("\n") == 1, argv
    code, err = _run(
        ["urerf", "fit", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.npz"), "--seed", "-1"], capsys
    )
    assert code == 2 and "--seed" in err and err.count("\n") == 1
