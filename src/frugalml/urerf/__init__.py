"""URerF: unsupervised randomer forests whose leaf co-membership tracks geodesic distance."""

from frugalml.urerf.datasets import SIMULATIONS, Simulation, simulate
from frugalml.urerf.forest import UnsupervisedRandomerForest
from frugalml.urerf.metrics import (
    geodesic_precision_at_k,
    geodesic_recall_at_k,
    label_precision_at_k,
    label_recall_at_k,
    neighbors_from_distances,
)
from frugalml.urerf.splits import Split, bic_reference, fastbic_split, gmm_split, twomeans_split

__all__ = [
    "SIMULATIONS",
    "Simulation",
    "Split",
    "UnsupervisedRandomerForest",
    "bic_reference",
    "fastbic_split",
    "geodesic_precision_at_k",
    "geodesic_recall_at_k",
    "gmm_split",
    "label_precision_at_k",
    "label_recall_at_k",
    "neighbors_from_distances",
    "simulate",
    "twomeans_split",
]
