"""Emulated edge hosts that are really separate: one network namespace per worker, shaped links.

``Fleet.up`` creates a namespace for the parameter server (``<prefix>-ps``, holding a bridge with
address ``10.213.0.1``) and one per worker (``<prefix>-w<i>``), joins each worker's namespace to
the bridge with a veth pair, and shapes the device class's asymmetric link with ``tc`` on both
ends: a token bucket filter (``tbf``) at the downlink rate on the server's side, one at the uplink
rate on the worker's side, and ``netem`` for half the round trip on each side where the kernel has
it. Processes run inside their namespaces with ``ip netns exec``; each worker's CPU can be capped
with a cgroup (``cpu.max`` in cgroup v2, ``cpu.cfs_quota_us`` in v1). Only addresses inside these
namespaces are used. Where namespaces cannot be made (not root, no CAP_NET_ADMIN, no ``ip``), the
fleet runs the same processes on loopback and each worker paces its own traffic (token buckets).

Everything made is listed in a state file before it is made, so ``down`` (the same process on
Ctrl-C or failure, or ``frugal cleave fleet down`` from another one) removes exactly that.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from frugalml.cleave.runtime.local import wait_all
from frugalml.common.errors import FrugalError, InvalidInputError

STATE_DIR = Path("/run/frugalml-cleave")
SUBNET = "10.213"
PS_ADDRESS = f"{SUBNET}.0.1"
_ENV_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MAX_WORKERS = 4000


class FleetError(FrugalError):
    """The fleet could not be set up or torn down (a command failed, one is already up, none is up)."""


@dataclass(frozen=True)
class Host:
    """One emulated device: its class, links in bytes/s, round trip in seconds, FLOP/s, memory."""

    name: str
    device_class: str
    down: float
    up: float
    rtt: float
    flops: float
    memory: int


def hosts_from_pool(workers: int, pool_path: str | Path | None = None, seed: int = 0) -> list[Host]:
    """``workers`` devices drawn from a pool file (its mix and catalogue) or the default mixed pool."""
    from frugalml.cleave.devices import load_pool, make_pool

    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidInputError(f"--workers must be between 1 and {MAX_WORKERS}, got {workers}")
    pool = load_pool(pool_path, devices=workers) if pool_path else make_pool(workers, seed=seed)
    names = pool.class_names
    return [
        Host(
            f"w{i}",
            names[int(pool.class_index[i])],
            float(pool.down[i]),
            float(pool.up[i]),
            float(pool.rtt[i]),
            float(pool.flops[i]),
            int(pool.memory[i]),
        )
        for i in range(len(pool))
    ]


def namespaces_unavailable() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (or CAP_NET_ADMIN)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the '{tool}' command is missing (install iproute2)"
    probe = f"clvprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass
class FleetState:
    """What a fleet made (the state file): removed by :func:`fleet_down`."""

    prefix: str
    mode: str
    owner_pid: int
    namespaces: list[str] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    workdir: str = ""


def state_path(prefix: str) -> Path:
    return STATE_DIR / f"fleet-{prefix}.json"


def _save(state: FleetState) -> None:
    from frugalml.common.files import atomic_write

    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with atomic_write(state_path(state.prefix), "w", create_parents=True) as f:
        json.dump(asdict(state), f)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sh(*args: str, check: bool = True) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise FleetError(f"'{' '.join(args)}' failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _tbf(ns: str, dev: str, rate: float, delay_s: float, netem: bool) -> None:
    """Shape ``dev``'s egress in ``ns`` to ``rate`` bytes/s (tbf), after ``delay_s`` (netem) if asked."""
    # a small bucket (1 ms of traffic, at least two full frames; tbf segments larger GSO packets):
    # a bigger one lets a small tile through at line speed after any pause, faster than the link
    burst = max(int(rate / 1000), 3_100)
    tbf = ["tbf", "rate", f"{int(rate * 8)}bit", "burst", str(burst), "latency", "2s"]
    if netem and delay_s > 0:
        _sh(
            "tc",
            "-n",
            ns,
            "qdisc",
            "add",
            "dev",
            dev,
            "root",
            "handle",
            "1:",
            "netem",
            "delay",
            f"{delay_s * 1e3:.3f}ms",
        )
        _sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", *tbf)
    else:
        _sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *tbf)


def netem_available(ns: str, dev: str) -> bool:
    """Whether this kernel has the netem qdisc (tried on ``dev``, then removed)."""
    ok = subprocess.run(
        ["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms"], capture_output=True
    )
    if ok.returncode == 0:
        _sh("tc", "-n", ns, "qdisc", "del", "dev", dev, "root")
    return ok.returncode == 0


def _cgroup_root() -> tuple[Path, str] | None:
    """Where CPU caps go: (folder, "v2" or "v1"), or None without a writable cpu controller."""
    unified = Path("/sys/fs/cgroup")
    if (unified / "cgroup.controllers").exists() and "cpu" in (unified / "cgroup.controllers").read_text():
        return unified, "v2"
    v1 = unified / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists() and os.access(v1, os.W_OK):
        return v1, "v1"
    return None


def cgroup_path(name: str) -> Path:
    """Where cgroup ``name`` lives (in the cpu controller's hierarchy)."""
    found = _cgroup_root()
    if found is None:
        raise FleetError("no writable cgroup cpu controller; run as root or drop --cpus")
    return found[0] / name


def cap_cpu(name: str, cores: float, pid: int) -> str:
    """Put ``pid`` in a new cgroup ``name`` limited to ``cores`` CPUs; returns the cgroup's folder."""
    found = _cgroup_root()
    if found is None:
        raise FleetError("no writable cgroup cpu controller; run as root or drop --cpus")
    root, version = found
    group = root / name
    group.mkdir(parents=True, exist_ok=True)
    # a short period throttles evenly (a task of a few ms cannot burst at full speed); the kernel
    # wants a quota of at least 1 ms
    period = max(2_000, int(-(-1_000 // cores)))
    if version == "v2":
        (group / "cpu.max").write_text(f"{max(1_000, int(cores * period))} {period}")
    else:
        (group / "cpu.cfs_period_us").write_text(str(period))
        (group / "cpu.cfs_quota_us").write_text(str(max(1_000, int(cores * period))))
    (group / "cgroup.procs").write_text(str(pid))
    return str(group)


class Fleet:
    """A parameter server and ``hosts`` as workers, each in its own namespace (or on loopback).

    Examples
    --------
    >>> with Fleet(hosts_from_pool(4)) as fleet:   # doctest: +SKIP
    ...     fleet.up(); fleet.start_server(steps=5, min_workers=4); fleet.start_workers()
    ...     fleet.wait_server(300)
    """

    def __init__(
        self,
        hosts: list[Host],
        *,
        prefix: str = "clv",
        cpus: float | None = None,
        namespaces: bool = True,
        workdir: str | Path | None = None,
    ):
        if not hosts:
            raise InvalidInputError("a fleet needs at least one worker")
        if not (prefix.isalnum() and prefix.islower() and 1 <= len(prefix) <= 6):
            raise InvalidInputError(f"fleet prefix must be 1-6 lowercase letters or digits, got {prefix!r}")
        if cpus is not None and not 0.01 <= cpus <= 64:
            raise InvalidInputError(f"--cpus (all workers together) must be in [0.01, 64], got {cpus}")
        self.hosts = hosts
        self.prefix = prefix
        self.cpus = cpus
        self.want_namespaces = namespaces
        self.mode = ""
        self.why_fallback = ""
        self.netem = False
        self._tmp = tempfile.TemporaryDirectory(prefix="cleave-fleet-") if workdir is None else None
        self.workdir = Path(workdir or self._tmp.name)
        self.server: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.address = ""
        self.state: FleetState | None = None
        self._on_term: Any = None

    def __enter__(self) -> Fleet:
        if threading.current_thread() is threading.main_thread():  # `kill` or a CI timeout: clean up too
            self._on_term = signal.signal(signal.SIGTERM, _exit_on_term)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.down()
        finally:
            if self._on_term is not None:
                signal.signal(signal.SIGTERM, self._on_term)
                self._on_term = None

    @property
    def ps_namespace(self) -> str:
        return f"{self.prefix}-ps"

    def namespace(self, i: int) -> str:
        return f"{self.prefix}-w{i}"

    def up(self) -> str:
        """Create the namespaces and links (or choose loopback); returns the mode used."""
        path = state_path(self.prefix)
        if path.exists():
            old = json.loads(path.read_text())
            raise FleetError(
                f"a fleet '{self.prefix}' is already up (started by process {old.get('owner_pid')}); "
                "run 'frugal cleave fleet down' first"
            )
        why = namespaces_unavailable() if self.want_namespaces else "namespaces not asked for"
        self.mode = "namespaces" if why is None else "token-bucket"
        self.why_fallback = why or ""
        self.state = FleetState(self.prefix, self.mode, os.getpid(), workdir=str(self.workdir))
        _save(self.state)
        try:
            if self.mode == "namespaces":
                self._make_namespaces()
        except BaseException:
            self.down()
            raise
        return self.mode

    def _make_namespaces(self) -> None:
        assert self.state is not None
        ps = self.ps_namespace
        self.state.namespaces = [ps, *(self.namespace(i) for i in range(len(self.hosts)))]
        self.state.root_links = [f"{self.prefix}p{i}" for i in range(len(self.hosts))]
        _save(self.state)
        _sh("ip", "netns", "add", ps)
        _sh("ip", "-n", ps, "link", "set", "lo", "up")
        _sh("ip", "-n", ps, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", ps, "addr", "add", f"{PS_ADDRESS}/16", "dev", "br0")
        _sh("ip", "-n", ps, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts):
            ns, ps_end, w_end = self.namespace(i), f"{self.prefix}p{i}", f"{self.prefix}w{i}"
            _sh("ip", "netns", "add", ns)
            _sh("ip", "link", "add", ps_end, "type", "veth", "peer", "name", w_end)
            _sh("ip", "link", "set", ps_end, "netns", ps)
            _sh("ip", "link", "set", w_end, "netns", ns)
            _sh("ip", "-n", ps, "link", "set", ps_end, "master", "br0")
            _sh("ip", "-n", ps, "link", "set", ps_end, "up")
            _sh("ip", "-n", ns, "link", "set", w_end, "name", "eth0")
            _sh("ip", "-n", ns, "addr", "add", f"{self.worker_address(i)}/16", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            if i == 0:
                self.netem = netem_available(ns, "eth0")
            _tbf(ps, ps_end, host.down, host.rtt / 2, self.netem)  # downlink: PS -> worker
            _tbf(ns, "eth0", host.up, host.rtt / 2, self.netem)  # uplink: worker -> PS

    @staticmethod
    def worker_address(i: int) -> str:
        j = i + 2
        return f"{SUBNET}.{j // 256}.{j % 256}"

    def describe(self) -> str:
        """One line: which emulation is used and why."""
        if self.mode == "namespaces":
            delay = "netem delays" if self.netem else "no delay emulation (this kernel lacks netem)"
            return (
                f"{len(self.hosts)} workers in their own network namespaces ({self.prefix}-w*), links "
                f"shaped by tc tbf both ways, {delay}; server at {PS_ADDRESS} in {self.ps_namespace}"
            )
        count = len(self.hosts)
        return f"{count} workers on loopback pacing their own links (token buckets): {self.why_fallback}"

    def _spawn(self, namespace: str | None, args: list[str], log_name: str) -> subprocess.Popen:
        assert self.state is not None
        command = [sys.executable, "-m", "frugalml.cleave.runtime", *args]
        if namespace is not None:
            command = ["ip", "netns", "exec", namespace, *command]
        log = open(self.workdir / log_name, "wb")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **_ENV_THREADS},
            start_new_session=True,
        )
        self.state.pids.append(process.pid)
        _save(self.state)
        return process

    def start_server(self, *, port: int = 50051, **options) -> str:
        """Start the PS (in its namespace) with ``options`` as ``--flag value``; returns HOST:PORT."""
        from frugalml.cleave.runtime.local import _flags

        host = PS_ADDRESS if self.mode == "namespaces" else "127.0.0.1"
        address_file = self.workdir / "address"
        address_file.unlink(missing_ok=True)
        args = ["serve", "--host", host, "--port", str(port), "--address-file", str(address_file)]
        if self.mode == "namespaces":  # the emulated hosts' private bridge: plain text, knowingly
            args.append("--insecure")
        namespace = self.ps_namespace if self.mode == "namespaces" else None
        self.server = self._spawn(namespace, [*args, *_flags(options)], "server.log")
        end = time.monotonic() + 120
        while not address_file.exists():
            if self.server.poll() is not None or time.monotonic() > end:
                raise FleetError(f"the parameter server did not start: {self.log('server')[-1500:]}")
            time.sleep(0.05)
        self.address = address_file.read_text()
        return self.address

    def start_workers(
        self, server: str | None = None, per_worker: dict[str, dict] | None = None, **options
    ) -> None:
        """Start every worker (in its namespace, CPU-capped when ``cpus`` is set) against ``server``;
        ``options`` go to every worker, ``per_worker[name]`` to one."""
        assert self.state is not None
        for i, host in enumerate(self.hosts):
            shaped = self.mode == "namespaces"
            args = [
                "worker",
                "--server",
                server or self.address,
                "--name",
                host.name,
                "--class",
                host.device_class,
                "--down",
                f"{host.down}",
                "--up",
                f"{host.up}",
                "--flops",
                f"{host.flops}",
                "--memory",
                str(host.memory),
                "--link-shaping",
                "network" if shaped else "app",
                "--quiet",
            ]
            from frugalml.cleave.runtime.local import _flags

            own = _flags({**options, **(per_worker or {}).get(host.name, {})})
            process = self._spawn(self.namespace(i) if shaped else None, [*args, *own], f"{host.name}.log")
            self.workers[host.name] = process
            if self.cpus is not None:
                name = f"frugalml-{self.prefix}/{host.name}"
                self.state.cgroups.append(str(cgroup_path(name)))  # listed before it is made
                _save(self.state)
                cap_cpu(name, self.cpus / len(self.hosts), process.pid)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system, all threads) each running process has used so far, by name
        (``server`` and the workers' names); a process that has exited is left out."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, process in [("server", self.server), *self.workers.items()]:
            if process is None:
                continue
            try:  # ip netns exec execs the command: the pid is the Python process itself
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        return out

    def counters(self) -> dict[str, tuple[int, int]]:
        """Bytes each worker's interface received and sent (namespaces only; from the kernel)."""
        out = {}
        for i, host in enumerate(self.hosts):
            stats = Path("/sys/class/net/eth0/statistics")
            text = _sh(
                "ip",
                "netns",
                "exec",
                self.namespace(i),
                "cat",
                str(stats / "rx_bytes"),
                str(stats / "tx_bytes"),
            )
            rx, tx = (int(v) for v in text.split())
            out[host.name] = (rx, tx)
        return out

    def status(self) -> dict:
        """The server's status, asked from inside its namespace (the only place it is reachable)."""
        command = [
            sys.executable,
            "-m",
            "frugalml.cleave.runtime",
            "status",
            "--server",
            self.address,
            "--json",
        ]
        if self.mode == "namespaces":
            command = ["ip", "netns", "exec", self.ps_namespace, *command]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **_ENV_THREADS})
        if done.returncode != 0:
            raise FleetError(f"cannot read the server's status: {done.stderr.strip()[-300:]}")
        return json.loads(done.stdout)

    def wait_server(self, timeout: float) -> int:
        assert self.server is not None
        try:
            return self.server.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FleetError(f"the parameter server did not finish within {timeout:.0f} s") from None

    def wait_workers(self, timeout: float) -> dict[str, int]:
        """Exit codes of all workers (killing those still running after ``timeout``)."""
        return wait_all(self.workers, timeout)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def down(self) -> None:
        """Stop every process and remove every namespace, link and cgroup this fleet made."""
        if self.state is not None:
            fleet_down(self.prefix, expect=True)
            self.state = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _exit_on_term(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through Fleet.__exit__, which takes the fleet down


def fleet_down(prefix: str = "clv", expect: bool = False) -> FleetState:
    """Remove what the state file of fleet ``prefix`` lists (processes, namespaces, links, cgroups).

    Raises
    ------
    FleetError
        No fleet ``prefix`` is up (no state file).
    """
    path = state_path(prefix)
    if not path.exists():
        raise FleetError(f"no fleet '{prefix}' is up; start one with 'frugal cleave fleet up'")
    try:
        state = FleetState(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise FleetError(f"the fleet state file {path} is unreadable ({exc}); remove it by hand") from None
    if not expect and state.owner_pid != os.getpid() and _alive(state.owner_pid):
        os.kill(state.owner_pid, signal.SIGTERM)  # its own cleanup runs; ours below makes sure
        for _ in range(100):
            if not path.exists():
                return state
            time.sleep(0.05)
    for pid in state.pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in state.pids:
        for _ in range(100):
            if not _alive(pid) or _zombie(pid):
                break
            time.sleep(0.02)
    for ns in state.namespaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for link in state.root_links:
        subprocess.run(["ip", "link", "del", link], capture_output=True)
    for group in reversed(state.cgroups):
        for _ in range(50):
            try:
                os.rmdir(group)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
    for parent in {str(Path(g).parent) for g in state.cgroups}:
        try:
            os.rmdir(parent)
        except OSError:
            pass
    path.unlink(missing_ok=True)
    return state


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False
