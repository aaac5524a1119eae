"""`mpkg diff` and version inference: which SemVer bump a change between packages requires.

Rules are data (:mod:`.rules`, spec/semver.md); :mod:`.engine` matches manifest
differences to rules; :mod:`.report` renders the result.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import (
        Change,
        DiffReport,
        ManifestLike,
        MetricDelta,
        PlannedLike,
        VersionDecision,
        dependency_level,
        diff_manifests,
        diff_packages,
        infer_version,
    )
    from .report import render_json, render_markdown, render_text, verdict
    from .rules import DEFAULT_RULES, RULES, Bump, Rule, RuleSet, load_rules, parse_overrides
    from .versions import bump_version, level_of, precedes

# Each name and its module, imported on first use: `mpkg build` reads the rule table
# (`.rules`) for every source, and must not pay for the engine it never runs.
_WHERE = {
    **dict.fromkeys(("Change", "DiffReport", "ManifestLike", "MetricDelta", "PlannedLike"), "engine"),
    **dict.fromkeys(("VersionDecision", "dependency_level", "diff_manifests", "diff_packages"), "engine"),
    "infer_version": "engine",
    **dict.fromkeys(("render_json", "render_markdown", "render_text", "verdict"), "report"),
    **dict.fromkeys(("DEFAULT_RULES", "RULES", "Bump", "Rule", "RuleSet", "load_rules", "parse_overrides"), "rules"),
    **dict.fromkeys(("bump_version", "level_of", "precedes"), "versions"),
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)


__all__ = [
    "DEFAULT_RULES",
    "RULES",
    "Bump",
    "Change",
    "DiffReport",
    "ManifestLike",
    "MetricDelta",
    "PlannedLike",
    "Rule",
    "RuleSet",
    "VersionDecision",
    "bump_version",
    "dependency_level",
    "diff_manifests",
    "diff_packages",
    "infer_version",
    "level_of",
    "load_rules",
    "parse_overrides",
    "precedes",
    "render_json",
    "render_markdown",
    "render_text",
    "verdict",
]
