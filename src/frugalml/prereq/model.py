"""The user-facing PREREQ model: corpus -> Pairwise-Link-LDA -> a pair classifier, saved as one file.

The classifier is ``prereq-hybrid`` by default (a forest on directional topic features and
document-link counts, which also scores concepts no training pair mentioned), or a siamese network:
``prereq`` (PREREQ's settings chosen by inner validation) or ``prereq-paper`` (as published).

>>> model = PrereqModel(n_topics=100).fit(corpus, train_pairs)  # doctest: +SKIP
>>> PrereqModel(n_topics=100, method="prereq-paper")  # doctest: +SKIP
>>> model.predict_proba(["Machine learning"], ["Linear algebra"])  # doctest: +SKIP
>>> model.save("university.prereq"); PrereqModel.load("university.prereq")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from frugalml.common import validate
from frugalml.common.arrays import load_arrays, save_arrays
from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.prereq.data import Corpus, PairSet
from frugalml.prereq.plda import PairwiseLinkLDA
from frugalml.prereq.siamese import HEADS, PAPER_SIAMESE, PREREQ_SIAMESE, SiameseClassifier

MAGIC = b"PREREQ"
VERSION = 4  # 2: the siamese classifier stores its input shift; 3: an ensemble; 4: prereq-hybrid
MODEL_METHODS = ("prereq-hybrid", "prereq", "prereq-paper")
SIAMESE_DEFAULTS = {"prereq": PREREQ_SIAMESE, "prereq-paper": PAPER_SIAMESE}


class PrereqModel:
    """Predict whether concept B is a prerequisite of concept A from documents and links.

    Parameters
    ----------
    n_topics : int
        Topics of the Pairwise-Link-LDA.
    method : {"prereq-hybrid", "prereq", "prereq-paper"}
        ``prereq-hybrid`` (default): a random forest on directional features of the topic model
        and on document-link counts, the parts chosen by inner concept-disjoint validation; it
        needs nothing a training pair said about a concept, so it scores new concepts too.
        ``prereq``: the siamese network with PREREQ's settings; ``prereq-paper``: the paper's.
    head : {"abs", "diff", "concat", "rich", "bilinear"}, optional
        Siamese pair head (siamese methods only; default: the method's); ``abs`` (the paper's) is
        symmetric, the others see direction.
    plda_params, siamese_params : dict, optional
        Further settings of :class:`PairwiseLinkLDA` and :class:`SiameseClassifier` (the latter
        override the method's settings, ``PREREQ_SIAMESE`` or ``PAPER_SIAMESE``).
    trees : int
        Trees of the hybrid's forest.
    seed : int

    Attributes
    ----------
    plda_ : PairwiseLinkLDA
    classifier_ : SiameseClassifier (siamese methods)
    forest_ : dict of arrays (prereq-hybrid; see :mod:`frugalml.prereq.hybrid`)
    parts_ : the hybrid's feature parts, ``["topics"]``, ``["links"]`` or both
    threshold_ : float, probabilities at or above it are predicted prerequisites
    concepts_ : dict of concept name -> vocabulary column
    aliases_ : dict of concept name -> its other names
    unseen_ : concepts listed by the user that never occur in the texts
    """

    def __init__(
        self,
        n_topics: int = 100,
        *,
        method: str = "prereq-hybrid",
        head: str | None = None,
        plda_params: dict | None = None,
        siamese_params: dict | None = None,
        trees: int = 300,
        seed: int = 0,
    ):
        self.n_topics = n_topics
        self.method = method
        self.head = head
        self.plda_params = dict(plda_params or {})
        self.siamese_params = dict(siamese_params or {})
        self.trees = trees
        self.seed = seed

    def fit(self, corpus: Corpus, pairs: PairSet, *, plda: PairwiseLinkLDA | None = None) -> PrereqModel:
        """Fit the topic model on the corpus (unless a fitted ``plda`` is given), then the
        classifier on the labelled pairs."""
        validate.one_of(self.method, MODEL_METHODS, "method")
        hybrid = self.method == "prereq-hybrid"
        if hybrid and (self.head is not None or self.siamese_params):
            raise InvalidInputError(
                "a head and siamese settings apply to the siamese methods (prereq, prereq-paper)"
            )
        if not hybrid:
            self.head = self.head or SIAMESE_DEFAULTS[self.method]["head"]
            validate.one_of(self.head, HEADS, "head")
        validate.bounded(self.trees, "trees", 1, 5000)
        if len(pairs) == 0:
            raise InvalidInputError("no labelled pairs to train on")
        self.concepts_ = dict(corpus.concepts)
        self.aliases_ = {k: list(v) for k, v in corpus.meta.get("concept_aliases", {}).items()}
        self.unseen_ = list(corpus.meta.get("unseen_concepts", []))
        self._index_cache = None
        self.plda_ = plda or PairwiseLinkLDA(self.n_topics, seed=self.seed, **self.plda_params).fit(
            corpus.counts, corpus.links
        )
        if hybrid:
            self._fit_hybrid(corpus, pairs)
            return self
        defaults = SIAMESE_DEFAULTS[self.method]
        params = {"seed": self.seed, **defaults, **self.siamese_params, "head": self.head}
        self.classifier_ = SiameseClassifier(**params).fit(
            self.vectors(pairs.a), self.vectors(pairs.b), pairs.y
        )
        self.threshold_ = float(self.classifier_.threshold_)
        return self

    def _fit_hybrid(self, corpus: Corpus, pairs: PairSet) -> None:
        from frugalml.prereq import hybrid
        from frugalml.prereq.methods import Context, _forest, inner_choice, pair_features
        from frugalml.prereq.siamese import best_f1_threshold

        context = Context(corpus, n_topics=self.plda_.n_topics, seed=self.seed)
        context._cache["plda"] = self.plda_
        parts, self.inner_auc_ = inner_choice(context, pairs)
        self.parts_ = list(parts)
        forest = _forest(context, pairs, parts, self.trees)
        self.forest_ = hybrid.export_forest(forest)
        self.stats_ = hybrid.corpus_statistics(corpus, self.concepts_)
        self._context_cache = None
        train = hybrid.forest_proba(pair_features(context, pairs.a, pairs.b, parts), self.forest_)
        self.threshold_ = best_f1_threshold(pairs.y, train)

    def _context(self):
        """The features' view of the corpus, rebuilt from the stored statistics."""
        from frugalml.prereq import hybrid
        from frugalml.prereq.methods import Context

        if getattr(self, "_context_cache", None) is None:
            corpus = hybrid.statistics_corpus(self.stats_, self.plda_.n_words_, self.concepts_)
            context = Context(corpus, n_topics=self.plda_.n_topics, seed=self.seed)
            context._cache["plda"] = self.plda_
            self._context_cache = context
        return self._context_cache

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise InvalidInputError("this PrereqModel is not fitted yet; call fit() or load()")

    def _index(self):
        """The concept index answering names as users write them (case, plurals, aliases...)."""
        from frugalml.prereq.ingest import ConceptIndex

        if getattr(self, "_index_cache", None) is None:
            self._index_cache = ConceptIndex(sorted(self.concepts_), self.aliases_)
        return self._index_cache

    def resolve(self, name: str) -> str:
        """The model's concept a name denotes, matched after the same normalisation as the texts
        (case, punctuation, hyphens, plurals, closed compounds, aliases).

        Raises
        ------
        InvalidInputError
            The name is no concept of the model; the message suggests close concept names.
        """
        if not hasattr(self, "concepts_"):
            raise InvalidInputError("this PrereqModel is not fitted yet; call fit() or load()")
        if name in self.concepts_:
            return name
        from frugalml.prereq.ingest import ConceptIndex

        index = self._index()
        hit = index.resolve(name)
        if hit is not None:
            return hit
        if name in self.unseen_ or ConceptIndex(self.unseen_).resolve(name) is not None:
            raise InvalidInputError(
                f"concept {name!r} never occurs in the texts the model was fitted on, so the "
                "model cannot judge it; add texts that mention it and fit again"
            )
        close = index.suggest(name)
        raise InvalidInputError(
            f"unknown concept {name!r}"
            + (f"; did you mean {', '.join(close)}?" if close else f"; the model knows {len(self.concepts_)}")
        )

    def vectors(self, names: Sequence[str]) -> np.ndarray:
        """Concept vectors p(concept | topic) for concept names (see :meth:`resolve`)."""
        return self.plda_.concept_vectors([self.concepts_[self.resolve(name)] for name in names])

    def predict_proba(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Probability that ``b[i]`` is a prerequisite of ``a[i]``."""
        self._check_fitted()
        if len(a) != len(b):
            raise InvalidInputError("a and b must list the same number of concepts")
        if self.method != "prereq-hybrid":
            return self.classifier_.predict_proba(self.vectors(a), self.vectors(b))
        from frugalml.prereq.hybrid import forest_proba
        from frugalml.prereq.methods import pair_features

        a, b = [self.resolve(x) for x in a], [self.resolve(x) for x in b]
        with np.errstate(all="ignore"):  # a file's extreme numbers end in inf/nan features, not warnings
            features = pair_features(self._context(), a, b, self.parts_)
        return forest_proba(features, self.forest_)

    def predict(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        return (self.predict_proba(a, b) >= self.threshold_).astype(np.int64)

    def graph(self, concepts: Sequence[str] | None = None) -> list[tuple[str, str, float]]:
        """Predicted prerequisite edges ``(concept, prerequisite, probability)`` among concepts."""
        self._check_fitted()
        names = sorted({self.resolve(c) for c in concepts} if concepts is not None else self.concepts_)
        a = [x for x in names for _ in names]
        b = [z for _ in names for z in names]
        keep = [i for i in range(len(a)) if a[i] != b[i]]
        a, b = [a[i] for i in keep], [b[i] for i in keep]
        prob = self.predict_proba(a, b)
        on = prob >= self.threshold_
        return [(x, z, float(p)) for x, z, p, o in zip(a, b, prob, on, strict=True) if o]

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the model atomically as a versioned, checksummed container."""
        self._check_fitted()
        arrays = {f"plda.{k}": v for k, v in self.plda_.state().items()}
        meta: dict[str, Any] = {
            "method": self.method,
            "n_topics": self.n_topics,
            "seed": self.seed,
            "plda_params": self.plda_.get_params(),
        }
        if self.method == "prereq-hybrid":
            arrays.update({f"forest.{k}": v for k, v in self.forest_.items()})
            arrays.update({f"stats.{k}": v for k, v in self.stats_.items()})
            arrays["hybrid.threshold"] = np.asarray([self.threshold_], dtype=np.float64)
            meta["parts"] = list(self.parts_)
        else:
            arrays.update({f"siamese.{k}": v for k, v in self.classifier_.state().items()})
            meta.update(head=self.head, siamese_params=self.classifier_.get_params())
        meta.update(concepts=self.concepts_, concept_aliases=self.aliases_, unseen_concepts=self.unseen_)
        save_arrays(path, MAGIC, VERSION, meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PrereqModel:
        """Read a model written by :meth:`save` (checks magic, version and checksums); files of
        versions 1-3 hold the siamese ``prereq`` model."""
        from frugalml.prereq import hybrid

        meta, arrays = load_arrays(path, MAGIC, VERSION)
        # a file may store big-endian numbers; torch takes native byte order only (same values)
        arrays = {
            k: v if v.dtype.isnative else v.astype(v.dtype.newbyteorder("=")) for k, v in arrays.items()
        }
        try:
            check_state(meta, arrays)
            method = meta.get("method", "prereq")
            model = cls(meta["n_topics"], method=method, head=meta.get("head"), seed=meta["seed"])
            model.concepts_ = {str(k): int(v) for k, v in meta["concepts"].items()}
            model.aliases_ = {str(k): [str(a) for a in v] for k, v in meta.get("concept_aliases", {}).items()}
            model.unseen_ = [str(c) for c in meta.get("unseen_concepts", [])]
            model.plda_ = PairwiseLinkLDA.from_state(
                meta["plda_params"], {k[5:]: v for k, v in arrays.items() if k.startswith("plda.")}
            )
            if method == "prereq-hybrid":
                flat = hybrid.hybrid_arrays(arrays)
                model.forest_ = {k: flat[k] for k in hybrid.FOREST}
                model.stats_ = {k: flat[f"stats.{k}"] for k in hybrid.STATS}
                model.parts_ = list(meta["parts"])
                model.threshold_ = float(arrays["hybrid.threshold"][0])
                model.trees = len(model.forest_["tree_ptr"]) - 1
            else:
                model.classifier_ = SiameseClassifier.from_state(
                    meta["siamese_params"], {k[8:]: v for k, v in arrays.items() if k.startswith("siamese.")}
                )
                model.threshold_ = float(model.classifier_.threshold_)
        except (KeyError, ValueError, TypeError, RuntimeError, InvalidInputError) as exc:
            raise CorruptFileError(f"{path} is not a valid PREREQ model ({exc}); fit it again") from None
        return model


# ---------------------------------------------------------------------- checks of untrusted files


def _expect(condition: bool, why: str) -> None:
    if not condition:
        raise ValueError(why)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


_INT_PARAMS = {"n_topics", "max_em_iter", "max_var_iter", "n_unlinked_per_doc", "seed"}
_INT_PARAMS |= {"hidden", "steps", "batch_size", "members", "threads"}


def network_shapes(n_features: int, hidden: int, head: str) -> dict[str, tuple[int, ...]]:
    """The arrays of one siamese network of the given sizes, by name (as torch names them)."""
    k = n_features
    width = {"abs": 1, "diff": 1, "concat": 2, "rich": 4}
    head_weight = (2, hidden, hidden) if head == "bilinear" else (2, width[head] * hidden)
    return {
        "branch.0.weight": (k, k),
        "branch.0.bias": (k,),
        "branch.1.weight": (k,),
        "branch.1.bias": (k,),
        "branch.1.running_mean": (k,),
        "branch.1.running_var": (k,),
        "branch.1.num_batches_tracked": (),
        "branch.4.weight": (hidden, k),
        "branch.4.bias": (hidden,),
        "head.weight": head_weight,
        "head.bias": (2,),
    }


def network_prefixes(members: int, arrays: dict) -> list[str]:
    """The array-name prefixes of the ensemble's networks (one "net." network in older files)."""
    if members > 1 or any(k.startswith("net0.") for k in arrays):
        return [f"net{m}." for m in range(members)]
    return ["net."]


def check_state(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Check a model file's metadata and arrays against each other before anything is built from
    them (sizes, indices, dtypes, finite values), so that a crafted file is refused in one line
    instead of allocating what its metadata claims or answering with garbage.

    Raises ValueError saying what is wrong.
    """
    _expect(
        meta.get("method", "prereq") in MODEL_METHODS, f"method must be one of {', '.join(MODEL_METHODS)}"
    )
    _expect(_is_int(meta.get("n_topics")) and meta["n_topics"] >= 1, "n_topics must be a positive integer")
    _expect(_is_int(meta.get("seed")), "seed must be an integer")
    for name, value in arrays.items():
        _expect(value.dtype.kind in "biuf", f"array {name!r} has dtype {value.dtype}, not a real number")
        _expect(value.dtype.kind != "f" or bool(np.isfinite(value).all()), f"array {name!r} is not finite")
    n_words = _check_plda(meta, arrays)
    if meta.get("method", "prereq") == "prereq-hybrid":
        from frugalml.prereq.hybrid import check_hybrid

        _check_concepts(meta, n_words)
        check_hybrid(meta, arrays, n_words, meta["concepts"])
    else:
        _check_siamese(meta, arrays)
        _check_concepts(meta, n_words)


def _check_params(params: dict) -> None:
    for key, value in params.items():
        if key in _INT_PARAMS:
            _expect(_is_int(value) or (value is None and key == "threads"), f"{key} must be an integer")
        elif not isinstance(value, str) and not (value is None and key == "unlinked_weight"):
            _expect(_is_number(value), f"{key} must be a finite number")


def _check_plda(meta: dict, arrays: dict[str, np.ndarray]) -> int:
    """Check the topic model's parameters and arrays; return the vocabulary size."""
    from frugalml.prereq.plda import PLDAConfig

    plda_params: Any = meta.get("plda_params")
    _expect(isinstance(plda_params, dict), "parameters must be objects")
    _check_params(plda_params)
    PLDAConfig(**plda_params).check()
    log_beta: Any = arrays.get("plda.log_beta")
    _expect(
        log_beta is not None and log_beta.ndim == 2 and min(log_beta.shape) >= 1,
        "plda.log_beta is missing or not 2-D",
    )
    n_topics, n_words = log_beta.shape
    _expect(bool((log_beta <= 0).all()), "plda.log_beta holds log-probabilities above 0")
    _expect(n_topics == meta["n_topics"] == plda_params.get("n_topics"), "the topic counts disagree")
    eta: Any = arrays.get("plda.eta")
    _expect(eta is not None and eta.shape == (n_topics, n_topics), "array plda.eta is missing or misshapen")
    for name in ("gamma", "elbo", "pair_weight", "pair_src", "pair_dst", "pair_linked"):
        _expect(f"plda.{name}" in arrays, f"array plda.{name} is missing")
        _expect(
            arrays[f"plda.{name}"].ndim == (2 if name == "gamma" else 1), f"array plda.{name} has wrong rank"
        )
    n_pairs = len(arrays["plda.pair_src"])
    _expect(arrays["plda.gamma"].shape[1] == n_topics, "plda.gamma has the wrong number of topics")
    for name in ("pair_weight", "pair_dst", "pair_linked"):
        _expect(len(arrays[f"plda.{name}"]) == n_pairs, "the document-pair arrays differ in length")
    linked = arrays["plda.pair_linked"].astype(bool)
    _expect(bool(linked[: int(linked.sum())].all()), "the document pairs do not list linked pairs first")
    return int(n_words)


def _check_siamese(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    from frugalml.prereq.siamese import SiameseConfig

    _expect(meta.get("head") in HEADS, f"head must be one of {', '.join(HEADS)}")
    siamese_params: Any = meta.get("siamese_params")
    _expect(isinstance(siamese_params, dict), "parameters must be objects")
    _check_params(siamese_params)
    cfg = SiameseConfig(**siamese_params)
    cfg.check()
    _expect(
        cfg.threads is None or (isinstance(cfg.threads, int) and 1 <= cfg.threads <= 256),
        "threads must be 1..256",
    )
    _expect(
        cfg.head == meta["head"], f"the network's head {cfg.head!r} differs from the model's {meta['head']!r}"
    )
    n_topics = meta["n_topics"]
    expected: dict[str, tuple[int, ...]] = {
        "siamese.shift": (n_topics,),
        "siamese.scale": (n_topics,),
        "siamese.threshold": (1,),
    }
    _expect(
        bool((arrays["siamese.scale"] != 0).all()) if "siamese.scale" in arrays else True,
        "siamese.scale holds a zero",
    )
    # every network holds 11 arrays, so the file bounds the ensemble before anything is listed
    _expect(cfg.members * 11 <= len(arrays), f"members {cfg.members} exceeds the networks in the file")
    for prefix in network_prefixes(
        cfg.members, {k[8:]: v for k, v in arrays.items() if k.startswith("siamese.")}
    ):
        for name, shape in network_shapes(n_topics, cfg.hidden, cfg.head).items():
            expected[f"siamese.{prefix}{name}"] = shape
    for name, shape in expected.items():
        _expect(name in arrays, f"array {name} is missing")
        # files written before the array store kept 0-d arrays hold the step counter as shape (1,)
        fits = arrays[name].shape == shape or (
            name.endswith("num_batches_tracked") and arrays[name].shape == (1,)
        )
        _expect(fits, f"array {name} has shape {arrays[name].shape}, expected {shape}")
        _expect(not name.endswith("running_var") or bool((arrays[name] >= 0).all()), f"{name} is negative")


def _check_concepts(meta: dict, n_words: int) -> None:
    concepts: Any = meta.get("concepts")
    _expect(isinstance(concepts, dict), "concepts must be an object")
    for name, column in concepts.items():
        _expect(_is_int(column) and 0 <= column < n_words, f"concept {name!r} names no vocabulary column")
    aliases, unseen = meta.get("concept_aliases", {}), meta.get("unseen_concepts", [])
    _expect(
        isinstance(aliases, dict)
        and all(isinstance(v, list) and all(isinstance(a, str) for a in v) for v in aliases.values()),
        "concept_aliases must map names to lists of names",
    )
    _expect(
        isinstance(unseen, list) and all(isinstance(c, str) for c in unseen),
        "unseen_concepts must list names",
    )
