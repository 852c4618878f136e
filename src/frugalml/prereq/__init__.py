"""PREREQ: infer concept prerequisite relations from documents and their links.

Pairwise-Link-LDA (vectorised variational EM, direction bug fixed, monotone ELBO, pair sampling,
fold-in) gives concept vectors; a siamese network (abs / diff / concat / rich / bilinear heads)
classifies concept pairs. Baselines, splits and metrics live in :mod:`methods` and :mod:`evaluate`.
"""

from frugalml.common.exports import lazy_exports

_EXPORTS = {
    "data": (
        "DATASETS",
        "Corpus",
        "Dataset",
        "PairSet",
        "links_from_playlists",
        "links_from_prerequisites",
        "load",
        "load_nptel",
        "load_refd",
        "load_university",
        "normalise_concept",
        "read_ldac",
        "write_ldac",
    ),
    "ingest": (
        "ConceptIndex",
        "TextOptions",
        "bag_of_words",
        "build_corpus",
        "load_course",
        "read_concepts",
        "read_labelled_pairs",
        "read_texts",
    ),
    "model": ("PrereqModel",),
    "plda": ("PairwiseLinkLDA",),
    "siamese": ("SiameseClassifier",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
