"""Predict straight from a packed file or a Redis block store, fetching only the blocks a query needs."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.validate import as_array, one_of
from frugalml.pacset.fileformat import Index, open_packed
from frugalml.pacset.forest import check_features, decide, finish
from frugalml.pacset.kernels import checksum_multipliers, walk_numpy
from frugalml.pacset.stores import BACKENDS, BlockStore, RedisStore, open_store, read_redis_model

ENGINES = ("numba", "numpy")


class PackedForest:
    """A packed tree ensemble opened for prediction; nodes stay on disk (or in Redis) until used.

    Examples
    --------
    >>> with PackedForest.open("model.pacset") as forest:  # doctest: +SKIP
    ...     forest.predict(X[:1])
    """

    def __init__(self, meta: dict[str, Any], index: Index, store: BlockStore, engine: str = "numba",
                 where: str = ""):
        one_of(engine, ENGINES, "engine")
        self.meta, self.index, self.store, self.engine, self.where = meta, index, store, engine, where
        self._mult = checksum_multipliers(meta["block_size"])
        self._spb = meta["block_size"] // meta["slot_size"]
        self._missing = np.zeros(meta["n_blocks"], np.int64)
        self._mark = np.zeros(meta["n_blocks"], np.uint8)
        self.touched = np.zeros(meta["n_blocks"], np.uint8)
        self._walk = walk_numpy
        if engine == "numba":
            from frugalml.pacset.kernels import walk_numba

            self._walk = walk_numba

    @classmethod
    def open(cls, path: str | os.PathLike, *, backend: str = "mmap", engine: str = "numba",
             cache_blocks: int = 4096, readahead: bool = False, prefetch: bool = True) -> PackedForest:
        """Open a packed file: read its header and index only.

        Parameters
        ----------
        backend : {"mmap", "pread", "direct"}
            ``mmap`` maps the node blocks; ``pread`` reads single blocks into an LRU cache of
            ``cache_blocks`` blocks; ``direct`` does the same with O_DIRECT (no page cache).
            With mmap, ``prefetch`` requests each walk round's blocks together (parallel reads).
        engine : {"numba", "numpy"}
            The numba round-robin kernel, or a pure-numpy walk that needs no JIT compilation.
        """
        one_of(backend, [b for b in BACKENDS if b != "redis"], "backend")
        packed = open_packed(path)
        return cls(packed.meta, packed.index, open_store(packed, backend, cache_blocks, readahead, prefetch),
                   engine, str(path))

    @classmethod
    def from_redis(cls, url: str, prefix: str, *, engine: str = "numba",
                   cache_blocks: int = 4096) -> PackedForest:
        """Open a model uploaded with :func:`frugalml.pacset.upload_to_redis` (one key per block)."""
        meta, index = read_redis_model(url, prefix)
        return cls(meta, index, RedisStore(meta, url, prefix, cache_blocks), engine, f"redis {prefix}")

    @property
    def n_features(self) -> int:
        return self.meta["n_features"]

    @property
    def classes_(self) -> np.ndarray | None:
        classes = self.meta["classes"]
        return None if classes is None else np.asarray(classes)

    def _prepare(self, X) -> np.ndarray:
        X = as_array(X, "X", dtype=np.float64, allow_nan=True)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2:
            raise InvalidInputError(f"X must be 2-dimensional (rows x features), got shape {X.shape}")
        m = self.meta
        return check_features(X, m["n_features"], m["handles_missing"], m["input_precision"])

    def raw_scores(self, X, *, trace: np.ndarray | None = None) -> np.ndarray:
        """Aggregated tree outputs before the output transform, shape (n_rows, n_outputs).

        ``trace``, when given, receives the block id of every node visit in order (numba engine);
        the number written is stored in ``self.trace_length``.
        """
        X = self._prepare(X)
        m, store = self.meta, self.store
        state = np.broadcast_to(self.index.root_code, (len(X), m["n_trees"])).copy()
        acc = np.zeros((len(X), m["n_outputs"]))
        wide = m["slot_size"] == 32
        trace = np.zeros(0, np.int64) if trace is None else trace
        self.touched[:] = 0
        self.trace_length = 0
        while True:
            pool = store.pool
            n_missing, bad, n_trace = self._walk(
                pool.view(np.int32), pool.view(np.float32), pool.view(np.float64), pool.view(np.uint64),
                store.block_slot, store.verified, self._mult, self._spb,
                m["slot_size"] // 4, wide, X, state, acc, self.index.tree_group, self.index.bin_start,
                m["n_values"], self._missing, self._mark, self.touched, trace[self.trace_length:])
            self.trace_length += n_trace
            if bad >= 0:
                raise CorruptFileError(f"{self.where}: block {bad} failed its checksum (the file is "
                                       "damaged); pack or upload the model again")
            if n_missing == 0:
                break
            store.fetch(self._missing[:n_missing])
        store.used(np.nonzero(self.touched)[0])
        if m["aggregate"] in ("mean", "vote"):
            return acc / m["n_trees"]
        return acc + np.asarray(m["base_score"])

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (classifiers only), equal to the source model's ``predict_proba``."""
        if self.meta["classes"] is None:
            raise InvalidInputError("predict_proba needs a classifier; this model is a regressor")
        return finish(self.raw_scores(X), self.meta["transform"], self.meta["transform_scale"])

    def predict(self, X) -> np.ndarray:
        """Classes for a classifier, values for a regressor."""
        out = finish(self.raw_scores(X), self.meta["transform"], self.meta["transform_scale"])
        return decide(out, self.meta["classes"])

    @property
    def blocks_touched(self) -> int:
        """Distinct node blocks the last prediction used."""
        return int(self.touched.sum())

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> PackedForest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ENGINES", "PackedForest"]
