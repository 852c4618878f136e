"""Every kernel (row-skip, tiles per row block, sparse) x ISA x dtype, and numba, vs the oracle."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalml.maskedmm import backend, codegen_kernels, core
from frugalml.maskedmm.oracle import effective
from frugalml.maskedmm.verify import SPARSE, TOLERANCE, relative_error, run_variant

SIZES = [1, 2, 3, 5, 7, 13, 16, 17, 31, 33, 64, 65, 97]
VARIANTS = [*backend.supported_isas(), backend.NUMBA]


@st.composite
def cases(draw):
    """Random shapes (1, primes, non-multiples of the vector width), orders, dtypes and filters."""
    m, k, n = (draw(st.sampled_from(SIZES)) for _ in range(3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    gen = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = gen.standard_normal((m, k)).astype(dtype)
    B = gen.standard_normal((k, n)).astype(dtype)
    A[gen.random(A.shape) < draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]))] = 0
    B[gen.random(B.shape) < draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]))] = 0
    if draw(st.booleans()):
        A = np.asfortranarray(A)
    if draw(st.booleans()):
        B = np.asfortranarray(B)
    filters = {}
    if draw(st.booleans()):
        filters["threshold"] = draw(st.sampled_from([0.1, 1.0]))
    if draw(st.booleans()):
        filters["a_mask"] = gen.random(A.shape) < 0.6
    if draw(st.booleans()):
        filters["b_mask"] = gen.random(B.shape) < 0.6
    # None: row-skip kernel; an int: the tile kernel's row block; "sparse": the element-level one
    return A, B, filters, draw(st.sampled_from([None, *codegen_kernels.ROW_BLOCKS, SPARSE]))


@pytest.mark.parametrize("variant", VARIANTS)
@settings(max_examples=25, deadline=None)
@given(case=cases())
def test_variant_matches_oracle_and_leaves_inputs_alone(variant, case):
    A, B, filters, row_block = case
    before = [A.copy(), B.copy()]
    C = run_variant(variant, A, B, row_block, **filters)
    assert C.dtype == A.dtype and C.shape == (A.shape[0], B.shape[1])
    assert relative_error(C, A, B, **filters) <= TOLERANCE[A.dtype.type]
    np.testing.assert_array_equal(A, before[0])
    np.testing.assert_array_equal(B, before[1])


@pytest.mark.parametrize("variant", VARIANTS)
@settings(max_examples=15, deadline=None)
@given(case=cases())
def test_sparse_kernel_matches_oracle_and_leaves_inputs_alone(variant, case):
    A, B, filters, _ = case
    before = [A.copy(), B.copy()]
    C = run_variant(variant, A, B, SPARSE, **filters)
    assert C.dtype == A.dtype and C.shape == (A.shape[0], B.shape[1])
    assert relative_error(C, A, B, **filters) <= TOLERANCE[A.dtype.type]
    np.testing.assert_array_equal(A, before[0])
    np.testing.assert_array_equal(B, before[1])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row_block", [None, 4, SPARSE])
def test_all_zero_and_all_dense_operands(variant, dtype, row_block):
    gen = np.random.default_rng(1)
    dense = gen.standard_normal((37, 70)).astype(dtype)
    zeros = np.zeros((70, 45), dtype)
    assert not run_variant(variant, dense, zeros, row_block).any()
    other = gen.standard_normal((70, 45)).astype(dtype)
    C = run_variant(variant, dense, other, row_block)
    assert relative_error(C, dense, other) <= TOLERANCE[dtype]


@pytest.mark.parametrize("variant", backend.supported_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_skip_kernel_on_ragged_tiles_and_strided_operands(variant, dtype):
    gen = np.random.default_rng(2)
    A = gen.standard_normal((67, 300)).astype(dtype)  # several bitmap words, ragged last tile
    A[gen.random(A.shape) < 0.9] = 0
    B = gen.standard_normal((300, 333)).astype(dtype)
    wide = np.zeros((300, 400), dtype)
    wide[:, :333] = B
    for operand in (B, np.asfortranarray(B), wide[:, :333]):
        C = run_variant(variant, A, operand, None)
        assert relative_error(C, A, B) <= TOLERANCE[dtype]


def test_generated_table_is_up_to_date():
    assert codegen_kernels.OUTPUT.read_text() == codegen_kernels.generate()


def test_table_has_an_entry_per_pattern():
    text = codegen_kernels.generate()
    for isa in codegen_kernels.ISAS:
        for rows in codegen_kernels.ROW_BLOCKS:
            for pattern in range(1, 1 << codegen_kernels.SEGMENTS):
                assert f"{codegen_kernels.kernel_name(isa, 'f32', rows, pattern)}(" in text


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_kernel_writes_strided_and_fortran_outputs(variant, dtype, monkeypatch):
    monkeypatch.setenv(backend.ISA_ENV, variant)
    gen = np.random.default_rng(4)
    A = gen.standard_normal((67, 300)).astype(dtype)  # several bitmap words, rows of B past 16
    A[gen.random(A.shape) < 0.8] = 0
    B = gen.standard_normal((300, 333)).astype(dtype)
    B[gen.random(B.shape) < 0.7] = 0
    wide = np.full((67, 400), 7.0, dtype)
    for out in (np.empty((67, 333), dtype, order="F"), wide[:, :333]):
        C = core.matmul(A, B, method="sparse", out=out)
        assert C is out and relative_error(C, A, B) <= TOLERANCE[dtype]
    assert (wide[:, 333:] == 7.0).all()  # nothing written past C's columns


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_rows_are_b_as_csr_with_filters(variant, dtype):
    sparse = pytest.importorskip("scipy.sparse")
    gen = np.random.default_rng(6)
    B = gen.standard_normal((45, 71)).astype(dtype)
    B[gen.random(B.shape) < 0.6] = 0
    mask = gen.random(B.shape) < 0.8
    for operand in (B, np.asfortranarray(B)):
        for filters in ({}, {"threshold": 0.5}, {"b_mask": mask, "threshold": 0.2}):
            rows = core.sparse_rows(operand, isa=variant, **filters)
            expected = sparse.csr_array(effective(B, filters.get("b_mask"), filters.get("threshold", 0.0)))
            assert rows.shape == B.shape and rows.nnz == expected.nnz
            np.testing.assert_array_equal(rows.indptr, expected.indptr)
            np.testing.assert_array_equal(rows.indices, expected.indices)
            np.testing.assert_array_equal(rows.values, expected.data)


def test_sparse_kernel_refuses_inconsistent_csr_rows():
    if not backend.has_extension():
        pytest.skip("the C extension is not built")
    A = np.ones((3, 4), np.float32)
    bits = np.full((3, 1), 0b1111, np.uint64)
    C = np.empty((3, 5), np.float32)
    values = np.ones(4, np.float32)
    for indptr, indices, message in (
        (np.array([0, 1, 2, 3, 4]), np.array([0, 1, 2, 5], np.int32), "indices must lie"),
        (np.array([0, 2, 1, 3, 4]), np.array([0, 1, 2, 3], np.int32), "never decrease"),
        (np.array([0, 1, 2, 3, 9]), np.array([0, 1, 2, 3], np.int32), "bytes"),
    ):
        with pytest.raises(ValueError, match=message):
            backend.extension.spgemm(A, bits, 0.0, indptr, indices, values, C, "scalar", 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_skip_kernel_splits_rows_between_threads(dtype):
    gen = np.random.default_rng(8)
    A = gen.standard_normal((131, 300)).astype(dtype)  # full tiles of B in chunks, rows split unevenly
    A[gen.random(A.shape) < 0.85] = 0
    B = gen.standard_normal((300, 530)).astype(dtype)
    ops = {t: core.check_operands(A, B, threads=t) for t in (1, 2, 3)}
    results = [core._masked(ops[t], None, None, "rows") for t in ops]
    assert relative_error(results[0], A, B) <= TOLERANCE[dtype]
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
