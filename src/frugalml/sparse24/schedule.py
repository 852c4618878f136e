"""The sparse training schedule (dense warm-up -> sparse -> dense tail) and its telemetry."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import one_of
from frugalml.sparse24.masks import kept_fraction
from frugalml.sparse24.swap import densify, sparse_layers, sparsify_ffn

log = logging.getLogger("frugalml.sparse24")


def telemetry(model: nn.Module) -> dict[str, float]:
    """Averages over the model's sparse layers: weight density, kept |w| fraction, mask flip rate
    (the last one measured, every ``flip_every`` training forwards; absent until measured and when
    ``flip_every=0``),
    activation density (last training step); empty when the model is dense.
    """
    layers = [layer for _, layer in sparse_layers(model)]
    if not layers:
        return {}
    weighted = [layer for layer in layers if layer.config.weights]
    stats: dict[str, float] = {"sparse_layers": float(len(layers))}
    if weighted:
        with torch.no_grad():
            masks = [layer.mask() for layer in weighted]
            stats["weight_density"] = sum(float(m.float().mean()) for m in masks) / len(masks)
            stats["kept_magnitude"] = sum(
                kept_fraction(layer.weight, m, 1.0) for layer, m in zip(weighted, masks, strict=True)
            ) / len(masks)
        rates = [layer.last_flip_rate for layer in weighted if layer.config.flip_every]
        measured = [rate for rate in rates if not math.isnan(rate)]
        if measured:
            stats["flip_rate"] = sum(measured) / len(measured)
    inputs = [layer for layer in layers if layer.sparse_input]
    if inputs:
        stats["activation_density"] = sum(layer.last_activation_density for layer in inputs) / len(inputs)
    return stats


@dataclass
class SparsitySchedule:
    """Dense warm-up for ``warmup_fraction`` of the steps, sparse for ``sparse_fraction``, dense after.

    ``dense_from`` says what the dense tail starts from: the effective sparse weights (``"sparse"``,
    a continuous switch) or the dense master weights (``"master"``); see :func:`densify`.

    Call :meth:`update` at the start of every step: it swaps the model's FFNs at the phase
    boundaries (switching back uses the dense master weights) and returns the phase name.
    :meth:`record` logs telemetry into ``history`` and the ``frugalml.sparse24`` logger.

    Examples
    --------
    >>> s = SparsitySchedule(total_steps=100, sparse_fraction=0.8)
    >>> s.phase(0), s.phase(79), s.phase(80)
    ('sparse', 'sparse', 'dense-tail')
    """

    total_steps: int
    sparse_fraction: float = 0.8
    warmup_fraction: float = 0.0
    sparsity: dict[str, Any] = field(default_factory=dict)
    dense_from: str = "sparse"
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        one_of(self.dense_from, ("sparse", "master"), "dense_from")
        if self.total_steps < 1:
            raise InvalidInputError(f"total_steps must be at least 1, got {self.total_steps}")
        for name in ("sparse_fraction", "warmup_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.sparse_fraction + self.warmup_fraction > 1.0 + 1e-9:
            raise InvalidInputError(
                f"warmup_fraction + sparse_fraction = {self.sparse_fraction + self.warmup_fraction:g} > 1; "
                "lower one of them"
            )
        self._current: str | None = None

    @property
    def sparse_steps(self) -> tuple[int, int]:
        """[start, end) of the sparse phase."""
        start = round(self.warmup_fraction * self.total_steps)
        return start, start + round(self.sparse_fraction * self.total_steps)

    def phase(self, step: int) -> str:
        start, end = self.sparse_steps
        if step < start:
            return "dense-warmup"
        return "sparse" if step < end else "dense-tail"

    def update(self, model: nn.Module, step: int) -> str:
        """Swap the model's FFNs if ``step`` enters a new phase; return the phase."""
        phase = self.phase(step)
        if phase != self._current:
            if phase == "sparse":
                sparsify_ffn(model, **self.sparsity)
            elif self._current == "sparse":
                densify(model, self.dense_from)
            if self._current is not None:
                log.info("step %d: %s -> %s", step, self._current, phase)
            self._current = phase
        return phase

    def record(self, model: nn.Module, step: int, **values: Any) -> dict[str, Any]:
        """Append ``{step, phase, values..., telemetry...}`` to ``history`` and log it.

        ``step`` counts completed steps; the phase recorded is that of the last completed step.
        """
        entry = {"step": step, "phase": self.phase(max(step - 1, 0)), **values, **telemetry(model)}
        self.history.append(entry)
        log.info(
            "%s", " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items())
        )
        return entry
