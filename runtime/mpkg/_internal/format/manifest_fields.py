"""The manifest's fields, one by one: the rules of schemas/manifest.schema.json (spec/format.md §5.2).

Each check mirrors the schema's rule for that field, so that the parser refuses exactly what
the schema refuses (tests/test_schemas_agree.py); the rules a JSON Schema cannot state (paths,
references between fields) are in :mod:`mpkg._internal.format.manifest`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mpkg._internal.contract.contract import Contract
from mpkg._internal.format.shape import ONE_LINE, Checker, is_int, pattern
from mpkg.errors import ContractError

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
TOP_REQUIRED = ("format_version", "name", "version", "model", "contract", "environment", "card", "files")
TOP_OPTIONAL = ("description", "code", "example", "lineage", "base")
_SHA256 = pattern(r"^sha256:[0-9a-f]{64}$")
_BLAKE3 = pattern(r"^blake3:[0-9a-f]{64}$")
_WEIGHTS_DIGEST = pattern(r"^(blake3|sha256):[0-9a-f]{64}$")  # sha256: packages built before the split
# Data elsewhere (lineage.data): a scheme and printable ASCII without spaces; digests users' tools give.
_DATA_URI = pattern(r"^[a-z][a-z0-9+.-]*://[!-~]+$")
_DATA_DIGEST = pattern(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}|md5:[0-9a-f]{32})$")
# Lockfile pins as the builder records them: PEP 503 normalised names, PEP 440 normalised versions.
PIN_NAME_RE = pattern(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PIN_VERSION_RE = pattern(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*((a|b|rc)(0|[1-9][0-9]*))?"
    r"(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?(\+[a-z0-9]+(\.[a-z0-9]+)*)?$"
)


def check_fields(doc: Mapping[str, Any], c: Checker) -> None:
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
    card = c.obj(doc.get("card"), "card", ("path", "metadata"), ("author_digest",))
    if card is not None:
        c.string(card["path"], "card.path", reason="must be a package path")
        c.obj(card["metadata"], "card.metadata", closed=False)
        if "author_digest" in card:
            c.string(card["author_digest"], "card.author_digest", _BLAKE3, "must be 'blake3:<64 hex>'")
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
    for key, regex, form in (
        ("graph_digest", _SHA256, "'sha256:<64 hex>'"),
        ("structure_digest", _BLAKE3, "'blake3:<64 hex>'"),
        ("weights_digest", _WEIGHTS_DIGEST, "'blake3:<64 hex>' (or 'sha256:<64 hex>')"),
    ):
        if key in arch:
            c.string(arch[key], f"{at}.{key}", regex, f"must be {form}")
    if "class_labels" in arch and c.array(arch["class_labels"], f"{at}.class_labels") is not None:
        c.each(arch["class_labels"], f"{at}.class_labels", lambda v, k: _labels(v, k, c))
    if "producer" in arch:
        producer = c.obj(arch["producer"], f"{at}.producer", ("name", "version"))
        if producer is not None:
            c.string(producer["name"], f"{at}.producer.name")
            c.string(producer["version"], f"{at}.producer.version")
    for key, fields in (("initializers", ("name", "dtype", "shape")), ("tensors", ("file", "name", "dtype", "shape"))):
        if key in arch and c.array(arch[key], f"{at}.{key}") is not None:
            c.each(arch[key], f"{at}.{key}", lambda v, k, f=fields: _tensor(v, k, f, c))
    if "interface" in arch:  # the ONNX graph's own inputs and outputs, in contract form (§6)
        try:
            Contract.from_json(arch["interface"], f"{c.where}: {at}.interface")
        except ContractError as exc:
            c.problems.extend(exc.problems)


def _labels(value: object, key: str, c: Checker) -> None:
    """One labelled node's classes: the labels themselves, or the digest of a long list."""
    if isinstance(value, str):
        c.string(value, key, _BLAKE3, "must be a list of labels (integers or strings) or 'blake3:<64 hex>'")
    elif not isinstance(value, list) or not all(is_int(v) or isinstance(v, str) for v in value):
        c.bad(key, "must be a list of labels (integers or strings) or 'blake3:<64 hex>'")


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
        c.each(lineage["data"], "lineage.data", lambda v, k: _dataset(v, k, c))
    if "origin" in lineage:
        c.obj(lineage["origin"], "lineage.origin", closed=False)
    if "params" in lineage:
        c.obj(lineage["params"], "lineage.params", closed=False)
    if "metrics" in lineage and c.obj(lineage["metrics"], "lineage.metrics", closed=False) is not None:
        c.each(lineage["metrics"], "lineage.metrics", lambda v, k: c.number(v, k))
    if "builder" in lineage:
        builder = c.obj(lineage["builder"], "lineage.builder", ("mpkg", "python", "platform"), closed=False)
        if builder is not None:
            for key in ("mpkg", "python", "platform"):
                c.string(builder[key], f"lineage.builder.{key}")


def _dataset(value: object, key: str, c: Checker) -> None:
    """A dataset: a file by path (DVC's, or hashed at build), or data elsewhere by uri and digest."""
    data = c.obj(value, key, closed=False)
    if data is None:
        return
    if "path" not in data and not ("uri" in data and "digest" in data):
        c.bad(key, "must name a path, or a uri and a digest")
    if "path" in data:
        c.string(data["path"], f"{key}.path")
    if "uri" in data:
        c.string(data["uri"], f"{key}.uri", _DATA_URI, "must be scheme://location in printable ASCII, no spaces")
    if "digest" in data:
        digests = "must be sha256:<64 hex>, sha512:<128 hex> or md5:<32 hex>"
        c.string(data["digest"], f"{key}.digest", _DATA_DIGEST, digests)
    if "size" in data:
        c.integer(data["size"], f"{key}.size", minimum=0)


__all__ = [
    "ENTRY_POINTS",
    "MODEL_FORMATS",
    "MODULE_RE",
    "NAME_RE",
    "PIN_NAME_RE",
    "PIN_VERSION_RE",
    "SEMVER_RE",
    "TOP_OPTIONAL",
    "TOP_REQUIRED",
    "check_fields",
]
