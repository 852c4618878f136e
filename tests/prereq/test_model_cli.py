"""The saved model, predict/graph/eval/data/demo through the CLI, and its errors."""

import json

import numpy as np
import pytest

from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.prereq import data
from frugalml.prereq.model import PrereqModel


@pytest.fixture(scope="module")
def model_file(planted, fitted, tmp_path_factory):
    corpus = planted.dataset.corpus
    model = PrereqModel(6, method="prereq", head="diff", siamese_params={"steps": 150, "hidden": 32}).fit(
        corpus, planted.dataset.pairs, plda=fitted
    )
    path = tmp_path_factory.mktemp("model") / "planted.prereq"
    model.save(path)
    return model, path


def test_save_load_round_trip(model_file, planted):
    model, path = model_file
    back = PrereqModel.load(path)
    pairs = planted.dataset.pairs
    np.testing.assert_allclose(
        back.predict_proba(pairs.a, pairs.b), model.predict_proba(pairs.a, pairs.b), atol=1e-6
    )
    np.testing.assert_array_equal(back.plda_.eta_, model.plda_.eta_)
    assert back.classifier_.threshold_ == model.classifier_.threshold_


def test_corrupt_and_truncated_model_files(model_file, tmp_path):
    _, path = model_file
    raw = path.read_bytes()
    (tmp_path / "cut").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError):
        PrereqModel.load(tmp_path / "cut")
    flipped = bytearray(raw)
    flipped[-10] ^= 0xFF
    (tmp_path / "flip").write_bytes(bytes(flipped))
    with pytest.raises(CorruptFileError, match="checksum"):
        PrereqModel.load(tmp_path / "flip")


def test_unknown_concept_is_named(model_file):
    model, _ = model_file
    with pytest.raises(InvalidInputError, match="'quantum gravity'"):
        model.predict_proba(["quantum gravity"], ["concept 0.1"])


def _frugal(*args):
    from typer.testing import CliRunner

    from frugalml.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_predict_and_graph(model_file, tmp_path):
    _, path = model_file
    out = _frugal("prereq", "predict", str(path), "concept 2.0", "concept 1.0")
    assert out.exit_code == 0, out.output
    assert "prerequisite of 'concept 2.0'" in out.output
    out = _frugal(
        "prereq",
        "graph",
        str(path),
        "--format",
        "json",
        "--concepts",
        "concept 0.0,concept 1.0,concept 2.0",
        "-o",
        str(tmp_path / "g.json"),
    )
    assert out.exit_code == 0, out.output
    graph = json.loads((tmp_path / "g.json").read_text())
    assert {"edges", "cyclic_groups"} <= set(graph)
    out = _frugal("prereq", "graph", str(path), "--format", "dot", "--concepts", "concept 0.0,concept 1.0")
    assert out.exit_code == 0 and "digraph" in out.output


def test_cli_errors_exit_2(model_file, tmp_path):
    import subprocess
    import sys

    _, path = model_file
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "frugalml.cli",
            "prereq",
            "predict",
            str(path),
            "no such concept",
            "concept 1.0",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "unknown concept 'no such concept'" in run.stderr


def _write_corpus_files(planted, folder):
    """The planted corpus as a user keeps it: c.ldac, vocab.txt, links.txt and pairs.csv."""
    corpus = planted.dataset.corpus
    data.write_ldac(corpus.counts, folder / "c.ldac")
    (folder / "vocab.txt").write_text("\n".join(corpus.vocab) + "\n")
    (folder / "links.txt").write_text("\n".join(f"{a} {b}" for a, b in corpus.links) + "\n")
    pairs = planted.dataset.pairs
    (folder / "pairs.csv").write_text(
        "".join(f"{a},{b},{y}\n" for a, b, y in zip(pairs.a, pairs.b, pairs.y, strict=True))
    )


def test_cli_fit_from_ldac_files(planted, tmp_path):
    _write_corpus_files(planted, tmp_path)
    out = _frugal(
        "prereq",
        "fit",
        str(tmp_path / "c.ldac"),
        "--vocab",
        str(tmp_path / "vocab.txt"),
        "--links",
        str(tmp_path / "links.txt"),
        "--no-one-based",
        "--pairs",
        str(tmp_path / "pairs.csv"),
        "--topics",
        "4",
        "--em-iter",
        "3",
        "--trees",
        "20",
        "-o",
        str(tmp_path / "m.prereq"),
    )
    assert out.exit_code == 0, out.output
    assert "prereq-hybrid" in out.output
    assert PrereqModel.load(tmp_path / "m.prereq").plda_.n_iter_ <= 3
    (tmp_path / "pairs.csv").write_text("concept 0.0,not a concept,1\n")
    out = _frugal(
        "prereq",
        "fit",
        str(tmp_path / "c.ldac"),
        "--vocab",
        str(tmp_path / "vocab.txt"),
        "--links",
        str(tmp_path / "links.txt"),
        "--no-one-based",
        "--pairs",
        str(tmp_path / "pairs.csv"),
        "-o",
        str(tmp_path / "m2.prereq"),
    )
    assert out.exit_code != 0 and "not a concept" in str(out.exception)


def test_cli_data_list_and_verify(shared_data, monkeypatch):
    monkeypatch.setenv("FRUGAL_DATA", str(shared_data))
    out = _frugal("prereq", "data", "list")
    assert out.exit_code == 0 and "CC BY-NC-SA" in out.output
    out = _frugal("prereq", "data", "verify")
    assert out.exit_code == 0 and "nptel: 14 files" in out.output


def test_demo_runs():
    from frugalml.prereq.demo import run

    line = run(quiet=True)
    assert "PREREQ" in line and "ELBO monotone: True" in line


def test_cli_eval_on_nptel(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("FRUGAL_DATA", str(shared_data))
    out = _frugal(
        "prereq",
        "eval",
        "--dataset",
        "nptel",
        "--methods",
        "allpos,plda,refd",
        "--split",
        "disjoint",
        "--topics",
        "4",
        "--em-iter",
        "2",
        "-q",
        "--json",
        str(tmp_path / "e.json"),
    )
    assert out.exit_code == 0, out.output
    results = json.loads((tmp_path / "e.json").read_text())["results"]
    assert results["allpos"]["mean"]["auc"] == 0.5 and len(results["refd"]["folds"]) == 5
    out = _frugal("prereq", "eval", "--dataset", "nptel", "--methods", "allpos", "--split", "by-date")
    assert out.exit_code != 0 and "by-date" in str(out.exception)


def test_model_file_written_by_an_earlier_release_loads():
    """tests/prereq/data/model-v3.prereq: written before the array store moved to frugalml.common."""
    from pathlib import Path

    model = PrereqModel.load(Path(__file__).parent / "data" / "model-v3.prereq")
    assert model.head == "diff" and model.classifier_.members == 2 and len(model.concepts_) == 6
    assert model.classifier_.threshold_ == pytest.approx(0.4292324483394623)
    np.testing.assert_allclose(
        model.predict_proba(
            ["concept 1.0", "concept 0.1", "concept 1.0"], ["concept 0.1", "concept 1.0", "concept 0.0"]
        ),
        [0.5427766442298889, 0.503790020942688, 0.5429046154022217],
        atol=1e-6,
    )


def test_cli_lists_are_checked_before_any_work():
    out = _frugal("prereq", "reproduce", "--methods", "prereq, nope", "--datasets", "nptel")
    assert out.exit_code != 0 and "nope" in str(out.exception)
    out = _frugal("prereq", "reproduce", "--splits", " , ")
    assert out.exit_code != 0 and "split" in str(out.exception)


@pytest.fixture(scope="module")
def hybrid_file(planted, fitted, tmp_path_factory):
    model = PrereqModel(6, trees=40).fit(planted.dataset.corpus, planted.dataset.pairs, plda=fitted)
    path = tmp_path_factory.mktemp("hybrid") / "hybrid.prereq"
    model.save(path)
    return model, path


def test_hybrid_is_the_default_round_trips_and_answers_as_its_forest(hybrid_file, planted, fitted):
    from frugalml.prereq.methods import Context, _forest, pair_features

    model, path = hybrid_file
    assert model.method == "prereq-hybrid" and model.parts_ in (["topics"], ["links"], ["topics", "links"])
    pairs = planted.dataset.pairs
    back = PrereqModel.load(path)
    assert back.method == "prereq-hybrid" and back.parts_ == model.parts_ and back.trees == 40
    assert back.threshold_ == model.threshold_
    np.testing.assert_array_equal(back.predict_proba(pairs.a, pairs.b), model.predict_proba(pairs.a, pairs.b))
    context = Context(planted.dataset.corpus, n_topics=6, seed=0)
    context._cache["plda"] = fitted
    forest = _forest(context, pairs, model.parts_, 40)  # the same forest, scored by scikit-learn
    expected = forest.predict_proba(pair_features(context, pairs.a, pairs.b, model.parts_))[:, 1]
    np.testing.assert_allclose(back.predict_proba(pairs.a, pairs.b), expected, rtol=0, atol=1e-12)
    assert {x for edge in back.graph() for x in edge[:2]} <= set(back.concepts_)


def test_hybrid_scores_concepts_no_training_pair_mentioned(planted, fitted, tmp_path):
    from sklearn.metrics import roc_auc_score

    pairs = planted.dataset.pairs
    names = sorted(set(pairs.a) | set(pairs.b))
    held = set(np.random.default_rng(0).choice(names, int(0.4 * len(names)), replace=False))
    side = np.array([(x in held, z in held) for x, z in zip(pairs.a, pairs.b, strict=True)])
    train = pairs.subset(np.flatnonzero(~side[:, 0] & ~side[:, 1]))
    test = pairs.subset(np.flatnonzero(side[:, 0] & side[:, 1]))
    assert not (set(train.a) | set(train.b)) & (set(test.a) | set(test.b))
    model = PrereqModel(6, trees=40).fit(planted.dataset.corpus, train, plda=fitted)
    model.save(tmp_path / "m.prereq")
    prob = PrereqModel.load(tmp_path / "m.prereq").predict_proba(test.a, test.b)
    np.testing.assert_array_equal(prob, model.predict_proba(test.a, test.b))
    assert roc_auc_score(test.y, prob) > 0.9  # the planted order, learnt from other concepts


def test_cli_fit_methods_and_their_options(planted, tmp_path):
    _write_corpus_files(planted, tmp_path)
    files = [str(tmp_path / "c.ldac"), "--vocab", str(tmp_path / "vocab.txt"), "--no-one-based"]
    files += ["--links", str(tmp_path / "links.txt"), "--pairs", str(tmp_path / "pairs.csv")]
    files += ["--topics", "4", "--em-iter", "3", "-o", str(tmp_path / "m.prereq")]
    out = _frugal("prereq", "fit", *files, "--method", "prereq-paper", "--steps", "20")
    assert out.exit_code == 0, out.output
    model = PrereqModel.load(tmp_path / "m.prereq")
    assert (
        model.method == "prereq-paper"
        and model.head == "abs"
        and model.classifier_.get_params()["steps"] == 20
    )
    out = _frugal("prereq", "predict", str(tmp_path / "m.prereq"), "concept 1.0", "concept 0.0")
    assert out.exit_code == 0 and "prereq-paper, head abs" in out.output
    out = _frugal("prereq", "fit", *files, "--head", "diff")
    assert out.exit_code != 0 and "--method prereq or prereq-paper" in str(out.exception)
    out = _frugal("prereq", "fit", *files, "--method", "forest")
    assert out.exit_code != 0 and "prereq-hybrid" in str(out.exception)
    out = _frugal("prereq", "fit", *files, "--trees", "0")
    assert out.exit_code != 0 and "trees" in str(out.exception)


def test_hybrid_model_file_of_this_release_loads():
    """tests/prereq/data/model-v4-hybrid.prereq: a 3-tree prereq-hybrid on a planted corpus (K=3)."""
    from pathlib import Path

    model = PrereqModel.load(Path(__file__).parent / "data" / "model-v4-hybrid.prereq")
    assert model.method == "prereq-hybrid" and model.parts_ == ["topics", "links"] and model.trees == 3
    assert model.threshold_ == pytest.approx(2 / 3) and len(model.concepts_) == 72
    a, b = ["concept 1.11", "concept 1.7", "concept 0.2"], ["concept 0.2", "concept 0.8", "concept 1.11"]
    np.testing.assert_array_equal(model.predict_proba(a, b), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(model.predict_proba(b, a), [0.0, 0.0, 1.0])
