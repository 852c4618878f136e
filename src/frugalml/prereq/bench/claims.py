"""The PREREQ paper's claims checked for ``frugal reproduce --quick|--full``: each check returns
Records carrying the claim fields (the paper's words and figure, ours, the strongest simple
baseline measured in the same run, a verdict and its measured reason).

Quick mode runs University only with 20 topics, <= 5 EM iterations and 300 siamese steps (stated in
every record's notes); full mode runs both data sets at the paper's sizes (K=100, <= 100 EM
iterations, each method's own steps).
"""

from __future__ import annotations

from pathlib import Path

from frugalml.common import env
from frugalml.common.report import Record
from frugalml.common.reproduction import verdict

# One Pairwise-Link-LDA per (data set, settings), shared by the checks of one process, as the
# reproduction shares it across folds and splits (the topic model never sees the labelled pairs).
_CONTEXTS: dict[tuple, object] = {}

QUICK = {"datasets": ("university",), "topics": 20, "em_iter": 5, "steps": 300}
FULL = {"datasets": ("university", "nptel"), "topics": 100, "em_iter": 100, "steps": None}
PAPER_F1 = {"university": 0.5968, "nptel": 0.6073}  # Roy et al. 2019, Table 3 (PREREQ, F1 %/100)
PAPER_MOOC_RF_F1 = {"university": 0.5095, "nptel": 0.5807}
PAPER_PLDA_F1 = {"university": 0.2814, "nptel": 0.1722}
SOURCE = "Roy et al., IAAI 2019, Table 3 (5 folds, P/R/F1)"


def settings(mode: str) -> dict:
    """The sizes of a mode: data sets, topics, EM iterations, siamese steps (None: each method's own)."""
    return dict(QUICK if mode == "quick" else FULL)


def _notes(mode: str, size: dict) -> str:
    scale = "scaled down: University only, " if mode == "quick" else "the paper's sizes: "
    steps = size["steps"] or "each method's own"
    return (
        f"{mode} mode, {scale}K={size['topics']}, <= {size['em_iter']} EM iterations, {steps} siamese "
        f"steps; {env.machine(load=True)}"
    )


def _context(dataset: str, size: dict):
    from frugalml.prereq import data
    from frugalml.prereq.methods import Context

    key = (dataset, size["topics"], size["em_iter"], size["steps"])
    if key not in _CONTEXTS:
        ds = data.load(dataset)
        _CONTEXTS[key] = (
            ds,
            Context.with_limits(
                ds.corpus, n_topics=size["topics"], em_iter=size["em_iter"], steps=size["steps"]
            ),
        )
    return _CONTEXTS[key]


def _evaluate(dataset: str, split: str, methods: list[str], size: dict) -> dict:
    from frugalml.prereq.evaluate import evaluate

    ds, context = _context(dataset, size)
    return evaluate(ds, methods, split, context=context, quiet=True)


def _command(split: str, methods: str) -> str:
    return (
        f"FRUGAL_DATA=../shared/data frugal prereq reproduce --splits {split} --methods {methods} "
        f"--json benchmarks/results/prereq/reproduce-{split}.json"
    )


def _claim(base: Record, **fields) -> Record:
    for name, value in fields.items():
        setattr(base, name, value)
    return base


def paper_table(mode: str, folder: Path) -> list[Record]:
    """The authors' folds: PREREQ's F1 against the paper's, and the paper's ordering against its
    MOOC-RF baseline (our link-count forest) and Pairwise LDA."""
    from frugalml.prereq.bench.tables import method_records, plot_results

    size = settings(mode)
    methods = ["prereq", "plda", "rf", "identity", "allpos"]
    if mode == "full":
        methods = ["prereq", "prereq-paper", "prereq-diff", "plda", "rf", "refd", "cpr", "lda", *methods[3:]]
    notes = _notes(mode, size)
    command = _command("authors", ",".join(methods))
    records, shown = [], {}
    for name in size["datasets"]:
        results = _evaluate(name, "authors", methods, size)
        shown[name, "authors"] = results
        records += method_records(name, "authors", results, _context(name, size)[0].meta)
        mean = {m: results[m]["mean"] for m in results}
        spread = {"std F1": results["prereq"]["std"]["f1"], "folds": len(results["prereq"]["folds"])}
        ours, allpos, rf = mean["prereq"]["f1"], mean["allpos"]["f1"], mean["rf"]["f1"]
        records.append(
            _claim(
                Record("prereq", f"{name}/authors/prereq", "F1", "", ours, "all-positive", allpos, True),
                spread=spread,
                notes=notes,
                claim=f"prereq/f1-{name}",
                paper_statement=f"PREREQ reaches F1 {100 * PAPER_F1[name]:.2f}% on {name} (5 folds)",
                paper_value=PAPER_F1[name],
                paper_source=SOURCE,
                verdict=verdict(ours, PAPER_F1[name], higher_is_better=True),
                reason=f"F1 {ours:.3f} over {spread['folds']} folds vs the paper's {PAPER_F1[name]:.3f}; "
                f"predicting 'prerequisite' for every pair already scores {allpos:.3f} on these folds",
                command=command,
            )
        )
        records.append(
            _claim(
                Record(
                    "prereq",
                    f"{name}/authors/prereq-vs-forest",
                    "F1",
                    "",
                    ours,
                    "link-count forest",
                    rf,
                    True,
                ),
                notes=notes,
                claim=f"prereq/beats-link-features-{name}",
                paper_statement=f"PREREQ (F1 {100 * PAPER_F1[name]:.2f}%) beats MOOC-RF, a random forest "
                f"on link and text features (F1 {100 * PAPER_MOOC_RF_F1[name]:.2f}%)",
                paper_value=PAPER_F1[name],
                paper_source=SOURCE,
                verdict="reproduced" if ours >= rf else "not reproduced",
                reason=f"PREREQ F1 {ours:.3f} vs a random forest on document-link counts {rf:.3f} "
                f"(AUC {mean['prereq']['auc']:.3f} vs {mean['rf']['auc']:.3f})",
                command=command,
            )
        )
        plda = mean["plda"]["f1"]
        records.append(
            _claim(
                Record("prereq", f"{name}/authors/plda", "F1", "", plda, "all-positive", allpos, True),
                notes=notes,
                claim=f"prereq/pairwise-lda-{name}",
                paper_statement=f"the Pairwise LDA score x_A^T eta x_B alone reaches F1 "
                f"{100 * PAPER_PLDA_F1[name]:.2f}%, far below PREREQ",
                paper_value=PAPER_PLDA_F1[name],
                paper_source=SOURCE,
                verdict=verdict(plda, PAPER_PLDA_F1[name], higher_is_better=True),
                reason=f"Pairwise LDA F1 {plda:.3f} (AUC {mean['plda']['auc']:.3f}) vs PREREQ {ours:.3f}: "
                "its threshold is chosen on the training pairs for F1, so it predicts most pairs positive",
                command=command,
            )
        )
    plot_results(shown, folder / "reproduce-authors.png")
    return records


def concept_disjoint(mode: str, folder: Path) -> list[Record]:
    """Concept-disjoint splits (no concept in both training and test pairs): does the model infer
    prerequisites of concepts it was not trained on?"""
    from frugalml.prereq.bench.tables import method_records, plot_results

    size = settings(mode)
    methods = ["prereq", "rf", "identity", "allpos"]
    if mode == "full":
        methods = ["prereq", "prereq-paper", "prereq-diff", "plda", "rf", "refd", "cpr", "lda", *methods[2:]]
    notes = _notes(mode, size) + "; 5 random concept partitions, 40% of the concepts held out"
    command = _command("disjoint", ",".join(methods))
    records, shown = [], {}
    for name in size["datasets"]:
        results = _evaluate(name, "disjoint", methods, size)
        shown[name, "disjoint"] = results
        records += method_records(name, "disjoint", results, _context(name, size)[0].meta)
        mean = {m: results[m]["mean"] for m in results}
        auc, rf, ident = mean["prereq"]["auc"], mean["rf"]["auc"], mean["identity"]["auc"]
        records.append(
            _claim(
                Record("prereq", f"{name}/disjoint/prereq", "AUC", "", auc, "link-count forest", rf, True),
                spread={"std AUC": results["prereq"]["std"]["auc"], "identity AUC": ident},
                notes=notes,
                claim=f"prereq/unseen-concepts-{name}",
                paper_statement="PREREQ infers prerequisite relations between concepts from their "
                "documents and links (evaluated on folds whose test concepts also occur in training)",
                paper_source="Roy et al., IAAI 2019, Sections 3-4 (no concept-disjoint evaluation)",
                verdict="reproduced" if auc > 0.5 and auc >= rf else "not reproduced",
                reason=f"on concepts never seen in training PREREQ's AUC is {auc:.3f} vs the link-count "
                f"forest's {rf:.3f} and concept identity's {ident:.3f} (chance 0.5); F1 "
                f"{mean['prereq']['f1']:.3f} vs all-positive {mean['allpos']['f1']:.3f}",
                command=command,
            )
        )
    plot_results(shown, folder / "reproduce-disjoint.png")
    return records


def identity_baseline(mode: str, folder: Path) -> list[Record]:
    """How much a split rewards memorising which concepts are prerequisites (no documents at all)."""
    from frugalml.prereq import data
    from frugalml.prereq.evaluate import evaluate

    records = []
    for name in ("university", "nptel"):
        ds = data.load(name)
        for split in ("authors", "disjoint"):
            results = evaluate(ds, ["identity", "allpos"], split, quiet=True)
            ident, allpos = results["identity"]["mean"], results["allpos"]["mean"]
            record = Record(
                "prereq",
                f"{name}/{split}/identity",
                "AUC",
                "",
                ident["auc"],
                "chance",
                0.5,
                True,
                {
                    "std AUC": results["identity"]["std"]["auc"],
                    "F1": ident["f1"],
                    "all-positive F1": allpos["f1"],
                },
                f"{mode} mode, full size (logistic regression on one-hot concept names, no documents; "
                f"5 folds); {env.machine(load=True)}",
            )
            if split == "authors":
                record = _claim(
                    record,
                    claim=f"prereq/folds-reward-memorising-{name}",
                    paper_statement="the authors' 5 folds test prerequisite inference from documents "
                    "(their test pairs reuse training concepts)",
                    paper_source="Roy et al., IAAI 2019, Section 4 (the folds); Table 3",
                    verdict="not reproduced" if ident["auc"] > 0.75 else "reproduced",
                    reason=f"concept names alone, with no documents, score AUC {ident['auc']:.3f} and F1 "
                    f"{ident['f1']:.3f} (all-positive F1 {allpos['f1']:.3f}) on these folds; on "
                    "concept-disjoint splits the same baseline falls to chance",
                    command=f"FRUGAL_DATA=../shared/data frugal prereq eval --dataset {name} --split "
                    "authors --methods identity,allpos --json identity.json",
                )
            records.append(record)
    return records


def plda_speed(mode: str, folder: Path) -> list[Record]:
    """Pairwise-Link-LDA seconds per EM iteration and peak memory (K=100, University) vs gensim."""
    from frugalml.prereq.bench.speed import run

    iters, rounds = (1, 1) if mode == "quick" else (3, 3)
    records = run("university", 100, iters, rounds)
    command = "FRUGAL_DATA=../shared/data python benchmarks/prereq/plda_speed.py"
    for record in records:
        record.notes = f"{mode} mode: {iters} EM iteration(s), {rounds} round(s); {record.notes}"
        if record.metric == "peak RSS of a fit":
            _claim(
                record,
                claim="prereq/plda-memory",
                paper_statement="the original Pairwise-Link-LDA stores lambda as a D x D x K array "
                "(memory O(D^2 K): 654 x 654 x 100 doubles = 342 MB for lambda alone)",
                paper_source="suderoy/PREREQ-IAAI-19, the lda-c derivative",
                verdict="better than the paper" if record.ours <= 1024 else "not reproduced",
                reason=f"a K=100 fit on University peaks at {record.ours:.0f} MB with linked plus "
                "sampled unlinked pairs (target 1024 MB)",
                command=command,
            )
        elif record.metric == "time":
            ratio = record.ratio or 0.0
            _claim(
                record,
                claim="prereq/plda-speed",
                paper_statement="Pairwise-Link-LDA: topics of words and of every linked document pair "
                "(no speed stated; the original C code is not runnable on current stacks)",
                paper_source="Nallapati et al., KDD 2008; Roy et al., IAAI 2019, Section 3",
                verdict="reproduced" if ratio >= 0.9 else "not reproduced",
                reason=f"{iters} EM iteration(s) with links take {record.ours:.2f} s vs gensim's batch LDA "
                f"(words only) {record.peer_value:.2f} s ({ratio:.2f}x)",
                command=command,
            )
    return records


def concept_coverage(mode: str, folder: Path) -> list[Record]:
    """Concepts found in the raw University descriptions: the --texts matcher vs the authors'
    bag of words (full size in both modes, a few seconds)."""
    from frugalml.prereq.bench.coverage import run

    records = run()
    for record in records:
        if record.metric == "concepts found in the texts":
            _claim(
                record,
                claim="prereq/concept-coverage",
                paper_statement="concepts are counted with a bag of words over the concept vocabulary "
                "(1-3-grams, English stop words removed)",
                paper_value=record.peer_value,
                paper_source="suderoy/PREREQ-IAAI-19, preprocessing",
                verdict=verdict(record.ours, record.peer_value or 0.0, higher_is_better=True),
                reason=f"our matcher finds {record.ours:.0f} concepts in the same descriptions vs "
                f"{record.peer_value:.0f} for the authors' bag of words",
                command="FRUGAL_DATA=../shared/data python benchmarks/prereq/concept_coverage.py",
            )
    return records
