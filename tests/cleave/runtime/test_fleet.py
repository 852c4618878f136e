"""Emulated edge hosts in network namespaces: lifecycle, nothing left behind, and exact training.

Only namespaces, links and cgroups these tests create (named with a random prefix) are touched;
each test removes them in its teardown. Where namespaces cannot be made the tests skip, saying why.
"""

import json
import secrets
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from frugalml.cleave.runtime import fleet as fleet_mod
from frugalml.cleave.runtime.fleet import (
    Fleet,
    FleetError,
    Host,
    fleet_down,
    hosts_from_pool,
    namespaces_unavailable,
    state_path,
)
from frugalml.cleave.runtime.model import TrainConfig, train_single_process

WHY = namespaces_unavailable()
needs_namespaces = pytest.mark.skipif(WHY is not None, reason=f"network namespaces unavailable: {WHY}")
pytestmark = [pytest.mark.net, pytest.mark.timeout(300)]


@pytest.fixture
def prefix():
    name = "t" + secrets.token_hex(2)
    yield name
    if state_path(name).exists():
        fleet_down(name, expect=True)
    assert _leftovers(name) == []


def _leftovers(prefix: str) -> list[str]:
    found = [] if not state_path(prefix).exists() else [str(state_path(prefix))]
    if WHY is None:
        found += [
            ns.split()[0] for ns in fleet_mod._sh("ip", "netns", "list").splitlines() if ns.startswith(prefix)
        ]
        found += [line for line in fleet_mod._sh("ip", "-o", "link").splitlines() if f" {prefix}p" in line]
    return found


def _hosts(n: int) -> list[Host]:
    return [Host(f"w{i}", "laptop", 20e6, 5e6, 0.01, 1e11, 1 << 30) for i in range(n)]


@needs_namespaces
def test_up_twice_and_down_twice_are_refused_and_down_removes_everything(prefix):
    fleet = Fleet(_hosts(3), prefix=prefix, cpus=0.3)
    assert fleet.up() == "namespaces" and "tc tbf" in fleet.describe()
    made = _leftovers(prefix)
    assert len([x for x in made if x.startswith(f"{prefix}-")]) == 4  # the server's and 3 workers'
    qdiscs = fleet_mod._sh("tc", "-n", fleet.namespace(0), "qdisc", "show", "dev", "eth0")
    assert "tbf" in qdiscs and "rate 40Mbit" in qdiscs  # the 5 MB/s uplink, on the worker's side
    assert "rate 160Mbit" in fleet_mod._sh(
        "tc", "-n", fleet.ps_namespace, "qdisc", "show", "dev", f"{prefix}p0"
    )
    with pytest.raises(FleetError, match="already up"):
        Fleet(_hosts(1), prefix=prefix).up()
    fleet.down()
    assert _leftovers(prefix) == []
    with pytest.raises(FleetError, match="no fleet"):
        fleet_down(prefix)
    down = subprocess.run(
        [sys.executable, "-m", "frugalml.cleave.runtime", "fleet", "down", "--prefix", prefix],
        capture_output=True,
        text=True,
    )
    assert down.returncode == 2 and "no fleet" in down.stderr and len(down.stderr.strip().splitlines()) == 1


@needs_namespaces
def test_a_failure_half_way_removes_what_was_made(prefix, monkeypatch):
    real = fleet_mod._sh

    def failing(*args, check=True):
        if args[:4] == ("ip", "link", "add", f"{prefix}p2"):
            raise FleetError("injected failure")
        return real(*args, check=check)

    monkeypatch.setattr(fleet_mod, "_sh", failing)
    with pytest.raises(FleetError, match="injected"):
        Fleet(_hosts(4), prefix=prefix).up()
    monkeypatch.setattr(fleet_mod, "_sh", real)
    assert _leftovers(prefix) == []


@needs_namespaces
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_kill_removes_everything(prefix, tmp_path, stop):
    pool = tmp_path / "pool.yaml"
    pool.write_text("counts: {laptop: 2}\njitter: 0\n")
    command = [sys.executable, "-m", "frugalml.cleave.runtime", "fleet", "up", "-n", "2", "--pool", str(pool)]
    process = subprocess.Popen(
        [*command, "--prefix", prefix, "--steps", "500"],
        stderr=subprocess.PIPE,
        # Ctrl-C reaches it as in a terminal, even when the tests run where SIGINT is ignored (nohup, &)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    end = time.monotonic() + 120
    while time.monotonic() < end:
        path = state_path(prefix)
        if path.exists() and len(json.loads(path.read_text() or "{}").get("pids", [])) >= 3:
            break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the fleet never started its server and workers")
    process.send_signal(stop)
    assert process.wait(timeout=60) != 0
    assert _leftovers(prefix) == []


def test_without_namespaces_workers_pace_their_own_links(prefix):
    fleet = Fleet(_hosts(2), prefix=prefix, namespaces=False)
    try:
        assert fleet.up() == "token-bucket" and "token buckets" in fleet.describe()
    finally:
        fleet.down()
    hosts = hosts_from_pool(8, None, seed=1)
    assert len(hosts) == 8 and all(h.down > h.up > 0 for h in hosts)


@needs_namespaces
@pytest.mark.slow
def test_planned_training_on_the_fleet_equals_one_process_despite_a_kill_and_a_cheat(prefix, tmp_path):
    from frugalml.cleave.cli import app  # noqa: F401  (the plan command's module imports cleanly)
    from frugalml.cleave.devices import make_pool
    from frugalml.cleave.planfile import executable_plan, write_plan
    from frugalml.cleave.validate import plan_for

    steps = 12
    counts = {"laptop": 2, "phone-flagship": 2}
    pool = make_pool(counts=counts, jitter=0)
    plan_path = tmp_path / "plan.json"
    write_plan(plan_path, executable_plan(plan_for(pool), "float32"))
    hosts = [
        Host(f"w{i}", cls, 4e6, 1e6, 0.0, 1e11, 1 << 30)
        for i, cls in enumerate(["laptop", "laptop", "phone-flagship", "phone-flagship"])
    ]
    with Fleet(hosts, prefix=prefix, cpus=1.0) as fleet:
        fleet.up()
        fleet.start_server(
            port=50051, steps=steps, min_workers=4, plan=str(plan_path), metrics=tmp_path / "m.json"
        )
        fleet.start_workers(per_worker={"w1": {"corrupt_every": 3}, "w2": {"corrupt_every": 3}})
        victim = fleet.workers["w0"]  # a laptop: the plan gives laptops tiles of every GEMM
        end = time.monotonic() + 200
        while time.monotonic() < end and fleet.status()["step"] < 2:
            time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        assert fleet.wait_server(timeout=240) == 0
        link = fleet.counters()
    metrics = json.loads((tmp_path / "m.json").read_text())
    reference = train_single_process(TrainConfig(steps=steps))
    np.testing.assert_allclose(metrics["losses"], reference, rtol=1e-5)
    states = {w["name"]: w["state"] for w in metrics["workers"]}
    assert states["w0"] == "lost" and states["w1"] == "excluded" and states["w3"] == "alive"
    assert "pulling" in metrics["plan"]
    assert all(rx > 0 and tx > 0 for rx, tx in link.values())
