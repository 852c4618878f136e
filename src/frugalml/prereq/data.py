"""Corpora and labelled concept pairs: the University, NPTEL and RefD data sets, lda-c files, links.

A :class:`Corpus` is a document-term count matrix with a vocabulary, document links
(``links[i] = (d, d')``: document ``d'`` is a prerequisite of ``d``) and a map from concept names
to vocabulary columns. A :class:`PairSet` holds labelled concept pairs ``(a, b, y)``: ``y = 1``
when concept ``b`` is a prerequisite of concept ``a``.
"""

from __future__ import annotations

import csv
import hashlib
import pickle
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from frugalml.common import data as common_data
from frugalml.common import validate
from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.common.files import atomic_write

UNIVERSITY_CITATION = (
    "C. Liang, J. Ye, Z. Wu, B. Pursel, C. L. Giles. Recovering Concept Prerequisite Relations "
    "from University Course Dependencies. EAAI 2017; S. Roy, M. Madhyastha, S. Lawrence, V. Rajan. "
    "Inferring Concept Prerequisite Relations from Online Educational Resources. IAAI 2019."
)
NPTEL_CITATION = (
    "S. Roy, M. Madhyastha, S. Lawrence, V. Rajan. Inferring Concept Prerequisite Relations from "
    "Online Educational Resources. IAAI 2019 (arXiv 1811.12640)."
)
REFD_CITATION = (
    "C. Liang, Z. Wu, W. Huang, C. L. Giles. Measuring Prerequisite Relations Among Concepts. EMNLP 2015."
)


@dataclass(frozen=True)
class DatasetInfo:
    """Where a data set lives below the data root, what it contains, its licence and citation."""

    name: str
    relpath: str
    files: tuple[str, ...]
    licence: str
    citation: str
    source: str
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "university": DatasetInfo(
        "university",
        "prerequisites/university",
        (
            "cs_courses.csv",
            "cs_edges.csv",
            "cs_preqs.csv",
            "cs_annotations.tsv",
            "bow_feature.txt",
            "vocab.txt",
            "concept_vocab.pkl",
            *(f"folds/{s}_{i}.txt" for i in range(5) for s in ("train", "test")),
        ),
        "data CC BY-NC-SA 4.0 (CPR-Recover release); PREREQ repository GPL-3.0",
        UNIVERSITY_CITATION,
        "https://github.com/suderoy/PREREQ-IAAI-19 (datasets/University Course Dataset)",
        "654 CS course descriptions from 11 US universities, 861 course prerequisite links, "
        "1008 majority-vote concept prerequisite pairs, 5 folds",
    ),
    "nptel": DatasetInfo(
        "nptel",
        "prerequisites/nptel",
        (
            "bow_feature.txt",
            "vocab.txt",
            "prerequisites.link",
            "cs_preq.csv",
            *(f"folds/{s}_{i}_index.txt" for i in range(5) for s in ("train", "test")),
        ),
        "GPL-3.0 (PREREQ repository)",
        NPTEL_CITATION,
        "https://github.com/suderoy/PREREQ-IAAI-19 (datasets/NPTEL MOOC Dataset)",
        "382 NPTEL lecture videos as bags of 345 concept terms, 1445 playlist links, 5 folds",
    ),
    "refd": DatasetInfo(
        "refd",
        "prerequisites/refd/Course",
        ("CS.edges", "CS.edges_neg", "MATH.edges", "MATH.edges_neg"),
        "CC BY-NC-SA 4.0",
        REFD_CITATION,
        "https://github.com/harrylclc/RefD-dataset (Course/)",
        "CS and MATH concept prerequisite pairs with negatives (no documents)",
    ),
}


@dataclass
class Corpus:
    """Documents as bags of words, their prerequisite links and where each concept lives.

    Attributes
    ----------
    counts : scipy.sparse.csr_matrix, shape (n_docs, n_words)
        Word counts per document.
    vocab : list of str
        The word (term) of each column.
    links : ndarray of int, shape (n_links, 2)
        Row ``(d, d2)``: document ``d2`` is a prerequisite of document ``d``.
    concepts : dict of str to int
        Concept name -> column of ``counts`` holding that concept.
    doc_ids : list of str
        A name per document.
    meta : dict
        Licence, citation, source and loading notes.
    """

    counts: sp.csr_matrix
    vocab: list[str]
    links: np.ndarray
    concepts: dict[str, int]
    doc_ids: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = sp.csr_matrix(self.counts, dtype=np.float64)
        self.links = np.asarray(self.links, dtype=np.int64).reshape(-1, 2)
        n_docs, n_words = self.counts.shape
        if len(self.vocab) != n_words:
            raise InvalidInputError(
                f"the vocabulary has {len(self.vocab)} words but the counts have {n_words} columns"
            )
        if self.links.size and (self.links.min() < 0 or self.links.max() >= n_docs):
            raise InvalidInputError(
                f"links name documents outside 0..{n_docs - 1}; check the link file's indexing"
            )
        if self.counts.nnz and self.counts.data.min() < 0:
            raise InvalidInputError("word counts must be non-negative")
        if not self.doc_ids:
            self.doc_ids = [str(d) for d in range(n_docs)]

    @property
    def n_docs(self) -> int:
        return self.counts.shape[0]

    def concept_columns(self, names: Iterable[str]) -> np.ndarray:
        """Vocabulary columns of concepts, raising InvalidInputError naming any unknown one."""
        cols = []
        for name in names:
            if name not in self.concepts:
                raise InvalidInputError(
                    f"unknown concept {name!r}; known concepts include "
                    f"{', '.join(sorted(self.concepts)[:5])}, ... ({len(self.concepts)} in all)"
                )
            cols.append(self.concepts[name])
        return np.asarray(cols, dtype=np.int64)


@dataclass
class PairSet:
    """Labelled concept pairs: ``y[i] = 1`` when ``b[i]`` is a prerequisite of ``a[i]``."""

    a: list[str]
    b: list[str]
    y: np.ndarray

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int64).reshape(-1)
        if not len(self.a) == len(self.b) == len(self.y):
            raise InvalidInputError("pairs need as many A concepts, B concepts and labels")
        if len(self.y) and not np.isin(self.y, (0, 1)).all():
            raise InvalidInputError("pair labels must be 0 or 1")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> PairSet:
        index = np.asarray(index, dtype=np.int64)
        return PairSet([self.a[i] for i in index], [self.b[i] for i in index], self.y[index])

    @classmethod
    def concat(cls, parts: Sequence[PairSet]) -> PairSet:
        return cls(
            [x for p in parts for x in p.a],
            [x for p in parts for x in p.b],
            np.concatenate([p.y for p in parts]) if parts else np.zeros(0, np.int64),
        )

    def keys(self) -> list[tuple[str, str]]:
        return list(zip(self.a, self.b, strict=True))


@dataclass
class Dataset:
    """A corpus, its labelled concept pairs and the authors' folds (train, test) pairs."""

    name: str
    corpus: Corpus
    pairs: PairSet
    folds: list[tuple[PairSet, PairSet]]
    meta: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- concept names


def normalise_concept(name: str) -> str:
    """A concept name as it appears in text: no "(...)" qualifier, "_" -> space, lowercase.

    >>> normalise_concept("Lock_(computer_science)")
    'lock'
    """
    text = re.sub(r"\([^)]*\)", " ", name).replace("_", " ").lower()
    return " ".join(text.split())


def _stem_key(term: str) -> str:
    from gensim.parsing.porter import PorterStemmer

    stemmer = PorterStemmer()
    return " ".join(stemmer.stem(t) for t in term.split())


def match_concepts(names: Iterable[str], vocab: Sequence[str]) -> dict[str, int]:
    """Map concept names to vocabulary columns: exact normalised match first, then stem match.

    Names found neither way are left out (the caller decides whether that is an error).
    """
    exact: dict[str, int] = {}
    for i, term in enumerate(vocab):
        exact.setdefault(" ".join(term.split()).lower(), i)
    found, missing = {}, []
    for name in names:
        key = normalise_concept(name)
        if key in exact:
            found[name] = exact[key]
        else:
            missing.append(name)
    if missing:
        stems: dict[str, int] = {}
        for term, i in exact.items():
            stems.setdefault(_stem_key(term), i)
        for name in missing:
            col = stems.get(_stem_key(normalise_concept(name)))
            if col is not None:
                found[name] = col
    return found


# ----------------------------------------------------------------------------- lda-c format


def read_ldac(path: str | Path, n_words: int | None = None) -> sp.csr_matrix:
    """Read an lda-c file (``N id:count id:count ...`` per document) into a CSR count matrix.

    Raises
    ------
    CorruptFileError
        A malformed line; the message names the file, the line number and the bad token.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; check the path to the lda-c file")
    indptr, indices, values = [0], [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            try:
                declared = int(tokens[0])
                pairs = [t.split(":") for t in tokens[1:]]
                ids = [int(w) for w, _ in pairs]
                cnt = [float(c) for _, c in pairs]
            except ValueError:
                bad = next((t for t in tokens[1:] if not re.fullmatch(r"\d+:\d+(\.\d+)?", t)), tokens[0])
                raise CorruptFileError(
                    f"{path}, line {lineno}: malformed lda-c token {bad!r}; expected 'N id:count ...'"
                ) from None
            if declared != len(ids):
                raise CorruptFileError(
                    f"{path}, line {lineno}: declares {declared} terms but lists {len(ids)}"
                )
            if any(c < 0 for c in cnt) or any(w < 0 for w in ids):
                raise CorruptFileError(f"{path}, line {lineno}: negative word id or count")
            indices += ids
            values += cnt
            indptr.append(len(indices))
    width = max(indices, default=-1) + 1
    if n_words is not None:
        if width > n_words:
            raise CorruptFileError(f"{path} uses word id {width - 1} but the vocabulary has {n_words} words")
        width = n_words
    return sp.csr_matrix((values, indices, indptr), shape=(len(indptr) - 1, width))


def write_ldac(counts, path: str | Path) -> Path:
    """Write a document-term count matrix in lda-c format, atomically."""
    counts = sp.csr_matrix(counts)
    with atomic_write(path, "w") as f:
        for d in range(counts.shape[0]):
            row = counts.getrow(d)
            terms = " ".join(
                f"{w}:{int(c) if float(c).is_integer() else c}"
                for w, c in zip(row.indices, row.data, strict=True)
                if c
            )
            f.write(f"{np.count_nonzero(row.data)} {terms}".rstrip() + "\n")
    return Path(path)


# ----------------------------------------------------------------------------- building corpora


def links_from_prerequisites(doc_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> np.ndarray:
    """Document links from course prerequisite lists: ``(course, prerequisite)`` name pairs.

    Raises InvalidInputError naming a course that is not among ``doc_ids``.
    """
    index = {d: i for i, d in enumerate(doc_ids)}
    out = []
    for course, prereq in edges:
        for name in (course, prereq):
            if name not in index:
                raise InvalidInputError(f"prerequisite link names unknown document {name!r}")
        out.append((index[course], index[prereq]))
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def links_from_playlists(playlists: Iterable[Sequence[int]], window: int | None = None) -> np.ndarray:
    """Document links from ordered playlists: each video gets the earlier ones as prerequisites.

    Parameters
    ----------
    playlists : iterable of sequences of document indices, in viewing order
    window : int, optional
        Only the ``window`` videos just before a video count as its prerequisites.
    """
    if window is not None and window < 1:
        raise InvalidInputError(f"window must be at least 1, got {window}")
    out: list[tuple[int, int]] = []
    for playlist in playlists:
        for pos, doc in enumerate(playlist):
            start = 0 if window is None else max(0, pos - window)
            out.extend((doc, earlier) for earlier in playlist[start:pos])
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def read_links(path: str | Path, one_based: bool = True) -> np.ndarray:
    """Read a link file of ``d d2`` lines (``d2`` is a prerequisite of ``d``)."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; check the path to the link file")
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.replace(",", " ").split()
            if not parts:
                continue
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise CorruptFileError(
                    f"{path}, line {lineno}: expected two document indices, got {line.strip()!r}"
                )
            rows.append([int(p) - int(one_based) for p in parts])
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


# ----------------------------------------------------------------------------- pair files


def read_pairs(
    path: str | Path,
    names: Sequence[str] | None = None,
    *,
    known: Iterable[str] | None = None,
    default_label: int | None = None,
) -> PairSet:
    """Read labelled concept pairs ``A,B[,label]`` (or ``A<TAB>B``; B is a prerequisite of A).

    Parameters
    ----------
    names : sequence of str, optional
        When given, A and B are integer indices into ``names``.
    known : iterable of str, optional
        Concept names that may contain commas; used to split ``A,B`` unambiguously.
    default_label : int, optional
        Label of lines that carry none (e.g. 1 for a positives-only file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; check the path to the pair file")
    known_set = set(known or ())
    a, b, y = [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("\t") if "\t" in line else line.split(",")
            label = default_label
            if parts[-1].strip() in ("0", "1") and (len(parts) > 2 or names is not None):
                label = int(parts.pop().strip())
            if label is None:
                raise CorruptFileError(f"{path}, line {lineno}: no 0/1 label in {line!r}")
            pair = _split_pair(parts, known_set)
            if pair is None:
                raise CorruptFileError(f"{path}, line {lineno}: cannot split {line!r} into two concepts")
            if names is not None:
                try:
                    first, second = (names[int(p)] for p in pair)
                    pair = (first, second)
                except (ValueError, IndexError):
                    raise CorruptFileError(
                        f"{path}, line {lineno}: {line!r} does not hold two "
                        f"concept indices in 0..{len(names) - 1}"
                    ) from None
            a.append(pair[0])
            b.append(pair[1])
            y.append(label)
    return PairSet(a, b, np.asarray(y))


def _split_pair(parts: list[str], known: set[str]) -> tuple[str, str] | None:
    parts = [p.strip() for p in parts]
    if len(parts) == 2:
        return parts[0], parts[1]
    for cut in range(1, len(parts)):
        left, right = ",".join(parts[:cut]), ",".join(parts[cut:])
        if left in known and right in known:
            return left, right
    return None


def restrict_pairs(
    pairs: PairSet, concepts: dict[str, int], on_unknown: str = "error"
) -> tuple[PairSet, int]:
    """Keep pairs whose concepts are in the corpus; ``on_unknown`` is ``"error"`` or ``"drop"``.

    Returns the kept pairs and how many were dropped.
    """
    validate.one_of(on_unknown, ("error", "drop"), "on_unknown")
    keep = [i for i, (x, z) in enumerate(pairs.keys()) if x in concepts and z in concepts]
    if len(keep) < len(pairs) and on_unknown == "error":
        bad = next(x for k in pairs.keys() for x in k if x not in concepts)
        raise InvalidInputError(
            f"pair file names concept {bad!r}, which is not in the corpus vocabulary; add it to "
            "the vocabulary or drop such pairs (on_unknown='drop')"
        )
    return pairs.subset(np.asarray(keep, dtype=np.int64)), len(pairs) - len(keep)


# ----------------------------------------------------------------------------- the concept pickle

MAX_PICKLE_BYTES = 16 << 20


class _NoGlobals(pickle.Unpickler):
    """An unpickler that refuses every class and function, so a pickle can only build plain
    containers, numbers and strings (it can never run code)."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, and only plain data is allowed")


def read_concept_vocab(path: str | Path, n_words: int) -> dict[str, int]:
    """Read the authors' ``concept_vocab.pkl`` (vocabulary column -> concept name) safely.

    The pickle is parsed by an unpickler that refuses every global (no class, function or
    module can be named, so nothing in the file can execute), its size is bounded, and its
    structure is checked: a dict of column indices in ``0..n_words-1`` to names.

    Raises
    ------
    CorruptFileError
        The file names a class or function, is too large, truncated, or not such a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing; the data set folder is incomplete")
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise CorruptFileError(f"{path} holds {size:,} bytes, more than a concept list needs; refusing it")
    try:
        with open(path, "rb") as f:
            raw = _NoGlobals(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise CorruptFileError(f"{path} is not a plain concept list ({exc}); get a fresh copy") from None
    if not isinstance(raw, dict):
        raise CorruptFileError(f"{path} holds a {type(raw).__name__}, not a dict of column -> concept")
    out: dict[str, int] = {}
    for col, name in raw.items():
        if type(col) is not int or not isinstance(name, str) or not 0 <= col < n_words:
            raise CorruptFileError(
                f"{path}: entry {col!r}: {name!r} is not a column in 0..{n_words - 1} and a concept name"
            )
        out[name] = col
    return out


# ----------------------------------------------------------------------------- the data sets


def dataset_dir(name: str, path: str | Path | None = None) -> Path:
    """The folder of a registered data set (explicit path, ``$FRUGAL_DATA``, user cache)."""
    if name not in DATASETS:
        raise InvalidInputError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    info = DATASETS[name]
    return common_data.resolve(info.relpath, path=path, hint=f"get it from {info.source} ({info.licence})")


def verify(name: str, path: str | Path | None = None) -> dict:
    """Check that every file of a data set is present and readable; return sizes and SHA-256s."""
    root = dataset_dir(name, path)
    report = {}
    for rel in DATASETS[name].files:
        file = root / rel
        if not file.is_file():
            raise DataNotFoundError(f"{name}: {file} is missing; download {DATASETS[name].source}")
        report[rel] = {"bytes": file.stat().st_size, "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
    return report


def _meta(name: str, **notes) -> dict:
    info = DATASETS[name]
    return {
        "dataset": name,
        "licence": info.licence,
        "citation": info.citation,
        "source": info.source,
        **notes,
    }


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing; the data set folder is incomplete")
    return path.read_text(encoding="utf-8", errors="replace").split("\n")


def load_university(path: str | Path | None = None) -> Dataset:
    """The University course data set with the authors' bag of words, links and 5 folds.

    Fold pairs whose concepts match no vocabulary term (after normalisation and stemming) are
    dropped; how many is recorded in ``meta["dropped_pairs"]``.
    """
    root = dataset_dir("university", path)
    vocab = _read_lines(root / "vocab.txt")
    while vocab and vocab[-1] == "":
        vocab.pop()
    counts = read_ldac(root / "bow_feature.txt", n_words=len(vocab))
    with open(root / "cs_courses.csv", newline="", encoding="utf-8", errors="replace") as f:
        doc_ids = [row[0] for row in csv.reader(f) if row]
    with open(root / "cs_edges.csv", newline="") as f:
        links = links_from_prerequisites(doc_ids, ((r[0], r[1]) for r in csv.reader(f) if r))
    concepts = read_concept_vocab(root / "concept_vocab.pkl", n_words=len(vocab))
    with open(root / "cs_annotations.tsv", encoding="utf-8", errors="replace") as f:
        known = {x for line in list(f)[1:] for x in line.split("\t")[:2]}
    folds = [
        (
            read_pairs(root / f"folds/train_{i}.txt", known=known),
            read_pairs(root / f"folds/test_{i}.txt", known=known),
        )
        for i in range(5)
    ]
    fold_names = {x for tr, te in folds for p in (tr, te) for k in p.keys() for x in k}
    concepts.update(match_concepts(sorted(fold_names - set(concepts)), vocab))
    return _assemble("university", Corpus(counts, vocab, links, concepts, doc_ids), folds)


def load_nptel(path: str | Path | None = None) -> Dataset:
    """The NPTEL MOOC data set: videos as bags of concept terms, playlist links, 5 folds."""
    root = dataset_dir("nptel", path)
    vocab = [v.strip() for v in _read_lines(root / "vocab.txt")]
    while vocab and vocab[-1] == "":
        vocab.pop()
    counts = read_ldac(root / "bow_feature.txt", n_words=len(vocab))
    links = read_links(root / "prerequisites.link", one_based=True)
    concepts = {name: i for i, name in enumerate(vocab)}
    folds = [
        (
            read_pairs(root / f"folds/train_{i}_index.txt", names=vocab),
            read_pairs(root / f"folds/test_{i}_index.txt", names=vocab),
        )
        for i in range(5)
    ]
    return _assemble("nptel", Corpus(counts, vocab, links, concepts), folds)


def _assemble(name: str, corpus: Corpus, folds: list[tuple[PairSet, PairSet]]) -> Dataset:
    dropped, kept = 0, []
    for train, test in folds:
        train, n_train = restrict_pairs(_dedupe(train), corpus.concepts, "drop")
        test, n_test = restrict_pairs(_dedupe(test), corpus.concepts, "drop")
        dropped += n_train + n_test
        kept.append((train, test))
    pairs = _dedupe(PairSet.concat([p for fold in kept[:1] for p in fold]))
    corpus.meta = _meta(name)
    overlap = [len(set(test.keys()) & set(train.keys())) for train, test in kept]
    self_pairs = [sum(x == z for x, z in test.keys()) for _, test in kept]
    meta = _meta(
        name,
        dropped_pairs=dropped,
        test_pairs_also_in_train=overlap,
        self_pairs_in_test=self_pairs,
        note="fold pairs naming concepts absent from the bag of words were dropped; the "
        "authors' folds share a few pairs between train and test and hold (A, A) "
        "negatives",
    )
    return Dataset(name, corpus, pairs, kept, meta)


def _dedupe(pairs: PairSet) -> PairSet:
    """Keep the last label of each repeated (A, B) pair, as the authors' loader does."""
    last = {k: i for i, k in enumerate(pairs.keys())}
    return pairs.subset(np.asarray(sorted(last.values()), dtype=np.int64))


def load_refd(domain: str = "CS", path: str | Path | None = None) -> tuple[PairSet, dict]:
    """The RefD Course pairs of one domain (``"CS"`` or ``"MATH"``) and their metadata."""
    if domain not in ("CS", "MATH"):
        raise InvalidInputError(f"unknown RefD domain {domain!r}; choose CS or MATH")
    root = dataset_dir("refd", path)
    pos = read_pairs(root / f"{domain}.edges", default_label=1)
    neg = read_pairs(root / f"{domain}.edges_neg", default_label=0)
    return PairSet.concat([pos, neg]), _meta("refd", domain=domain)


def load(name: str, path: str | Path | None = None) -> Dataset:
    """Load ``"university"`` or ``"nptel"`` by name."""
    loaders = {"university": load_university, "nptel": load_nptel}
    if name not in loaders:
        raise InvalidInputError(f"unknown corpus {name!r}; choose one of: {', '.join(loaders)}")
    return loaders[name](path)
