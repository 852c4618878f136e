"""Our GP and log EI: stable tails, exact gradients, and a posterior that fits what it saw."""

import math

import numpy as np
import pytest
from scipy.optimize import check_grad
from scipy.stats import norm

from frugalml.composer.gp import StringGP, all_codes, log_ei, log_h, ngram_features, prefix_counts


def test_log_h_matches_the_direct_formula_and_stays_finite():
    z = np.linspace(-5, 5, 41)
    direct = np.log(norm.pdf(z) + z * norm.cdf(z))
    assert np.allclose(log_h(z), direct, rtol=1e-8)
    tail = log_h(np.array([-40.0, -1e3, -1e8]))
    assert np.all(np.isfinite(tail)) and np.all(np.diff(tail) < 0)


def test_log_ei_prefers_higher_mean_and_higher_std_below_best():
    assert log_ei(np.array([1.0]), np.array([1.0]), 0.0) > log_ei(np.array([0.0]), np.array([1.0]), 0.0)
    assert log_ei(np.array([-3.0]), np.array([2.0]), 0.0) > log_ei(np.array([-3.0]), np.array([1.0]), 0.0)


@pytest.mark.parametrize("kernel", ["hamming", "string", "mixed"])
def test_gradient_and_fit(kernel):
    x = all_codes(2, 5)
    y = x[:, 0] * 2.0 - x[:, 4] + 0.5 * x[:, 1] * x[:, 2]
    gp = StringGP(kernel, 2, seed=0)
    d = gp._distances(x[:16], x[:16])
    ys = (y[:16] - y[:16].mean()) / y[:16].std()
    p = np.random.default_rng(0).normal(0, 0.5, len(d) + 2)
    assert check_grad(lambda q: gp._neg_lml(q, d, ys)[0], lambda q: gp._neg_lml(q, d, ys)[1], p) < 1e-4
    gp.fit(x[:16], y[:16])
    mean, std = gp.predict(x[:16])
    assert np.corrcoef(mean, y[:16])[0, 1] > 0.9 and np.all(std >= 0)


def test_ngram_features_are_unit_norm_and_order_aware():
    f = ngram_features(np.array([[0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 0]]), 2)
    assert np.allclose(np.linalg.norm(f, axis=1), 1)
    assert not np.allclose(f[0], f[1]) and math.isclose(f[0] @ f[0], 1.0)


def test_mixed_kernel_sees_position_composition_and_order():
    x = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1]])
    d = StringGP("mixed", 2)._distances(x, x)
    assert d.shape == (4 + 3 + 1, 3, 3)  # positions, n = 1..3, prefix shares
    assert np.allclose(d, d.transpose(0, 2, 1)) and np.allclose(d[:, [0, 1, 2], [0, 1, 2]], 0)
    assert np.all(d >= 0) and np.all(d <= 1 + 1e-12)
    assert d[4, 0, 1] == 0 and d[4, 0, 2] == 0  # same composition
    assert d[7, 0, 1] > d[7, 0, 2] > 0  # "early vs late" separates 0011 from 1100 most
    assert np.allclose(prefix_counts(x[:1], 2), [[1, 0, 1, 0, 2 / 3, 1 / 3, 0.5, 0.5]])


def test_posterior_samples_follow_the_data():
    x = all_codes(2, 5)
    y = x.sum(1).astype(float)
    gp = StringGP("hamming", 2, seed=0).fit(x[::2], y[::2])
    gen = np.random.default_rng(0)
    draws = np.array([gp.sample(x, gen) for _ in range(200)])
    mean, std = gp.predict(x)
    assert draws.shape == (200, len(x)) and np.all(np.isfinite(draws))
    assert np.allclose(draws.mean(0), mean, atol=0.3 + 3 * std.max() / np.sqrt(200))
    assert np.corrcoef(draws.mean(0)[::2], y[::2])[0, 1] > 0.9  # where it saw data
