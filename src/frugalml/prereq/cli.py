"""``frugal prereq``: data sets, fitting, evaluation, prediction, graph export and the reproduction."""

from __future__ import annotations

import json
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
    links: Path = typer.Option(None, help="Links 'd d2' (d2 a prerequisite of d; with CORPUS)."),
    pairs: Path = typer.Option(None, help="Labelled pairs 'A,B,label' (B a prerequisite of A)."),
    one_based: bool = typer.Option(True, help="Document indices in --links start at 1."),
    topics: int = typer.Option(100, help="Number of topics."),
    head: str = typer.Option(
        None, help="Siamese head: abs (paper, symmetric), diff, concat, rich, bilinear (default: PREREQ's)."
    ),
    em_iter: int = typer.Option(100, help="Maximum EM iterations."),
    steps: int = typer.Option(None, help="Siamese training steps (default: PREREQ's 1000)."),
    seed: int = typer.Option(0),
    quiet: bool = QUIET,
):
    """Fit a PREREQ model (corpus -> model file)."""
    from frugalml.common.errors import InvalidInputError
    from frugalml.prereq import data
    from frugalml.prereq.model import PrereqModel
    from frugalml.prereq.siamese import PREREQ_SIAMESE

    if (corpus is None) == (dataset is None):
        raise InvalidInputError(
            "give either a CORPUS file (with --vocab, --links, --pairs) or --dataset university|nptel"
        )
    if dataset is not None:
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
        head=head or PREREQ_SIAMESE["head"],
        seed=seed,
        plda_params={"max_em_iter": em_iter},
        siamese_params=_steps(steps),
    )
    model.fit(the_corpus, train)
    model.save(output)
    if not quiet:
        print(
            f"wrote {output}: {len(model.concepts_)} concepts, {model.plda_.n_iter_} EM "
            f"iterations, trained on {len(train)} pairs, threshold "
            f"{model.classifier_.threshold_:.3f}"
        )


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
    dataset: str = typer.Option("university", help="university or nptel."),
    methods: str = typer.Option(
        "prereq,plda,rf,refd,cpr,allpos",
        help="Comma-separated: prereq, prereq-paper, prereq-diff, plda, rf, "
        "refd, cpr, lda, identity, allpos.",
    ),
    split: str = typer.Option("authors", help="authors, random, disjoint or leakfree."),
    head: str = typer.Option(None, help="Siamese head for prereq/lda (default: PREREQ's)."),
    topics: int = typer.Option(100, help="Number of topics."),
    em_iter: int = typer.Option(100, help="Maximum EM iterations of Pairwise-Link-LDA."),
    steps: int = typer.Option(
        None,
        help="Siamese training steps for every siamese method "
        "(default: each method's own, 1000 or the paper's 3500).",
    ),
    seed: int = typer.Option(0),
    json_path: Path = typer.Option(None, "--json", help="Write the per-fold results as JSON."),
    quiet: bool = QUIET,
):
    """Evaluate methods on one data set and split; print mean +- std of every metric."""
    from frugalml.common.parsing import comma_list
    from frugalml.prereq import data
    from frugalml.prereq.evaluate import evaluate
    from frugalml.prereq.methods import METHODS, Context

    ds = data.load(dataset)
    context = Context.with_limits(ds.corpus, n_topics=topics, em_iter=em_iter, steps=steps, seed=seed)
    results = evaluate(
        ds,
        comma_list(methods, name="method", allowed=METHODS),
        split,
        context=context,
        seed=seed,
        head=head,
        quiet=quiet,
    )
    _print_results(f"{dataset} / {split}", results)
    if json_path:
        from frugalml.common.files import atomic_write

        with atomic_write(json_path, "w") as f:
            json.dump({"dataset": dataset, "split": split, "results": results}, f, indent=2)


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
    Console().print(table)


@app.command()
def predict(
    model: Path = typer.Argument(..., help="Model file from 'frugal prereq fit'."),
    concept: str = typer.Argument(..., help="Concept A."),
    prerequisite: str = typer.Argument(..., help="Concept B: is it a prerequisite of A?"),
):
    """Print the probability that B is a prerequisite of A (and of the reverse)."""
    from frugalml.prereq.model import PrereqModel

    m = PrereqModel.load(model)
    forward, backward = m.predict_proba([concept, prerequisite], [prerequisite, concept])
    verdict = "yes" if forward >= m.classifier_.threshold_ else "no"
    print(
        f"P({prerequisite!r} is a prerequisite of {concept!r}) = {forward:.3f} -> {verdict} "
        f"(threshold {m.classifier_.threshold_:.3f}; reverse {backward:.3f}; head {m.head})"
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
    from frugalml.prereq.methods import METHODS

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

    run(dataset, topics, iters, rounds, json_path)
