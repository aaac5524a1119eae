"""The semantic-versioning rules of `mpkg diff`, as data.

Each rule has a stable id (used in reports and in per-project overrides), a
default bump and the reason for it; spec/semver.md is the same table in prose and
a test keeps the two in step. The engine only decides *which* rule a change
matches; *how much* it bumps comes from here, so a project can re-level a rule
(like cargo-semver-checks lint levels) without touching the engine.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from mpkg.errors import Problem, SourceError


class Bump(IntEnum):
    """A required version bump; ordered so the overall bump is ``max`` of the findings."""

    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Bump:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(text) from None


@dataclass(frozen=True)
class Rule:
    id: str
    bump: Bump
    category: str
    summary: str
    rationale: str


MAJOR, MINOR, PATCH = Bump.MAJOR, Bump.MINOR, Bump.PATCH

# fmt: off
_TABLE: tuple[tuple[str, Bump, str, str, str], ...] = (
    # --- identity and format ---------------------------------------------------------
    ("name-changed", MAJOR, "package",
     "the package name changed",
     "a different name is a different package; nothing that asked for the old one finds it"),
    ("model-format-changed", MAJOR, "model",
     "the model format changed (e.g. onnx -> safetensors)",
     "loaders, runtimes and serving code for one format cannot load the other"),
    # --- inputs (contravariant: the package must keep accepting what callers send) ----
    ("input-removed", MAJOR, "interface",
     "an input was removed or renamed",
     "callers still send it; a rename is a removal plus an addition"),
    ("input-added-required", MAJOR, "interface",
     "a required input was added",
     "existing callers do not send it"),
    ("input-added-optional", MINOR, "interface",
     "an optional input was added",
     "existing calls stay valid; new callers gain a feature"),
    ("input-became-required", MAJOR, "interface",
     "an optional input became required",
     "callers that omit it are now refused"),
    ("input-became-optional", MINOR, "interface",
     "a required input became optional",
     "every existing call still sends it; omitting it is new"),
    ("input-dtype-widened", MINOR, "interface",
     "an input dtype widened along a safe cast",
     "every value callers send still fits; the runtime casts (mpkg.dtypes.SAFE_CASTS)"),
    ("input-dtype-narrowed", MAJOR, "interface",
     "an input dtype narrowed or changed incompatibly",
     "some values callers send no longer fit the new dtype"),
    ("input-rank-changed", MAJOR, "interface",
     "an input's rank (number of dims) changed",
     "tensors of the old rank are refused"),
    ("input-dim-changed", MAJOR, "interface",
     "a fixed input dim changed size",
     "tensors of the old size are refused"),
    ("input-dim-fixed", MAJOR, "interface",
     "a dynamic input dim became fixed",
     "callers sending any other size are refused"),
    ("input-dim-dynamic", MINOR, "interface",
     "a fixed input dim became dynamic",
     "the old size is still accepted, and more"),
    ("input-dim-renamed", PATCH, "interface",
     "a dynamic input dim was renamed (e.g. batch -> n)",
     "dynamic dims accept any size whatever their name; the name is documentation"),
    ("input-enum-narrowed", MAJOR, "interface",
     "an input enum lost values (or gained a restriction)",
     "callers sending a dropped value are refused"),
    ("input-enum-widened", MINOR, "interface",
     "an input enum gained values (or lost its restriction)",
     "every old value is still accepted"),
    ("input-nullable-removed", MAJOR, "interface",
     "an input stopped accepting nulls",
     "callers sending nulls are refused"),
    ("input-nullable-added", MINOR, "interface",
     "an input started accepting nulls",
     "every old call is still valid"),
    ("input-description-changed", PATCH, "interface",
     "an input's description changed",
     "documentation only"),
    ("output-removed", MAJOR, "interface",
     "an output was removed or renamed",
     "consumers read it"),
    # --- outputs (covariant: consumers must keep being able to read what comes back) ---
    ("output-added", MINOR, "interface",
     "an output was added",
     "consumers ignore fields they do not know"),
    ("output-became-optional", MAJOR, "interface",
     "an output may now be absent",
     "consumers expect it in every response"),
    ("output-became-required", MINOR, "interface",
     "an optional output is now always present",
     "consumers already handle its presence"),
    ("output-dtype-widened", MAJOR, "interface",
     "an output dtype widened",
     "consumers holding the old dtype may not fit the new values"),
    ("output-dtype-narrowed", MINOR, "interface",
     "an output dtype narrowed along a safe cast",
     "every new value fits what consumers hold (mpkg.dtypes.SAFE_CASTS)"),
    ("output-dtype-changed", MAJOR, "interface",
     "an output dtype changed incompatibly",
     "neither dtype holds the other's values"),
    ("output-rank-changed", MAJOR, "interface",
     "an output's rank changed",
     "consumers index the old rank"),
    ("output-dim-changed", MAJOR, "interface",
     "a fixed output dim changed size",
     "consumers rely on the old size"),
    ("output-dim-dynamic", MAJOR, "interface",
     "a fixed output dim became dynamic",
     "consumers relying on the fixed size may get another"),
    ("output-dim-fixed", MINOR, "interface",
     "a dynamic output dim became fixed",
     "a stronger promise; consumers already handle any size"),
    ("output-dim-renamed", PATCH, "interface",
     "a dynamic output dim was renamed",
     "the name is documentation"),
    ("output-enum-widened", MAJOR, "interface",
     "an output enum gained values (or lost its restriction)",
     "consumers may receive a value they do not handle"),
    ("output-enum-narrowed", MINOR, "interface",
     "an output enum lost values (or gained a restriction)",
     "consumers handle every value that can still occur"),
    ("output-nullable-added", MAJOR, "interface",
     "an output may now be null",
     "consumers do not expect nulls"),
    ("output-nullable-removed", MINOR, "interface",
     "an output is no longer null",
     "consumers already handle non-null values"),
    ("output-description-changed", PATCH, "interface",
     "an output's description changed",
     "documentation only"),
    ("contract-order-changed", PATCH, "interface",
     "inputs or outputs were reordered",
     "fields are matched by name, never by position"),
    # --- architecture ------------------------------------------------------------------
    ("tensor-added", MAJOR, "architecture",
     "a weight tensor was added",
     "a different architecture: fine-tuning, adapters and weight surgery on the old one break"),
    ("tensor-removed", MAJOR, "architecture",
     "a weight tensor was removed or renamed",
     "code that loads weights by name breaks"),
    ("tensor-dtype-changed", MAJOR, "architecture",
     "a weight tensor's dtype changed",
     "a different numeric architecture (e.g. quantisation); loaders expecting the old dtype break"),
    ("tensor-shape-changed", MAJOR, "architecture",
     "a weight tensor's shape changed",
     "a different architecture; loading old-shaped weights into it fails"),
    ("tensor-file-changed", PATCH, "architecture",
     "a tensor moved to another weights file",
     "storage layout only; tensors are found by name through the manifest"),
    ("graph-operators-changed", MAJOR, "architecture",
     "the ONNX graph's operator counts changed",
     "a different computation, even with the same interface"),
    ("graph-structure-changed", MAJOR, "architecture",
     "the ONNX graph structure changed",
     "a different computation (wiring or attributes), even with the same operators"),
    ("graph-interface-changed", PATCH, "architecture",
     "the ONNX graph digest changed only alongside the interface",
     "operators, opsets and initializers are unchanged; the interface findings classify it"),
    ("graph-opset-changed", MAJOR, "architecture",
     "an ONNX opset import changed",
     "operator semantics follow the opset; runtimes lacking the new opset refuse the model"),
    ("graph-ir-version-changed", MAJOR, "architecture",
     "the ONNX IR version changed",
     "runtimes older than the new IR version refuse the model"),
    ("architecture-changed", MAJOR, "architecture",
     "another architecture field changed",
     "unknown architecture facts are assumed to matter"),
    ("architecture-unknown", MAJOR, "architecture",
     "weights changed and one package records no architecture to compare",
     "without an architecture summary a retrain cannot be told from a new model"),
    ("weights-files-changed", MAJOR, "architecture",
     "a weights file was added, removed or renamed",
     "consumers that open weights by path break"),
    ("weights-changed", MINOR, "weights",
     "weight values changed (retrained)",
     "same tensors, new values: callers keep working but get different predictions"),
    # --- code ----------------------------------------------------------------------------
    ("entry-point-added", MAJOR, "code",
     "an entry point (preprocess/postprocess/predict) was added",
     "the runtime now calls different code on every request: a protocol change"),
    ("entry-point-removed", MAJOR, "code",
     "an entry point was removed",
     "the runtime's call protocol for the package changed"),
    ("entry-point-signature-changed", MAJOR, "code",
     "an entry point's parameters changed",
     "the runtime calls entry points with fixed arguments"),
    ("code-module-changed", PATCH, "code",
     "the code module was renamed",
     "the runtime finds it through the manifest"),
    ("code-changed", PATCH, "code",
     "code files changed with the same entry points",
     "preprocessing fixes behind the same protocol and interface"),
    # --- environment ---------------------------------------------------------------------
    ("dependency-major-changed", MAJOR, "dependencies",
     "a locked dependency changed major version",
     "its own SemVer says it breaks; a 0.y change counts as major (Cargo)"),
    ("dependency-minor-changed", MINOR, "dependencies",
     "a locked dependency changed minor version",
     "new features; environments pinned to the old lock must upgrade"),
    ("dependency-patch-changed", PATCH, "dependencies",
     "a locked dependency changed patch version",
     "fixes only"),
    ("dependency-added", MINOR, "dependencies",
     "a dependency was added to the lock",
     "environments built for the old lock must install it"),
    ("dependency-removed", PATCH, "dependencies",
     "a dependency was removed from the lock",
     "old environments still satisfy the package"),
    ("python-narrowed", MAJOR, "dependencies",
     "the supported Python versions narrowed",
     "some Python that ran the old package cannot run the new one"),
    ("python-widened", MINOR, "dependencies",
     "the supported Python versions widened",
     "every old Python still works, and more"),
    ("lockfile-changed", PATCH, "dependencies",
     "the lockfile changed without a version change",
     "hashes, markers, comments or the lockfile format"),
    ("description-changed", PATCH, "metadata",
     "the description changed",
     "documentation only"),
    # --- documentation and lineage -------------------------------------------------------
    ("card-changed", PATCH, "metadata",
     "the model card or its metadata changed",
     "documentation only"),
    ("metrics-changed", PATCH, "lineage",
     "a recorded metric changed",
     "informational; the interface and the architecture are what consumers depend on"),
    ("params-changed", PATCH, "lineage",
     "a training parameter changed",
     "how the weights were made; their effect is covered by weights-changed"),
    ("lineage-changed", PATCH, "lineage",
     "git, data or builder lineage changed",
     "provenance only"),
    ("example-changed", PATCH, "metadata",
     "the packaged example or its tolerances changed",
     "a self-test, not part of the interface"),
    ("metadata-changed", PATCH, "metadata",
     "the packages differ only in version or base",
     "different digests are never the same release"),
)
# fmt: on

RULES: Mapping[str, Rule] = {r[0]: Rule(*r) for r in _TABLE}


@dataclass(frozen=True)
class RuleSet:
    """Default levels plus a project's overrides (rule id -> bump)."""

    overrides: Mapping[str, Bump] = field(default_factory=dict)

    def bump(self, rule_id: str) -> Bump:
        return self.overrides.get(rule_id, RULES[rule_id].bump)


DEFAULT_RULES = RuleSet()
_LEVELS = ("major", "minor", "patch")


def parse_overrides(table: object, where: str) -> RuleSet:
    """Parse a ``[diff.rules]`` table (``rule-id = "major"|"minor"|"patch"``), all problems at once.

    ``none`` is not a level: two different packages are never the same release.
    """
    if not isinstance(table, Mapping):
        raise SourceError('must be a table of rule-id = "major" | "minor" | "patch"', where)
    problems: list[Problem] = []
    out: dict[str, Bump] = {}
    for key, value in table.items():
        if key not in RULES:
            problems.append(Problem(f"{where}.{key}", "is not a diff rule; see spec/semver.md for the rule ids"))
        elif not isinstance(value, str) or value.lower() not in _LEVELS:
            problems.append(Problem(f"{where}.{key}", f"must be one of {', '.join(_LEVELS)}, not {value!r}"))
        else:
            out[key] = Bump.parse(value)
    if problems:
        raise SourceError(problems)
    return RuleSet(out)


def load_rules(path: str | Path) -> RuleSet:
    """Overrides from a TOML file's ``[diff.rules]`` table (e.g. mpkg.toml); the rest is ignored."""
    where = str(path)
    try:
        doc: dict[str, Any] = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", where) from None
    except UnicodeDecodeError:
        raise SourceError("is not UTF-8 text", where) from None
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(f"is not valid TOML: {exc}", where) from None
    diff = doc.get("diff", {})
    if not isinstance(diff, Mapping):
        raise SourceError("must be a table", f"{where}: [diff]")
    unknown = sorted(set(diff) - {"rules"})
    if unknown:
        raise SourceError(f"unknown keys {unknown}; only [diff.rules] is read", f"{where}: [diff]")
    return parse_overrides(diff.get("rules", {}), f"{where}: [diff.rules]")


__all__ = ["DEFAULT_RULES", "RULES", "Bump", "Rule", "RuleSet", "load_rules", "parse_overrides"]
