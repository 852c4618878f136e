"""The cold-query protocol shared by every pacset benchmark: contenders, timed queries, records, plots.

Before every query the model file is evicted from the page cache (posix_fadvise DONTNEED, verified
with mincore); each contender then opens its model file and predicts one row. Contenders take turns
in a rotating order. Ours opens the packed file (header and index) and reads only the blocks the
query needs; peers parse their whole file first. Timings are noisy on a busy machine, so medians,
p95 and min-max are reported, with the machine's facts in each results file's environment record.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from frugalml.common.report import (
    Record,
    merge_json,
    new_figure,
    read_records,
    save_plot,
    write_json,
)
from frugalml.common.timing import Comparison, Timing

SYSTEM = "pacset"
BEST = "bin+blockwise"
"""The layout every other one is compared with (the paper's BLOCKSET)."""
LAYOUT_SET = {  # name: (layout, bins, interleave); "bin+blockwise" is the paper's BLOCKSET
    "bfs": ("bfs", 1, 0),
    "dfs": ("dfs", 1, 0),
    "wdfs": ("wdfs", 1, 0),
    BEST: ("blockwise-wdfs", 8, 3),
}
BINNED_LAYOUT_SET = {  # the paper's boosting comparison: every layout binned and interleaved alike
    "bin+bfs": ("bfs", 8, 3),
    "bin+dfs": ("dfs", 8, 3),
    "bin+wdfs": ("wdfs", 8, 3),
    BEST: ("blockwise-wdfs", 8, 3),
}
PLAIN_LAYOUTS = ("bfs", "dfs", "wdfs")
PAGES_METRIC = "pages read per cold query"


class Workload(NamedTuple):
    """Where and how a benchmark runs: scratch folder, queries per contender, Redis URL, verbosity."""

    tmp: Path
    n_queries: int
    redis_url: str | None
    quiet: bool


@dataclass
class Contender:
    """One way to answer a cold query: a file to evict and a call that loads it and predicts."""

    name: str
    path: Path
    query: Callable[[np.ndarray], object]
    samples: list[float] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)
    read_bytes: list[int] = field(default_factory=list)
    cold_ok: list[bool] = field(default_factory=list)
    kind: str | None = None  # coldchild kind, for fresh-process runs


def log(quiet: bool, *args) -> None:
    """Progress on stderr unless ``quiet``."""
    if not quiet:
        print(*args, file=sys.stderr, flush=True)


def _rotated(contenders: list[Contender], q: int) -> list[Contender]:
    """The contenders in turn ``q``'s order (each one goes first in its turn)."""
    k = q % len(contenders)
    return contenders[k:] + contenders[:k]


def cold_queries(contenders: list[Contender], queries: np.ndarray, quiet: bool) -> None:
    """Each query, each contender (rotating order): evict, check, then time load + predict of one row."""
    from frugalml.pacset.accounting import evict, read_bytes, resident_pages

    for q, x in enumerate(queries):
        for c in _rotated(contenders, q):
            evict(c.path)
            c.cold_ok.append(resident_pages(c.path)[0] == 0)
            before = read_bytes()
            start = time.perf_counter()
            c.query(x[None, :])
            c.samples.append(time.perf_counter() - start)
            c.read_bytes.append(read_bytes() - before)
            c.pages.append(resident_pages(c.path)[0])
        log(quiet, f"  query {q + 1}/{len(queries)}")


def fresh_process_queries(contenders: list[Contender], queries: np.ndarray, tmp: Path, quiet: bool) -> None:
    """Each query, each contender (rotating order) in a fresh child process that imports its library,
    evicts the model file (checked with mincore) and only then times load + predict of one row."""
    untyped = [c.name for c in contenders if c.kind is None]
    if untyped:
        raise ValueError(f"contenders {untyped} have no coldchild kind; a fresh process cannot run them")
    for q, x in enumerate(queries):
        row = tmp / f"row-{q}.npy"
        np.save(row, x[None, :])
        for c in _rotated(contenders, q):
            out = subprocess.run(
                [sys.executable, "-m", "frugalml.pacset.bench.coldchild", str(c.kind), str(c.path), str(row)],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            c.samples.append(result["seconds"])
            c.cold_ok.append(result["cold"])
            c.pages.append(result["pages"])
        log(quiet, f"  fresh-process query {q + 1}/{len(queries)}")


def latency_record(
    workload: str, ours: Contender, peer: Contender, warmup: int = 0, notes: str = ""
) -> Record:
    """A cold-latency record (median; p95 in the notes) of ours vs a peer from interleaved samples."""
    comparison = Comparison(Timing.of(ours.samples), Timing.of(peer.samples), len(ours.samples), warmup)
    p95 = (np.percentile(ours.samples, 95), np.percentile(peer.samples, 95))
    cold = all(ours.cold_ok) and all(peer.cold_ok)
    return Record.from_comparison(
        comparison,
        system=SYSTEM,
        workload=workload,
        peer=peer.name,
        metric=f"cold query latency ({ours.name})",
        notes=f"p95 ours {p95[0] * 1e3:.2f} ms, peer {p95[1] * 1e3:.2f} ms; pages read ours "
        f"{np.median(ours.pages):.0f}, peer {np.median(peer.pages):.0f}; cache verified cold: {cold}"
        + (f"; {notes}" if notes else ""),
    )


@dataclass(frozen=True)
class Count:
    """Counts (pages, keys) per query of one contender, named as a record names it."""

    name: str
    values: list


def count_record(workload: str, metric: str, unit: str, ours: Count, peer: Count, notes: str = "") -> Record:
    """A lower-is-better count record (median; min-max in the spread) of ours vs a peer."""
    return Record(
        SYSTEM,
        workload,
        f"{metric} ({ours.name})",
        unit,
        float(np.median(ours.values)),
        peer.name,
        float(np.median(peer.values)),
        higher_is_better=False,
        spread={
            "ours": [float(np.min(ours.values)), float(np.max(ours.values))],
            "peer": [float(np.min(peer.values)), float(np.max(peer.values))],
        },
        notes=notes,
    )


def pages_record(workload: str, best: Contender, label: str, other: Contender, notes: str = "") -> Record:
    """Pages read per cold query of bin+blockwise (``best``) vs layout ``label`` (``other``)."""
    return count_record(
        workload, PAGES_METRIC, "pages", Count(BEST, best.pages), Count(f"pacset {label}", other.pages), notes
    )


def ours_query(path: Path, engine: str = "numba") -> Callable:
    """Open ``path`` and predict; in-process runs use numba (a long-lived process has it loaded)."""
    from frugalml.pacset.runtime import PackedForest

    def query(x):
        with PackedForest.open(path, engine=engine) as model:
            return model.predict(x)

    return query


def pack_as(forest, path: Path, label: str, layouts: dict = LAYOUT_SET) -> Path:
    """Pack ``forest`` (a Forest or a model) into ``path`` with the layout named ``label``."""
    from frugalml.pacset.packer import pack

    layout, bins, interleave = layouts[label]
    pack(forest, path, layout=layout, bins=bins, interleave=interleave)
    return path


def pack_layouts(model, tmp: Path, name: str, quiet: bool, layouts: dict = LAYOUT_SET) -> dict[str, Path]:
    """``model`` packed once per layout in ``layouts``: {label: file}."""
    from frugalml.pacset.importers import from_model

    forest = from_model(model)
    paths = {}
    for label in layouts:
        start = time.perf_counter()
        path = pack_as(forest, tmp / f"{name}-{label}.pacset", label, layouts)
        log(
            quiet,
            f"  packed {label}: {os.path.getsize(path) / 2**20:.1f} MiB in "
            f"{time.perf_counter() - start:.1f} s",
        )
        paths[label] = path
    return paths


def sklearn_peers(model, X_probe, tmp: Path, name: str, max_nodes: int, quiet: bool) -> list[Contender]:
    """joblib + sklearn always; ONNX Runtime up to ``max_nodes`` nodes, Treelite up to 5x that."""
    import joblib

    path = tmp / f"{name}.joblib"
    joblib.dump(model, path)
    log(quiet, f"  joblib file: {os.path.getsize(path) / 2**20:.1f} MiB")
    peers = [
        Contender("sklearn joblib.load+predict", path, lambda x: joblib.load(path).predict(x), kind="sklearn")
    ]
    n_nodes = sum(e.tree_.node_count for e in np.ravel(model.estimators_))
    if n_nodes > 5 * max_nodes:
        log(quiet, f"  ONNX/Treelite skipped: {n_nodes} nodes (conversion too slow)")
        return peers
    if n_nodes > max_nodes:
        log(quiet, f"  ONNX skipped: {n_nodes} nodes > {max_nodes} (skl2onnx conversion too slow)")
    else:
        with contextlib.suppress(ImportError):
            peers.append(_onnx_peer(model, X_probe, tmp / f"{name}.onnx"))
    with contextlib.suppress(ImportError):
        peers.append(_treelite_peer(model, tmp / f"{name}.treelite"))
    return peers


def _onnx_peer(model, X_probe, onx: Path) -> Contender:
    """``model`` converted with skl2onnx, answered by a new ONNX Runtime session per query."""
    import onnxruntime as ort
    from skl2onnx import to_onnx

    onx.write_bytes(
        to_onnx(
            model, X_probe[:1].astype(np.float32), options={id(model): {"zipmap": False}}
        ).SerializeToString()
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1

    def onnx_query(x):
        sess = ort.InferenceSession(str(onx), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]

    return Contender("onnxruntime session+run", onx, onnx_query, kind="onnx")


def _treelite_peer(model, tl: Path) -> Contender:
    """``model`` imported into Treelite, deserialized and predicted with GTIL per query."""
    import treelite
    import treelite.gtil

    treelite.sklearn.import_model(model).serialize(str(tl))

    def treelite_query(x):
        return treelite.gtil.predict(treelite.Model.deserialize(str(tl)), x.astype(np.float32), nthread=1)

    return Contender("treelite deserialize+gtil", tl, treelite_query, kind="treelite")


def plot_latency(records: list[Record], path: Path, title: str) -> None:
    """Cold latency of ours vs each peer (log scale) beside pages read per layout."""
    lat = [
        r
        for r in records
        if r.metric.startswith(("cold query latency", "fresh-process cold query"))
        and r.peer
        and "pacset" not in r.peer
    ]
    fig, axes = new_figure(1, 2, figsize=(13, 4.5))
    labels = [
        f"{r.workload}\nvs {r.peer}" + (" (fresh process)" if r.metric.startswith("fresh") else "")
        for r in lat
    ]
    x = np.arange(len(lat))
    axes[0].bar(x - 0.2, [r.ours * 1e3 for r in lat], 0.4, label="pacset bin+blockwise")
    axes[0].bar(x + 0.2, [(r.peer_value or 0.0) * 1e3 for r in lat], 0.4, label="peer")
    axes[0].set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("cold single-query latency, ms (median)")
    axes[0].legend()
    pages = [r for r in records if r.metric.startswith("pages read")]
    x = np.arange(len(pages))
    axes[1].bar(x - 0.2, [r.ours for r in pages], 0.4, label="bin+blockwise")
    axes[1].bar(x + 0.2, [r.peer_value for r in pages], 0.4, label="other layout")
    axes[1].set_xticks(x, [f"{r.workload}\n{r.peer}" for r in pages], rotation=60, ha="right", fontsize=7)
    axes[1].set_ylabel("pages read per cold query (median)")
    axes[1].legend()
    fig.suptitle(title)
    save_plot(fig, path)


LATENCY_TITLE = "pacset vs peers (cold page cache)"


def save_latency(records: list[Record], json_path) -> None:
    """Write what was measured so far (a long run that is cut short keeps its results) and its plot."""
    if json_path is not None:
        write_json(records, json_path)
        plot_latency(records, Path(json_path).with_suffix(".png"), LATENCY_TITLE)


def merge_records(records: list[Record], json_path: str | os.PathLike) -> None:
    """Write ``records`` into ``json_path``, replacing earlier records of the same workload, metric
    and peer, and plot the whole file."""
    merge_json(records, json_path)
    plot_latency(read_records(json_path), Path(json_path).with_suffix(".png"), LATENCY_TITLE)
