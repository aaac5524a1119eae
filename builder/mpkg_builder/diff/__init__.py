"""`mpkg diff` and version inference: which SemVer bump a change between packages requires.

Rules are data (:mod:`.rules`, spec/semver.md); :mod:`.engine` runs one differ per
manifest section (:mod:`.sections`) over typed views of the two manifests (:mod:`.views`)
into a :mod:`.report`, which :mod:`.render` renders; :mod:`.infer` picks a build's version.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import diff_manifests, diff_packages
    from .infer import PlannedLike, VersionDecision, infer_version
    from .overrides import load_rules, parse_overrides
    from .render import render_json, render_markdown, render_text, verdict
    from .report import Change, DiffReport, MetricDelta
    from .rules import DEFAULT_RULES, RULES, Bump, Rule, RuleSet
    from .sections.environment import dependency_level
    from .versions import bump_version, level_of, precedes
    from .views import ManifestLike

# Each name and its module, imported on first use: `mpkg build` reads the rule table
# (`.rules`) for every source, and must not pay for the engine it never runs.
_WHERE = {
    **dict.fromkeys(("diff_manifests", "diff_packages"), "engine"),
    **dict.fromkeys(("PlannedLike", "VersionDecision", "infer_version"), "infer"),
    **dict.fromkeys(("load_rules", "parse_overrides"), "overrides"),
    **dict.fromkeys(("render_json", "render_markdown", "render_text", "verdict"), "render"),
    **dict.fromkeys(("Change", "DiffReport", "MetricDelta"), "report"),
    **dict.fromkeys(("DEFAULT_RULES", "RULES", "Bump", "Rule", "RuleSet"), "rules"),
    "dependency_level": "sections.environment",
    **dict.fromkeys(("bump_version", "level_of", "precedes"), "versions"),
    "ManifestLike": "views",
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
