"""Concept coverage on raw course descriptions: the ``--texts`` matcher against the authors' bag of words.

The University data set ships the raw descriptions of 654 courses, the concept list and the
majority-vote prerequisite pairs. The peer is the PREREQ authors' bag of words
(scikit-learn ``CountVectorizer`` over 1-3-grams with English stop words removed and the
normalised concept names as vocabulary). Both read the same texts and concept names; we count
concepts found in at least one description and labelled pairs whose two concepts are both found.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from frugalml.common import env
from frugalml.common.report import Record


def authors_bag_of_words(documents: list[str], terms: list[str]) -> np.ndarray:
    """Concept counts as the PREREQ authors computed them (stop words dropped before n-grams)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(
        ngram_range=(1, 3), stop_words="english", vocabulary=terms, token_pattern=r"(?u)\b\w[\w\-+#]*\b"
    )
    return np.asarray(vectorizer.transform(documents).sum(0)).ravel()


def ours(documents: list[str], terms: list[str]) -> np.ndarray:
    """Concept counts with the matcher of ``frugal prereq fit --texts``."""
    from frugalml.prereq.ingest import ConceptIndex, tokens

    index = ConceptIndex(terms)
    totals = np.zeros(len(terms))
    for doc in documents:
        for c, n in index.count(tokens(doc)).items():
            totals[c] += n
    return totals


def _university(path) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    from frugalml.prereq import data

    root = data.dataset_dir("university", path)
    with open(root / "cs_courses.csv", newline="", encoding="utf-8", errors="replace") as f:
        documents = [row[1] for row in csv.reader(f) if len(row) > 1]
    with open(root / "cs_preqs.csv", newline="", encoding="utf-8") as f:
        pairs = [(row[0], row[1]) for row in csv.reader(f) if len(row) >= 2]
    with open(root / "cs_annotations.tsv", encoding="utf-8") as f:
        names = {x for line in list(f)[1:] for x in line.split("\t")[:2] if x.strip()}
    names |= {x for p in pairs for x in p}
    return documents, sorted(names), pairs


def run(path=None, json_path=None) -> list[Record]:
    """Count concepts found and pairs kept by both matchers on the University descriptions."""
    from frugalml.common import report
    from frugalml.prereq.data import normalise_concept

    documents, names, pairs = _university(path)
    terms = list(dict.fromkeys(normalise_concept(n) for n in names))
    term_of = {n: normalise_concept(n) for n in names}
    found, seconds = {}, {}
    for label, fn in (("ours", ours), ("peer", authors_bag_of_words)):
        start = time.perf_counter()
        counts = fn(documents, terms)
        seconds[label] = time.perf_counter() - start
        found[label] = {t for t, n in zip(terms, counts, strict=True) if n > 0}
    kept = {k: sum(term_of[a] in f and term_of[b] in f for a, b in pairs) for k, f in found.items()}
    only_ours = sorted(found["ours"] - found["peer"])
    only_peer = sorted(found["peer"] - found["ours"])
    workload = (
        f"University: {len(documents)} raw course descriptions, {len(terms)} concepts, "
        f"{len(pairs)} positive pairs"
    )
    peer = "PREREQ authors' bag of words (CountVectorizer 1-3-grams, English stop words removed)"
    machine = env.machine(load=True)
    records = [
        Record(
            "prereq", workload, "concepts found in the texts", "concepts", len(found["ours"]),
            peer=peer, peer_value=len(found["peer"]), higher_is_better=True,
            notes=f"found only by ours ({len(only_ours)}): {', '.join(only_ours[:25])}"
            + (" ..." if len(only_ours) > 25 else "")
            + f"; found only by the peer ({len(only_peer)}): {', '.join(only_peer) or 'none'}; "
            f"matching took {seconds['ours']:.2f} s vs {seconds['peer']:.2f} s on {machine}",
        ),
        Record(
            "prereq", workload, "positive pairs with both concepts found", "pairs", kept["ours"],
            peer=peer, peer_value=kept["peer"], higher_is_better=True,
            notes=f"of {len(pairs)} majority-vote positive pairs; {machine}",
        ),
    ]  # fmt: skip
    report.print_table(records, "concept coverage")
    if json_path:
        report.write_json(records, Path(json_path))
    return records
