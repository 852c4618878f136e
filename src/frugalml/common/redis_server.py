"""A throwaway redis-server on a free localhost port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

from frugalml.common.errors import ServiceUnavailableError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server(timeout: float = 5.0) -> Iterator[str]:
    """Start redis-server on 127.0.0.1 (no persistence), yield its URL, stop it afterwards.

    Raises ServiceUnavailableError when redis-server is not installed or does not answer within
    ``timeout`` seconds.
    """
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceUnavailableError("redis-server is not installed (apt-get install redis-server)")
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ServiceUnavailableError(
                        f"redis-server on port {port} did not start within {timeout:.0f} s"
                    ) from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
