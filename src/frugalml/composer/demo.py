"""``frugal demo`` for composer: a tiny BO search on a tiny MAD proxy, then its winner extrapolated."""

from __future__ import annotations


def run(quiet: bool = False) -> str:
    """Search 4-layer A/M architectures on in-context recall with 6 evaluations; one-line summary."""
    from frugalml.common.threads import torch_threads
    from frugalml.composer.evaluator import Evaluator
    from frugalml.composer.extrapolation import extrapolate
    from frugalml.composer.mad import MADTask
    from frugalml.composer.proxies import MADProxy, ModelShape, TrainConfig
    from frugalml.composer.strategies import search

    task = MADTask("recall", vocab_size=8, seq_len=16, num_train=512, num_test=128)
    proxy = MADProxy(
        tasks=(task,),
        shape=ModelShape(width=16, heads=2, kv_heads=1),
        train=TrainConfig(steps=60, batch_size=32, learning_rates=(1e-2,), evals=2),
    )
    evaluator = Evaluator(proxy)
    with torch_threads(1):
        result = search(evaluator.scores, "AM", 4, engine="bo", budget=6, seed=0)
    best, score = result.best
    grown = extrapolate(best, mode="stack", target="llama3.2-1b")
    return (
        f"BO found {best} (recall accuracy {score:.2f}) in 6 of 16 evaluations; stacked to "
        f"Llama-3.2-1B size: {grown.layers} layers, {grown.attention_layers} attention"
    )
