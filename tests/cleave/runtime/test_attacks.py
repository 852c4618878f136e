"""Each attack on the parameter server, replayed while two honest workers train: the losses match
single-process training within 1e-5 relative, no honest worker is excluded, status answers."""

import threading
import time

import grpc
import numpy as np
import pytest

from frugalml.cleave.runtime import cleave_runtime_pb2 as pb
from frugalml.cleave.runtime import cleave_runtime_pb2_grpc as pb_grpc
from frugalml.cleave.runtime.client import fetch_status
from frugalml.cleave.runtime.model import TrainConfig, train_single_process
from frugalml.cleave.runtime.protocol import PROTOCOL_VERSION, grpc_options, meta_of, to_bytes
from frugalml.cleave.runtime.scheduler import SchedulerConfig
from frugalml.cleave.runtime.server import ParameterServer, ServerConfig
from frugalml.cleave.runtime.tls import ClientFiles, channel
from frugalml.cleave.runtime.verify import TOLERANCE
from frugalml.cleave.runtime.worker import Worker, WorkerConfig
from frugalml.common.errors import FrugalError, ServiceUnavailableError

pytestmark = [pytest.mark.net, pytest.mark.timeout(120)]
STEPS = 3
HONEST = ("w0", "w1")


@pytest.fixture(scope="module")
def reference_losses():
    return train_single_process(TrainConfig(steps=STEPS))


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    pytest.importorskip("cryptography")
    from frugalml.cleave.runtime.tls import make_credentials

    ours, other = tmp_path_factory.mktemp("ours"), tmp_path_factory.mktemp("other")
    make_credentials(ours, [*HONEST, "mallory"], ["127.0.0.1", "localhost"], days=1)
    make_credentials(other, ["w0", "mallory"], ["127.0.0.1"], days=1)  # another CA, same names
    return ours, other


def _files(folder, name):
    if folder is None:
        return None
    return ClientFiles(str(folder / "ca.pem"), str(folder / f"{name}.pem"), str(folder / f"{name}.key"))


class Tamperer(Worker):
    """A worker that registers honestly and changes every result it returns with ``tamper``."""

    def __init__(self, config, tamper):
        super().__init__(config)
        self.tamper = tamper

    def _push(self, task_id, c):
        super()._push(task_id, self.tamper(task_id, c))


def _orthogonal_to_guessed_vector(task_id, c):
    """The old attack: Freivalds' vector was ``default_rng([seed, task_id, 1])``, both known to workers;
    an error orthogonal to it passed every check."""
    r = np.random.default_rng([0, task_id, 1]).standard_normal(c.shape[1])
    error = np.random.default_rng(task_id).standard_normal(c.shape[1])
    error -= (error @ r) / (r @ r) * r
    c = c.copy()
    c[0] += (error * (1.0 + np.abs(c).max())).astype(c.dtype)
    return c


def _huge(task_id, c):
    return np.full_like(c, 1e30)


def _run_tamperer(tamper, name="mallory"):
    def attack(address, files):
        try:
            Tamperer(WorkerConfig(address, name, tls=files("mallory"), connect_timeout_s=10), tamper).run()
        except FrugalError as exc:
            return str(exc)
        return "finished"

    return attack


def _reregister(address, files):
    """Caught once (a wrong tile), then registering again and again under the same name."""
    first = _run_tamperer(lambda task_id, c: c + 1.0)(address, files)
    refusals = []
    for _ in range(3):
        try:
            Worker(WorkerConfig(address, "mallory", tls=files("mallory"), connect_timeout_s=10)).run()
        except FrugalError as exc:
            refusals.append(str(exc))
    assert len(refusals) == 3 and all("excluded" in r for r in refusals), refusals
    return first


def _push_in_other_names(address, files):
    """Registers, reads status for the honest workers' ids, then pushes all-zero tiles in their names
    and in guessed ids (sequential and random) for every plausible task id."""
    with channel(address, files("mallory"), grpc_options()) as ch:
        stub = pb_grpc.CleaveStub(ch)
        profile = pb.Profile(memory_bytes=1 << 30)
        me = stub.Register(
            pb.RegisterRequest(protocol_version=PROTOCOL_VERSION, name="mallory", profile=profile)
        )
        seen = {int(w.worker_id) for w in stub.Status(pb.StatusRequest()).workers}
        assert seen <= {0}, "status must not reveal worker ids"
        rng = np.random.default_rng(1)
        guesses = [*range(1, 6), *rng.integers(1, 2**63 - 1, size=5).tolist()]
        refused = 0
        zeros = np.zeros((4, 4), np.float32)
        for worker_id in guesses:
            if worker_id == me.worker_id:
                continue
            for task_id in range(1, 40):
                header = pb.ResultHeader(worker_id=worker_id, task_id=task_id, c=meta_of(zeros))
                try:
                    stub.PushResult(iter([pb.ResultChunk(header=header, data=to_bytes(zeros))]), timeout=5)
                except grpc.RpcError as exc:
                    refused += exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED)
        stub.Leave(pb.LeaveRequest(worker_id=me.worker_id), timeout=5)
    return f"{refused} pushes refused"


def _outsiders(address, files):
    """With TLS on: a plain-text client and one with another CA's certificate get no connection."""
    outcomes = []
    for tls in (None, files("mallory", other_ca=True)):
        try:
            fetch_status(address, timeout=1, tls=tls)
            outcomes.append("answered")
        except ServiceUnavailableError:
            outcomes.append("refused")
        try:
            Worker(WorkerConfig(address, "mallory", tls=tls, connect_timeout_s=1)).run()
            outcomes.append("trained")
        except FrugalError:
            outcomes.append("refused")
    assert outcomes == ["refused"] * 4, outcomes
    return "refused"


ATTACKS = {
    # name: (attack, the attacker takes part in training, server options)
    "guessed-vector": (_run_tamperer(_orthogonal_to_guessed_vector), True, {}),
    "huge-tiles": (_run_tamperer(_huge), True, {"verify_rate": 0.5, "trusted_workers": True}),
    "reregister-after-exclusion": (_reregister, True, {}),
    "push-in-other-names": (_push_in_other_names, False, {}),
    "outsiders-against-tls": (_outsiders, False, {"tls": True}),
}


def _train_under_attack(name, creds, attacks=ATTACKS):
    attack, joins, options = attacks[name]
    options = dict(options)
    tls = options.pop("tls", False)
    ours, other = creds if tls else (None, None)

    def files(who, other_ca=False):
        return _files(other if other_ca else ours, who)

    tls_options = {}
    if tls:
        tls_options = {"tls_cert": str(ours / "server.pem"), "tls_key": str(ours / "server.key")}
        tls_options["tls_ca"] = str(ours / "ca.pem")
    config = ServerConfig(
        train=TrainConfig(steps=STEPS),
        port=0,
        min_workers=len(HONEST) + joins,
        linger_s=1.0,
        scheduler=SchedulerConfig(**options),
        **tls_options,
    )
    ps = ParameterServer(config)
    address = ps.start()
    results: dict = {}
    trainer = threading.Thread(target=lambda: results.update(metrics=ps.train()))
    honest = [
        threading.Thread(target=Worker(WorkerConfig(address, n, tls=files(n), connect_timeout_s=10)).run)
        for n in HONEST
    ]
    attacker = threading.Thread(target=lambda: results.update(attack=attack(address, files)))
    try:
        trainer.start()
        attacker.start()
        if not joins:  # the attack runs while nobody trains yet and while training starts
            time.sleep(0.2)
        for t in honest:
            t.start()
        answered = 0
        while trainer.is_alive():
            answered += fetch_status(address, timeout=5, tls=files("status"))["step"] >= 0
            trainer.join(0.2)
        attacker.join(60)
        for t in honest:
            t.join(30)
    finally:
        ps.stop()
    return results, answered


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_training_under_attack_matches_one_process(attack, creds, reference_losses):
    results, answered = _train_under_attack(attack, creds)
    np.testing.assert_allclose(results["metrics"]["losses"], reference_losses, rtol=1e-5)
    states = {w["name"]: w["state"] for w in results["metrics"]["workers"]}
    assert all(states[n] != "excluded" for n in HONEST), states
    assert answered >= 1 and "attack" in results
    if ATTACKS[attack][1]:  # the attacker took tiles: it was caught
        assert states["mallory"] == "excluded" and "excluded" in results["attack"], results["attack"]


class UnderTolerance(Worker):
    """Adds to every tile the largest error Freivalds' check lets through on (almost) every draw:
    entries ``TOLERANCE * eps / 6 * ||A_i|| ||B_j||`` with random signs (a row is caught only when
    a Gaussian exceeds 6 sigma)."""

    def _work_once(self):
        original = Worker._push

        def push(task_id, c):
            a, b = self.operands
            scale = np.linalg.norm(a.astype(np.float64), axis=1)[:, None]
            scale = scale * np.linalg.norm(b.astype(np.float64), axis=0)[None, :]
            signs = np.random.default_rng(task_id).choice([-1.0, 1.0], size=c.shape)
            delta = TOLERANCE * np.finfo(c.dtype).eps / 6  # at / 1 the attacker is caught at once
            original(self, task_id, (c + delta * scale * signs).astype(c.dtype))

        self._push = push
        super()._work_once()


def _under_tolerance(address, files):
    import frugalml.cleave.runtime.worker as worker_module

    real = worker_module.from_bytes
    seen: list = []
    me = threading.current_thread()

    def recording(meta, data):  # the attacker's own copy of the operands (a, then b)
        out = real(meta, data)
        if threading.current_thread() is me:
            seen.append(out)
        return out

    worker_module.from_bytes = recording
    attacker = UnderTolerance(WorkerConfig(address, "mallory", tls=files("mallory"), connect_timeout_s=10))
    type(attacker).operands = property(lambda self: (seen[-2], seen[-1]))
    try:
        attacker.run()
    except FrugalError as exc:
        return str(exc)
    finally:
        worker_module.from_bytes = real
    return f"finished: {attacker.summary.tiles} tiles accepted, {attacker.summary.rejected} rejected"


def test_errors_just_under_freivalds_tolerance_on_every_tile_leave_training_exact(creds, reference_losses):
    attacks = {"under-tolerance": (_under_tolerance, True, {})}
    results, _ = _train_under_attack("under-tolerance", creds, attacks)
    np.testing.assert_allclose(results["metrics"]["losses"], reference_losses, rtol=1e-5)
    states = {w["name"]: w["state"] for w in results["metrics"]["workers"]}
    assert all(states[n] != "excluded" for n in HONEST), states
    assert results["attack"].startswith("finished") and states["mallory"] != "excluded", results
    assert int(results["attack"].split()[1]) > 0, results["attack"]  # its wrong tiles were used
