"""Calibration cache, operand patterns and the ``frugal maskedmm`` commands."""

import json

import numpy as np
import pytest

from frugalml.cli import main
from frugalml.common.report import read_json
from frugalml.maskedmm import calibration, patterns, planner


def test_calibration_is_cached_atomically_and_reloaded(fresh_cache, monkeypatch):
    assert not planner.calibration().measured
    cal = calibration.calibrate(size=64)
    assert cal.measured and planner.cache_path().is_file()
    assert all(cal.per_call[m] + cal.per_iteration[m] > 0 for m in cal.per_call)
    assert cal.dense_per_mac > 0
    monkeypatch.setattr(planner, "_loaded", None)
    assert planner.calibration() == cal
    assert not list(planner.cache_path().parent.glob("*.tmp"))


def test_a_corrupt_or_foreign_calibration_falls_back_to_defaults(fresh_cache, monkeypatch):
    planner.cache_path().parent.mkdir(parents=True)
    planner.cache_path().write_text("{not json")
    with pytest.warns(planner.CalibrationWarning):
        assert not planner.calibration().measured
    monkeypatch.setattr(planner, "_loaded", None)
    planner.cache_path().write_text(json.dumps({"fingerprint": {"cpu": "other"}, "calibration": {}}))
    with pytest.warns(planner.CalibrationWarning, match="older frugalml"):
        assert not planner.calibration().measured


def test_calibration_measures_its_error_and_thread_gain(fresh_cache):
    cal = calibration.calibrate(size=64)
    assert cal.model_error >= 0 and 0.0 <= cal.masked_parallel_gain <= 1.0
    assert 0 < cal.margin <= 1 / (1 + planner.MIN_MARGIN)


def test_sampled_densities_are_costed_high_and_exact_ones_as_is():
    assert planner.upper_density(0.1, 0.0) == 0.1
    assert planner.upper_density(0.99, 0.1) == 1.0
    gen = np.random.default_rng(0)
    uniform = np.where(gen.random((512, 512)) < 0.1, 1.0, 0.0)
    density, error = planner.density_estimate(uniform)
    assert abs(density - 0.1) < 4 * error and 0 < error < 0.01
    rows = np.zeros((512, 512))
    rows[::10] = 1.0  # every 10th row: runs of neighbours are alike, so the error widens
    assert planner.density_estimate(rows)[1] > 2 * error
    assert planner.density_estimate(np.ones((8, 8))) == (1.0, 0.0)


def _plan(density: float, threads: int = 1) -> planner.Plan:
    return planner.choose(
        shape=(1024, 1024, 1024),
        dtype_code="f32",
        isa="avx512",
        a_density=density,
        b_density=density,
        b_prepared=True,
        threads=threads,
        filters=False,
    )


def test_auto_prefers_dense_near_break_even(fresh_cache):
    # just past where the cost model's masked estimate equals dense, dense still wins (the margin)
    densities = np.linspace(0.02, 0.6, 59)
    ratios = [_plan(d).estimates["masked"] / _plan(d).estimates["dense"] for d in densities]
    even = densities[int(np.argmin(np.abs(np.array(ratios) - 1.0)))]
    assert _plan(even).method == "dense"
    assert _plan(0.15).method == "masked"
    assert _plan(0.01).method == "sparse"  # two-sided 99% zeros: the element-level product wins
    assert _plan(0.9).method == "dense"


def test_products_cheaper_than_a_skipping_call_run_dense_without_sampling(fresh_cache, monkeypatch):
    from frugalml.maskedmm import backend, core

    A = np.zeros((112, 112), np.float32)  # all zeros: skipping would win if calls were free
    chosen = core.plan(A, A)
    assert chosen.method == "dense"
    assert min(chosen.estimates["masked"], chosen.estimates["sparse"]) >= planner.calibration().call_overhead
    if backend.has_extension():
        params = planner.auto_params((112, 112, 112), "f32", backend.choose_isa(), False, 1, False)
        assert backend.extension.auto_dense(A, A, 0.0, 0.0, params)
        monkeypatch.setattr(planner.calibration(), "call_overhead", 0.0)
        params = planner.auto_params((112, 112, 112), "f32", backend.choose_isa(), False, 1, False)
        assert not backend.extension.auto_dense(A, A, 0.0, 0.0, params)  # free calls: skip the zeros


def test_auto_does_not_count_on_threads_the_kernel_cannot_use(fresh_cache, monkeypatch):
    monkeypatch.setattr(planner.calibration(), "masked_parallel_gain", 0.0)
    one, two = _plan(0.1, threads=1), _plan(0.1, threads=2)
    assert two.estimates["masked"] == pytest.approx(one.estimates["masked"])
    assert two.estimates["dense"] == pytest.approx(one.estimates["dense"] / 2)


@pytest.mark.parametrize("pattern", patterns.PATTERNS)
def test_patterns_reach_the_requested_sparsity(pattern):
    A, B = patterns.operands(pattern, 128, 0.9, seed=1)
    assert A.shape == B.shape == (128, 128) and A.dtype == np.float32
    assert np.mean(A == 0) == pytest.approx(0.9, abs=0.05)


def test_unknown_pattern_is_refused():
    with pytest.raises(ValueError, match="unknown pattern"):
        patterns.make("stripes", (4, 4), 0.5)


def test_info_and_verify_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["maskedmm", "info"])
    assert exit_info.value.code == 0
    assert "ISA selected" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_verify:
        main(["maskedmm", "verify", "--trials", "2", "--isa", "scalar"])
    assert exit_verify.value.code == 0
    assert "MISMATCH" not in capsys.readouterr().out


def test_info_advises_on_spinning_threads(capsys, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    with pytest.raises(SystemExit):
        main(["maskedmm", "info"])
    out = " ".join(capsys.readouterr().out.split())
    assert "OPENBLAS_THREAD_TIMEOUT" in out and "start Python with OMP_WAIT_POLICY=passive" in out
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    with pytest.raises(SystemExit):
        main(["maskedmm", "info"])
    assert "start Python with" not in capsys.readouterr().out


def test_bench_writes_records_and_a_plot(tmp_path):
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as exit_bench:
        main(
            [
                "maskedmm",
                "bench",
                "--n",
                "64",
                "--sparsity",
                "0.9",
                "--pattern",
                "random,columns",
                "--threads",
                "1",
                "--rounds",
                "1",
                "--peers",
                "scipy",
                "--json",
                str(out),
                "--quiet",
            ]
        )
    assert exit_bench.value.code == 0
    records = read_json(out)
    peers = {r["peer"] for r in records}
    assert "numpy dense (BLAS)" in peers and "scipy csr@csr incl. conversion" in peers
    assert all(r["ratio"] > 0 for r in records if r["peer"])
    assert out.with_suffix(".png").stat().st_size > 1000


def test_each_masked_kernel_is_timed_against_numpy():
    from frugalml.maskedmm.bench import auto_sweep, contenders

    records = auto_sweep.kernel_records(n=64, sparsities=(0.9,), rounds=1)
    assert len(records) == 2 and "row-skip kernel" in records[0].metric and "tile kernel" in records[1].metric
    assert all(r.peer == contenders.NUMPY and r.ratio > 0 for r in records)


def test_target_table_times_every_method_and_peer():
    from frugalml.maskedmm.bench import contenders, target_table

    records = target_table.target_records(
        n=64, rounds=1, sparsities=(0.9,), auto_sparsities=(0.0,), peer_sparsities=(0.9,)
    )
    timed = {(r.metric, r.peer) for r in records if r.peer}
    for name in (
        "auto, B prepared",
        "masked, B prepared",
        "sparse, B prepared",
        "auto",
        "masked, B packed per call",
        "sparse, B per call",
    ):
        assert (f"time ({name}, 1 rounds)", contenders.NUMPY) in timed
    assert ("time (auto, 1 rounds)", "scipy csr@csr incl. conversion") in timed
    assert any("0% zeros" in r.workload and r.peer == contenders.NUMPY for r in records)
    assert {r.metric for r in records if r.peer is None} == {
        "vector FMA reduction vs dense",
        "vector FMA reduction vs dense (sparse method)",
    }


def test_multi_thread_timings_run_one_child_process_per_method():
    from frugalml.maskedmm.bench import contenders, processes

    records = processes.subprocess_records(n=64, sparsities=(0.9,), threads=2, rounds=1, reps=1)
    assert [r.metric for r in records] == [
        "time (masked, B prepared)",
        "time (masked, B packed per call)",
        "time (auto)",
    ]
    assert all(r.peer == contenders.NUMPY and r.ours > 0 and r.peer_value > 0 for r in records)
    assert all("OMP_WAIT_POLICY=passive" in r.notes and "threads=2" in r.notes for r in records)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["maskedmm", "bench", "--pattern", "stripes"], "unknown pattern"),
        (["maskedmm", "bench", "--sparsity", "1.5"], "between 0 and 1"),
        (["maskedmm", "bench", "--threads", "0"], "positive"),
        (["maskedmm", "bench", "--peers", "bogus"], "unknown peer 'bogus'"),
        (["maskedmm", "bench", "--peers", "scipy,torch,bogus"], "unknown peer 'bogus'"),
        (["maskedmm", "bench", "--n", "1000000"], "GiB is available; use --n"),
        (["maskedmm", "bench", "--rounds", "100000000"], "more than 1000"),
        (["maskedmm", "calibrate", "--size", "1000000"], "GiB is available; use --size"),
        (["maskedmm", "verify", "--trials", "0"], "between 1 and 10000"),
        (["maskedmm", "verify", "--trials", "100000000"], "between 1 and 10000"),
        (["maskedmm", "verify", "--isa", "sse9"], "unknown variant"),
    ],
)
def test_bad_cli_input_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_memory_bound_is_checked_before_any_allocation(monkeypatch):
    from frugalml.common.errors import InvalidInputError
    from frugalml.maskedmm import patterns
    from frugalml.maskedmm.bench import sweep

    def never(*args, **kwargs):
        raise AssertionError("operands were built before the memory check")

    monkeypatch.setattr(patterns, "operands", never)
    with pytest.raises(InvalidInputError, match="use --n 1024 or less"):
        sweep.check_memory(2048, available=int(sweep.BYTES_PER_ENTRY * 1024**2 / sweep.MEMORY_SHARE) + 1)
    assert sweep.check_memory(1024, available=None) == sweep.BYTES_PER_ENTRY * 1024**2
    monkeypatch.setattr(sweep.env, "available_memory", lambda: 10 * 2**20)
    with pytest.raises(SystemExit) as exit_info:
        main(["maskedmm", "bench", "--n", "1024", "--quiet"])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_demo_summarises_in_one_line():
    from frugalml.maskedmm import demo

    line = demo.run(quiet=True)
    assert "\n" not in line and "speedup vs numpy" in line


def _sparse_pair(gen, shape, sparsity, dtype):
    m, k, n = shape
    A, B = gen.standard_normal((m, k)).astype(dtype), gen.standard_normal((k, n)).astype(dtype)
    A[gen.random(A.shape) < sparsity] = 0
    B[gen.random(B.shape) < sparsity] = 0
    return A, B


@pytest.mark.parametrize("costs", ["default", "edited"])
def test_auto_dense_in_c_decides_as_the_planner(fresh_cache, monkeypatch, costs):
    from frugalml.maskedmm import backend, core

    if not backend.has_extension():
        pytest.skip("the C extension is not built")
    if costs == "edited":  # cached parameters must follow the calibration
        cal = planner.calibration()
        monkeypatch.setattr(cal, "dense_per_mac", cal.dense_per_mac * 0.3)
        monkeypatch.setattr(cal, "model_error", 0.4)
        monkeypatch.setitem(cal.per_call, 2, cal.per_call[2] * 0.2)
        monkeypatch.setattr(cal, "call_overhead", 1e-6)
    gen = np.random.default_rng(3)
    isa, seen = backend.choose_isa(), set()
    # large shapes are sampled, small ones counted exactly; densities straddle the break-even
    for shape in ((300, 200, 260), (70, 90, 50), (9, 700, 31)):
        for sparsity in np.linspace(0.0, 0.99, 23):
            for dtype in (np.float32, np.float64):
                A, B = _sparse_pair(gen, shape, sparsity, dtype)
                prepared = core.prepare_b(B)
                for threads in (1, 2):
                    code = core.DTYPE_CODES[np.dtype(dtype)]
                    for operand, b_density in ((B, 0.0), (None, prepared.density)):
                        params = planner.auto_params(shape, code, isa, operand is None, threads, False)
                        dense = backend.extension.auto_dense(A, operand, 0.0, b_density, params)
                        expected = core.plan(A, B if operand is not None else prepared, threads=threads)
                        assert dense == (expected.method == "dense"), (shape, sparsity, dtype, threads)
                        seen.add(dense)
    assert seen == {True, False}


def test_reproduce_writes_one_file_per_claim_and_merges_the_shared_one(tmp_path, monkeypatch):
    import functools

    from frugalml.maskedmm.bench import auto_sweep, reproduce, sweep

    small = sweep.BenchConfig(n=64, sparsities=(0.9,), patterns=("random",), threads=(1,), rounds=1, peers=())
    monkeypatch.setattr(reproduce, "UNIFORM", small)
    monkeypatch.setattr(reproduce, "STRUCTURED", small)
    for name in ("auto_records", "kernel_records"):
        small_run = functools.partial(getattr(auto_sweep, name), n=64, sparsities=(0.9,), rounds=1)
        monkeypatch.setattr(reproduce, name, small_run)
    monkeypatch.setattr(reproduce, "subprocess_records", lambda threads: [])
    monkeypatch.setattr(reproduce, "coretype_records", lambda: [])
    earlier = auto_sweep.auto_records(n=64, sparsities=(0.5,), rounds=1)
    reproduce.publish(earlier, tmp_path / "auto-sweep.json", "earlier")
    claims = reproduce.run_all(tmp_path)
    written = {p.name for p in tmp_path.iterdir()}
    assert {f"{claim}.json" for claim in claims} | {"sweep.png"} <= written
    assert len(read_json(tmp_path / "auto-sweep.json")) == len(earlier) + len(claims["auto-sweep"])
    assert len(read_json(tmp_path / "sweep.json")) == len(claims["sweep"])
