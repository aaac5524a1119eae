"""The manifest's fields, one by one: the rules of schemas/manifest.schema.json (spec/format.md §5.2).

Each check mirrors the schema's rule for that field, so that the parser refuses exactly what
the schema refuses (tests/test_schemas_agree.py); the rules a JSON Schema cannot state (paths,
references between fields) are in :mod:`mpkg.manifest`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .shape import ONE_LINE, Checker, pattern

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
