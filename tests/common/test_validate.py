import numpy as np
import pytest

from frugalml.common import InvalidInputError
from frugalml.common.validate import as_array, one_of


def test_as_array_checks_shape_nan_and_empty():
    assert as_array([[1, 2]], "X", ndim=2, dtype=np.float32).dtype == np.float32
    with pytest.raises(InvalidInputError, match="2-dimensional"):
        as_array([1, 2], "X", ndim=2)
    with pytest.raises(InvalidInputError, match="1 NaN"):
        as_array([1.0, np.nan], "X")
    with pytest.raises(InvalidInputError, match="empty"):
        as_array(np.zeros((0, 3)), "X")
    with pytest.raises(InvalidInputError, match="numeric"):
        as_array(["a", "b"], "X", dtype=float)
    assert np.isnan(as_array([np.nan], "X", allow_nan=True)).all()


def test_one_of_lists_the_choices():
    assert one_of("bfs", ["bfs", "dfs"], "layout") == "bfs"
    with pytest.raises(InvalidInputError, match="choose one of: bfs, dfs"):
        one_of("xyz", ["bfs", "dfs"], "layout")


def test_as_array_refuses_complex_input_for_a_real_dtype():
    with pytest.raises(InvalidInputError, match="complex"):
        as_array(np.ones(3, dtype=complex), "X", dtype=np.float64)
    assert as_array(np.ones(3, dtype=complex), "X").dtype.kind == "c"
