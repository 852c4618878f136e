"""Predict straight from a packed file or a Redis block store, fetching only the blocks a query needs."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.validate import one_of
from frugalml.pacset.fileformat import Index, ModelMeta, open_packed
from frugalml.pacset.forest import as_rows, decide, finish, sum_trees
from frugalml.pacset.kernels import PackedArrays, WalkState, checksum_multipliers, leaf_slots, walk_numpy
from frugalml.pacset.stores import BACKENDS, BlockStore, RedisStore, open_store, read_redis_model

if TYPE_CHECKING:
    from frugalml.pacset.remote import RemoteOptions

ENGINES = ("auto", "numba", "numpy")
AUTO_NUMBA_STATES = 1 << 16
"""``engine="auto"`` walks with numpy, which needs no compiled kernels, until this process has
walked this many (row, tree) pairs (one big batch or many small queries), then loads numba's
kernels (~0.2 s from its cache, once per process) and keeps them. The numpy walk costs ~2-3 us
more per pair, so this is the ski-rental rule: a fresh process answering a few small queries never
pays the load, a long-lived one pays it once and at most about doubles its total cost meanwhile."""
CHUNK_STATES = 1 << 22
"""Rows are walked in chunks of about this many (row, tree) pairs, bounding the walk's memory."""


class PackedForest:
    """A packed tree ensemble opened for prediction; nodes stay on disk (or in Redis) until used.

    ``PackedForest.numpy_states_walked`` counts the (row, tree) pairs ``engine="auto"`` has walked
    with numpy in this process (see :data:`AUTO_NUMBA_STATES`).

    Examples
    --------
    >>> with PackedForest.open("model.pacset") as forest:  # doctest: +SKIP
    ...     forest.predict(X[:1])
    """

    numpy_states_walked = 0

    def __init__(
        self, meta: dict[str, Any], index: Index, store: BlockStore, engine: str = "auto", where: str = ""
    ):
        one_of(engine, ENGINES, "engine")
        self.meta, self.index, self.store, self.engine, self.where = meta, index, store, engine, where
        self.model = model = ModelMeta.from_meta(meta)
        self._mult = checksum_multipliers(model.block_size)
        self._seal_key = np.uint64(model.seal_key)
        self._spb = model.block_size // model.slot_size
        self._missing = np.zeros(model.n_blocks, np.int64)
        self._mark = np.zeros(model.n_blocks, np.uint8)
        self.touched = np.zeros(model.n_blocks, np.uint8)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        backend: str = "mmap",
        engine: str = "auto",
        cache_blocks: int = 4096,
        readahead: bool = False,
        prefetch: bool = True,
        remote: RemoteOptions | None = None,
    ) -> PackedForest:
        """Open a packed file, or a URL (``https://host/model.pacset``): read its header and index only.

        Parameters
        ----------
        backend : {"mmap", "pread", "direct"}
            ``mmap`` maps the node blocks; ``pread`` reads single blocks into an LRU cache of
            ``cache_blocks`` blocks; ``direct`` does the same with O_DIRECT (no page cache).
            With mmap, ``prefetch`` requests each walk round's blocks together (parallel reads).
        engine : {"auto", "numba", "numpy"}
            The numba round-robin kernel, a pure-numpy walk that needs no JIT compilation, or
            ``auto``: numpy for the first small queries of a process, numba for big batches and
            once the process has done enough work to repay loading it (see
            :data:`AUTO_NUMBA_STATES`).
        remote : RemoteOptions, optional
            For a URL: concurrency, timeouts, retries, the memory and disk caches and the fetch
            policy ("auto", "blocks" or "whole"); see :mod:`frugalml.pacset.remote`.
        """
        from frugalml.pacset.remote import RemoteOptions, is_url

        if is_url(path):
            return cls.open_url(
                str(path), engine=engine, options=remote or RemoteOptions(cache_blocks=cache_blocks)
            )
        one_of(backend, [b for b in BACKENDS if b != "redis"], "backend")
        packed = open_packed(path)
        return cls(
            packed.meta,
            packed.index,
            open_store(packed, backend, cache_blocks, readahead, prefetch),
            engine,
            str(path),
        )

    @classmethod
    def open_url(
        cls, url: str, *, engine: str = "auto", options: RemoteOptions | None = None
    ) -> PackedForest:
        """Open a packed file served over HTTP(S), or an s3://, gs:// or az:// object, with range
        requests (see :mod:`frugalml.pacset.remote`)."""
        from frugalml.pacset.remote import RemoteOptions, display_url, open_http

        meta, index, store = open_http(url, options or RemoteOptions())
        return cls(meta, index, store, engine, display_url(url))

    @classmethod
    def from_redis(
        cls, url: str, prefix: str, *, engine: str = "auto", cache_blocks: int = 4096
    ) -> PackedForest:
        """Open a model uploaded with :func:`frugalml.pacset.upload_to_redis` (one key per block)."""
        meta, index, keys = read_redis_model(url, prefix)
        store = RedisStore(meta, url, keys, cache_blocks, name=prefix)
        return cls(meta, index, store, engine, f"Redis model {prefix!r}")

    @property
    def n_features(self) -> int:
        return self.model.n_features

    @property
    def classes_(self) -> np.ndarray | None:
        classes = self.model.classes
        return None if classes is None else np.asarray(classes)

    def _prepare(self, X) -> np.ndarray:
        m = self.model
        return as_rows(X, m.n_features, m.handles_missing, m.input_precision)

    def raw_scores(self, X, *, trace: np.ndarray | None = None) -> np.ndarray:
        """Aggregated tree outputs before the output transform, shape (n_rows, n_outputs).

        ``trace``, when given, receives the block id of every node visit in order (numba engine,
        also chosen by ``auto``); the number written is stored in ``self.trace_length``.
        """
        X = self._prepare(X)
        n_trees = self.model.n_trees
        walk = self._walker(len(X) * n_trees if trace is None else AUTO_NUMBA_STATES)
        trace = np.zeros(0, np.int64) if trace is None else trace
        self.touched[:] = 0
        self.trace_length = 0
        self.store.prepare(len(X), n_trees)
        step = max(1, CHUNK_STATES // n_trees)
        out = np.vstack(
            [self._raw_chunk(X[i : i + step], walk, trace) for i in range(0, max(len(X), 1), step)]
        )
        self.store.used(np.nonzero(self.touched)[0])
        return out

    def _walker(self, n_states: int):
        if self.engine == "numpy":
            return walk_numpy
        walked = PackedForest.numpy_states_walked + n_states
        if self.engine == "auto" and not numba_loaded() and walked < AUTO_NUMBA_STATES:
            PackedForest.numpy_states_walked = walked
            return walk_numpy
        from frugalml.pacset.kernels_numba import walk_packed

        return walk_packed

    def _arrays(self) -> PackedArrays:
        """The walk's view of the store's pool (read afresh: a fetch may replace it) and the tables."""
        m, store = self.model, self.store
        pool = store.pool
        return PackedArrays(
            pool.view(np.int32),
            pool.view(np.float32),
            pool.view(np.float64),
            pool.view(np.uint64),
            store.block_slot,
            store.verified,
            self._mult,
            self._spb,
            m.slot_size // 4,
            m.slot_size == 32,
            self.index.tree_group,
            self.index.bin_start,
            m.n_values,
            m.ordered,
            self._seal_key,
            m.n_blocks * self._spb,
            m.n_outputs if m.aggregate == "vote" else 0,
            self._spb - 1 - leaf_slots(m.n_values, m.slot_size),
        )

    def _raw_chunk(self, X: np.ndarray, walk, trace: np.ndarray) -> np.ndarray:
        m = self.model
        state = np.broadcast_to(self.index.root_code, (len(X), m.n_trees)).copy()
        acc = np.zeros((len(X), m.n_trees if m.ordered else m.n_outputs))
        while True:
            n_missing, bad, n_trace = walk(
                self._arrays(),
                WalkState(X, state, acc, self._missing, self._mark, self.touched, trace[self.trace_length :]),
            )
            self.trace_length += n_trace
            if bad != -1:
                self._mark[:] = 0
                raise CorruptFileError(
                    f"{self.where}: block {bad} failed its checksum (damaged, or a block of another "
                    "model or upload); pack or upload the model again"
                    if bad >= 0
                    else f"{self.where}: block {-2 - bad} holds an invalid node (a child before its "
                    "parent or outside the model, or a feature or class out of range); the file is "
                    "damaged or crafted: pack or upload the model again"
                )
            if n_missing == 0:
                break
            self.store.fetch(self._missing[:n_missing])
        if m.ordered:
            base = m.base_score if m.aggregate == "sum" else np.zeros(m.n_outputs)
            acc = sum_trees(acc, self.index.tree_group, base, m.accumulate)
        return acc if m.aggregate == "sum" else acc / m.n_trees

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (classifiers only), equal to the source model's ``predict_proba``."""
        if self.model.classes is None:
            raise InvalidInputError("predict_proba needs a classifier; this model is a regressor")
        return self._finish(self.raw_scores(X))

    def predict(self, X) -> np.ndarray:
        """Classes for a classifier, values for a regressor."""
        return decide(self._finish(self.raw_scores(X)), self.model.classes)

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        m = self.model
        return finish(raw, m.transform, m.transform_scale, m.accumulate)

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


def numba_loaded() -> bool:
    """Whether the numba kernel is compiled or loaded from its cache in this process."""
    module = sys.modules.get("frugalml.pacset.kernels_numba")
    return module is not None and bool(module.walk_numba.signatures)


__all__ = ["ENGINES", "PackedForest", "numba_loaded"]
