"""Throwaway local servers for remote-model tests and benchmarks: nginx serving a folder, and a
TCP proxy that delays each direction and limits its bandwidth (a remote region's round trip on
loopback, where ``tc netem`` is not available).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from frugalml.common.errors import ServiceUnavailableError
from frugalml.common.redis_server import free_port

NGINX_CONF = """
{user}
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {run}/access.log;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    default_type application/octet-stream;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /noranges/ {{ max_ranges 0; }}
        location /onerange/ {{ max_ranges 1; }}
        location /forbidden/ {{ return 403; }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_server(root: str | os.PathLike, timeout: float = 5.0) -> Iterator[str]:
    """Serve ``root`` with nginx on a free localhost port; yield the base URL (``http://127.0.0.1:P``).

    ``/noranges/...`` answers without range support, ``/onerange/...`` with one range per request
    and ``/forbidden/...`` with 403 (for tests);
    :func:`access_count` reads how many requests it has logged. Raises ServiceUnavailableError
    when nginx is missing or does not start within ``timeout`` seconds.
    """
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        raise ServiceUnavailableError("nginx is not installed (apt-get install nginx-light)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pacset-nginx-") as run:
        conf = Path(run) / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(NGINX_CONF.format(user=user, run=run, port=port, root=Path(root).resolve()))
        proc = subprocess.Popen(
            [binary, "-c", str(conf), "-p", run, "-e", f"{run}/error.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_port(port, proc, timeout, "nginx")
            _ACCESS_LOGS[f"http://127.0.0.1:{port}"] = Path(run) / "access.log"
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _ACCESS_LOGS.pop(f"http://127.0.0.1:{port}", None)


_ACCESS_LOGS: dict[str, Path] = {}


def access_count(base_url: str, at_least: int = 0, timeout: float = 5.0) -> int:
    """Requests nginx at ``base_url`` has logged so far, waiting up to ``timeout`` seconds for
    ``at_least`` of them (nginx logs a request after its response has gone out, so a client can
    finish before the line is written)."""
    path = _ACCESS_LOGS[base_url]
    deadline = time.monotonic() + timeout
    while True:
        count = len(path.read_text().splitlines()) if path.exists() else 0
        if count >= at_least or time.monotonic() > deadline:
            return count
        time.sleep(0.01)


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise ServiceUnavailableError(f"{name} exited at start: {err.strip()[:300]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise ServiceUnavailableError(f"{name} did not start within {timeout:g} s")


class DelayProxy:
    """A TCP proxy on loopback that holds every chunk ``one_way`` seconds in each direction (a round
    trip of ``2 * one_way``) and paces each direction at ``bandwidth`` bytes per second. A new
    connection's first bytes are held one round trip longer, as TCP's handshake would delay them
    on a real link (loopback accepts at once); no TLS handshake is emulated.

    It emulates a remote region's latency where network namespaces and ``tc netem`` are not
    available; records made through it say so. Use as a context manager; ``.url`` replaces the
    target's host and port.
    """

    def __init__(self, target_port: int, one_way: float, bandwidth: float = 100e6):
        self.target_port, self.one_way, self.bandwidth = target_port, one_way, bandwidth
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port), backlog=128)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> DelayProxy:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            opened = time.monotonic() + 2 * self.one_way  # the handshake's round trip
            for src, dst, start in ((client, upstream, opened), (upstream, client, 0.0)):
                threading.Thread(target=self._pipe, args=(src, dst, start), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, start: float = 0.0) -> None:
        """Read chunks as they come; a sender thread forwards each one ``one_way`` s after it
        arrived (and not before ``start`` + ``one_way``), no faster than the bandwidth allows."""
        import queue

        chunks: queue.Queue = queue.Queue()

        def send() -> None:
            free_at = start + self.one_way if start else 0.0
            while True:
                item = chunks.get()
                if item is None:
                    break
                arrived, data = item
                now = time.monotonic()
                due = max(arrived + self.one_way, free_at)
                if due > now:
                    time.sleep(due - now)
                free_at = max(due, time.monotonic()) + len(data) / self.bandwidth
                try:
                    dst.sendall(data)
                except OSError:
                    break
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                chunks.put((time.monotonic(), data))
        except OSError:
            pass
        chunks.put(None)
        sender.join()
        with contextlib.suppress(OSError):
            src.close()


__all__ = ["DelayProxy", "access_count", "nginx_server"]
