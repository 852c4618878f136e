"""Atomic, checksummed checkpoints of the PS's model and optimiser, so a restarted PS resumes training.

Version 2 stores every tensor as a named array (:mod:`frugalml.common.arrays`: sizes checked
against the file before anything is allocated) and the optimiser's settings as JSON. Version-1
files (a ``torch.save`` payload) are still read, through torch's weights-only loader.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch

from frugalml.common.arrays import load_arrays, save_arrays
from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.files import read_container, read_header

MAGIC = b"CLVCKPT"
VERSION = 2


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    step: int,
    losses: list[float],
    config: dict,
) -> None:
    """Write the state after ``step`` completed steps (atomically: a crash keeps the old file)."""
    arrays = {f"model/{name}": t.detach().cpu().numpy() for name, t in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            arrays[f"optimizer/{index}/{key}"] = value.detach().cpu().numpy()
    meta = {"step": step, "losses": losses, "config": config, "param_groups": opt["param_groups"]}
    save_arrays(path, MAGIC, VERSION, meta, arrays)


def load_checkpoint(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, config: dict
) -> tuple[int, list[float]]:
    """Restore model and optimiser in place; returns (completed steps, their losses).

    Everything is checked before anything is changed: the container, the metadata's shape, every
    tensor's name, shape and dtype against ``model`` and the optimiser state against its
    parameters; nothing is unpickled.

    Raises
    ------
    CorruptFileError
        The file is damaged, truncated, crafted or not a cleave checkpoint.
    InvalidInputError
        It was written by a run with a different model or training configuration.
    """
    if read_header(path, MAGIC, VERSION).version == 1:
        metadata, state = _read_version_1(path)
    else:
        metadata, state = _read_version_2(path, optimizer)
    step, losses, saved = _metadata(path, metadata)
    current = dict(config)
    saved.pop("steps", None)
    current.pop("steps", None)
    if saved != current:
        raise InvalidInputError(
            f"checkpoint {path} was written with {saved}, but this run uses {current}; "
            "use the same options or another --checkpoint path"
        )
    _check_state(path, state, model, optimizer)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return step, losses


def _read_version_2(path: str | Path, optimizer: torch.optim.Optimizer) -> tuple[dict, Any]:
    """(metadata, state) of a version-2 file; the state's shape is checked by the caller."""
    metadata, arrays = load_arrays(path, MAGIC, VERSION)
    weights: dict[str, torch.Tensor] = {}
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for name, array in arrays.items():
        kind, _, rest = name.partition("/")
        if kind == "model":
            weights[rest] = torch.from_numpy(array)
            continue
        index, _, key = rest.partition("/")
        if kind != "optimizer" or not index.isdigit() or not key:
            raise CorruptFileError(f"checkpoint {path} holds an unknown array {name!r}")
        opt_state.setdefault(int(index), {})[key] = torch.from_numpy(array)
    groups = metadata.get("param_groups")
    if isinstance(groups, list):  # JSON turned tuples (AdamW's betas) into lists
        want = optimizer.state_dict()["param_groups"]
        for group, template in zip(groups, want, strict=False):
            if isinstance(group, dict):
                for key, value in group.items():
                    if isinstance(template.get(key), tuple) and isinstance(value, list):
                        group[key] = tuple(value)
    return metadata, {"model": weights, "optimizer": {"state": opt_state, "param_groups": groups}}


def _read_version_1(path: str | Path) -> tuple[dict, Any]:
    """(metadata, state) of a version-1 file, whose payload is a ``torch.save`` archive."""
    header, payload = read_container(path, MAGIC, 1)
    try:
        state = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as exc:  # torch's own messages span many lines and suggest unsafe loading
        raise CorruptFileError(
            f"checkpoint {path} holds an unreadable state ({type(exc).__name__}); write it again"
        ) from None
    return dict(header.metadata), state


def _metadata(path: str | Path, metadata: dict) -> tuple[int, list[float], dict]:
    """(step, losses, config) from a checkpoint's metadata, refusing anything of another shape."""
    step, losses, config = metadata.get("step"), metadata.get("losses"), metadata.get("config")
    if not (
        isinstance(step, int)
        and not isinstance(step, bool)
        and step >= 0
        and isinstance(losses, list)
        and len(losses) == step
        and all(type(x) in (int, float) for x in losses)
        and isinstance(config, dict)
    ):
        raise CorruptFileError(f"checkpoint {path} has metadata of the wrong shape (step, losses, config)")
    return step, [float(x) for x in losses], dict(config)


def _check_state(
    path: str | Path, state: object, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Refuse a state whose tensors do not match ``model`` and ``optimizer`` exactly."""

    def bad(what: str) -> CorruptFileError:
        return CorruptFileError(f"checkpoint {path} does not match this model: {what}")

    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise bad("no model state")
    expected = model.state_dict()
    weights = state["model"]
    if weights.keys() != expected.keys():
        raise bad(f"tensor names differ ({sorted(set(weights) ^ set(expected))[:3]}...)")
    for name, tensor in weights.items():
        want = expected[name]
        if not isinstance(tensor, torch.Tensor) or tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise bad(f"{name} is not a {want.dtype} tensor of shape {tuple(want.shape)}")
    _check_optimizer(state.get("optimizer"), optimizer, bad)


def _check_optimizer(saved: object, optimizer: torch.optim.Optimizer, bad) -> None:
    """The optimiser state: the same parameter groups, and per-parameter tensors of its shape."""
    current = optimizer.state_dict()
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
        raise bad("no optimiser state")
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or len(groups) != len(current["param_groups"]):
        raise bad("optimiser parameter groups differ")
    for group, want in zip(groups, current["param_groups"], strict=True):
        if not isinstance(group, dict) or group.keys() != want.keys() or group["params"] != want["params"]:
            raise bad("optimiser parameter groups differ")
        for key, value in group.items():  # settings (lr, betas, eps...) of the type this optimiser uses
            if type(value) is not type(want[key]) or (isinstance(value, float) and not math.isfinite(value)):
                raise bad(f"optimiser setting {key!r} is {value!r}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entry in saved["state"].items():
        if type(index) is not int or not 0 <= index < len(params) or not isinstance(entry, dict):
            raise bad(f"optimiser state for an unknown parameter {index!r}")
        for key, value in entry.items():
            scalar = isinstance(value, torch.Tensor) and value.dim() == 0
            if not (scalar or (isinstance(value, torch.Tensor) and value.shape == params[index].shape)):
                raise bad(f"optimiser state {key!r} of parameter {index} has the wrong shape")
