"""Package references: ``[host[:port]/]repo[:tag|@sha256:<hex>]``.

A reference with a host names an OCI registry; without one it names the local store
(``MPKG_HOME``). The grammar is the OCI distribution one, so any registry accepts the names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mpkg.errors import UsageError

# End-anchored with \Z, never $: Python's $ also matches before a trailing newline, so
# "1.0.0\n" would pass as a tag (and name another file, print another line).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z", re.ASCII)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z", re.ASCII)
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}\Z", re.ASCII)
_HOST = re.compile(
    r"^(?:localhost|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?\Z",
    re.ASCII,
)
STAGES = ("staging", "production")


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``host`` is None for the local store."""

    host: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Where the repository lives, without tag or digest (what lifecycle commands take)."""
        return f"{self.host}/{self.repository}" if self.host else self.repository

    @property
    def reference(self) -> str | None:
        """The manifest reference to resolve: the digest wins over the tag."""
        return self.digest or self.tag

    def with_tag(self, tag: str) -> Reference:
        """The same repository at another tag."""
        return Reference(self.host, self.repository, check_tag(tag), None)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}" if self.tag else self.name


def check_tag(tag: str, where: str = "tag") -> str:
    """``tag`` if it is an OCI tag, else a usage error naming ``where``."""
    if not _TAG.match(tag):
        raise UsageError(
            f"{tag!r} is not a valid tag (letters, digits, '_', '.', '-'; at most 128, not starting with '.' or '-')",
            where,
        )
    return tag


def is_tag(value: str) -> bool:
    """Whether ``value`` is an OCI tag (anchored at the very end: no trailing newline)."""
    return bool(_TAG.match(value))


def is_digest(value: str) -> bool:
    """Whether ``value`` is a ``sha256:<64 hex>`` digest."""
    return bool(_DIGEST.match(value))


def version_tag(version: str) -> str:
    """The default tag for a package version: OCI tags forbid '+', so it becomes '_' (as Helm)."""
    return check_tag(version.replace("+", "_"), "version")


def parse_ref(text: str, *, allow_tag: bool = True, allow_digest: bool = True) -> Reference:
    """Parse a REF; a bad one is a UsageError naming what is wrong and the expected shape."""
    shape = "expected [HOST[:PORT]/]REPO[:TAG|@sha256:HEX], e.g. 127.0.0.1:5000/iris-mlp:1.0.0"
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise UsageError(f"{text!r} is not a reference; {shape}", "REF")
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST.match(digest):
            raise UsageError(f"{digest!r} is not a sha256 digest (sha256:<64 hex>)", "REF")
        if not allow_digest:
            raise UsageError(f"{text!r}: a digest is not allowed here; name the repository", "REF")
    host: str | None = None
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not _HOST.match(first):
            raise UsageError(f"{first!r} is not a registry host[:port]; {shape}", "REF")
        host, rest = first, remainder
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not allow_tag:
            raise UsageError(f"{text!r}: a tag is not allowed here; name the repository", "REF")
        check_tag(tag, "REF")
    if not _REPO.match(rest) or len(rest) > 255:
        raise UsageError(
            f"{rest!r} is not a repository name (lowercase letters, digits, separators "
            f"'.', '_', '-', components joined by '/'); {shape}",
            "REF",
        )
    if tag and digest:
        tag = None  # name:tag@digest means the digest, as docker does
    return Reference(host, rest, tag, digest)
