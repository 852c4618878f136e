"""The extrapolator: grow a searched architecture to a target size, and parameter-matched baselines.

Split the architecture into runs {(p_g, h_g)} and let s = M / m (target over searched size, in
non-embedding parameters at the target width, or in layers). **Stretch**: each run becomes
ceil(s h_g) long. **Stack**: repeat the block floor(s) times, then stretch it by the remainder
s - floor(s). At Llama-3.2-1B width this gives 27 layers for ``AAMMMM`` (stack) and 29 for
``AAMMMMMAAMMMAMMM`` (stretch), as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import one_of
from frugalml.composer.limits import MAX_LAYERS
from frugalml.composer.model import check_arch, from_runs, non_embedding_params, runs
from frugalml.composer.primitives import LayerConfig

MODES = ("stack", "stretch")
_EPS = 1e-9


@dataclass(frozen=True)
class Target:
    """A model size to extrapolate to: its widths and its reference architecture."""

    name: str
    layer: LayerConfig
    reference: str
    vocab_size: int

    @property
    def non_embedding_params(self) -> int:
        return non_embedding_params(self.reference, self.layer)


TARGETS: dict[str, Target] = {
    "llama3.2-1b": Target(
        "llama3.2-1b",
        LayerConfig(width=2048, heads=32, kv_heads=8, mlp_hidden=8192, window=4096),
        "AM" * 16,
        128_256,
    ),
    "llama3.2-3b": Target(
        "llama3.2-3b",
        LayerConfig(width=3072, heads=24, kv_heads=8, mlp_hidden=8192, window=4096),
        "AM" * 28,
        128_256,
    ),
}


def stretch(arch: str, scale: float) -> str:
    """Each run of one primitive becomes ``ceil(scale * length)`` long."""
    check_arch(arch)
    if not scale > 0:
        raise InvalidInputError(f"scale must be positive, got {scale}")
    return from_runs([(p, max(1, math.ceil(scale * h - _EPS))) for p, h in runs(arch)])


def stack(arch: str, scale: float) -> str:
    """``floor(scale)`` copies of the block, then the block stretched by the remainder."""
    check_arch(arch)
    if not scale > 0:
        raise InvalidInputError(f"scale must be positive, got {scale}")
    copies = math.floor(scale + _EPS)
    rest = scale - copies
    return arch * copies + (stretch(arch, rest) if rest > 1e-6 else "")


@dataclass(frozen=True)
class Extrapolation:
    """An extrapolated architecture and how it compares with the target's reference."""

    source: str
    arch: str
    mode: str
    scale: float
    layers: int
    attention_layers: int
    non_embedding_params: int
    reference_params: int

    def to_dict(self) -> dict:
        return asdict(self)


def extrapolate(
    arch: str,
    *,
    mode: str = "stack",
    target: str | Target | None = "llama3.2-1b",
    layers: int | None = None,
    params: int | None = None,
    layer: LayerConfig | None = None,
) -> Extrapolation:
    """Grow ``arch`` to a target given by name, by a layer count or by non-embedding parameters.

    Parameters
    ----------
    arch : str
        The searched architecture.
    mode : str
        ``"stack"`` (for short searched blocks) or ``"stretch"``.
    target : str or Target, optional
        A name from :data:`TARGETS`: s = its non-embedding parameters / those of ``arch`` at its width.
    layers : int, optional
        Instead of a target: s = layers / len(arch).
    params : int, optional
        Instead of a target: s = params / non-embedding parameters of ``arch`` at ``layer`` widths.
    layer : LayerConfig, optional
        Widths for ``params`` (and for the reported counts); defaults to the target's.

    Examples
    --------
    >>> extrapolate("AAMMMM", mode="stack").arch
    'AAMMMMAAMMMMAAMMMMAAMMMMAMM'
    """
    check_arch(arch)
    one_of(mode, MODES, "mode")
    given = sum(x is not None for x in (layers, params))
    if given > 1:
        raise InvalidInputError("give either layers or params, not both")
    if given == 0:
        if target is None:
            raise InvalidInputError("give a target, a layer count or a parameter count")
        if isinstance(target, str):
            one_of(target, TARGETS, "target")
            target = TARGETS[target]
        layer = layer or target.layer
        ref_params = target.non_embedding_params
        scale = ref_params / non_embedding_params(arch, layer)
    elif layers is not None:
        if layers < 1:
            raise InvalidInputError(f"layers must be positive, got {layers}")
        layer = layer or LayerConfig()
        scale = layers / len(arch)
        ref_params = 0
    else:
        assert params is not None  # exactly one of layers and params was given
        if params < 1:
            raise InvalidInputError(f"params must be positive, got {params}")
        layer = layer or (
            TARGETS[target].layer if isinstance(target, str) and target in TARGETS else LayerConfig()
        )
        scale = params / non_embedding_params(arch, layer)
        ref_params = params
    if not scale * len(arch) <= MAX_LAYERS:  # also refuses inf and nan
        raise InvalidInputError(
            f"{arch} grown {scale:.4g}x would have about {scale * len(arch):.3g} layers, more than "
            f"{MAX_LAYERS:,}; ask for a smaller target"
        )
    grown = stack(arch, scale) if mode == "stack" else stretch(arch, scale)
    attention = sum(grown.count(c) for c in "ASL")
    return Extrapolation(
        arch, grown, mode, scale, len(grown), attention, non_embedding_params(grown, layer), ref_params
    )


def matched_baselines(params: int, layer: LayerConfig) -> dict[str, str]:
    """Hand-designed A/M architectures with about ``params`` non-embedding parameters.

    ``llama``: (AM) x k; ``striped-1:2``: (AMM) x k; ``sandwich``: Press et al.'s sandwich
    A^j (AM)^(k-j) M^j with j = k // 3 (attention-heavy bottom, MLP-heavy top).
    """
    if params < 1:
        raise InvalidInputError(f"params must be positive, got {params}")

    def closest(unit: str) -> str:
        per_unit = non_embedding_params(unit, layer) - layer.width  # the final norm counts once
        k = max(1, round((params - layer.width) / per_unit))
        options = [unit * n for n in (k - 1, k, k + 1) if n >= 1]
        return min(options, key=lambda a: abs(non_embedding_params(a, layer) - params))

    llama = closest("AM")
    k = len(llama) // 2
    j = k // 3
    return {"llama": llama, "striped-1:2": closest("AMM"), "sandwich": "A" * j + "AM" * (k - j) + "M" * j}
