"""Every JSON document inside a built package validates against its schema in schemas/.

The schemas are documentation users validate against. That the manifest parser refuses exactly
what the schemas refuse is tests/test_schemas_agree.py; this checks real packages against them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import pytest
from jsonschema.validators import Draft202012Validator
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.package import read_manifest
from mpkg._internal.trust.verify import payload_bytes
from mpkg_builder.build import build_package
from mpkg_builder.signing import keygen, sign
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"


def _validator(name: str) -> Draft202012Validator:
    registry: Registry = Registry()
    for path in SCHEMAS.glob("*.schema.json"):
        doc = json.loads(path.read_text())
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc))
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


@pytest.fixture(scope="module", params=["iris-mlp", "churn-tabular"])
def package(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("schemas")
    out = folder / f"{request.param}.mpkg"
    build_package(ROOT / "examples" / request.param, out)
    for i, algorithm in enumerate(("ed25519", "ecdsa-p256")):
        pair = keygen(folder / f"k{i}", algorithm)
        sign(out, pair.private_path)
    return out


def test_manifest_validates(package: Path) -> None:
    _validator("manifest.schema.json").validate(dict(read_manifest(package).raw))


def test_signature_envelope_and_statement_validate(package: Path) -> None:
    with PackageFile(package) as pkg:
        assert pkg.signatures_bytes is not None
        envelope = json.loads(pkg.signatures_bytes)
    _validator("signatures.schema.json").validate(envelope)
    assert len(envelope["signatures"]) == 2
    _validator("statement.schema.json").validate(json.loads(base64.b64decode(envelope["payload"])))


def test_example_validates(package: Path) -> None:
    with PackageFile(package) as pkg:
        manifest = read_manifest(package)
        entry = manifest.file(manifest.raw["example"]["path"])
        assert entry is not None
        _validator("example.schema.json").validate(json.loads(payload_bytes(pkg, entry)))


@pytest.mark.parametrize(
    ("schema", "doc"),
    [
        ("contract.schema.json", {"inputs": [], "outputs": []}),
        ("contract.schema.json", {"inputs": [{"name": "x", "dtype": "complex64", "shape": [1]}], "outputs": []}),
        ("signatures.schema.json", {"payload": "", "payloadType": "text/plain", "signatures": []}),
    ],
)
def test_schemas_reject_what_the_parser_rejects(schema: str, doc: object) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validator(schema).validate(doc)
