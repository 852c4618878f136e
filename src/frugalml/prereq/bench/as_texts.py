"""The University data set written as a user's own course: raw texts, a concept list and a pair file.

``frugal prereq eval --texts`` then runs on it exactly as on any course, so its report can be set
beside the loaders' bag of words. Texts: the 654 raw course descriptions (CSV with an ``id,text``
header); links: the course prerequisite list by course id; concepts: the names used by the
authors' fold 0 (one per normalised name, first spelling kept); pairs: fold 0's train + test pairs.
"""

from __future__ import annotations

import csv
from pathlib import Path


def write_university_as_texts(out_dir: str | Path, path=None) -> dict[str, Path]:
    """Write ``courses.csv``, ``concepts.txt``, ``pairs.tsv`` (and name ``cs_edges.csv`` as the
    links) under ``out_dir``; return the paths."""
    from frugalml.common.files import atomic_write
    from frugalml.prereq import data
    from frugalml.prereq.ingest import concept_tokens, singular

    root = data.dataset_dir("university", path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(root / "cs_courses.csv", newline="", encoding="utf-8", errors="replace") as f:
        rows = [r for r in csv.reader(f) if len(r) > 1]
    with atomic_write(out / "courses.csv", "w") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows(rows)
    with open(root / "cs_annotations.tsv", encoding="utf-8", errors="replace") as f:
        known = {x for line in list(f)[1:] for x in line.split("\t")[:2]}
    pairs = []
    for part in ("train_0", "test_0"):
        p = data.read_pairs(root / "folds" / f"{part}.txt", known=known)
        pairs += list(zip(p.a, p.b, p.y, strict=True))
    seen, names = set(), []
    for a, b, _ in pairs:
        for name in (a, b):
            key = tuple(map(singular, concept_tokens(name)))
            if key not in seen:
                seen.add(key)
                names.append(name)
    with atomic_write(out / "concepts.txt", "w") as f:
        f.write("\n".join(names) + "\n")
    with atomic_write(out / "pairs.tsv", "w") as f:
        f.writelines(f"{a}\t{b}\t{y}\n" for a, b, y in pairs)
    return {
        "texts": out / "courses.csv",
        "concepts": out / "concepts.txt",
        "pairs": out / "pairs.tsv",
        "links": root / "cs_edges.csv",
    }
