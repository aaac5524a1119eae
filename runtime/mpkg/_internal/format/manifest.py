"""The manifest: the one document the package digest is taken over.

Parsing is strict and total: unknown keys, wrong types, unsafe paths and
inconsistent file lists are all reported together, each naming its field.
Field names are the spec's (spec/format.md §5).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mpkg._internal.contract.contract import Contract
from mpkg._internal.format import canonical
from mpkg._internal.format.digests import FILE_DIGEST_ALGORITHM, Digest, package_digest
from mpkg._internal.format.manifest_fields import (
    ENTRY_POINTS,
    MODEL_FORMATS,
    MODULE_RE,
    NAME_RE,
    PIN_NAME_RE,
    PIN_VERSION_RE,
    SEMVER_RE,
    TOP_OPTIONAL,
    TOP_REQUIRED,
    check_fields,
)
from mpkg._internal.format.shape import Checker
from mpkg.errors import ContractError, FormatError

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST_NAME = "mpkg/manifest.json"
SIGNATURES_NAME = "mpkg/signatures.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_FILES = 100_000

# Format v1 stores every file as is. A bit flipped inside zstd data can decode to the same bytes,
# so compressed members could not be accounted for bit by bit (spec/format.md §3.4).
ENCODINGS = ("identity",)
ROLES = ("weights", "code", "card", "environment", "lineage", "example")
# Each role lives under its own top-level folder; `mpkg/` is reserved for the manifest and signatures.
ROLE_ROOT = {
    "weights": "model",
    "code": "code",
    "card": "card",
    "environment": "environment",
    "lineage": "lineage",
    "example": "example",
}
_MAX_PATH = 1024
_MAX_COMPONENT = 255


def path_problem(path: object) -> str | None:
    """Why ``path`` is not a safe package path, or None. Checks are on the string itself:
    package paths never touch the file system until unpack, which re-checks the target."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    if len(path.encode("utf-8")) > _MAX_PATH:
        return f"is longer than {_MAX_PATH} bytes"
    if unicodedata.normalize("NFC", path) != path:
        return "is not in Unicode NFC form"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path) or "\\" in path:
        return "contains control characters or a backslash"
    if path.startswith("/"):
        return "is absolute; package paths are relative"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return "has an empty, '.' or '..' component"
        if len(part.encode("utf-8")) > _MAX_COMPONENT:
            return f"has a component longer than {_MAX_COMPONENT} bytes"
    return None


def fold(path: str) -> str:
    """The key two paths collide on (case-insensitive file systems, Unicode normalisation)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFKD", path).casefold())


@dataclass(frozen=True)
class FileEntry:
    """One file of the package as the manifest lists it."""

    path: str
    size: int
    digest: Digest
    encoding: str
    role: str

    @property
    def member_name(self) -> str:
        """The tar member name: the package path itself."""
        return self.path

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON form of this entry."""
        return {
            "path": self.path,
            "size": self.size,
            "digest": str(self.digest),
            "encoding": self.encoding,
            "role": self.role,
        }


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest. ``raw`` is the JSON document; ``digest`` identifies the package."""

    name: str
    version: str
    description: str
    model_format: str
    model_files: tuple[str, ...]
    code_root: str | None
    code_module: str | None
    contract: Contract
    files: tuple[FileEntry, ...]
    raw: Mapping[str, Any] = field(repr=False)
    digest: Digest = field(repr=False)
    encoded: bytes = field(repr=False)  # the canonical bytes the digest is over
    format_version: int = FORMAT_VERSION

    @property
    def environment(self) -> Mapping[str, Any]:
        """The environment section (lockfile, pins), checked at parse."""
        env: Mapping[str, Any] = self.raw.get("environment", {})
        return env

    @property
    def lineage(self) -> Mapping[str, Any]:
        """The lineage section (builder, git, data, params, metrics), checked at parse."""
        lineage: Mapping[str, Any] = self.raw.get("lineage", {})
        return lineage

    @property
    def card(self) -> Mapping[str, Any]:
        """The card section (path, metadata, author digest)."""
        card: Mapping[str, Any] = self.raw.get("card", {})
        return card

    @property
    def example(self) -> Mapping[str, Any] | None:
        """The example section, or None for a package without one."""
        example: Mapping[str, Any] | None = self.raw.get("example")
        return example

    @property
    def base(self) -> Mapping[str, Any] | None:
        """The package this one was versioned against, or None."""
        base: Mapping[str, Any] | None = self.raw.get("base")
        return base

    @property
    def entry_points(self) -> Mapping[str, list[str]]:
        """The code's entry points and the arguments each takes."""
        code = self.raw.get("code")
        eps: Mapping[str, list[str]] = code["entry_points"] if code else {}
        return eps

    @property
    def architecture(self) -> Mapping[str, Any]:
        """The model's architecture facts, which `diff` compares without reading weights."""
        arch: Mapping[str, Any] = self.raw["model"].get("architecture", {})
        return arch

    @property
    def metrics(self) -> dict[str, float]:
        """The lineage metrics, as numbers."""
        metrics: dict[str, float] = dict(self.lineage.get("metrics", {}))  # numbers, checked at parse
        return metrics

    def file(self, path: str) -> FileEntry | None:
        """The entry of ``path``, or None."""
        return next((f for f in self.files if f.path == path), None)

    def to_bytes(self) -> bytes:
        """The canonical bytes the package digest is taken over."""
        return self.encoded

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Manifest:
        """Build from a JSON document, checking everything; the digest is over its canonical bytes."""
        return _parse(doc, canonical.dumps(doc))

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse untrusted manifest bytes: size cap, strict canonical JSON, full schema checks."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise FormatError(f"is {len(data)} bytes, over the {MAX_MANIFEST_BYTES} byte limit", MANIFEST_NAME)
        doc = canonical.loads_canonical(data, MANIFEST_NAME)
        if not isinstance(doc, dict):
            raise FormatError("must be a JSON object", MANIFEST_NAME)
        return _parse(doc, data)


def _parse(doc: Mapping[str, Any], data: bytes) -> Manifest:
    """Check ``doc`` against spec §5: the rules of schemas/manifest.schema.json (``check_fields``), then
    the cross-field rules no JSON Schema can state (``_references``); all problems at once."""
    version = doc.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
        raise FormatError(
            f"format_version {version!r} is not supported by this mpkg "
            f"(supports {list(SUPPORTED_FORMAT_VERSIONS)}); upgrade mpkg",
            MANIFEST_NAME,
        )
    c = Checker(MANIFEST_NAME)
    c.obj(doc, "", TOP_REQUIRED, TOP_OPTIONAL)
    files = _parse_files(doc.get("files"), c)
    contract: Contract | None = None
    try:
        contract = Contract.from_json(doc.get("contract"), f"{MANIFEST_NAME}: contract")
    except ContractError as exc:
        c.problems.extend(exc.problems)
    check_fields(doc, c)
    _references(doc, files, c)
    if c.problems:
        raise FormatError(c.problems)
    assert contract is not None
    model, code = doc["model"], doc.get("code")
    return Manifest(
        name=doc["name"],
        version=doc["version"],
        description=doc.get("description", ""),
        model_format=model["format"],
        model_files=tuple(model["files"]),
        code_root=code["root"] if code else None,
        code_module=code["module"] if code else None,
        contract=contract,
        files=files,
        raw=doc,
        digest=package_digest(data),
        encoded=data,
    )


def _references(doc: Mapping[str, Any], files: tuple[FileEntry, ...], c: Checker) -> None:
    """Cross-field rules (spec §5.5): what other fields name must be in ``files`` with the right role."""
    by_path = {f.path: f for f in files}

    def names(ref: object, role: str, key: str) -> None:
        entry = by_path.get(ref) if isinstance(ref, str) else None
        if entry is None or entry.role != role:
            c.bad(key, f"{ref!r} must name a file with role '{role}' in files")

    model = doc.get("model")
    if isinstance(model, Mapping) and isinstance(model.get("files"), list):
        for path in model["files"]:
            names(path, "weights", "model.files")
    for section, key, role in (
        ("card", "path", "card"),
        ("environment", "lockfile", "environment"),
        ("example", "path", "example"),
    ):
        obj = doc.get(section)
        if isinstance(obj, Mapping) and key in obj:
            names(obj[key], role, f"{section}.{key}")
    if "code" not in doc:
        for entry in files:
            if entry.role == "code":
                c.bad("files", f"{entry.path!r} has role 'code' but the manifest has no 'code'")


_ENTRY_KEYS = ("path", "size", "digest", "encoding", "role")


def _parse_files(raw: object, c: Checker) -> tuple[FileEntry, ...]:
    items = c.array(raw, "files", max_items=MAX_FILES)
    if items is None:
        return ()
    entries: list[FileEntry] = []
    folded: dict[str, str] = {}
    for i, item in enumerate(items):
        at = f"files[{i}]"
        before = len(c.problems)
        entry = c.obj(item, at, _ENTRY_KEYS)
        if entry is None:
            continue
        path, digest = entry["path"], Digest.parse(entry["digest"])
        reason = path_problem(path)
        if reason:
            c.bad(f"{at}.path", f"{path!r} {reason}")
        c.integer(entry["size"], f"{at}.size", minimum=0)
        if digest is None or digest.algorithm != FILE_DIGEST_ALGORITHM:
            c.bad(f"{at}.digest", f"must be '{FILE_DIGEST_ALGORITHM}:<64 hex>'")
        if entry["encoding"] not in ENCODINGS:
            c.bad(f"{at}.encoding", f"must be {' or '.join(map(repr, ENCODINGS))}: format v1 stores files uncompressed")
        role = c.enum(entry["role"], f"{at}.role", ROLES)
        if role is not None and not reason and (path.split("/", 1)[0] != ROLE_ROOT[role] or "/" not in path):
            c.bad(f"{at}.path", f"a {role} file must live under '{ROLE_ROOT[role]}/'")
        if len(c.problems) != before:
            continue
        assert digest is not None
        fe = FileEntry(path, entry["size"], digest, entry["encoding"], role)
        key = fold(fe.path)
        if key in folded:
            c.bad(f"{at}.path", f"{path!r} collides with {folded[key]!r} (case or Unicode folding)")
        folded[key] = path
        entries.append(fe)
    paths = [e.path.encode("utf-8") for e in entries]
    if paths != sorted(paths):
        c.bad("files", "must be sorted by path (UTF-8 byte order)")
    return tuple(entries)


__all__ = [
    "ENCODINGS",
    "ENTRY_POINTS",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MAX_FILES",
    "MAX_MANIFEST_BYTES",
    "MODEL_FORMATS",
    "MODULE_RE",
    "NAME_RE",
    "PIN_NAME_RE",
    "PIN_VERSION_RE",
    "ROLES",
    "ROLE_ROOT",
    "SEMVER_RE",
    "SIGNATURES_NAME",
    "SUPPORTED_FORMAT_VERSIONS",
    "FileEntry",
    "Manifest",
    "fold",
    "path_problem",
]
