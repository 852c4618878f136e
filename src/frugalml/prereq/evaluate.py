"""Splits, metrics and graph checks: how every method is judged, fold by fold, mean +- std.

Splits: the authors' folds, random k-fold, concept-disjoint (no concept in both train and test)
and transitivity-leak-free (test pairs implied by the training positives through a chain are
removed). Metrics: precision, recall, F1 (threshold chosen on the training pairs), ROC AUC,
average precision, P@50, P@100; graph checks: antisymmetry violations and cycles among predicted
prerequisite edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from frugalml.common import validate
from frugalml.common.errors import InvalidInputError
from frugalml.common.progress import progress
from frugalml.common.seeding import rng as make_rng
from frugalml.prereq.data import Dataset, PairSet
from frugalml.prereq.methods import METHODS, Context, Scorer, fit_method

SPLITS = ("authors", "random", "disjoint", "leakfree")


# ----------------------------------------------------------------------------- splits


def random_splits(pairs: PairSet, n_splits: int = 5, seed: int = 0) -> list[tuple[PairSet, PairSet]]:
    """Shuffled k-fold over all labelled pairs."""
    order = make_rng(seed).permutation(len(pairs))
    folds = np.array_split(order, n_splits)
    return [(pairs.subset(np.setdiff1d(order, test)), pairs.subset(np.sort(test))) for test in folds]


def concept_disjoint_splits(
    pairs: PairSet, n_splits: int = 5, test_fraction: float = 0.4, seed: int = 0
) -> list[tuple[PairSet, PairSet]]:
    """Repeated random concept partitions: train pairs use only train concepts, test pairs only
    test concepts; pairs across the partition are left out."""
    if not 0 < test_fraction < 1:
        raise InvalidInputError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    gen = make_rng(seed)
    concepts = sorted(set(pairs.a) | set(pairs.b))
    out = []
    for _ in range(n_splits):
        test_set = set(gen.choice(concepts, int(round(test_fraction * len(concepts))), replace=False))
        in_test = np.array([(x in test_set, z in test_set) for x, z in pairs.keys()])
        train = np.flatnonzero(~in_test[:, 0] & ~in_test[:, 1])
        test = np.flatnonzero(in_test[:, 0] & in_test[:, 1])
        out.append((pairs.subset(train), pairs.subset(test)))
    return out


def leak_free_splits(pairs: PairSet, n_splits: int = 5, seed: int = 0) -> list[tuple[PairSet, PairSet]]:
    """Random k-fold minus the test pairs whose answer the training positives imply by
    transitivity: (A, B) with a chain A -> ... -> B (or B -> ... -> A) of training positives."""
    import networkx as nx

    out = []
    for train, test in random_splits(pairs, n_splits, seed):
        graph = nx.DiGraph((x, z) for x, z, y in zip(train.a, train.b, train.y, strict=True) if y)
        closure = {n: nx.descendants(graph, n) for n in graph}
        keep = [
            i
            for i, (x, z) in enumerate(test.keys())
            if z not in closure.get(x, ()) and x not in closure.get(z, ())
        ]
        out.append((train, test.subset(np.asarray(keep, dtype=np.int64))))
    return out


def make_splits(dataset: Dataset, split: str, n_splits: int = 5, seed: int = 0, test_fraction: float = 0.4):
    """The (train, test) pairs of a named split scheme (``test_fraction``: the share of concepts
    held out by the concept-disjoint split)."""
    validate.one_of(split, SPLITS, "split")
    if split == "authors":
        if not dataset.folds:
            raise InvalidInputError(f"data set {dataset.name!r} has no authors' folds")
        return dataset.folds
    if split == "random":
        return random_splits(dataset.pairs, n_splits, seed)
    if split == "disjoint":
        return concept_disjoint_splits(dataset.pairs, n_splits, test_fraction, seed=seed)
    return leak_free_splits(dataset.pairs, n_splits, seed)


# ----------------------------------------------------------------------------- metrics


def precision_at(y: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of positives among the k highest scores (NaN if fewer than k pairs).

    Pairs tied with the k-th score count by their expected share, so a constant score gives the
    positive rate, not an artefact of the file order.
    """
    if len(y) < k:
        return float("nan")
    kth = np.sort(scores)[::-1][k - 1]
    above = scores > kth
    tied = scores == kth
    expected_tied = y[tied].mean() * (k - above.sum())
    return float((y[above].sum() + expected_tied) / k)


def pair_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 at ``threshold``, AUC, AP, P@50 and P@100 of one test set."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(y, dtype=np.int64)
    scores = validate.as_array(scores, "scores", ndim=1, dtype=np.float64)
    pred = (scores >= threshold).astype(np.int64)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    both = len(np.unique(y)) == 2
    return {
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "auc": float(roc_auc_score(y, scores)) if both else float("nan"),
        "ap": float(average_precision_score(y, scores)) if both else float("nan"),
        "p@50": precision_at(y, scores, 50),
        "p@100": precision_at(y, scores, 100),
    }


def graph_checks(scorer: Scorer, a: Sequence[str], b: Sequence[str]) -> dict[str, float]:
    """Antisymmetry and cycles of the predicted prerequisite graph on the given pairs.

    ``antisymmetry_violations``: share of predicted-positive pairs (A, B) for which (B, A) is
    predicted positive too. ``cycles``: strongly connected groups of more than one concept
    among the predicted edges (a prerequisite graph should have none).
    """
    import networkx as nx

    forward = scorer.predict(a, b)
    backward = scorer.predict(b, a)
    positive = forward.sum()
    violations = float((forward & backward).sum() / positive) if positive else 0.0
    graph = nx.DiGraph()
    graph.add_edges_from((x, z) for x, z, p in zip(a, b, forward, strict=True) if p)
    graph.add_edges_from((z, x) for x, z, p in zip(a, b, backward, strict=True) if p)
    cyclic = sum(1 for c in nx.strongly_connected_components(graph) if len(c) > 1)
    return {"antisymmetry_violations": violations, "cyclic_groups": float(cyclic)}


# ----------------------------------------------------------------------------- running it all


def evaluate(
    dataset: Dataset,
    methods: Iterable[str],
    split: str = "authors",
    *,
    context: Context | None = None,
    n_splits: int = 5,
    seed: int = 0,
    head: str | None = None,
    quiet: bool = True,
    test_fraction: float = 0.4,
) -> dict[str, dict]:
    """Fit and score every method on every fold of a split.

    Returns
    -------
    dict
        ``{method: {"folds": [metrics per fold], "mean": {...}, "std": {...}}}``.
    """
    methods = list(methods)
    for m in methods:
        validate.one_of(m, METHODS, "method")
    context = context or Context(dataset.corpus, seed=seed)
    splits = make_splits(dataset, split, n_splits, seed, test_fraction)
    results: dict[str, dict] = {m: {"folds": []} for m in methods}
    work = [(m, i, tr, te) for i, (tr, te) in enumerate(splits) for m in methods]
    for method, fold, train, test in progress(work, desc=f"{dataset.name}/{split}", quiet=quiet):
        if len(test) == 0:
            raise InvalidInputError(f"fold {fold} of split {split!r} has no test pairs")
        if len(np.unique(train.y)) < 2:
            raise InvalidInputError(
                f"fold {fold} of split {split!r} trains on {len(train)} pairs of one label only; "
                "label more pairs, or hold out fewer concepts (--test-share)"
            )
        scorer = fit_method(method, context, train, head=head)
        row = pair_metrics(test.y, scorer.score(test.a, test.b), scorer.threshold)
        row.update(graph_checks(scorer, test.a, test.b))
        row.update(n_train=len(train), n_test=len(test), test_positive_rate=float(test.y.mean()))
        results[method]["folds"].append(row)
    for entry in results.values():
        keys = entry["folds"][0].keys()
        values = {k: np.array([f[k] for f in entry["folds"]], dtype=np.float64) for k in keys}
        entry["mean"] = {
            k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in values.items()
        }
        entry["std"] = {
            k: float(np.nanstd(v)) if np.isfinite(v).any() else float("nan") for k, v in values.items()
        }
    return results


def interval(values: Sequence[float]) -> dict[str, float]:
    """Mean and the 95% t-interval of the mean over the given fold results (NaNs left out).

    Examples
    --------
    >>> r = interval([0.6, 0.7, 0.8])
    >>> round(r["mean"], 3), round(r["low"], 3), round(r["high"], 3), r["n"]
    (0.7, 0.452, 0.948, 3)
    """
    from scipy import stats

    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    mean = float(v.mean())
    if len(v) < 2:
        return {"mean": mean, "low": mean, "high": mean, "n": 1}
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(len(v))}


def over_seeds(
    dataset,
    methods: Sequence[str],
    split: str,
    seeds: Sequence[int],
    *,
    context,
    test_fraction: float = 0.4,
    quiet: bool = True,
) -> dict[str, dict]:
    """Evaluate every method with each seed; per method the folds of all seeds and, per metric,
    the mean and 95% interval over them (``{method: {"folds": [...], "ci95": {metric: {...}}}}``)."""
    merged: dict[str, dict] = {m: {"folds": []} for m in methods}
    base_seed = context.seed
    for seed in seeds:
        context.seed = seed  # methods' own randomness; the topic model is fitted once and kept
        results = evaluate(
            dataset, methods, split, context=context, seed=seed, quiet=quiet, test_fraction=test_fraction
        )
        for method, entry in results.items():
            merged[method]["folds"] += [{**row, "seed": seed} for row in entry["folds"]]
    context.seed = base_seed
    for entry in merged.values():
        keys = [k for k in entry["folds"][0] if k != "seed"]
        entry["ci95"] = {k: interval([f[k] for f in entry["folds"]]) for k in keys}
    return merged


BASELINES = ("identity", "allpos")


def with_baselines(methods: Iterable[str]) -> list[str]:
    """The methods followed by the ``identity`` and ``allpos`` baselines (each once)."""
    return list(dict.fromkeys([*methods, *BASELINES]))


def identity_warnings(results: dict[str, dict], metrics: Sequence[str] = ("auc", "f1")) -> list[str]:
    """One line for every method that the concept-identity baseline (no documents) beats on a
    metric's mean: such a split rewards memorising which concepts are prerequisites."""
    if "identity" not in results:
        return []
    ident = results["identity"]["mean"]
    out = []
    for method, entry in results.items():
        if method in BASELINES:
            continue
        beaten = [
            f"{m} {ident[m]:.3f} vs {entry['mean'][m]:.3f}"
            for m in metrics
            if np.isfinite(ident[m]) and np.isfinite(entry["mean"][m]) and ident[m] > entry["mean"][m]
        ]
        if beaten:
            out.append(
                f"identity (concept names only, no documents) beats {method}: {'; '.join(beaten)}; "
                "the model adds nothing over memorising which concepts are prerequisites here "
                "(try --split disjoint)"
            )
    return out
