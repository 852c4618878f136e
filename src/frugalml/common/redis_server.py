"""A throwaway redis-server on a free localhost port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
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
def redis_server(
    timeout: float = 5.0,
    *,
    tls_cert: str | os.PathLike | None = None,
    tls_key: str | os.PathLike | None = None,
) -> Iterator[str]:
    """Start redis-server on 127.0.0.1 (no persistence), yield its URL, stop it afterwards.

    With ``tls_cert`` and ``tls_key`` it speaks only TLS, and the URL is a ``rediss://`` URL that
    trusts that certificate. Raises ServiceUnavailableError when redis-server is not installed or
    does not answer within ``timeout`` seconds.
    """
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceUnavailableError("redis-server is not installed (apt-get install redis-server)")
    import redis

    port = free_port()
    args = [server, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    if tls_cert is None:
        args += ["--port", str(port)]
        url = f"redis://127.0.0.1:{port}/0"
    else:
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls_cert)]
        args += [
            "--tls-key-file",
            str(tls_key),
            "--tls-ca-cert-file",
            str(tls_cert),
            "--tls-auth-clients",
            "no",
        ]
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tls_cert}"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
