"""Every method that scores concept pairs, behind one interface: PREREQ and the baselines.

``fit_method(name, context, train_pairs)`` returns a :class:`Scorer` whose ``score(a, b)`` says how
strongly ``b`` is a prerequisite of ``a`` and whose ``threshold`` (chosen on the training pairs)
turns scores into predictions. A :class:`Context` holds what a data set's methods share (the
Pairwise-Link-LDA fit, a gensim LDA fit, document-concept incidence, the link graph), computed
once and reused across folds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from frugalml.common import validate
from frugalml.common.errors import InvalidInputError, PeerUnavailableError
from frugalml.prereq.data import Corpus, PairSet
from frugalml.prereq.plda import PairwiseLinkLDA
from frugalml.prereq.siamese import PAPER_SIAMESE, PREREQ_SIAMESE, SiameseClassifier, best_f1_threshold

# The ablations (other head, other topic model) train one network, not PREREQ's ensemble of 3, so
# that the whole reproduction stays within its 10-minute target.
ONE_NETWORK = {**PREREQ_SIAMESE, "members": 1}

METHODS = {
    "prereq": "Pairwise-Link-LDA concept vectors + siamese network (PREREQ: direction-aware rich "
    "head, dropout 0.7, 3-network ensemble; settings chosen by inner validation)",
    "prereq-paper": "PREREQ exactly as published: symmetric abs head, lr 1e-4, 3500 steps",
    "prereq-diff": "PREREQ with the direction-aware signed-difference head (one network)",
    "plda": "Pairwise LDA bilinear score x_A^T eta x_B",
    "rf": "random forest on course-link co-occurrence counts (MOOC-RF-style link features)",
    "refd": "RefD: reference distance over the document-link graph (Liang et al. 2015)",
    "cpr": "CPR-Recover: x_i^T A x_j learned with a ranking objective (Liang et al. 2017)",
    "lda": "plain LDA (gensim, no links) concept vectors + siamese network (PREREQ's settings, one network)",
    "prereq-hybrid": "PREREQ for unseen concepts: a random forest on directional topic features of "
    "the Pairwise-Link-LDA (eta scores both ways, topic generality and spread) and on document-link "
    "counts; which of topics, links or both it uses is chosen by inner concept-disjoint validation "
    "on the training pairs",
    "prereq-topics": "ablation of prereq-hybrid: the forest on the topic features only",
    "prereq-links": "ablation of prereq-hybrid: the forest on the link-count features only",
    "identity": "logistic regression on one-hot concept identities, no documents (measures how "
    "much a split rewards memorising which concepts are prerequisites)",
    "allpos": "predict 'prerequisite' for every pair (the trivial baseline)",
}


@dataclass
class Scorer:
    """Scores for arbitrary concept pairs plus the decision threshold chosen on training pairs."""

    score: Callable[[Sequence[str], Sequence[str]], np.ndarray]
    threshold: float

    def predict(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        return (self.score(a, b) >= self.threshold).astype(np.int64)


@dataclass
class Context:
    """What the methods share on one corpus; expensive parts are computed on first use.

    Parameters
    ----------
    corpus : the documents and links
    n_topics : topics of both topic models
    plda_params : extra keyword arguments of :class:`PairwiseLinkLDA`
    siamese_params : keyword arguments of :class:`SiameseClassifier` that override the
        methods' own settings (``PREREQ_SIAMESE``, ``PAPER_SIAMESE``)
    seed : int
    """

    corpus: Corpus
    n_topics: int = 100
    plda_params: dict = field(default_factory=dict)
    siamese_params: dict = field(default_factory=dict)
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def with_limits(
        cls, corpus: Corpus, *, n_topics: int, em_iter: int, steps: int | None, seed: int = 0
    ) -> Context:
        """A context whose Pairwise-Link-LDA runs at most ``em_iter`` EM iterations and whose siamese
        methods train ``steps`` steps (each method's own number when None)."""
        return cls(
            corpus,
            n_topics=n_topics,
            seed=seed,
            plda_params={"max_em_iter": em_iter},
            siamese_params={} if steps is None else {"steps": steps},
        )

    @property
    def plda(self) -> PairwiseLinkLDA:
        if "plda" not in self._cache:
            params = {"seed": self.seed, **self.plda_params}
            self._cache["plda"] = PairwiseLinkLDA(self.n_topics, **params).fit(
                self.corpus.counts, self.corpus.links
            )
        return self._cache["plda"]

    @property
    def lda_topics(self) -> np.ndarray:
        """p(word | topic) of a gensim LdaModel fitted on the same bags of words (K x V)."""
        if "lda" not in self._cache:
            try:
                from gensim.matutils import Sparse2Corpus
                from gensim.models import LdaModel
            except ImportError as exc:
                raise PeerUnavailableError(
                    f"gensim is needed for the 'lda' method ({exc}); pip install gensim"
                ) from None
            corpus = Sparse2Corpus(sp.csc_matrix(self.corpus.counts.T.astype(np.int64)))
            model = LdaModel(
                corpus,
                num_topics=self.n_topics,
                id2word=None,
                passes=10,
                alpha="auto",
                random_state=self.seed,
                dtype=np.float64,
            )
            topics = model.get_topics()
            if topics.shape[1] < self.corpus.counts.shape[1]:
                topics = np.pad(topics, ((0, 0), (0, self.corpus.counts.shape[1] - topics.shape[1])))
            self._cache["lda"] = topics
        return self._cache["lda"]

    def columns(self, names: Sequence[str]) -> np.ndarray:
        return self.corpus.concept_columns(names)

    @property
    def incidence(self) -> sp.csr_matrix:
        """Binary document x vocabulary-word presence."""
        if "incidence" not in self._cache:
            self._cache["incidence"] = (self.corpus.counts > 0).astype(np.float64).tocsr()
        return self._cache["incidence"]

    @property
    def adjacency(self) -> sp.csr_matrix:
        """Document link matrix: ``[d, d2] = 1`` when d2 is a prerequisite of d."""
        if "adjacency" not in self._cache:
            n = self.corpus.n_docs
            links = self.corpus.links
            adj = sp.csr_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(n, n))
            adj.data[:] = 1.0
            self._cache["adjacency"] = adj
        return self._cache["adjacency"]


def fit_method(name: str, context: Context, train: PairSet, **options) -> Scorer:
    """Fit one method on labelled training pairs and return its scorer.

    Options: ``head`` (siamese head for ``prereq`` / ``lda``).
    """
    validate.one_of(name, METHODS, "method")
    if len(train) == 0:
        raise InvalidInputError("no training pairs; check the split")
    fitters = {
        "prereq": _fit_prereq,
        "prereq-paper": _fit_prereq_paper,
        "prereq-diff": _fit_prereq_diff,
        "plda": _fit_plda,
        "rf": _fit_rf,
        "refd": _fit_refd,
        "cpr": _fit_cpr,
        "lda": _fit_lda,
        "identity": _fit_identity,
        "allpos": _fit_allpos,
        "prereq-hybrid": _fit_hybrid,
        "prereq-topics": lambda c, t, **_: _fit_forest(c, t, ("topics",)),
        "prereq-links": lambda c, t, **_: _fit_forest(c, t, ("links",)),
    }
    return fitters[name](context, train, **options)


def _thresholded(score, train: PairSet) -> Scorer:
    return Scorer(score, best_f1_threshold(train.y, score(train.a, train.b)))


def _fit_allpos(context: Context, train: PairSet, **_) -> Scorer:
    return Scorer(lambda a, b: np.ones(len(a)), 1.0)


def _fit_identity(context: Context, train: PairSet, **_) -> Scorer:
    from sklearn.linear_model import LogisticRegression

    # one column per concept (not per vocabulary word): the same model, as a word that names no
    # concept never fires, but the solver works on hundreds of weights instead of ~100,000
    cols, index = _concept_lookup(context, _all_concepts(context))
    n = len(cols)

    def one_hot(a, b):
        rows = np.arange(len(a))
        ia = [index[int(c)] for c in context.columns(a)]
        ib = [n + index[int(c)] for c in context.columns(b)]
        return sp.csr_matrix(
            (np.ones(2 * len(a)), (np.tile(rows, 2), np.asarray(ia + ib, dtype=np.int64))),
            shape=(len(a), 2 * n),
        )

    clf = LogisticRegression(max_iter=2000).fit(one_hot(train.a, train.b), train.y)
    return _thresholded(lambda a, b: clf.predict_proba(one_hot(a, b))[:, 1], train)


def _fit_plda(context: Context, train: PairSet, **_) -> Scorer:
    model = context.plda

    def score(a, b):
        return model.link_scores(
            model.concept_vectors(context.columns(a)), model.concept_vectors(context.columns(b))
        )

    return _thresholded(score, train)


def _siamese_on(
    vectors: Callable[[Sequence[str]], np.ndarray],
    context: Context,
    train: PairSet,
    head: str | None,
    defaults: dict = PREREQ_SIAMESE,
) -> Scorer:
    params = {"seed": context.seed, **defaults, **context.siamese_params}
    if head is not None:
        params["head"] = head
    clf = SiameseClassifier(**params).fit(vectors(train.a), vectors(train.b), train.y)
    return Scorer(lambda a, b: clf.predict_proba(vectors(a), vectors(b)), clf.threshold_)


def _fit_prereq(context: Context, train: PairSet, head: str | None = None, **_) -> Scorer:
    model = context.plda
    return _siamese_on(lambda names: model.concept_vectors(context.columns(names)), context, train, head)


def _fit_prereq_paper(context: Context, train: PairSet, **_) -> Scorer:
    model = context.plda
    return _siamese_on(
        lambda names: model.concept_vectors(context.columns(names)), context, train, None, PAPER_SIAMESE
    )


def _fit_prereq_diff(context: Context, train: PairSet, **_) -> Scorer:
    model = context.plda
    return _siamese_on(
        lambda names: model.concept_vectors(context.columns(names)), context, train, "diff", ONE_NETWORK
    )


def _fit_lda(context: Context, train: PairSet, head: str | None = None, **_) -> Scorer:
    topics = context.lda_topics
    return _siamese_on(lambda names: topics[:, context.columns(names)].T, context, train, head, ONE_NETWORK)


def link_count_features(context: Context, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Per pair: documents with A, with B, with both, links A-doc -> B-doc and B-doc -> A-doc,
    and the same link counts normalised by the documents involved (all from raw counts)."""
    ca, cb = context.columns(a), context.columns(b)
    M = context.incidence
    docs = np.asarray(M.sum(0)).ravel()
    n_a, n_b = docs[ca], docs[cb]
    Mc = M[:, np.unique(np.concatenate([ca, cb]))]
    lookup = {c: i for i, c in enumerate(np.unique(np.concatenate([ca, cb])))}
    ia = np.asarray([lookup[c] for c in ca])
    ib = np.asarray([lookup[c] for c in cb])
    both = np.asarray((Mc.T @ Mc).todense())
    links = np.asarray((Mc.T @ context.adjacency @ Mc).todense())  # [x, y]: x-doc requires y-doc
    ab, ba = links[ia, ib], links[ib, ia]
    co = both[ia, ib]
    return np.column_stack(
        [
            n_a,
            n_b,
            co,
            ab,
            ba,
            ab - ba,
            ab / np.maximum(n_a * n_b, 1),
            ba / np.maximum(n_a * n_b, 1),
            co / np.maximum(np.minimum(n_a, n_b), 1),
        ]
    )


def _fit_rf(context: Context, train: PairSet, **_) -> Scorer:
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(
        n_estimators=FOREST_TREES, min_samples_leaf=2, random_state=context.seed, n_jobs=1
    )
    forest.fit(link_count_features(context, train.a, train.b), train.y)
    return _thresholded(lambda a, b: forest.predict_proba(link_count_features(context, a, b))[:, 1], train)


def refd_matrix(context: Context, columns: np.ndarray) -> np.ndarray:
    """RefD[i, j] > 0: concept j is more likely a prerequisite of concept i (equal weights).

    RefD(A, B) = share of A-documents whose prerequisites mention B, minus the share of
    B-documents whose prerequisites mention A.
    """
    M = context.incidence[:, columns]
    refers = ((context.adjacency @ M) > 0).astype(np.float64)
    share = np.asarray((M.T @ refers).todense()) / np.maximum(np.asarray(M.sum(0)).ravel(), 1)[:, None]
    return share - share.T


def _concept_lookup(context: Context, names: Sequence[str]) -> tuple[np.ndarray, dict[int, int]]:
    cols = np.unique(context.columns(names))
    return cols, {int(c): i for i, c in enumerate(cols)}


def _all_concepts(context: Context) -> list[str]:
    return sorted(context.corpus.concepts)


def _fit_refd(context: Context, train: PairSet, **_) -> Scorer:
    cols, index = _concept_lookup(context, _all_concepts(context))
    refd = refd_matrix(context, cols)

    def score(a, b):
        ia = [index[int(c)] for c in context.columns(a)]
        ib = [index[int(c)] for c in context.columns(b)]
        return refd[ia, ib]

    return _thresholded(score, train)


def cpr_recover(
    context: Context,
    columns: np.ndarray,
    *,
    steps: int = 300,
    l1: float = 1e-4,
    negatives: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Learn A (concepts x concepts) so that x_d^T A x_d2 ranks linked course pairs (d requires
    d2) above unlinked ones; x_d are l2-normalised concept presence vectors of the documents."""
    import torch

    X = context.incidence[:, columns].toarray()
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    links = context.corpus.links
    if len(links) == 0:
        raise InvalidInputError("CPR-Recover needs document links")
    gen = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tx = torch.as_tensor(X, dtype=torch.float32)
    A = torch.zeros((X.shape[1], X.shape[1]), requires_grad=True)
    opt = torch.optim.Adam([A], lr=0.05)
    src = torch.as_tensor(np.repeat(links[:, 0], negatives))
    pos = torch.as_tensor(np.repeat(links[:, 1], negatives))
    for _ in range(steps):
        neg = torch.as_tensor(gen.integers(0, X.shape[0], size=len(src)))
        left = tx[src] @ A
        margin = (left * tx[pos]).sum(1) - (left * tx[neg]).sum(1)
        loss = torch.nn.functional.softplus(-margin).mean() + l1 * A.abs().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return A.detach().double().numpy()


def _fit_cpr(context: Context, train: PairSet, **_) -> Scorer:
    cols, index = _concept_lookup(context, _all_concepts(context))
    key = ("cpr", context.seed)
    if key not in context._cache:
        context._cache[key] = cpr_recover(context, cols, seed=context.seed)
    A = context._cache[key]

    def score(a, b):
        ia = [index[int(c)] for c in context.columns(a)]
        ib = [index[int(c)] for c in context.columns(b)]
        return A[ia, ib]

    return _thresholded(score, train)


def topic_features(context: Context, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Per pair, from the Pairwise-Link-LDA alone (nothing names a concept, so it transfers to
    concepts never seen in training): the link model's score A -> B and B -> A and their
    difference, the similarity of the two concepts' topic profiles, each profile's spread
    (entropy: general concepts spread over many topics), each concept's frequency, and how much
    each concept's topics are required by, or require, other topics (eta's column and row sums)."""
    model = context.plda
    xa = model.concept_vectors(context.columns(a))
    xb = model.concept_vectors(context.columns(b))
    ta = xa / np.maximum(xa.sum(1, keepdims=True), 1e-300)
    tb = xb / np.maximum(xb.sum(1, keepdims=True), 1e-300)
    eta = model.eta_
    ab = np.einsum("nk,kl,nl->n", ta, eta, tb)
    ba = np.einsum("nk,kl,nl->n", tb, eta, ta)
    cos = (ta * tb).sum(1) / np.maximum(np.linalg.norm(ta, axis=1) * np.linalg.norm(tb, axis=1), 1e-300)
    ent_a = -(ta * np.log(np.maximum(ta, 1e-300))).sum(1)
    ent_b = -(tb * np.log(np.maximum(tb, 1e-300))).sum(1)
    freq_a, freq_b = np.log(np.maximum(xa.sum(1), 1e-300)), np.log(np.maximum(xb.sum(1), 1e-300))
    required, requires = eta.sum(0), eta.sum(1)  # topic l required by others; topic k requires others
    req_a, req_b = ta @ required, tb @ required
    need_a, need_b = ta @ requires, tb @ requires
    return np.column_stack(
        [ab, ba, ab - ba, cos, ent_a, ent_b, ent_a - ent_b, freq_a, freq_b, freq_a - freq_b]
        + [req_a, req_b, req_b - req_a, need_a, need_b, need_a - need_b]
    )


FEATURE_SETS = (("topics",), ("links",), ("topics", "links"))


def pair_features(context: Context, a: Sequence[str], b: Sequence[str], parts: Sequence[str]) -> np.ndarray:
    """The chosen feature parts side by side: ``topics`` (:func:`topic_features`) and ``links``
    (:func:`link_count_features`)."""
    makers = {"topics": topic_features, "links": link_count_features}
    return np.column_stack([makers[p](context, a, b) for p in parts])


FOREST_TREES = 300  # the link-count forest's and the hybrid's trees
INNER_TREES = 50  # trees of the forests that only choose the hybrid's features


def _forest(context: Context, train: PairSet, parts: Sequence[str], trees: int | None = None):
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(
        n_estimators=trees or FOREST_TREES, min_samples_leaf=2, random_state=context.seed, n_jobs=1
    )
    return forest.fit(pair_features(context, train.a, train.b, parts), train.y)


def _fit_forest(context: Context, train: PairSet, parts: Sequence[str]) -> Scorer:
    forest = _forest(context, train, parts)
    return _thresholded(lambda a, b: forest.predict_proba(pair_features(context, a, b, parts))[:, 1], train)


def inner_choice(context: Context, train: PairSet, n_splits: int = 2) -> tuple[tuple[str, ...], dict]:
    """The feature parts with the best mean AUC on concept-disjoint splits of the training pairs
    alone (ties go to the richer set); also returns every candidate's inner AUC."""
    from sklearn.metrics import roc_auc_score

    concepts = sorted(set(train.a) | set(train.b))
    gen = np.random.default_rng(context.seed + 7919)
    scores: dict[tuple[str, ...], list[float]] = {parts: [] for parts in FEATURE_SETS}
    for _ in range(n_splits):
        held = set(gen.choice(concepts, int(round(0.4 * len(concepts))), replace=False))
        side = np.array([(x in held, z in held) for x, z in train.keys()])
        fit_idx = np.flatnonzero(~side[:, 0] & ~side[:, 1])
        val_idx = np.flatnonzero(side[:, 0] & side[:, 1])
        fit, val = train.subset(fit_idx), train.subset(val_idx)
        if len(np.unique(fit.y)) < 2 or len(np.unique(val.y)) < 2:
            continue
        for parts in FEATURE_SETS:
            forest = _forest(context, fit, parts, INNER_TREES)
            proba = forest.predict_proba(pair_features(context, val.a, val.b, parts))[:, 1]
            scores[parts].append(float(roc_auc_score(val.y, proba)))
    means = {parts: float(np.mean(v)) if v else float("-inf") for parts, v in scores.items()}
    best = max(FEATURE_SETS, key=lambda parts: (means[parts], len(parts)))
    return best, {"+".join(p): m for p, m in means.items()}


def _fit_hybrid(context: Context, train: PairSet, **_) -> Scorer:
    parts, _ = inner_choice(context, train)
    return _fit_forest(context, train, parts)
