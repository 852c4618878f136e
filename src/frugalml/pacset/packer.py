"""The packer: import a model, optionally re-weight its paths on a calibration set, lay it out, write it."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from frugalml.common.errors import InvalidInputError
from frugalml.pacset.fileformat import write_packed
from frugalml.pacset.forest import Forest
from frugalml.pacset.importers import from_model, load_model_file
from frugalml.pacset.layout import LayoutConfig, compute_layout


class Packer:
    """Lay a tree ensemble out in blocks so that predictions read few of them.

    Parameters
    ----------
    layout : {"auto", "bfs", "dfs", "wdfs", "blockwise-wdfs"}
        ``auto`` (the default) chooses layout, bins and interleave depth per model by simulating
        the blocks a single-row query reads (see :mod:`frugalml.pacset.choose`) and records the
        choice and its reason in the file's metadata (``layout_choice``, shown by ``frugal pacset
        inspect``); given ``bins`` or ``interleave``, ``auto`` means blockwise W-DFS with them.
    bins, interleave, block_size, vote, shared_top
        See :class:`frugalml.pacset.layout.LayoutConfig` (None: 8 bins, 3 interleaved levels).
    target : {"local", "remote"}
        What ``auto`` optimises: blocks per cold single-row query (``local``: disk, Redis), or
        the simulated time of one over a remote store (``remote``: HTTP, S3), where every walk
        round costs a round trip; it also tries interleaved tops shared by all trees, which come
        with the header read (see :mod:`frugalml.pacset.choose`).

    Attributes
    ----------
    forest_ : Forest
        The imported model (cardinalities recounted when ``fit`` got calibration rows).
    layout_ : Layout
        Where each node goes.

    Examples
    --------
    >>> Packer(layout="blockwise-wdfs", bins=8).fit(rf, X_calib).write("rf.pacset")  # doctest: +SKIP
    """

    def __init__(
        self,
        layout: str = "auto",
        bins: int | None = None,
        interleave: int | None = None,
        block_size: int = 4096,
        vote: str = "soft",
        shared_top: bool = False,
        target: str = "local",
    ):
        self.layout = layout
        self.bins = bins
        self.interleave = interleave
        self.block_size = block_size
        self.vote = vote
        self.shared_top = shared_top
        self.target = target

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**asdict(self._config()), "layout": self.layout, "target": self.target}

    def _config(self) -> LayoutConfig:
        layout = "blockwise-wdfs" if self.layout == "auto" else self.layout
        bins = 8 if self.bins is None else self.bins
        interleave = 3 if self.interleave is None else self.interleave
        return LayoutConfig(layout, bins, interleave, self.block_size, self.vote, self.shared_top)

    @property
    def _auto(self) -> bool:
        return self.layout == "auto" and self.bins is None and self.interleave is None and not self.shared_top

    def fit(self, model: Any, X=None, *, trust_pickle: bool = False) -> Packer:
        """Import ``model`` (a fitted estimator, a Forest, or a model file path) and lay it out.

        ``X``: optional calibration rows; node cardinalities are then recounted from them
        (a workload-aware layout) instead of taken from the training statistics in the model.
        ``trust_pickle``: a model file may be joblib/pickle (loading it runs its code; see
        :func:`~frugalml.pacset.importers.load_model_file`).
        """
        from frugalml.common.validate import one_of
        from frugalml.pacset.choose import TARGETS

        one_of(self.target, TARGETS, "target")
        config = self._config()
        if isinstance(model, Forest):
            forest = model
        elif isinstance(model, str | os.PathLike):
            forest = load_model_file(model, trust_pickle=trust_pickle)
        else:
            forest = from_model(model)
        if X is not None:
            forest.recount(X)
        self.forest_ = forest
        self.choice_: dict[str, Any] | None = None
        if self._auto:
            from frugalml.pacset.choose import choose_layout

            _, self.layout_, self.choice_ = choose_layout(
                forest, X, config.block_size, config.vote, self.target
            )
        else:
            self.layout_ = compute_layout(forest, config)
        return self

    def write(self, path: str | os.PathLike):
        """Write the packed file atomically; returns its container header."""
        if not hasattr(self, "layout_"):
            raise InvalidInputError("Packer is not fitted; call fit(model) first")
        extra = {"layout_choice": self.choice_} if self.choice_ is not None else None
        return write_packed(path, self.forest_, self.layout_, extra)


def pack(model: Any, path: str | os.PathLike, X=None, *, trust_pickle: bool = False, **config) -> Packer:
    """Pack ``model`` into ``path`` in one call (``config``: layout, bins, interleave, block_size, vote,
    shared_top, target)."""
    packer = Packer(**config).fit(model, X, trust_pickle=trust_pickle)
    packer.write(path)
    return packer
