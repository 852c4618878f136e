"""The unsupervised randomer forest estimator: fit trees, then leaf co-membership as a similarity.

Inputs -> ``fit`` (numba tree growth, parallel over trees) -> flat arrays per tree -> similarities
(dense on request, sparse top-k, out-of-bag), tree-path distances, embeddings and k-NN-graph
geodesics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from frugalml.common.errors import InvalidInputError
from frugalml.common.threads import numba_threads
from frugalml.common.validate import as_array, one_of
from frugalml.urerf.fileformat import DTYPES, FORMAT_VERSION, MAGIC, SCALE_DTYPES, check_arrays, read_forest
from frugalml.urerf.limits import check_fits, check_forest_fits

PROJECTIONS = ("axis", "sparse", "gaussian")
CRITERIA = ("fastbic", "twomeans")
SAMPLINGS = ("bootstrap", "subsample", "none")
ROUTES = ("all", "inbag")
EMBEDDINGS = ("spectral", "mds")
_BATCH_BYTES = 256 << 20  # working memory for one parallel batch of trees
_SAVED_ARRAYS = tuple(DTYPES)
_SCALE_ARRAYS = tuple(SCALE_DTYPES)  # saved when ``normalize``


@dataclass(frozen=True)
class TreeConfig:
    """The parameters of tree growth, resolved against the data's shape."""

    projection: int
    criterion: int
    sampling: int
    n_in: int
    mtry: int
    nnz: int
    min_parent: int
    max_depth: int
    min_cluster_size: int
    min_cluster_fraction: float

    def kernel_params(self):
        """The same parameters as the growth kernels take them (``_trees.TreeParams``)."""
        from frugalml.urerf._trees import TreeParams

        return TreeParams(**asdict(self))


# auto_wrap_output_keys=None: transform() without X (the training embedding) stays callable; sklearn's
# _SetOutputMixin.__init_subclass__ takes the keyword, which mypy cannot see through TransformerMixin
class UnsupervisedRandomerForest(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]
    """Unsupervised randomer forest (URerF): a geodesic similarity from shared leaves.

    Each tree is grown on a bootstrap sample by splitting nodes along random sparse projections at
    the cut that best explains the projected values as two Gaussian clusters (FastBIC); two
    points are similar when many trees put them in the same leaf.

    Parameters
    ----------
    n_estimators : int
        Number of trees (the authors' experiments used 300).
    projection : {"sparse", "axis", "gaussian"}
        "sparse": the authors' sparse oblique projections, a p x mtry matrix with
        round(p * mtry * density) entries of +-1 at random places; "axis": mtry distinct features;
        "gaussian": the sparse pattern with N(0, 1) weights.
    density : float, optional
        Fraction of non-zeros of the projection matrix; default 1 / p.
    mtry : int, optional
        Candidate projections per node; default ceil(sqrt(p)).
    criterion : {"fastbic", "twomeans"}
        Split criterion on the sorted projected values.
    min_parent : int, optional
        Nodes with fewer in-bag points are leaves; default round(sqrt(n)).
    max_depth : int, optional
        Depth limit (None: none).
    min_cluster_size : int or float
        Fewest in-bag points either side of a cut may have; a float in (0, 0.5) is a fraction of
        the node's points. FastBIC as published rewards cutting off a few tightly packed points,
        which on pure noise grows trees n / few deep; a fraction such as 0.05 bounds the depth
        by O(log n) at some cost in accuracy on noisy manifolds.
    sampling : {"bootstrap", "subsample", "none"}
        How each tree's in-bag sample is drawn.
    max_samples : float, optional
        In-bag sample size as a fraction of n (default 1.0 for bootstrap, 0.8 for subsample).
    route : {"all", "inbag"}
        "all": every training point is routed down every tree (the authors' choice), so leaves
        hold all points; "inbag": a tree's leaves hold only its in-bag points.
    normalize : bool
        Min-max scale each feature (fitted on the training data) before growing.
    n_components, embedding, n_neighbors :
        What ``transform`` returns: an ``n_components``-dimensional spectral embedding of the
        ``n_neighbors``-nearest forest-similarity graph, or classical MDS of 1 - similarity.
    random_state : int, optional
        Seed of every random choice; a fixed seed gives identical forests.
    n_jobs : int, optional
        Threads for the numba kernels (None: all cores).

    Examples
    --------
    >>> from frugalml.urerf.datasets import simulate
    >>> data = simulate("helix", n=300, noise_dims=5, seed=0)
    >>> forest = UnsupervisedRandomerForest(100, projection="axis", random_state=0).fit(data.X)
    >>> dist, ind = forest.kneighbors(n_neighbors=10)
    >>> ind.shape
    (300, 10)
    """

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        projection: str = "sparse",
        density: float | None = None,
        mtry: int | None = None,
        criterion: str = "fastbic",
        min_parent: int | None = None,
        max_depth: int | None = None,
        min_cluster_size: int | float = 1,
        sampling: str = "bootstrap",
        max_samples: float | None = None,
        route: str = "all",
        normalize: bool = False,
        n_components: int = 2,
        embedding: str = "spectral",
        n_neighbors: int = 15,
        random_state: int | None = None,
        n_jobs: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.projection = projection
        self.density = density
        self.mtry = mtry
        self.criterion = criterion
        self.min_parent = min_parent
        self.max_depth = max_depth
        self.min_cluster_size = min_cluster_size
        self.sampling = sampling
        self.max_samples = max_samples
        self.route = route
        self.normalize = normalize
        self.n_components = n_components
        self.embedding = embedding
        self.n_neighbors = n_neighbors
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ validation
    def _resolve(self, n: int, p: int) -> TreeConfig:
        """Check every parameter once and turn it into the kernels' integer codes."""
        one_of(self.projection, PROJECTIONS, "projection")
        one_of(self.criterion, CRITERIA, "criterion")
        one_of(self.sampling, SAMPLINGS, "sampling")
        one_of(self.route, ROUTES, "route")
        one_of(self.embedding, EMBEDDINGS, "embedding")
        _positive_int(self.n_estimators, "n_estimators")
        min_cluster_size, min_cluster_fraction = _cluster_guard(self.min_cluster_size)
        mtry = math.ceil(math.sqrt(p)) if self.mtry is None else _positive_int(self.mtry, "mtry")
        if self.projection == "axis":
            mtry = min(mtry, p)
        density = 1.0 / p if self.density is None else float(self.density)
        if not 0.0 < density <= 1.0:
            raise InvalidInputError(f"density must be in (0, 1], got {self.density}")
        nnz = min(max(round(p * mtry * density), 1), p * mtry)
        if self.min_parent is None:
            min_parent = max(round(math.sqrt(n)), 2)
        else:
            min_parent = _positive_int(self.min_parent, "min_parent")
        max_depth = -1 if self.max_depth is None else _positive_int(self.max_depth, "max_depth")
        default_fraction = {"bootstrap": 1.0, "subsample": 0.8, "none": 1.0}[self.sampling]
        fraction = default_fraction if self.max_samples is None else float(self.max_samples)
        if not 0.0 < fraction <= 1.0:
            raise InvalidInputError(f"max_samples must be a fraction in (0, 1], got {self.max_samples}")
        n_in = n if self.sampling == "none" else max(2, round(fraction * n))
        return TreeConfig(
            PROJECTIONS.index(self.projection),
            CRITERIA.index(self.criterion),
            SAMPLINGS.index(self.sampling),
            n_in,
            mtry,
            nnz,
            min_parent,
            max_depth,
            min_cluster_size,
            min_cluster_fraction,
        )

    def _check_X(self, X, *, fitting: bool) -> np.ndarray:
        """X as column-major float32 (features x samples), scaled like the training data."""
        _check_dense_real(X)
        X = as_array(X, "X", ndim=2, dtype=np.float64)
        if fitting:
            if X.shape[0] < 2:
                raise InvalidInputError(f"X has {X.shape[0]} sample(s); a forest needs at least 2")
            self.n_features_in_ = X.shape[1]
            if self.normalize:
                low, high = X.min(axis=0), X.max(axis=0)
                self.scale_min_ = low
                self.scale_range_ = np.where(high > low, high - low, 1.0)
        elif X.shape[1] != self.n_features_in_:
            raise InvalidInputError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (the number it was fitted on)"
            )
        if self.normalize:
            X = (X - self.scale_min_) / self.scale_range_
        return np.ascontiguousarray(X.T, dtype=np.float32)

    def _check_fitted(self) -> None:
        if not hasattr(self, "leaves_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this UnsupervisedRandomerForest is not fitted yet; call fit(X) first")

    def _check_k(self, k: int, n_queries_from_train: bool) -> int:
        k = _positive_int(k, "n_neighbors")
        limit = self.n_samples_fit_ - 1 if n_queries_from_train else self.n_samples_fit_
        if k > limit:
            raise InvalidInputError(
                f"n_neighbors={k} but only {limit} other training points exist; choose k < n"
            )
        return k

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Grow the forest on X (n_samples, n_features); y is ignored.

        Raises
        ------
        InvalidInputError
            X not 2-D, with NaN or infinity, fewer than 2 samples, or an invalid parameter.
        """
        import numba

        from frugalml.urerf._leaves import leaf_members
        from frugalml.urerf._trees import SIZE_ENTRIES, feature_ranks, grow_batch

        Xt = self._check_X(X, fitting=True)
        p, n = Xt.shape
        cfg = self._resolve(n, p)
        check_forest_fits(self.n_estimators, n)  # before growing anything
        self.n_samples_fit_ = n
        self.config_ = cfg
        self.__dict__.pop("embedding_", None)
        self.__dict__.pop("_unchecked_leaves_from", None)
        seeds = (
            np.random.default_rng(self.random_state)
            .integers(0, np.iinfo(np.int64).max, size=self.n_estimators, dtype=np.int64)
            .astype(np.uint64)
        )
        node_cap = 2 * cfg.n_in
        per_entry = max(1, min(p, 2 * max(1, cfg.nnz // cfg.mtry)))
        axis = PROJECTIONS[cfg.projection] == "axis"  # one entry per candidate
        proj_cap = (cfg.n_in if axis else cfg.n_in * per_entry) + 16
        per_tree = node_cap * 40 + proj_cap * 8 + n * 8
        batch = max(1, min(self.n_estimators, _BATCH_BYTES // per_tree))
        ranks, sorted_values = feature_ranks(Xt)
        params = cfg.kernel_params()
        parts = []
        # trees differ a lot in cost: hand them to the threads one at a time (dynamic scheduling)
        with numba_threads(self.n_jobs), numba.parallel_chunksize(1):
            for start in range(0, self.n_estimators, batch):
                chunk = seeds[start : start + batch]
                while True:
                    out = grow_batch(Xt, ranks, sorted_values, chunk, params, node_cap, proj_cap)
                    needed = int(out.sizes[:, SIZE_ENTRIES].max())
                    if needed <= proj_cap:
                        break
                    proj_cap = needed
                parts.append(self._trim(out))
                del out
        self._store(parts)
        keep = self.inbag_ > 0 if self.route == "inbag" else np.ones_like(self.leaves_, dtype=np.bool_)
        self._member_ptr, self._members = leaf_members(self.leaves_, keep, self.tree_offsets_)
        return self

    _FIELDS = ("left", "right", "threshold", "start", "end", "depth", "parent", "feature", "weight")

    @staticmethod
    def _trim(batch) -> dict[str, list[np.ndarray]]:
        """Copy each tree's used rows out of a batch's fixed-capacity arrays (freeing the rest)."""
        from frugalml.urerf._trees import SIZE_ENTRIES, SIZE_NODES

        *per_node, feat, weight, leaves, inbag, sizes = batch
        pieces: dict[str, list[np.ndarray]] = {name: [] for name in UnsupervisedRandomerForest._FIELDS}
        pieces.update(sizes=[sizes], leaves=[leaves], inbag=[inbag])
        for t in range(sizes.shape[0]):
            nodes, entries = int(sizes[t, SIZE_NODES]), int(sizes[t, SIZE_ENTRIES])
            for name, array in zip(UnsupervisedRandomerForest._FIELDS[:7], per_node, strict=True):
                pieces[name].append(array[t, :nodes].copy())
            pieces["feature"].append(feat[t, :entries].copy())
            pieces["weight"].append(weight[t, :entries].copy())
        return pieces

    def _store(self, parts: list[dict[str, list[np.ndarray]]]) -> None:
        """Concatenate the trimmed trees into flat forest arrays with per-tree offsets."""
        from frugalml.urerf._trees import SIZE_ENTRIES, SIZE_NODES

        sizes = np.concatenate([size for part in parts for size in part["sizes"]])
        self.tree_offsets_ = np.concatenate([[0], np.cumsum(sizes[:, SIZE_NODES])]).astype(np.int64)
        proj_offsets = np.concatenate([[0], np.cumsum(sizes[:, SIZE_ENTRIES])]).astype(np.int64)

        def joined(name):
            return np.concatenate([piece for part in parts for piece in part[name]])

        def shifted(name):  # projection ranges become offsets into the forest's entry arrays
            local = [piece for part in parts for piece in part[name]]
            return np.concatenate([r + off for r, off in zip(local, proj_offsets[:-1], strict=True)])

        self.children_left_ = joined("left")
        self.children_right_ = joined("right")
        self.threshold_ = joined("threshold")
        self.proj_start_ = shifted("start")
        self.proj_end_ = shifted("end")
        self.node_depth_ = joined("depth")
        self.node_parent_ = joined("parent")
        self.proj_feature_ = joined("feature")
        self.proj_weight_ = joined("weight")
        self.leaves_ = joined("leaves")
        self.inbag_ = joined("inbag")

    # ------------------------------------------------------------------ routing
    def _query_leaves(self, X) -> tuple[np.ndarray, bool]:
        """Leaves (n_trees, m) of the queries and whether they are the training points."""
        self._check_fitted()
        if X is None:
            self._check_training_leaves()
            if self.route == "inbag":
                return np.where(self.inbag_ > 0, self.leaves_, -1).astype(np.int32), True
            return self.leaves_, True
        from frugalml.urerf._trees import route

        Xt = self._check_X(X, fitting=False)
        with numba_threads(self.n_jobs):
            leaves = route(
                Xt,
                self.tree_offsets_,
                self.children_left_,
                self.children_right_,
                self.threshold_,
                self.proj_start_,
                self.proj_end_,
                self.proj_feature_,
                self.proj_weight_,
            )
        if leaves.size and leaves.min() < 0:  # a walk left its tree or ran past its step bound
            from frugalml.common.errors import CorruptFileError

            raise CorruptFileError(
                "the forest's trees are malformed (a walk did not reach a leaf); fit it again"
            )
        return leaves, False

    def apply(self, X) -> np.ndarray:
        """Index of the leaf each sample reaches in each tree: array (n_samples, n_estimators)."""
        leaves, _ = self._query_leaves(X)
        return np.ascontiguousarray(leaves.T)

    # ------------------------------------------------------------------ similarities
    def kneighbors(self, X=None, n_neighbors: int = 50, return_distance: bool = True):
        """The ``n_neighbors`` training points most similar to each query, never forming n x n.

        Parameters
        ----------
        X : array-like (m, n_features), optional
            Queries; None means the training points, each excluding itself.
        n_neighbors : int
            k, at most n - 1 for the training points.

        Returns
        -------
        distances : ndarray (m, k), 1 - similarity, ascending (only if ``return_distance``)
        indices : ndarray (m, k), training indices; ties broken by lower index.
        """
        from frugalml.urerf._leaves import top_k

        qleaves, training = self._query_leaves(X)
        k = self._check_k(n_neighbors, training)
        m = qleaves.shape[1]
        check_fits(
            m * k * 20, f"{k} neighbours of {m} points", "ask for fewer neighbours or fewer points at a time"
        )
        with numba_threads(self.n_jobs):
            ind, counts = top_k(
                qleaves,
                self.tree_offsets_,
                self._member_ptr,
                self._members,
                self.n_samples_fit_,
                k,
                training,
                64,
            )
        if not return_distance:
            return ind
        return 1.0 - counts / self.n_estimators, ind

    def kneighbors_graph(self, X=None, n_neighbors: int = 50):
        """Sparse CSR (m, n) of the top-k similarities (explicit entries even where 0)."""
        from scipy.sparse import csr_matrix

        dist, ind = self.kneighbors(X, n_neighbors)
        m, k = ind.shape
        return csr_matrix(
            ((1.0 - dist).ravel(), ind.ravel(), np.arange(0, m * k + 1, k)), shape=(m, self.n_samples_fit_)
        )

    def similarity(self, X=None) -> np.ndarray:
        """Dense similarity: fraction of trees in which a query and a training point share a leaf.

        For the training points (X None) this is the symmetric n x n matrix with unit diagonal.
        """
        from frugalml.urerf._leaves import dense_counts

        qleaves, training = self._query_leaves(X)
        _check_dense(qleaves.shape[1], self.n_samples_fit_, 12, "similarity")
        with numba_threads(self.n_jobs):
            counts = dense_counts(
                qleaves, self.tree_offsets_, self._member_ptr, self._members, self.n_samples_fit_
            )
        sim = counts / float(self.n_estimators)
        if training:
            np.fill_diagonal(sim, 1.0)
        return sim

    def oob_similarity(self) -> np.ndarray:
        """Out-of-bag proximity of the training points (dense n x n; needs a sampling scheme)."""
        from frugalml.urerf._leaves import oob_similarity

        self._check_fitted()
        self._check_training_leaves()
        if self.sampling == "none":
            raise InvalidInputError("out-of-bag proximities need sampling='bootstrap' or 'subsample'")
        _check_dense(self.n_samples_fit_, self.n_samples_fit_, 8, "out-of-bag similarity")
        with numba_threads(self.n_jobs):
            return oob_similarity(self.leaves_, self.inbag_)

    def path_distances(self, X=None) -> np.ndarray:
        """Mean tree-path length (edges through the lowest common ancestor) to each training point.

        Returns a dense (m, n) array (m = n for X None; zero on the diagonal).
        """
        from frugalml.urerf._leaves import path_lengths

        self._check_fitted()
        self._check_training_leaves()
        qleaves = self.leaves_ if X is None else self._query_leaves(X)[0]
        _check_dense(qleaves.shape[1], self.n_samples_fit_, 8, "tree-path distance")
        with numba_threads(self.n_jobs):
            return path_lengths(
                qleaves, self.leaves_, self.tree_offsets_, self.node_depth_, self.node_parent_
            )

    def geodesic_distances(self, n_neighbors: int | None = None, indices=None) -> np.ndarray:
        """Shortest paths through the symmetrised forest k-NN graph (edge weight 1 - similarity).

        Parameters
        ----------
        n_neighbors : int, optional
            k of the graph (default ``self.n_neighbors``).
        indices : array-like of int, optional
            Sources (default all): returns (len(indices), n); inf between disconnected parts.
        """
        from scipy.sparse.csgraph import shortest_path

        graph = self.kneighbors_graph(None, n_neighbors or self.n_neighbors)
        graph.data = np.maximum(1.0 - graph.data, 1e-12)  # keep zero-distance edges stored
        graph = graph.maximum(graph.T).tocsr()
        if indices is not None:
            indices = as_array(indices, "indices", ndim=1, dtype=np.int64)
        return shortest_path(graph, method="D", directed=False, indices=indices)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the fitted forest to a versioned, checksummed file (atomically) in an existing folder."""

        from frugalml.common.arrays import save_arrays

        self._check_fitted()
        names = _SAVED_ARRAYS + (_SCALE_ARRAYS if self.normalize else ())
        meta = {
            "params": dict(self.get_params()),
            "n_features_in": self.n_features_in_,
            "n_samples_fit": self.n_samples_fit_,
        }
        save_arrays(path, MAGIC, FORMAT_VERSION, meta, {name: getattr(self, name) for name in names})

    @classmethod
    def load(cls, path) -> UnsupervisedRandomerForest:
        """Read a forest written by :meth:`save`.

        The file is untrusted input: besides its magic, version and checksums, its parameters and
        arrays are checked before use (shapes; child, parent, projection, feature and member indices
        at load; the training points' leaves when a query first reads them), so a damaged or crafted
        file raises CorruptFileError instead of crashing or hanging.
        """
        from frugalml.common.errors import CorruptFileError

        meta, arrays = read_forest(path)
        try:
            forest = cls._from_meta(meta)
        except (KeyError, TypeError, ValueError) as exc:  # InvalidInputError is a ValueError
            raise CorruptFileError(f"{path} does not describe a URerF forest ({exc})") from None
        scale = _SCALE_ARRAYS if forest.normalize else ()
        missing = [name for name in _SAVED_ARRAYS + scale if name not in arrays]
        unknown = [name for name in arrays if name not in _SAVED_ARRAYS + _SCALE_ARRAYS]
        if missing or unknown:
            raise CorruptFileError(
                f"{path} does not describe a URerF forest (missing {missing}, unknown {unknown})"
            )
        check_arrays(
            path, arrays, forest.n_estimators, forest.n_samples_fit_, forest.n_features_in_, forest.route
        )
        for name, value in arrays.items():
            setattr(forest, name, value)
        forest._unchecked_leaves_from = str(path)  # checked when a query first reads them
        return forest

    def _check_training_leaves(self) -> None:
        """Before the training points' leaves of a loaded forest are first used, check them."""
        source = self.__dict__.get("_unchecked_leaves_from")
        if source is None:  # grown here, or already checked
            return
        from frugalml.urerf.fileformat import check_training_leaves

        check_training_leaves(source, {name: getattr(self, name) for name in _SAVED_ARRAYS}, self.route)
        del self._unchecked_leaves_from

    @classmethod
    def _from_meta(cls, meta: dict) -> UnsupervisedRandomerForest:
        """An unfitted forest with the saved parameters and sizes, each checked like user input."""
        from frugalml.common.threads import check_threads

        params = meta["params"]
        if not isinstance(params, dict):
            raise TypeError("params is not an object")
        forest = cls(**params)
        n, p = meta["n_samples_fit"], meta["n_features_in"]
        for name, value in (("n_samples_fit", n), ("n_features_in", p)):
            _positive_int(value, name)
        if n < 2:
            raise ValueError(f"n_samples_fit={n}")
        forest.n_samples_fit_, forest.n_features_in_ = int(n), int(p)
        forest._resolve(n, p)
        check_threads(forest.n_jobs, "n_jobs")
        _positive_int(forest.n_components, "n_components")
        _positive_int(forest.n_neighbors, "n_neighbors")
        if not isinstance(forest.normalize, bool):
            raise TypeError(f"normalize={forest.normalize!r}")
        seed = forest.random_state
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"random_state={seed!r}")
        return forest

    # ------------------------------------------------------------------ embeddings
    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit, then embed the training points (see ``transform``)."""
        return self.fit(X).transform()

    def transform(self, X=None) -> np.ndarray:
        """An ``n_components``-dimensional embedding from the forest similarity.

        The training points (X None) are embedded by ``embedding``; new points are placed at the
        similarity-weighted mean of their ``n_neighbors`` most similar training points.
        """
        self._check_fitted()
        if not hasattr(self, "embedding_"):
            self.embedding_ = self._embed_training()
        if X is None:
            return self.embedding_
        dist, ind = self.kneighbors(X, self.n_neighbors)
        weight = 1.0 - dist + 1e-12
        return np.einsum("mk,mkc->mc", weight / weight.sum(axis=1, keepdims=True), self.embedding_[ind])

    def _embed_training(self) -> np.ndarray:
        d = _positive_int(self.n_components, "n_components")
        if d >= self.n_samples_fit_:
            raise InvalidInputError(f"n_components={d} must be below the number of samples")
        if self.embedding == "mds":
            dist = 1.0 - self.similarity()
            centred = -0.5 * _double_centre(dist**2)
            values, vectors = np.linalg.eigh(centred)
            top = np.argsort(values)[::-1][:d]
            return vectors[:, top] * np.sqrt(np.maximum(values[top], 0.0))
        from sklearn.manifold import spectral_embedding

        graph = self.kneighbors_graph(None, min(self.n_neighbors, self.n_samples_fit_ - 1))
        graph = 0.5 * (graph + graph.T)
        return spectral_embedding(graph, n_components=d, random_state=self.random_state, drop_first=True)


def _check_dense_real(X) -> None:
    """Raise InvalidInputError for sparse or complex input, which the forest cannot split on."""
    from scipy import sparse

    if sparse.issparse(X):
        raise InvalidInputError("X is a sparse matrix; sparse input is not supported, pass X.toarray()")
    try:
        complex_values = np.iscomplexobj(X)
    except (TypeError, ValueError):  # not array-like: as_array says why
        return
    if complex_values:
        raise InvalidInputError(
            "Complex data not supported in X; pass real features (e.g. the real and imaginary parts)"
        )


def _check_dense(m: int, n: int, itemsize: int, what: str) -> None:
    check_fits(
        m * n * itemsize,
        f"the dense {m} x {n} {what} matrix",
        "use kneighbors for the top-k without the dense matrix, or fewer query points",
    )


def _double_centre(a: np.ndarray) -> np.ndarray:
    return a - a.mean(axis=0) - a.mean(axis=1, keepdims=True) + a.mean()


def _cluster_guard(value) -> tuple[int, float]:
    """(count, fraction) from ``min_cluster_size``: an int count or a float fraction in (0, 0.5)."""
    if isinstance(value, float | np.floating) and 0.0 < value < 0.5:
        return 1, float(value)
    if isinstance(value, float | np.floating):
        raise InvalidInputError(f"a fractional min_cluster_size must be in (0, 0.5), got {value}")
    return _positive_int(value, "min_cluster_size"), 0.0


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
