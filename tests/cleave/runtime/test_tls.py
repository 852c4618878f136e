"""TLS with client certificates: who may connect, under which name, and what is refused."""

import os
import threading

import grpc
import numpy as np
import pytest

from frugalml.cleave.runtime import cleave_runtime_pb2 as pb
from frugalml.cleave.runtime import cleave_runtime_pb2_grpc as pb_grpc
from frugalml.cleave.runtime.client import fetch_status
from frugalml.cleave.runtime.model import TrainConfig
from frugalml.cleave.runtime.protocol import PROTOCOL_VERSION, grpc_options
from frugalml.cleave.runtime.server import ParameterServer, ServerConfig
from frugalml.cleave.runtime.tls import (
    ClientFiles,
    certificate_ids,
    channel,
    issue_credentials,
    make_credentials,
)
from frugalml.cleave.runtime.worker import Worker, WorkerConfig
from frugalml.common.errors import FrugalError, InvalidInputError, ServiceUnavailableError

pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    ours, other = tmp_path_factory.mktemp("ours"), tmp_path_factory.mktemp("other")
    make_credentials(ours, ["w0", "w1"], ["127.0.0.1", "localhost"], days=1)
    make_credentials(other, ["w0"], ["127.0.0.1"], days=1)  # another CA, same names
    return ours, other


def _files(folder, name):
    return ClientFiles(str(folder / "ca.pem"), str(folder / f"{name}.pem"), str(folder / f"{name}.key"))


@pytest.fixture
def server(creds):
    ours, _ = creds
    config = ServerConfig(
        train=TrainConfig(steps=2),
        port=0,
        tls_cert=str(ours / "server.pem"),
        tls_key=str(ours / "server.key"),
        tls_ca=str(ours / "ca.pem"),
        linger_s=0.5,
    )
    ps = ParameterServer(config)
    ps.start()
    yield ps
    ps.stop()


def _register(address, files, name):
    with channel(address, files, grpc_options()) as ch:
        profile = pb.Profile(memory_bytes=1 << 30)
        request = pb.RegisterRequest(protocol_version=PROTOCOL_VERSION, name=name, profile=profile)
        return pb_grpc.CleaveStub(ch).Register(request, timeout=5, wait_for_ready=False)


def test_credentials_are_written_once_with_private_keys(creds, tmp_path):
    ours, _ = creds
    assert {p.name for p in ours.iterdir()} >= {"ca.pem", "server.key", "w0.pem", "w1.key", "status.pem"}
    assert all(os.stat(p).st_mode & 0o077 == 0 for p in ours.glob("*.key"))
    with pytest.raises(InvalidInputError, match="already holds a CA"):
        make_credentials(ours, ["w0"], ["127.0.0.1"])
    with pytest.raises(InvalidInputError, match="worker names"):
        make_credentials(tmp_path, ["status"], ["127.0.0.1"])


def test_training_with_tls_and_every_intruder_refused(server, creds):
    ours, other = creds
    address = server.address
    # a plain-text client, a certificate from another CA: no connection at all
    with pytest.raises(ServiceUnavailableError, match="needs --ca"):
        fetch_status(address, timeout=2)
    with pytest.raises(ServiceUnavailableError):
        fetch_status(address, timeout=2, tls=_files(other, "w0"))
    # a real credential used under another worker's name
    with pytest.raises(grpc.RpcError) as exc:
        _register(address, _files(ours, "w1"), "w0")
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # status with a credential answers; the worker trains with its own
    assert fetch_status(address, timeout=5, tls=_files(ours, "status"))["state"] == "waiting"
    trainer = threading.Thread(target=server.train)
    trainer.start()
    summary = Worker(WorkerConfig(address, "w0", tls=_files(ours, "w0"), connect_timeout_s=10)).run()
    trainer.join(60)
    assert len(server.losses) == 2 and summary.tiles > 0


def test_a_credential_cannot_act_for_another_worker(server, creds):
    ours, _ = creds
    victim = _register(server.address, _files(ours, "w0"), "w0").worker_id
    with channel(server.address, _files(ours, "w1"), grpc_options()) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            list(pb_grpc.CleaveStub(ch).PullTask(pb.PullRequest(worker_id=victim, wait_s=0), timeout=5))
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_plain_text_off_loopback_needs_insecure():
    with pytest.raises(InvalidInputError, match="--insecure"):
        ParameterServer(ServerConfig(host="0.0.0.0", port=0)).start()
    with pytest.raises(InvalidInputError, match="go together"):
        ParameterServer(ServerConfig(port=0, tls_cert="x.pem")).start()


def test_a_worker_whose_certificate_names_someone_else_stops_with_one_line(server, creds):
    ours, _ = creds
    with pytest.raises(FrugalError, match="refused this credential"):
        Worker(WorkerConfig(server.address, "w0", tls=_files(ours, "w1"), connect_timeout_s=10)).run()


def test_an_oversized_push_is_cut_off_at_its_tile_size():
    from frugalml.cleave.runtime.protocol import meta_of

    ps = ParameterServer(ServerConfig(train=TrainConfig(steps=1), port=0, linger_s=0.1))
    ps.start()
    threading.Thread(target=ps.train, daemon=True).start()
    try:
        with channel(ps.address, None, grpc_options()) as ch:
            stub = pb_grpc.CleaveStub(ch)
            profile = pb.Profile(memory_bytes=1 << 30)
            me = stub.Register(
                pb.RegisterRequest(protocol_version=PROTOCOL_VERSION, name="big", profile=profile)
            )
            chunks = list(stub.PullTask(pb.PullRequest(worker_id=me.worker_id, wait_s=5), timeout=10))
            header = chunks[0].header
            meta = meta_of(np.zeros((4096, 4096), np.float32))  # claims a huge tile
            result = pb.ResultHeader(worker_id=me.worker_id, task_id=header.task_id, c=meta)

            def flood():
                yield pb.ResultChunk(header=result, data=b"\0" * (1 << 20))
                for _ in range(63):
                    yield pb.ResultChunk(data=b"\0" * (1 << 20))

            with pytest.raises(grpc.RpcError) as exc:
                stub.PushResult(flood(), timeout=10)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "larger than its tile" in exc.value.details()
    finally:
        ps.stop()


def test_a_revoked_credential_is_cut_off_without_a_restart(creds, tmp_path):
    ours, _ = creds
    revoked = tmp_path / "revoked.txt"
    revoked.write_text("# revoked worker credentials\n")
    config = ServerConfig(
        train=TrainConfig(steps=1),
        port=0,
        tls_cert=str(ours / "server.pem"),
        tls_key=str(ours / "server.key"),
        tls_ca=str(ours / "ca.pem"),
        revoked=str(revoked),
        linger_s=0.1,
    )
    ps = ParameterServer(config)
    ps.start()
    ps.revocations.every = 0.0  # re-read at every call (the default: at most every 0.5 s)
    try:
        w0 = _register(ps.address, _files(ours, "w0"), "w0").worker_id
        _register(ps.address, _files(ours, "w1"), "w1")
        revoked.write_text("w0  # lost phone\n")
        with channel(ps.address, _files(ours, "w0"), grpc_options()) as ch:
            with pytest.raises(grpc.RpcError) as exc:
                list(pb_grpc.CleaveStub(ch).PullTask(pb.PullRequest(worker_id=w0, wait_s=0), timeout=5))
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in exc.value.details()
        with pytest.raises(grpc.RpcError) as exc:
            _register(ps.address, _files(ours, "w0"), "w0")
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        states = {
            w["name"]: w["state"] for w in fetch_status(ps.address, tls=_files(ours, "status"))["workers"]
        }
        assert states == {"w0": "revoked", "w1": "alive"}
        revoked.write_text("")  # taken back: the credential works again
        assert _register(ps.address, _files(ours, "w0"), "w0").worker_id
        revoked.unlink()  # an unreadable list keeps the last one
        assert _register(ps.address, _files(ours, "w0"), "w0").worker_id
    finally:
        ps.stop()
    with pytest.raises(InvalidInputError, match="needs TLS"):
        ParameterServer(ServerConfig(port=0, revoked=str(revoked)))
    with pytest.raises(InvalidInputError, match="cannot read the revocation list"):
        ParameterServer(
            ServerConfig(
                port=0,
                revoked=str(revoked),
                **{k: getattr(config, k) for k in ("tls_cert", "tls_key", "tls_ca")},
            )
        )


def _files_of(folder, issued):
    return ClientFiles(str(folder / "ca.pem"), str(issued.cert), str(issued.key))


def test_a_credential_is_rotated_and_the_old_one_revoked_by_serial_without_a_restart(tmp_path, caplog):
    folder = tmp_path / "creds"
    folder.mkdir()
    make_credentials(folder, ["w0", "w1"], ["127.0.0.1"], days=1)
    old_key = (folder / "w0.key").read_bytes()
    revoked = tmp_path / "revoked.txt"
    revoked.write_text("")
    ps = ParameterServer(
        ServerConfig(
            train=TrainConfig(steps=1),
            port=0,
            tls_cert=str(folder / "server.pem"),
            tls_key=str(folder / "server.key"),
            tls_ca=str(folder / "ca.pem"),
            revoked=str(revoked),
            linger_s=0.1,
        )
    )
    ps.start()
    ps.revocations.every = 0.0
    try:
        old = _files(folder, "w0")
        old_id = _register(ps.address, old, "w0").worker_id
        (new,) = issue_credentials(folder, ["w0"], days=1)  # while training runs; nothing overwritten
        assert new.cert.name == "w0.2.pem" and (folder / "w0.key").read_bytes() == old_key
        assert oct(new.key.stat().st_mode & 0o777) == "0o600"
        new_id = _register(ps.address, _files_of(folder, new), "w0").worker_id
        with channel(ps.address, _files_of(folder, new), grpc_options()) as ch:  # bound to its certificate
            with pytest.raises(grpc.RpcError) as exc:
                list(pb_grpc.CleaveStub(ch).PullTask(pb.PullRequest(worker_id=old_id, wait_s=0), timeout=5))
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        old_serial = certificate_ids((folder / "w0.pem").read_bytes())[0]
        revoked.write_text(f"{old_serial}  # w0's old phone\n")
        with caplog.at_level("WARNING", logger="frugalml"):
            with pytest.raises(grpc.RpcError) as exc:
                _register(ps.address, old, "w0")
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in exc.value.details()
        assert sum("revoked credential" in r.getMessage() for r in caplog.records) == 1
        with channel(ps.address, _files_of(folder, new), grpc_options()) as ch:
            list(pb_grpc.CleaveStub(ch).PullTask(pb.PullRequest(worker_id=new_id, wait_s=0), timeout=5))
        assert _register(ps.address, _files_of(folder, new), "w0").worker_id  # the new one still works
        by_state = sorted(
            w["state"] for w in fetch_status(ps.address, tls=_files(folder, "status"))["workers"]
        )
        assert by_state == ["alive", "alive", "revoked"], by_state
        revoked.write_text(f"sha256:{new.fingerprint}\n")  # a fingerprint names one certificate too
        with pytest.raises(grpc.RpcError):
            _register(ps.address, _files_of(folder, new), "w0")
        assert _register(ps.address, old, "w0").worker_id
    finally:
        ps.stop()
    with pytest.raises(InvalidInputError, match="holds no CA"):
        issue_credentials(tmp_path, ["w0"])


def test_an_expired_client_certificate_is_refused_in_one_line(tmp_path):
    import datetime

    folder = tmp_path / "creds"
    folder.mkdir()
    make_credentials(folder, ["w0"], ["127.0.0.1"], days=1)
    ended = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    (expired,) = issue_credentials(folder, ["w0"], not_after=ended)
    files = _files_of(folder, expired)
    for attempt in (
        lambda: Worker(WorkerConfig("127.0.0.1:1", "w0", tls=files)),
        lambda: fetch_status("127.0.0.1:1", tls=files),
    ):
        with pytest.raises(InvalidInputError) as exc:
            attempt()
        assert "expired on" in str(exc.value) and "\n" not in str(exc.value)


SERVE = """
import sys, time
from frugalml.cleave.runtime.model import TrainConfig
from frugalml.cleave.runtime.server import ParameterServer, ServerConfig
d = sys.argv[1]
ps = ParameterServer(ServerConfig(train=TrainConfig(steps=1), port=0, tls_cert=d + "/server.pem",
                                  tls_key=d + "/server.key", tls_ca=d + "/ca.pem"))
print(ps.start(), flush=True)
sys.stdin.read()
ps.stop()
"""


def test_every_refused_handshake_is_one_line_on_the_server(tmp_path):
    """A plain-text client, a certificate from another CA and an expired certificate (presented
    anyway, skipping the worker's own check) never reach the service: each fails the TLS handshake,
    which the server's gRPC core reports in one line on stderr (at its default verbosity; the
    server warns at start when GRPC_VERBOSITY hides it)."""
    import datetime
    import subprocess
    import sys

    ours, other = tmp_path / "ours", tmp_path / "other"
    ours.mkdir(), other.mkdir()
    make_credentials(ours, ["w0"], ["127.0.0.1"], days=1)
    make_credentials(other, ["w0"], ["127.0.0.1"], days=1)
    ended = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    (expired,) = issue_credentials(ours, ["w0"], not_after=ended)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}  # the default verbosity
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(ours)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    ca = (ours / "ca.pem").read_bytes()
    clients = {
        "plain text": lambda address: grpc.insecure_channel(address),
        "another CA": lambda address: grpc.secure_channel(
            address,
            grpc.ssl_channel_credentials(
                ca, (other / "w0.key").read_bytes(), (other / "w0.pem").read_bytes()
            ),
        ),
        "expired": lambda address: grpc.secure_channel(
            address, grpc.ssl_channel_credentials(ca, expired.key.read_bytes(), expired.cert.read_bytes())
        ),
    }
    try:
        address = server.stdout.readline().strip()
        for make in clients.values():
            with make(address) as ch:
                with pytest.raises(grpc.RpcError) as exc:
                    pb_grpc.CleaveStub(ch).Status(pb.StatusRequest(), timeout=5)
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        _, err = server.communicate("", timeout=30)
    lines = [line for line in err.splitlines() if "Handshake failed" in line]
    assert len(lines) == 3, err
    assert "WRONG_VERSION_NUMBER" in lines[0]  # a plain-text client: its bytes are no TLS record
    assert "certificate signature failure" in lines[1] or "CERTIFICATE_VERIFY_FAILED" in lines[1]
    assert "expired" in lines[2]


def test_a_verbosity_that_hides_refused_handshakes_is_warned_about(creds, monkeypatch, caplog):
    ours, _ = creds
    monkeypatch.setenv("GRPC_VERBOSITY", "error")
    tls = {
        k: str(ours / f)
        for k, f in (("tls_cert", "server.pem"), ("tls_key", "server.key"), ("tls_ca", "ca.pem"))
    }
    ps = ParameterServer(ServerConfig(train=TrainConfig(steps=1), port=0, linger_s=0, **tls))
    with caplog.at_level("WARNING", logger="frugalml.cleave.runtime"):
        ps.start()
    ps.stop()
    lines = [r.getMessage() for r in caplog.records if "GRPC_VERBOSITY" in r.getMessage()]
    assert len(lines) == 1 and "GRPC_VERBOSITY=ERROR hides" in lines[0]


def test_certs_add_on_the_command_line(capsys, tmp_path):
    from frugalml.cli import main

    def run(*argv):
        with pytest.raises(SystemExit) as exc:
            main(["cleave", "certs", "-o", str(tmp_path), *argv])
        out = capsys.readouterr()
        return exc.value.code, out.out, out.err

    assert run("--workers", "w0")[0] == 0
    code, out, _ = run("--add", "--workers", "w0,w1")
    assert code == 0 and "w0: w0.2.pem w0.2.key serial:" in out and "w1: w1.pem w1.key" in out
    assert "sha256:" in out and (tmp_path / "w0.pem").is_file()
    code, _, err = run("--workers", "w0")  # a second CA would overwrite: refused
    assert code == 2 and "already holds a CA" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("--add", "--workers", "bad name")
    assert code == 2 and len(err.strip().splitlines()) == 1
