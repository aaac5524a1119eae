"""What a diff says: its findings (`Change`), the metrics in both packages, and the verdict.

These are the engine's output and the renderers' input; they hold no logic beyond the
verdict arithmetic (the overall bump is the largest finding's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rules import Bump
from .versions import bump_version, precedes


@dataclass(frozen=True)
class Change:
    """One finding: what changed (``subject``, e.g. ``inputs.x.shape[1]``) and its bump."""

    rule: str
    bump: Bump
    category: str
    subject: str
    old: Any
    new: Any
    message: str
    diff: str | None = None  # a bounded unified diff of the text (card, code, lockfile), escaped

    def to_json(self) -> dict[str, Any]:
        """The finding as `mpkg diff --json` prints it."""
        return {
            "rule": self.rule,
            "bump": self.bump.label,
            "category": self.category,
            "subject": self.subject,
            "old": self.old,
            "new": self.new,
            "message": self.message,
            "diff": self.diff,
        }


@dataclass(frozen=True)
class MetricDelta:
    """A metric in both packages, old -> new (informational, like `dvc metrics diff`)."""

    name: str
    old: float
    new: float

    @property
    def delta(self) -> float:
        """How far the metric moved (new - old), for the report's last column."""
        return self.new - self.old

    def to_json(self) -> dict[str, Any]:
        """The metric as `mpkg diff --json` prints it."""
        return {"name": self.name, "old": self.old, "new": self.new, "delta": self.delta}


@dataclass(frozen=True)
class DiffReport:
    """Every finding between two packages, so a reviewer (or a gate) sees the bump and its reasons."""

    name: str
    from_version: str
    to_version: str | None
    old_digest: str
    new_digest: str
    changes: tuple[Change, ...]
    metrics: tuple[MetricDelta, ...] = ()

    @property
    def bump(self) -> Bump:
        """The highest finding; NONE only for equal digests (otherwise there is a finding)."""
        return max((c.bump for c in self.changes), default=Bump.NONE)

    @property
    def suggested_version(self) -> str:
        """The smallest version after ``from_version`` that the findings allow."""
        return bump_version(self.from_version, self.bump)

    @property
    def version_ok(self) -> bool:
        """The new package's own version is at least the suggested one (always true without one)."""
        if self.to_version is None or self.bump is Bump.NONE:
            return True
        return not precedes(self.to_version, self.suggested_version)

    def at_least(self, bump: Bump) -> tuple[Change, ...]:
        """The findings a gate at ``bump`` stops on."""
        return tuple(c for c in self.changes if c.bump >= bump)

    def to_json(self) -> dict[str, Any]:
        """The report as `mpkg diff --json` prints it."""
        return {
            "name": self.name,
            "bump": self.bump.label,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "suggested_version": self.suggested_version,
            "version_ok": self.version_ok,
            "old_digest": self.old_digest,
            "new_digest": self.new_digest,
            "changes": [c.to_json() for c in self.changes],
            "metrics": [m.to_json() for m in self.metrics],
        }


__all__ = ["Change", "DiffReport", "MetricDelta"]
