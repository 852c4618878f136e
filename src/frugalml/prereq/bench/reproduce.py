"""The PREREQ paper's table beside our measurements, both data sets, as report Records and a PNG."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from frugalml.common import env
from frugalml.common.report import Record, read_records
from frugalml.prereq.bench.tables import PAPER, PAPER_NAME, method_records, plot_results


def run(
    *,
    json_path: str | Path | None = None,
    datasets: Sequence[str] = ("university", "nptel"),
    splits: Sequence[str] = ("authors", "disjoint"),
    methods: Sequence[str] = (
        "prereq",
        "prereq-paper",
        "prereq-diff",
        "plda",
        "rf",
        "refd",
        "cpr",
        "lda",
        "allpos",
    ),
    topics: int = 100,
    em_iter: int = 100,
    steps: int | None = None,
    head: str | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> list[Record]:
    """Evaluate every method on every data set and split; print and optionally save the table.

    One Pairwise-Link-LDA (and one gensim LDA) is fitted per data set and shared by all folds
    and splits, as in the paper (the topic models never see the labelled pairs).
    """
    from frugalml.common import report
    from frugalml.prereq import data
    from frugalml.prereq.evaluate import evaluate
    from frugalml.prereq.methods import Context

    records: list[Record] = []
    all_results = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    for name in datasets:
        ds = data.load(name)
        context = Context.with_limits(ds.corpus, n_topics=topics, em_iter=em_iter, steps=steps, seed=seed)
        start = time.perf_counter()
        plda = context.plda
        fit_s = time.perf_counter() - start
        records.append(
            Record(
                "prereq",
                f"{name}/plda-fit",
                "seconds per EM iteration",
                "s",
                fit_s / plda.n_iter_,
                notes=f"{plda.n_iter_} EM iterations, K={topics}, "
                f"{len(plda.pairs_.src)} document pairs (links + sampled)",
            )
        )
        for split in splits:
            results = evaluate(
                ds,
                list(methods),
                split,
                context=context,
                seed=seed,
                head=head,
                quiet=quiet,
            )
            all_results[name, split] = results
            records += method_records(name, split, results, ds.meta)
    total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    workload = f"reproduction of {', '.join(datasets)} ({', '.join(splits)})"
    notes = (
        f"K={topics}, {em_iter} EM iterations max, "
        f"{steps or 'each method default'} siamese steps, {len(methods)} "
        f"methods; target: <= 10 min for the authors' folds; {env.machine(load=True)}"
    )
    records += [
        Record("prereq", workload, "wall time", "s", total, peer="target", peer_value=600.0, notes=notes),
        Record(
            "prereq",
            workload,
            "CPU time of this process",
            "s",
            cpu,
            peer="target",
            peer_value=600.0,
            notes=notes,
        ),
    ]
    _print_paper_table(all_results)
    print(f"total {total:.0f} s")
    if json_path:
        report.write_json(records, json_path)
        plot_results(all_results, Path(json_path).with_suffix(".png"))
    return records


def _print_paper_table(all_results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="paper (P / R / F1 %) beside ours (mean over folds)")
    for col in ("data/split", "method", "paper", "ours P / R / F1", "AUC", "AP", "P@100"):
        table.add_column(col)
    for (name, split), results in all_results.items():
        for method, entry in results.items():
            m = entry["mean"]
            paper = PAPER.get((name, PAPER_NAME.get(method, ""))) if split == "authors" else None
            table.add_row(
                f"{name}/{split}",
                method,
                " / ".join(f"{v:.1f}" for v in paper) if paper else "",
                f"{100 * m['precision']:.1f} / {100 * m['recall']:.1f} / "
                f"{100 * m['f1']:.1f} ±{100 * entry['std']['f1']:.1f}",
                f"{m['auc']:.3f}",
                f"{m['ap']:.3f}",
                f"{m['p@100']:.3f}",
            )
    Console().print(table)


def combine(paths: Sequence[str | Path], out: str | Path, tags: Sequence[str] | None = None) -> Path:
    """Merge the Records of several reproduction JSON files into one; ``tags[i]`` (e.g. the
    settings of run i) prefixes the workloads of file i."""
    from frugalml.common import report

    tags = list(tags) if tags is not None else [""] * len(paths)
    records = []
    for path, tag in zip(paths, tags, strict=True):
        for record in read_records(path):
            record.workload = f"{tag}{record.workload}"
            records.append(record)
    return report.write_json(records, out)


def run_each(
    results: str | Path, *, quick: bool = False, datasets: Sequence[str] = ("university", "nptel")
) -> Path:
    """Reproduce each data set in its own run (``<results>/reproduce-<dataset>.json`` + PNG), then
    merge them into ``<results>/reproduce.json``; ``quick`` uses 20 topics, 5 EM iterations, 300 steps."""
    results = Path(results)
    parts = []
    for dataset in datasets:
        parts.append(results / f"reproduce-{dataset}.json")
        run(
            json_path=parts[-1],
            datasets=(dataset,),
            topics=20 if quick else 100,
            em_iter=5 if quick else 100,
            steps=300 if quick else None,
            quiet=True,
        )
    return combine(parts, results / "reproduce.json")


def reproductions() -> list:
    """PREREQ's checks for ``frugal reproduce --quick|--full`` (see :mod:`frugalml.prereq.bench.claims`)."""
    from frugalml.common.reproduction import Reproduction
    from frugalml.prereq.bench import claims

    return [
        Reproduction("reproduce-authors", claims.paper_table, quick_seconds=30.0),
        Reproduction("reproduce-disjoint", claims.concept_disjoint, quick_seconds=20.0),
        Reproduction("identity-baseline", claims.identity_baseline, quick_seconds=10.0),
        Reproduction("plda-speed", claims.plda_speed, quick_seconds=35.0),
        Reproduction("concept-coverage", claims.concept_coverage, quick_seconds=3.0),
        # inner-validation searches (an hour each) and the ingestion study: shown from stored results
        Reproduction(
            "siamese-selection-university",
            _stored_only,
            quick_seconds=0.0,
            modes=(),
            stored="prereq/siamese-selection-university.json",
        ),
        Reproduction(
            "siamese-selection-nptel",
            _stored_only,
            quick_seconds=0.0,
            modes=(),
            stored="prereq/siamese-selection-nptel.json",
        ),
        Reproduction(
            "own-texts-university",
            _stored_only,
            quick_seconds=0.0,
            modes=(),
            stored="prereq/own-texts-university.json",
        ),
        Reproduction(
            "transfer-unseen-concepts",
            _stored_only,
            quick_seconds=0.0,
            modes=(),
            stored="prereq/transfer-unseen-concepts.json",
        ),
        Reproduction("all-runs", _stored_only, quick_seconds=0.0, modes=(), stored="prereq/all-runs.json"),
    ]


def _stored_only(mode: str, folder: Path) -> list[Record]:
    from frugalml.common.errors import InvalidInputError

    raise InvalidInputError(f"this check is shown from its stored results; it has no {mode} run")
