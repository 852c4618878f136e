"""Pairwise-Link-LDA (Nallapati et al., KDD'08): topics that explain words and directed document links.

Mean-field variational EM, vectorised over documents, words and document pairs. Every ordered
pair ``p = (d, d2)`` has a topic ``z`` drawn from ``theta_d`` at its source end and ``z2`` from
``theta_d2`` at its target end, and ``c_p ~ Bernoulli(eta[z, z2])``. The target end is updated
with ``eta`` transposed (the original C code used ``eta`` at both ends). Unlinked pairs are sampled
(``n_unlinked_per_doc`` per document) and weighted so that memory is O(links + r D), not O(D^2 K).
Every update is an exact coordinate ascent step, so the ELBO never decreases (``elbo_``).
The large E-step arrays (pair responsibilities, topic-word probabilities) are float32; sums and
the ELBO are accumulated in float64.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numba
import numpy as np
import scipy.sparse as sp
from scipy.special import digamma, gammaln

from frugalml.common import validate
from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.seeding import rng as make_rng
from frugalml.prereq.limits import check_plda_fits

_EPS = 1e-10
_F32 = np.float32


@dataclass
class PLDAConfig:
    """Settings of :class:`PairwiseLinkLDA` (defaults: the PREREQ paper's)."""

    n_topics: int = 100
    alpha: float = 0.01
    beta_prior: float = 1e-3
    max_em_iter: int = 100
    em_tol: float = 1e-4
    max_var_iter: int = 20
    var_tol: float = 1e-6
    n_unlinked_per_doc: int = 10
    unlinked_weight: float | None = None
    seed: int = 0

    def check(self) -> None:
        if self.n_topics < 1:
            raise InvalidInputError(f"n_topics must be at least 1, got {self.n_topics}")
        for name in ("alpha", "em_tol", "var_tol"):
            if not getattr(self, name) > 0:
                raise InvalidInputError(f"{name} must be positive, got {getattr(self, name)}")
        if self.beta_prior < 0:
            raise InvalidInputError(f"beta_prior must be non-negative, got {self.beta_prior}")
        for name in ("max_em_iter", "max_var_iter"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_unlinked_per_doc < 0:
            raise InvalidInputError("n_unlinked_per_doc must be non-negative")
        if self.unlinked_weight is not None and not self.unlinked_weight > 0:
            raise InvalidInputError("unlinked_weight must be positive (or None for the full model)")


@dataclass
class _Pairs:
    """The ordered document pairs the model sees: source, target, link flag, weight."""

    src: np.ndarray
    dst: np.ndarray
    linked: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        self.n_linked = int(self.linked.sum())
        if not self.linked[: self.n_linked].all():
            raise InvalidInputError("pairs must list linked pairs first")
        self._incidence: dict = {}

    def src_incidence(self, n_docs: int) -> sp.csr_matrix:
        """Sparse (n_docs, n_pairs) weights: ``M @ q`` sums each document's source ends."""
        return self._matrix("src", self.src, n_docs)

    def dst_incidence(self, n_docs: int) -> sp.csr_matrix:
        return self._matrix("dst", self.dst, n_docs)

    def _matrix(self, end: str, docs: np.ndarray, n_docs: int) -> sp.csr_matrix:
        if (end, n_docs) not in self._incidence:
            self._incidence[end, n_docs] = sp.csr_matrix(
                (self.weight, (docs, np.arange(len(docs)))), shape=(n_docs, len(docs))
            )
        return self._incidence[end, n_docs]


def sample_pairs(links: np.ndarray, n_docs: int, per_doc: int, weight: float | None, seed) -> _Pairs:
    """All linked pairs plus ``per_doc * n_docs`` distinct unlinked ordered pairs (fewer if scarce).

    Each unlinked pair weighs ``weight``, by default (all unlinked pairs) / (sampled ones), so the
    sample stands in for the full model; when every unlinked pair fits, all are used with weight 1.
    """
    links = np.unique(np.asarray(links, dtype=np.int64).reshape(-1, 2), axis=0)
    links = links[links[:, 0] != links[:, 1]]
    n_unlinked = n_docs * (n_docs - 1) - len(links)
    want = min(per_doc * n_docs, n_unlinked)
    linked_codes = links[:, 0] * n_docs + links[:, 1]
    if want == n_unlinked:
        codes = np.arange(n_docs * n_docs)
        codes = codes[(codes // n_docs != codes % n_docs) & ~np.isin(codes, linked_codes)]
    else:
        gen = make_rng(seed)
        codes = np.zeros(0, dtype=np.int64)
        while len(codes) < want:
            draw = gen.integers(0, n_docs * n_docs, size=2 * (want - len(codes)) + 16)
            draw = draw[(draw // n_docs != draw % n_docs) & ~np.isin(draw, linked_codes)]
            codes = np.unique(np.concatenate([codes, draw]))
        codes = gen.permutation(codes)[:want]
    w = weight if weight is not None else n_unlinked / max(want, 1)
    src = np.concatenate([links[:, 0], codes // n_docs])
    dst = np.concatenate([links[:, 1], codes % n_docs])
    linked = np.concatenate([np.ones(len(links), bool), np.zeros(len(codes), bool)])
    weights = np.concatenate([np.ones(len(links)), np.full(len(codes), float(w))])
    return _Pairs(src, dst, linked, weights)


class PairwiseLinkLDA:
    """Topic model of documents and their directed links (sklearn-style estimator).

    Parameters
    ----------
    n_topics, alpha, ... : see :class:`PLDAConfig`.

    Attributes
    ----------
    log_beta_ : ndarray (n_topics, n_words)  log p(word | topic)
    eta_ : ndarray (n_topics, n_topics)  p(link d -> d2 | source topic, target topic)
    gamma_ : ndarray (n_docs, n_topics)  variational Dirichlet parameters of the training documents
    elbo_ : list of float  the evidence lower bound after every EM iteration (non-decreasing)
    n_iter_ : int

    Examples
    --------
    >>> model = PairwiseLinkLDA(n_topics=5).fit(counts, links)  # doctest: +SKIP
    >>> model.concept_vectors([3, 7]).shape  # doctest: +SKIP
    (2, 5)
    """

    def __init__(
        self,
        n_topics: int = 100,
        *,
        alpha: float = 0.01,
        beta_prior: float = 1e-3,
        max_em_iter: int = 100,
        em_tol: float = 1e-4,
        max_var_iter: int = 20,
        var_tol: float = 1e-6,
        n_unlinked_per_doc: int = 10,
        unlinked_weight: float | None = None,
        seed: int = 0,
    ):
        self.n_topics = n_topics
        self.alpha = alpha
        self.beta_prior = beta_prior
        self.max_em_iter = max_em_iter
        self.em_tol = em_tol
        self.max_var_iter = max_var_iter
        self.var_tol = var_tol
        self.n_unlinked_per_doc = n_unlinked_per_doc
        self.unlinked_weight = unlinked_weight
        self.seed = seed

    def get_params(self, deep: bool = True) -> dict:
        return asdict(self.config())

    def config(self) -> PLDAConfig:
        cfg = PLDAConfig(**{k: getattr(self, k) for k in PLDAConfig.__dataclass_fields__})
        cfg.check()
        return cfg

    # ------------------------------------------------------------------ fitting
    def fit(self, counts, links, *, callback=None) -> PairwiseLinkLDA:
        """Learn topics and the link matrix from a document-term matrix and document links.

        Parameters
        ----------
        counts : array-like or sparse, shape (n_docs, n_words)  non-negative word counts
        links : array-like of int, shape (n_links, 2)  ``(d, d2)``: d2 is a prerequisite of d
        callback : callable(iteration, elbo), optional  called after each EM iteration
        """
        cfg = self.config()
        X = _as_counts(counts)
        n_docs, n_words = X.shape
        links = _as_links(links, n_docs)
        gen = make_rng(cfg.seed)
        self.pairs_ = sample_pairs(links, n_docs, cfg.n_unlinked_per_doc, cfg.unlinked_weight, gen)
        K = cfg.n_topics
        check_plda_fits(n_docs, n_words, len(self.pairs_.src), K)
        # LDA-C's "seeded" start: each topic starts from a few random documents plus noise.
        seeds = gen.choice(n_docs, size=(K, min(n_docs, 3)), replace=n_docs < 3 * K)
        beta = np.asarray([np.asarray(X[s].sum(0)).ravel() for s in seeds])
        beta += gen.gamma(1.0, 1.0, size=(K, n_words)) + 1.0 / n_words
        self.log_beta_ = np.log(beta / beta.sum(1, keepdims=True))
        self.eta_ = np.full((K, K), np.clip(self.pairs_.linked.mean(), 1e-6, 1 - 1e-6))
        lengths = np.asarray(X.sum(1)).ravel()
        gamma = np.full((n_docs, K), cfg.alpha) + lengths[:, None] / K
        n_pairs = len(self.pairs_.src)
        src_q = np.full((n_pairs, K), 1.0 / K, dtype=_F32)
        dst_q = np.full((n_pairs, K), 1.0 / K, dtype=_F32)
        self.elbo_ = []
        for it in range(cfg.max_em_iter):
            gamma, src_q, dst_q, stats = self._e_step(X, gamma, src_q, dst_q, self.pairs_)
            self._m_step(stats, src_q, dst_q, self.pairs_)
            self.elbo_.append(self._elbo(X, gamma, src_q, dst_q, self.pairs_))
            self.n_iter_ = it + 1
            if callback is not None:
                callback(it, self.elbo_[-1])
            if it and abs(self.elbo_[-1] - self.elbo_[-2]) <= cfg.em_tol * abs(self.elbo_[-2]):
                break
        self.gamma_ = gamma
        self.n_words_ = n_words
        return self

    def _e_step(self, X, gamma, src_q, dst_q, pairs: _Pairs):
        """Coordinate ascent on (pair ends, word topics, gamma) with beta and eta fixed."""
        cfg = self.config()
        log_link, log_nolink = np.log(self.eta_).astype(_F32), np.log1p(-self.eta_).astype(_F32)
        beta_t = np.ascontiguousarray(np.exp(self.log_beta_).T, dtype=_F32)
        old = None
        for _ in range(cfg.max_var_iter):
            elog = _elog_theta(gamma)
            src_q, dst_q = _update_pair_ends(elog, src_q, dst_q, pairs, log_link, log_nolink)
            word_part = _word_part(X, np.exp(elog).astype(_F32), beta_t)
            pair_part = _pair_mass(src_q, dst_q, pairs, gamma.shape[0])
            gamma = cfg.alpha + word_part + pair_part
            if old is not None and np.mean(np.abs(gamma - old)) / np.mean(np.abs(gamma)) < cfg.var_tol:
                break
            old = gamma
        elog = _elog_theta(gamma)
        src_q, dst_q = _update_pair_ends(elog, src_q, dst_q, pairs, log_link, log_nolink)
        exp_elog = np.exp(elog)
        ratio = _ratio(X, exp_elog.astype(_F32), beta_t)
        word_topic = (ratio.T @ exp_elog) * beta_t  # expected word-topic counts, V x K (float64)
        gamma = cfg.alpha + exp_elog * (ratio @ beta_t) + _pair_mass(src_q, dst_q, pairs, gamma.shape[0])
        return gamma, src_q, dst_q, word_topic

    def _m_step(self, word_topic, src_q, dst_q, pairs: _Pairs) -> None:
        """Closed-form beta (MAP with a tiny symmetric prior) and eta (clipped into (0, 1))."""
        stats = word_topic.T + self.beta_prior
        with np.errstate(divide="ignore"):
            self.log_beta_ = np.log(stats) - np.log(stats.sum(1, keepdims=True))
        w = pairs.weight
        src_q, dst_q = src_q.astype(np.float64), dst_q.astype(np.float64)
        both = (src_q * w[:, None]).T @ dst_q
        linked = (src_q[pairs.linked] * w[pairs.linked, None]).T @ dst_q[pairs.linked]
        self.eta_ = np.clip(linked / np.maximum(both, 1e-300), 1e-6, 1 - 1e-6)

    def _elbo(self, X, gamma, src_q, dst_q, pairs: _Pairs) -> float:
        """The evidence lower bound (plus the log prior of beta), word topics at their optimum."""
        cfg = self.config()
        K = cfg.n_topics
        elog = _elog_theta(gamma)
        total = X.shape[0] * (gammaln(K * cfg.alpha) - K * gammaln(cfg.alpha))
        total += ((cfg.alpha - gamma) * elog).sum() + gammaln(gamma).sum()
        total -= gammaln(gamma.sum(1)).sum()
        beta_t = np.ascontiguousarray(np.exp(self.log_beta_).T)
        total += float(X.data @ np.log(_phinorm(X, np.exp(elog), beta_t)))
        w = pairs.weight
        src_q, dst_q = src_q.astype(np.float64), dst_q.astype(np.float64)
        link_term = (_link_logits(src_q, pairs, np.log(self.eta_), np.log1p(-self.eta_)) * dst_q).sum(1)
        ends = (src_q * (elog[pairs.src] - np.log(src_q + _EPS))).sum(1)
        ends += (dst_q * (elog[pairs.dst] - np.log(dst_q + _EPS))).sum(1)
        total += float(w @ (link_term + ends))
        if self.beta_prior > 0:
            total += self.beta_prior * float(self.log_beta_.sum())
        return float(total)

    # ------------------------------------------------------------------ using the model
    def _check_fitted(self) -> None:
        if not hasattr(self, "log_beta_"):
            raise InvalidInputError("this PairwiseLinkLDA is not fitted yet; call fit() first")

    def transform(self, counts, *, links_to=None, linked_from=None, same_as=None) -> np.ndarray:
        """Fold in new documents: their topic proportions (rows sum to 1), topics held fixed.

        Parameters
        ----------
        counts : (n_new, n_words) word counts of the new documents
        links_to : list (per new document) of training documents that are its prerequisites
        linked_from : list (per new document) of training documents it is a prerequisite of
        same_as : list of int, optional
            Per new document, a training document it copies (no pair with itself), or -1.

        Every ordered pair between a new document and each training document is used (links
        flagged, others not), with the training documents' topic proportions held fixed.
        """
        self._check_fitted()
        X = _as_counts(counts)
        if X.shape[1] != self.n_words_:
            raise InvalidInputError(
                f"counts have {X.shape[1]} words but the model was fitted on {self.n_words_}"
            )
        cfg = self.config()
        n_new, n_train = X.shape[0], self.gamma_.shape[0]
        chunk = max(1, 4_000_000 // max(1, n_train * cfg.n_topics))  # bounds the pair arrays
        if n_new > chunk:

            def part(items, start):
                return None if items is None else items[start : start + chunk]

            return np.vstack(
                [
                    self.transform(
                        X[s : s + chunk],
                        links_to=part(links_to, s),
                        linked_from=part(linked_from, s),
                        same_as=part(same_as, s),
                    )
                    for s in range(0, n_new, chunk)
                ]
            )
        beta_t = np.ascontiguousarray(np.exp(self.log_beta_).T)
        out_links = _per_doc_sets(links_to, n_new, n_train, "links_to")
        in_links = _per_doc_sets(linked_from, n_new, n_train, "linked_from")
        train_elog = _elog_theta(self.gamma_)
        log_link, log_nolink = np.log(self.eta_), np.log1p(-self.eta_)
        out_flag = np.zeros((n_new, n_train), bool)
        in_flag = np.zeros((n_new, n_train), bool)
        for d in range(n_new):
            out_flag[d, sorted(out_links[d])] = True
            in_flag[d, sorted(in_links[d])] = True
        has_pairs = n_train > 0 and self.pairs_.weight.size > 0
        w_unlinked = float(self.pairs_.weight[~self.pairs_.linked].max(initial=1.0))
        w_out = np.where(out_flag, 1.0, w_unlinked)
        w_in = np.where(in_flag, 1.0, w_unlinked)
        if same_as is not None:
            same = validate.as_array(same_as, "same_as", ndim=1).astype(np.int64)
            if len(same) != n_new or same.max(initial=-1) >= n_train:
                raise InvalidInputError(f"same_as needs one index in -1..{n_train - 1} per new document")
            rows = np.flatnonzero(same >= 0)
            w_out[rows, same[rows]] = w_in[rows, same[rows]] = 0.0
        lengths = np.asarray(X.sum(1)).ravel()
        gamma = np.full((n_new, cfg.n_topics), cfg.alpha) + lengths[:, None] / cfg.n_topics
        old = None
        for _ in range(cfg.max_var_iter * 5):
            elog = _elog_theta(gamma)
            exp_elog = np.exp(elog)
            gamma = cfg.alpha + exp_elog * (_ratio(X, exp_elog, beta_t) @ beta_t)
            if has_pairs:
                gamma += _fold_in_pair_mass(
                    elog, train_elog, out_flag, w_out, log_link, log_nolink, cfg.max_var_iter
                )
                gamma += _fold_in_pair_mass(
                    elog, train_elog, in_flag, w_in, log_link.T, log_nolink.T, cfg.max_var_iter
                )
            if old is not None and np.max(np.abs(gamma - old)) < cfg.var_tol * np.max(gamma):
                break
            old = gamma
        return gamma / gamma.sum(1, keepdims=True)

    def concept_vectors(self, columns) -> np.ndarray:
        """``x_c = p(word c | topic)`` for each vocabulary column c: shape (len(columns), K)."""
        self._check_fitted()
        cols = np.asarray(columns, dtype=np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= self.n_words_):
            raise InvalidInputError(f"word columns must lie in 0..{self.n_words_ - 1}")
        return np.exp(self.log_beta_[:, cols]).T

    def link_scores(self, x_a: np.ndarray, x_b: np.ndarray) -> np.ndarray:
        """Bilinear score ``x_a^T eta x_b`` (the "Pairwise LDA" baseline): B prerequisite of A."""
        self._check_fitted()
        return np.einsum("nk,kl,nl->n", x_a, self.eta_, x_b)

    def state(self) -> dict[str, np.ndarray]:
        """The learned arrays, for saving."""
        self._check_fitted()
        return {
            "log_beta": self.log_beta_,
            "eta": self.eta_,
            "gamma": self.gamma_,
            "elbo": np.asarray(self.elbo_),
            "pair_weight": self.pairs_.weight,
            "pair_src": self.pairs_.src,
            "pair_dst": self.pairs_.dst,
            "pair_linked": self.pairs_.linked,
        }

    def save(self, path) -> None:
        """Write the fitted model atomically (versioned, checksummed container)."""
        from frugalml.common.arrays import save_arrays

        save_arrays(path, b"PLINKLDA", 1, {"params": self.get_params()}, self.state())

    @classmethod
    def load(cls, path) -> PairwiseLinkLDA:
        """Read a model written by :meth:`save`."""
        from frugalml.common.arrays import load_arrays

        meta, arrays = load_arrays(path, b"PLINKLDA", 1)
        try:
            return cls.from_state(meta["params"], arrays)
        except (KeyError, TypeError) as exc:
            raise CorruptFileError(f"{path} is not a valid Pairwise-Link-LDA file ({exc})") from None

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray]) -> PairwiseLinkLDA:
        model = cls(**params)
        model.log_beta_, model.eta_ = arrays["log_beta"], arrays["eta"]
        model.gamma_, model.elbo_ = arrays["gamma"], list(arrays["elbo"])
        model.pairs_ = _Pairs(
            arrays["pair_src"], arrays["pair_dst"], arrays["pair_linked"].astype(bool), arrays["pair_weight"]
        )
        model.n_words_ = model.log_beta_.shape[1]
        model.n_iter_ = len(model.elbo_)
        return model


# ---------------------------------------------------------------------- vectorised pieces


def _as_counts(counts) -> sp.csr_matrix:
    if sp.issparse(counts):
        X = sp.csr_matrix(counts, dtype=np.float64)
        validate.as_array(X.data, "counts", allow_empty=True)
    else:
        X = sp.csr_matrix(validate.as_array(counts, "counts", ndim=2, dtype=np.float64))
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InvalidInputError(f"counts has shape {X.shape}; pass at least one document and word")
    if X.nnz and X.data.min() < 0:
        raise InvalidInputError("counts must be non-negative word counts")
    X.eliminate_zeros()
    X.sort_indices()
    return X


def _as_links(links, n_docs: int) -> np.ndarray:
    arr = np.asarray(links if links is not None else np.zeros((0, 2)), dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    arr = validate.as_array(arr, "links", ndim=2)
    if arr.shape[1] != 2 or not np.all(arr == np.round(arr)):
        raise InvalidInputError(f"links must be integer pairs of shape (n, 2), got {arr.shape}")
    if arr.min() < 0 or arr.max() >= n_docs:
        raise InvalidInputError(f"links name documents outside 0..{n_docs - 1}")
    return arr.astype(np.int64)


def _per_doc_sets(lists, n_new: int, n_train: int, name: str) -> list[set[int]]:
    if lists is None:
        return [set() for _ in range(n_new)]
    if len(lists) != n_new:
        raise InvalidInputError(f"{name} needs one list per new document ({n_new})")
    out = []
    for d, items in enumerate(lists):
        items = {int(i) for i in items}
        if items and (min(items) < 0 or max(items) >= n_train):
            raise InvalidInputError(f"{name}[{d}] names documents outside 0..{n_train - 1}")
        out.append(items)
    return out


def _elog_theta(gamma: np.ndarray) -> np.ndarray:
    return digamma(gamma) - digamma(gamma.sum(1, keepdims=True))


def _phinorm(X: sp.csr_matrix, exp_elog: np.ndarray, beta_t: np.ndarray) -> np.ndarray:
    """sum_k exp(E log theta_dk) beta_kw at every nonzero (d, w) of X, in CSR order.

    ``beta_t`` is beta transposed, (n_words, n_topics), C-contiguous.
    """
    rows = np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr))
    return _phinorm_kernel(rows, X.indices.astype(np.int64), np.ascontiguousarray(exp_elog), beta_t)


@numba.njit(cache=True)
def _phinorm_kernel(rows, cols, exp_elog, beta_t):
    out = np.empty(len(rows))
    for n in range(len(rows)):
        d, w = rows[n], cols[n]
        total = 0.0
        for k in range(exp_elog.shape[1]):
            total += exp_elog[d, k] * beta_t[w, k]
        out[n] = total + 1e-300
    return out


def _word_part(X: sp.csr_matrix, exp_elog: np.ndarray, beta_t: np.ndarray) -> np.ndarray:
    """``exp_elog * ((X / phinorm) @ beta_t)``: the word half of the gamma update, (n_docs, K)."""
    return _word_part_kernel(
        X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data, np.ascontiguousarray(exp_elog), beta_t
    )


@numba.njit(cache=True, parallel=True, fastmath=True)
def _word_part_kernel(indptr, indices, counts, exp_elog, beta_t):
    n_docs, n_topics = exp_elog.shape
    out = np.empty((n_docs, n_topics))
    for d in numba.prange(n_docs):
        acc = np.zeros(n_topics)
        for n in range(indptr[d], indptr[d + 1]):
            w = indices[n]
            norm = 0.0
            for k in range(n_topics):
                norm += exp_elog[d, k] * beta_t[w, k]
            scale = counts[n] / (norm + 1e-300)
            for k in range(n_topics):
                acc[k] += scale * beta_t[w, k]
        for k in range(n_topics):
            out[d, k] = exp_elog[d, k] * acc[k]
    return out


def _ratio(X: sp.csr_matrix, exp_elog: np.ndarray, beta_t: np.ndarray) -> sp.csr_matrix:
    """Counts divided by their normaliser, same sparsity as X."""
    return sp.csr_matrix((X.data / _phinorm(X, exp_elog, beta_t), X.indices, X.indptr), shape=X.shape)


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    return logits


def _link_logits(q: np.ndarray, pairs: _Pairs, log_link: np.ndarray, log_nolink: np.ndarray):
    """Row p: ``log_eta_p @ q_p`` with log eta for linked pairs and log(1 - eta) for the others."""
    n = pairs.n_linked
    return np.concatenate([q[:n] @ log_link, q[n:] @ log_nolink])


def _update_pair_ends(elog, src_q, dst_q, pairs: _Pairs, log_link, log_nolink):
    """Source end given the target end (eta), then target end given the source end (eta^T)."""
    elog = elog.astype(src_q.dtype)
    src_q = _softmax_rows(elog[pairs.src] + _link_logits(dst_q, pairs, log_link.T, log_nolink.T))
    dst_q = _softmax_rows(elog[pairs.dst] + _link_logits(src_q, pairs, log_link, log_nolink))
    return src_q, dst_q


def _pair_mass(src_q, dst_q, pairs: _Pairs, n_docs: int) -> np.ndarray:
    """Weighted topic mass that each document receives from the pair ends it takes part in."""
    return pairs.src_incidence(n_docs) @ src_q + pairs.dst_incidence(n_docs) @ dst_q


def _fold_in_pair_mass(elog_new, elog_train, flags, weights, log_link, log_nolink, n_iter):
    """Mass from all pairs between each new document and each training document (one end each)."""
    # New document end q (n_new, n_train, K), training end r; alternate the two exact updates.
    other = _softmax_rows(elog_train)[None].repeat(len(elog_new), 0)
    for _ in range(n_iter):
        lin = np.where(flags[..., None], other @ log_link.T, other @ log_nolink.T)
        own = _softmax_rows(lin + elog_new[:, None, :])
        lin2 = np.where(flags[..., None], own @ log_link, own @ log_nolink)
        other = _softmax_rows(lin2 + elog_train[None])
    return (own * weights[..., None]).sum(1)
