"""TLS with client certificates for the runtime: every channel encrypted, every client known.

``frugal cleave certs`` makes a certificate authority for a trial, a server certificate and one
client certificate per worker (its common name is the worker's name) plus one for ``status``.
The server asks every client for a certificate signed by that CA (``require_client_auth``), and a
worker may only act under the name its certificate carries: the credential is bound to the
worker's identity. Key files are written readable by their owner only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

import grpc

from frugalml.common.errors import DataNotFoundError, FrugalError, InvalidInputError

STATUS_NAME = "status"  # the client certificate ``frugal cleave status`` uses
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ClientFiles:
    """What a worker or ``status`` needs: the CA to check the server, its own certificate and key."""

    ca: str
    cert: str
    key: str


def _crypto():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise FrugalError(
            "making certificates needs the 'cryptography' package: pip install cryptography"
        ) from None
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def make_credentials(folder: str | Path, workers: list[str], hosts: list[str], days: int = 30) -> list[Path]:
    """A CA, a server certificate valid for ``hosts`` (IP addresses or DNS names) and a client
    certificate per worker name (and ``status``), valid for ``days``; returns the files written.

    Raises
    ------
    InvalidInputError
        A bad worker name or host, ``days`` outside 1..3650, or a folder that already holds a CA
        (credentials are never overwritten; use another folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"the folder {folder} does not exist; create it first")
    if (folder / "ca.key").exists():
        raise InvalidInputError(f"{folder} already holds a CA (ca.key); use an empty folder")
    if not 1 <= days <= 3650:
        raise InvalidInputError(f"--days must be in 1..3650, got {days}")
    names = [*workers, STATUS_NAME]
    bad = [n for n in names if not NAME.match(n)]
    if bad or len(set(names)) != len(names) or not workers:
        raise InvalidInputError(
            f"worker names must be distinct, 1-64 letters, digits, '.', '_' or '-', and not "
            f"{STATUS_NAME!r}; got {bad[0] if bad else ', '.join(workers) or 'none'}"
        )
    if not hosts:
        raise InvalidInputError("give the server's address(es) with --host")
    x509, hashes, serialization, ec, eku, oid = _crypto()
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key, issuer, issuer_key, *, ca: bool = False, server: bool = False):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(oid.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if server:
            alt = [_alt_name(x509, h) for h in hosts]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage([eku.SERVER_AUTH]), critical=False)
        elif not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([eku.CLIENT_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(oid.COMMON_NAME, "frugalml cleave trial CA")])
    written = []

    def write(stem: str, certificate, key) -> None:
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        secret = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        written.append(_write(folder / f"{stem}.pem", pem, 0o644))
        written.append(_write(folder / f"{stem}.key", secret, 0o600))

    write("ca", cert("frugalml cleave trial CA", ca_key, ca_name, ca_key, ca=True), ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    write("server", cert(hosts[0], server_key, ca_name, ca_key, server=True), server_key)
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        write(name, cert(name, key, ca_name, ca_key), key)
    return written


def _alt_name(x509, host: str):
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        if not re.match(r"^[A-Za-z0-9.-]{1,253}$", host):
            raise InvalidInputError(f"--host {host!r} is neither an IP address nor a DNS name") from None
        return x509.DNSName(host)


def _write(path: Path, data: bytes, mode: int) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"{what} file {path} does not exist; make one with 'frugal cleave certs'")
    data = p.read_bytes()
    if b"-----BEGIN" not in data[:4096] or len(data) > 1 << 20:
        raise InvalidInputError(f"{what} file {path} is not a PEM file")
    return data


def server_credentials(cert: str, key: str, ca: str) -> grpc.ServerCredentials:
    """TLS for the server: its certificate and key, and the CA every client certificate must chain to."""
    return grpc.ssl_server_credentials(
        [(_read(key, "server key"), _read(cert, "server certificate"))],
        root_certificates=_read(ca, "CA"),
        require_client_auth=True,
    )


def channel_credentials(files: ClientFiles) -> grpc.ChannelCredentials:
    """TLS for a client: the CA that signed the server's certificate, and the client's own."""
    return grpc.ssl_channel_credentials(
        _read(files.ca, "CA"), _read(files.key, "client key"), _read(files.cert, "client certificate")
    )


def client_files(ca: str | None, cert: str | None, key: str | None) -> ClientFiles | None:
    """The client's TLS files when given (all three or none)."""
    given = [v is not None for v in (ca, cert, key)]
    if any(given) and not all(given):
        raise InvalidInputError("--ca, --cert and --key go together (make them with 'frugal cleave certs')")
    return ClientFiles(ca, cert, key) if all(given) else None  # type: ignore[arg-type]


def channel(server: str, files: ClientFiles | None, options: list) -> grpc.Channel:
    """A channel to ``server``: TLS with a client certificate when ``files`` are given, else plain."""
    if files is None:
        return grpc.insecure_channel(server, options=options)
    return grpc.secure_channel(server, channel_credentials(files), options=options)


def peer_name(context: grpc.ServicerContext) -> str | None:
    """The common name of the client certificate the caller presented (None on plain text)."""
    names = (context.auth_context() or {}).get("x509_common_name") or []
    return names[0].decode("utf-8", "replace") if names else None
