"""Version arithmetic, version inference for `mpkg build --base`, rule overrides."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.manifest import Manifest
from mpkg.errors import SourceError
from mpkg_builder.build import PlannedFile
from mpkg_builder.diff import (
    Bump,
    RuleSet,
    bump_version,
    dependency_level,
    diff_manifests,
    infer_version,
    level_of,
    load_rules,
    parse_overrides,
    precedes,
)

from tests.builder.diff.mpkgdiff_factory import Doc, field_of, mutate, onnx_manifest, safetensors_manifest

MAJOR, MINOR, PATCH, NONE = Bump.MAJOR, Bump.MINOR, Bump.PATCH, Bump.NONE


@pytest.mark.parametrize(
    ("version", "bump", "expected"),
    [
        ("2.3.1", MAJOR, "3.0.0"),
        ("2.3.1", MINOR, "2.4.0"),
        ("2.3.1", PATCH, "2.3.2"),
        ("2.3.1", NONE, "2.3.1"),
        ("2.3.1+build.7", PATCH, "2.3.2"),
        # Cargo's 0.x convention: 0.y.z breaking bumps y, anything else z; 0.0.z always z.
        ("0.3.1", MAJOR, "0.4.0"),
        ("0.3.1", MINOR, "0.3.2"),
        ("0.3.1", PATCH, "0.3.2"),
        ("0.0.3", MAJOR, "0.0.4"),
        ("0.0.3", MINOR, "0.0.4"),
        # Pre-releases are released when that suffices.
        ("1.0.0-rc.1", MAJOR, "1.0.0"),
        ("1.2.0-rc.1", MAJOR, "2.0.0"),
        ("1.2.0-rc.1", MINOR, "1.2.0"),
        ("1.2.3-rc.1", MINOR, "1.3.0"),
        ("1.2.3-rc.1", PATCH, "1.2.3"),
        ("0.3.0-beta", MAJOR, "0.3.0"),
    ],
)
def test_bump_version(version: str, bump: Bump, expected: str) -> None:
    assert bump_version(version, bump) == expected


def test_precedence_follows_semver_spec() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    for a, b in itertools.pairwise(ordered):
        assert precedes(a, b) and not precedes(b, a), (a, b)
    assert not precedes("1.0.0+a", "1.0.0+b") and not precedes("1.0.0+b", "1.0.0+a")


@pytest.mark.parametrize(
    ("base", "version", "level"),
    [
        ("1.2.3", "2.0.0", MAJOR),
        ("1.2.3", "1.3.0", MINOR),
        ("1.2.3", "1.2.4", PATCH),
        ("1.2.3", "1.2.3", NONE),
        ("1.2.3", "1.0.0", NONE),
        ("1.2.3", "1.3.0-rc.1", PATCH),
        ("0.3.1", "0.4.0", MAJOR),
        ("0.3.1", "0.3.2", MINOR),
    ],
)
def test_level_of(base: str, version: str, level: Bump) -> None:
    assert level_of(base, version) is level


@pytest.mark.parametrize(
    ("old", "new", "level"),
    [
        ("1.26.4", "2.0.0", MAJOR),
        ("2.0.0", "1.26.4", MAJOR),
        ("1.26.4", "1.27.0", MINOR),
        ("1.26.4", "1.26.5", PATCH),
        ("1.26.4", "1.26.4.post1", PATCH),
        ("1.26", "1.26.0", NONE),
        ("0.13.2", "0.14.0", MAJOR),
        ("0.13.2", "0.13.3", MINOR),
        ("0.0.3", "0.0.4", MAJOR),
        ("1!1.0", "1.0", MAJOR),
        ("2024.1", "2024.2", MINOR),
        ("not a version", "1.0", MAJOR),
    ],
)
def test_dependency_level(old: str, new: str, level: Bump) -> None:
    assert dependency_level(old, new) is level


# --- infer_version -------------------------------------------------------------------------


def _building(base: Doc, **changes: object) -> Doc:
    """The document a build assembles: no version or files yet (its card file is rendered once
    the version is known); it records its base."""
    doc = mutate(base, lambda d: d.update(changes))
    for key in ("version", "files"):
        doc.pop(key)
    doc["base"] = {"digest": str(Manifest.from_json(base).digest), "version": base["version"]}
    return doc


def _dynamic_features(doc: Doc) -> None:
    field_of(doc, "inputs", "features")["shape"][1] = "n"


def test_infer_minor_from_base() -> None:
    base = mutate(onnx_manifest(), lambda d: d.update(version="2.3.1"))
    new = _building(mutate(base, _dynamic_features))
    decision = infer_version(Manifest.from_json(base), new)
    assert decision.version == "2.4.0" and decision.required == "2.4.0"
    assert decision.bump is MINOR and decision.declared is None


def test_declared_higher_is_accepted() -> None:
    base = onnx_manifest()
    new = _building(mutate(base, _dynamic_features))
    assert infer_version(base, new, declared="3.0.0").version == "3.0.0"
    assert infer_version(base, new, declared="1.1.0").version == "1.1.0"
    decision = infer_version(base, new, declared="1.1.0")
    assert decision.report.to_version == "1.1.0" and decision.report.version_ok


def test_declared_lower_names_the_findings_that_need_more() -> None:
    base = onnx_manifest()
    changed = mutate(base, _dynamic_features)
    changed = mutate(changed, lambda d: d["lineage"]["params"].update(lr=0.5))
    field_of(changed, "inputs", "species_hint")["optional"] = False
    new = _building(changed)
    with pytest.raises(SourceError) as err:
        infer_version(base, new, declared="1.1.0")
    problems = err.value.problems
    assert problems[0].where == "mpkg.toml: [package].version"
    assert "1.1.0" in problems[0].reason and "2.0.0" in problems[0].reason
    # Only the major finding is beyond what 1.1.0 covers; the minor and patch ones are not named.
    assert [p.where for p in problems[1:]] == ["inputs.species_hint.optional"]
    assert "input-became-required" in problems[1].reason


def test_declared_same_as_base_is_refused() -> None:
    base = onnx_manifest()
    changed = mutate(base, lambda d: d.update(description="Now documented."))
    with pytest.raises(SourceError) as err:
        infer_version(base, _building(changed), declared="1.0.0")
    assert "1.0.1" in err.value.problems[0].reason


@pytest.mark.parametrize("declared", [None, "1.0.1", "2.0.0"])
def test_rebuild_of_an_unchanged_source_is_nothing_to_release(declared: str | None) -> None:
    """Only build metadata differs (base, git commit, builder): refuse, do not mint a version."""
    base = onnx_manifest()
    rebuilt = mutate(base, lambda d: d["lineage"].update(git={"commit": "b" * 40, "dirty": False}))
    rebuilt = mutate(rebuilt, lambda d: d["lineage"]["builder"].update(mpkg="0.2.0"))
    with pytest.raises(SourceError) as err:
        infer_version(base, _building(rebuilt), declared=declared)
    (problem,) = err.value.problems
    assert problem.where == "--base"
    assert problem.reason.startswith("nothing to release: the source has not changed since iris-mlp 1.0.0")
    assert "lineage.builder.mpkg" in problem.reason and "lineage.git.commit" in problem.reason
    assert "\n" not in problem.reason


def test_declared_must_be_semver() -> None:
    base = onnx_manifest()
    with pytest.raises(SourceError, match="not a SemVer"):
        infer_version(base, _building(base), declared="v2")


def test_zero_x_breaking_change_bumps_minor() -> None:
    base = mutate(safetensors_manifest(), lambda d: d.update(version="0.3.1"))
    new = _building(mutate(base, lambda d: d["contract"]["outputs"][0].update(dtype="float64")))
    assert infer_version(base, new).version == "0.4.0"


def test_planned_files_are_hashed_to_tell_a_retrain(tmp_path: Path) -> None:
    """A build's planned files have no digests yet; infer_version computes them."""
    weights, code = b"\x00" * 4096, b"def predict(weights, inputs):\n    return inputs\n"
    base = safetensors_manifest()
    for f in base["files"]:
        if f["path"] == "model/weights.safetensors":
            f.update(digest=str(hash_bytes(weights)), size=len(weights))
        if f["path"] == "code/model.py":
            f.update(digest=str(hash_bytes(code)), size=len(code))
    (tmp_path / "weights.safetensors").write_bytes(weights)
    others = [
        PlannedFile(f["path"], f["role"], data=_content(f["path"]))
        for f in base["files"]
        if f["role"] not in ("card", "weights", "code")
    ]
    for f in others:
        next(e for e in base["files"] if e["path"] == f.path).update(
            digest=str(hash_bytes(f.data or b"")), size=len(f.data or b"")
        )
    planned = [
        PlannedFile("model/weights.safetensors", "weights", source=tmp_path / "weights.safetensors"),
        PlannedFile("code/model.py", "code", data=code),
        *others,
    ]
    with pytest.raises(SourceError, match="nothing to release"):
        infer_version(base, _building(base), planned)
    (tmp_path / "weights.safetensors").write_bytes(b"\x01" * 4096)
    retrained = infer_version(base, _building(base), planned)
    assert retrained.version == "1.1.0"
    assert [c.subject for c in retrained.report.changes] == ["files.model/weights.safetensors"]


def _content(path: str) -> bytes:
    return f"content of {path}\n".encode()


def test_unreadable_planned_file_is_a_source_error(tmp_path: Path) -> None:
    base = safetensors_manifest()
    planned = [PlannedFile("model/weights.safetensors", "weights", source=tmp_path / "gone")]
    with pytest.raises(SourceError, match="cannot be read"):
        infer_version(base, _building(base), planned)


# --- rule overrides ------------------------------------------------------------------------


def test_override_relevels_a_rule() -> None:
    base = onnx_manifest()
    renamed = mutate(base, lambda d: field_of(d, "inputs", "features")["shape"].__setitem__(0, "n"))
    assert diff_manifests(base, renamed).bump is PATCH
    strict = RuleSet({"input-dim-renamed": MINOR})
    report = diff_manifests(base, renamed, strict)
    assert report.bump is MINOR and report.suggested_version == "1.1.0"


def test_load_rules_reads_diff_rules_and_ignores_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "mpkg.toml"
    path.write_text('[package]\nname = "x"\n\n[diff.rules]\ndependency-added = "patch"\n')
    assert load_rules(path).bump("dependency-added") is PATCH
    assert load_rules(path).bump("input-removed") is MAJOR


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"no-such-rule": "major"}, "'no-such-rule' is not a diff rule; \\(rule ids"),
        ({"input-dim-renamd": "minor"}, "is not a diff rule; did you mean 'input-dim-renamed'\\?"),
        ({"input-removed": "none"}, "must be one of major, minor, patch"),
        ({"input-removed": 3}, "must be one of"),
    ],
)
def test_bad_overrides_are_refused(table: dict[str, object], message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_overrides(table, "[diff.rules]")


def test_bad_rules_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[diff.rules\n")
    with pytest.raises(SourceError, match="not valid TOML"):
        load_rules(bad)
    bad.write_text('[diff]\nrule = "x"\n')
    with pytest.raises(SourceError, match=r"only \[diff.rules\]"):
        load_rules(bad)
    with pytest.raises(SourceError, match="cannot be read"):
        load_rules(tmp_path / "missing.toml")
