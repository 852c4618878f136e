"""The public API: methods agree with the oracle, bad input gets clear errors, inputs stay intact."""

import warnings

import numpy as np
import pytest

from frugalml.common.errors import FrugalError, InvalidInputError
from frugalml.maskedmm import backend, core, matmul, plan, prepare_b, reference_matmul, reset_stats, stats


def operands(m=40, k=70, n=90, sparsity=0.8, dtype=np.float32, seed=0):
    gen = np.random.default_rng(seed)
    A = gen.standard_normal((m, k)).astype(dtype)
    B = gen.standard_normal((k, n)).astype(dtype)
    A[gen.random(A.shape) < sparsity] = 0
    B[gen.random(B.shape) < sparsity] = 0
    return A, B


@pytest.mark.parametrize("method", ["auto", "dense", "masked", "sparse"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_method_matches_the_oracle_with_filters(method, dtype):
    A, B = operands(dtype=dtype)
    gen = np.random.default_rng(5)
    filters = {"a_mask": gen.random(A.shape) < 0.7, "b_mask": gen.random(B.shape) < 0.7, "threshold": 0.3}
    before = A.copy(), B.copy()
    C = matmul(A, B, method=method, **filters)
    np.testing.assert_allclose(C, reference_matmul(A, B, **filters), rtol=1e-4, atol=1e-4)
    assert C.dtype == dtype
    np.testing.assert_array_equal(A, before[0])
    np.testing.assert_array_equal(B, before[1])


def test_prepared_b_is_reusable_and_follows_the_isa(monkeypatch):
    A, B = operands()
    prepared = prepare_b(B, threshold=0.2)
    expected = reference_matmul(A, B, threshold=0.2)
    for method in ("masked", "dense", "sparse", "auto"):
        np.testing.assert_allclose(
            matmul(A, prepared, method=method, threshold=0.2), expected, rtol=1e-4, atol=1e-4
        )
    assert prepared.density == pytest.approx(np.mean(np.abs(B) > 0.2))
    monkeypatch.setenv(backend.ISA_ENV, "scalar")
    np.testing.assert_allclose(
        matmul(A, prepared, method="masked", threshold=0.2), expected, rtol=1e-4, atol=1e-4
    )


def test_out_may_be_fortran_ordered_and_is_returned():
    A, B = operands()
    out = np.empty((A.shape[0], B.shape[1]), np.float32, order="F")
    result = matmul(A, B, method="masked", out=out)
    assert result is out
    np.testing.assert_allclose(out, reference_matmul(A, B), rtol=1e-4, atol=1e-4)


def test_threads_give_the_same_answer():
    A, B = operands(m=130, k=200, n=150, sparsity=0.9)
    one = matmul(A, B, method="masked", threads=1)
    two = matmul(A, B, method="masked", threads=2)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("row_block", [1, 2])
def test_stats_count_four_times_fewer_fmas_at_90_percent(row_block):
    A, B = operands(m=256, k=256, n=256, sparsity=0.9, seed=3)
    reset_stats()
    core._masked(core.check_operands(A, B), None, row_block)
    counted = stats()
    assert counted.calls == {"masked": 1}
    assert counted.vector_fmas_dense == 256 * 256 * (256 // 16)
    assert counted.fma_reduction >= 4.0
    assert counted.dispatches > 0 and counted.vector_fmas_skipped > 0


def test_sparse_kernel_counts_its_element_products(monkeypatch):
    A, B = operands(m=256, k=256, n=256, sparsity=0.95, seed=3)
    reset_stats()
    C = matmul(A, B, method="sparse", threads=2)
    np.testing.assert_allclose(C, reference_matmul(A, B), rtol=1e-4, atol=1e-4)
    counted = stats()
    width = backend.segment_width(backend.choose_isa(), "f32")
    products = int(((A != 0).astype(np.int64) @ (B != 0).astype(np.int64)).sum())
    assert counted.calls == {"sparse": 1} and counted.iterations == np.count_nonzero(A)
    assert counted.vector_fmas_executed == -(-products // width)
    assert counted.fma_reduction >= 20.0


def test_prepare_b_keeps_csr_rows_when_they_are_no_larger_than_b():
    A, B = operands(sparsity=0.9)
    assert prepare_b(B)._rows is not None
    dense = prepare_b(operands(sparsity=0.1)[1])
    assert dense._rows is None  # built on first use instead
    C = matmul(operands(sparsity=0.1)[0], dense, method="sparse")
    assert dense._rows is not None and C.shape == (40, 90)


def test_auto_picks_the_sparse_kernel_at_99_percent_zeros():
    A, B = operands(m=1024, k=1024, n=1024, sparsity=0.99, seed=4)
    reset_stats()
    C = matmul(A, B, threads=1)
    assert stats().calls == {"sparse": 1}
    np.testing.assert_allclose(C, reference_matmul(A, B), rtol=1e-4, atol=1e-4)


def test_row_skip_kernel_counts_ten_times_fewer_fmas_at_90_percent():
    A, B = operands(m=256, k=256, n=256, sparsity=0.9, seed=3)
    reset_stats()
    core._masked(core.check_operands(A, B), None, None, "rows")
    counted = stats()
    assert counted.calls == {"masked": 1}
    isa = backend.choose_isa()
    tile = backend.panel_width(isa, "f32") * backend.rows_panels(isa)
    assert counted.iterations == np.count_nonzero(A) * -(-256 // tile)  # one visit per non-zero and tile
    assert counted.fma_reduction >= 4.0


def test_plan_prefers_dense_for_dense_operands_and_skips_work_when_sparse():
    dense = plan(*operands(m=256, k=256, n=256, sparsity=0.0))
    assert dense.method == "dense" and set(dense.estimates) == {"dense", "masked", "sparse"}
    sparse = plan(*operands(m=1024, k=1024, n=1024, sparsity=0.99))
    assert sparse.method in ("masked", "sparse")
    assert sparse.a_density < 0.05 and sparse.estimates[sparse.method] < sparse.estimates["dense"]
    assert str(sparse).startswith(sparse.method)


def bad_inputs():
    A, B = operands()
    return [
        ((A, B[:-1]), {}, "columns"),
        ((A.astype(np.int32), B.astype(np.int32)), {}, "float32 or float64"),
        ((A, B.astype(np.float64)), {}, "cast both"),
        ((A[0], B), {}, "2-dimensional"),
        ((A, B), {"method": "fast"}, "unknown method"),
        ((A, B), {"threshold": -1.0}, "threshold"),
        ((A, B), {"threshold": float("nan")}, "threshold"),
        ((A, B), {"a_mask": np.ones((3, 3), bool)}, "a_mask has shape"),
        ((A, B), {"b_mask": np.ones(B.shape, np.int8)}, "boolean"),
        ((A, B), {"threads": 0}, "threads"),
        ((A, B), {"out": np.empty((2, 2), np.float32)}, "out must have shape"),
        ((A, prepare_b(B)), {"b_mask": np.ones(B.shape, bool)}, "prepare_b"),
    ]


@pytest.mark.parametrize("args,kwargs,message", bad_inputs())
def test_bad_input_is_a_clear_error(args, kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        matmul(*args, **kwargs)


@pytest.mark.parametrize("method", ["masked", "sparse", "auto"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_and_inf_are_refused_by_skipping_methods(method, value):
    A, B = operands()
    A[3, 4] = value
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        matmul(A, B, method=method)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        matmul(B.T.copy(), A.T.copy(), method="masked")
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        matmul(A, B, method="dense", threshold=0.1)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        prepare_b(A)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["A", "B"])
def test_auto_refuses_nan_and_inf_also_when_it_runs_dense_blas(value, where):
    A, B = operands(m=90, k=80, n=70, sparsity=0.0)
    assert plan(A, B).method == "dense"
    (A if where == "A" else B)[41, 37] = value  # away from the first row and column of C
    with pytest.raises(InvalidInputError, match=f"{where} contains 1 NaN or infinite"):
        matmul(A, B, method="auto")


@pytest.mark.parametrize("kernel", core.KERNELS)
def test_both_masked_kernels_refuse_nan_in_either_operand(kernel):
    A, B = operands(m=40, k=130, n=90, sparsity=0.9)
    for bad, name in ((A.copy(), "A"), (B.copy(), "B")):
        bad[7, 5] = np.nan
        args = (bad, B) if name == "A" else (A, bad)
        with pytest.raises(InvalidInputError, match=f"{name} contains 1 NaN"):
            core._masked(core.check_operands(*args), None, None if kernel == "rows" else 2, kernel)


@pytest.mark.filterwarnings("ignore:invalid value")
def test_dense_without_filters_passes_nan_through_like_numpy():
    A, B = operands()
    A[0, 0] = np.nan
    assert np.isnan(matmul(A, B, method="dense")[0]).all()


def test_out_overlapping_an_input_is_refused():
    A, _ = operands(m=30, k=30, n=30)
    with pytest.raises(InvalidInputError, match="overlaps"):
        matmul(A, A, method="masked", out=A)


def test_isa_override_is_checked(monkeypatch):
    A, B = operands()
    monkeypatch.setenv(backend.ISA_ENV, "avx9000")
    with pytest.raises(FrugalError, match="FRUGAL_MASKEDMM_ISA"):
        matmul(A, B, method="masked")


def test_missing_extension_falls_back_to_numba_with_one_warning(monkeypatch):
    monkeypatch.setattr(backend, "extension", None)
    monkeypatch.setattr(backend, "_warned", False)
    A, B = operands()
    with pytest.warns(RuntimeWarning, match="numba fallback"):
        C = matmul(A, B, method="masked")
    np.testing.assert_allclose(C, reference_matmul(A, B), rtol=1e-4, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matmul(A, B, method="masked")


@pytest.mark.parametrize("prepared", [False, True])
def test_auto_runs_dense_blas_in_one_checked_call_with_the_same_counters(monkeypatch, prepared):
    if not backend.has_extension():
        pytest.skip("the C extension is not built")
    A, B = operands(m=150, k=120, n=130, sparsity=0.1, dtype=np.float64)
    operand = prepare_b(B) if prepared else B
    assert plan(A, operand).method == "dense"
    reset_stats()
    expected = matmul(A, operand, method="dense")
    dense_stats = stats()
    reset_stats()

    def general_path(*args, **kwargs):
        raise AssertionError("auto's dense decision should not need the general checks")

    monkeypatch.setattr(core, "check_operands", general_path)
    np.testing.assert_array_equal(matmul(A, operand), expected)
    assert stats() == dense_stats
    A[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="A contains 1 NaN"):
        matmul(A, operand)


def test_auto_takes_the_general_path_for_other_inputs(monkeypatch):
    A, B = operands(m=150, k=120, n=130, sparsity=0.1)
    with pytest.raises(InvalidInputError, match="threshold must be finite"):
        matmul(A, B, threshold=-1.0)
    with pytest.raises(InvalidInputError, match="float32 or float64"):
        matmul(A.astype(np.int64), B.astype(np.int64))
    with pytest.raises(InvalidInputError, match="A's columns"):
        matmul(A, B[:-1])
    with pytest.raises(InvalidInputError, match="cast both"):
        matmul(A, B.astype(np.float64))
    B64 = B.astype(np.float64)
    np.testing.assert_allclose(matmul(A.tolist(), B64), A.astype(np.float64) @ B64)


def test_public_api_is_listed_once_and_resolves():
    import frugalml.maskedmm as maskedmm
    import frugalml.maskedmm.calibration  # noqa: F401  (the module must not shadow the function)

    assert sorted(dir(maskedmm)) == sorted(maskedmm.__all__)
    for name in maskedmm.__all__:
        assert getattr(maskedmm, name) is not None
    from frugalml.maskedmm import calibrate

    assert callable(calibrate) and calibrate.__module__ == "frugalml.maskedmm.calibration"
