"""Pairwise-Link-LDA: monotone ELBO, link direction recovered, pair sampling, fold-in, bad input."""

import numpy as np
import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.prereq.plda import PairwiseLinkLDA, sample_pairs


def test_elbo_never_decreases(fitted):
    elbo = np.asarray(fitted.elbo_)
    assert len(elbo) >= 3
    assert np.all(np.diff(elbo) >= -1e-9 * np.abs(elbo[:-1]))
    assert elbo[-1] > elbo[0]


def test_sampled_pairs_also_give_monotone_elbo(planted):
    corpus = planted.dataset.corpus
    model = PairwiseLinkLDA(6, alpha=0.1, n_unlinked_per_doc=5, max_em_iter=15, seed=3).fit(
        corpus.counts, corpus.links
    )
    elbo = np.asarray(model.elbo_)
    assert np.all(np.diff(elbo) >= -1e-9 * np.abs(elbo[:-1]))


def test_link_direction_is_recovered(fitted, planted):
    theta = fitted.gamma_ / fitted.gamma_.sum(1, keepdims=True)
    links = planted.dataset.corpus.links
    forward = np.einsum("nk,kl,nl->n", theta[links[:, 0]], fitted.eta_, theta[links[:, 1]])
    backward = np.einsum("nk,kl,nl->n", theta[links[:, 1]], fitted.eta_, theta[links[:, 0]])
    assert np.mean(forward > backward) > 0.8
    assert forward.mean() > 3 * backward.mean()


def test_eta_is_asymmetric_and_a_probability(fitted):
    assert np.all((fitted.eta_ > 0) & (fitted.eta_ < 1))
    assert np.abs(fitted.eta_ - fitted.eta_.T).max() > 0.05


def test_fold_in_reproduces_training_topic_proportions(fitted, planted):
    corpus = planted.dataset.corpus
    docs = [5, 17, 40]
    links_to = [corpus.links[corpus.links[:, 0] == d, 1] for d in docs]
    linked_from = [corpus.links[corpus.links[:, 1] == d, 0] for d in docs]
    theta = fitted.transform(corpus.counts[docs], links_to=links_to, linked_from=linked_from, same_as=docs)
    expected = fitted.gamma_[docs] / fitted.gamma_[docs].sum(1, keepdims=True)
    np.testing.assert_allclose(theta, expected, atol=1e-3)


def test_sample_pairs_memory_is_links_plus_r_docs():
    links = np.array([[1, 0], [2, 1], [3, 2]])
    pairs = sample_pairs(links, 200, 4, None, seed=0)
    assert len(pairs.src) == 3 + 4 * 200
    codes = pairs.src * 200 + pairs.dst
    assert len(np.unique(codes)) == len(codes)
    assert np.all(pairs.src != pairs.dst)
    unlinked = ~pairs.linked
    assert not np.isin(codes[unlinked], links[:, 0] * 200 + links[:, 1]).any()
    assert pairs.weight[unlinked][0] == pytest.approx((200 * 199 - 3) / 800)


def test_same_seed_same_model(planted):
    corpus = planted.dataset.corpus
    fit = [PairwiseLinkLDA(4, max_em_iter=3, seed=7).fit(corpus.counts, corpus.links) for _ in range(2)]
    np.testing.assert_array_equal(fit[0].log_beta_, fit[1].log_beta_)


@pytest.mark.parametrize(
    "kwargs", [{"n_topics": 0}, {"alpha": -1.0}, {"max_em_iter": 0}, {"n_unlinked_per_doc": -2}]
)
def test_bad_settings_are_refused(kwargs, planted):
    corpus = planted.dataset.corpus
    params = {"n_topics": 3, **kwargs}
    with pytest.raises(InvalidInputError):
        PairwiseLinkLDA(**params).fit(corpus.counts, corpus.links)


def test_bad_inputs_are_refused(planted, fitted):
    corpus = planted.dataset.corpus
    with pytest.raises(InvalidInputError, match="outside"):
        PairwiseLinkLDA(3).fit(corpus.counts, [[0, 10_000]])
    with pytest.raises(InvalidInputError, match="NaN"):
        PairwiseLinkLDA(3).fit(np.full((3, 4), np.nan), [])
    with pytest.raises(InvalidInputError, match="non-negative"):
        PairwiseLinkLDA(3).fit(-np.ones((3, 4)), [])
    with pytest.raises(InvalidInputError, match="words"):
        fitted.transform(np.ones((1, 3)))
    with pytest.raises(InvalidInputError, match="not fitted"):
        PairwiseLinkLDA(3).transform(np.ones((1, 3)))


def test_target_end_uses_eta_transposed():
    """A link from source topic 0 to target topic 1: the target end must move to topic 1
    (the original C code used eta untransposed there and would stay uniform)."""
    from frugalml.prereq.plda import _Pairs, _update_pair_ends

    eta = np.array([[0.01, 0.9], [0.01, 0.01]])
    pairs = _Pairs(np.array([0]), np.array([1]), np.array([True]), np.array([1.0]))
    elog = np.log(np.array([[0.999, 0.001], [0.5, 0.5]]))
    src, dst = _update_pair_ends(
        elog, np.full((1, 2), 0.5), np.full((1, 2), 0.5), pairs, np.log(eta), np.log1p(-eta)
    )
    assert src[0, 0] > 0.99
    assert dst[0, 1] > 0.95


def test_save_load_round_trip_and_corruption(fitted, planted, tmp_path):
    from frugalml.common.errors import CorruptFileError

    fitted.save(tmp_path / "m.plda")
    back = PairwiseLinkLDA.load(tmp_path / "m.plda")
    np.testing.assert_array_equal(back.eta_, fitted.eta_)
    counts = planted.dataset.corpus.counts[:2]
    np.testing.assert_allclose(back.transform(counts), fitted.transform(counts))
    raw = (tmp_path / "m.plda").read_bytes()
    (tmp_path / "cut.plda").write_bytes(raw[:-100])
    with pytest.raises(CorruptFileError):
        PairwiseLinkLDA.load(tmp_path / "cut.plda")


def test_fold_in_in_chunks_matches_one_by_one(fitted, planted):
    counts = planted.dataset.corpus.counts[:12]
    together = fitted.transform(counts)
    alone = np.vstack([fitted.transform(counts[i : i + 1]) for i in range(12)])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_fused_float32_word_kernel_matches_the_sparse_float64_formula(planted):
    from frugalml.prereq.plda import _as_counts, _ratio, _word_part

    X = _as_counts(planted.dataset.corpus.counts)
    gen = np.random.default_rng(0)
    exp_elog = gen.random((X.shape[0], 5))
    beta_t = gen.random((X.shape[1], 5))
    expected = exp_elog * (_ratio(X, exp_elog, beta_t) @ beta_t)
    got = _word_part(X, exp_elog.astype(np.float32), beta_t.astype(np.float32))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-5)
