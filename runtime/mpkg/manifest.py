"""The manifest: the one document the package digest is taken over.

Parsing is strict and total: unknown keys, wrong types, unsafe paths and
inconsistent file lists are all reported together, each naming its field.
Field names are the spec's (spec/format.md §5).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import canonical
from .contract import Contract
from .digests import FILE_DIGEST_ALGORITHM, Digest, package_digest
from .errors import ContractError, FormatError, Problem

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
MODEL_FORMATS = ("onnx", "safetensors")
# Functions a code module may define, and what the runtime calls them with (spec/format.md §7).
ENTRY_POINTS = ("preprocess", "postprocess", "predict")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
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
        env: Mapping[str, Any] = self.raw.get("environment", {})
        return env

    @property
    def lineage(self) -> Mapping[str, Any]:
        lineage: Mapping[str, Any] = self.raw.get("lineage", {})
        return lineage

    @property
    def card(self) -> Mapping[str, Any]:
        card: Mapping[str, Any] = self.raw.get("card", {})
        return card

    @property
    def example(self) -> Mapping[str, Any] | None:
        example: Mapping[str, Any] | None = self.raw.get("example")
        return example

    @property
    def base(self) -> Mapping[str, Any] | None:
        base: Mapping[str, Any] | None = self.raw.get("base")
        return base

    @property
    def entry_points(self) -> Mapping[str, list[str]]:
        code = self.raw.get("code")
        eps: Mapping[str, list[str]] = code["entry_points"] if code else {}
        return eps

    @property
    def architecture(self) -> Mapping[str, Any]:
        arch: Mapping[str, Any] = self.raw["model"].get("architecture", {})
        return arch

    @property
    def metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = dict(self.lineage.get("metrics", {}))  # numbers, checked at parse
        return metrics

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def to_bytes(self) -> bytes:
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


_TOP_KEYS = {
    "format_version": True,
    "name": True,
    "version": True,
    "description": False,
    "model": True,
    "code": False,
    "contract": True,
    "environment": True,
    "card": True,
    "example": False,
    "lineage": False,
    "base": False,
    "files": True,
}


def _parse(doc: Mapping[str, Any], data: bytes) -> Manifest:
    where = MANIFEST_NAME
    version = doc.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
        raise FormatError(
            f"format_version {version!r} is not supported by this mpkg "
            f"(supports {list(SUPPORTED_FORMAT_VERSIONS)}); upgrade mpkg",
            where,
        )
    p: list[Problem] = []

    def bad(key: str, reason: str) -> None:
        p.append(Problem(f"{where}: {key}", reason))

    for key, required in _TOP_KEYS.items():
        if required and key not in doc:
            bad(key, "is required")
    for key in sorted(set(doc) - set(_TOP_KEYS)):
        bad(key, "is not a known manifest field")

    name = doc.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        bad("name", "must be 1-64 lowercase letters, digits and '-', starting with a letter")
    ver = doc.get("version")
    if not isinstance(ver, str) or not SEMVER_RE.match(ver):
        bad("version", "must be a SemVer 2.0.0 version such as 1.2.3")
    description = doc.get("description", "")
    if not isinstance(description, str) or not description.isprintable():
        bad("description", "must be one line of printable text")

    files = _parse_files(doc.get("files"), bad)
    by_path = {f.path: f for f in files}

    model = doc.get("model")
    model_format = ""
    model_files: tuple[str, ...] = ()
    if not isinstance(model, Mapping):
        bad("model", "must be an object")
    else:
        for key in sorted(set(model) - {"format", "files", "architecture"}):
            bad(f"model.{key}", "is not a known field")
        model_format = model.get("format", "")
        if model_format not in MODEL_FORMATS:
            bad("model.format", f"must be one of {list(MODEL_FORMATS)}")
        mf = model.get("files")
        if not isinstance(mf, list) or not mf or not all(isinstance(x, str) for x in mf):
            bad("model.files", "must be a non-empty list of paths")
        else:
            model_files = tuple(mf)
            for path in model_files:
                entry = by_path.get(path)
                if entry is None or entry.role != "weights":
                    bad("model.files", f"{path!r} is not a weights entry in files")
        if not isinstance(model.get("architecture", {}), Mapping):
            bad("model.architecture", "must be an object")
        else:
            _check_architecture(model.get("architecture", {}), bad)

    code_root = code_module = None
    code = doc.get("code")
    if code is not None:
        if not isinstance(code, Mapping) or set(code) != {"root", "module", "entry_points"}:
            bad("code", "must be an object with exactly 'root', 'module' and 'entry_points'")
        else:
            eps = code["entry_points"]
            if not isinstance(eps, Mapping) or not all(
                k in ENTRY_POINTS and isinstance(v, list) and all(isinstance(a, str) for a in v) for k, v in eps.items()
            ):
                bad("code.entry_points", f"must map names among {list(ENTRY_POINTS)} to parameter lists")
            code_root, code_module = code["root"], code["module"]
            if code_root != "code":
                bad("code.root", "must be 'code'")
            if not isinstance(code_module, str) or not MODULE_RE.match(code_module):
                bad("code.module", "must be a dotted Python module name")

    contract: Contract | None = None
    try:
        contract = Contract.from_json(doc.get("contract"), f"{where}: contract")
    except ContractError as exc:
        p.extend(exc.problems)

    _check_ref(doc.get("card"), "card", ("path", "metadata", "author_digest"), "card", by_path, bad)
    card_doc = doc.get("card")
    if isinstance(card_doc, Mapping) and "author_digest" in card_doc:
        author = Digest.parse(card_doc["author_digest"])
        if author is None or author.algorithm != FILE_DIGEST_ALGORITHM:
            bad("card.author_digest", f"must be '{FILE_DIGEST_ALGORITHM}:<64 hex digits>'")
    _check_ref(
        doc.get("environment"),
        "environment",
        ("lockfile", "kind", "requires_python", "packages"),
        "environment",
        by_path,
        bad,
        path_key="lockfile",
    )
    env = doc.get("environment")
    if isinstance(env, Mapping):
        if env.get("kind") not in ("requirements", "pylock"):
            bad("environment.kind", "must be 'requirements' or 'pylock'")
        packages = env.get("packages")
        if not isinstance(packages, list) or not all(
            isinstance(x, Mapping) and set(x) == {"name", "version"} and all(isinstance(v, str) for v in x.values())
            for x in packages
        ):
            bad("environment.packages", "must be a list of {name, version} strings")
    if doc.get("example") is not None:
        _check_ref(doc.get("example"), "example", ("path", "rtol", "atol"), "example", by_path, bad)
        ex = doc["example"]
        if isinstance(ex, Mapping):
            for key in ("rtol", "atol"):
                value = ex.get(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    bad(f"example.{key}", "must be a number >= 0")
    lineage = doc.get("lineage", {})
    if not isinstance(lineage, Mapping):
        bad("lineage", "must be an object")
    else:
        metrics = lineage.get("metrics", {})
        if not isinstance(metrics, Mapping) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()
        ):
            bad("lineage.metrics", "must be an object of metric names to numbers")
        datasets = lineage.get("data", [])
        if not isinstance(datasets, list) or not all(isinstance(d, Mapping) for d in datasets):
            bad("lineage.data", "must be a list of objects")
        if not isinstance(lineage.get("origin", {}), Mapping):
            bad("lineage.origin", "must be an object")
    base = doc.get("base")
    if base is not None and (
        not isinstance(base, Mapping) or set(base) != {"digest", "version"} or Digest.parse(base.get("digest")) is None
    ):
        bad("base", "must be {digest: 'sha256:<hex>', version}")
    for entry in files:
        if entry.role == "code" and code is None:
            bad("files", f"{entry.path!r} has role 'code' but the manifest has no 'code'")

    if p:
        raise FormatError(p)
    assert contract is not None and isinstance(name, str) and isinstance(ver, str)
    return Manifest(
        name=name,
        version=ver,
        description=description,
        model_format=model_format,
        model_files=model_files,
        code_root=code_root,
        code_module=code_module,
        contract=contract,
        files=files,
        raw=doc,
        digest=package_digest(data),
        encoded=data,
    )


def _check_architecture(arch: Mapping[str, Any], bad: Any) -> None:
    """The fields `mpkg diff` decides by (spec/semver.md §4.1); the rest of the summary is free-form."""
    for key in ("structure_digest", "weights_digest"):
        if key in arch and Digest.parse(arch[key]) is None:
            bad(f"model.architecture.{key}", "must be '<algorithm>:<64 hex digits>'")
    labels = arch.get("class_labels", [])
    if not isinstance(labels, list) or not all(
        (isinstance(x, list) and all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in x))
        or Digest.parse(x) is not None
        for x in labels
    ):
        bad("model.architecture.class_labels", "must be a list of label lists (integers or strings) or digests")
    producer = arch.get("producer", {"name": "", "version": ""})
    if not (
        isinstance(producer, Mapping)
        and set(producer) == {"name", "version"}
        and all(isinstance(v, str) for v in producer.values())
    ):
        bad("model.architecture.producer", "must be {name, version} strings")


def _check_ref(
    obj: object,
    key: str,
    allowed: tuple[str, ...],
    role: str,
    by_path: Mapping[str, FileEntry],
    bad: Any,
    path_key: str = "path",
) -> None:
    if not isinstance(obj, Mapping):
        bad(key, "must be an object")
        return
    for extra in sorted(set(obj) - set(allowed)):
        bad(f"{key}.{extra}", "is not a known field")
    ref = obj.get(path_key)
    entry = by_path.get(ref) if isinstance(ref, str) else None  # a list or object here is not a path
    if entry is None or entry.role != role:
        bad(f"{key}.{path_key}", f"must name a file with role '{role}' in files")


def _parse_files(raw: object, bad: Any) -> tuple[FileEntry, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_FILES:
        bad("files", f"must be a list of at most {MAX_FILES} entries")
        return ()
    entries: list[FileEntry] = []
    folded: dict[str, str] = {}
    for i, item in enumerate(raw):
        at = f"files[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"path", "size", "digest", "encoding", "role"}:
            bad(at, "must have exactly path, size, digest, encoding, role")
            continue
        path, size, digest = item["path"], item["size"], Digest.parse(item["digest"])
        encoding, role = item["encoding"], item["role"]
        reason = path_problem(path)
        if reason:
            bad(f"{at}.path", f"{path!r} {reason}")
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            bad(f"{at}.size", "must be an integer >= 0")
            continue
        if digest is None or digest.algorithm != FILE_DIGEST_ALGORITHM:
            bad(f"{at}.digest", f"must be '{FILE_DIGEST_ALGORITHM}:<64 hex>'")
            continue
        if encoding not in ENCODINGS:
            bad(f"{at}.encoding", f"must be {' or '.join(map(repr, ENCODINGS))}: format v1 stores files uncompressed")
            continue
        if role not in ROLES:
            bad(f"{at}.role", f"must be one of {list(ROLES)}")
            continue
        if path.split("/", 1)[0] != ROLE_ROOT[role] or "/" not in path:
            bad(f"{at}.path", f"a {role} file must live under '{ROLE_ROOT[role]}/'")
            continue
        entry = FileEntry(path, size, digest, encoding, role)
        key = fold(entry.path)
        if key in folded:
            bad(f"{at}.path", f"{path!r} collides with {folded[key]!r} (case or Unicode folding)")
        folded[key] = path
        entries.append(entry)
    paths = [e.path.encode("utf-8") for e in entries]
    if paths != sorted(paths):
        bad("files", "must be sorted by path (UTF-8 byte order)")
    return tuple(entries)
