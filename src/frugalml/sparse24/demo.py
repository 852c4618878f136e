"""``frugal sparse24 demo``: a tiny Llama trained sparse-then-dense vs dense on the embedded corpus."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path


def run(quiet: bool = False, steps: int = 150) -> str:
    """Train a ~0.1M-parameter byte-level Llama on Python's own sources, dense and with the recipe
    10% dense warm-up, 80% sparse (2:4 weights, vnm:64:2:8 activations), 10% dense; return a
    one-line summary.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: more threads only add synchronisation
    try:
        return _run(steps, quiet)
    finally:
        torch.set_num_threads(threads)


def _run(steps: int, quiet: bool) -> str:
    from frugalml.common.corpus import stdlib_bytes
    from frugalml.sparse24.formats import load_checkpoint
    from frugalml.sparse24.model import LlamaConfig
    from frugalml.sparse24.swap import sparsify_ffn
    from frugalml.sparse24.train import TrainConfig, save_model, train

    model_config = LlamaConfig(dim=64, n_layers=2, n_heads=2, hidden=256, max_seq_len=64)
    config = TrainConfig(
        steps=steps,
        batch_size=8,
        seq_len=64,
        lr=3e-3,
        lr_warmup_steps=5,
        eval_every=steps,
        eval_batches=4,
        warmup_fraction=0.1,
        sparse_fraction=0.8,
    )
    corpus = stdlib_bytes(400_000)
    sparse = train(model_config, config, corpus, quiet=quiet, label="sparse->dense")
    dense = train(
        model_config, replace(config, weights=None, activations=None), corpus, quiet=quiet, label="dense"
    )
    pruned = sparsify_ffn(sparse.model, activations=None, method="ste")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sparse.sp24"
        sizes = save_model(pruned, path, model_config)
        load_checkpoint(path)
    gap = sparse.final_val_loss / dense.final_val_loss - 1
    return (
        f"{steps} steps, {sparse.parameters / 1e3:.0f}k params: 10% dense, 80% sparse "
        f"(2:4 + vnm:64:2:8), 10% dense: val loss {sparse.final_val_loss:.3f} "
        f"vs dense {dense.final_val_loss:.3f} ({gap:+.1%}); "
        f"its 2:4-pruned checkpoint {sizes['dense_bytes'] / sizes['file_payload_bytes']:.2f}x smaller"
    )
