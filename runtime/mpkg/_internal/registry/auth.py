"""Registry credentials: flags first, then ``~/.docker/config.json`` (``auths`` or a
credential helper), and the WWW-Authenticate challenge parser for basic and bearer auth."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mpkg.errors import RegistryError


@dataclass(frozen=True)
class Credentials:
    """A registry login, from the docker config or the command line."""

    username: str
    password: str

    def basic_header(self) -> str:
        """The HTTP Basic header for these credentials."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Challenge:
    """A parsed WWW-Authenticate challenge."""

    scheme: str  # "basic" or "bearer", lowercased
    params: dict[str, str]


_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."`` or ``Basic realm="..."``."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
        pos = m.end()
    return Challenge(scheme.lower(), params)


def docker_config_path() -> Path:
    """Where docker (and podman's compatible login) keep registry credentials."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def _normalise(key: str) -> str:
    key = re.sub(r"^[a-z]+://", "", key)
    return key.split("/", 1)[0]


def _from_helper(helper: str, host: str) -> Credentials | None:
    exe = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([exe, "get"], input=host.encode(), capture_output=True, timeout=60, check=False)
    except FileNotFoundError:
        raise RegistryError(
            f"credential helper {exe} named in {docker_config_path()} is not installed",
            host,
        ) from None
    except subprocess.TimeoutExpired:
        raise RegistryError(f"credential helper {exe} did not answer", host) from None
    if proc.returncode != 0:
        return None  # helpers exit non-zero for "no credentials for this host"
    try:
        data = json.loads(proc.stdout)
        return Credentials(str(data["Username"]), str(data["Secret"]))
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"credential helper {exe} gave an unreadable answer", host) from None


def docker_credentials(host: str, config: Path | None = None) -> Credentials | None:
    """Credentials for ``host`` from a docker config file, or None if it names none."""
    path = config or docker_config_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read docker config ({exc}); fix or remove it", str(path)) from None
    if not isinstance(data, dict):
        raise RegistryError("docker config is not a JSON object", str(path))
    helpers = data.get("credHelpers") or {}
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return _from_helper(helpers[host], host)
    auths = data.get("auths") or {}
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if _normalise(str(key)) != host or not isinstance(entry, dict):
                continue
            if isinstance(entry.get("auth"), str) and entry["auth"]:
                try:
                    user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    sep = ""
                if not sep:
                    raise RegistryError(f"auths[{key!r}].auth is not base64 of user:password", str(path))
                return Credentials(user, password)
            if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
                return Credentials(entry["username"], entry["password"])
    store = data.get("credsStore")
    if isinstance(store, str) and store:
        return _from_helper(store, host)
    return None
