"""The read side of one storage interface with two backends: an OCI registry (:mod:`.oci`) and
the local store (:mod:`.local`). Pulling and the history only speak :class:`Store`, so they
behave the same with or without a server; the builder's write side extends it.

The primitives are the OCI distribution ones (content-addressed blobs, manifests, tags),
because that is what every registry can do; nothing here needs an OCI 1.1 registry. The media
types and limits here are the artifact vocabulary of spec/registry.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from mpkg.errors import RegistryError

Progress = Callable[[int], None]  # told the size of each piece moved, for progress bars

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DATA = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_DATA).hexdigest()
PACKAGE_ARTIFACT_TYPE = "application/vnd.mpkg.package.v1"
PACKAGE_LAYER_TYPE = "application/vnd.mpkg.package.v1.tar"
PACKAGE_CONFIG_TYPE = "application/vnd.mpkg.manifest.v1+json"  # config blob: the package's own manifest
EVENT_ARTIFACT_TYPE = "application/vnd.mpkg.event.v1"
EVENT_LAYER_TYPE = "application/vnd.mpkg.event.v1+json"
DSSE_LAYER_TYPE = "application/vnd.dsse.envelope.v1+json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_SMALL_BLOB_BYTES = 4 * 1024 * 1024  # events, envelopes: fetched into memory
MAX_JSON_DEPTH = 64  # registry JSON (manifests, events, tag lists) nests a few levels; deeper is hostile
READ_SIZE = 1024 * 1024
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_NESTING = [0] * 256
_NESTING[ord("[")] = _NESTING[ord("{")] = 1
_NESTING[ord("]")] = _NESTING[ord("}")] = -1


def json_depth(data: bytes) -> int:
    """How deeply ``data`` nests arrays and objects, found without parsing (so without recursion):
    strings are dropped, the brackets left are counted in C-speed passes."""
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_NESTING.__getitem__, brackets)), default=0)


def check_depth(data: bytes, where: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested beyond ``max_depth`` before any parser (or encoder) recurses into it."""
    depth = json_depth(data)
    if depth > max_depth:
        raise RegistryError(f"nests {depth} levels deep (at most {max_depth}); refusing hostile JSON", where)


def parse_json(data: bytes, where: str) -> Any:
    """Parse JSON a registry (or the store) gave us, depth-checked first, so a hostile document
    ends in one line rather than a RecursionError."""
    check_depth(data, where)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(f"is not JSON ({exc})", where) from None


@dataclass(frozen=True)
class Manifest:
    """Manifest bytes exactly as stored, and their digest."""

    data: bytes
    digest: str

    def json(self) -> dict[str, Any]:
        """The manifest parsed strictly as a JSON object."""
        obj = parse_json(self.data, f"manifest {self.digest}")
        if not isinstance(obj, dict):
            raise RegistryError("manifest is not a JSON object", self.digest)
        return obj


class Store(Protocol):
    """The read side of content-addressed storage with tags. ``repo`` is a repository path (no host)."""

    def describe(self) -> str:
        """Where this store keeps things, for messages."""
        ...

    @property
    def origin(self) -> str:
        """Which store this is, as a client remembers it (a registry's host, ``_local``)."""
        ...

    def blob_exists(self, repo: str, digest: str) -> bool:
        """Whether the repository holds the blob (a HEAD, no bytes move)."""
        ...

    def fetch_blob(self, repo: str, digest: str, size: int, out: BinaryIO) -> None:
        """Stream a blob into ``out``; raises RegistryError unless digest and size match."""
        ...

    def fetch_blob_bytes(self, repo: str, digest: str, limit: int = MAX_SMALL_BLOB_BYTES) -> bytes:
        """A small blob (an event, an envelope, a package manifest), checked against its digest."""
        ...

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        """The manifest a tag or digest names, or None if there is none."""
        ...

    def list_tags(self, repo: str) -> list[str]:
        """Every tag of the repository."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def digest_bytes(data: bytes) -> str:
    """The OCI digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
