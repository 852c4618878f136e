"""``frugal urerf``: fit forests on your data, run the paper's simulations, benchmarks and reproduction."""

from __future__ import annotations

from pathlib import Path

import typer

from frugalml.common.files import check_output

app = typer.Typer(
    help="Unsupervised randomer forests: geodesic neighbours robust to noise dimensions.",
    no_args_is_help=True,
)

MAX_REPEATS = 1000  # --seeds and --rounds: each repeats the whole run
TREES = typer.Option(
    300, "--trees", min=1, help="Number of trees (refused before any work when they cannot fit in memory)."
)
SEEDS = typer.Option(
    3,
    "--seeds",
    min=1,
    max=MAX_REPEATS,
    help=f"Repeat over this many seeds (at most {MAX_REPEATS}) and average.",
)
POINTS = typer.Option(1000, "--n", min=2, help="Points per data set.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress output.")
JSON = typer.Option(None, "--json", help="Write the results as JSON records here (plus a PNG plot).")


def _non_negative(item: str) -> int:
    """One noise-dimension count typed on the command line."""
    try:
        value = int(item)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError("give comma-separated non-negative integers")
    return value


def _ints(text: str, name: str) -> list[int]:
    from frugalml.common.parsing import comma_list

    return comma_list(text, _non_negative, name=name, non_empty=True)


def _names(text: str, allowed, name: str, non_empty: bool = False) -> list[str]:
    from frugalml.common.parsing import comma_list

    return comma_list(text, name=name, allowed=allowed, non_empty=non_empty)


def _check_forests(trees: int, *sizes: int) -> None:
    """Refuse, before any work, forests of ``trees`` trees that cannot fit in memory at these sizes."""
    from frugalml.urerf.limits import check_forest_fits

    for n in sizes:
        check_forest_fits(trees, n)


def _check_k(k: int, n: int) -> None:
    """k neighbours need k + 1 points (a point is not its own neighbour)."""
    from frugalml.common.errors import InvalidInputError

    if k >= n:
        raise InvalidInputError(
            f"--k {k} needs at least {k + 1} points, the data have {n}; choose --k below {n}"
        )


def _finish(records, json_path: Path | None, title: str, plot=None) -> None:
    from frugalml.common.report import print_table, save_plot, write_json

    print_table(records, title=title)
    if json_path is not None:
        write_json(records, json_path)
        if plot is not None:
            save_plot(plot, json_path.with_suffix(".png"))
        typer.echo(f"wrote {json_path}" + (f" and {json_path.with_suffix('.png')}" if plot else ""))


@app.command()
def fit(
    data: Path = typer.Argument(..., help="Samples x features: .npy, .npz, .csv or whitespace text."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the neighbours (.npz)."),
    k: int = typer.Option(50, "--k", min=1, help="Neighbours per point (fewer than the points)."),
    trees: int = typer.Option(
        100, "--trees", min=1, help="Number of trees (refused before growing when they cannot fit in memory)."
    ),
    projection: str = typer.Option("sparse", help="sparse, axis or gaussian."),
    criterion: str = typer.Option("fastbic", help="fastbic or twomeans."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (a non-negative integer)."),
    model: Path = typer.Option(None, "--model", help="Also save the fitted forest here (.urerf)."),
    quiet: bool = QUIET,
):
    """Fit a forest on DATA and write each point's k most similar points (indices, similarities)."""
    import numpy as np

    from frugalml.common.data import read_matrix
    from frugalml.common.files import atomic_write
    from frugalml.urerf.forest import UnsupervisedRandomerForest

    check_output(output, model)
    X = read_matrix(data)
    _check_k(k, X.shape[0])
    forest = UnsupervisedRandomerForest(trees, projection=projection, criterion=criterion, random_state=seed)
    forest.fit(X)
    dist, ind = forest.kneighbors(n_neighbors=k)
    with atomic_write(output) as f:
        np.savez_compressed(f, indices=ind, similarities=1.0 - dist)
    if model is not None:
        forest.save(model)
    if not quiet:
        typer.echo(f"{X.shape[0]} points x {k} neighbours from {trees} trees -> {output}")


@app.command()
def neighbours(
    model: Path = typer.Argument(..., help="A forest saved by 'fit --model'."),
    data: Path = typer.Argument(..., help="New points (same features as the training data)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the neighbours (.npz)."),
    k: int = typer.Option(50, "--k", min=1, help="Training neighbours per new point."),
):
    """Route new points through a saved forest and write their k most similar training points."""
    import numpy as np

    from frugalml.common.data import read_matrix
    from frugalml.common.files import atomic_write
    from frugalml.urerf.forest import UnsupervisedRandomerForest

    check_output(output)
    forest = UnsupervisedRandomerForest.load(model)
    dist, ind = forest.kneighbors(read_matrix(data), n_neighbors=k)
    with atomic_write(output) as f:
        np.savez_compressed(f, indices=ind, similarities=1.0 - dist)


@app.command()
def sim(
    dataset: str = typer.Option(
        "helix", help="linear, helix, sphere, gaussian_mixture, hardy_weinberg, swiss_roll or s_curve."
    ),
    noise: str = typer.Option("0,10,100", help="Comma-separated numbers of noise dimensions."),
    n: int = POINTS,
    trees: int = TREES,
    seeds: int = SEEDS,
    k: int = typer.Option(50, "--k", min=1, help="Precision at k (below --n)."),
    projection: str = typer.Option("axis", help="axis (as in the paper's noise figure), sparse or gaussian."),
    peers: str = typer.Option("", help="Also run these peers (e.g. euclidean,isomap,umap)."),
    json_path: Path = JSON,
    quiet: bool = QUIET,
):
    """Geodesic precision@k of URerF on a simulated manifold with noise dimensions appended."""
    from frugalml.common.validate import one_of
    from frugalml.urerf.bench.peers import BASELINES
    from frugalml.urerf.bench.quality import noise_sweep, print_scores, sweep_records
    from frugalml.urerf.datasets import SIMULATIONS, check_simulation_fits
    from frugalml.urerf.forest import PROJECTIONS

    _names(dataset, SIMULATIONS, "dataset", non_empty=True)
    one_of(projection, PROJECTIONS, "--projection")
    _check_k(k, n)
    check_output(json_path)
    levels = _ints(noise, "--noise")
    check_simulation_fits(n, max(levels))
    _check_forests(trees, n)
    methods = ["urerf", *_names(peers, BASELINES, "peer")]
    scores, skipped = noise_sweep(
        [dataset],
        levels,
        methods,
        n=n,
        n_trees=trees,
        seeds=range(seeds),
        k=k,
        projection=projection,
        quiet=quiet,
    )
    print_scores(scores, k, skipped)
    records = sweep_records(scores, n=n, n_trees=trees, n_seeds=seeds, k=k)
    if records:
        _finish(records, json_path, f"urerf sim: {dataset}")


@app.command()
def reproduce(
    datasets: str = typer.Option("linear,helix,sphere", help="Data sets of the noise figure."),
    noise: str = typer.Option("0,10,100", help="Noise dimensions (the paper went to 0..10000)."),
    peers: str = typer.Option("euclidean,isomap,umap,rf", help="Peers measured in the same run."),
    n: int = typer.Option(1000, "--n", min=51, help="Points per data set (P@50 needs more than 50)."),
    trees: int = TREES,
    seeds: int = SEEDS,
    json_path: Path = JSON,
    quiet: bool = QUIET,
):
    """The paper's noise figure: P@50 vs noise dimensions, ours and peers beside the paper's numbers."""
    from frugalml.urerf.bench.peers import BASELINES
    from frugalml.urerf.bench.quality import noise_plot, noise_sweep, print_scores, sweep_records
    from frugalml.urerf.datasets import SIMULATIONS, check_simulation_fits

    names = _names(datasets, SIMULATIONS, "dataset", non_empty=True)
    check_output(json_path)
    levels = _ints(noise, "--noise")
    check_simulation_fits(n, max(levels))
    _check_forests(trees, n)
    methods = ["urerf", *_names(peers, BASELINES, "peer")]
    scores, skipped = noise_sweep(names, levels, methods, n=n, n_trees=trees, seeds=range(seeds), quiet=quiet)
    print_scores(scores, 50, skipped)
    records = sweep_records(scores, n=n, n_trees=trees, n_seeds=seeds, k=50)
    _finish(records, json_path, "urerf reproduce: noise figure", noise_plot(scores, names, levels))


@app.command()
def drosophila(
    path: Path = typer.Option(
        None,
        "--path",
        help="Folder with right_adjacency.csv and right_cell_labels.csv (default: $FRUGAL_DATA/connectome).",
    ),
    peers: str = typer.Option("euclidean,isomap,umap,rf", help="Peers measured in the same run."),
    trees: int = TREES,
    seeds: int = SEEDS,
    min_parent: int = typer.Option(
        None, "--min-parent", min=1, help="Smallest splittable node (default round(sqrt(n)) = 15)."
    ),
    normalize: bool = typer.Option(True, help="Min-max scale the embedding's columns first."),
    json_path: Path = JSON,
    quiet: bool = QUIET,
):
    """Cell-type precision at k = 50..150 on the larval Drosophila mushroom-body connectome."""
    from frugalml.urerf.bench.connectome import drosophila as run
    from frugalml.urerf.bench.connectome import drosophila_records, print_drosophila
    from frugalml.urerf.bench.peers import BASELINES
    from frugalml.urerf.bench.quality import print_skipped
    from frugalml.urerf.drosophila import drosophila_embedding, load_drosophila

    check_output(json_path)
    connectome = load_drosophila(path)
    X, d = drosophila_embedding(connectome)
    _check_forests(trees, X.shape[0])
    methods = ["urerf", *_names(peers, BASELINES, "peer")]
    options = {"projection": "sparse", "min_parent": min_parent, "normalize": normalize}
    results, skipped = run(
        X, connectome.labels, methods, n_trees=trees, seeds=range(seeds), forest_options=options, quiet=quiet
    )
    print_drosophila(
        results, f"Drosophila right mushroom body: label precision (d = {d}, features {X.shape})"
    )
    print_skipped(skipped)
    setting = f"min_parent={min_parent or 'sqrt(n)'}, normalize={normalize}"
    records = drosophila_records(results, setting, notes=f"{trees} trees, {seeds} seeds")
    if json_path is not None:
        _finish(records, json_path, "urerf drosophila")


@app.command()
def bench(
    peers: str = typer.Option(
        "isomap,umap,rf,rte,pynndescent,treeple,treeple-axis", help="Peers to time and score in the same run."
    ),
    n: int = typer.Option(5000, "--n", min=51, help="Points for the speed run (top-50 needs more than 50)."),
    p: int = typer.Option(13, "--p", min=3, help="Features for the speed run (helix + noise)."),
    trees: int = typer.Option(100, "--trees", min=1, help="Trees for the speed run."),
    high_p: bool = typer.Option(True, help="Also time n = 1000, p = 1003."),
    quality: bool = typer.Option(True, help="Also score P@50 on helix + 10 noise dims (n = 1000)."),
    scale_n: int = typer.Option(
        0,
        "--scale",
        min=0,
        help="Also run top-50 at this n, p = 20, 100 trees "
        "(e.g. 50000) in a fresh process, with its peak memory.",
    ),
    rounds: int = typer.Option(
        3,
        "--rounds",
        min=1,
        max=MAX_REPEATS,
        help=f"Interleaved timing rounds per peer (at most {MAX_REPEATS}).",
    ),
    json_path: Path = JSON,
    quiet: bool = QUIET,
):
    """Time fit + top-50 neighbours against real peers (same data, same run); score quality; check scale."""
    from frugalml.urerf.bench.peers import BASELINES
    from frugalml.urerf.bench.quality import noise_sweep, print_scores, sweep_records
    from frugalml.urerf.bench.scale import check_scale, scale
    from frugalml.urerf.bench.speed import bench_plot, speed

    chosen = _names(peers, BASELINES, "peer")
    check_output(json_path)
    _check_forests(trees, n, *([1000] if high_p else []))
    if quality:
        _check_forests(300, 1000)
    if scale_n:
        _check_k(50, scale_n)
        check_scale(scale_n, 20, 100)
    records = speed(chosen, n=n, p=p, n_trees=trees, rounds=rounds, quiet=quiet)
    if high_p:
        records += speed(chosen, n=1000, p=1003, n_trees=trees, rounds=rounds, quiet=quiet)
    if quality:
        scores, skipped = noise_sweep(
            ["helix"], [10], ["urerf", *chosen], n=1000, n_trees=300, seeds=range(3), quiet=quiet
        )
        print_scores(scores, 50, skipped)
        records += sweep_records(scores, n=1000, n_trees=300, n_seeds=3, k=50)
    if scale_n:
        records += scale(scale_n, 20, 100, 50)
    _finish(records, json_path, "urerf bench", bench_plot(records))


@app.command()
def demo(quiet: bool = QUIET):
    """A one-minute demo: helix with noise dimensions, URerF vs Euclidean neighbours."""
    from frugalml.urerf.demo import run

    typer.echo(run(quiet=quiet))
