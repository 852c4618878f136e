import hashlib
import http.server
import threading
from functools import partial

import pytest

from frugalml.common import CorruptFileError, DataNotFoundError
from frugalml.common.data import resolve


@pytest.fixture
def roots(tmp_path, monkeypatch):
    data, cache = tmp_path / "data", tmp_path / "cache"
    monkeypatch.setenv("FRUGAL_DATA", str(data))
    monkeypatch.setenv("FRUGAL_CACHE", str(cache))
    return data, cache


def _put(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_resolution_order_explicit_then_env_then_cache(roots, tmp_path):
    data, cache = roots
    rel = "set/file.csv"
    in_cache = _put(cache, rel, "cache")
    assert resolve(rel) == in_cache
    in_data = _put(data, rel, "data")
    assert resolve(rel) == in_data
    explicit = _put(tmp_path / "mine", "f.csv", "mine")
    assert resolve(rel, path=explicit) == explicit


def test_missing_file_error_names_places_and_remedy(roots):
    with pytest.raises(DataNotFoundError) as err:
        resolve("set/absent.csv", url="https://example.org/absent.csv")
    msg = str(err.value)
    assert "set/absent.csv" in msg and "FRUGAL_DATA" in msg and "--download" in msg
    assert str(roots[0]) in msg and str(roots[1]) in msg


def test_explicit_path_that_does_not_exist(roots, tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        resolve("x", path=tmp_path / "nope")


def test_download_from_file_url_with_checksum(roots, tmp_path):
    src = _put(tmp_path / "origin", "blob.bin", "payload")
    sha = hashlib.sha256(b"payload").hexdigest()
    got = resolve("dl/blob.bin", url=src.as_uri(), sha256=sha, download=True)
    assert got == roots[1] / "dl/blob.bin" and got.read_text() == "payload"


def test_download_with_wrong_checksum_keeps_nothing(roots, tmp_path):
    src = _put(tmp_path / "origin", "blob.bin", "payload")
    with pytest.raises(CorruptFileError, match="SHA-256"):
        resolve("dl/blob.bin", url=src.as_uri(), sha256="0" * 64, download=True)
    target_dir = roots[1] / "dl"
    assert not target_dir.exists() or list(target_dir.iterdir()) == []


@pytest.mark.net
def test_download_from_local_http_server(roots, tmp_path):
    origin = tmp_path / "origin"
    _put(origin, "served.txt", "over http")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(origin))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/served.txt"
        got = resolve("http/served.txt", url=url, download=True)
        assert got.read_text() == "over http"
        with pytest.raises(DataNotFoundError, match="could not download"):
            resolve("http/none.txt", url=url.replace("served", "none"), download=True)
    finally:
        server.shutdown()
