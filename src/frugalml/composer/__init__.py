"""composer: search hybrid architectures (strings over primitives) on cheap proxies and extrapolate.

Build models from strings (:class:`HybridLM`), score them on MAD or LM proxies through a cached
:class:`Evaluator`, search with ask/tell engines, aggregate the results and grow the winner.
Names load lazily so that ``frugal --help`` does not import torch.
"""

from __future__ import annotations

from frugalml.common.exports import lazy_exports

_EXPORTS = {
    "aggregation": ("aggregate", "METHODS", "pareto_front"),
    "cache": ("ResultCache",),
    "engines": (
        "ENGINES",
        "Space",
        "make_engine",
        "GPBayesOpt",
        "BoTorchBayesOpt",
        "RandomSearch",
        "RegularizedEvolution",
        "OptunaTPE",
        "Exhaustive",
    ),
    "evaluator": ("Evaluator", "InlineExecutor", "LocalExecutor", "RayExecutor", "make_executor"),
    "extrapolation": ("TARGETS", "extrapolate", "matched_baselines", "stack", "stretch"),
    "mad": ("MADTask",),
    "model": (
        "HybridConfig",
        "HybridLM",
        "check_arch",
        "flops_per_token",
        "kv_cache_bytes",
        "non_embedding_params",
        "param_count",
        "runs",
        "state_bytes",
    ),
    "primitives": ("PRIMITIVES", "LayerConfig", "Primitive", "register_primitive", "unregister_primitive"),
    "proxies": ("LMProxy", "MADProxy", "ModelShape", "TrainConfig"),
    "strategies": ("STRATEGIES", "SearchResult", "search"),
    "tabular": ("compare_engines", "load_table"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
