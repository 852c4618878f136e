"""Splits, metrics and graph checks, and every method run once on the planted corpus."""

import numpy as np
import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.prereq.evaluate import (
    concept_disjoint_splits,
    evaluate,
    graph_checks,
    leak_free_splits,
    pair_metrics,
    precision_at,
)
from frugalml.prereq.methods import Context, Scorer


def test_concept_disjoint_splits_share_no_concept(planted):
    for train, test in concept_disjoint_splits(planted.dataset.pairs, 3, seed=1):
        assert len(test) > 0 and len(train) > 0
        assert not (set(train.a) | set(train.b)) & (set(test.a) | set(test.b))


def test_leak_free_splits_drop_transitive_answers(planted):
    for train, test in leak_free_splits(planted.dataset.pairs, 3, seed=0):
        import networkx as nx

        g = nx.DiGraph((a, b) for a, b, y in zip(train.a, train.b, train.y, strict=True) if y)
        for a, b in test.keys():
            assert not (a in g and b in nx.descendants(g, a))
            assert not (b in g and a in nx.descendants(g, b))


def test_metrics_on_known_scores():
    y = np.array([1, 0, 1, 0])
    m = pair_metrics(y, np.array([0.9, 0.8, 0.7, 0.1]), threshold=0.75)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["auc"] == pytest.approx(0.75)
    assert precision_at(y, np.array([0.9, 0.8, 0.7, 0.1]), 2) == 0.5
    assert np.isnan(precision_at(y, np.zeros(4), 50))
    with pytest.raises(InvalidInputError, match="NaN"):
        pair_metrics(y, np.array([np.nan, 0, 0, 0]), 0.5)


def test_graph_checks_flag_symmetric_and_cyclic_predictions():
    symmetric = Scorer(lambda a, b: np.ones(len(a)), 0.5)
    checks = graph_checks(symmetric, ["x", "y"], ["y", "z"])
    assert checks["antisymmetry_violations"] == 1.0 and checks["cyclic_groups"] == 1
    order = {"x": 3, "y": 2, "z": 1}
    directed = Scorer(lambda a, b: np.array([order[p] - order[q] for p, q in zip(a, b, strict=True)]), 0.5)
    checks = graph_checks(directed, ["x", "y"], ["y", "z"])
    assert checks["antisymmetry_violations"] == 0.0 and checks["cyclic_groups"] == 0


def test_every_method_runs_and_the_planted_structure_is_found(planted, fitted):
    context = Context(
        planted.dataset.corpus,
        n_topics=6,
        siamese_params={"steps": 200, "hidden": 64},
        _cache={"plda": fitted},
    )
    results = evaluate(
        planted.dataset,
        ["plda", "rf", "refd", "cpr", "allpos", "prereq"],
        "random",
        context=context,
        n_splits=2,
        head="diff",
    )
    assert results["allpos"]["mean"]["auc"] == 0.5
    assert results["allpos"]["mean"]["antisymmetry_violations"] == 1.0
    for method in ("plda", "rf", "refd"):
        assert results[method]["mean"]["auc"] > 0.8, method
        assert results[method]["mean"]["f1"] > results["allpos"]["mean"]["f1"], method
    assert results["plda"]["mean"]["antisymmetry_violations"] < 0.1
    assert len(results["prereq"]["folds"]) == 2


def test_identity_baseline_memorises_concepts_and_fails_on_disjoint_splits(planted):
    random = evaluate(planted.dataset, ["identity"], "random", n_splits=2)
    disjoint = evaluate(planted.dataset, ["identity"], "disjoint", n_splits=2)
    assert random["identity"]["mean"]["auc"] > 0.55  # concepts recur across random folds
    assert disjoint["identity"]["mean"]["auc"] == pytest.approx(0.5)


@pytest.mark.peers
def test_gensim_lda_baseline_runs(planted):
    pytest.importorskip("gensim")
    context = Context(planted.dataset.corpus, n_topics=6, siamese_params={"steps": 50})
    results = evaluate(planted.dataset, ["lda"], "random", context=context, n_splits=2)
    assert 0 <= results["lda"]["mean"]["auc"] <= 1


def test_unknown_method_and_split(planted):
    with pytest.raises(InvalidInputError, match="method"):
        evaluate(planted.dataset, ["magic"], "random")
    with pytest.raises(InvalidInputError, match="split"):
        evaluate(planted.dataset, ["allpos"], "by-date")


def test_precision_at_k_with_ties_is_the_expected_share():
    y = np.array([1] * 60 + [0] * 40)
    assert precision_at(y, np.ones(100), 50) == pytest.approx(0.6)
    assert precision_at(y, np.arange(100.0)[::-1], 50) == 1.0
