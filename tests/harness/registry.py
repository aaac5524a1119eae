"""A real OCI distribution registry (Debian ``docker-registry``) on 127.0.0.1 for tests.

Fixtures:
- ``oci_registry``: an anonymous registry with delete enabled, fresh storage per test.
- ``oci_registry_token``: the same behind the bearer-token flow; a small token server
  on 127.0.0.1 checks HTTP basic credentials and issues ES256 JWTs the registry verifies
  against a throwaway certificate (``token_credentials`` gives the user and password).

The registry's access log is kept so tests can count what really reached it (e.g. that a
second push uploaded no blob). Skips only when the ``docker-registry`` binary is missing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from mpkg._internal.registry.refs import Reference, parse_ref
from mpkg._internal.registry.trust import HistoryPolicy
from mpkg_builder.registry.backend import Backend
from mpkg_builder.registry.local import LocalBackend
from mpkg_builder.registry.oci import OciBackend

from tests.harness.process import stop

REGISTRY_BIN = shutil.which("docker-registry")
_ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-)')
TOKEN_USER = "alice"
TOKEN_PASSWORD = "s3cret-pw"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int
    size: int = 0  # bytes of the answer's body


@dataclass(frozen=True)
class RegistryProcess:
    """A running registry: ``host`` is ``127.0.0.1:PORT`` (what a REF starts with)."""

    host: str
    storage: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def requests(self) -> list[Request]:
        """Every request the registry served so far, from its access log."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            m = _ACCESS.search(line)
            if m:
                out.append(Request(m.group(1), m.group(2), int(m.group(3)), int(m.group(4).replace("-", "0"))))
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    """Poll until the registry answers (a readiness wait, not a timed assertion)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # 401 from a token-protected registry: it is up
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not come up; log:\n{log.read_text()[-2000:]}")


def _start(tmp: Path, auth_yaml: str = "") -> Iterator[RegistryProcess]:
    if REGISTRY_BIN is None:
        pytest.skip("docker-registry binary missing (apt-get install docker-registry)")
    storage = tmp / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    log = tmp / "registry.log"
    for _attempt in range(5):
        port = _free_port()
        config = tmp / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: false\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {storage}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: mpkg-test-secret\n" + auth_yaml
        )
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
            )
        try:
            if _wait_ready(proc, f"http://127.0.0.1:{port}/v2", log):
                yield RegistryProcess(f"127.0.0.1:{port}", storage, log)
                return
        finally:
            stop(proc, timeout=10)
    raise RuntimeError(f"docker-registry failed to start; log:\n{log.read_text()[-2000:]}")


@pytest.fixture
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    yield from _start(tmp_path_factory.mktemp("registry"))


# --- bearer-token flow -------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _TokenIssuer:
    """Issues registry JWTs (ES256, x5c header) to callers with the right basic credentials."""

    def __init__(self, tmp: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mpkg-test-token")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.bundle = tmp / "token-root.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.issued: list[str] = []  # scopes asked for, for assertions

    def token(self, service: str, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {
            "iss": "mpkg-test-issuer",
            "sub": TOKEN_USER,
            "aud": service,
            "exp": now + 600,
            "nbf": now - 60,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _token_server(issuer: _TokenIssuer) -> tuple[ThreadingHTTPServer, str]:
    expected = "Basic " + base64.b64encode(f"{TOKEN_USER}:{TOKEN_PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.end_headers()
                return
            query = parse_qs(urlsplit(self.path).query)
            scopes = query.get("scope", [])
            issuer.issued.extend(scopes)
            body = json.dumps({"token": issuer.token(query.get("service", [""])[0], scopes)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/token"


@dataclass(frozen=True)
class TokenRegistry:
    registry: RegistryProcess
    issuer: _TokenIssuer
    username: str = TOKEN_USER
    password: str = TOKEN_PASSWORD


@pytest.fixture
def oci_registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    tmp = tmp_path_factory.mktemp("registry-token")
    issuer = _TokenIssuer(tmp)
    server, realm = _token_server(issuer)
    auth = (
        "auth:\n  token:\n"
        f"    realm: {realm}\n"
        "    service: mpkg-test-registry\n"
        "    issuer: mpkg-test-issuer\n"
        f"    rootcertbundle: {issuer.bundle}\n"
    )
    try:
        for reg in _start(tmp, auth):
            yield TokenRegistry(reg, issuer)
    finally:
        server.shutdown()
        server.server_close()


# --- the two stores every lifecycle test runs against --------------------------------------


@dataclass
class Store:
    """A registry (``registry`` set) or the local store (``home`` set), and one client of it."""

    backend: Backend
    name: str  # NAME for lifecycle commands: [host/]repo
    registry: RegistryProcess | None
    home: Path | None

    def ref(self, suffix: str = "") -> Reference:
        return parse_ref(self.name + suffix)

    def fresh(self) -> Backend:
        """A second, independent client of the same store (another promoter)."""
        if self.registry is not None:
            return OciBackend(self.registry.host, insecure=True)
        return LocalBackend(self.home)

    def blob_file(self, digest: str) -> Path:
        hexpart = digest.split(":")[1]
        if self.registry is not None:
            return self.registry.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"
        assert self.home is not None
        return self.home / "blobs/sha256" / hexpart


def trusting(*pubs: Path) -> HistoryPolicy:
    """A policy trusting these public keys for history events (no memory of heads)."""
    from mpkg._internal.trust.signatures import load_public_keys

    return HistoryPolicy(load_public_keys(pubs))
