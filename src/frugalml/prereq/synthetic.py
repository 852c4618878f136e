"""A synthetic corpus with a planted prerequisite structure, for tests and the demo.

Topics form a chain ``0 <- 1 <- 2 ...``: a document about topic ``t + 1`` links to documents about
topic ``t`` (its prerequisites), never the other way. Each topic owns a block of concept words, so
concept ``c`` of topic ``t + 1`` requires every concept of topic ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.seeding import rng as make_rng
from frugalml.prereq.data import Corpus, Dataset, PairSet


@dataclass
class PlantedCorpus:
    """Documents, links, labelled concept pairs and the truth they were generated from."""

    dataset: Dataset
    doc_topic: np.ndarray
    eta: np.ndarray


def planted_corpus(
    n_topics: int = 6,
    words_per_topic: int = 12,
    n_docs: int = 180,
    doc_length: int = 60,
    links_per_doc: int = 3,
    purity: float = 0.85,
    seed: int = 0,
) -> PlantedCorpus:
    """Generate a corpus whose links and concept pairs follow a chain of topics.

    Parameters
    ----------
    purity : float
        Share of a document's words drawn from its own topic (the rest are uniform noise).
    """
    if n_topics < 2 or words_per_topic < 2 or n_docs < n_topics or not 0 < purity <= 1:
        raise InvalidInputError(
            "need n_topics >= 2, words_per_topic >= 2, n_docs >= n_topics, 0 < purity <= 1"
        )
    gen = make_rng(seed)
    n_words = n_topics * words_per_topic
    doc_topic = np.arange(n_docs) % n_topics
    counts = np.zeros((n_docs, n_words))
    for d, t in enumerate(doc_topic):
        own = gen.integers(t * words_per_topic, (t + 1) * words_per_topic, size=int(doc_length * purity))
        noise = gen.integers(0, n_words, size=doc_length - len(own))
        np.add.at(counts[d], np.concatenate([own, noise]), 1)
    links = []
    for d, t in enumerate(doc_topic):
        if t == 0:
            continue
        candidates = np.flatnonzero(doc_topic == t - 1)
        links += [(d, int(p)) for p in gen.choice(candidates, links_per_doc, replace=False)]
    vocab = [f"concept {t}.{i}" for t in range(n_topics) for i in range(words_per_topic)]
    corpus = Corpus(
        counts,
        vocab,
        np.asarray(links),
        {v: i for i, v in enumerate(vocab)},
        meta={"dataset": "synthetic", "licence": "generated", "citation": ""},
    )
    pairs = _concept_pairs(vocab, n_topics, words_per_topic, gen)
    order = gen.permutation(len(pairs))
    folds = []
    for k in range(5):
        test = order[k::5]
        train = np.setdiff1d(order, test)
        folds.append((pairs.subset(train), pairs.subset(test)))
    eta = np.zeros((n_topics, n_topics))
    eta[np.arange(1, n_topics), np.arange(n_topics - 1)] = 1.0
    dataset = Dataset("synthetic", corpus, pairs, folds, meta=dict(corpus.meta))
    return PlantedCorpus(dataset, doc_topic, eta)


def _concept_pairs(vocab, n_topics, words_per_topic, gen) -> PairSet:
    """Positives: (concept of topic t+1, concept of topic t); negatives: reversed and random."""
    a, b, y = [], [], []
    for t in range(1, n_topics):
        for _ in range(3 * words_per_topic):
            i = t * words_per_topic + gen.integers(words_per_topic)
            j = (t - 1) * words_per_topic + gen.integers(words_per_topic)
            a += [vocab[i], vocab[j]]
            b += [vocab[j], vocab[i]]
            y += [1, 0]
    n_random = len(y) // 2
    for _ in range(n_random):
        ti, tj = gen.integers(n_topics, size=2)
        if ti - tj in (0, 1):
            continue
        a.append(vocab[ti * words_per_topic + gen.integers(words_per_topic)])
        b.append(vocab[tj * words_per_topic + gen.integers(words_per_topic)])
        y.append(0)
    keys: dict[tuple[str, str], int] = {}
    for i, k in enumerate(zip(a, b, strict=True)):
        keys.setdefault(k, i)
    keep = np.asarray(sorted(keys.values()))
    return PairSet(a, b, np.asarray(y)).subset(keep)
