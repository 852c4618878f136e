"""``frugal urerf``: fit writes neighbours, sim prints precision, bad input exits 2 with one line."""

import numpy as np
import pytest

from frugalml.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_fit_writes_neighbours(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(80, 4))
    np.save(tmp_path / "x.npy", X)
    code, out, _ = run(
        [
            "urerf",
            "fit",
            str(tmp_path / "x.npy"),
            "-o",
            str(tmp_path / "nb.npz"),
            "--k",
            "5",
            "--trees",
            "10",
        ],
        capsys,
    )
    assert code == 0, out
    with np.load(tmp_path / "nb.npz") as result:
        assert result["indices"].shape == (80, 5)
        assert ((result["similarities"] >= 0) & (result["similarities"] <= 1)).all()


def test_saved_model_answers_new_points(tmp_path, capsys):
    X = np.random.default_rng(1).normal(size=(60, 3))
    np.save(tmp_path / "x.npy", X)
    code, _, err = run(
        [
            "urerf",
            "fit",
            str(tmp_path / "x.npy"),
            "-o",
            str(tmp_path / "nb.npz"),
            "--k",
            "3",
            "--trees",
            "8",
            "--model",
            str(tmp_path / "m.urerf"),
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    np.savetxt(tmp_path / "new.csv", X[:5], delimiter=",")
    code, _, err = run(
        [
            "urerf",
            "neighbours",
            str(tmp_path / "m.urerf"),
            str(tmp_path / "new.csv"),
            "-o",
            str(tmp_path / "new.npz"),
            "--k",
            "4",
        ],
        capsys,
    )
    assert code == 0, err
    with np.load(tmp_path / "new.npz") as result:
        assert result["indices"].shape == (5, 4)
        np.testing.assert_array_equal(result["indices"][:, 0], np.arange(5))  # itself is most similar
    code, _, err = run(
        [
            "urerf",
            "neighbours",
            str(tmp_path / "x.npy"),
            str(tmp_path / "new.csv"),
            "-o",
            str(tmp_path / "n2.npz"),
        ],
        capsys,
    )
    assert code == 2 and "not a URERF file" in err


def test_sim_prints_precision(tmp_path, capsys):
    code, out, _ = run(
        [
            "urerf",
            "sim",
            "--dataset",
            "linear",
            "--noise",
            "0",
            "--n",
            "150",
            "--trees",
            "20",
            "--seeds",
            "1",
            "--k",
            "10",
            "-q",
            "--json",
            str(tmp_path / "s.json"),
        ],
        capsys,
    )
    assert code == 0 and "linear" in out
    assert (tmp_path / "s.json").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["urerf", "fit", "/nonexistent.npy", "-o", "x.npz"], "does not exist"),
        (["urerf", "sim", "--dataset", "torus"], "unknown dataset"),
        (["urerf", "sim", "--noise", "a,b"], "comma-separated"),
        (["urerf", "bench", "--peers", "faiss"], "unknown peer"),
    ],
)
def test_bad_input_exits_2(argv, message, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_corrupt_and_bad_data_files(tmp_path, capsys):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    code, _, err = run(["urerf", "fit", str(tmp_path / "bad.npy"), "-o", str(tmp_path / "o.npz")], capsys)
    assert code == 2 and "cannot read" in err
    np.savetxt(tmp_path / "nan.csv", np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]]), delimiter=",")
    code, _, err = run(
        ["urerf", "fit", str(tmp_path / "nan.csv"), "-o", str(tmp_path / "o.npz"), "--k", "1"], capsys
    )
    assert code == 2 and "NaN" in err
    assert not (tmp_path / "o.npz").exists()


def test_drosophila_command(shared_data, capsys):
    code, out, _ = run(
        [
            "urerf",
            "drosophila",
            "--path",
            str(shared_data / "connectome"),
            "--peers",
            "euclidean",
            "--trees",
            "10",
            "--seeds",
            "1",
            "-q",
        ],
        capsys,
    )
    assert code == 0 and "d = 3" in out and "paper urerf" in out
