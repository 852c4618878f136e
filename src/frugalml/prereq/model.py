"""The user-facing PREREQ model: corpus -> Pairwise-Link-LDA -> siamese classifier, saved as one file.

>>> model = PrereqModel(n_topics=100).fit(corpus, train_pairs)  # doctest: +SKIP
>>> model.predict_proba(["Machine learning"], ["Linear algebra"])  # doctest: +SKIP
>>> model.save("university.prereq"); PrereqModel.load("university.prereq")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

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
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CorruptFileError(f"{path} is not a valid PREREQ model ({exc}); fit it again") from None
        return model
