"""PREREQ: infer concept prerequisite relations from documents and their links.

Pairwise-Link-LDA (vectorised variational EM, direction bug fixed, monotone ELBO, pair sampling,
fold-in) gives concept vectors; a siamese network (abs / diff / concat / rich / bilinear heads)
classifies concept pairs. Baselines, splits and metrics live in :mod:`methods` and :mod:`evaluate`.
"""

from frugalml.prereq.data import (
    DATASETS,
    Corpus,
    Dataset,
    PairSet,
    bag_of_words,
    links_from_playlists,
    links_from_prerequisites,
    load,
    load_nptel,
    load_refd,
    load_university,
    normalise_concept,
    read_ldac,
    write_ldac,
)
from frugalml.prereq.model import PrereqModel
from frugalml.prereq.plda import PairwiseLinkLDA
from frugalml.prereq.siamese import SiameseClassifier

__all__ = [
    "DATASETS",
    "Corpus",
    "Dataset",
    "PairSet",
    "PairwiseLinkLDA",
    "PrereqModel",
    "SiameseClassifier",
    "bag_of_words",
    "links_from_playlists",
    "links_from_prerequisites",
    "load",
    "load_nptel",
    "load_refd",
    "load_university",
    "normalise_concept",
    "read_ldac",
    "write_ldac",
]
