"""What ``frugal reproduce --quick|--full`` runs: each system's checks of its paper's claims.

A system lists its checks in ``frugalml.<system>.bench.reproduce.reproductions()``. Each
:class:`Reproduction` runs at a mode's sizes and returns :class:`~frugalml.common.report.Record`
objects that carry the claim fields (claim, paper_statement, paper_value, paper_source, verdict,
reason, command); ``frugal reproduce`` writes them to ``<report>/data/<system>/<name>.json`` and
embeds every PNG the check wrote into its folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from frugalml.common.report import Record

MODES = ("quick", "full")


@dataclass(frozen=True)
class Reproduction:
    """One check of a paper's claims.

    ``run(mode, folder)`` measures at the sizes of ``mode`` ("quick": scaled down, stated in each
    record's notes; "full": the paper's sizes) and may write PNG plots named ``<name>*.png`` into
    ``folder``. A mode missing from ``modes`` (a GPU-only or hours-long check) is answered with the
    stored results file ``stored`` (a path under ``benchmarks/results``), labelled on the page with
    the date and machine it was measured on.
    """

    name: str  # the results file's stem, lowercase words joined by hyphens
    run: Callable[[str, Path], list[Record]]
    quick_seconds: float  # how long the quick mode takes on 2 cores
    modes: tuple[str, ...] = MODES
    stored: str = ""


def verdict(ours: float, paper: float, *, higher_is_better: bool, tolerance: float = 0.1) -> str:
    """The verdict on a paper's number: "better than the paper" when ours beats it by more than
    ``tolerance`` (relative), "reproduced" within it, "not reproduced" otherwise.

    Examples
    --------
    >>> verdict(0.80, 0.82, higher_is_better=True), verdict(2.0, 1.0, higher_is_better=True)
    ('reproduced', 'better than the paper')
    >>> verdict(3.0, 1.0, higher_is_better=False)
    'not reproduced'
    """
    gain = (ours - paper) / abs(paper) if paper else (ours - paper)
    if not higher_is_better:
        gain = -gain
    if gain > tolerance:
        return "better than the paper"
    return "reproduced" if gain >= -tolerance else "not reproduced"
