"""Predicting from HTTP range requests against a real nginx (and a small scripted server for the
failures nginx cannot stage: 5xx, stalls): equal outputs, request counts, caches, every bad input."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import threading
import time

import numpy as np
import pytest

from frugalml.common.errors import CorruptFileError, DataNotFoundError, ServiceUnavailableError
from frugalml.common.redis_server import free_port
from frugalml.pacset import PackedForest, open_packed, pack
from frugalml.pacset.remote import RemoteOptions, coalesce, display_url
from tests.pacset.conftest import IMPORTERS, PACKED_LAYOUTS, with_nan

pytestmark = pytest.mark.net

FAST = RemoteOptions(timeout=1.0, retries=1, backoff=0.01)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(folder nginx serves, base URL); skips when nginx is not installed."""
    from frugalml.pacset.bench.httpserve import nginx_server

    root = tmp_path_factory.mktemp("www")
    for sub in ("noranges", "onerange", "forbidden"):
        (root / sub).mkdir()
    with contextlib.ExitStack() as stack:
        try:
            base = stack.enter_context(nginx_server(root))
        except ServiceUnavailableError as exc:
            pytest.skip(f"no nginx here ({exc})")
        yield root, base


@pytest.fixture(scope="module")
def rf_file(served, rf):
    root, base = served
    pack(rf, root / "rf.pacset", bins=2, interleave=1)
    return root / "rf.pacset", f"{base}/rf.pacset"


def local_and_remote(packed, url, X, **kw):
    with PackedForest.open(packed) as local, PackedForest.open(url, **kw) as remote:
        if local.model.classes is not None:
            return local.predict_proba(X), remote.predict_proba(X)
        return local.predict(X), remote.predict(X)


@pytest.mark.parametrize("kind", IMPORTERS)
@pytest.mark.parametrize("layout", PACKED_LAYOUTS)
def test_every_importer_and_layout_bitwise_equal_to_the_local_file(packed_models, served, kind, layout):
    root, base = served
    _, X, path = packed_models(kind, layout)
    shutil.copy(path, root / path.name)
    rows = X[:40] if "GradientBoosting" in kind and "Hist" not in kind else with_nan(X[:40])
    for fetch in ("blocks", "whole"):
        local, remote = local_and_remote(path, f"{base}/{path.name}", rows, remote=RemoteOptions(fetch=fetch))
        np.testing.assert_array_equal(local, remote)


def test_requests_rounds_and_bytes(rf_file, cls_data):
    from frugalml.pacset.bench.httpserve import access_count

    path, url = rf_file
    base = url.rsplit("/", 1)[0]
    before = access_count(base)
    with PackedForest.open(url, remote=RemoteOptions(fetch="blocks")) as model:
        assert model.store.requests == 1  # header and index in one range request
        model.predict(cls_data[0][:1])
        stats = model.store.stats
        seeded = model.store.seeded  # node blocks that came with the header read
        assert seeded > 0 and stats.round_trips >= 1
        assert stats.blocks_fetched - seeded <= model.blocks_touched <= stats.blocks_fetched
        assert model.store.requests - 1 <= stats.blocks_fetched  # adjacent blocks share a request
        assert stats.bytes_fetched < path.stat().st_size
        assert access_count(base, before + model.store.requests) - before == model.store.requests
    with PackedForest.open(url, remote=RemoteOptions(fetch="whole")) as model:
        model.predict(cls_data[0][:1])
        assert model.store.requests == 2 and model.store.plan == "whole"


def test_auto_policy_says_what_it_chose(rf_file, cls_data):
    _, url = rf_file
    n_blocks = open_packed(rf_file[0]).meta["n_blocks"]
    with PackedForest.open(url, remote=RemoteOptions(fetch="auto", whole_share=2.0)) as model:
        model.predict(cls_data[0][:1])
        assert model.store.plan == "blocks"
    with PackedForest.open(url, remote=RemoteOptions(fetch="auto")) as model:
        model.predict(cls_data[0])
        assert model.store.plan.startswith("whole (a batch of 1500 rows")
        assert model.store.stats.blocks_fetched == n_blocks + model.store.seeded  # + those with the header


def test_disk_cache_is_shared_and_damaged_entries_are_fetched_again(rf_file, cls_data, tmp_path):
    _, url = rf_file
    X = cls_data[0][:5]
    options = RemoteOptions(fetch="blocks", cache_dir=tmp_path)
    with PackedForest.open(url, remote=options) as first:
        expected = first.predict_proba(X)
        fetched, seeded = first.store.stats.blocks_fetched, first.store.seeded
    (entry,) = {p.parent for p in tmp_path.rglob("*.blk")}
    files = sorted(entry.glob("*.blk"), key=lambda p: int(p.stem))
    assert len(files) == fetched and not list(entry.glob(".*"))  # no temporary files left
    damaged = bytearray(files[-1].read_bytes())  # a block the walk fetched (not one of the header read's)
    damaged[3] ^= 0xFF
    files[-1].write_bytes(bytes(damaged))
    with PackedForest.open(url, remote=options) as second:
        np.testing.assert_array_equal(second.predict_proba(X), expected)
        assert second.store.disk_hits == fetched - seeded - 1 and second.store.requests == 2


def test_bad_urls_fail_with_one_line_naming_host_and_path(served, rf_file):
    root, base = served
    shutil.copy(rf_file[0], root / "noranges" / "rf.pacset")
    shutil.copy(rf_file[0], root / "forbidden" / "rf.pacset")
    secret = "?X-Amz-Signature=topsecret"
    dead = f"http://user:pw@127.0.0.1:{free_port()}/m.pacset"
    cases = [
        (f"{base}/missing.pacset{secret}", DataNotFoundError, "404"),
        (f"{base}/forbidden/rf.pacset{secret}", ServiceUnavailableError, "403"),
        (f"{base}/noranges/rf.pacset", ServiceUnavailableError, "ignores range requests"),
        (dead, ServiceUnavailableError, "unreachable"),
    ]
    for url, error, message in cases:
        with pytest.raises(error, match=message) as exc:
            PackedForest.open(url, remote=FAST)
        text = str(exc.value)
        assert display_url(url) in text and "topsecret" not in text and "pw" not in text
        assert "\n" not in text


def test_truncated_replaced_and_corrupt_files(served, rf, cls_data):
    root, base = served
    X = cls_data[0][:20]
    pack(rf, root / "t.pacset")
    data = (root / "t.pacset").read_bytes()
    (root / "t.pacset").write_bytes(data[: len(data) - 4096])
    with pytest.raises(CorruptFileError, match="truncated"):
        PackedForest.open(f"{base}/t.pacset", remote=FAST)

    pack(rf, root / "c.pacset", bins=1, interleave=0)
    packed = open_packed(root / "c.pacset")
    damaged = bytearray((root / "c.pacset").read_bytes())
    damaged[packed.nodes_offset + 40] ^= 0x10
    (root / "c.pacset").write_bytes(bytes(damaged))
    with PackedForest.open(f"{base}/c.pacset", remote=FAST) as model:
        with pytest.raises(CorruptFileError, match="block 0 failed its checksum"):
            model.predict(X)

    pack(rf, root / "r.pacset")
    with PackedForest.open(f"{base}/r.pacset", remote=RemoteOptions(fetch="blocks")) as model:
        time.sleep(1.1)  # nginx's ETag holds the modification time in seconds
        pack(rf, root / "r.pacset")  # the same model packed again: another file on the server
        with pytest.raises(CorruptFileError, match="replaced on the server"):
            model.predict(X)


class Scripted(http.server.BaseHTTPRequestHandler):
    """Serves ``data`` with ranges; ``plan`` lists what to do per request: "ok", "503", "stall"."""

    data = b""
    plan: list[str] = []

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        step = self.plan.pop(0) if self.plan else "ok"
        if step == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, stop = (int(v) for v in self.headers["Range"].split("=")[1].split("-"))
        stop = min(stop, len(self.data) - 1)
        body = self.data[start : stop + 1]
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{stop}/{len(self.data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        if step == "stall":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(3)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted(rf, tmp_path):
    pack(rf, tmp_path / "s.pacset")
    Scripted.data = (tmp_path / "s.pacset").read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/s.pacset"
    server.shutdown()
    server.server_close()


def test_5xx_and_stalls_are_retried_then_refused(scripted, rf, cls_data):
    X = cls_data[0][:10]
    Scripted.plan = ["503", "503", "ok"]
    with PackedForest.open(scripted, remote=RemoteOptions(retries=3, backoff=0.01, fetch="blocks")) as m:
        np.testing.assert_array_equal(m.predict_proba(X), rf.predict_proba(X))
    Scripted.plan = ["503"] * 4
    with pytest.raises(ServiceUnavailableError, match="HTTP 503 after 2 tries"):
        PackedForest.open(scripted, remote=FAST)
    Scripted.plan = ["ok", "stall", "stall"]
    with PackedForest.open(scripted, remote=RemoteOptions(timeout=0.3, retries=1, concurrency=1)) as m:
        with pytest.raises(ServiceUnavailableError, match="stalled"):
            m.predict(X)
    Scripted.plan = []


def test_object_store_urls_and_bad_options_are_clear(rf_file):
    from frugalml.common.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="names no object"):
        PackedForest.open("s3://bucket-only")
    with pytest.raises(InvalidInputError, match="fetch policy"):
        PackedForest.open(rf_file[1], remote=RemoteOptions(fetch="sometimes"))
    assert coalesce([5, 1, 2, 3]) == [(1, 3), (5, 1)]


def test_cli_predict_and_inspect_url(rf_file, rf, cls_data, tmp_path, capsys):
    from tests.pacset.test_cli import run

    _, url = rf_file
    X = cls_data[0][:5]
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    code, out, err = run(["pacset", "predict", url, str(tmp_path / "x.csv"), "--fetch", "blocks"], capsys)
    assert code in (0, None)
    assert [int(v) for v in out.split()] == list(rf.predict(X))
    assert "requests" in err and "fetch plan: blocks" in err
    code, out, err = run(["pacset", "inspect", url, "--verify"], capsys)
    assert code in (0, None) and "verified" in out and "validator" in out
    code, out, err = run(["pacset", "predict", url + "x", str(tmp_path / "x.csv")], capsys)
    assert code == 2 and "404" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local S3-compatible endpoint (moto's server mode) with a bucket; yields a boto3 client.
    It checks the S3 protocol path (signing, ranges, ETags), not a real region's behaviour."""
    pytest.importorskip("obstore")
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        client.create_bucket(Bucket="models")
        yield client
    server.stop()


def test_s3_object_equal_to_the_local_file_and_replacements_refused(s3, rf, cls_data, tmp_path):
    X = cls_data[0][:30]
    pack(rf, tmp_path / "rf.pacset", bins=2, interleave=1)
    s3.upload_file(str(tmp_path / "rf.pacset"), "models", "dir/rf.pacset")
    url = "s3://models/dir/rf.pacset"
    for fetch in ("blocks", "whole"):
        local, remote = local_and_remote(tmp_path / "rf.pacset", url, X, remote=RemoteOptions(fetch=fetch))
        np.testing.assert_array_equal(local, remote)
    with PackedForest.open(url, remote=RemoteOptions(fetch="blocks")) as model:
        assert model.store.requests == 1  # no HEAD first: the size comes with the header read
        pack(rf, tmp_path / "again.pacset", bins=2, interleave=1)
        s3.upload_file(str(tmp_path / "again.pacset"), "models", "dir/rf.pacset")
        with pytest.raises(CorruptFileError, match="replaced"):
            model.predict(X)
    with pytest.raises(DataNotFoundError, match="s3://models/dir/missing.pacset was not found"):
        PackedForest.open("s3://models/dir/missing.pacset", remote=FAST)


def test_multi_range_requests_and_servers_with_one_range_per_request(served, rf_file, cls_data):
    root, base = served
    shutil.copy(rf_file[0], root / "onerange" / "rf.pacset")
    X = cls_data[0][:3]
    counts = {}
    for where in ("", "onerange/"):
        for per in (1, 64):
            url = f"{base}/{where}rf.pacset"
            with PackedForest.open(
                url, remote=RemoteOptions(fetch="blocks", ranges_per_request=per, concurrency=2)
            ) as m:
                np.testing.assert_array_equal(m.predict_proba(X), np.asarray(rf_file_proba(rf_file[0], X)))
                counts[where, per] = (m.store.requests, m.store.stats.round_trips, m.store.remote.multi_range)
    one, multi = counts["", 1], counts["", 64]
    assert multi[0] < one[0] and multi[2]  # fewer requests for the same rounds
    assert not counts["onerange/", 64][2]  # the whole-file answer was noticed: one range per request since


def rf_file_proba(path, X):
    with PackedForest.open(path) as m:
        return m.predict_proba(X)


def test_multipart_parts_are_cut_by_their_lengths():
    from frugalml.pacset.remote import _multipart

    data = b"xx--B\r\nyyy"  # the boundary inside the data (10 bytes)
    body = (
        b"--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 10-19/100\r\n\r\n"
        + data
        + b"\r\n--B\r\nContent-Range: bytes 50-51/100\r\n\r\nzz\r\n--B--\r\n"
    )
    assert _multipart(body, "B") == [("bytes 10-19/100", data), ("bytes 50-51/100", b"zz")]
    assert _multipart(body[:60], "B") is None


def test_shared_top_comes_with_the_header_read(served, rf, cls_data):
    """A file packed with a shared top: the header's range request brings every tree's top, so
    the walk's first round already starts below them; the pool's connections open meanwhile."""
    root, base = served
    pack(rf, root / "shared.pacset", bins=3, interleave=3, shared_top=True)
    with PackedForest.open(f"{base}/shared.pacset", remote=FAST) as model:
        store = model.store
        assert store.requests == 1 and store.seeded >= 1
        spb = model.model.block_size // model.model.slot_size
        assert np.all(store.block_slot[model.index.root_code // spb] >= 0)  # roots already held
        pool = store.remote._pool.connection_from_url(store.remote._url)
        time.sleep(0.2)
        assert pool.num_connections >= FAST.concurrency - 1  # opened during the header's request
        local = PackedForest.open(root / "shared.pacset")
        X = cls_data[0][:5]
        np.testing.assert_array_equal(model.predict_proba(X), local.predict_proba(X))
        local.close()


def test_readahead_fetches_more_in_no_more_rounds(rf_file, cls_data):
    _, url = rf_file
    x = cls_data[0][:1]
    got = {}
    for k in (0, 4):
        options = RemoteOptions(fetch="blocks", readahead=k, readahead_below=1 << 20, head_bytes=4096)
        with PackedForest.open(url, remote=options) as model:
            got[k] = (model.predict_proba(x), model.store.stats.round_trips, model.store.stats.blocks_fetched)
    np.testing.assert_array_equal(got[0][0], got[4][0])
    assert got[4][1] <= got[0][1] and got[4][2] > got[0][2]
    with pytest.raises(Exception, match="readahead"):
        PackedForest.open(url, remote=RemoteOptions(readahead=-1))
