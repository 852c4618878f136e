"""The user-facing PREREQ model: corpus -> Pairwise-Link-LDA -> siamese classifier, saved as one file.

>>> model = PrereqModel(n_topics=100).fit(corpus, train_pairs)  # doctest: +SKIP
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
from frugalml.prereq.siamese import HEADS, PREREQ_SIAMESE, SiameseClassifier

MAGIC = b"PREREQ"
VERSION = 3  # 2: the siamese classifier stores its input shift; 3: an ensemble of networks


class PrereqModel:
    """Predict whether concept B is a prerequisite of concept A from documents and links.

    Parameters
    ----------
    n_topics : int
        Topics of the Pairwise-Link-LDA.
    head : {"abs", "diff", "concat", "rich", "bilinear"}, optional
        Siamese pair head (default: PREREQ's, ``PREREQ_SIAMESE["head"]``); ``abs`` (the paper's) is
        symmetric, the others see direction.
    plda_params, siamese_params : dict, optional
        Further settings of :class:`PairwiseLinkLDA` and :class:`SiameseClassifier` (the latter
        override ``PREREQ_SIAMESE``, the settings chosen by inner validation).
    seed : int

    Attributes
    ----------
    plda_ : PairwiseLinkLDA
    classifier_ : SiameseClassifier
    concepts_ : dict of concept name -> vocabulary column
    aliases_ : dict of concept name -> its other names
    unseen_ : concepts listed by the user that never occur in the texts
    """

    def __init__(
        self,
        n_topics: int = 100,
        *,
        head: str = PREREQ_SIAMESE["head"],
        plda_params: dict | None = None,
        siamese_params: dict | None = None,
        seed: int = 0,
    ):
        self.n_topics = n_topics
        self.head = head
        self.plda_params = dict(plda_params or {})
        self.siamese_params = dict(siamese_params or {})
        self.seed = seed

    def fit(self, corpus: Corpus, pairs: PairSet, *, plda: PairwiseLinkLDA | None = None) -> PrereqModel:
        """Fit the topic model on the corpus (unless a fitted ``plda`` is given), then the
        classifier on the labelled pairs."""
        validate.one_of(self.head, HEADS, "head")
        if len(pairs) == 0:
            raise InvalidInputError("no labelled pairs to train on")
        self.concepts_ = dict(corpus.concepts)
        self.aliases_ = {k: list(v) for k, v in corpus.meta.get("concept_aliases", {}).items()}
        self.unseen_ = list(corpus.meta.get("unseen_concepts", []))
        self._index_cache = None
        self.plda_ = plda or PairwiseLinkLDA(self.n_topics, seed=self.seed, **self.plda_params).fit(
            corpus.counts, corpus.links
        )
        params = {"seed": self.seed, **PREREQ_SIAMESE, **self.siamese_params, "head": self.head}
        self.classifier_ = SiameseClassifier(**params).fit(
            self.vectors(pairs.a), self.vectors(pairs.b), pairs.y
        )
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
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
        return self.classifier_.predict_proba(self.vectors(a), self.vectors(b))

    def predict(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        return (self.predict_proba(a, b) >= self.classifier_.threshold_).astype(np.int64)

    def graph(self, concepts: Sequence[str] | None = None) -> list[tuple[str, str, float]]:
        """Predicted prerequisite edges ``(concept, prerequisite, probability)`` among concepts."""
        self._check_fitted()
        names = sorted({self.resolve(c) for c in concepts} if concepts is not None else self.concepts_)
        a = [x for x in names for _ in names]
        b = [z for _ in names for z in names]
        keep = [i for i in range(len(a)) if a[i] != b[i]]
        a, b = [a[i] for i in keep], [b[i] for i in keep]
        prob = self.predict_proba(a, b)
        on = prob >= self.classifier_.threshold_
        return [(x, z, float(p)) for x, z, p, o in zip(a, b, prob, on, strict=True) if o]

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the model atomically as a versioned, checksummed container."""
        self._check_fitted()
        arrays = {f"plda.{k}": v for k, v in self.plda_.state().items()}
        arrays.update({f"siamese.{k}": v for k, v in self.classifier_.state().items()})
        meta = {
            "n_topics": self.n_topics,
            "head": self.head,
            "seed": self.seed,
            "plda_params": self.plda_.get_params(),
            "siamese_params": self.classifier_.get_params(),
            "concepts": self.concepts_,
            "concept_aliases": self.aliases_,
            "unseen_concepts": self.unseen_,
        }
        save_arrays(path, MAGIC, VERSION, meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PrereqModel:
        """Read a model written by :meth:`save` (checks magic, version and checksums)."""
        meta, arrays = load_arrays(path, MAGIC, VERSION)
        try:
            check_state(meta, arrays)
            model = cls(meta["n_topics"], head=meta["head"], seed=meta["seed"])
            model.concepts_ = {str(k): int(v) for k, v in meta["concepts"].items()}
            model.aliases_ = {str(k): [str(a) for a in v] for k, v in meta.get("concept_aliases", {}).items()}
            model.unseen_ = [str(c) for c in meta.get("unseen_concepts", [])]
            model.plda_ = PairwiseLinkLDA.from_state(
                meta["plda_params"], {k[5:]: v for k, v in arrays.items() if k.startswith("plda.")}
            )
            model.classifier_ = SiameseClassifier.from_state(
                meta["siamese_params"], {k[8:]: v for k, v in arrays.items() if k.startswith("siamese.")}
            )
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
    from frugalml.prereq.plda import PLDAConfig
    from frugalml.prereq.siamese import SiameseConfig

    _expect(_is_int(meta.get("n_topics")) and meta["n_topics"] >= 1, "n_topics must be a positive integer")
    _expect(meta.get("head") in HEADS, f"head must be one of {', '.join(HEADS)}")
    _expect(_is_int(meta.get("seed")), "seed must be an integer")
    for name, value in arrays.items():
        _expect(value.dtype.kind in "biuf", f"array {name!r} has dtype {value.dtype}, not a real number")
        _expect(value.dtype.kind != "f" or bool(np.isfinite(value).all()), f"array {name!r} is not finite")
    plda_params: Any = meta.get("plda_params")
    siamese_params: Any = meta.get("siamese_params")
    _expect(isinstance(plda_params, dict) and isinstance(siamese_params, dict), "parameters must be objects")
    for key, value in [*plda_params.items(), *siamese_params.items()]:
        if key in _INT_PARAMS:
            _expect(_is_int(value) or (value is None and key == "threads"), f"{key} must be an integer")
        elif not isinstance(value, str) and not (value is None and key == "unlinked_weight"):
            _expect(_is_number(value), f"{key} must be a finite number")
    PLDAConfig(**plda_params).check()
    cfg = SiameseConfig(**siamese_params)
    cfg.check()
    _expect(
        cfg.threads is None or (isinstance(cfg.threads, int) and 1 <= cfg.threads <= 256),
        "threads must be 1..256",
    )
    _expect(
        cfg.head == meta["head"], f"the network's head {cfg.head!r} differs from the model's {meta['head']!r}"
    )
    log_beta: Any = arrays.get("plda.log_beta")
    _expect(
        log_beta is not None and log_beta.ndim == 2 and min(log_beta.shape) >= 1,
        "plda.log_beta is missing or not 2-D",
    )
    n_topics, n_words = log_beta.shape
    _expect(bool((log_beta <= 0).all()), "plda.log_beta holds log-probabilities above 0")
    _expect(n_topics == meta["n_topics"] == plda_params.get("n_topics"), "the topic counts disagree")
    expected = {
        "plda.eta": (n_topics, n_topics),
        "siamese.shift": (n_topics,),
        "siamese.scale": (n_topics,),
        "siamese.threshold": (1,),
    }
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
