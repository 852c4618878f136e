"""The paper's table and our results per method as Records and a bar plot (shared by the
reproduction command and the checks of ``frugal reproduce``)."""

from __future__ import annotations

from pathlib import Path

from frugalml.common.report import Record

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


def method_records(name: str, split: str, results: dict, meta: dict) -> list[Record]:
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


def plot_results(all_results: dict, path: Path) -> None:
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
