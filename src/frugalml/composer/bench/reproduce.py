"""The paper's extrapolation checks (27 and 29 layers at Llama-3.2-1B size) and the engine comparison."""

from __future__ import annotations

from pathlib import Path

from frugalml.common.report import Record
from frugalml.composer.bench.engines import PEERS, compare_report
from frugalml.composer.extrapolation import extrapolate

# (searched block, mode, the paper's layers, the paper's attention layers) at Llama-3.2-1B size
PAPER = (("AAMMMM", "stack", 27, 9), ("AAMMMMMAAMMMAMMM", "stretch", 29, 10))


def extrapolation_checks() -> list[str]:
    """One line per paper model: what we grow it to and whether it matches the paper.

    Examples
    --------
    >>> extrapolation_checks()[0].endswith("27 layers, 9 attention (matches the paper's 27 / 9)")
    True
    """
    lines = []
    for source, mode, layers, attention in PAPER:
        e = extrapolate(source, mode=mode, target="llama3.2-1b")
        ok = "matches" if (e.layers, e.attention_layers) == (layers, attention) else "DIFFERS from"
        lines.append(
            f"{e.source} -> {e.arch}: {e.layers} layers, {e.attention_layers} attention "
            f"({ok} the paper's {layers} / {attention})"
        )
    return lines


def reproduce(json_out: Path | None, plot: Path | None, quiet: bool) -> list[Record]:
    """Print the extrapolation checks, then compare the engines on the built-in table (20 seeds)."""
    for line in extrapolation_checks():
        print(line)
    return compare_report(PEERS, 20, None, json_out, plot, quiet)
