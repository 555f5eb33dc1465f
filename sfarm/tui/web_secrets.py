"""The secrets of `sfarm web` on a network address: its access token and its TLS certificate.

Each is made once and kept in a 0600 file, in the node root's `secrets/` when the command runs
in one (any node of a deployed network), else in the user's config directory; later starts
reuse them, so a browser's cookie and a pinned certificate fingerprint stay valid.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import secrets
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sfarm.errors import UsageError

TOKEN_FILE = "web-token"
# The private key and the certificate in one PEM file: written in one step, so two servers
# starting at once never pair one's key with the other's certificate.
TLS_FILE = "web-tls.pem"
CERTIFICATE_DAYS = 3650


@dataclass(frozen=True)
class TlsFiles:
    """What the server loads for TLS: a certificate, its key, the certificate's fingerprint."""

    certificate: Path
    key: Path
    fingerprint: str  # SHA-256 of the certificate (DER), colon-separated hex

    def context(self) -> ssl.SSLContext:
        """A server TLS context with these files; UsageError naming them when they don't load."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.certificate, self.key)
        except (OSError, ssl.SSLError) as error:
            raise UsageError(f"cannot load the certificate {self.certificate} with the key "
                             f"{self.key}: {error}",
                             hint="both must be PEM files and the key must be the "
                                  "certificate's") from None
        return context


def secrets_dir(node_root: Path | None) -> Path:
    """Where the web secrets live: `NODE_ROOT/secrets` in a node root, else the user's config
    directory for sfarm ($XDG_CONFIG_HOME/sfarm on Linux)."""
    if node_root is not None:
        return node_root / "secrets"
    return Path(platformdirs.user_config_dir("sfarm", appauthor=False))


def read_or_make_token(directory: Path) -> str:
    """The web token kept in `directory`, made (random, URL-safe, 256 bits) the first time."""
    path = directory / TOKEN_FILE
    existing = _read_private(path)
    if existing is not None and existing.strip():
        return existing.strip().decode()
    token = secrets.token_urlsafe(32)
    _write_private(path, token.encode() + b"\n", replace=existing is not None)
    stored = _read_private(path)  # another server may have made it first: use the one kept
    assert stored is not None
    return stored.strip().decode()


def read_or_make_certificate(directory: Path, names: Iterable[str]) -> TlsFiles:
    """The self-signed certificate kept in `directory`, made the first time (or when it expired
    or is damaged) for `names`: host names and IP addresses the browser may use."""
    path = directory / TLS_FILE
    existing = _read_private(path)
    if existing is not None:
        with contextlib.suppress(ValueError):
            certificate = x509.load_pem_x509_certificate(existing)
            serialization.load_pem_private_key(existing, password=None)
            if certificate.not_valid_after_utc > _now():
                return TlsFiles(path, path, fingerprint(certificate))
    _write_private(path, make_self_signed(list(names)), replace=existing is not None)
    return operator_certificate(path, path)


def operator_certificate(certificate: Path, key: Path) -> TlsFiles:
    """The operator's own certificate and key (--cert/--key), checked to load together."""
    try:
        loaded = x509.load_pem_x509_certificate(certificate.read_bytes())
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read a PEM certificate from {certificate}: {error}") from None
    files = TlsFiles(certificate, key, fingerprint(loaded))
    files.context()
    return files


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate as browsers show it: `AB:CD:...` (32 bytes)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def certificate_names(host: str) -> list[str]:
    """The names a certificate for a server bound to `host` should carry: this machine's host
    names, `localhost` and the loopback addresses, and `host` itself unless it is a wildcard."""
    names = [socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1", "::1"]
    if host not in ("", "0.0.0.0", "::"):
        names.append(host)
    return list(dict.fromkeys(name for name in names if name))


def make_self_signed(names: list[str]) -> bytes:
    """A new EC P-256 key and a certificate it signs for `names` (the first is the subject),
    valid CERTIFICATE_DAYS days, as one PEM document (key first)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sfarm web")])
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM)


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return general


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _read_private(path: Path) -> bytes | None:
    """The file's bytes (None when there is none), its mode tightened to 0600 if it was
    looser."""
    try:
        with path.open("rb") as file:
            if os.stat(file.fileno()).st_mode & 0o077:
                os.fchmod(file.fileno(), 0o600)
            return file.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None


def _write_private(path: Path, content: bytes, *, replace: bool) -> None:
    """Write `content` to `path`, mode 0600 from its first byte; a file already there is kept
    (made by another server meanwhile) unless `replace`."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        try:
            if replace:
                os.replace(temporary, path)
            else:
                with contextlib.suppress(FileExistsError):
                    os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}",
                         hint="the web token and certificate are kept there; check the "
                              "directory's owner and permissions") from None
