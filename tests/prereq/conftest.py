"""Fixtures of the prereq tests: modest torch threads and a small planted corpus fitted once."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _modest_threads():
    from frugalml.common.threads import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def planted():
    from frugalml.prereq.synthetic import planted_corpus

    return planted_corpus(n_docs=60, seed=1)


@pytest.fixture(scope="session")
def fitted(planted):
    """A Pairwise-Link-LDA on the planted corpus with every document pair (no sampling)."""
    from frugalml.prereq.plda import PairwiseLinkLDA

    corpus = planted.dataset.corpus
    return PairwiseLinkLDA(6, alpha=0.1, n_unlinked_per_doc=1000, max_em_iter=40, seed=0).fit(
        corpus.counts, corpus.links
    )
