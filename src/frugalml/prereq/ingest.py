"""Your own course as a corpus: raw texts, a concept list with aliases and labelled pairs.

Texts come as a folder of ``.txt`` files (sub-folders are playlists or courses), a JSONL file or a
CSV file with a header. Documents are linked by their order within a playlist (each document gets
the ``window`` documents just before it as prerequisites) or by a link file of document ids.

Concepts are read one per line: the concept name, then its aliases, separated by ``|``::

    binary search tree | BST
    depth first search | DFS | depth-first traversal

Names and text go through the same normalisation: Unicode NFKC, lowercase, possessives and
punctuation dropped, hyphens split words, every word stemmed (so plurals match), stop words kept,
and a phrase also matches its closed compound (``quick sort`` = ``quicksort``, ``red-black trees``
= ``redblack tree``); phrases of any length match. General words (stems of non-stop words) feed the
topic model beside the concepts, but only concepts can be asked about.

Pairs are ``A<sep>B<sep>label`` lines (tabs, runs of tabs or commas): label 1 says B is a
prerequisite of A. ``label_map`` translates other labels: to ``1``, ``0``, ``reverse`` (A is a
prerequisite of B: stored as (B, A, 1)) or ``drop``. A header line is detected and skipped.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from frugalml.common.errors import DataNotFoundError, InvalidInputError
from frugalml.common.progress import progress
from frugalml.prereq.data import Corpus, Dataset, PairSet, links_from_playlists

ALIAS_SEP = "|"
LABEL_ACTIONS = ("1", "0", "reverse", "drop")
DEFAULT_LABEL_MAP = "1=1,0=0"
_TOKEN = re.compile(r"[^\W_]+(?:\+\+|#)?")
_POSSESSIVE = re.compile(r"(?<=\w)['\u2019]s\b")
_MAX_PHRASE = 16


# ----------------------------------------------------------------------------- normalisation


def tokens(text: str) -> list[str]:
    """Lowercase word tokens: NFKC, possessives dropped, punctuation and hyphens split words.

    >>> tokens("Dijkstra's red-black Trees, C++!")
    ['dijkstra', 'red', 'black', 'trees', 'c++']
    """
    text = unicodedata.normalize("NFKC", text).lower()
    return _TOKEN.findall(_POSSESSIVE.sub("", text))


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Porter stem of one lowercase word (``trees`` -> ``tree``, ``searches`` -> ``search``)."""
    return _stemmer().stem(word)


@lru_cache(maxsize=1)
def _stemmer():
    from gensim.parsing.porter import PorterStemmer

    return PorterStemmer()


def concept_tokens(name: str) -> list[str]:
    """Tokens of a concept name: a trailing ``(qualifier)`` and ``_`` separators dropped.

    >>> concept_tokens("Lock_(computer_science)")
    ['lock']
    """
    return tokens(re.sub(r"\([^)]*\)", " ", name).replace("_", " "))


_PLURAL_ES = re.compile(r"(?:s|x|z|ch|sh)es$")


@lru_cache(maxsize=200_000)
def singular(word: str) -> str:
    """An English plural made singular (light and exact: used before the Porter stem, which
    conflates more, e.g. ``computer``/``computing``).

    >>> [singular(w) for w in ["trees", "searches", "queries", "queues", "class", "analysis", "c++"]]
    ['tree', 'search', 'query', 'queue', 'class', 'analysis', 'c++']
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if _PLURAL_ES.search(word):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def phrase_keys(toks: Sequence[str], fold=singular) -> tuple[tuple[str, ...], str]:
    """The two keys a phrase matches under: its folded words, and its folded closed compound.

    >>> phrase_keys(["quick", "sorts"])
    (('quick', 'sort'), 'quicksort')
    >>> phrase_keys(["computing"], stem)
    (('comput',), 'comput')
    """
    return tuple(fold(t) for t in toks), fold("".join(toks))


# ----------------------------------------------------------------------------- the concept index


@dataclass
class ConceptIndex:
    """Concept names, their aliases, and the normalised keys that find them in text or a query.

    A phrase matches a concept when their words (or closed compounds) agree after plurals are made
    singular; failing that, when their Porter stems agree and point to one concept only (so
    ``computing`` finds ``computation`` unless ``computer`` is a concept too).

    Parameters
    ----------
    names : the concept names as the user wrote them (canonical)
    aliases : name -> other names of the same concept
    strict : two concepts that are the same up to case, punctuation and plurals are an error
        (else the first one keeps the name)
    """

    names: list[str]
    aliases: dict[str, list[str]] = field(default_factory=dict)
    strict: bool = False

    def __post_init__(self) -> None:
        self._exact: dict[tuple, int] = {}
        self._loose: dict[tuple, set[int]] = {}
        self._prefixes: set[tuple] = set()
        self.longest = 1
        for i, name in enumerate(self.names):
            for phrase in [name, *self.aliases.get(name, [])]:
                self._add(i, phrase)

    def _add(self, i: int, phrase: str) -> None:
        toks = concept_tokens(phrase)
        if not self.strict and not 0 < len(toks) <= _MAX_PHRASE:
            return  # such a name can only be asked for exactly
        if not toks:
            raise InvalidInputError(f"concept {self.names[i]!r}: {phrase!r} holds no word")
        if len(toks) > _MAX_PHRASE:
            raise InvalidInputError(
                f"concept {self.names[i]!r}: {phrase!r} has {len(toks)} words; at most {_MAX_PHRASE}"
            )
        words, compact = phrase_keys(toks)
        for other in (self._exact.setdefault(("w", words), i), self._exact.setdefault(("c", compact), i)):
            if other != i and self.strict:
                raise InvalidInputError(
                    f"concepts {self.names[other]!r} and {self.names[i]!r} are the same after "
                    f"normalisation (as {phrase!r}); merge them into one line with aliases"
                )
        stems, stem_compact = phrase_keys(toks, stem)
        self._loose.setdefault(("w", stems), set()).add(i)
        self._loose.setdefault(("c", stem_compact), set()).add(i)
        self.longest = max(self.longest, len(toks) + 2)
        for k in range(1, len(toks) + 1):
            self._prefixes.update((("w", words[:k]), ("s", stems[:k])))
        raw = "".join(toks)
        self._prefixes.update(("r", raw[:k]) for k in range(1, len(raw) + 1))

    def _lookup(self, words: tuple[str, ...], stems: tuple[str, ...], raw: str) -> int | None:
        hit = self._exact.get(("w", words), self._exact.get(("c", singular(raw))))
        if hit is not None:
            return hit
        loose = self._loose.get(("w", stems), set()) | self._loose.get(("c", stem(raw)), set())
        return next(iter(loose)) if len(loose) == 1 else None

    def resolve(self, name: str) -> str | None:
        """The canonical concept a name or alias denotes, or None."""
        toks = concept_tokens(name)
        if not toks:
            return None
        hit = self._lookup(tuple(map(singular, toks)), tuple(map(stem, toks)), "".join(toks))
        return None if hit is None else self.names[hit]

    def count(self, toks: Sequence[str]) -> Counter[int]:
        """Mentions of each concept (by index) in a token list; every phrase length is tried."""
        singles = [singular(t) for t in toks]
        stems = [stem(t) for t in toks]
        out: Counter[int] = Counter()
        for i in range(len(toks)):
            hits: set[int] = set()
            raw = ""
            for j in range(i, min(len(toks), i + self.longest)):
                raw += toks[j]
                words, stemmed = tuple(singles[i : j + 1]), tuple(stems[i : j + 1])
                hit = self._lookup(words, stemmed, raw)
                if hit is not None:
                    hits.add(hit)
                if not {("w", words), ("s", stemmed), ("r", raw)} & self._prefixes:
                    break
            out.update(hits)
        return out

    def suggest(self, name: str, n: int = 5) -> list[str]:
        """Concepts whose name or an alias looks like ``name`` (for 'did you mean')."""
        spellings = {
            " ".join(concept_tokens(p)): c for c in self.names for p in [c, *self.aliases.get(c, [])]
        }
        close = difflib.get_close_matches(
            " ".join(concept_tokens(name)), list(spellings), n=3 * n, cutoff=0.6
        )
        words = {stem(t) for t in concept_tokens(name)}
        close += [s for s in spellings if words & {stem(t) for t in s.split()}]
        return list(dict.fromkeys(spellings[s] for s in close))[:n]


def read_concepts(path: str | Path) -> ConceptIndex:
    """Read a concept file: one concept a line, ``name | alias | alias ...``.

    Raises
    ------
    InvalidInputError
        An empty line or field, a duplicate name (also after normalisation), no concept at all;
        the message names the line.
    """
    path = Path(path)
    names: list[str] = []
    aliases: dict[str, list[str]] = {}
    lines = read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        fields = [f.strip() for f in line.split(ALIAS_SEP)]
        if not line.strip():
            raise InvalidInputError(f"{path}, line {lineno}: empty line; remove it (one concept a line)")
        if not all(fields):
            raise InvalidInputError(
                f"{path}, line {lineno}: empty name or alias in {line.strip()!r}; aliases are "
                f"separated by a single {ALIAS_SEP!r}"
            )
        if fields[0] in first_line:
            raise InvalidInputError(
                f"{path}, line {lineno}: concept {fields[0]!r} already on line {first_line[fields[0]]}; "
                "list each concept once"
            )
        first_line[fields[0]] = lineno
        names.append(fields[0])
        aliases[fields[0]] = fields[1:]
    if not names:
        raise InvalidInputError(f"{path} lists no concept; write one concept name a line")
    try:
        return ConceptIndex(names, aliases, strict=True)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None


def bag_of_words(documents: Sequence[str], concepts: Iterable[str]) -> tuple[sp.csr_matrix, list[str]]:
    """Count concept mentions in raw documents, with the matching of :class:`ConceptIndex`
    (stop words kept inside concepts, plurals, hyphens, closed compounds, any phrase length).

    Returns the count matrix and the normalised concept names (one column each); warns about
    concepts that occur in no document.

    >>> counts, terms = bag_of_words(["Union-find on trees, then a heap."], ["Union_find", "Tree", "Heap"])
    >>> terms, counts.toarray().tolist()
    (['union find', 'tree', 'heap'], [[1.0, 1.0, 1.0]])

    Raises
    ------
    InvalidInputError
        An empty document (named by its index) or no usable concept.
    """
    import warnings

    for i, doc in enumerate(documents):
        if not isinstance(doc, str) or not doc.strip():
            raise InvalidInputError(f"document {i} is empty; remove it or give it text")
    terms = list(dict.fromkeys(t for t in (" ".join(concept_tokens(c)) for c in concepts) if t))
    if not terms:
        raise InvalidInputError("no concept names given; pass at least one concept")
    index = ConceptIndex(terms)
    rows = [index.count(tokens(doc)) for doc in documents]
    counts = _count_matrix(rows, [Counter() for _ in rows], {("c", i): i for i in range(len(terms))})
    missing = [t for i, t in enumerate(terms) if not any(i in row for row in rows)]
    if missing:
        warnings.warn(
            f"{len(missing)} of {len(terms)} concepts occur in no document: {', '.join(missing[:10])}"
            + (", ..." if len(missing) > 10 else ""),
            stacklevel=2,
        )
    return counts, terms


# ----------------------------------------------------------------------------- texts


def read_text(path: Path) -> str:
    """A UTF-8 text file (a BOM is allowed); a clear error if it is missing or not UTF-8."""
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; check the path")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidInputError(
            f"{path} is not UTF-8 text (byte {exc.start}, line {line}); convert it, e.g. "
            f"iconv -f latin1 -t utf-8"
        ) from None


@dataclass
class Document:
    """One text: its id, its playlist or course, and its position there."""

    id: str
    text: str
    group: str = ""
    order: float = 0.0


@dataclass
class TextOptions:
    """How to read texts and link them.

    Attributes
    ----------
    text_field, id_field, order_field, group_field : column or key names in JSONL / CSV
        (``id`` defaults to the row number; no order field: file order; no group: one playlist)
    window : earlier documents of the same playlist that count as prerequisites (None: all)
    links : a file of ``doc_id<TAB>prerequisite_doc_id`` lines, used instead of the order
    """

    text_field: str = "text"
    id_field: str = "id"
    order_field: str | None = None
    group_field: str | None = None
    window: int | None = 16
    links: Path | None = None


def read_texts(path: str | Path, options: TextOptions | None = None) -> list[Document]:
    """Documents from a folder of ``.txt`` files, a ``.jsonl`` or a ``.csv`` file."""
    options = options or TextOptions()
    path = Path(path)
    if path.is_dir():
        docs = _read_folder(path)
    elif not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; give a folder of .txt files, a .jsonl or a .csv")
    elif path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        docs = _records(path, _jsonl_rows(path), options)
    elif path.suffix.lower() in (".csv", ".tsv"):
        text = read_text(path)
        csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))  # long transcripts
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            docs = _records(path, ((reader.line_num, row) for row in reader), options)
        except csv.Error as exc:
            raise InvalidInputError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    else:
        raise InvalidInputError(
            f"{path}: unknown text format {path.suffix!r}; use a folder of .txt, .jsonl or .csv"
        )
    if not docs:
        raise InvalidInputError(f"{path} holds no document; the corpus is empty")
    return docs


def _natural(name: str) -> list:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _read_folder(root: Path) -> list[Document]:
    files = sorted(root.rglob("*.txt"), key=lambda p: _natural(str(p.relative_to(root))))
    docs = []
    for pos, file in enumerate(files):
        rel = file.relative_to(root)
        group = str(rel.parent) if rel.parent != Path(".") else ""
        docs.append(Document(str(rel.with_suffix("")), read_text(file), group, float(pos)))
    return docs


def _jsonl_rows(path: Path) -> Iterable[tuple[int, dict]]:
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}, line {lineno}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InvalidInputError(f"{path}, line {lineno}: expected a JSON object per line")
        yield lineno, row


def _records(path: Path, rows: Iterable[tuple[int, dict]], opt: TextOptions) -> list[Document]:
    docs = []
    for pos, (lineno, row) in enumerate(rows):
        where = f"{path}, line {lineno}"
        if opt.text_field not in row:
            raise InvalidInputError(
                f"{where}: no field {opt.text_field!r} (fields: {', '.join(map(str, row))}); "
                "name the text field with --text-field"
            )
        text = row[opt.text_field]
        if not isinstance(text, str):
            raise InvalidInputError(f"{where}: field {opt.text_field!r} is not text")
        order = float(pos)
        if opt.order_field is not None:
            order = _number(row.get(opt.order_field), f"{where}: order field {opt.order_field!r}")
        group = "" if opt.group_field is None else str(_field(row, opt.group_field, where))
        doc_id = str(row.get(opt.id_field, pos))
        docs.append(Document(doc_id, text, group, order))
    return docs


def _field(row: dict, name: str, where: str):
    if name not in row:
        raise InvalidInputError(f"{where}: no field {name!r} (fields: {', '.join(map(str, row))})")
    return row[name]


def _number(value, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} is {value!r}, not a number") from None
    if not np.isfinite(out):
        raise InvalidInputError(f"{what} is {value!r}, not a finite number")
    return out


def document_links(docs: Sequence[Document], options: TextOptions) -> np.ndarray:
    """Links ``(d, d2)``: d2 is a prerequisite of d, from a link file or from playlist order."""
    if options.links is not None:
        return read_doc_links(options.links, [d.id for d in docs])
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        groups.setdefault(d.group, []).append(i)
    playlists = [sorted(members, key=lambda i: (docs[i].order, i)) for members in groups.values()]
    return links_from_playlists(playlists, options.window)


def read_doc_links(path: Path, doc_ids: Sequence[str]) -> np.ndarray:
    """A link file of ``doc_id<TAB>prerequisite_doc_id`` lines (or CSV), by document id."""
    index = {d: i for i, d in enumerate(doc_ids)}
    if len(index) < len(doc_ids):
        raise InvalidInputError("document ids repeat, so links by id are ambiguous; give unique ids")
    out = []
    for lineno, line in enumerate(read_text(Path(path)).splitlines(), 1):
        if not line.strip():
            continue
        parts = _pair_fields(line)
        if len(parts) != 2:
            raise InvalidInputError(f"{path}, line {lineno}: expected 'doc_id<TAB>prerequisite_doc_id'")
        for p in parts:
            if p not in index:
                raise InvalidInputError(f"{path}, line {lineno}: unknown document id {p!r}")
        out.append((index[parts[0]], index[parts[1]]))
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


# ----------------------------------------------------------------------------- corpus


def build_corpus(
    docs: Sequence[Document],
    concepts: ConceptIndex,
    options: TextOptions | None = None,
    *,
    max_words: int = 5000,
    min_df: int = 2,
    quiet: bool = True,
) -> tuple[Corpus, dict]:
    """Count concepts and general words in the documents; link them; report the coverage.

    Columns: first the concepts found in the texts, then up to ``max_words`` general words
    (stems of non-stop words in at least ``min_df`` documents). ``Corpus.concepts`` holds only
    the concepts found; ``meta["concept_aliases"]`` their aliases, ``meta["unseen_concepts"]``
    the rest. Empty documents are left out (listed in the report).
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    options = options or TextOptions()
    empty = [d.id for d in docs if not tokens(d.text)]
    kept_docs = [d for d in docs if tokens(d.text)]
    if not kept_docs:
        raise InvalidInputError(f"all {len(docs)} documents are empty; the corpus holds no text")
    links = document_links(kept_docs, options)
    concept_rows, word_rows = [], []
    for d in progress(kept_docs, desc="matching concepts", quiet=quiet):
        toks = tokens(d.text)
        concept_rows.append(concepts.count(toks))
        word_rows.append(
            Counter(stem(t) for t in toks if t not in ENGLISH_STOP_WORDS and len(t) > 2 and not t.isdigit())
        )
    found = sorted({c for row in concept_rows for c in row})
    mentions = {c: sum(row[c] for row in concept_rows) for c in found}
    doc_freq = Counter(w for row in word_rows for w in row)
    totals: Counter[str] = Counter()
    for row in word_rows:
        totals.update(row)
    words = [w for w, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])) if doc_freq[w] >= min_df][
        :max_words
    ]
    columns: dict[tuple[str, int | str], int] = {("c", c): i for i, c in enumerate(found)}
    columns.update({("w", w): len(found) + i for i, w in enumerate(words)})
    counts = _count_matrix(concept_rows, word_rows, columns)
    names = [concepts.names[c] for c in found]
    corpus = Corpus(
        counts, names + words, links, {n: i for i, n in enumerate(names)}, [d.id for d in kept_docs]
    )
    unseen = [n for i, n in enumerate(concepts.names) if i not in mentions]
    corpus.meta = {
        "concept_aliases": {n: concepts.aliases.get(n, []) for n in names},
        "unseen_concepts": unseen,
    }
    report = {
        "documents": len(kept_docs),
        "empty_documents": empty,
        "links": int(len(links)),
        "links_from": str(options.links) if options.links else f"playlist order (window {options.window})",
        "general_words": len(words),
        "concepts": {
            "listed": len(concepts.names),
            "found": len(found),
            "not_found": unseen,
            "mentions": {
                concepts.names[c]: {
                    "mentions": int(mentions[c]),
                    "documents": int(sum(c in row for row in concept_rows)),
                }
                for c in found
            },
        },
    }
    return corpus, report


def _count_matrix(concept_rows: list[Counter], word_rows: list[Counter], columns: dict) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for d, (crow, wrow) in enumerate(zip(concept_rows, word_rows, strict=True)):
        for kind, row in (("c", crow), ("w", wrow)):
            for key, n in row.items():
                col = columns.get((kind, key))
                if col is not None:
                    rows.append(d)
                    cols.append(col)
                    vals.append(float(n))
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(concept_rows), len(columns)))


# ----------------------------------------------------------------------------- pairs


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"1-=1,-1=reverse,-=0"`` -> ``{"1-": "1", "-1": "reverse", "-": "0"}`` (the last ``=``
    of each item separates the label in the file from what it means).

    >>> parse_label_map("1-=1,-1=reverse,-=0")
    {'1-': '1', '-1': 'reverse', '-': '0'}
    """
    out: dict[str, str] = {}
    for item in (text or DEFAULT_LABEL_MAP).split(","):
        label, sep, action = item.strip().rpartition("=")
        label, action = label.strip(), action.strip().lower()
        if not sep or not label:
            raise InvalidInputError(f"label map item {item.strip()!r} is not 'label=meaning'")
        if action not in LABEL_ACTIONS:
            raise InvalidInputError(
                f"label map item {item.strip()!r}: meaning must be one of {', '.join(LABEL_ACTIONS)}"
            )
        if label in out:
            raise InvalidInputError(f"label {label!r} is mapped twice in the label map")
        out[label] = action
    return out


def _pair_fields(line: str) -> list[str]:
    if "\t" in line:
        return [f.strip() for f in re.split(r"\t+", line.strip("\r\n\t "))]
    return [f.strip() for f in next(csv.reader([line]))]


@dataclass
class _PairTally:
    dropped: Counter[str] = field(default_factory=Counter)
    unknown: list[str] = field(default_factory=list)
    conflicts: int = 0
    header: str | None = None


def read_labelled_pairs(
    path: str | Path,
    concepts: ConceptIndex,
    *,
    label_map: dict[str, str] | None = None,
    drop_unknown: bool = False,
    seen: Iterable[str] | None = None,
) -> tuple[PairSet, dict]:
    """Read ``A<sep>B<sep>label`` lines into pairs of canonical concept names, and a report.

    Names are resolved through the concept index (aliases, case, plurals...). Pairs are dropped,
    and counted by reason, when a concept is unknown (only with ``drop_unknown``, else an error
    naming the line), when a concept is not in ``seen`` (never occurs in the texts), for
    ``A == B``, for a label mapped to ``drop``, and for repeats (the last label is kept).
    """
    path = Path(path)
    label_map = label_map if label_map is not None else parse_label_map(None)
    seen_set = set(concepts.names if seen is None else seen)
    tally = _PairTally()
    entries: dict[tuple[str, str], int] = {}
    n_lines = 0
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        fields = _pair_fields(line)
        if len(fields) != 3:
            raise InvalidInputError(
                f"{path}, line {lineno}: expected 'A<TAB>B<TAB>label' (or commas), got {line.strip()!r}"
            )
        a, b = concepts.resolve(fields[0]), concepts.resolve(fields[1])
        action = label_map.get(fields[2])
        if n_lines == 0 and tally.header is None and action is None and (a is None or b is None):
            tally.header = line.strip()
            continue
        n_lines += 1
        if action is None:
            raise InvalidInputError(
                f"{path}, line {lineno}: label {fields[2]!r} is not in the label map "
                f"({', '.join(f'{k}={v}' for k, v in label_map.items())}); map it with --label-map"
            )
        if a is None or b is None:
            bad = fields[0] if a is None else fields[1]
            if not drop_unknown:
                hint = concepts.suggest(bad)
                raise InvalidInputError(
                    f"{path}, line {lineno}: unknown concept {bad!r}"
                    + (f" (did you mean {', '.join(hint)}?)" if hint else "")
                    + "; add it to the concept file or pass --drop-unknown"
                )
            tally.dropped["unknown concept"] += 1
            tally.unknown.append(f"line {lineno}: {bad}")
            continue
        if action == "drop":
            tally.dropped["label mapped to drop"] += 1
            continue
        if action == "reverse":
            a, b = b, a
        if a == b:
            tally.dropped["same concept on both sides"] += 1
            continue
        if a not in seen_set or b not in seen_set:
            tally.dropped["concept never occurs in the texts"] += 1
            continue
        y = 1 if action in ("1", "reverse") else 0
        if (a, b) in entries:
            tally.dropped["repeated pair (last label kept)"] += 1
            tally.conflicts += int(entries[(a, b)] != y)
            del entries[(a, b)]
        entries[(a, b)] = y
    pairs = PairSet([k[0] for k in entries], [k[1] for k in entries], np.fromiter(entries.values(), np.int64))
    report = {
        "file": str(path),
        "header": tally.header,
        "read": n_lines,
        "kept": len(pairs),
        "positives": int(pairs.y.sum()),
        "dropped": dict(tally.dropped),
        "repeats_with_other_label": tally.conflicts,
        "unknown": tally.unknown[:20],
    }
    return pairs, report


# ----------------------------------------------------------------------------- all together


def load_course(
    texts: str | Path,
    concepts: str | Path,
    pairs: str | Path,
    options: TextOptions | None = None,
    *,
    label_map: str | None = None,
    drop_unknown: bool = False,
    quiet: bool = True,
) -> Dataset:
    """Texts + concept file + pair file -> a :class:`Dataset` (no fixed folds) whose
    ``meta["coverage"]`` reports concepts found / not found and pairs kept / dropped and why."""
    options = options or TextOptions()
    index = read_concepts(concepts)
    labels = parse_label_map(label_map)
    docs = read_texts(texts, options)
    corpus, coverage = build_corpus(docs, index, options, quiet=quiet)
    pair_set, pair_report = read_labelled_pairs(
        pairs, index, label_map=labels, drop_unknown=drop_unknown, seen=corpus.concepts
    )
    coverage["pairs"] = pair_report
    if len(pair_set) == 0:
        raise InvalidInputError(
            f"no labelled pair is left ({pair_report['read']} read, dropped: "
            f"{pair_report['dropped'] or 'none'}); check the concept names and the label map"
        )
    if len(np.unique(pair_set.y)) < 2:
        raise InvalidInputError(
            f"all {len(pair_set)} kept pairs have label {int(pair_set.y[0])}; a classifier needs both "
            "labels (check --label-map)"
        )
    return Dataset(Path(texts).stem or "course", corpus, pair_set, [], {"coverage": coverage})


def format_coverage(report: dict, n_show: int = 12) -> str:
    """The coverage report as a few lines of text."""
    c = report["concepts"]
    lines = [
        f"documents: {report['documents']} ({len(report['empty_documents'])} empty, left out); "
        f"links: {report['links']} from {report['links_from']}; general words: {report['general_words']}",
        f"concepts: {c['found']} of {c['listed']} found in the texts",
    ]
    top = sorted(c["mentions"].items(), key=lambda kv: -kv[1]["mentions"])
    if top:
        lines.append(
            "  most mentioned: "
            + ", ".join(f"{n} ({v['mentions']} in {v['documents']} docs)" for n, v in top[:n_show])
        )
    if c["not_found"]:
        more = len(c["not_found"]) - n_show
        lines.append(
            "  not found: "
            + ", ".join(c["not_found"][:n_show])
            + (f", ... ({more} more)" if more > 0 else "")
        )
    p = report.get("pairs")
    if p:
        dropped = ", ".join(f"{n} {why}" for why, n in p["dropped"].items()) or "none"
        lines.append(
            f"pairs: {p['kept']} of {p['read']} kept ({p['positives']} positive); dropped: {dropped}"
            + (f"; header skipped: {p['header']!r}" if p["header"] else "")
        )
        if p["unknown"]:
            lines.append("  unknown concepts: " + "; ".join(p["unknown"][:n_show]))
    return "\n".join(lines)
