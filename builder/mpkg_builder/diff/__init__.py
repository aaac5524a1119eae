"""`mpkg diff` and version inference: which SemVer bump a change between packages requires.

Rules are data (:mod:`.rules`, spec/semver.md); :mod:`.engine` matches manifest
differences to rules; :mod:`.report` renders the result.
"""

from __future__ import annotations

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
