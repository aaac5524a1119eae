"""The collector the section differs report to: a rule id in, a classified `Change` out.

Section differs only decide *which* rule a difference matches; the bump comes from the
project's `RuleSet` and the category from the rule table, here, in one place.
"""

from __future__ import annotations

from typing import Any

from .report import Change
from .rules import RULES, RuleSet


class Findings:
    """The changes found so far between two manifests, levelled by one rule set."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.changes: list[Change] = []

    def add(self, rule: str, subject: str, old: Any, new: Any, message: str) -> None:
        """Record that ``subject`` changed from ``old`` to ``new`` under ``rule`` (a `rules` constant)."""
        self.changes.append(Change(rule, self.rules.bump(rule), RULES[rule].category, subject, old, new, message))


__all__ = ["Findings"]
