"""The diff engine: two manifests in, classified findings out.

Everything it needs is in the manifest (contract, architecture summary, per-file
digests, lockfile pins, lineage), so diffing two multi-GB packages parses two
small JSON documents and never touches a tensor. Each manifest is read once into a
typed view (:mod:`.views`); each section differ (:mod:`.sections`) decides which rule
a difference matches; :mod:`.rules` says how big a bump that rule requires.
"""

from __future__ import annotations

import os

from mpkg._internal.format.package import read_manifest

from . import rules as R
from .findings import Findings
from .report import DiffReport
from .rules import DEFAULT_RULES, RuleSet
from .sections import SECTIONS
from .sections.lineage import metric_deltas
from .views import ManifestLike, ManifestView


def diff_manifests(old: ManifestLike, new: ManifestLike, rules: RuleSet = DEFAULT_RULES) -> DiffReport:
    """Classify every difference between two manifests (parsed or as JSON documents).

    ``new`` may lack ``version`` (a build that is about to infer it).
    """
    a, b = ManifestView.of(old), ManifestView.of(new)
    d = Findings(rules)
    if a.digest != b.digest:
        for section in SECTIONS:
            section(d, a, b)
        if not d.changes and a.release_content() == b.release_content():
            d.add(
                R.METADATA_CHANGED,
                "version",
                a.version,
                b.version,
                "the packages differ only in version or base; a new release is at least a patch",
            )
        elif not d.changes:
            d.add(
                R.OTHER_CHANGED,
                "manifest",
                a.digest,
                b.digest,
                "the manifests differ in a way no other rule classifies (e.g. enum order)",
            )
    name = b.name if b.name is not None else a.name if a.name is not None else ""
    return DiffReport(
        name=str(name),
        from_version=str(a.version if a.version is not None else "0.0.0"),
        to_version=b.version if isinstance(b.version, str) else None,
        old_digest=a.digest,
        new_digest=b.digest,
        changes=tuple(sorted(d.changes, key=lambda c: (-c.bump, c.category, c.subject, c.rule))),
        metrics=metric_deltas(a, b),
    )


def diff_packages(
    old: str | os.PathLike[str], new: str | os.PathLike[str], rules: RuleSet = DEFAULT_RULES
) -> DiffReport:
    """Diff two .mpkg files by their manifests: parses layout and manifest, reads no weights.

    Card, code and lockfile findings carry a bounded diff of their text (small members only,
    each checked against its manifest digest).
    """
    from .textdiff import with_text_diffs

    manifests = (read_manifest(old), read_manifest(new))
    return with_text_diffs(diff_manifests(*manifests, rules), old, new, manifests)


__all__ = ["diff_manifests", "diff_packages"]
