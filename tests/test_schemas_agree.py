"""The manifest parser refuses exactly what schemas/ refuses (plus the cross-field rules of
spec/format.md §5.5, which JSON Schema cannot state), in both directions.

Documents are generated (tests/manifestgen.py: rich valid manifests and random edits of
them), encoded canonically, and judged twice: by ``Manifest.from_bytes`` and by the JSON
Schemas with an independent implementation of the cross-field rules. The two verdicts
must be equal. JSON Schema patterns are ECMA-262: ``$`` is the end of the string and
``\\d`` is ASCII; Python's ``re`` differs on both, so the validator here matches patterns
with ECMA semantics (otherwise it would accept ``"victim\\n"`` as a name).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import ValidationError, validators
from jsonschema.validators import Draft202012Validator
from mpkg._internal.format import canonical
from mpkg._internal.format.manifest import Manifest
from mpkg.errors import FormatError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.manifestgen import documents, rich_doc, single_edits

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not isinstance(instance, str):
        return
    ecma = re.sub(r"(?<!\\)\$", r"\\Z", pattern)  # our schemas never put '$' inside a class
    if not re.search(ecma, instance, re.ASCII):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


def _validator(name: str) -> Any:
    registry: Registry = Registry()
    for path in SCHEMAS.glob("*.schema.json"):
        doc = json.loads(path.read_text())
        Draft202012Validator.check_schema(doc)
        # Without "$schema", a $ref'd schema is validated by this class too (jsonschema would
        # otherwise switch to the plain validator of the dialect it names).
        del doc["$schema"]
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc, DRAFT202012))
    schema = json.loads((SCHEMAS / name).read_text())
    return EcmaValidator(schema, registry=registry)


MANIFEST = _validator("manifest.schema.json")


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFKD", path).casefold())


def cross_field_problems(doc: dict[str, Any]) -> list[str]:
    """spec/format.md §5.5, written independently of mpkg._internal.format.manifest. Only called on documents
    the schema accepted, so every field has its schema type here."""
    problems = []
    paths = [f["path"] for f in doc["files"]]
    for p in paths:
        if unicodedata.normalize("NFC", p) != p:
            problems.append(f"{p!r} not NFC")
        if len(p.encode()) > 1024 or any(len(c.encode()) > 255 for c in p.split("/")):
            problems.append(f"{p!r} too long")
    if [p.encode() for p in paths] != sorted(p.encode() for p in paths):
        problems.append("files not sorted")
    if len({_fold(p) for p in paths}) != len(paths):
        problems.append("paths collide")
    roles = {f["path"]: f["role"] for f in doc["files"]}
    refs = [(p, "weights") for p in doc["model"]["files"]]
    refs += [(doc["card"]["path"], "card"), (doc["environment"]["lockfile"], "environment")]
    if "example" in doc:
        refs.append((doc["example"]["path"], "example"))
    problems += [f"{p!r} is not a {role} file" for p, role in refs if roles.get(p) != role]
    if "code" not in doc and "code" in roles.values():
        problems.append("code files without code")
    interface = doc["model"].get("architecture", {}).get("interface")
    for contract in (doc["contract"], *([interface] if isinstance(interface, dict) else [])):
        for side in ("inputs", "outputs"):
            names = [f["name"] for f in contract[side]]
            if len(set(names)) != len(names):
                problems.append(f"duplicate {side} names")
    return problems


def schema_verdict(data: bytes) -> bool:
    doc = json.loads(data)
    return MANIFEST.is_valid(doc) and not cross_field_problems(doc)


def parser_verdict(data: bytes) -> bool:
    try:
        Manifest.from_bytes(data)
    except FormatError as exc:
        assert all(r and "\n" not in r for r in exc.reasons()), exc.reasons()
        return False
    return True


def _encode(doc: dict[str, Any]) -> bytes | None:
    try:
        return canonical.dumps(doc)
    except (TypeError, ValueError):
        return None  # not JSON at all (an integer beyond 2^53): nothing to compare


@pytest.mark.parametrize("model_format", ["onnx", "safetensors"])
def test_the_rich_documents_are_valid_for_both(model_format: str) -> None:
    data = canonical.dumps(rich_doc(model_format))
    assert parser_verdict(data) and schema_verdict(data)


@pytest.mark.parametrize(("model_format", "under"), [("onnx", ()), ("safetensors", ("model",))])
def test_every_single_edit_is_judged_alike(model_format: str, under: tuple[str, ...]) -> None:
    """Deterministic sweep: every node of a rich manifest deleted, retyped and edited (for
    safetensors only the model section differs from the ONNX document)."""
    disagreements = []
    count = 0
    for label, doc in single_edits(rich_doc(model_format), under):
        data = _encode(doc)
        if data is None:
            continue
        count += 1
        parsed, schema = parser_verdict(data), schema_verdict(data)
        if parsed != schema:
            disagreements.append(f"{label}: the parser {'accepts' if parsed else 'refuses'} it, the schema does not")
    assert count > (1000 if not under else 50)
    assert not disagreements, "\n".join(disagreements[:10])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_parser_and_schema_agree_both_ways(doc: dict[str, Any]) -> None:
    data = _encode(doc)
    if data is None:
        return
    parsed, schema = parser_verdict(data), schema_verdict(data)
    if parsed != schema:
        problems = [e.message for e in MANIFEST.iter_errors(json.loads(data))] + cross_field_problems(json.loads(data))
        pytest.fail(f"parser {'accepts' if parsed else 'refuses'}, schema says {problems or 'valid'}: {data!r}")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "victim\n"),
        ("version", "1.0.0\n"),
        ("version", "1\u0661.0.0"),
        ("description", "two\nlines"),
        ("description", "sep\u2028arator"),
        ("base", {"digest": "sha256:" + "0" * 64 + "\n", "version": "1.0.0"}),
    ],
    ids=["name-newline", "version-newline", "version-unicode-digit", "description-newline", "u2028", "base-digest"],
)
def test_python_regex_pitfalls_are_refused_by_both(field: str, value: Any) -> None:
    """``re.match(r'^x$', 'x\\n')`` matches and ``\\d`` matches U+0661: the parser must not."""
    doc = rich_doc()
    doc[field] = value
    data = canonical.dumps(doc)
    assert not parser_verdict(data) and not schema_verdict(data)
