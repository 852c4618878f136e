"""A PS and workers as real local processes (for the demo, tests and benchmarks), always cleaned up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from frugalml.common.errors import ServiceUnavailableError

_ENV_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def wait_all(processes: dict[str, subprocess.Popen], timeout: float) -> dict[str, int]:
    """Exit codes of ``processes`` by name, killing those still running after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    codes = {}
    for name, process in processes.items():
        try:
            codes[name] = process.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            codes[name] = process.wait()
    return codes


class LocalCluster:
    """Start ``python -m frugalml.cleave.runtime serve|worker`` processes; kill them all on exit.

    Examples
    --------
    >>> with LocalCluster() as cluster:   # doctest: +SKIP
    ...     cluster.start_server(steps=5, min_workers=2)
    ...     cluster.start_worker("phone-1"); cluster.start_worker("phone-2")
    ...     metrics = cluster.wait_server(timeout=60)
    """

    def __init__(self, workdir: str | Path | None = None, quiet: bool = True):
        self._tmp = tempfile.TemporaryDirectory(prefix="cleave-") if workdir is None else None
        self.workdir = Path(workdir or self._tmp.name)
        self.quiet = quiet
        self.server: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.address = ""
        self.metrics_path = self.workdir / "metrics.json"

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        env = {**os.environ, **_ENV_THREADS}
        log = open(self.workdir / log_name, "wb")
        command = [sys.executable, "-m", "frugalml.cleave.runtime", *args]
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def start_server(self, *, timeout: float = 60.0, **options) -> str:
        """Start a PS on a free port with ``options`` as ``--flag value``; returns ``host:port``."""
        address_file = self.workdir / "address"
        address_file.unlink(missing_ok=True)
        options = {
            "host": "127.0.0.1",
            "port": 0,
            "metrics": str(self.metrics_path),
            "address_file": str(address_file),
            **options,
        }
        quiet = ["--quiet"] if self.quiet else []
        self.server = self._spawn(["serve", *_flags(options), *quiet], "server.log")
        end = time.monotonic() + timeout
        while not address_file.exists():
            if self.server.poll() is not None or time.monotonic() > end:
                raise ServiceUnavailableError(
                    f"the parameter server did not start: {self.log('server')[-2000:]}"
                )
            time.sleep(0.05)
        self.address = address_file.read_text()
        return self.address

    def start_worker(self, name: str, server: str | None = None, **options) -> subprocess.Popen:
        """Start a worker process named ``name`` pointing at ``server`` (default: the running PS)."""
        args = ["worker", "--server", server or self.address, "--name", name, *_flags(options)]
        self.workers[name] = self._spawn(args + (["--quiet"] if self.quiet else []), f"worker-{name}.log")
        return self.workers[name]

    def kill_worker(self, name: str) -> float:
        """SIGKILL a worker; returns the wall-clock time of the kill."""
        process = self.workers[name]
        moment = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait()
        return moment

    def kill_while_holding_a_tile(self, name: str, after_step: int, timeout: float) -> tuple[float, dict]:
        """SIGKILL worker ``name`` once ``after_step`` steps are done, at a moment it holds a tile.

        The worker is paused (SIGSTOP) while the PS is asked, so the tile it is seen holding is
        still in flight when it dies: a kill in the middle of a step, by construction. Returns the
        kill's wall-clock time and the PS status just before it.
        """
        from frugalml.cleave.runtime.client import fetch_status

        process = self.workers[name]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            process.send_signal(signal.SIGSTOP)
            status = fetch_status(self.address)
            worker = next((w for w in status["workers"] if w["name"] == name), None)
            if status["step"] >= after_step and worker is not None and worker["in_flight"] > 0:
                return self.kill_worker(name), status
            process.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        raise ServiceUnavailableError(f"worker {name} never held a tile after step {after_step}")

    def kill_server(self) -> float:
        moment = time.time()
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGKILL)
            self.server.wait()
        return moment

    def wait_server(self, timeout: float) -> dict:
        """Wait for the PS to finish training; returns its metrics."""
        try:
            code = self.server.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ServiceUnavailableError(
                f"the parameter server did not finish within {timeout:.0f} s: {self.log('server')[-2000:]}"
            ) from None
        if code != 0:
            raise ServiceUnavailableError(
                f"the parameter server failed (exit {code}): {self.log('server')[-2000:]}"
            )
        return json.loads(self.metrics_path.read_text())

    def wait_workers(self, timeout: float) -> dict[str, int]:
        """Exit codes of all workers (killing those still running after ``timeout``)."""
        return wait_all(self.workers, timeout)

    def log(self, name: str) -> str:
        path = self.workdir / (f"{name}.log" if name == "server" else f"worker-{name}.log")
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Kill every process still running and remove the temporary folder."""
        for process in [*self.workers.values(), *([self.server] if self.server else [])]:
            if process.poll() is None:
                process.kill()
                process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()


def _flags(options: dict) -> list[str]:
    """``{"min_workers": 2, "backups": False}`` as ``["--min-workers", "2", "--no-backups"]``."""
    args = []
    for key, value in options.items():
        name = key.replace("_", "-")
        if isinstance(value, bool):
            args.append(f"--{name}" if value else f"--no-{name}")
        elif value is not None:
            args += [f"--{name}", str(value)]
    return args
