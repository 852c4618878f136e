"""The variant for unseen concepts: topic features, the inner choice of features, and the report
over several seeds with 95% intervals."""

import numpy as np
import pytest

from frugalml.prereq.evaluate import interval, over_seeds
from frugalml.prereq.methods import FEATURE_SETS, Context, fit_method, inner_choice, topic_features


@pytest.fixture(autouse=True)
def _small_forests(monkeypatch):
    from frugalml.prereq import methods

    monkeypatch.setattr(methods, "FOREST_TREES", 20)
    monkeypatch.setattr(methods, "INNER_TREES", 10)


@pytest.fixture(scope="module")
def context(planted, fitted):
    ctx = Context(planted.dataset.corpus, n_topics=6)
    ctx._cache["plda"] = fitted
    return ctx


def test_topic_features_are_finite_and_directional(context, planted):
    pairs = planted.dataset.pairs
    forward = topic_features(context, pairs.a, pairs.b)
    backward = topic_features(context, pairs.b, pairs.a)
    assert forward.shape == (len(pairs), 16) and np.isfinite(forward).all()
    np.testing.assert_allclose(forward[:, 2], -backward[:, 2])  # eta score A->B minus B->A flips


def test_inner_choice_uses_training_pairs_only_and_hybrid_scores_pairs(context, planted):
    pairs = planted.dataset.pairs
    parts, aucs = inner_choice(context, pairs)
    assert parts in FEATURE_SETS and set(aucs) == {"topics", "links", "topics+links"}
    scorer = fit_method("prereq-hybrid", context, pairs)
    scores = scorer.score(pairs.a, pairs.b)
    assert scores.shape == (len(pairs),) and ((scores >= 0) & (scores <= 1)).all()
    for ablation in ("prereq-topics", "prereq-links"):
        assert fit_method(ablation, context, pairs).score(pairs.a[:3], pairs.b[:3]).shape == (3,)


def test_over_seeds_gives_an_interval_over_all_folds(context, planted):
    results = over_seeds(planted.dataset, ["prereq-links", "allpos"], "random", [0, 1], context=context)
    entry = results["prereq-links"]
    assert len(entry["folds"]) == 10 and {f["seed"] for f in entry["folds"]} == {0, 1}
    ci = entry["ci95"]["auc"]
    assert ci["low"] <= ci["mean"] <= ci["high"] and ci["n"] == 10
    assert results["allpos"]["ci95"]["auc"]["mean"] == pytest.approx(0.5)
    assert interval([0.5])["low"] == 0.5 and interval([])["n"] == 0
