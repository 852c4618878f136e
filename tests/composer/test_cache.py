"""The SQLite result cache and the executors: keys, corrupt files, dead workers, Ray."""

import os

import pytest

from frugalml.common.errors import CorruptFileError, InvalidInputError, ServiceUnavailableError
from frugalml.composer import Evaluator, LocalExecutor, ResultCache
from frugalml.composer.cache import config_key

from .conftest import FormulaProxy


def test_put_get_and_keys(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    cache.put("AM", "mad", {"steps": 1}, 0, 0.5, {"per_task": {"recall": 0.5}}, 1.0)
    assert cache.get("AM", "mad", config_key("mad", {"steps": 1}), 0).score == 0.5
    assert cache.get("AM", "mad", config_key("mad", {"steps": 2}), 0) is None
    assert cache.get("AM", "mad", config_key("mad", {"steps": 1}), 1) is None
    assert cache.get("MA", "mad", config_key("mad", {"steps": 1}), 0) is None
    cache.close()
    again = ResultCache(tmp_path / "c.sqlite")
    assert len(again) == 1 and again.all()[0].metrics == {"per_task": {"recall": 0.5}}
    with pytest.raises(InvalidInputError, match="NaN"):
        again.put("AM", "mad", {}, 0, float("nan"), {}, 1.0)


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\x07" * 200])
def test_corrupt_cache_file(tmp_path, content):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match="not a readable result cache"):
        ResultCache(path)
    assert path.read_bytes() == content


def test_evaluator_averages_seeds_and_caches():
    proxy = FormulaProxy()
    evaluator = Evaluator(proxy, seeds=(0, 1))
    first = evaluator.scores(["AAM", "MMM"])
    assert first["AAM"] == pytest.approx(FormulaProxy().evaluate("AAM", 0)["score"] + 0.005)
    evaluator.scores(["AAM", "MMM", "AAM"])
    assert proxy.calls == 4 and evaluator.cached == 4
    with pytest.raises(InvalidInputError):
        evaluator.scores(["AXM"])


class _DyingProxy(FormulaProxy):
    def evaluate(self, arch, seed):
        if arch == "MMM":
            os._exit(3)
        return super().evaluate(arch, seed)


def test_local_process_pool_and_dead_worker(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    pool = LocalExecutor(workers=1)
    try:
        assert Evaluator(FormulaProxy(), cache, pool).scores(["AAM", "AMA"])["AAM"] > 0
        with pytest.raises(ServiceUnavailableError, match="resume"):
            Evaluator(_DyingProxy(), cache, pool).scores(["MMM"])
    finally:
        pool.close()
    assert len(cache) == 2
    with pytest.raises(InvalidInputError):
        LocalExecutor(workers=0)


@pytest.mark.slow
def test_ray_executor_runs_jobs():
    pytest.importorskip("ray")
    from frugalml.composer import RayExecutor

    ray_ex = RayExecutor(num_cpus=1)
    try:
        scores = Evaluator(FormulaProxy(), executor=ray_ex).scores(["AAM", "MMA"])
    finally:
        ray_ex.close()
    assert scores == {a: FormulaProxy().evaluate(a, 0)["score"] for a in ("AAM", "MMA")}
