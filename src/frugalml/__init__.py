"""frugalml: seven research systems for cheaper machine learning, as software people can use."""

__version__ = "0.1.0"

SYSTEMS: dict[str, str] = {
    "maskedmm": "C = A @ B on dense arrays full of run-time zeros, faster than BLAS by skipping them",
    "pacset": "pack tree ensembles into block-aligned files; predict from disk or Redis in few I/Os",
    "urerf": "unsupervised randomer forests that learn geodesic distances robust to noise",
    "prereq": "infer concept prerequisite relations with Pairwise-Link-LDA and a siamese network",
    "composer": "search hybrid architectures on cheap proxies and extrapolate winners to large models",
    "cleave": "plan, simulate and run model training on many weak edge devices",
    "sparse24": "2:4 weight and V:N:M activation sparsity for FFNs in LLM pre-training",
}
