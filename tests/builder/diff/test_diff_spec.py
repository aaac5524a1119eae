"""spec/semver.md's rule table and the rules the engine applies are the same table."""

from __future__ import annotations

import re
from pathlib import Path

from mpkg_builder.diff import RULES

SPEC = Path(__file__).resolve().parents[3] / "spec" / "semver.md"
_ROW = re.compile(r"^\| `([a-z0-9-]+)` \| (major|minor|patch) \| (.+?) \| (.+?) \| (.*) \|$")


def test_spec_table_matches_rules() -> None:
    rows = {m.group(1): m for m in map(_ROW.match, SPEC.read_text().splitlines()) if m}
    assert sorted(rows) == sorted(RULES)
    for rule_id, rule in RULES.items():
        row = rows[rule_id]
        assert row.group(2) == rule.bump.label, rule_id
        assert row.group(3) == rule.summary and row.group(4) == rule.rationale, rule_id
        assert row.group(5).strip(), f"{rule_id} names no test case"
