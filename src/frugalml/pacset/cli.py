"""``frugal pacset``: pack a tree ensemble into blocks, inspect it, predict from it, tune, benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(
    help="Packed tree ensembles that predict from disk or Redis reading few blocks.", no_args_is_help=True
)

_LAYOUT = typer.Option(
    "auto",
    "--layout",
    help="auto (chosen per model by simulating block reads; inspect says why), bfs, dfs, wdfs, "
    "blockwise-wdfs.",
)
_BINS = typer.Option(None, "--bins", help="Trees split into this many contiguous bins (default 8).")
_INTERLEAVE = typer.Option(
    None, "--interleave", help="Top levels of a bin's trees written together (default 3)."
)
_BLOCK = typer.Option(4096, "--block-size", help="Bytes per block (a multiple of 4096).")
_QUIET = typer.Option(False, "--quiet", "-q", help="Print less.")
_TRUST = typer.Option(
    False,
    "--trust-pickle",
    help="Allow a joblib/pickle MODEL: loading one runs code it contains, so only for files you trust.",
)


@app.command()
def pack(
    model: Path = typer.Argument(
        ..., help="XGBoost JSON/UBJ, LightGBM text, or (with --trust-pickle) a joblib/pickle model."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="The packed file to write."),
    layout: str = _LAYOUT,
    bins: int | None = _BINS,
    interleave: int | None = _INTERLEAVE,
    block_size: int = _BLOCK,
    vote: str = typer.Option("soft", "--vote", help="RF classifiers: soft (= predict_proba) or hard."),
    calibration: Path = typer.Option(
        None, "--calibration", help="CSV/.npy of typical queries: lay out by their paths."
    ),
    target: str = typer.Option(
        "local",
        "--target",
        help="What --layout auto optimises: local (blocks per cold query: disk, Redis) or remote "
        "(cold-query time over HTTP/S3, where each walk round costs a round trip).",
    ),
    shared_top: bool = typer.Option(
        False, "--shared-top", help="Write all trees' interleaved tops first (read with the header remotely)."
    ),
    trust_pickle: bool = _TRUST,
    quiet: bool = _QUIET,
):
    """Pack MODEL into a block-aligned file: frugal pacset pack model.json -o model.pacset"""
    from frugalml.common.data import read_matrix
    from frugalml.pacset.packer import Packer

    X = read_matrix(calibration) if calibration is not None else None
    packer = Packer(layout, bins, interleave, block_size, vote, shared_top, target).fit(
        model, X, trust_pickle=trust_pickle
    )
    header = packer.write(output)
    if not quiet:
        m = header.metadata
        print(
            f"{output}: {m['n_trees']} trees, {m['n_nodes']} nodes, {m['n_blocks']} blocks of "
            f"{m['block_size']} B ({m['layout']}, bins={m['bins']}, interleave={m['interleave']}"
            f"{', shared top' if m.get('shared_top') else ''})"
        )
        if "layout_choice" in m:
            print(f"layout chosen by auto: {m['layout_choice']['why']}")


@app.command()
def inspect(
    file: str = typer.Argument(..., help="A packed file, or its http(s):// URL."),
    verify: bool = typer.Option(
        False, "--verify", help="Also check the whole file: SHA-256, every block's seal, every node."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
):
    """Show a packed file's header: model, layout, blocks, format version."""
    from frugalml.pacset.fileformat import open_packed, verify_file
    from frugalml.pacset.remote import is_url, remote_info, verify_remote

    if is_url(file):
        info = remote_info(file)
        if verify:
            verify_remote(file)
    else:
        packed = open_packed(file)
        if verify:
            verify_file(file)
        info = {
            "format_version": packed.header.version,
            "payload_offset": packed.header.payload_offset,
            "payload_bytes": packed.header.payload_length,
            **packed.meta,
        }
    info.pop("index_sha256", None)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    choice = info.pop("layout_choice", None)
    for key, value in info.items():
        print(f"{key:>16}: {value}")
    if isinstance(choice, dict):
        print(f"{'layout chosen':>16}: {choice.get('chosen')} ({choice.get('why')})")
        table = choice.get("remote_per_query") or choice.get("blocks_per_query") or {}
        for label, row in table.items():
            cost = (
                f"{row['rounds']} walk rounds, {row['blocks']} blocks fetched, {row['ms']} ms simulated"
                if isinstance(row, dict)
                else f"{row} blocks per query"
            )
            print(f"{'':>16}  {label}: {cost}")
    if verify:
        print(f"{'verified':>16}: payload SHA-256 ok, every block seal and node ok")


@app.command()
def predict(
    file: str = typer.Argument(..., help="A packed file, or its http(s):// URL (read with range requests)."),
    data: Path = typer.Argument(..., help="Rows to predict: .npy or numeric CSV (features only)."),
    backend: str = typer.Option("mmap", "--backend", help="mmap, pread or direct."),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="auto (numpy for small queries until numba is "
        "loaded, numba for big batches), numba, or numpy (no JIT).",
    ),
    proba: bool = typer.Option(False, "--proba", help="Print class probabilities."),
    fetch: str = typer.Option(
        "auto", "--fetch", help="For a URL: auto, blocks (only those needed) or whole (one download)."
    ),
    concurrency: int = typer.Option(16, "--concurrency", help="For a URL: parallel range requests."),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="For a URL: keep fetched blocks here, shared between processes."
    ),
    timeout: float = typer.Option(10.0, "--timeout", help="For a URL: seconds before a request is retried."),
    redis: str = typer.Option(
        None,
        "--redis",
        help="Read FILE's blocks from this Redis URL instead (FILE is then the key prefix used by 'upload').",
    ),
    quiet: bool = _QUIET,
):
    """Predict rows from a packed file without loading it; print one prediction per line."""
    import sys

    import numpy as np

    from frugalml.common.data import read_matrix
    from frugalml.pacset.remote import RemoteOptions
    from frugalml.pacset.runtime import PackedForest

    X = read_matrix(data)
    remote = RemoteOptions(concurrency=concurrency, timeout=timeout, cache_dir=cache_dir, fetch=fetch)
    model = (
        PackedForest.from_redis(redis, str(file), engine=engine)
        if redis
        else PackedForest.open(file, backend=backend, engine=engine, remote=remote)
    )
    with model:
        out = model.predict_proba(X) if proba else model.predict(X)
        np.savetxt(
            sys.stdout, np.atleast_2d(out.T).T, fmt="%.17g" if out.dtype.kind == "f" else "%s", delimiter=","
        )
        if not quiet:
            stats = model.store.stats
            remote_note = (
                f", {stats.bytes_fetched} bytes in {model.store.requests} requests over "
                f"{stats.round_trips} rounds, fetch plan: {model.store.plan}"
                if hasattr(model.store, "plan")
                else ""
            )
            print(
                f"# {len(X)} rows, {model.blocks_touched} blocks touched, "
                f"{stats.blocks_fetched} fetched{remote_note}",
                file=sys.stderr,
            )


@app.command()
def upload(
    file: Path = typer.Argument(..., help="A packed file."),
    redis: str = typer.Option("redis://127.0.0.1:6379/0", "--redis", help="Redis URL."),
    prefix: str = typer.Option(None, "--prefix", help="Key prefix (default: the file name)."),
):
    """Copy a packed file into Redis, one key per block."""
    from frugalml.pacset.fileformat import open_packed
    from frugalml.pacset.stores import redact, upload_to_redis

    prefix = prefix or file.stem
    n = upload_to_redis(open_packed(file), redis, prefix)
    print(f"uploaded {n} blocks to {redact(redis)} under {prefix!r}")


@app.command()
def tune(
    model: Path = typer.Argument(..., help="The model file (as for pack)."),
    data: Path = typer.Argument(..., help="Calibration rows (.npy or CSV)."),
    output: Path = typer.Option(None, "-o", "--output", help="Also pack with the best settings."),
    trust_pickle: bool = _TRUST,
    quiet: bool = _QUIET,
):
    """Choose bins, interleave depth and block size that minimise simulated block reads."""
    from frugalml.common.data import read_matrix
    from frugalml.pacset.importers import load_model_file
    from frugalml.pacset.packer import Packer
    from frugalml.pacset.tune import tune as run_tune

    forest = load_model_file(model, trust_pickle=trust_pickle)
    X = read_matrix(data)
    result = run_tune(forest, X)
    best = result.best
    if not quiet:
        for t in sorted(result.trials, key=lambda t: t["cost_us"])[:5]:
            print(
                f"bins={t['bins']:>2} interleave={t['interleave']} block={t['block_size']:>5}: "
                f"{t['blocks']:.1f} blocks/query, {t['cost_us'] / 1000:.2f} ms simulated"
            )
    print(f"best: --bins {best.bins} --interleave {best.interleave} --block-size {best.block_size}")
    if output is not None:
        Packer(best.layout, best.bins, best.interleave, best.block_size, best.vote).fit(forest).write(output)


@app.command()
def bench(
    json_path: Path = typer.Option(None, "--json", help="Write the records here (and a PNG beside it)."),
    size: str = typer.Option("small", "--size", help="small (a minute) or full (models of 100 MB and more)."),
    fresh_process: bool = typer.Option(
        False,
        "--fresh-process",
        help="Only cold latency with a new Python process per query "
        "(>= 100 MB RF, XGBoost, LightGBM); appends to --json.",
    ),
    remote: bool = typer.Option(
        False,
        "--remote",
        help="Only the serverless cold start: models served over HTTP by nginx behind an emulated "
        "round trip, a fresh process per query, ours (range requests) vs download + load; appends to --json.",
    ),
    rtt: str = typer.Option("20,50", "--rtt", help="With --remote: round trips to emulate, in ms."),
    quiet: bool = _QUIET,
):
    """Cold single-query latency, pages and Redis key reads vs sklearn/XGBoost/LightGBM/ONNX/Treelite."""
    from frugalml.common.parsing import comma_list
    from frugalml.common.validate import one_of
    from frugalml.pacset.bench.fresh import run_fresh
    from frugalml.pacset.bench.latency import run_benchmark

    one_of(size, ("small", "full"), "size")

    if remote:
        from frugalml.pacset.bench.remote import run_remote

        rtts = tuple(float(v) / 1000 for v in comma_list(rtt, float, name="rtt", non_empty=True))
        run_remote(json_path=json_path, size=size, rtts=rtts, quiet=quiet)
    elif fresh_process:
        run_fresh(json_path=json_path, quiet=quiet)
    else:
        run_benchmark(size=size, json_path=json_path, quiet=quiet)


@app.command()
def reproduce(
    json_path: Path = typer.Option(None, "--json", help="Write the records here (and a PNG beside it)."),
    quiet: bool = _QUIET,
):
    """Layouts x data sets (pages per cold query, latency) beside the paper's ratios, with a plot."""
    from frugalml.pacset.bench.reproduce import run_reproduce

    run_reproduce(json_path=json_path, quiet=quiet)


@app.command()
def demo(quiet: bool = _QUIET):
    """Pack a small forest two ways and compare the blocks a cold query reads."""
    from frugalml.pacset.demo import run

    print(run(quiet=quiet))
