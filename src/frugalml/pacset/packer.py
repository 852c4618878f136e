"""The packer: import a model, optionally re-weight its paths on a calibration set, lay it out, write it."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from frugalml.common.errors import InvalidInputError
from frugalml.pacset.fileformat import write_packed
from frugalml.pacset.forest import Forest
from frugalml.pacset.importers import from_model, load_model_file
from frugalml.pacset.layout import Layout, LayoutConfig, compute_layout


class Packer:
    """Lay a tree ensemble out in blocks so that predictions read few of them.

    Parameters
    ----------
    layout, bins, interleave, block_size, vote
        See :class:`frugalml.pacset.layout.LayoutConfig`.

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
        layout: str = "blockwise-wdfs",
        bins: int = 8,
        interleave: int = 3,
        block_size: int = 4096,
        vote: str = "soft",
    ):
        self.layout = layout
        self.bins = bins
        self.interleave = interleave
        self.block_size = block_size
        self.vote = vote

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return asdict(self._config())

    def _config(self) -> LayoutConfig:
        return LayoutConfig(self.layout, self.bins, self.interleave, self.block_size, self.vote)

    def fit(self, model: Any, X=None, *, trust_pickle: bool = False) -> Packer:
        """Import ``model`` (a fitted estimator, a Forest, or a model file path) and lay it out.

        ``X``: optional calibration rows; node cardinalities are then recounted from them
        (a workload-aware layout) instead of taken from the training statistics in the model.
        ``trust_pickle``: a model file may be joblib/pickle (loading it runs its code; see
        :func:`~frugalml.pacset.importers.load_model_file`).
        """
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
        self.layout_: Layout = compute_layout(forest, config)
        return self

    def write(self, path: str | os.PathLike):
        """Write the packed file atomically; returns its container header."""
        if not hasattr(self, "layout_"):
            raise InvalidInputError("Packer is not fitted; call fit(model) first")
        return write_packed(path, self.forest_, self.layout_)


def pack(model: Any, path: str | os.PathLike, X=None, *, trust_pickle: bool = False, **config) -> Packer:
    """Pack ``model`` into ``path`` in one call (``config``: layout, bins, interleave, block_size, vote)."""
    packer = Packer(**config).fit(model, X, trust_pickle=trust_pickle)
    packer.write(path)
    return packer
