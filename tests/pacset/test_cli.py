"""The ``frugal pacset`` commands end to end: pack, inspect, predict, tune; bad input exits 2."""

import joblib
import numpy as np
import pytest

from frugalml.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_pack_inspect_predict(rf, cls_data, tmp_path, capsys):
    joblib.dump(rf, tmp_path / "rf.joblib")
    X = cls_data[0][:10]
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", header="a,b,c,d,e,f,g,h", comments="")
    np.save(tmp_path / "x.npy", X)
    code, out, _ = run(
        [
            "pacset",
            "pack",
            str(tmp_path / "rf.joblib"),
            "--trust-pickle",
            "-o",
            str(tmp_path / "rf.pacset"),
            "--layout",
            "blockwise-wdfs",
            "--bins",
            "4",
            "--interleave",
            "2",
            "--calibration",
            str(tmp_path / "x.npy"),
        ],
        capsys,
    )
    assert code == 0 and "12 trees" in out
    code, out, _ = run(["pacset", "inspect", str(tmp_path / "rf.pacset"), "--verify"], capsys)
    assert code == 0 and "blockwise-wdfs" in out and "SHA-256 ok" in out
    code, out, err = run(["pacset", "predict", str(tmp_path / "rf.pacset"), str(tmp_path / "x.csv")], capsys)
    assert code == 0 and [int(v) for v in out.split()] == rf.predict(X).tolist()
    assert "blocks touched" in err


def test_pack_for_a_remote_store_says_what_it_chose(rf, tmp_path, capsys):
    joblib.dump(rf, tmp_path / "rf.joblib")
    argv = ["pacset", "pack", str(tmp_path / "rf.joblib"), "--trust-pickle", "-o", str(tmp_path / "r.pacset")]
    code, out, _ = run([*argv, "--target", "remote"], capsys)
    assert code == 0 and "12 trees" in out
    code, out, _ = run(["pacset", "inspect", str(tmp_path / "r.pacset")], capsys)
    assert code == 0 and "layout chosen: " in out and "walk rounds" in out and "shared_top" in out
    code, _, err = run([*argv, "--target", "cloud"], capsys)
    assert code == 2 and "unknown target" in err


def test_tune_command(rf, cls_data, tmp_path, capsys):
    joblib.dump(rf, tmp_path / "rf.joblib")
    np.save(tmp_path / "x.npy", cls_data[0][:30])
    code, out, _ = run(
        [
            "pacset",
            "tune",
            str(tmp_path / "rf.joblib"),
            str(tmp_path / "x.npy"),
            "--trust-pickle",
            "-o",
            str(tmp_path / "t.pacset"),
            "-q",
        ],
        capsys,
    )
    assert code == 0 and out.startswith("best: --bins") and (tmp_path / "t.pacset").is_file()


def test_errors_exit_2(rf, tmp_path, capsys):
    joblib.dump(rf, tmp_path / "rf.joblib")
    code, _, err = run(
        ["pacset", "pack", str(tmp_path / "rf.joblib"), "--trust-pickle", "-o", "a", "--layout", "zigzag"],
        capsys,
    )
    assert code == 2 and "unknown layout" in err
    code, _, err = run(["pacset", "inspect", str(tmp_path / "nothing.pacset")], capsys)
    assert code == 2 and "does not exist" in err
    (tmp_path / "bad.pacset").write_bytes(b"PACSET\0\0" + b"\0" * 60)
    code, _, err = run(["pacset", "inspect", str(tmp_path / "bad.pacset")], capsys)
    assert code == 2 and "frugal: error" in err
    run(
        ["pacset", "pack", str(tmp_path / "rf.joblib"), "--trust-pickle", "-o", str(tmp_path / "rf.pacset")],
        capsys,
    )
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3)))
    code, _, err = run(
        ["pacset", "predict", str(tmp_path / "rf.pacset"), str(tmp_path / "wrong.npy")], capsys
    )
    assert code == 2 and "features" in err


class _Evil:
    """Unpickling this creates a file: what a crafted model file could do."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("command", ["pack", "tune"])
def test_pickles_refused_without_trust(tmp_path, capsys, command):
    import pickle

    marker = tmp_path / "pwned"
    (tmp_path / "evil.joblib").write_bytes(pickle.dumps(_Evil(str(marker))))
    np.save(tmp_path / "x.npy", np.zeros((2, 8)))
    extra = [str(tmp_path / "x.npy")] if command == "tune" else ["-o", str(tmp_path / "e.pacset")]
    code, _, err = run(["pacset", command, str(tmp_path / "evil.joblib"), *extra], capsys)
    assert code == 2 and not marker.exists()
    assert "--trust-pickle" in err and "XGBoost JSON/UBJ" in err and "LightGBM text" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_inputs_and_sizes_are_one_line_errors(rf, cls_data, tmp_path, capsys):
    pack_rf = tmp_path / "rf.pacset"
    from frugalml.pacset import pack

    pack(rf, pack_rf)
    good = tmp_path / "ok.npy"
    np.save(good, cls_data[0][:3])
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    (tmp_path / "trunc.npy").write_bytes(good.read_bytes()[:100])
    (tmp_path / "garbage.npy").write_bytes(b"\x93NUMPY garbage" * 10)
    for name in ("obj", "trunc", "garbage"):
        code, _, err = run(["pacset", "predict", str(pack_rf), str(tmp_path / f"{name}.npy")], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    joblib.dump(rf, tmp_path / "rf.joblib")
    code, _, err = run(
        [
            "pacset",
            "pack",
            str(tmp_path / "rf.joblib"),
            "--trust-pickle",
            "-o",
            "x",
            "--block-size",
            str(2**40),
        ],
        capsys,
    )
    assert code == 2 and "up to 64 MiB" in err
    code, _, err = run(["pacset", "bench", "--size", "huge"], capsys)
    assert code == 2 and "unknown size" in err
    missing = tmp_path / "no" / "such" / "x.pacset"
    code, _, err = run(
        ["pacset", "pack", str(tmp_path / "rf.joblib"), "--trust-pickle", "-o", str(missing)], capsys
    )
    assert code == 2 and "does not exist" in err and not missing.parent.exists()
