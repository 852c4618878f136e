"""Engines behind ask/tell, the search loop and the strategies, on a closed-form proxy."""

import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.composer import ENGINES, Evaluator, Space, make_engine, search
from frugalml.composer.strategies import run_engine

from .conftest import FormulaProxy

FAST = ["bo", "bo-hamming", "bo-mixed", "random", "evolution", "exhaustive"]


def _score(archs):
    return {a: FormulaProxy().evaluate(a, 0)["score"] for a in archs}


@pytest.mark.parametrize("engine", FAST)
def test_engines_propose_distinct_members_of_the_space(engine):
    result = search(_score, "AM", 5, engine=engine, budget=12, seed=1)
    archs = [a for a, _ in result.history]
    assert len(archs) == len(set(archs)) == 12
    assert all(len(a) == 5 and set(a) <= {"A", "M"} for a in archs)


@pytest.mark.parametrize("acquisition", ["log-ei", "ucb", "thompson"])
def test_bo_acquisitions_find_the_best_of_a_small_space(acquisition):
    best = max(_score(Space("AM", 5).enumerate()).items(), key=lambda kv: kv[1])
    result = search(_score, "AM", 5, engine="bo", budget=20, seed=0, acquisition=acquisition)
    assert result.best == best


@pytest.mark.parametrize("engine", ["random", "evolution", "exhaustive", "bo"])
def test_engines_cover_a_small_space_and_stop(engine):
    result = search(_score, "AM", 3, engine=engine, budget=50)
    assert len(result.history) == 8 and result.stopped == "exhausted"
    assert result.best == max(_score(Space("AM", 3).enumerate()).items(), key=lambda kv: kv[1])


def test_run_engine_stops_at_a_target():
    space = Space("AM", 3)
    full = run_engine(make_engine("exhaustive", space), _score, 8)
    target = full.history[4][0]
    result = run_engine(make_engine("exhaustive", space), _score, 8, stop_when=lambda a, s: a == target)
    assert result.stopped == "target" and result.history == full.history[:5]


@pytest.mark.peers
def test_optuna_tpe_peer():
    pytest.importorskip("optuna")
    result = search(_score, "AM", 4, engine="tpe", budget=10, seed=0)
    assert len({a for a, _ in result.history}) == 10


@pytest.mark.peers
@pytest.mark.slow
def test_botorch_backend():
    pytest.importorskip("botorch")
    result = search(_score, "AM", 4, engine="botorch", budget=7, seed=0)
    assert len({a for a, _ in result.history}) == 7


@pytest.mark.peers
def test_botorch_fits_on_its_own_thread_count_and_restores_torchs():
    pytest.importorskip("botorch")
    import torch

    with pytest.raises(InvalidInputError, match="threads"):
        make_engine("botorch", Space("AM", 3), 0, threads=0)
    before = torch.get_num_threads()
    engine = make_engine("botorch", Space("AM", 3), 0, initial=2, threads=1)
    result = run_engine(engine, _score, 4)
    assert len({a for a, _ in result.history}) == 4
    assert torch.get_num_threads() == before


def test_batches_are_distinct():
    engine = make_engine("bo", Space("AMS", 3), 0, initial=2)
    result = run_engine(engine, _score, 9, batch=3)
    assert len({a for a, _ in result.history}) == 9


@pytest.mark.parametrize("strategy", ["end-incremental", "middle-incremental"])
def test_incremental_strategies_grow_the_best(strategy):
    result = search(_score, "AM", 6, strategy=strategy, step=2, engine="exhaustive", budget=12)
    lengths = [len(a) for a, _ in result.history]
    assert lengths == [2] * 4 + [4] * 4 + [6] * 4
    best2 = max((h for h in result.history if len(h[0]) == 2), key=lambda h: h[1])[0]
    best4 = max((h for h in result.history if len(h[0]) == 4), key=lambda h: h[1])[0]
    fours = [a for a, _ in result.history if len(a) == 4]
    if strategy == "end-incremental":
        assert all(a.startswith(best2) for a in fours)
    else:
        assert all(a[0] + a[3] == best2 for a in fours)
    sixes = [a for a, _ in result.history if len(a) == 6]
    if strategy == "end-incremental":
        assert all(a.startswith(best4) for a in sixes)
    else:
        assert all(a[:2] + a[4:] == best4 for a in sixes)
    assert len(result.best[0]) == 6


def test_bad_search_requests():
    with pytest.raises(InvalidInputError, match="budget"):
        search(_score, "AM", 4, budget=0)
    with pytest.raises(InvalidInputError, match="engine"):
        search(_score, "AM", 4, engine="grid")
    with pytest.raises(InvalidInputError, match="strategy"):
        search(_score, "AM", 4, strategy="two-shot")
    with pytest.raises(InvalidInputError, match="unknown primitive"):
        search(_score, "AX", 4)
    with pytest.raises(InvalidInputError, match="kernel"):
        make_engine("bo", Space("AM", 2), kernel="rbf")
    with pytest.raises(InvalidInputError, match="acquisition"):
        make_engine("bo", Space("AM", 2), acquisition="pi")
    assert set(FAST) < set(ENGINES)


def test_search_resumes_from_the_cache_without_reevaluating(tmp_path):
    from frugalml.composer import ResultCache

    db = tmp_path / "cache.sqlite"
    crashing = FormulaProxy(crash_after=5)
    with pytest.raises(KeyboardInterrupt):
        search(Evaluator(crashing, ResultCache(db)).scores, "AM", 5, engine="bo", budget=10, seed=3)
    assert len(ResultCache(db)) == 5
    resumed = FormulaProxy()
    evaluator = Evaluator(resumed, ResultCache(db))
    result = search(evaluator.scores, "AM", 5, engine="bo", budget=10, seed=3)
    assert resumed.calls == 5 and evaluator.cached == 5 and evaluator.fresh == 5
    uninterrupted = search(Evaluator(FormulaProxy()).scores, "AM", 5, engine="bo", budget=10, seed=3)
    assert result.history == uninterrupted.history
