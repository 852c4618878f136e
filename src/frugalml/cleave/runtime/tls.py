"""TLS with client certificates for the runtime: every channel encrypted, every client known.

``frugal cleave certs`` makes a certificate authority for a trial, a server certificate and one
client certificate per worker (its common name is the worker's name) plus one for ``status``.
The server asks every client for a certificate signed by that CA (``require_client_auth``), and a
worker may only act under the name its certificate carries: the credential is bound to the
worker's identity. Key files are written readable by their owner only.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
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
    x509, _, _, ec, _, oid = _crypto()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(oid.COMMON_NAME, "frugalml cleave trial CA")])
    end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    written: list[Path] = []
    ca = _certificate("frugalml cleave trial CA", ca_key, ca_name, ca_key, end, ca=True)
    written += _write_pair(folder, "ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(hosts[0], server_key, ca_name, ca_key, end, hosts=hosts)
    written += _write_pair(folder, "server", server, server_key)
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        written += _write_pair(folder, name, _certificate(name, key, ca_name, ca_key, end), key)
    return written


@dataclass(frozen=True)
class Issued:
    """A client credential issued into an existing CA folder: its files, serial and fingerprint."""

    name: str
    cert: Path
    key: Path
    serial: str  # hex, as 'serial:HEX' in a revocation list
    fingerprint: str  # SHA-256 of the DER certificate, as 'sha256:HEX'


def issue_credentials(
    folder: str | Path, names: list[str], days: int = 30, *, not_after: datetime.datetime | None = None
) -> list[Issued]:
    """New client certificates from the CA in ``folder`` (``ca.pem`` and ``ca.key``), to rotate a
    worker's credential while training runs: ``NAME.pem``/``NAME.key`` when free, else the first
    free ``NAME.2``, ``NAME.3``... (a key is never overwritten). Revoke the old one by its serial or
    fingerprint (``frugal cleave serve --revoked``) once the device uses the new one.

    Raises
    ------
    InvalidInputError
        No CA in ``folder``, a bad name, or ``days`` outside 1..3650.
    """
    folder = Path(folder)
    if not (folder / "ca.key").is_file() or not (folder / "ca.pem").is_file():
        raise InvalidInputError(
            f"{folder} holds no CA (ca.pem and ca.key); make one with 'frugal cleave certs'"
        )
    if not 1 <= days <= 3650:
        raise InvalidInputError(f"--days must be in 1..3650, got {days}")
    bad = [n for n in names if not NAME.match(n)]
    if bad or not names or len(set(names)) != len(names):
        raise InvalidInputError(
            f"names must be distinct, 1-64 letters, digits, '.', '_' or '-'; got {bad[0] if bad else names}"
        )
    x509, hashes, serialization, ec, _, _ = _crypto()
    try:
        ca = x509.load_pem_x509_certificate(_read(str(folder / "ca.pem"), "CA"))
        ca_key = serialization.load_pem_private_key(_read(str(folder / "ca.key"), "CA key"), None)
    except ValueError as exc:
        raise InvalidInputError(f"the CA in {folder} cannot be read: {exc}") from None
    end = not_after or datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    out = []
    for name in names:
        stem, n = name, 1
        while (folder / f"{stem}.key").exists() or (folder / f"{stem}.pem").exists():
            n += 1
            stem = f"{name}.{n}"
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate(name, key, ca.subject, ca_key, end)
        pem_path, key_path = _write_pair(folder, stem, certificate, key)
        der = certificate.public_bytes(serialization.Encoding.DER)
        out.append(
            Issued(
                name, pem_path, key_path, f"{certificate.serial_number:x}", hashlib.sha256(der).hexdigest()
            )
        )
    return out


def _certificate(subject, key, issuer, issuer_key, end, *, ca: bool = False, hosts: list[str] | None = None):
    x509, hashes, _, _, eku, oid = _crypto()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(oid.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, end) - datetime.timedelta(minutes=5))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        alt = [_alt_name(x509, h) for h in hosts]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pair(folder: Path, stem: str, certificate, key) -> tuple[Path, Path]:
    _, _, serialization, _, _, _ = _crypto()
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    secret = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _write(folder / f"{stem}.pem", pem, 0o644), _write(folder / f"{stem}.key", secret, 0o600)


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
    """TLS for a client: the CA that signed the server's certificate, and the client's own (refused
    here in one line when it has expired: the server would only drop the handshake)."""
    cert = _read(files.cert, "client certificate")
    _check_not_expired(cert, files.cert)
    return grpc.ssl_channel_credentials(_read(files.ca, "CA"), _read(files.key, "client key"), cert)


def _check_not_expired(pem: bytes, path: str) -> None:
    try:
        from cryptography import x509
    except ImportError:  # the server still refuses it; only the message is less clear
        return
    try:
        end = x509.load_pem_x509_certificate(pem).not_valid_after_utc
    except ValueError:
        raise InvalidInputError(f"client certificate file {path} holds no readable certificate") from None
    if end <= datetime.datetime.now(datetime.UTC):
        raise InvalidInputError(
            f"the client certificate {path} expired on {end:%Y-%m-%d %H:%M} UTC; issue a new one "
            "with 'frugal cleave certs --add NAME' from the CA folder"
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


def peer_certificate(context: grpc.ServicerContext) -> bytes | None:
    """The caller's client certificate as PEM (None on plain text)."""
    pems = (context.auth_context() or {}).get("x509_pem_cert") or []
    return pems[0] if pems else None


def certificate_ids(pem: bytes) -> tuple[str, str]:
    """``('serial:HEX', 'sha256:HEX')`` of a PEM certificate (the serial needs 'cryptography')."""
    body = b"".join(line for line in pem.strip().splitlines() if not line.startswith(b"-----"))
    der = base64.b64decode(body)
    try:
        from cryptography import x509

        serial = f"serial:{x509.load_der_x509_certificate(der).serial_number:x}"
    except (ImportError, ValueError):
        serial = "serial:?"
    return serial, f"sha256:{hashlib.sha256(der).hexdigest()}"
