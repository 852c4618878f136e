"""Local pool workers die with their parent, even when it is killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from frugalml.composer.evaluator import LocalExecutor
from frugalml.composer.lifeline import die_with_parent

PARENT = """
import json, multiprocessing.resource_tracker as rt, os, sys, threading, time
from frugalml.composer.evaluator import LocalExecutor
from frugalml.composer.bench.bo_ablation import worker_pool

class Ablation:  # the BO ablation's pool, with the executor's attribute names
    def __init__(self):
        self._pool = worker_pool(2)
    def map(self, fn, jobs):
        futures = [self._pool.submit(fn, j) for j in jobs]
        yield futures[0].result()

ex = Ablation() if sys.argv[1:] == ["ablation"] else LocalExecutor(2)

def armed(pid):  # the lifeline's watchdog thread runs beside the main thread
    try:
        return len(os.listdir(f"/proc/{pid}/task")) >= 2
    except FileNotFoundError:
        return False

def report():
    deadline = time.time() + 120
    while ex._pool is None or len(ex._pool._processes) < 2 or not all(map(armed, ex._pool._processes)):
        assert time.time() < deadline, "workers never started"
        time.sleep(0.1)
    pids = {"workers": list(ex._pool._processes), "tracker": rt._resource_tracker._pid}
    print(json.dumps(pids), flush=True)

threading.Thread(target=report, daemon=True).start()
next(ex.map(time.sleep, [120, 120]))  # the pool starts in the main thread
"""


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its new parent to reap it counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("pool", ["evaluator", "ablation"])
def test_workers_and_resource_tracker_die_when_the_parent_is_sigkilled(pool):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, pool], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        assert line, f"the parent exited early (rc {parent.poll()})"
        pids = json.loads(line)
        children = [*pids["workers"], pids["tracker"]]
        assert all(_alive(p) for p in children)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in children if _alive(p)]
    for p in left:  # clean up before failing
        os.kill(p, signal.SIGKILL)
    assert not left, f"processes {left} outlived their SIGKILLed parent ({pids})"


def test_die_with_parent_keeps_a_worker_whose_parent_lives():
    die_with_parent(os.getppid(), use_prctl=False)  # arms only the watchdog thread; we live on
    time.sleep(0.6)
    assert LocalExecutor(1).workers == 1
