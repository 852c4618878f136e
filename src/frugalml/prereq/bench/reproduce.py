"""The PREREQ paper's table beside our measurements, both data sets, as report Records and a PNG."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from frugalml.common import env
from frugalml.common.report import Record, read_records

# Roy et al. IAAI 2019, 5 folds, precision / recall / F1 in %.
PAPER = {
    ("university", "prereq"): (46.76, 91.64, 59.68),
    ("university", "plda"): (98.27, 16.42, 28.14),
    ("university", "cpr"): (16.66, 46.51, 24.54),
    ("university", "mooc-rf"): (43.70, 53.43, 50.95),
    ("nptel", "prereq"): (55.60, 75.74, 60.73),
    ("nptel", "plda"): (48.43, 10.47, 17.22),
    ("nptel", "cpr"): (17.18, 52.97, 25.94),
    ("nptel", "mooc-rf"): (59.74, 56.48, 58.07),
}
SELECTION_NOTE = (
    "PREREQ's siamese settings (rich head, dropout 0.7, 3-network ensemble) were chosen "
    "by inner validation on the University training folds only "
    "(benchmarks/prereq/select_siamese.py); no test fold was used to choose anything"
)
PAPER_NAME = {"prereq": "prereq", "prereq-paper": "prereq", "plda": "plda", "cpr": "cpr", "rf": "mooc-rf"}


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
            records += _records(name, split, results, ds.meta)
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
        _plot(all_results, Path(json_path).with_suffix(".png"))
    return records


def _records(name: str, split: str, results: dict, meta: dict) -> list[Record]:
    out = []
    base = results.get("allpos", {}).get("mean")
    for method, entry in results.items():
        mean, std = entry["mean"], entry["std"]
        spread = {
            "std": {k: std[k] for k in ("f1", "auc", "ap", "p@50", "p@100")},
            "folds": len(entry["folds"]),
            "test_pairs": mean["n_test"],
        }
        paper = PAPER.get((name, PAPER_NAME.get(method, "")))
        workload = f"{name}/{split}/{method}"
        if split == "authors" and paper:
            out.append(
                Record(
                    "prereq",
                    workload,
                    "F1",
                    "",
                    mean["f1"],
                    "paper",
                    paper[2] / 100,
                    True,
                    spread,
                    f"paper P/R/F1 {paper}; ours P/R {mean['precision']:.3f}/{mean['recall']:.3f}",
                )
            )
        if base is not None and method != "allpos":
            out.append(
                Record(
                    "prereq",
                    workload,
                    "F1 vs all-positive",
                    "",
                    mean["f1"],
                    "all-positive",
                    base["f1"],
                    True,
                    spread,
                )
            )
        for metric in ("auc", "ap", "p@100", "antisymmetry_violations"):
            notes = (
                (
                    f"dropped pairs with out-of-vocabulary concepts: {meta.get('dropped_pairs', 0)}"
                    + (f"; {SELECTION_NOTE}" if method == "prereq" else "")
                )
                if metric == "auc"
                else ""
            )
            out.append(
                Record(
                    "prereq",
                    workload,
                    metric,
                    "",
                    mean[metric],
                    spread=spread,
                    higher_is_better=metric != "antisymmetry_violations",
                    notes=notes,
                )
            )
    return out


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


def _plot(all_results: dict, path: Path) -> None:
    import numpy as np

    from frugalml.common import report

    keys = list(all_results)
    fig, axes = report.new_figure(2, len(keys), figsize=(4.5 * len(keys), 7), squeeze=False)
    for col, key in enumerate(keys):
        results = all_results[key]
        names = list(results)
        for row, metric in enumerate(("f1", "auc")):
            ax = axes[row][col]
            means = [results[m]["mean"][metric] for m in names]
            stds = [results[m]["std"][metric] for m in names]
            ax.bar(np.arange(len(names)), means, yerr=stds, color="tab:blue", alpha=0.8)
            if "allpos" in results:
                ax.axhline(results["allpos"]["mean"][metric], color="tab:red", ls="--", label="all-positive")
                ax.legend(loc="lower right", fontsize=7)
            ax.set_xticks(np.arange(len(names)), names, rotation=45, fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_title(f"{key[0]} / {key[1]}: {metric.upper()}", fontsize=9)
    report.save_plot(fig, path)


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
