"""What checking a checkpoint costs: the checked reader (:func:`load_checkpoint`: table against the
payload, index ranges of every packed tensor) against the same reading without the checks, and
against torch's own safe loader (``torch.load(weights_only=True)``) on the same weights.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from frugalml.common.env import machine
from frugalml.common.files import read_container
from frugalml.common.report import Record
from frugalml.sparse24.bench.shared import timed
from frugalml.sparse24.formats import (
    _DTYPES,
    CHECKPOINT_MAGIC,
    CHECKPOINT_VERSION,
    load_checkpoint,
    save_checkpoint,
)
from frugalml.sparse24.masks import mask_24


def llama_state(dim: int, hidden: int, layers: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A Llama-shaped state dict: dense attention projections and norms, 2:4 FFN weights."""
    generator = torch.Generator().manual_seed(seed)
    state = {"embed.weight": torch.randn(256, dim, generator=generator)}
    for i in range(layers):
        for name in ("q", "k", "v", "o"):
            state[f"layers.{i}.attention.{name}_proj.weight"] = torch.randn(dim, dim, generator=generator)
        for name, shape in (("w1", (hidden, dim)), ("w2", (dim, hidden))):
            w = torch.randn(*shape, generator=generator)
            state[f"layers.{i}.mlp.{name}.weight"] = w * mask_24(w)
        state[f"layers.{i}.ffn_norm.weight"] = torch.ones(dim)
    return state


def unchecked_load(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The same reading as :func:`load_checkpoint` with no structural or index checks (trusts the
    file; used only to measure what the checks cost)."""
    header, payload = read_container(path, CHECKPOINT_MAGIC, CHECKPOINT_VERSION)
    state = {}
    for entry in header.metadata["tensors"]:
        parts = {}
        for name, p in entry["parts"].items():
            dtype = _DTYPES[p["dtype"]]
            raw = np.frombuffer(
                payload[p["offset"] : p["offset"] + p["length"]],
                dtype=torch.empty((), dtype=dtype).numpy().dtype,
            )
            parts[name] = torch.from_numpy(raw.copy()).reshape(p["shape"])
        if entry["kind"] == "dense":
            state[entry["name"]] = parts["dense"]
            continue
        rows, cols = entry["shape"]
        values = parts["values"].reshape(rows, cols // 4, 2)
        nibbles = parts["indices"]
        codes = torch.stack([nibbles & 0xF, nibbles >> 4], dim=-1).reshape(-1)[: rows * cols // 4]
        positions = torch.stack([codes & 3, codes >> 2], dim=-1).long().reshape(rows, cols // 4, 2)
        dense = torch.zeros(rows, cols // 4, 4, dtype=values.dtype)
        state[entry["name"]] = dense.scatter_(-1, positions, values).reshape(rows, cols)
    return state


def checkpoint_load(
    dim: int = 1024, hidden: int = 4096, layers: int = 4, rounds: int = 7, folder: str | None = None
) -> list[Record]:
    """Load time of a float32 Llama-shaped checkpoint (2:4 FFN weights packed): checked vs unchecked
    reading, and vs ``torch.load(weights_only=True)`` of the same dense state dict (warm page cache)."""
    state = llama_state(dim, hidden, layers)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        ours_path, torch_path = Path(tmp) / "m.sp24", Path(tmp) / "m.pt"
        save_checkpoint(state, ours_path)
        torch.save(state, torch_path)
        loaded = load_checkpoint(ours_path)[0]
        if (
            not all(torch.equal(loaded[k], state[k]) for k in state)
            or unchecked_load(ours_path).keys() != state.keys()
        ):
            raise AssertionError("the checkpoint does not load back the weights it was written from")
        size, torch_size = ours_path.stat().st_size, torch_path.stat().st_size
        workload = (
            f"Llama-shaped checkpoint, dim {dim}, hidden {hidden}, {layers} layers, {size / 1e6:.0f} MB"
        )
        threads = f"{torch.get_num_threads()} torch thread(s)"
        where = f"warm page cache, torch {torch.__version__}, {threads}; {machine(load=True)}"
        checks = timed(
            "load with structural checks",
            workload,
            lambda: load_checkpoint(ours_path),
            lambda: unchecked_load(ours_path),
            "the same reader without any check (trusts the file)",
            rounds,
            f"ratio = unchecked / checked time; the checks cost 1/ratio - 1 of a load; {where}",
        )
        peer = timed(
            "checked load vs torch's safe loader",
            workload,
            lambda: load_checkpoint(ours_path),
            lambda: torch.load(torch_path, weights_only=True),
            f"torch.load(weights_only=True) of the same dense state dict ({torch_size / 1e6:.0f} MB file)",
            rounds,
            f"ratio > 1: ours faster; ours unpacks 2:4 FFN weights from a file {size / torch_size:.2f}x "
            f"the size; {where}",
        )
    return [checks, peer]
