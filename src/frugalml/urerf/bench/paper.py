"""The published numbers of Madhyastha et al. 2019 that our measurements are shown beside."""

from __future__ import annotations

PAPER_NOISE = (0, 10, 50, 100, 1000, 5000, 10000)
PAPER_P50 = {  # Madhyastha et al. 2019, Fig. 3/4: P@50, n = 1000, 300 trees, axis-aligned
    "linear": {
        "urerf": (0.811, 0.751, 0.687, 0.648, 0.405, 0.273, 0.257),
        "isomap": (0.995, 0.054),
        "umap": (0.817, 0.051),
        "rf": (0.899, 0.284, 0.121, 0.091, 0.053),
    },
    "helix": {
        "urerf": (0.831, 0.752, 0.624, 0.560, 0.281, 0.193, 0.173),
        "isomap": (1.0, 0.240, 0.120, 0.094, 0.058),
        "umap": (0.834, 0.334, 0.198, 0.149, 0.051),
        "rf": (0.847, 0.355, 0.097, 0.078),
        "euclidean": (0.897, 0.247, 0.139, 0.110, 0.065),
    },
    "sphere": {
        "urerf": (0.534, 0.602, 0.522, 0.478, 0.317, 0.229, 0.241),
        "isomap": (0.947, 0.108, 0.060),
        "umap": (0.677, 0.081),
    },
}
DROSOPHILA_K = (50, 70, 90, 110, 130, 150)
PAPER_DROSOPHILA = {
    "urerf": (0.794, 0.722, 0.633, 0.569, 0.500, 0.452),
    "isomap": (0.746, 0.676, 0.580, 0.521, 0.469, 0.422),
    "umap": (0.740, 0.648, 0.566, 0.534, 0.475, 0.428),
    "rf": (0.736, 0.643, 0.584, 0.550, 0.502, 0.456),
    "euclidean": (0.735, 0.637, 0.538, 0.460, 0.405, 0.369),
}


def paper_value(dataset: str, method: str, noise: int) -> float | None:
    """The paper's P@50 for a method at a noise level, when it was published.

    Examples
    --------
    >>> paper_value("helix", "urerf", 10), paper_value("helix", "umap", 10000)
    (0.752, None)
    """
    values = PAPER_P50.get(dataset, {}).get(method, ())
    position = PAPER_NOISE.index(noise) if noise in PAPER_NOISE else len(values)
    return values[position] if position < len(values) else None
