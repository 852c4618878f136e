"""The two-way swap: :func:`sparsify_ffn` makes a model's FFNs sparse, :func:`densify` turns them back.

An FFN is any module holding Linear layers under one of the common attribute layouts (HF Llama's
``gate_proj/up_proj/down_proj``, Meta Llama's ``w1/w3/w2``, our ``w1/w2``, ``fc1/fc2``). Input
projections get 2:4 weights; the output projection gets 2:4 weights and a V:N:M input. Parameters
are shared, never copied, so an optimizer keeps working and densify restores the identical model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import one_of
from frugalml.sparse24.layers import SparseLinear, SparsityConfig

# (input projections, output projection); the first layout a module matches wins.
FFN_LAYOUTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("gate_proj", "up_proj"), "down_proj"),
    (("w1", "w3"), "w2"),
    (("w1",), "w2"),
    (("fc1",), "fc2"),
)


def _layout(module: nn.Module) -> tuple[tuple[str, ...], str] | None:
    for inputs, output in FFN_LAYOUTS:
        names = (*inputs, output)
        if all(isinstance(getattr(module, n, None), nn.Linear | SparseLinear) for n in names):
            return inputs, output
    return None


def find_ffns(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every FFN in ``model`` (outermost match; the model itself counts)."""
    found: list[tuple[str, nn.Module]] = []
    inside: set[str] = set()
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in inside):
            continue
        if _layout(module) is not None:
            found.append((name, module))
            inside.add(name)
    return found


def sparsify_ffn(
    model: nn.Module, weights: str | None = "2:4", activations: str | None = "vnm:64:2:8", **options: Any
) -> nn.Module:
    """Make every FFN of ``model`` sparse, in place; return ``model``.

    Parameters
    ----------
    model : nn.Module
        A tiny Llama, an HF-Llama-style model, a bare FFN, or anything holding FFNs.
    weights, activations :
        See :class:`SparsityConfig` (``"2:4"`` / None, ``"vnm:V:N:M"`` / ``"2:4"`` / None).
    **options :
        Other :class:`SparsityConfig` fields: method, transposable, transposable_method, mvue, router,
        backend, seed, flip_every, mask_every, vnm_kernel.

    Raises
    ------
    InvalidInputError
        No FFN found, a dimension not divisible by 4 (or by M), an unknown option.

    Examples
    --------
    >>> from frugalml.sparse24 import SquaredReLUFFN
    >>> ffn = sparsify_ffn(SquaredReLUFFN(64, 256), activations="vnm:16:2:8")
    >>> type(densify(ffn).w1).__name__
    'Linear'
    """
    unknown = set(options) - set(SparsityConfig.__dataclass_fields__)
    if unknown:
        raise InvalidInputError(
            f"unknown sparsify option(s) {sorted(unknown)}; choose from "
            f"{sorted(set(SparsityConfig.__dataclass_fields__) - {'weights', 'activations'})}"
        )
    config = SparsityConfig(weights=weights, activations=activations, **options)
    ffns = find_ffns(model)
    if not ffns:
        layouts = "; ".join("/".join((*i, o)) for i, o in FFN_LAYOUTS)
        raise InvalidInputError(
            f"no FFN found in {type(model).__name__}: looked for Linear layers named {layouts}"
        )
    for name, ffn in ffns:
        layout = _layout(ffn)
        if layout is None:  # find_ffns returns only modules that have one
            continue
        inputs, output = layout
        for attr in (*inputs, output):
            layer = getattr(ffn, attr)
            if isinstance(layer, SparseLinear):
                layer = layer.to_dense()
            try:
                sparse = SparseLinear.from_dense(layer, config, sparse_input=attr == output)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{name or 'model'}.{attr}: {exc}") from None
            setattr(ffn, attr, sparse)
    return model


def densify(model: nn.Module, start_from: str = "master") -> nn.Module:
    """Replace every :class:`SparseLinear` in ``model`` by an nn.Linear with the same parameters.

    Parameters
    ----------
    start_from : {"master", "sparse"}
        ``"master"`` restores the dense master weights untouched (the exact inverse of
        :func:`sparsify_ffn`); ``"sparse"`` first writes the effective 2:4 weights into them (in
        place, so optimizers keep their state), so the dense model starts from the function the
        sparse one computed instead of jumping back to the master weights.
    """
    one_of(start_from, ("master", "sparse"), "densify start_from")
    if isinstance(model, SparseLinear):
        _absorb(model, start_from)
        return model.to_dense()
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, SparseLinear):
                _absorb(child, start_from)
                setattr(module, child_name, child.to_dense())
    return model


def _absorb(layer: SparseLinear, start_from: str) -> None:
    if start_from == "sparse" and layer.config.weights:
        with torch.no_grad():
            layer.weight.copy_(layer.effective_weight())


def sparse_layers(model: nn.Module) -> list[tuple[str, SparseLinear]]:
    """(name, layer) of every SparseLinear in ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SparseLinear)]


def export_sparse_state(model: nn.Module) -> dict:
    """A state dict whose sparse weights are the effective 2:4 weights the model computes with."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, layer in sparse_layers(model):
        if layer.config.weights:
            key = f"{name}.weight" if name else "weight"
            state[key] = layer.effective_weight().detach().clone()
    return state
