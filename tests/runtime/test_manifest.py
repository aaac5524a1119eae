"""The manifest (spec/format.md §5): strict parsing, one byte form, property-based round trips.

`tests/runtime/test_canonical.py` covers the JSON encoding itself; these tests are about
the manifest document built on it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mpkg._internal.format import canonical
from mpkg._internal.format.manifest import Manifest, fold, path_problem
from mpkg.errors import FormatError

from tests.manifestgen import node_paths

DIGEST = "blake3:" + "ab" * 32


def _entry(path: str, role: str, encoding: str = "identity", size: int = 3) -> dict[str, Any]:
    return {"path": path, "size": size, "digest": DIGEST, "encoding": encoding, "role": role}


def base_doc() -> dict[str, Any]:
    return {
        "format_version": 1,
        "name": "m",
        "version": "1.0.0",
        "model": {"format": "onnx", "files": ["model/model.onnx"], "architecture": {"kind": "onnx"}},
        "contract": {
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
            "outputs": [{"name": "y", "dtype": "int64", "shape": ["batch"]}],
        },
        "environment": {"lockfile": "environment/requirements.lock", "kind": "requirements", "packages": []},
        "card": {"path": "card/MODEL_CARD.md", "metadata": {}},
        "files": [
            _entry("card/MODEL_CARD.md", "card"),
            _entry("environment/requirements.lock", "environment"),
            _entry("model/model.onnx", "weights"),
        ],
    }


def test_the_example_manifests_parse_and_reencode_identically(built) -> None:  # type: ignore[no-untyped-def]
    from mpkg._internal.format.package import read_manifest

    for path in (*built.unsigned.values(), *built.signed.values()):
        m = read_manifest(path)
        assert Manifest.from_bytes(m.to_bytes()).to_bytes() == m.to_bytes()
        assert str(m.digest) == "sha256:" + hashlib.sha256(m.to_bytes()).hexdigest()
        assert m.lineage["builder"]["mpkg"] and m.card["path"] == "card/MODEL_CARD.md"


def test_typed_view() -> None:
    doc = base_doc()
    doc["code"] = {"root": "code", "module": "pkg.pipeline", "entry_points": {"preprocess": ["inputs"]}}
    doc["files"].insert(1, _entry("code/pkg/pipeline.py", "code"))
    doc["example"] = {"path": "example/example.json", "rtol": 0.001, "atol": 0}
    doc["files"].insert(3, _entry("example/example.json", "example"))
    doc["lineage"] = {"metrics": {"accuracy": 0.97}, "git": {"commit": "abc", "dirty": False}}
    doc["base"] = {"digest": "sha256:" + "00" * 32, "version": "0.9.0"}
    m = Manifest.from_json(doc)
    assert (m.name, m.version, m.model_format, m.model_files) == ("m", "1.0.0", "onnx", ("model/model.onnx",))
    assert (m.code_root, m.code_module) == ("code", "pkg.pipeline")
    assert m.entry_points == {"preprocess": ["inputs"]}
    assert m.metrics == {"accuracy": 0.97}
    assert m.example == {"path": "example/example.json", "rtol": 0.001, "atol": 0}
    assert m.base == {"digest": "sha256:" + "00" * 32, "version": "0.9.0"}
    assert m.file("code/pkg/pipeline.py") is not None and m.file("nope") is None
    assert [f.member_name for f in m.files] == [f.path for f in m.files]  # v1: no `.zst` members
    assert m.contract.inputs[0].name == "x"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("contract"), "contract"),
        (lambda d: d.update(name="Bad"), "name"),
        (lambda d: d.update(version="01.0.0"), "version"),
        (lambda d: d.update(description=3), "description"),
        (lambda d: d.update(description="line\nok: forged"), "description"),
        (lambda d: d["model"].update(format="pickle"), "model.format"),
        (lambda d: d["model"].update(files=["model/other.onnx"]), "model.files"),
        (lambda d: d["environment"].update(kind="conda"), "environment.kind"),
        (lambda d: d["environment"].update(packages=[{"name": "numpy"}]), "environment.packages"),
        (lambda d: d["card"].update(path="card/other.md"), "card.path"),
        (lambda d: d.update(example={"path": "example/x.json", "rtol": -1, "atol": 0}), "example"),
        (lambda d: d.update(base={"digest": "md5:00", "version": "1.0.0"}), "base"),
        (lambda d: d.update(code={"root": "src", "module": "m", "entry_points": {}}), "code.root"),
        (lambda d: d.update(code={"root": "code", "module": "m", "entry_points": {"run": []}}), "code.entry_points"),
        (lambda d: d["files"].reverse(), "files"),
        (lambda d: d["files"].append(_entry("code/x.py", "code")), "files"),
        (lambda d: d["files"][0].update(size=-1), "files[0].size"),
        (lambda d: d["files"][0].update(size=True), "files[0].size"),
        (lambda d: d["files"][0].update(role="weights"), "files[0].path"),
        (lambda d: d["files"][0].update(encoding="gzip"), "files[0].encoding"),
        (lambda d: d["files"][0].update(encoding="zstd"), "files[0].encoding"),
        (lambda d: d["files"][2].update(encoding="zstd"), "files[2].encoding"),
        (lambda d: d["files"][0].update(extra=1), "files[0]"),
        (lambda d: d.update(lineage=[]), "lineage"),
        (lambda d: d.update(lineage={"metrics": {"note": "n/a"}}), "lineage.metrics"),
        (lambda d: d.update(lineage={"metrics": None}), "lineage.metrics"),
    ],
)
def test_each_field_rule_names_the_field(mutate: Any, field: str) -> None:
    doc = base_doc()
    mutate(doc)
    with pytest.raises(FormatError) as exc:
        Manifest.from_json(doc)
    assert any(p.where.endswith(f": {field}") or f": {field}" in p.where for p in exc.value.problems), (
        field,
        exc.value.diagnostics(),
    )
    assert all("\n" not in line for line in exc.value.reasons())


def test_compressed_encoding_is_refused_with_the_reason() -> None:
    """v1 stores every file as is (spec §3.4): "zstd", once valid, now says what v1 accepts and why."""
    for index in (0, 2):  # a card, and the weights
        doc = base_doc()
        doc["files"][index]["encoding"] = "zstd"
        with pytest.raises(FormatError) as exc:
            Manifest.from_json(doc)
        (reason,) = [r for r in exc.value.reasons() if f"files[{index}].encoding" in r]
        assert "must be 'identity'" in reason and "uncompressed" in reason, reason


def test_all_problems_are_reported_together() -> None:
    doc = base_doc()
    doc.update(name="BAD", version="x", surprise=1)
    doc["files"][0]["size"] = "3"
    with pytest.raises(FormatError) as exc:
        Manifest.from_json(doc)
    text = exc.value.diagnostics()
    for field in ("name", "version", "surprise", "files[0].size"):
        assert f"mpkg/manifest.json: {field}" in text, text


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "non-empty"),
        ("/abs", "absolute"),
        ("a//b", "empty"),
        ("a/./b", "'.'"),
        ("a/../b", "'..'"),
        ("a\\b", "backslash"),
        ("a\x00b", "control"),
        ("a\x7fb", "control"),
        ("a\x85b", "control"),  # C1 NEXT LINE: some terminals break the line on it
        (unicodedata.normalize("NFD", "é"), "NFC"),
        ("a/" + "x" * 256, "component longer"),
        ("a/" * 600, "longer than 1024"),
    ],
)
def test_path_problems(path: str, problem: str) -> None:
    reason = path_problem(path)
    assert reason is not None and problem in reason


def test_safe_paths_and_folding() -> None:
    for ok in ("model/model.onnx", "lineage/données.csv", "code/a b/c.py", "x" * 255):
        assert path_problem(ok) is None
    assert fold("Code/Ä.py") == fold("code/ä.py") == fold("code/a\u0308.py".upper().lower())
    assert fold("lineage/ﬁle") == fold("lineage/file")
    assert fold("lineage/a") != fold("lineage/b")


def test_from_bytes_refuses_non_canonical_and_oversized() -> None:
    good = canonical.dumps(base_doc())
    assert Manifest.from_bytes(good).to_bytes() == good
    pretty = json.dumps(base_doc(), indent=1, sort_keys=True).encode()
    with pytest.raises(FormatError, match="not in canonical JSON form"):
        Manifest.from_bytes(pretty)
    with pytest.raises(FormatError, match="over the 16777216 byte limit"):
        Manifest.from_bytes(b" " * (16 * 1024 * 1024 + 1))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update({"x\nok: m 1.0.0 verified": 1}),
        lambda d: d["model"].update({"x\rok": 1}),
        lambda d: d["card"].update({"x\nok": 1}),
        lambda d: d["contract"]["inputs"][0].update({"x\u2028ok": 1}),
    ],
    ids=["top-level", "model", "card", "contract-field"],
)
def test_untrusted_keys_cannot_inject_lines(mutate: Any) -> None:
    """A hostile manifest's unknown key is echoed in the refusal; a newline in it would print a
    forged line (say "ok: ... verified") under `mpkg verify`. Reasons must stay one line."""
    doc = base_doc()
    mutate(doc)
    with pytest.raises(FormatError) as exc:
        Manifest.from_json(doc)
    for reason in exc.value.reasons():
        assert len(reason.splitlines()) == 1, reason


# ---- property-based -------------------------------------------------------------------------

# Printable text only: control characters in names are covered by test_untrusted_keys_cannot_inject_lines.
_text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12)
_json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | _text
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_component = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd", "Lo"), whitelist_characters="-_. "),
    min_size=1,
    max_size=12,
).map(lambda s: unicodedata.normalize("NFC", s))
_semver = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-{pre}" if pre else ""),
    st.integers(0, 999),
    st.integers(0, 999),
    st.integers(0, 999),
    st.sampled_from(["", "rc.1", "alpha", "beta.2"]),
)


@st.composite
def valid_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc = base_doc()
    doc["name"] = draw(st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z"))
    doc["version"] = draw(_semver)
    if draw(st.booleans()):
        doc["description"] = draw(st.text(max_size=40).filter(str.isprintable))
    doc["card"]["metadata"] = draw(st.dictionaries(_text, _json, max_size=3))
    metrics = st.dictionaries(_text, st.floats(allow_nan=False, allow_infinity=False), max_size=3)
    doc["lineage"] = {"metrics": draw(metrics), "params": draw(st.dictionaries(_text, _json, max_size=3))}
    extra = draw(st.lists(st.lists(_component, min_size=1, max_size=3).map("/".join), max_size=4))
    for rel in extra:
        path = f"lineage/{rel}"
        assume(path_problem(path) is None)
        size = draw(st.integers(0, 2**40))
        doc["files"].append(_entry(path, "lineage", size=size))
    names = [f["path"] for f in doc["files"]]
    assume(len({fold(n) for n in names}) == len(names))
    doc["files"].sort(key=lambda f: f["path"].encode())
    return doc


@settings(max_examples=200, deadline=None)
@given(valid_docs())
def test_round_trip(doc: dict[str, Any]) -> None:
    m = Manifest.from_json(doc)
    data = m.to_bytes()
    again = Manifest.from_bytes(data)
    assert again.to_bytes() == data
    assert again.digest == m.digest and str(m.digest) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert again.raw == doc
    assert again.files == m.files and again.contract == m.contract


@st.composite
def mutated_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(draw(valid_docs()))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(node_paths(doc)[1:]))
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["delete", "replace", "add"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(_json)
        elif isinstance(parent, dict):
            parent[draw(_text)] = draw(_json)
        else:
            parent.insert(path[-1], draw(_json))
    return doc


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_docs())
def test_mutated_documents_are_refused_or_reencode_identically(doc: dict[str, Any]) -> None:
    """Any edit to a valid manifest is either refused with FormatError (one line per problem),
    or parses to something that re-encodes to the same bytes; the typed view never crashes."""
    data = canonical.dumps(doc)
    try:
        m = Manifest.from_bytes(data)
    except FormatError as exc:
        assert all(r and "\n" not in r for r in exc.reasons())
        return
    assert m.to_bytes() == data
    # every accessor works on whatever was accepted
    _ = (m.environment, m.lineage, m.card, m.example, m.base, m.entry_points, m.architecture, m.metrics)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_byte_mutations_of_manifest_bytes(data: st.DataObject) -> None:
    good = canonical.dumps(base_doc())
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)), min_size=1, max_size=3))
    raw = bytearray(good)
    for pos, value in edits:
        raw[pos] = value
    try:
        m = Manifest.from_bytes(bytes(raw))
    except FormatError:
        return
    assert m.to_bytes() == bytes(raw)
