"""The siamese network: heads, direction awareness, thresholds, bad input."""

import numpy as np
import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.prereq.siamese import SiameseClassifier, best_f1_threshold


def _directed_pairs(n=300, k=8, seed=0):
    """y = 1 when a's first feature exceeds b's: learnable only with direction."""
    gen = np.random.default_rng(seed)
    xa, xb = gen.random((n, k)), gen.random((n, k))
    return xa, xb, (xa[:, 0] > xb[:, 0]).astype(int)


def test_abs_head_is_symmetric():
    xa, xb, y = _directed_pairs()
    clf = SiameseClassifier("abs", steps=30, hidden=16).fit(xa, xb, y)
    np.testing.assert_allclose(clf.predict_proba(xa, xb), clf.predict_proba(xb, xa), atol=1e-6)


@pytest.mark.parametrize("head", ["diff", "concat", "rich", "bilinear"])
def test_direction_aware_heads_learn_direction(head):
    xa, xb, y = _directed_pairs()
    clf = SiameseClassifier(head, steps=400, hidden=32, lr=3e-3).fit(xa, xb, y)
    forward, backward = clf.predict_proba(xa, xb), clf.predict_proba(xb, xa)
    assert not np.allclose(forward, backward, atol=1e-3)
    assert np.mean(clf.predict(xa, xb) == y) > 0.8
    assert 0 <= clf.threshold_ <= 1


def test_threshold_maximises_training_f1():
    y = np.array([0, 0, 1, 1, 1])
    assert best_f1_threshold(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9])) == pytest.approx(0.3)


def test_bad_input():
    xa, xb, y = _directed_pairs(20)
    with pytest.raises(InvalidInputError, match="head"):
        SiameseClassifier("cosine").fit(xa, xb, y)
    with pytest.raises(InvalidInputError, match="same shape"):
        SiameseClassifier(steps=1).fit(xa, xb[:, :3], y)
    with pytest.raises(InvalidInputError, match="both labels"):
        SiameseClassifier(steps=1).fit(xa, xb, np.ones(20, int))
    with pytest.raises(InvalidInputError, match="not fitted"):
        SiameseClassifier().predict_proba(xa, xb)
    clf = SiameseClassifier(steps=2, hidden=4).fit(xa, xb, y)
    with pytest.raises(InvalidInputError, match="features"):
        clf.predict_proba(xa[:, :3], xb[:, :3])


def test_log_inputs_and_validation_threshold():
    xa, xb, y = _directed_pairs()
    clf = SiameseClassifier("concat", steps=300, hidden=32, lr=3e-3, inputs="log", val_fraction=0.25).fit(
        xa, xb, y
    )
    assert np.mean(clf.predict(xa, xb) == y) > 0.75
    logs = np.log(np.concatenate([xa, xb]) + 1e-12)
    assert np.all(np.abs(clf.shift_ - logs.mean(0)) < 0.5)  # standardised on the training vectors
    again = SiameseClassifier.from_state(clf.get_params(), clf.state())
    np.testing.assert_allclose(again.predict_proba(xa, xb), clf.predict_proba(xa, xb), atol=1e-6)


def test_bad_inputs_and_val_fraction():
    xa, xb, y = _directed_pairs(20)
    with pytest.raises(InvalidInputError, match="inputs"):
        SiameseClassifier(inputs="sqrt").fit(xa, xb, y)
    with pytest.raises(InvalidInputError, match="val_fraction"):
        SiameseClassifier(val_fraction=1.0).fit(xa, xb, y)
    with pytest.raises(InvalidInputError, match="val_fraction"):
        SiameseClassifier(val_fraction=0.01, steps=1).fit(xa, xb, y)


def test_rich_head_shape_direction_and_round_trip():
    xa, xb, y = _directed_pairs(120)
    clf = SiameseClassifier("rich", steps=60, hidden=8, lr=3e-3).fit(xa, xb, y)
    assert clf.networks_[0].head.in_features == 4 * 8  # [G(a), G(b), G(a) - G(b), G(a) * G(b)]
    forward = clf.predict_proba(xa, xb)
    assert forward.shape == (120,) and np.all((forward >= 0) & (forward <= 1))
    assert np.abs(forward - clf.predict_proba(xb, xa)).max() > 1e-3
    again = SiameseClassifier.from_state(clf.get_params(), clf.state())
    assert again.head == "rich"
    np.testing.assert_allclose(again.predict_proba(xa, xb), forward, atol=1e-6)


def test_ensemble_averages_members_and_round_trips():
    xa, xb, y = _directed_pairs(200)
    params = dict(head="rich", steps=150, hidden=8, lr=5e-3, dropout=0.3, val_fraction=0.25)
    ensemble = SiameseClassifier(members=2, **params).fit(xa, xb, y)
    assert len(ensemble.networks_) == 2
    singles = [SiameseClassifier(seed=m, **params).fit(xa, xb, y) for m in range(2)]
    mean = np.mean([s.predict_proba(xa, xb) for s in singles], axis=0)
    np.testing.assert_allclose(ensemble.predict_proba(xa, xb), mean, atol=1e-5)  # member m = seed m
    assert np.mean(ensemble.predict(xa, xb) == y) > 0.8
    again = SiameseClassifier.from_state(ensemble.get_params(), ensemble.state())
    np.testing.assert_allclose(again.predict_proba(xa, xb), ensemble.predict_proba(xa, xb), atol=1e-6)
    assert again.threshold_ == ensemble.threshold_


def test_single_network_state_of_earlier_files_loads():
    xa, xb, y = _directed_pairs(60)
    clf = SiameseClassifier("diff", steps=20, hidden=8).fit(xa, xb, y)
    legacy = {k.replace("net0.", "net.", 1): v for k, v in clf.state().items()}
    params = {k: v for k, v in clf.get_params().items() if k != "members"}
    again = SiameseClassifier.from_state(params, legacy)
    np.testing.assert_allclose(again.predict_proba(xa, xb), clf.predict_proba(xa, xb), atol=1e-6)


def test_members_must_be_positive():
    xa, xb, y = _directed_pairs(20)
    with pytest.raises(InvalidInputError, match="members"):
        SiameseClassifier(members=0).fit(xa, xb, y)
