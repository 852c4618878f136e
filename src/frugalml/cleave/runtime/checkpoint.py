"""Atomic, checksummed checkpoints of the PS's model and optimiser, so a restarted PS resumes training."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.files import read_container, write_container

MAGIC = b"CLVCKPT"
VERSION = 1


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
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    write_container(
        path, MAGIC, VERSION, {"step": step, "losses": losses, "config": config}, buffer.getvalue()
    )


def load_checkpoint(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, config: dict
) -> tuple[int, list[float]]:
    """Restore model and optimiser in place; returns (completed steps, their losses).

    Raises
    ------
    CorruptFileError
        The file is damaged, truncated or not a cleave checkpoint.
    InvalidInputError
        It was written by a run with a different model or training configuration.
    """
    header, payload = read_container(path, MAGIC, VERSION)
    saved = dict(header.metadata["config"])
    current = dict(config)
    saved.pop("steps", None)
    current.pop("steps", None)
    if saved != current:
        raise InvalidInputError(
            f"checkpoint {path} was written with {saved}, but this run uses {current}; "
            "use the same options or another --checkpoint path"
        )
    try:
        state = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as exc:
        raise CorruptFileError(f"checkpoint {path} holds an unreadable state ({exc})") from None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(header.metadata["step"]), list(header.metadata["losses"])
