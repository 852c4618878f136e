"""Your own course as input: texts in three formats, concepts with aliases, three-way pair labels,
the coverage report, fit/predict/graph/eval from the CLI, and every bad input as one clear error."""

import json
from pathlib import Path

import numpy as np
import pytest

from frugalml.common.errors import FrugalError, InvalidInputError
from frugalml.prereq import ingest

COURSE = Path(__file__).parent / "data" / "course"
CONCEPTS = COURSE / "concepts.txt"
PAIRS = COURSE / "pairs.tsv"
LABELS = "1-=1,-1=reverse,-=0"
BY_FIELDS = ingest.TextOptions(text_field="transcript", order_field="lecture", group_field="course")
FORMATS = {
    "folder": (COURSE / "texts", ingest.TextOptions()),
    "jsonl": (COURSE / "transcripts.jsonl", BY_FIELDS),
    "csv": (COURSE / "transcripts.csv", BY_FIELDS),
}


def _frugal(*args):
    from typer.testing import CliRunner

    from frugalml.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("we run a Depth-First Search", "depth first search"),  # stop word inside, hyphen, case
        ("the union-find structure", "union find"),  # 'find' is a stop word
        ("balanced binary search trees", "binary search tree"),  # plural
        ("red-black trees", "red black tree"),  # hyphen and plural
        ("then quick sort the list", "quicksort"),  # open compound in text, closed in the list
        ("mergesort splits the list", "merge sort"),  # closed compound in text
        ("all-pairs shortest paths", "all pairs shortest path"),  # 4-gram with a stop word
        ("the A star search", "a star search"),  # a concept starting with a stop word
        ("Dijkstra's algorithm", "Dijkstra's algorithm"),  # possessive
        ("templates in C++", "C++"),
        ("hash maps", "hash table"),  # an alias, plural
        ("Recursion again", "recursive call"),  # an alias
    ],
)
def test_every_way_of_writing_a_concept_is_found(text, concept):
    index = ingest.read_concepts(CONCEPTS)
    found = {index.names[c] for c in index.count(ingest.tokens(text))}
    assert concept in found


def test_stems_find_a_concept_only_when_they_point_to_one():
    alone = ingest.ConceptIndex(["computation"])
    assert alone.resolve("computing") == "computation"
    assert alone.count(ingest.tokens("computing and computations")) == {0: 2}
    both = ingest.ConceptIndex(["computation", "computer", "sorting algorithm"], strict=True)
    assert both.resolve("computers") == "computer" and both.resolve("computing") is None
    assert both.count(ingest.tokens("computers, a computation, computing, sorting algorithms")) == {
        0: 1,
        1: 1,
        2: 1,
    }


def test_nothing_is_found_where_nothing_is_written():
    index = ingest.read_concepts(CONCEPTS)
    assert not index.count(ingest.tokens("a search for the binary tree, first in a line of people"))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_three_text_formats_give_the_same_corpus(fmt):
    path, options = FORMATS[fmt]
    ds = ingest.load_course(path, CONCEPTS, PAIRS, options, label_map=LABELS)
    corpus, coverage = ds.corpus, ds.meta["coverage"]
    assert coverage["concepts"]["not_found"] == ["fibonacci heap"]
    assert coverage["concepts"]["found"] == 20 and len(corpus.concepts) == 20
    assert coverage["concepts"]["mentions"]["binary search tree"] == {"mentions": 3, "documents": 1}
    # links follow the lecture order within each course: 2 courses x 4 lectures -> 6 + 6 links
    names = [d.replace("/lecture", "-") for d in corpus.doc_ids]
    links = {(names[a], names[b]) for a, b in corpus.links}
    assert len(links) == 12 and ("graphs-4", "graphs-1") in links and ("graphs-1", "graphs-4") not in links
    assert not any(a.split("-")[0] != b.split("-")[0] for a, b in links)
    # general words feed the topic model, but only concepts can be asked about
    assert "list" in corpus.vocab and "list" not in corpus.concepts
    pairs = coverage["pairs"]
    assert pairs["kept"] == 22 and pairs["positives"] == 14 and pairs["header"].startswith("concept")
    assert pairs["dropped"] == {
        "concept never occurs in the texts": 1,
        "same concept on both sides": 1,
        "repeated pair (last label kept)": 1,
    }
    keys = dict(zip(ds.pairs.keys(), ds.pairs.y, strict=True))
    assert keys[("depth first search", "graph")] == 1  # 'graph, depth first search, -1' reversed
    assert keys[("binary search tree", "graph")] == 0  # 'Binary Search Trees' resolved
    assert keys[("merge sort", "recursive call")] == 1  # 'recursion' is an alias
    assert keys[("stack", "linked list")] == 1 and ("fibonacci heap", "binary search tree") not in keys
    counts = {n: corpus.counts[:, c].sum() for n, c in corpus.concepts.items()}
    assert counts["recursive call"] == 3 and counts["quicksort"] == 1


def test_label_map_parsing():
    assert ingest.parse_label_map(None) == {"1": "1", "0": "0"}
    assert ingest.parse_label_map("yes=1, no=0, x=drop") == {"yes": "1", "no": "0", "x": "drop"}
    for bad in ("1=maybe", "1", "=1", "1=1,1=0"):
        with pytest.raises(InvalidInputError):
            ingest.parse_label_map(bad)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("stack\n\nqueue\n", "line 2: empty line"),
        ("stack\nqueue\nstack | pile\n", "line 3: concept 'stack' already on line 1"),
        ("binary search tree\nBinary Search Trees\n", "same after normalisation"),
        ("stack | | pile\n", "line 1: empty name or alias"),
        ("", "lists no concept"),
    ],
)
def test_bad_concept_files(tmp_path, content, message):
    with pytest.raises(InvalidInputError, match=message):
        ingest.read_concepts(_write(tmp_path / "c.txt", content))


def test_unknown_concepts_in_pairs_name_the_line_or_are_dropped(tmp_path):
    pairs = _write(tmp_path / "p.tsv", "stack\tlinked list\t1\nqueue\tquantum stacks\t0\ngraph\tstack\t0\n")
    with pytest.raises(
        InvalidInputError, match=r"line 2: unknown concept 'quantum stacks' \(did you mean stack"
    ):
        ingest.load_course(COURSE / "texts", CONCEPTS, pairs)
    ds = ingest.load_course(COURSE / "texts", CONCEPTS, pairs, drop_unknown=True)
    report = ds.meta["coverage"]["pairs"]
    assert report["kept"] == 2 and report["dropped"] == {"unknown concept": 1}
    assert report["unknown"] == ["line 2: quantum stacks"]


def test_a_label_outside_the_map_names_the_line(tmp_path):
    pairs = _write(tmp_path / "p.tsv", "stack\t\tlinked list\t\t1-\nqueue\t\tlinked list\t\t?\n")
    with pytest.raises(InvalidInputError, match=r"line 2: label '\?' is not in the label map"):
        ingest.load_course(COURSE / "texts", CONCEPTS, pairs, label_map=LABELS)


def test_texts_that_are_not_utf8_or_empty(tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_bytes("a stack of caf\xe9s".encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"a.txt is not UTF-8 text \(byte 14, line 1\)"):
        ingest.read_texts(tmp_path / "texts")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="holds no document"):
        ingest.read_texts(tmp_path / "empty")
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("  \n")
    index = ingest.read_concepts(CONCEPTS)
    with pytest.raises(InvalidInputError, match="all 1 documents are empty"):
        ingest.build_corpus(ingest.read_texts(tmp_path / "blank"), index)
    _write(tmp_path / "t.jsonl", '{"text": "a stack"}\n{"body": "a queue"}\n')
    with pytest.raises(InvalidInputError, match=r"line 2: no field 'text' \(fields: body\)"):
        ingest.read_texts(tmp_path / "t.jsonl")
    _write(tmp_path / "t2.jsonl", '{"text": "a stack"}\n{"text": "a queue"\n')
    with pytest.raises(InvalidInputError, match="line 2: not JSON"):
        ingest.read_texts(tmp_path / "t2.jsonl")


def test_links_by_document_id(tmp_path):
    docs = ingest.read_texts(COURSE / "transcripts.csv", BY_FIELDS)
    links = _write(tmp_path / "links.tsv", 'graphs-2\tgraphs-1\n"programming-4",programming-1\r\n')
    got = ingest.document_links(docs, ingest.TextOptions(links=links))
    ids = [d.id for d in docs]
    assert [(ids[a], ids[b]) for a, b in got] == [
        ("graphs-2", "graphs-1"),
        ("programming-4", "programming-1"),
    ]
    _write(links, "graphs-2\tgraphs-9\n")
    with pytest.raises(InvalidInputError, match="line 1: unknown document id 'graphs-9'"):
        ingest.document_links(docs, ingest.TextOptions(links=links))


@pytest.fixture(scope="module")
def course_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("course") / "course.prereq"
    result = _frugal(
        "prereq", "fit", "--texts", COURSE / "transcripts.jsonl", "--text-field", "transcript",
        "--order-field", "lecture", "--group-field", "course", "--concepts", CONCEPTS,
        "--pairs", PAIRS, "--label-map", LABELS, "--topics", "4", "--em-iter", "3", "--trees", "30",
        "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "20 of 21 found" in result.output and "22 of 25 kept" in result.output
    return out


def test_fit_from_raw_texts_then_predict_and_graph_by_any_spelling(course_model):
    from frugalml.prereq.model import PrereqModel

    coverage = json.loads(Path(f"{course_model}.coverage.json").read_text())
    assert coverage["concepts"]["not_found"] == ["fibonacci heap"]
    model = PrereqModel.load(course_model)
    assert set(model.concepts_) == set(coverage["concepts"]["mentions"])
    for spelling in ("binary search tree", "Binary Search Trees", "BST", "binary-search trees"):
        assert model.resolve(spelling) == "binary search tree"
    assert model.resolve("Red-Black Tree") == "red black tree"
    np.testing.assert_allclose(
        model.predict_proba(["Red-Black Trees"], ["BST"]),
        model.predict_proba(["red black tree"], ["binary search tree"]),
    )
    with pytest.raises(InvalidInputError, match="did you mean binary search tree"):
        model.resolve("binary serch tree")
    with pytest.raises(InvalidInputError, match="unknown concept 'list'"):
        model.resolve("list")  # a general word of the texts, not a concept
    with pytest.raises(InvalidInputError, match="never occurs in the texts"):
        model.resolve("Fibonacci heaps")
    out = _frugal("prereq", "predict", course_model, "red-black trees", "BST")
    assert out.exit_code == 0 and "'binary search tree' is a prerequisite of 'red black tree'" in out.output
    out = _frugal("prereq", "graph", course_model, "--concepts", "BST,Red-Black Tree,DFS,stacks")
    assert out.exit_code == 0, out.output
    named = {x for e in json.loads(out.stdout)["edges"] for x in (e["concept"], e["prerequisite"])}
    assert named <= {"binary search tree", "red black tree", "depth first search", "stack"}


def _identity_course(root: Path) -> list[str]:
    """Every document mentions every concept, so no document signal exists; the label depends
    only on which concept is B, which the identity baseline memorises."""
    names = [f"topic {chr(97 + i)}" for i in range(12)]
    _write(root / "concepts.txt", "\n".join(names) + "\n")
    (root / "texts").mkdir()
    for d in range(6):
        _write(root / "texts" / f"{d}.txt", ". ".join(names) + f". lecture {d} words")
    rng = np.random.default_rng(0)
    lines = []
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i != j and rng.random() < 0.7:
                lines.append(f"{a},{b},{int(j < 4)}")
    _write(root / "pairs.csv", "\n".join(lines) + "\n")
    return names


def test_eval_on_own_texts_reports_baselines_and_warns_when_identity_wins(tmp_path):
    _identity_course(tmp_path)
    out = _frugal(
        "prereq", "eval", "--texts", tmp_path / "texts", "--concepts", tmp_path / "concepts.txt",
        "--pairs", tmp_path / "pairs.csv", "--methods", "rf", "-q", "--json", tmp_path / "e.json",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    record = json.loads((tmp_path / "e.json").read_text())
    assert record["split"] == "random" and set(record["results"]) == {"rf", "identity", "allpos"}
    assert record["results"]["identity"]["mean"]["auc"] > 0.9
    assert record["results"]["rf"]["mean"]["auc"] == pytest.approx(0.5)
    assert (
        record["warnings"] and "identity (concept names only, no documents) beats rf" in record["warnings"][0]
    )
    assert "warning: identity" in out.output
    assert record["coverage"]["concepts"]["found"] == 12


def test_eval_disjoint_share_and_one_label_folds(tmp_path):
    _identity_course(tmp_path)
    args = ["prereq", "eval", "--texts", tmp_path / "texts", "--concepts", tmp_path / "concepts.txt"]
    args += ["--pairs", tmp_path / "pairs.csv", "--methods", "rf", "-q", "--split", "disjoint"]
    out = _frugal(*args, "--test-share", "0.5", "--json", tmp_path / "e.json")
    assert out.exit_code == 0, out.output
    folds = json.loads((tmp_path / "e.json").read_text())["results"]["rf"]["folds"]
    assert all(f["n_test"] > 0 for f in folds)
    out = _frugal(*args, "--test-share", "1.5")
    assert isinstance(out.exception, InvalidInputError) and "test_fraction" in str(out.exception)


def test_cli_bad_inputs_are_one_line_errors(tmp_path):
    import subprocess
    import sys

    bad_labels = _write(tmp_path / "p.tsv", "stack\t\tlinked list\t\tmaybe\n")
    common = ["--texts", COURSE / "texts", "--concepts", CONCEPTS, "-o", tmp_path / "m.prereq"]
    out = _frugal("prereq", "fit", *common, "--pairs", bad_labels)
    assert isinstance(out.exception, FrugalError) and "label 'maybe'" in str(out.exception)
    out = _frugal("prereq", "fit", "--texts", COURSE / "texts", "-o", tmp_path / "m.prereq")
    assert isinstance(out.exception, FrugalError) and "--concepts and --pairs" in str(out.exception)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "frugalml.cli",
            "prereq",
            "fit",
            *map(str, common),
            "--pairs",
            str(bad_labels),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "not in the label map" in run.stderr
    assert not (tmp_path / "m.prereq").exists()


def test_university_as_a_users_course_and_its_concept_coverage(shared_data, tmp_path, monkeypatch):
    from frugalml.prereq.bench import as_texts, coverage

    monkeypatch.setenv("FRUGAL_DATA", str(shared_data))
    paths = as_texts.write_university_as_texts(tmp_path)
    docs = ingest.read_texts(paths["texts"])
    assert len(docs) == 654 and docs[0].id == "cmu_15-221"
    index = ingest.read_concepts(paths["concepts"])  # no two concepts that normalise alike
    assert len(index.names) == 405
    assert len(ingest.document_links(docs, ingest.TextOptions(links=paths["links"]))) == 861
    found, kept = coverage.run()
    assert found.ours > found.peer_value and kept.ours > kept.peer_value
    assert "found only by the peer (0)" in found.notes
