"""URerF: unsupervised randomer forests whose leaf co-membership tracks geodesic distance."""

from frugalml.common.exports import lazy_exports

_EXPORTS = {
    "datasets": ("SIMULATIONS", "Simulation", "simulate"),
    "forest": ("UnsupervisedRandomerForest",),
    "metrics": (
        "geodesic_precision_at_k",
        "geodesic_recall_at_k",
        "label_precision_at_k",
        "label_recall_at_k",
        "neighbors_from_distances",
    ),
    "splits": ("Split", "bic_reference", "fastbic_split", "gmm_split", "twomeans_split"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
