"""The planner behind ``method="auto"``: a per-machine cost model for dense BLAS, masked and sparse.

Densities come from a small sample of each operand (exact for a prepared B); work counts follow
from them assuming independent zeros, which is conservative for structured zeros (blocks, dead
columns), where the masked kernel skips more than predicted. Costs per unit of work are measured
once per machine (:mod:`frugalml.maskedmm.calibration`) and cached; uncalibrated machines use
defaults measured on an AVX-512 Xeon (kernel costs re-measured there with the current kernels,
under load). Near break-even the planner prefers dense: skipping methods are costed at the upper
confidence bound of a sampled density, must win by a margin set from the calibration's measured
error, and are not assumed to gain from extra threads (BLAS is). The row-skip kernel replaces the tile kernel
whenever it is predicted faster (measured faster or tied at 80% zeros on random, block, column
and ReLU patterns, and faster at 75-90% random zeros). The sparse method (element-level product)
is costed per element product, per non-zero of A and per entry of C.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from frugalml.common.data import cache_dir
from frugalml.common.env import cpu
from frugalml.common.files import atomic_write
from frugalml.maskedmm import backend
from frugalml.maskedmm.codegen_kernels import ROW_BLOCKS, SEGMENTS

CHUNK_WORDS = 2  # as in _kernels.c: 64-k words per tile

CALIBRATION_VERSION = 6
RUNS, RUN = 256, 16  # density samples: 256 runs of 16 neighbouring entries
SEED = 20240222
EXACT_BELOW = 16384
Z_SAMPLE = 2.0  # sampled densities are costed this many standard errors high
MIN_MARGIN = 0.25  # leave dense BLAS only for a predicted >= 1.25x, more when the model errs more


@dataclass
class Calibration:
    """Seconds per unit of work on one thread (float32; float64 doubles the dense and map terms).

    The masked kernel with row block ``m`` costs ``per_call[m]`` per busy block tile (accumulator
    loads and stores, bitmap scans) plus ``per_iteration[m]`` per visited k (its loads and
    ``m`` x segments vector FMAs). The row-skip kernel costs ``rows_per_iteration`` per non-zero
    of A per wide tile of B (its loads and FMAs) plus ``rows_per_word`` per bitmap word scanned
    (bit-scan branches, the tile's cache misses). ``model_error`` is the relative RMS error of
    those fits (and of dense timings) seen during calibration; ``masked_parallel_gain`` the
    fraction of each extra thread the masked kernel is counted on to use (0: none, the default;
    calibration measures it). The sparse (element-level) kernel costs ``csr_per_entry`` per entry
    of B to build its CSR rows (unless B is prepared), then ``spgemm_per_flop`` per element
    product, ``spgemm_per_nonzero`` per non-zero of A (bit scan, a row of B's start) and
    ``spgemm_per_output`` per entry of C (zeroing it). Either skipping method also costs
    ``call_overhead`` per call (checks, allocations, Python): dense wins outright below it, so
    ``auto`` then runs BLAS without sampling densities.
    """

    dense_per_mac: float = 1.37e-11
    map_per_entry: float = 1.9e-10
    pack_per_entry: float = 6.1e-10
    per_call: dict[int, float] = field(default_factory=lambda: {1: 2.7e-8, 2: 3.3e-8, 4: 4.8e-8})
    per_iteration: dict[int, float] = field(default_factory=lambda: {1: 1.9e-9, 2: 2.7e-9, 4: 3.9e-9})
    rows_per_iteration: float = 3.3e-9
    rows_per_word: float = 1.6e-8
    csr_per_entry: float = 5.4e-10
    spgemm_per_flop: float = 3.8e-10
    spgemm_per_nonzero: float = 8.3e-9
    spgemm_per_output: float = 2.1e-10
    call_overhead: float = 1.2e-5
    model_error: float = 0.1
    masked_parallel_gain: float = 0.0
    measured: bool = False

    @property
    def margin(self) -> float:
        """Factor a skipping method's estimate must beat dense by: 1 / (1 + max(0.25, 2 x error))."""
        return 1.0 / (1.0 + max(MIN_MARGIN, 2.0 * self.model_error))

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        d = dict(d)
        for key in ("per_call", "per_iteration"):
            d[key] = {int(k): float(v) for k, v in d[key].items()}
        return cls(**d)


@dataclass(frozen=True)
class Plan:
    """What ``method="auto"`` picks and why: every method's estimated seconds."""

    method: str
    row_block: int
    isa: str
    kernel: str
    estimates: dict[str, float]
    a_density: float
    b_density: float
    calibrated: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        ranked = sorted(self.estimates.items(), key=lambda kv: kv[1])
        costs = ", ".join(f"{k} {v * 1e3:.3g} ms" for k, v in ranked)
        detail = "row-skip kernel" if self.kernel == "rows" else f"tile kernel, row block {self.row_block}"
        return (
            f"{self.method} ({detail}, {self.isa}); density A {self.a_density:.3f}, "
            f"B {self.b_density:.3f}; estimates: {costs}"
            + ("" if self.calibrated else " [default costs: run 'frugal maskedmm calibrate']")
        )


def sample_density(x: np.ndarray, threshold: float = 0.0) -> float:
    """Fraction of entries with ``|x| > threshold``, from a fixed random sample of large arrays."""
    return density_estimate(x, threshold)[0]


def density_estimate(x: np.ndarray, threshold: float = 0.0) -> tuple[float, float]:
    """(fraction of entries with ``|x| > threshold``, its standard error); exact for small arrays.

    Large arrays are sampled in ``RUNS`` short runs of ``RUN`` neighbouring entries of a row: a
    few hundred cache lines, cheap right after a multiply has flushed the caches (scattered
    single entries cost a cache miss each). The error comes from the spread between runs (so
    structured zeros that make neighbours alike widen it), never below the binomial error.
    """
    if x.size <= EXACT_BELOW:
        return float(np.count_nonzero(np.abs(x) > threshold)) / x.size, 0.0
    runs, run = RUNS, min(RUN, x.shape[1])
    if backend.has_extension():
        total, squares = backend.extension.density_runs(x, float(threshold), runs, run, SEED)
    else:
        rows, cols = _sample_indices(x.shape)
        counts = np.count_nonzero(~(np.abs(x[rows, cols]) <= threshold), axis=1).astype(np.int64)
        total, squares = int(counts.sum()), int((counts * counts).sum())
    density = total / (runs * run)
    spread = max(squares / run**2 - runs * density**2, 0.0) / (runs - 1)
    binomial = max(density * (1.0 - density), 1.0 / runs) / (runs * run)
    return density, math.sqrt(max(spread / runs, binomial))


@cache
def _sample_indices(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(SEED)
    run = min(RUN, shape[1])
    rows = gen.integers(0, shape[0], RUNS)[:, None]
    return rows, gen.integers(0, shape[1] - run + 1, RUNS)[:, None] + np.arange(run)


def upper_density(density: float, error: float) -> float:
    """``density`` plus ``Z_SAMPLE`` standard errors, at most 1 (exact densities have error 0)."""
    return min(1.0, density + Z_SAMPLE * error)


def masked_work(
    shape: tuple[int, int, int], width: int, row_block: int, a_density: float, b_density: float
) -> tuple[float, float, float]:
    """Expected (k-iterations, vector FMAs, busy block tiles) of the masked kernel.

    Assumes independent zeros. A block tile is (row block, panel, chunk of k) with work to do;
    each costs accumulator loads and stores and a scan of the chunk's bitmap words.
    """
    m, k, n = shape
    tiles = -(-m // row_block) * -(-n // (width * SEGMENTS)) * -(-k // (64 * CHUNK_WORDS))
    a_active = 1.0 - (1.0 - a_density) ** row_block
    segment = 1.0 - (1.0 - b_density) ** width
    row = 1.0 - (1.0 - segment) ** SEGMENTS
    per_tile = min(k, 64 * CHUNK_WORDS) * a_active * row
    calls = tiles * (1.0 - (1.0 - a_active * row) ** min(k, 64 * CHUNK_WORDS))
    return tiles * per_tile, tiles * per_tile * row_block * SEGMENTS * segment, calls


def rows_work(shape: tuple[int, int, int], isa: str, width: int, a_density: float) -> tuple[float, float]:
    """Expected (iterations, bitmap words scanned) of the row-skip kernel: every non-zero of A
    visits each wide tile of B once; every row scans its bitmap once per tile."""
    m, k, n = shape
    tiles = -(-n // (width * SEGMENTS * backend.rows_panels(isa)))
    return m * k * a_density * tiles, m * -(-k // 64) * tiles


def choose(
    *,
    shape,
    dtype_code,
    isa,
    a_density,
    b_density,
    b_prepared,
    threads,
    filters,
    a_error: float = 0.0,
    b_error: float = 0.0,
) -> Plan:
    """Pick the cheapest of dense, masked (row-skip or tile kernel per row block) and sparse.

    ``a_error`` and ``b_error`` are the densities' standard errors (0 when exact).
    """
    cal = calibration()
    scale = 2.0 if dtype_code == "f64" else 1.0
    width = backend.segment_width(isa, dtype_code)
    a_high, b_high = upper_density(a_density, a_error), upper_density(b_density, b_error)
    dense, overhead, speedup = fixed_costs(cal, shape, scale, b_prepared, threads, filters)
    estimates = {"dense": dense}
    masked: dict[int, float] = {}
    for row_block in ROW_BLOCKS:
        iters, _, calls = masked_work(shape, width, row_block, a_high, b_high)
        masked[row_block] = (
            overhead + (cal.per_call[row_block] * calls + cal.per_iteration[row_block] * iters) / speedup
        )
    best_block = min(masked, key=masked.__getitem__)
    kernel, estimates["masked"] = "tiles", masked[best_block]
    if isa != backend.NUMBA:
        iters, words = rows_work(shape, isa, width, a_high)
        rows = overhead + scale * (cal.rows_per_iteration * iters + cal.rows_per_word * words) / speedup
        if rows < masked[best_block]:
            kernel, estimates["masked"] = "rows", rows
    fixed, per_product, per_output, per_nonzero = sparse_terms(cal, shape, scale, b_prepared, speedup)
    estimates["sparse"] = fixed + per_product * a_high * b_high + per_output + per_nonzero * a_high
    method = "dense"
    best_other = min(("masked", "sparse"), key=estimates.__getitem__)
    if estimates[best_other] < cal.margin * estimates["dense"]:
        method = best_other
    return Plan(method, best_block, isa, kernel, estimates, a_density, b_density, cal.measured)


@cache
def _cpu_count() -> int:
    """The machine's CPU count (asked once: ``os.cpu_count`` reads /sys on every call)."""
    return os.cpu_count() or 1


def fixed_costs(
    cal: Calibration, shape: tuple[int, int, int], scale: float, b_prepared: bool, threads: int, filters: bool
) -> tuple[float, float, float]:
    """The density-free terms: dense BLAS's cost (filters included), a masked call's overhead
    (A's bitmap, packing B unless prepared) and the speed-up counted on for the masked kernel's
    extra threads."""
    m, k, n = shape
    parallel = max(1, min(threads, _cpu_count()))
    filter_cost = scale * cal.map_per_entry * (m * k + (0 if b_prepared else k * n)) if filters else 0.0
    dense = scale * cal.dense_per_mac * m * n * k / parallel + filter_cost
    overhead = (
        cal.call_overhead
        + scale * cal.map_per_entry * m * k
        + (0.0 if b_prepared else cal.pack_per_entry * k * n)
    )
    return dense, overhead, 1.0 + cal.masked_parallel_gain * (parallel - 1)


def sparse_terms(
    cal: Calibration, shape: tuple[int, int, int], scale: float, b_prepared: bool, speedup: float
) -> tuple[float, float, float, float]:
    """The sparse kernel's cost as ``fixed + per_product * a * b + per_output + per_nonzero * a``
    for densities a, b: A's bitmap and B's CSR rows (unless prepared), then the kernel's terms."""
    m, k, n = shape
    fixed = cal.call_overhead + scale * (
        cal.map_per_entry * m * k + (0.0 if b_prepared else cal.csr_per_entry * k * n)
    )
    return (
        fixed,
        scale * cal.spgemm_per_flop * m * k * n / speedup,
        scale * cal.spgemm_per_output * m * n / speedup,
        scale * cal.spgemm_per_nonzero * m * k / speedup,
    )


class AutoParams(NamedTuple):
    """The C extension's ``auto_dense`` parameter vector, field by field in the order of the
    ``P_*`` layout in ``_kernels.c`` (the tuples hold one value per row block of ``ROW_BLOCKS``)."""

    runs: float
    run: float
    seed: float
    exact_below: float
    z: float
    margin: float
    dense: float
    overhead: float
    speedup: float
    width: float
    segments: float
    chunk_k: float
    tiles: tuple[float, ...]
    per_call: tuple[float, ...]
    per_iteration: tuple[float, ...]
    blocks: tuple[float, ...]
    has_rows: float
    mk: float
    rows_tiles: float
    scale: float
    rows_per_iteration: float
    rows_per_word: float
    rows_words: float
    sparse_fixed: float
    sparse_product: float
    sparse_output: float
    sparse_nonzero: float
    call_overhead: float

    def to_array(self) -> np.ndarray:
        """The flat float64 vector ``auto_dense`` reads."""
        flat: list[float] = []
        for value in self:
            flat.extend(value if isinstance(value, tuple) else (value,))
        return np.array(flat, np.float64)


_auto_params: dict[tuple, tuple[Calibration, np.ndarray]] = {}


def auto_params(
    shape: tuple[int, int, int], dtype_code: str, isa: str, b_prepared: bool, threads: int, filters: bool
) -> np.ndarray:
    """:func:`choose`'s density-free terms for the C extension's ``auto_dense`` (built once per shape).

    ``auto_dense(A, B, threshold, b_density, params)`` samples A's and B's densities as
    :func:`density_estimate` does and returns whether :func:`choose` would pick dense BLAS, in one
    call with no Python objects made: ``method="auto"``'s planning when it runs BLAS.
    """
    cal = calibration()
    key = (shape, dtype_code, isa, b_prepared, threads, filters)
    hit = _auto_params.get(key)
    if hit is not None and hit[0] == cal:  # a snapshot: calibrating (or editing) invalidates it
        return hit[1]
    m, k, n = shape
    scale = 2.0 if dtype_code == "f64" else 1.0
    width = backend.segment_width(isa, dtype_code)
    dense, overhead, speedup = fixed_costs(cal, shape, scale, b_prepared, threads, filters)
    rows_tiles = -(-n // (width * SEGMENTS * backend.rows_panels(isa)))
    tiles_k = -(-k // (64 * CHUNK_WORDS))
    params = AutoParams(
        RUNS,
        RUN,
        SEED,
        EXACT_BELOW,
        Z_SAMPLE,
        cal.margin,
        dense,
        overhead,
        speedup,
        width,
        SEGMENTS,
        min(k, 64 * CHUNK_WORDS),
        tuple(-(-m // r) * -(-n // (width * SEGMENTS)) * tiles_k for r in ROW_BLOCKS),
        tuple(cal.per_call[r] for r in ROW_BLOCKS),
        tuple(cal.per_iteration[r] for r in ROW_BLOCKS),
        tuple(ROW_BLOCKS),
        float(isa != backend.NUMBA),
        m * k,
        rows_tiles,
        scale,
        cal.rows_per_iteration,
        cal.rows_per_word,
        m * -(-k // 64) * rows_tiles,
        *sparse_terms(cal, shape, scale, b_prepared, speedup),
        cal.call_overhead,
    )
    array = params.to_array()
    if len(_auto_params) > 256:
        _auto_params.clear()
    _auto_params[key] = (copy.deepcopy(cal), array)
    return array


def default_row_block(A: np.ndarray) -> int:
    """The row block the planner would pick for A alone (B assumed as sparse as A)."""
    density = sample_density(A)
    width = 16
    shape = (max(A.shape[0], 4), A.shape[1], 1024)
    cal = calibration()
    costs: dict[int, float] = {}
    for row_block in ROW_BLOCKS:
        iters, _, calls = masked_work(shape, width, row_block, density, density)
        costs[row_block] = cal.per_call[row_block] * calls + cal.per_iteration[row_block] * iters
    return min(costs, key=costs.__getitem__)


def cache_path() -> Path:
    """Where this machine's calibration lives (the user cache)."""
    return cache_dir() / "maskedmm" / "calibration.json"


@cache
def numpy_blas_kernel() -> str | None:
    """The kernel (architecture) of the BLAS numpy itself links, as threadpoolctl reports it."""
    from threadpoolctl import threadpool_info

    for lib in threadpool_info():
        if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", ""):
            return lib.get("architecture")
    return None


def fingerprint() -> dict:
    """What a calibration is valid for: CPU, kernel ISA, numpy's BLAS kernel, OPENBLAS_CORETYPE."""
    return {
        "version": CALIBRATION_VERSION,
        "cpu": cpu()["model"],
        "isa": backend.choose_isa(),
        "blas": numpy_blas_kernel(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


_loaded: Calibration | None = None

CACHE_FORMAT = "frugalml.maskedmm.calibration"
CACHE_VERSION = 2  # of the file's layout (1: no format, version or checksum)
MAX_CACHE_BYTES = 64 * 1024  # a calibration file is ~1 KiB: anything much larger is not one
COST_RANGE = (0.0, 1e-2)  # seconds per unit of work (a fit may find a term free); more is no machine
RANGES = {
    "dense_per_mac": (1e-15, 1e-2),  # dense BLAS's cost divides others: never zero
    "call_overhead": (0.0, 1.0),
    "model_error": (0.0, 10.0),
    "masked_parallel_gain": (0.0, 1.0),
}


class CalibrationWarning(UserWarning):
    """The cached calibration was ignored (corrupt, foreign or from another version): defaults used."""


def _checksum(fingerprint: dict, calibration: dict) -> str:
    """SHA-256 of the canonical JSON of the fingerprint and the calibration."""
    import hashlib

    body = json.dumps(
        {"fingerprint": fingerprint, "calibration": calibration}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _number(name: str, value: object, bounds: tuple[float, float]) -> float:
    """``value`` as a float within ``bounds``, else CorruptFileError naming the field."""
    from frugalml.common.errors import CorruptFileError

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CorruptFileError(f"field {name} is {type(value).__name__}, not a number")
    low, high = bounds
    try:
        value = float(value)  # a JSON integer may be too large for a float
    except OverflowError:
        value = math.inf
    if not (math.isfinite(value) and low <= value <= high):
        raise CorruptFileError(f"field {name} = {value!r} lies outside [{low:g}, {high:g}]")
    return value


def _checked_calibration(doc: object) -> Calibration:
    """A :class:`Calibration` from the ``calibration`` object of a cache file, every field checked:
    exactly the known fields, finite numbers in range, one entry per row block."""
    from frugalml.common.errors import CorruptFileError

    names = {f.name for f in fields(Calibration)}
    if not isinstance(doc, dict) or set(doc) != names:
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise CorruptFileError(f"calibration fields {got} differ from {sorted(names)}")
    values: dict = {}
    for name in names:
        value = doc[name]
        if name == "measured":
            if not isinstance(value, bool):
                raise CorruptFileError(f"field measured is {type(value).__name__}, not a boolean")
            values[name] = value
        elif name in ("per_call", "per_iteration"):
            if not isinstance(value, dict) or set(value) != {str(r) for r in ROW_BLOCKS}:
                raise CorruptFileError(f"field {name} needs one cost per row block {list(ROW_BLOCKS)}")
            values[name] = {int(k): _number(f"{name}[{k}]", v, COST_RANGE) for k, v in value.items()}
        else:
            values[name] = _number(name, value, RANGES.get(name, COST_RANGE))
    return Calibration(**values)


def read_cache(path: str | os.PathLike) -> tuple[dict, Calibration]:
    """The (fingerprint, calibration) a cache file holds, checked for size, layout, version,
    checksum and every value's range; CorruptFileError (one line) otherwise."""
    from frugalml.common.errors import CorruptFileError

    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read(MAX_CACHE_BYTES + 1)
    if len(raw) > MAX_CACHE_BYTES:
        raise CorruptFileError(f"{path} is larger than {MAX_CACHE_BYTES} bytes: not a calibration file")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON ({str(exc).splitlines()[0][:80]})") from None
    if isinstance(doc, dict) and "format" not in doc and {"fingerprint", "calibration"} <= set(doc):
        raise CorruptFileError(f"{path} was written by an older frugalml (layout version 1, no checksum)")
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
        raise CorruptFileError(f"{path} is not a maskedmm calibration file")
    if set(doc) != {"format", "version", "fingerprint", "calibration", "checksum"}:
        raise CorruptFileError(f"{path} has fields {sorted(doc)}, not those of a calibration file")
    if doc["version"] != CACHE_VERSION:
        raise CorruptFileError(
            f"{path} has layout version {doc['version']!r}; this frugalml reads {CACHE_VERSION}"
        )
    fingerprint, body = doc["fingerprint"], doc["calibration"]
    if not isinstance(fingerprint, dict) or doc["checksum"] != _checksum(fingerprint, body):
        raise CorruptFileError(f"{path} fails its checksum (damaged or edited)")
    try:
        return fingerprint, _checked_calibration(body)
    except CorruptFileError as exc:
        raise CorruptFileError(f"{path}: {exc}") from None


def write_cache(path: str | os.PathLike, cal: Calibration) -> None:
    """Write ``cal`` with this machine's fingerprint and a checksum, atomically."""
    body = json.loads(json.dumps(asdict(cal)))  # as it will read back (row blocks as strings)
    doc = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "fingerprint": fingerprint(),
        "calibration": body,
        "checksum": _checksum(fingerprint(), body),
    }
    with atomic_write(path, "w", create_parents=True) as f:
        json.dump(doc, f, indent=2)


def calibration() -> Calibration:
    """This machine's cached calibration if it is sound and matches the fingerprint, else the
    defaults; a cache that is damaged, foreign or of another version is ignored with one
    :class:`CalibrationWarning` per process (``frugal maskedmm calibrate`` rewrites it)."""
    global _loaded
    if _loaded is None:
        _loaded = Calibration()
        path = cache_path()
        if path.is_file():
            _loaded = _load_or_warn(path)
    return _loaded


def _load_or_warn(path: Path) -> Calibration:
    import warnings

    from frugalml.common.errors import CorruptFileError

    advice = "using default costs; run 'frugal maskedmm calibrate' to measure this machine again"
    try:
        recorded, cal = read_cache(path)
    except (OSError, CorruptFileError) as exc:
        warnings.warn(
            f"calibration ignored: {str(exc).splitlines()[0]}; {advice}", CalibrationWarning, stacklevel=4
        )
        return Calibration()
    here = fingerprint()
    if recorded != here:
        differ = sorted(k for k in set(here) | set(recorded) if here.get(k) != recorded.get(k))
        warnings.warn(
            f"calibration ignored: {path} was measured with another {', '.join(differ)}; {advice}",
            CalibrationWarning,
            stacklevel=4,
        )
        return Calibration()
    return cal


def use_calibration(cal: Calibration, *, save: bool = True) -> None:
    """Make ``cal`` this process's calibration and, with ``save``, cache it (atomically) for later
    processes on this machine."""
    global _loaded
    if save:
        write_cache(cache_path(), cal)
    _loaded = cal
