"""``frugal pacset bench --remote``: the serverless cold start, a fresh process per query, models on HTTP.

nginx serves the packed files and the peers' native files from a local folder; a delaying TCP proxy
on loopback adds the round trip of a remote region (half each way) and paces each direction at
100 MB/s, because this machine's kernel has no ``tc netem`` (network namespaces alone cannot add
delay). Each trial is a new Python process (interpreter start and imports counted on both sides)
with the served file evicted from the page cache: ours opens the URL and predicts one row with
range requests; each peer downloads the whole file and loads it with its library. Contenders take
turns in a rotating order; medians and min-max are reported with requests, bytes and walk rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from frugalml.common.env import machine
from frugalml.common.report import Record, print_table
from frugalml.pacset.bench.data import fit_rf
from frugalml.pacset.bench.protocol import SYSTEM, log

RTTS = (0.02, 0.05)
COMMAND = "frugal pacset bench --remote --size full --json benchmarks/results/pacset/remote-cold-start.json"
BANDWIDTH = 100e6
PROXY_NOTE = (
    "round trip emulated by a delaying TCP proxy on loopback (half the RTT each way, one more RTT "
    "for each new connection's TCP handshake, no TLS, 100 MB/s per direction; this kernel has no tc "
    "netem); nginx serves the files; a fresh process per query, "
    "interpreter start and imports counted; served file evicted from the page cache before each query"
)


def merge_records(records: list[Record], json_path: str | os.PathLike) -> None:
    """Write ``records`` into ``json_path`` (replacing earlier ones of the same workload, metric and
    peer) and draw the file's plot beside it."""
    from frugalml.common.report import merge_json, read_records

    merge_json(records, json_path)
    plot_remote(read_records(json_path), Path(json_path).with_suffix(".png"))


def plot_remote(records: list[Record], path: Path) -> None:
    """Fresh-process cold queries from HTTP, ours vs each peer at each RTT (log scale), beside the
    layout settings' in-process latency and bytes at each RTT."""
    from frugalml.common.report import new_figure, save_plot

    fresh = [r for r in records if r.metric.startswith("fresh-process cold query over HTTP") and r.peer]
    import textwrap

    fig, axes = new_figure(1, 2, figsize=(18, 6.5))
    fig.subplots_adjust(wspace=0.55)
    labels = [f"{r.workload.split(' (')[0]}, {_rtt(r)}\nvs {r.peer.split(' (')[0]}" for r in fresh]
    x = np.arange(len(fresh))
    axes[0].bar(x - 0.2, [r.ours * 1e3 for r in fresh], 0.4, label="pacset (range requests)")
    axes[0].bar(x + 0.2, [(r.peer_value or 0.0) * 1e3 for r in fresh], 0.4, label="peer (download + load)")
    for i, r in enumerate(fresh):
        axes[0].annotate(f"{r.ratio:.1f}x", (i, (r.peer_value or 0.0) * 1e3), ha="center", fontsize=7)
    axes[0].set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("fresh-process cold query, ms (median)")
    axes[0].legend(fontsize=8)
    sweep = [r for r in records if ", layout " in r.metric]
    names = list(dict.fromkeys(r.metric.split(", layout ")[1] for r in sweep))
    for k, t in enumerate(sorted({_rtt(r) for r in sweep})):
        rows = {r.metric.split(", layout ")[1]: r for r in sweep if f" at {t} RTT" in r.metric}
        y = np.arange(len(names)) + (k - 0.5) * 0.4
        axes[1].barh(y, [rows[n].ours * 1e3 if n in rows else 0 for n in names], 0.4, label=f"{t} RTT")
        for n, yy in zip(names, y, strict=True):
            if n in rows:
                note = rows[n].notes.split(";")[0].replace("median per query: ", "")
                axes[1].annotate(note.split(" (")[0], (rows[n].ours * 1e3, yy), va="center", fontsize=6)
    axes[1].set_yticks(np.arange(len(names)), [textwrap.fill(n, 30) for n in names], fontsize=7)
    axes[1].set_xlabel("cold single-row query in process (open + predict), ms (median)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("pacset: serverless cold start from HTTP (emulated round trips), and layout settings")
    save_plot(fig, path)


def _rtt(record: Record) -> str:
    """The round trip a record's metric names ("50 ms")."""
    return record.metric.split(" at ")[1].split(" RTT")[0]


def pack_remote(model, path: Path) -> Path:
    """Pack ``model`` as the product does for a remote store (``pack --target remote``)."""
    from frugalml.pacset.packer import pack

    pack(model, path, target="remote")
    return path


def layout_label(path: Path) -> str:
    """The layout ``pack --target remote`` chose for the packed file at ``path``."""
    from frugalml.pacset.fileformat import open_packed

    meta = open_packed(path).meta
    return meta.get("layout_choice", {}).get("chosen", meta["layout"])


def byte_compile() -> None:
    """Byte-compile frugalml's modules, as installing the package does, so that the fresh processes
    of both sides load compiled modules (this environment may forbid writing them on import)."""
    import compileall

    import frugalml

    compileall.compile_dir(Path(frugalml.__file__).parent, quiet=1)


class Served(NamedTuple):
    """One contender: its name, child kind, file name under the served folder, and the local path."""

    name: str
    kind: str
    file: str
    path: Path


def trial(kind: str, url: str, row: Path) -> tuple[float, dict]:
    """One fresh-process query; (wall seconds from spawn to exit, the child's report)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "frugalml.pacset.bench.remotechild", kind, url, str(row)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{kind} child failed: {out.stderr.strip()[-500:]}")
    return seconds, json.loads(out.stdout.strip().splitlines()[-1])


def measure(contenders: list[Served], base: str, X: np.ndarray, tmp: Path, quiet: bool) -> dict[str, dict]:
    """Interleaved fresh-process queries of every contender; per name: seconds, reports, predictions."""
    from frugalml.pacset.accounting import evict

    out: dict[str, dict] = {c.name: {"seconds": [], "reports": []} for c in contenders}
    for q, x in enumerate(X):
        row = tmp / f"row-{q}.npy"
        np.save(row, x[None, :])
        k = q % len(contenders)
        for c in contenders[k:] + contenders[:k]:
            evict(c.path)
            seconds, report = trial(c.kind, f"{base}/{c.file}", row)
            out[c.name]["seconds"].append(seconds)
            out[c.name]["reports"].append(report)
        log(quiet, f"  query {q + 1}/{len(X)}")
    return out


def records_for(
    workload: str, rtt: float, results: dict[str, dict], sizes: dict[str, int], layout: str = ""
) -> list[Record]:
    """Latency of ours vs each peer, and ours' bytes per query against the whole file."""
    ours = results["pacset"]
    reports = ours["reports"]
    med = {k: float(np.median([r[k] for r in reports])) for k in ("requests", "bytes", "rounds")}
    plans = sorted({r["plan"] for r in reports})
    detail = (
        f"ours per query: {med['requests']:.0f} HTTP requests, {med['bytes'] / 2**20:.2f} MiB "
        f"({med['bytes'] / sizes['pacset']:.2%} of the {sizes['pacset'] / 2**20:.1f} MiB packed file), "
        f"{med['rounds']:.0f} walk rounds, fetch plan {'/'.join(plans)}; layout chosen by pack --target "
        f"remote: {layout}; the first 128 KiB (header, index and the blocks after them) in one request "
        "while the pool's connections open; each round's runs of adjacent blocks spread over 16 "
        "connections, several ranges per request (multipart/byteranges)"
    )
    records = []
    for name, res in results.items():
        if name == "pacset":
            continue
        records.append(
            Record(
                SYSTEM,
                workload,
                f"fresh-process cold query over HTTP at {rtt * 1e3:.0f} ms RTT (pacset --target remote)",
                "s",
                float(np.median(ours["seconds"])),
                f"{name} (download {sizes[name] / 2**20:.1f} MiB + load + predict)",
                float(np.median(res["seconds"])),
                spread={
                    "ours": [min(ours["seconds"]), max(ours["seconds"])],
                    "peer": [min(res["seconds"]), max(res["seconds"])],
                    "rounds": len(ours["seconds"]),
                },
                notes=f"{detail}; {PROXY_NOTE}; {machine(load=True)}",
                command=COMMAND,
            )
        )
    records.append(
        Record(
            SYSTEM,
            workload,
            f"bytes fetched per cold single-row query over HTTP at {rtt * 1e3:.0f} ms RTT",
            "bytes",
            med["bytes"],
            "whole packed file",
            float(sizes["pacset"]),
            notes=detail,
            command=COMMAND,
        )
    )
    return records


def _check_equal(results: dict[str, dict], workload: str) -> None:
    ours = np.array([r["pred"] for r in results["pacset"]["reports"]])
    for name, res in results.items():
        theirs = np.array([r["pred"] for r in res["reports"]])
        if theirs.shape == ours.shape and not np.allclose(ours, theirs, rtol=1e-4, atol=1e-5):
            raise RuntimeError(f"{workload}: pacset and {name} disagree: {ours[:3]} vs {theirs[:3]}")


def run_workload(
    workload: str, contenders: list[Served], X: np.ndarray, folder: Path, rtts, quiet: bool
) -> list[Record]:
    """Every contender at every RTT through nginx and the delaying proxy."""
    from frugalml.pacset.bench.httpserve import DelayProxy, nginx_server

    sizes = {c.name: c.path.stat().st_size for c in contenders}
    records = []
    byte_compile()
    with nginx_server(folder) as base:
        port = int(base.rsplit(":", 1)[1])
        for rtt in rtts:
            log(quiet, f"[{workload}, RTT {rtt * 1e3:.0f} ms]")
            with DelayProxy(port, rtt / 2, BANDWIDTH) as proxy, tempfile.TemporaryDirectory() as rows:
                results = measure(contenders, f"http://127.0.0.1:{proxy.port}", X, Path(rows), quiet)
            _check_equal(results, workload)
            records += records_for(workload, rtt, results, sizes, layout_label(contenders[0].path))
    return records


def rf_contenders(model, folder: Path, X: np.ndarray, quiet: bool) -> list[Served]:
    """The RF packed (``--target remote``) and as joblib, Treelite and ONNX files."""
    import joblib

    pack_remote(model, folder / "rf.pacset")
    joblib.dump(model, folder / "rf.joblib")
    out = [
        Served("pacset", "pacset", "rf.pacset", folder / "rf.pacset"),
        Served("sklearn joblib.load+predict", "sklearn", "rf.joblib", folder / "rf.joblib"),
    ]
    with contextlib.suppress(ImportError):
        import treelite

        treelite.sklearn.import_model(model).serialize(str(folder / "rf.treelite"))
        out.append(Served("treelite deserialize+gtil", "treelite", "rf.treelite", folder / "rf.treelite"))
    with contextlib.suppress(ImportError):
        from skl2onnx import to_onnx

        onx = to_onnx(
            model,
            X[:1].astype(np.float32),
            options={id(model): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
        (folder / "rf.onnx").write_bytes(onx.SerializeToString())
        out.append(Served("onnxruntime session+run", "onnx", "rf.onnx", folder / "rf.onnx"))
    log(quiet, "  files: " + ", ".join(f"{c.file} {c.path.stat().st_size / 2**20:.1f} MiB" for c in out))
    return out


def booster_contenders(lib: str, model_path: Path, folder: Path, X: np.ndarray) -> list[Served]:
    """A saved XGBoost or LightGBM model: packed, and its native file."""
    from frugalml.pacset.importers import load_model_file

    name = f"{lib}.pacset"
    pack_remote(load_model_file(model_path), folder / name)
    native = folder / model_path.name
    if native != model_path:
        shutil.copy(model_path, native)
    kind = f"{lib} load+predict"
    return [Served("pacset", "pacset", name, folder / name), Served(kind, lib, native.name, native)]


_BW = {"layout": "blockwise-wdfs"}
SETTINGS = {  # name: pack settings; the first is the baseline every other is compared with
    "8 bins, interleave 3": {**_BW, "bins": 8, "interleave": 3},
    "8 bins, shared top of 3 levels": {**_BW, "bins": 8, "interleave": 3, "shared_top": True},
    "8 bins, shared top of 6 levels": {**_BW, "bins": 8, "interleave": 6, "shared_top": True},
    "8 bins, shared top of 8 levels": {**_BW, "bins": 8, "interleave": 8, "shared_top": True},
    "1 bin, interleave 6": {**_BW, "bins": 1, "interleave": 6},
    "64 bins, interleave 3": {**_BW, "bins": 64, "interleave": 3},
    "8 bins, interleave 3, 16 KiB blocks": {**_BW, "bins": 8, "interleave": 3, "block_size": 16384},
    "8 bins, shared top of 6 levels, read-ahead 4 blocks in rounds of < 8": {
        **_BW, "bins": 8, "interleave": 6, "shared_top": True, "readahead": 4,
    },
    "8 bins, shared top of 6 levels, 16 KiB blocks": {
        **_BW, "bins": 8, "interleave": 6, "shared_top": True, "block_size": 16384,
    },
}  # fmt: skip


def settings_sweep(model, X: np.ndarray, folder: Path, rtts, quiet: bool, workload: str) -> list[Record]:
    """Rounds vs bytes: cold single-row queries in process (open the URL + predict, fresh caches and
    connections each time) for each layout setting at each RTT, settings interleaved per query."""
    from frugalml.pacset.bench.httpserve import DelayProxy, nginx_server
    from frugalml.pacset.packer import pack
    from frugalml.pacset.remote import RemoteOptions
    from frugalml.pacset.runtime import PackedForest

    files, options = {}, {}
    for i, (name, config) in enumerate(SETTINGS.items()):
        config = dict(config)
        options[name] = RemoteOptions(fetch="blocks", readahead=config.pop("readahead", 0))
        pack(model, folder / f"setting-{i}.pacset", **config)
        files[name] = folder / f"setting-{i}.pacset"
    chosen = "pack --target remote (" + layout_label(folder / "rf.pacset") + ")"
    files[chosen], options[chosen] = folder / "rf.pacset", RemoteOptions(fetch="blocks")
    names = list(files)
    records = []
    with nginx_server(folder) as base:
        for rtt in rtts:
            log(quiet, f"[layout settings, RTT {rtt * 1e3:.0f} ms]")
            got: dict[str, list[tuple[float, int, int, int]]] = {n: [] for n in names}
            with DelayProxy(int(base.rsplit(":", 1)[1]), rtt / 2, BANDWIDTH) as proxy:
                for q, x in enumerate(X):
                    for name in names[q % len(names) :] + names[: q % len(names)]:
                        url = f"http://127.0.0.1:{proxy.port}/{files[name].name}"
                        start = time.perf_counter()
                        with PackedForest.open(url, engine="numpy", remote=options[name]) as m:
                            m.predict(x[None, :])
                            seconds = time.perf_counter() - start
                            st = m.store
                            got[name].append((seconds, st.stats.round_trips, st.requests, st.remote.bytes))
            records += _setting_records(workload, rtt, got, files)
    return records


def _setting_records(workload: str, rtt: float, got: dict, files: dict) -> list[Record]:
    base = next(iter(got))
    base_s = [g[0] for g in got[base]]
    out = []
    for name, rows in got.items():
        seconds = [g[0] for g in rows]
        rounds, requests, nbytes = (float(np.median([g[k] for g in rows])) for k in (1, 2, 3))
        size = files[name].stat().st_size
        out.append(
            Record(
                SYSTEM,
                workload,
                f"cold single-row query over HTTP in process at {rtt * 1e3:.0f} ms RTT, layout {name}",
                "s",
                float(np.median(seconds)),
                f"layout {base}",
                float(np.median(base_s)),
                spread={"ours": [min(seconds), max(seconds)], "peer": [min(base_s), max(base_s)]},
                notes=f"median per query: {rounds:.0f} walk rounds, {requests:.0f} requests, "
                f"{nbytes / 2**20:.2f} MiB = {nbytes / size:.2%} of the {size / 2**20:.1f} MiB file "
                f"(128 KiB header read included); {len(rows)} queries, settings interleaved; "
                f"{PROXY_NOTE.split('; nginx')[0]}; {machine(load=True)}",
                command=COMMAND,
            )
        )
    return out


def _rf_part(
    X, y, rows: int, folder: Path, rtts, n_queries: int, quiet: bool, full: bool, settings: bool
) -> list[Record]:
    rf = fit_rf(X[:rows], y[:rows], 64 if full else 16, quiet)
    contenders = rf_contenders(rf, folder, X, quiet)
    mib = contenders[1].path.stat().st_size / 2**20
    workload = f"synthetic RF {rows // 1000}k rows ({mib:.0f} MiB joblib)"
    records = []
    if settings:
        records += settings_sweep(rf, X[rows : rows + 2 * n_queries], folder, rtts, quiet, workload)
    del rf
    return records + run_workload(workload, contenders, X[rows : rows + n_queries], folder, rtts, quiet)


def run_remote(
    json_path: str | os.PathLike | None = None,
    size: str = "full",
    rtts=RTTS,
    n_queries: int = 5,
    quiet: bool = False,
    parts: tuple[str, ...] = ("rf", "settings", "boosted"),
) -> list[Record]:
    """The serverless cold-start benchmark (``size="full"``: a >= 100 MB RF and ~50 MB boosted
    models; ``"small"``: a minute's worth; ``parts``: "rf", "settings" (the RF under several
    layouts: rounds vs bytes), "boosted"); merges its records into
    ``json_path``."""
    from sklearn.datasets import make_classification, make_regression

    from frugalml.pacset.bench.data import BoosterShape, fit_boosters

    full = size == "full"
    rows = 150_000 if full else 20_000
    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="pacset-remote-", dir=os.environ.get("PACSET_BENCH_DIR")) as d:
        folder = Path(d)
        X, y = make_classification(rows + 200, 20, n_informative=12, flip_y=0.1, random_state=0)
        if "rf" in parts:
            records += _rf_part(X, y, rows, folder, rtts, n_queries, quiet, full, "settings" in parts)
            if json_path is not None:
                merge_records(records, json_path)
        if "boosted" not in parts:
            return records
        Xr, yr = make_regression(rows + 200, 20, n_informative=12, noise=10.0, random_state=0)
        shape = BoosterShape(450, 12, 320, 2048) if full else BoosterShape(60, 8, 60, 128)
        models = fit_boosters(Xr[:rows], yr[:rows], folder, quiet, shape, regression=True)
        for lib, path in models.items():
            mib = path.stat().st_size / 2**20
            records += run_workload(
                f"{lib} regressor {shape.labels()[lib]} ({mib:.0f} MiB file)",
                booster_contenders(lib, path, folder, Xr),
                Xr[rows : rows + n_queries], folder, rtts, quiet,
            )  # fmt: skip
            if json_path is not None:
                merge_records(records, json_path)
    print_table(records, title="pacset: serverless cold start from HTTP (fresh process per query)")
    return records


BATCH_CODE = """
import sys, time, tempfile, numpy as np
mode, url, rows = sys.argv[1], sys.argv[2], sys.argv[3]
X = np.load(rows)
from frugalml.pacset.runtime import PackedForest
if mode == "auto":
    with PackedForest.open(url) as m:
        m.predict(X)
        print(m.store.plan)
else:
    from frugalml.pacset.bench.remotechild import download
    with tempfile.NamedTemporaryFile(suffix=".pacset") as f:
        f.write(download(url))
        f.flush()
        with PackedForest.open(f.name) as m:
            m.predict(X)
    print("download")
"""


def run_batch(
    json_path: str | os.PathLike | None = None,
    rows: int = 150_000,
    batch: int = 10_000,
    rtt: float = 0.05,
    trials: int = 3,
    quiet: bool = False,
) -> Record:
    """A cold batch from HTTP with ``fetch="auto"`` vs downloading the packed file and predicting
    locally, each in a fresh process (interleaved), at ``rtt`` through the delaying proxy."""
    from sklearn.datasets import make_classification

    from frugalml.pacset.accounting import evict
    from frugalml.pacset.bench.httpserve import DelayProxy, nginx_server

    X, y = make_classification(rows + batch, 20, n_informative=12, flip_y=0.1, random_state=0)
    times: dict[str, list[float]] = {"auto": [], "download": []}
    with tempfile.TemporaryDirectory(prefix="pacset-batch-", dir=os.environ.get("PACSET_BENCH_DIR")) as d:
        folder = Path(d)
        rf = fit_rf(X[:rows], y[:rows], 64 if rows >= 100_000 else 16, quiet)
        path = pack_remote(rf, folder / "rf.pacset")
        del rf
        np.save(folder / "rows.npy", X[rows:])
        with (
            nginx_server(folder) as base,
            DelayProxy(int(base.rsplit(":", 1)[1]), rtt / 2, BANDWIDTH) as proxy,
        ):
            url = f"http://127.0.0.1:{proxy.port}/rf.pacset"
            plan = ""
            for t in range(trials):
                for mode in ("auto", "download") if t % 2 == 0 else ("download", "auto"):
                    evict(path)
                    start = time.perf_counter()
                    out = subprocess.run(
                        [sys.executable, "-c", BATCH_CODE, mode, url, str(folder / "rows.npy")],
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    times[mode].append(time.perf_counter() - start)
                    plan = out.stdout.strip() if mode == "auto" else plan
                log(quiet, f"  trial {t + 1}/{trials}")
            sweep = concurrency_sweep(url, path, X[rows : rows + 7])
        size = path.stat().st_size
    ours, peer = np.array(times["auto"]), np.array(times["download"])
    record = Record(
        SYSTEM,
        f"synthetic RF {rows // 1000}k rows ({size / 2**20:.0f} MiB packed), cold batch of {batch} rows",
        f"fresh-process cold batch over HTTP at {rtt * 1e3:.0f} ms RTT, fetch=auto",
        "s",
        float(np.median(ours)),
        "download the packed file, then predict locally",
        float(np.median(peer)),
        spread={
            "ours": [float(ours.min()), float(ours.max())],
            "peer": [float(peer.min()), float(peer.max())],
        },
        notes=f"goal: at most 1.2x the download-then-predict time; plan chosen: {plan}; {PROXY_NOTE}; "
        f"{trials} interleaved trials; {machine(load=True)}",
        command="python -c 'from frugalml.pacset.bench.remote import run_batch; "
        'run_batch("benchmarks/results/pacset/remote-cold-start.json")\'',
    )
    log(quiet, f"auto {record.ours:.2f} s vs download {record.peer_value:.2f} s; plan {plan}")
    for r in sweep:
        r.workload = record.workload.split(", cold batch")[0]
        r.notes += f"; {PROXY_NOTE.split('; nginx')[0]}; {machine(load=True)}"
        log(quiet, f"{r.metric}: {r.ours * 1e3:.0f} ms vs {r.peer_value * 1e3:.0f} ms")
    if json_path is not None:
        merge_records([record, *sweep], json_path)
    return record


def concurrency_sweep(url: str, path: Path, X: np.ndarray, levels=(4, 16, 64)) -> list[Record]:
    """Cold single-row queries in process (open the URL + predict; numba loaded) at each level of
    concurrency, interleaved; each level against the default (16)."""
    from frugalml.pacset.accounting import evict
    from frugalml.pacset.remote import RemoteOptions
    from frugalml.pacset.runtime import PackedForest

    with PackedForest.open(path, engine="numba") as m:  # kernels loaded, as in a warm function
        m.predict(X[:1])
    times: dict[int, list[float]] = {c: [] for c in levels}
    rounds: dict[int, list[int]] = {c: [] for c in levels}
    for q, x in enumerate(X):
        order = levels[q % len(levels) :] + levels[: q % len(levels)]
        for c in order:
            evict(path)
            start = time.perf_counter()
            with PackedForest.open(
                url, engine="numba", remote=RemoteOptions(concurrency=c, fetch="blocks")
            ) as m:
                m.predict(x[None, :])
                rounds[c].append(m.store.stats.round_trips)
            times[c].append(time.perf_counter() - start)
    base = 16
    return [
        Record(
            SYSTEM,
            "",
            f"cold single-row query over HTTP in process at 50 ms RTT, {c} parallel requests",
            "s",
            float(np.median(times[c])),
            f"{base} parallel requests (the default)",
            float(np.median(times[base])),
            spread={"ours": [min(times[c]), max(times[c])], "peer": [min(times[base]), max(times[base])]},
            notes=f"walk rounds {int(np.median(rounds[c]))}; {len(X)} interleaved queries",
        )
        for c in levels
        if c != base
    ]


def run_phases(
    json_path: str | os.PathLike | None = None,
    rows: int = 150_000,
    rtts=RTTS,
    n_queries: int = 9,
    quiet: bool = False,
) -> list[Record]:
    """Where a fresh-process cold query from HTTP spends its time: per phase (interpreter start,
    numpy, pacset's imports, the open, each walk round) the median seconds over ``n_queries``
    fresh processes, for the RF packed with ``--target remote``."""
    from sklearn.datasets import make_classification

    from frugalml.pacset.accounting import evict
    from frugalml.pacset.bench.httpserve import DelayProxy, nginx_server

    X, y = make_classification(rows + n_queries, 20, n_informative=12, flip_y=0.1, random_state=0)
    records = []
    with tempfile.TemporaryDirectory(prefix="pacset-phases-", dir=os.environ.get("PACSET_BENCH_DIR")) as d:
        folder = Path(d)
        rf = fit_rf(X[:rows], y[:rows], 64 if rows >= 100_000 else 16, quiet)
        path = pack_remote(rf, folder / "rf.pacset")
        del rf
        byte_compile()
        workload = f"synthetic RF {rows // 1000}k rows ({path.stat().st_size / 2**20:.0f} MiB packed)"
        with nginx_server(folder) as base:
            for rtt in rtts:
                got = []
                with DelayProxy(int(base.rsplit(":", 1)[1]), rtt / 2, BANDWIDTH) as proxy:
                    for q in range(n_queries):
                        np.save(folder / "row.npy", X[rows + q][None, :])
                        evict(path)
                        url = f"http://127.0.0.1:{proxy.port}/rf.pacset"
                        argv = [url, str(folder / "row.npy"), repr(time.time())]
                        out = subprocess.run(
                            [sys.executable, "-m", "frugalml.pacset.bench.phasechild", *argv],
                            capture_output=True, text=True, check=True,
                        )  # fmt: skip
                        got.append(json.loads(out.stdout.strip().splitlines()[-1]))
                log(quiet, f"  phases at {rtt * 1e3:.0f} ms RTT measured")
                records += _phase_records(workload, rtt, got, layout_label(path))
    if json_path is not None:
        from frugalml.common.report import merge_json

        merge_json(records, json_path)
    return records


def _phase_records(workload: str, rtt: float, got: list[dict], layout: str) -> list[Record]:
    """Per phase, the median time it took (the walk rounds as one phase, their count in the notes)."""
    durations: dict[str, list[float]] = {}
    for g in got:
        prev = 0.0
        marks = list(g["marks"].items())
        walk = g["rounds"]
        for name, t in marks[:-1]:
            durations.setdefault(name, []).append(t - prev)
            prev = t
        end = marks[-1][1]
        durations.setdefault("walk rounds", []).append((walk[-1] if walk else prev) - prev)
        durations.setdefault("after the last round", []).append(end - (walk[-1] if walk else prev))
        durations.setdefault("total", []).append(end)
    n_rounds = float(np.median([len(g["rounds"]) for g in got]))
    return [
        Record(
            SYSTEM,
            workload,
            f"fresh-process cold query over HTTP at {rtt * 1e3:.0f} ms RTT, phase: {name}",
            "s",
            float(np.median(v)),
            spread={"ours": [min(v), max(v)], "rounds": len(v)},
            notes=f"median over {len(v)} fresh processes; median {n_rounds:.0f} walk rounds; layout "
            f"{layout}; {PROXY_NOTE}; {machine(load=True)}",
            command="python benchmarks/pacset/remote_phases.py benchmarks/results/pacset/remote-phases.json",
        )
        for name, v in durations.items()
    ]
