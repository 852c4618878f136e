"""Data: the three data sets with licences, lda-c round trip, concept names, bags of words, links."""

import numpy as np
import pytest
import scipy.sparse as sp

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.prereq import data


def test_university_loads_with_licence_and_folds(shared_data):
    ds = data.load_university(shared_data / "prerequisites/university")
    assert ds.corpus.counts.shape == (654, 47853)
    assert len(ds.corpus.links) == 861
    assert "CC BY-NC-SA" in ds.meta["licence"] and "Liang" in ds.meta["citation"]
    assert len(ds.folds) == 5
    train, test = ds.folds[0]
    shared = set(train.keys()) & set(test.keys())
    assert len(shared) == ds.meta["test_pairs_also_in_train"][0] < 0.1 * len(test)
    assert 0.3 < test.y.mean() < 0.6
    # names with commas ("Best,_worst_and_average_case") are split using the annotations
    assert all("," not in x or x in ds.corpus.concepts for x in train.a + train.b)
    assert ds.corpus.concepts["Logic"] == ds.corpus.vocab.index("logic")


def test_nptel_loads(shared_data):
    ds = data.load_nptel(shared_data / "prerequisites/nptel")
    assert ds.corpus.counts.shape == (382, 345)
    assert len(ds.corpus.links) == 1445
    assert ds.meta["licence"].startswith("GPL")
    assert ds.folds[0][0].a[0] == "computer vision" or len(ds.folds[0][0]) > 1000


def test_refd_pairs(shared_data):
    pairs, meta = data.load_refd("CS", shared_data / "prerequisites/refd/Course")
    assert pairs.y.sum() == 108 and len(pairs) == 108 + 570
    assert "EMNLP" in meta["citation"]
    with pytest.raises(InvalidInputError, match="domain"):
        data.load_refd("BIO")


def test_verify_and_missing_data(shared_data, tmp_path):
    report = data.verify("nptel", shared_data / "prerequisites/nptel")
    assert len(report["bow_feature.txt"]["sha256"]) == 64
    with pytest.raises(DataNotFoundError):
        data.verify("nptel", tmp_path)
    with pytest.raises(InvalidInputError, match="unknown data set"):
        data.verify("imagenet")


def test_ldac_round_trip(tmp_path):
    counts = sp.csr_matrix(np.array([[0, 2, 0, 1], [3, 0, 0, 0], [0, 0, 0, 0]]))
    path = data.write_ldac(counts, tmp_path / "c.ldac")
    assert path.read_text().splitlines() == ["2 1:2 3:1", "1 0:3", "0"]
    back = data.read_ldac(path, n_words=4)
    np.testing.assert_array_equal(back.toarray(), counts.toarray())


@pytest.mark.parametrize("line, what", [("2 1:2 x:1", "x:1"), ("3 1:2 2:1", "declares 3"), ("1 4", "'4'")])
def test_malformed_ldac_line_is_named(tmp_path, line, what):
    path = tmp_path / "bad.ldac"
    path.write_text("1 0:1\n" + line + "\n")
    with pytest.raises(CorruptFileError, match="line 2") as err:
        data.read_ldac(path)
    assert what in str(err.value)


def test_concept_normalisation_and_stem_match():
    assert data.normalise_concept("Lock_(computer_science)") == "lock"
    assert data.normalise_concept("Graph_(mathematics)") == "graph"
    found = data.match_concepts(
        ["File_system", "Graph_(mathematics)", "Zebra"], ["file system", "graphs", "tree"]
    )
    assert found == {"File_system": 0, "Graph_(mathematics)": 1}


def test_bag_of_words_counts_ngrams():
    from frugalml.prereq.ingest import bag_of_words

    with pytest.warns(UserWarning, match="1 of 6 concepts occur in no document: heap"):
        counts, terms = bag_of_words(
            ["Machine learning needs linear algebra. Linear algebra!", "Graph theory and union-find"],
            ["Machine_learning", "Linear_algebra", "Graph_theory", "Algebra", "union find", "heap"],
        )
    assert terms == ["machine learning", "linear algebra", "graph theory", "algebra", "union find", "heap"]
    np.testing.assert_array_equal(counts.toarray(), [[1, 2, 0, 2, 0, 0], [0, 0, 1, 0, 1, 0]])
    with pytest.raises(InvalidInputError, match="document 1 is empty"):
        bag_of_words(["text", "  "], ["text"])


def test_links_from_lists_and_playlists():
    links = data.links_from_prerequisites(["c1", "c2", "c3"], [("c3", "c1"), ("c2", "c1")])
    np.testing.assert_array_equal(links, [[2, 0], [1, 0]])
    with pytest.raises(InvalidInputError, match="'c9'"):
        data.links_from_prerequisites(["c1"], [("c9", "c1")])
    play = data.links_from_playlists([[4, 5, 6, 7]], window=2)
    assert {tuple(x) for x in play} == {(5, 4), (6, 4), (6, 5), (7, 5), (7, 6)}
    assert len(data.links_from_playlists([[0, 1, 2]])) == 3


def test_pair_files_and_unknown_concepts(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("A,B,1\nB,Best,_worst,0\nC,A,0\n")
    pairs = data.read_pairs(path, known={"A", "B", "Best,_worst", "C"})
    assert pairs.b[1] == "Best,_worst" and list(pairs.y) == [1, 0, 0]
    with pytest.raises(InvalidInputError, match="'Best,_worst'"):
        data.restrict_pairs(pairs, {"A": 0, "B": 1, "C": 2})
    kept, dropped = data.restrict_pairs(pairs, {"A": 0, "B": 1, "C": 2}, on_unknown="drop")
    assert (len(kept), dropped) == (2, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("A,B,1\nonly-one-field\n")
    with pytest.raises(CorruptFileError, match="line 2"):
        data.read_pairs(bad)


def test_concept_pickle_is_read_without_running_code(tmp_path):
    import pickle

    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({0: "Lock_(computer_science)", 2: "graph"}, protocol=2))
    assert data.read_concept_vocab(good, n_words=3) == {"Lock_(computer_science)": 0, "graph": 2}

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({0: Evil()}))
    with pytest.raises(CorruptFileError, match="only plain data"):
        data.read_concept_vocab(evil, n_words=3)
    assert not marker.exists()

    for name, payload in {
        "list": pickle.dumps(["a"]),
        "range": pickle.dumps({7: "a"}),
        "truncated": pickle.dumps({0: "a" * 50})[:20],
        "garbage": b"\x80\x05not a pickle",
    }.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(CorruptFileError):
            data.read_concept_vocab(tmp_path / name, n_words=3)
