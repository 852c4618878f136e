import pytest

from frugalml.common import DataNotFoundError, InvalidInputError
from frugalml.common.corpus import corpus_bytes, stdlib_bytes


def test_stdlib_corpus_is_embedded_and_truncated():
    assert len(stdlib_bytes(5000)) == 5000
    assert corpus_bytes(None, max_bytes=100) == corpus_bytes("stdlib", max_bytes=100)


def test_named_corpus_is_found_under_the_data_root(tmp_path, monkeypatch):
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "tiny.txt").write_bytes(b"hello world")
    monkeypatch.setenv("FRUGAL_DATA", str(tmp_path))
    assert corpus_bytes("tiny.txt") == b"hello world"
    assert corpus_bytes("corpora/tiny.txt", max_bytes=5) == b"hello"
    assert corpus_bytes(tmp_path / "corpora" / "tiny.txt") == b"hello world"
    with pytest.raises(InvalidInputError, match="folder"):
        corpus_bytes(tmp_path / "corpora")
    with pytest.raises(DataNotFoundError):
        corpus_bytes(tmp_path / "absent.txt")
    with pytest.raises(DataNotFoundError, match="corpora/absent.txt"):
        corpus_bytes("absent.txt")


def test_a_corpus_larger_than_half_the_memory_is_refused_before_reading(tmp_path, monkeypatch):
    from frugalml.common import corpus as corpus_module

    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 1000)
    monkeypatch.setattr(corpus_module, "physical_memory", lambda: 1000)
    with pytest.raises(InvalidInputError, match="more than half this machine's memory"):
        corpus_module.corpus_bytes(path)
    assert corpus_module.corpus_bytes(path, max_bytes=10) == b"x" * 10
