"""Reading the matrix a user names on a command line: formats, headers, clear errors."""

import numpy as np
import pytest

from frugalml.common.data import read_matrix
from frugalml.common.errors import CorruptFileError, DataNotFoundError


@pytest.mark.parametrize(
    "name,text",
    [
        ("rows.csv", "a,b\n1,2\n3,4\n"),
        ("rows.csv", "1,2\n3,4\n"),
        ("rows.tsv", "1\t2\n3\t4\n"),
        ("rows.txt", "x y\n1 2\n3 4\n"),
    ],
)
def test_text_formats(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    np.testing.assert_array_equal(read_matrix(tmp_path / name), [[1, 2], [3, 4]])


def test_numpy_formats(tmp_path):
    X = np.arange(6.0).reshape(3, 2)
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "x.npz", other=np.zeros(1), X=X)
    np.savez(tmp_path / "first.npz", X)
    for name in ("x.npy", "x.npz", "first.npz"):
        np.testing.assert_array_equal(read_matrix(tmp_path / name), X)


def test_errors(tmp_path):
    with pytest.raises(DataNotFoundError):
        read_matrix(tmp_path / "absent.csv")
    (tmp_path / "words.csv").write_text("a,b\nc,d\n")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name in ("words.csv", "bad.npy", "objects.npy"):
        with pytest.raises(CorruptFileError, match="numeric matrix"):
            read_matrix(tmp_path / name)
