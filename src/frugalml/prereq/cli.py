"""``frugal prereq``: data sets, fitting, evaluation, prediction, graph export and the reproduction."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

app = typer.Typer(
    help="Infer concept prerequisite relations from documents and their links "
    "(Pairwise-Link-LDA + siamese network, PREREQ).",
    no_args_is_help=True,
)
data_app = typer.Typer(help="The registered data sets: list them, verify their files.", no_args_is_help=True)
app.add_typer(data_app, name="data")

QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
TEXTS = typer.Option(
    None,
    "--texts",
    help="Your own texts: a folder of .txt files (sub-folders are playlists or courses, files in "
    "name order), a .jsonl or a .csv file (with a header); use with --concepts and --pairs.",
)
TEXT_FIELD = typer.Option("text", help="JSONL key / CSV column holding the text.")
ID_FIELD = typer.Option("id", help="JSONL key / CSV column naming a document (default: row number).")
ORDER_FIELD = typer.Option(
    None, help="JSONL key / CSV column giving a document's position in its playlist (default: file order)."
)
GROUP_FIELD = typer.Option(
    None, help="JSONL key / CSV column naming a document's playlist or course (default: one playlist)."
)
WINDOW = typer.Option(
    16,
    min=1,
    help="With --texts: how many earlier documents of a playlist count as a document's prerequisites.",
)
CONCEPTS = typer.Option(
    None,
    help="With --texts: concepts, one a line, aliases after '|' (e.g. 'binary search tree | BST'). "
    "Names and texts are matched ignoring case, punctuation, hyphens, plurals and closed compounds.",
)
LABEL_MAP = typer.Option(
    None,
    help="With --texts: what the labels of --pairs mean, 'label=meaning,...' with meaning 1 (B is a "
    "prerequisite of A), 0, reverse (A is a prerequisite of B) or drop; e.g. '1-=1,-1=reverse,-=0' "
    "(default '1=1,0=0').",
)
DROP_UNKNOWN = typer.Option(
    False, help="With --texts: drop pairs naming concepts missing from --concepts instead of stopping."
)
COVERAGE = typer.Option(
    None,
    help="With --texts: write the coverage report (concepts found, pairs kept and dropped) as JSON here "
    "(fit: default MODEL.coverage.json).",
)


@data_app.command("list")
def data_list():
    """List the data sets with their licence, citation and whether they are found locally."""
    from rich.console import Console
    from rich.table import Table

    from frugalml.common.errors import DataNotFoundError
    from frugalml.prereq.data import DATASETS, dataset_dir

    table = Table(title="prerequisite data sets")
    for col in ("name", "found at", "licence", "what", "cite"):
        table.add_column(col, overflow="fold")
    for name, info in DATASETS.items():
        try:
            where = str(dataset_dir(name))
        except DataNotFoundError:
            where = f"[red]missing[/] (set FRUGAL_DATA; source {info.source})"
        table.add_row(name, where, info.licence, info.description, info.citation)
    Console().print(table)


@data_app.command("verify")
def data_verify(
    name: list[str] = typer.Argument(None, help="Data sets to check (default all)."),
    path: Path = typer.Option(None, help="Folder of the data set (else FRUGAL_DATA)."),
):
    """Check that every file of the data sets is present; print sizes and SHA-256."""
    from frugalml.prereq.data import DATASETS, verify

    for ds in name or list(DATASETS):
        report = verify(ds, path)
        total = sum(v["bytes"] for v in report.values())
        print(f"{ds}: {len(report)} files, {total:,} bytes, all present")


@app.command()
def fit(
    corpus: Path = typer.Argument(
        None, help="lda-c bag of words (one document per line); omit to use --dataset."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write."),
    dataset: str = typer.Option(None, help="university or nptel (instead of CORPUS)."),
    fold: int = typer.Option(None, help="Train on this authors' fold only (default: all pairs)."),
    vocab: Path = typer.Option(None, help="Vocabulary, one term per line (with CORPUS)."),
    links: Path = typer.Option(
        None,
        help="Links 'd d2' (d2 a prerequisite of d; with CORPUS), or with --texts "
        "'doc_id<TAB>prerequisite_doc_id' lines used instead of the playlist order.",
    ),
    pairs: Path = typer.Option(
        None, help="Labelled pairs 'A,B,label' or 'A<TAB>B<TAB>label' (label 1: B a prerequisite of A)."
    ),
    one_based: bool = typer.Option(True, help="Document indices in --links start at 1."),
    texts: Path = TEXTS,
    concepts: Path = CONCEPTS,
    text_field: str = TEXT_FIELD,
    id_field: str = ID_FIELD,
    order_field: str = ORDER_FIELD,
    group_field: str = GROUP_FIELD,
    window: int = WINDOW,
    label_map: str = LABEL_MAP,
    drop_unknown: bool = DROP_UNKNOWN,
    coverage: Path = COVERAGE,
    topics: int = typer.Option(100, help="Number of topics."),
    method: str = typer.Option(
        "prereq-hybrid",
        help="prereq-hybrid (a forest on topic and link features; scores concepts no training pair "
        "mentioned), prereq (siamese network, PREREQ's settings) or prereq-paper (as published).",
    ),
    head: str = typer.Option(
        None,
        help="Siamese head of prereq / prereq-paper: abs (paper, symmetric), diff, concat, rich, "
        "bilinear (default: the method's).",
    ),
    em_iter: int = typer.Option(100, help="Maximum EM iterations."),
    steps: int = typer.Option(
        None, help="Siamese training steps of prereq / prereq-paper (default: 1000 / the paper's 3500)."
    ),
    trees: int = typer.Option(300, help="Trees of prereq-hybrid's forest."),
    seed: int = typer.Option(0),
    quiet: bool = QUIET,
):
    """Fit a PREREQ model (texts or corpus -> model file); prereq-hybrid unless --method says.

    From your own course: --texts, --concepts and --pairs (a coverage report is printed and saved).
    """
    from frugalml.common import validate
    from frugalml.common.errors import InvalidInputError
    from frugalml.prereq import data
    from frugalml.prereq.ingest import TextOptions
    from frugalml.prereq.limits import check_counts
    from frugalml.prereq.model import MODEL_METHODS, PrereqModel

    check_counts(topics=topics, em_iter=em_iter, steps=steps, seed=seed)
    validate.one_of(method, MODEL_METHODS, "method")
    validate.bounded(trees, "trees", 1, 5000)
    if method == "prereq-hybrid" and (head is not None or steps is not None):
        raise InvalidInputError("--head and --steps apply to --method prereq or prereq-paper")
    if sum(x is not None for x in (corpus, dataset, texts)) != 1:
        raise InvalidInputError(
            "give one of: --texts (with --concepts, --pairs), a CORPUS file (with --vocab, --links, "
            "--pairs), or --dataset university|nptel"
        )
    if texts is not None:
        options = TextOptions(text_field, id_field, order_field, group_field, window, links)
        ds = _course(texts, concepts, pairs, options, label_map, drop_unknown, quiet)
        _save_coverage(ds, coverage or output.with_name(output.name + ".coverage.json"))
        the_corpus, train = ds.corpus, ds.pairs
    elif dataset is not None:
        ds = data.load(dataset)
        the_corpus = ds.corpus
        train = ds.pairs if fold is None else ds.folds[_fold(fold, len(ds.folds))][0]
    else:
        if vocab is None or links is None or pairs is None:
            raise InvalidInputError("with a CORPUS file give --vocab, --links and --pairs too")
        terms = [t.strip() for t in vocab.read_text().splitlines() if t.strip()]
        counts = data.read_ldac(corpus, n_words=len(terms))
        the_corpus = data.Corpus(
            counts, terms, data.read_links(links, one_based=one_based), {t: i for i, t in enumerate(terms)}
        )
        train, _ = data.restrict_pairs(data.read_pairs(pairs, known=terms), the_corpus.concepts)
    model = PrereqModel(
        topics,
        method=method,
        head=head,
        seed=seed,
        plda_params={"max_em_iter": em_iter},
        siamese_params=_steps(steps),
        trees=trees,
    )
    model.fit(the_corpus, train)
    model.save(output)
    if not quiet:
        print(
            f"wrote {output}: {model.method} ({_describe(model)}), {len(model.concepts_)} concepts, "
            f"{model.plda_.n_iter_} EM iterations, trained on {len(train)} pairs, threshold "
            f"{model.threshold_:.3f}"
        )


def _describe(model) -> str:
    """The classifier in a few words: the hybrid's features or the siamese head."""
    if model.method == "prereq-hybrid":
        return f"features {'+'.join(model.parts_)}, {model.trees} trees"
    return f"head {model.head}"


def _course(texts, concepts, pairs, options, label_map, drop_unknown, quiet):
    """Load texts + concepts + pairs and print the coverage report."""
    from frugalml.common.errors import InvalidInputError
    from frugalml.prereq.ingest import format_coverage, load_course

    if concepts is None or pairs is None:
        raise InvalidInputError("with --texts give --concepts and --pairs too")
    ds = load_course(
        texts, concepts, pairs, options, label_map=label_map, drop_unknown=drop_unknown, quiet=quiet
    )
    if not quiet:
        print(format_coverage(ds.meta["coverage"]))
    return ds


def _save_coverage(ds, path: Path | None) -> None:
    if path is None:
        return
    from frugalml.common.files import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(ds.meta["coverage"], f, indent=2)


def _steps(steps: int | None) -> dict:
    """Siamese settings that override each method's own (only the steps, when given)."""
    return {} if steps is None else {"steps": steps}


def _fold(fold: int, n: int) -> int:
    from frugalml.common.errors import InvalidInputError

    if not 0 <= fold < n:
        raise InvalidInputError(f"fold must lie in 0..{n - 1}, got {fold}")
    return fold


@app.command("eval")
def evaluate_command(
    dataset: str = typer.Option(None, help="university or nptel (default university unless --texts)."),
    methods: str = typer.Option(
        "prereq-hybrid,prereq,plda,rf,refd,cpr",
        help="Comma-separated: prereq-hybrid (for concepts unseen in training), prereq-topics, "
        "prereq-links, prereq, prereq-paper, prereq-diff, plda, rf, refd, cpr, lda (identity and "
        "allpos are always reported beside them).",
    ),
    split: str = typer.Option(
        None,
        help="authors (data sets only), random, disjoint (no concept in both train and test) or "
        "leakfree (default: authors for a data set, random for --texts).",
    ),
    test_share: float = typer.Option(
        0.4, help="Share of the concepts held out for testing by --split disjoint."
    ),
    texts: Path = TEXTS,
    concepts: Path = CONCEPTS,
    pairs: Path = typer.Option(None, help="With --texts: labelled pairs 'A<TAB>B<TAB>label'."),
    links: Path = typer.Option(None, help="With --texts: 'doc_id<TAB>prerequisite_doc_id' links."),
    text_field: str = TEXT_FIELD,
    id_field: str = ID_FIELD,
    order_field: str = ORDER_FIELD,
    group_field: str = GROUP_FIELD,
    window: int = WINDOW,
    label_map: str = LABEL_MAP,
    drop_unknown: bool = DROP_UNKNOWN,
    coverage: Path = COVERAGE,
    head: str = typer.Option(None, help="Siamese head for prereq/lda (default: PREREQ's)."),
    topics: int = typer.Option(100, help="Number of topics."),
    em_iter: int = typer.Option(100, help="Maximum EM iterations of Pairwise-Link-LDA."),
    steps: int = typer.Option(
        None,
        help="Siamese training steps for every siamese method "
        "(default: each method's own, 1000 or the paper's 3500).",
    ),
    seed: int = typer.Option(0),
    seeds: str = typer.Option(
        None,
        help="Comma-separated seeds (e.g. 0,1,2): each draws its own splits and seeds every method; "
        "the report gives each metric's mean and 95% interval over all folds of all seeds.",
    ),
    json_path: Path = typer.Option(None, "--json", help="Write the per-fold results as JSON."),
    quiet: bool = QUIET,
):
    """Evaluate methods on a data set or your own texts; print mean +- std of every metric.

    The identity (concept names only) and allpos baselines are always reported; a warning says
    when identity beats a method.
    """
    from frugalml.common.errors import InvalidInputError
    from frugalml.common.parsing import comma_list
    from frugalml.prereq import data
    from frugalml.prereq.evaluate import evaluate, identity_warnings, with_baselines
    from frugalml.prereq.ingest import TextOptions
    from frugalml.prereq.limits import check_counts
    from frugalml.prereq.methods import METHODS, Context

    check_counts(topics=topics, em_iter=em_iter, steps=steps, seed=seed)
    if texts is not None:
        if dataset is not None:
            raise InvalidInputError("give --texts or --dataset, not both")
        options = TextOptions(text_field, id_field, order_field, group_field, window, links)
        ds = _course(texts, concepts, pairs, options, label_map, drop_unknown, quiet)
        _save_coverage(ds, coverage)
        split = split or "random"
    else:
        ds = data.load(dataset or "university")
        split = split or "authors"
    context = Context.with_limits(ds.corpus, n_topics=topics, em_iter=em_iter, steps=steps, seed=seed)
    chosen = with_baselines(comma_list(methods, name="method", allowed=METHODS))
    if seeds is not None:
        results = _over_seeds(ds, chosen, split, seeds, context, test_share, quiet)
    else:
        results = evaluate(
            ds, chosen, split, context=context, seed=seed, head=head, quiet=quiet, test_fraction=test_share
        )
        _print_results(f"{ds.name} / {split}", results)
    warnings = identity_warnings(results)
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    if json_path:
        from frugalml.common.files import atomic_write

        record = {"dataset": ds.name, "split": split, "results": results, "warnings": warnings}
        if texts is not None:
            record["coverage"] = ds.meta["coverage"]
        with atomic_write(json_path, "w") as f:
            json.dump(record, f, indent=2)


def _over_seeds(ds, methods, split, seeds, context, test_share, quiet) -> dict:
    """Every method over several seeds; prints mean [95% interval] of AUC, F1 and AP."""
    from rich.console import Console
    from rich.table import Table

    from frugalml.common.errors import InvalidInputError
    from frugalml.common.parsing import comma_list
    from frugalml.prereq.evaluate import over_seeds
    from frugalml.prereq.limits import check_counts

    try:
        numbers = [int(x) for x in comma_list(seeds, name="seed", non_empty=True)]
    except ValueError:
        raise InvalidInputError(f"--seeds takes comma-separated integers, got {seeds!r}") from None
    for number in numbers:
        check_counts(seed=number)
    if len(set(numbers)) != len(numbers):
        raise InvalidInputError(f"--seeds lists a seed twice: {seeds!r}")
    results = over_seeds(ds, methods, split, numbers, context=context, test_fraction=test_share, quiet=quiet)
    table = Table(title=f"{ds.name} / {split}: mean [95% interval] over {len(numbers)} seeds x folds")
    for col in ("method", "AUC", "F1", "AP", "n"):
        table.add_column(col)
    for method, entry in results.items():
        ci = entry["ci95"]
        cells = [
            f"{ci[m]['mean']:.3f} [{ci[m]['low']:.3f}, {ci[m]['high']:.3f}]" for m in ("auc", "f1", "ap")
        ]
        table.add_row(method, *cells, str(ci["auc"]["n"]))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    import numpy as np

    for entry in results.values():  # the mean and std the rest of the report reads
        entry["mean"] = {k: v["mean"] for k, v in entry["ci95"].items()}
        entry["std"] = {k: float(np.nanstd([f[k] for f in entry["folds"]])) for k in entry["ci95"]}
    return results


def _print_results(title: str, results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    cols = ("precision", "recall", "f1", "auc", "ap", "p@50", "p@100", "antisymmetry_violations")
    table.add_column("method")
    for c in cols:
        table.add_column(c.replace("antisymmetry_violations", "A<->B"), justify="right")
    for method, entry in results.items():
        table.add_row(method, *(f"{entry['mean'][c]:.3f}±{entry['std'][c]:.3f}" for c in cols))
    Console(width=None if sys.stdout.isatty() else 160).print(table)  # whole numbers in files and pipes


@app.command()
def predict(
    model: Path = typer.Argument(..., help="Model file from 'frugal prereq fit'."),
    concept: str = typer.Argument(..., help="Concept A."),
    prerequisite: str = typer.Argument(..., help="Concept B: is it a prerequisite of A?"),
):
    """Print the probability that B is a prerequisite of A (and of the reverse)."""
    from frugalml.prereq.model import PrereqModel

    m = PrereqModel.load(model)
    concept, prerequisite = m.resolve(concept), m.resolve(prerequisite)
    forward, backward = m.predict_proba([concept, prerequisite], [prerequisite, concept])
    verdict = "yes" if forward >= m.threshold_ else "no"
    print(
        f"P({prerequisite!r} is a prerequisite of {concept!r}) = {forward:.3f} -> {verdict} "
        f"(threshold {m.threshold_:.3f}; reverse {backward:.3f}; {m.method}, {_describe(m)})"
    )


@app.command()
def graph(
    model: Path = typer.Argument(..., help="Model file from 'frugal prereq fit'."),
    fmt: str = typer.Option("json", "--format", help="json or dot."),
    concepts: str = typer.Option(None, help="Comma-separated concepts (default: all)."),
    output: Path = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
):
    """Export the predicted prerequisite graph, with a cycle check."""
    import networkx as nx

    from frugalml.common import validate
    from frugalml.common.parsing import comma_list
    from frugalml.prereq.model import PrereqModel

    validate.one_of(fmt, ("json", "dot"), "format")
    m = PrereqModel.load(model)
    names: list[str] | None = comma_list(concepts, name="concept") or None
    edges = m.graph(names)
    g = nx.DiGraph((a, b) for a, b, _ in edges)
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    if fmt == "json":
        text = json.dumps(
            {
                "edges": [{"concept": a, "prerequisite": b, "probability": p} for a, b, p in edges],
                "cyclic_groups": cycles,
            },
            indent=2,
        )
    else:
        lines = ["digraph prerequisites {", "  // edge B -> A: B is a prerequisite of A"]
        lines += [f'  {json.dumps(b)} -> {json.dumps(a)} [label="{p:.2f}"];' for a, b, p in edges]
        text = "\n".join([*lines, "}"])
    if output:
        from frugalml.common.files import atomic_write

        with atomic_write(output, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    if cycles:
        typer.echo(f"warning: {len(cycles)} group(s) of concepts form cycles", err=True)


@app.command()
def reproduce(
    json_path: Path = typer.Option(None, "--json", help="Write report.Records here (+ PNG)."),
    datasets: str = typer.Option("university,nptel", help="Data sets to run."),
    splits: str = typer.Option("authors,disjoint", help="Splits to run."),
    methods: str = typer.Option(
        "prereq,prereq-paper,prereq-diff,plda,rf,refd,cpr,lda,allpos", help="Methods to run."
    ),
    topics: int = typer.Option(100, help="Number of topics (paper: 100)."),
    em_iter: int = typer.Option(100, help="Maximum EM iterations (paper: 100)."),
    steps: int = typer.Option(
        None,
        help="Siamese training steps for every siamese method (default: each method's own; paper: 3500).",
    ),
    head: str = typer.Option(None, help="Siamese head of prereq/lda (default: PREREQ's)."),
    seed: int = typer.Option(0),
    quiet: bool = QUIET,
):
    """The paper's table beside ours on both data sets, with the trivial baseline and AUC."""
    from frugalml.common.parsing import comma_list
    from frugalml.prereq.bench.reproduce import run
    from frugalml.prereq.evaluate import SPLITS
    from frugalml.prereq.limits import check_counts
    from frugalml.prereq.methods import METHODS

    check_counts(topics=topics, em_iter=em_iter, steps=steps, seed=seed)
    run(
        json_path=json_path,
        datasets=comma_list(datasets, name="data set", allowed=("university", "nptel"), non_empty=True),
        splits=comma_list(splits, name="split", allowed=SPLITS, non_empty=True),
        methods=comma_list(methods, name="method", allowed=METHODS, non_empty=True),
        topics=topics,
        em_iter=em_iter,
        steps=steps,
        head=head,
        seed=seed,
        quiet=quiet,
    )


@app.command()
def demo(quiet: bool = QUIET):
    """Learn a planted prerequisite chain from a synthetic corpus (no data files, < 60 s)."""
    from frugalml.prereq.demo import run

    print(run(quiet=quiet))


@app.command()
def bench(
    dataset: str = typer.Option("university", help="university or nptel."),
    topics: int = typer.Option(100, help="Number of topics."),
    iters: int = typer.Option(3, help="EM iterations per timed fit."),
    rounds: int = typer.Option(3, help="Interleaved timing rounds."),
    json_path: Path = typer.Option(None, "--json", help="Write report.Records here."),
):
    """Pairwise-Link-LDA seconds per EM iteration and peak memory, against gensim's batch LDA."""
    from frugalml.prereq.bench.speed import run
    from frugalml.prereq.limits import check_counts

    check_counts(topics=topics, iters=iters, rounds=rounds)
    run(dataset, topics, iters, rounds, json_path)
