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
from .errors import ContractError, FormatError
from .shape import ONE_LINE, Checker, pattern

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
# ASCII, end-anchored with \Z: the same language as the schemas' ECMA-262 patterns (see .shape).
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,63}\Z", re.ASCII)
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z",
    re.ASCII,
)
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z", re.ASCII)
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


_TOP_REQUIRED = ("format_version", "name", "version", "model", "contract", "environment", "card", "files")
_TOP_OPTIONAL = ("description", "code", "example", "lineage", "base")
_SHA256 = pattern(r"^sha256:[0-9a-f]{64}$")
# Lockfile pins as the builder records them: PEP 503 normalised names, PEP 440 normalised versions.
PIN_NAME_RE = pattern(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PIN_VERSION_RE = pattern(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*((a|b|rc)(0|[1-9][0-9]*))?"
    r"(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?(\+[a-z0-9]+(\.[a-z0-9]+)*)?$"
)


def _parse(doc: Mapping[str, Any], data: bytes) -> Manifest:
    """Check ``doc`` against spec §5: the rules of schemas/manifest.schema.json (``_shape``), then
    the cross-field rules no JSON Schema can state (``_references``); all problems at once."""
    version = doc.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
        raise FormatError(
            f"format_version {version!r} is not supported by this mpkg "
            f"(supports {list(SUPPORTED_FORMAT_VERSIONS)}); upgrade mpkg",
            MANIFEST_NAME,
        )
    c = Checker(MANIFEST_NAME)
    c.obj(doc, "", _TOP_REQUIRED, _TOP_OPTIONAL)
    files = _parse_files(doc.get("files"), c)
    contract: Contract | None = None
    try:
        contract = Contract.from_json(doc.get("contract"), f"{MANIFEST_NAME}: contract")
    except ContractError as exc:
        c.problems.extend(exc.problems)
    _shape(doc, c)
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


def _shape(doc: Mapping[str, Any], c: Checker) -> None:
    """Every field's type and form (schemas/manifest.schema.json, field by field)."""
    c.string(doc.get("name"), "name", NAME_RE, "must be 1-64 lowercase letters, digits and '-', starting with a letter")
    c.string(doc.get("version"), "version", SEMVER_RE, "must be a SemVer 2.0.0 version such as 1.2.3")
    if "description" in doc:
        c.string(doc["description"], "description", ONE_LINE, "must be one line of text (no control characters)")
    model = c.obj(doc.get("model"), "model", ("format", "files"), ("architecture",))
    if model is not None:
        c.enum(model["format"], "model.format", MODEL_FORMATS)
        paths = c.array(model["files"], "model.files", min_items=1, unique=True)
        if paths is not None:
            c.each(paths, "model.files", lambda v, k: c.string(v, k, reason="must be a package path"))
        if "architecture" in model:
            _architecture(model["architecture"], c)
    if "code" in doc:
        code = c.obj(doc["code"], "code", ("root", "module", "entry_points"))
        if code is not None:
            c.enum(code["root"], "code.root", ("code",))
            c.string(code["module"], "code.module", MODULE_RE, "must be a dotted Python module name")
            eps = c.obj(code["entry_points"], "code.entry_points", (), ENTRY_POINTS)
            if eps is not None:
                c.each(eps, "code.entry_points", lambda v, k: _strings(v, k, c, "a list of parameter names"))
    env = c.obj(doc.get("environment"), "environment", ("lockfile", "kind", "packages"), ("requires_python",))
    if env is not None:
        c.string(env["lockfile"], "environment.lockfile", reason="must be a package path")
        c.enum(env["kind"], "environment.kind", ("requirements", "pylock"))
        if "requires_python" in env:
            c.string(env["requires_python"], "environment.requires_python", ONE_LINE, "must be a PEP 440 specifier")
        if c.array(env["packages"], "environment.packages") is not None:
            c.each(env["packages"], "environment.packages", lambda v, k: _pin(v, k, c))
    card = c.obj(doc.get("card"), "card", ("path", "metadata"))
    if card is not None:
        c.string(card["path"], "card.path", reason="must be a package path")
        c.obj(card["metadata"], "card.metadata", closed=False)
    if "example" in doc:
        ex = c.obj(doc["example"], "example", ("path", "rtol", "atol"))
        if ex is not None:
            c.string(ex["path"], "example.path", reason="must be a package path")
            c.number(ex["rtol"], "example.rtol", minimum=0)
            c.number(ex["atol"], "example.atol", minimum=0)
    if "lineage" in doc:
        _lineage(doc["lineage"], c)
    if "base" in doc:
        base = c.obj(doc["base"], "base", ("digest", "version"))
        if base is not None:
            c.string(base["digest"], "base.digest", _SHA256, "must be 'sha256:<64 hex>'")
            c.string(base["version"], "base.version", SEMVER_RE, "must be a SemVer 2.0.0 version")


def _strings(value: object, key: str, c: Checker, what: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        c.bad(key, f"must be {what}")


def _pin(value: object, key: str, c: Checker) -> None:
    pin = c.obj(value, key, ("name", "version"))
    if pin is not None:
        c.string(pin["name"], f"{key}.name", PIN_NAME_RE, "must be a normalised package name (PEP 503)")
        c.string(pin["version"], f"{key}.version", PIN_VERSION_RE, "must be a normalised version (PEP 440)")


def _shape_list(value: object, key: str, c: Checker) -> None:
    if c.array(value, key) is not None:
        c.each(value, key, lambda v, k: c.integer(v, k, minimum=0))


def _architecture(value: object, c: Checker) -> None:
    """What `mpkg diff` reads (spec §5.2); other keys are free-form facts compared as values."""
    arch = c.obj(value, "model.architecture", closed=False)
    if arch is None:
        return
    at = "model.architecture"
    if "kind" in arch:
        c.enum(arch["kind"], f"{at}.kind", MODEL_FORMATS)
    if "ir_version" in arch:
        c.integer(arch["ir_version"], f"{at}.ir_version", minimum=0)
    for key in ("opsets", "opset_imports", "operators"):
        if key in arch and c.obj(arch[key], f"{at}.{key}", closed=False) is not None:
            c.each(arch[key], f"{at}.{key}", lambda v, k: c.integer(v, k, minimum=0))
    for key in ("graph_digest", "weights_digest"):
        if key in arch:
            c.string(arch[key], f"{at}.{key}", _SHA256, "must be 'sha256:<64 hex>'")
    for key, fields in (("initializers", ("name", "dtype", "shape")), ("tensors", ("file", "name", "dtype", "shape"))):
        if key in arch and c.array(arch[key], f"{at}.{key}") is not None:
            c.each(arch[key], f"{at}.{key}", lambda v, k, f=fields: _tensor(v, k, f, c))


def _tensor(value: object, key: str, fields: tuple[str, ...], c: Checker) -> None:
    tensor = c.obj(value, key, fields)
    if tensor is not None:
        for name in fields[:-1]:
            c.string(tensor[name], f"{key}.{name}")
        _shape_list(tensor["shape"], f"{key}.shape", c)


def _lineage(value: object, c: Checker) -> None:
    """Provenance: known keys are typed, others are free-form (spec §5.2)."""
    lineage = c.obj(value, "lineage", closed=False)
    if lineage is None:
        return
    if "git" in lineage:
        git = c.obj(lineage["git"], "lineage.git", closed=False)
        if git is not None:
            for key in ("commit", "subdir"):
                if key in git:
                    c.string(git[key], f"lineage.git.{key}")
            if "dirty" in git:
                c.boolean(git["dirty"], "lineage.git.dirty")
    if "data" in lineage and c.array(lineage["data"], "lineage.data") is not None:
        c.each(lineage["data"], "lineage.data", lambda v, k: c.obj(v, k, closed=False))
    if "params" in lineage:
        c.obj(lineage["params"], "lineage.params", closed=False)
    if "metrics" in lineage and c.obj(lineage["metrics"], "lineage.metrics", closed=False) is not None:
        c.each(lineage["metrics"], "lineage.metrics", lambda v, k: c.number(v, k))
    if "builder" in lineage:
        builder = c.obj(lineage["builder"], "lineage.builder", ("mpkg", "python", "platform"), closed=False)
        if builder is not None:
            for key in ("mpkg", "python", "platform"):
                c.string(builder[key], f"lineage.builder.{key}")


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
