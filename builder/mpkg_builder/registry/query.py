"""`mpkg ls --where EXPR --sort KEY`: filtering and ordering versions in the promotion-gate syntax.

    where := KEY OP VALUE
    OP    := ">=" | "<=" | ">" | "<" | "==" | "=" | "!="

- a metric (``accuracy>=0.9``) or a numeric param (``param.lr<0.01``) is compared exactly as a
  gate (:mod:`.gates`: same grammar, same decimals), and may name an alias as gates do
  (``f1>=champion+0.005``: against that alias's holder in the same listing);
- ``stage`` or ``alias`` (``stage=production``), ``data`` (a dataset digest), ``signer`` (a key
  id or its first 8+ hex digits), ``tag`` and ``version`` take ``=``/``==``/``!=``; so does a
  param whose value is text (``param.optimizer=adam``).

A version lacking the key never matches (as a gate fails on a missing metric).
``--sort KEY`` orders by a metric, ``param.NAME``, ``version`` (SemVer precedence) or ``pushed``;
``-KEY`` descends; versions lacking the key come last either way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mpkg.errors import UsageError

from ..diff.versions import SemVer
from .annotations import NUMBER
from .gates import Gate, evaluate, parse_gate
from .listing import VersionRow

_WHERE = re.compile(r"^\s*(?P<key>[A-Za-z_][A-Za-z0-9_./-]*)\s*(?P<op>>=|<=|==|!=|=|>|<)\s*(?P<value>\S(?:.*\S)?)\s*\Z")
_TEXT_KEYS = ("stage", "alias", "data", "signer", "tag", "version")
_SHAPE = (
    "write KEY OP VALUE: a metric or param.NAME with >= <= > < == != (e.g. accuracy>=0.9, param.lr<0.01), "
    "or stage, data, signer, tag, version with = or != (e.g. stage=production, data=sha256:...)"
)

Predicate = Callable[[VersionRow, Sequence[VersionRow]], bool]


@dataclass(frozen=True)
class Where:
    """One parsed ``--where`` expression; ``matches`` tells whether a row passes."""

    text: str
    test: Predicate

    def matches(self, row: VersionRow, rows: Sequence[VersionRow]) -> bool:
        """Whether ``row`` passes, with ``rows`` giving alias holders for relative comparisons."""
        return self.test(row, rows)


def _text_values(row: VersionRow, key: str) -> tuple[str, ...]:
    listing = row.listing
    if key in ("stage", "alias"):
        return row.aliases
    if key == "data":
        return listing.data
    if key == "tag":
        return row.tags
    if key == "version":
        return (row.version,)
    value = listing.params.get(key[6:]) if key.startswith("param.") else None
    return (str(value),) if value is not None and not isinstance(value, bool) else ()


def _text(key: str, op: str, value: str) -> Predicate:
    if key == "signer":
        if not re.fullmatch(r"[0-9a-f]{8,64}", value):
            raise UsageError(f"signer={value!r}: give a key id or its first 8 or more hex digits", "--where")

        def signed(row: VersionRow, _: Sequence[VersionRow]) -> bool:
            return any(s.startswith(value) for s in row.listing.signers)

        return signed if op != "!=" else lambda row, rows: not signed(row, rows)
    equal = op != "!="
    return lambda row, _: (value in _text_values(row, key)) == equal


def _numeric(gate: Gate, negate: bool) -> Predicate:
    def test(row: VersionRow, rows: Sequence[VersionRow]) -> bool:
        numbers = row.numbers
        if gate.metric not in numbers:
            return False
        holders = {a: r.numbers for r in rows for a in r.aliases}
        return evaluate(gate, numbers, holders).passed != negate

    return test


def parse_where(text: str) -> Where:
    """Parse one ``--where`` expression; a bad one is a one-line usage error."""
    m = _WHERE.match(text)
    if not m:
        raise UsageError(f"{text!r} is not a filter; {_SHAPE}", "--where")
    key, op, value = m.group("key", "op", "value")
    if key in _TEXT_KEYS:
        if op not in ("=", "==", "!="):
            raise UsageError(f"{text!r}: {key} takes = or != only", "--where")
        return Where(text, _text(key, op, value))
    if key.startswith("param.") and op in ("=", "==", "!=") and not NUMBER.match(value):
        return Where(text, _text(key, op, value))  # a text param: param.optimizer=adam
    try:
        gate = parse_gate(f"{key}{'==' if op in ('=', '!=') else op}{value}")
    except UsageError:
        raise UsageError(f"{text!r} is not a filter; {_SHAPE}", "--where") from None
    return Where(text, _numeric(gate, op == "!="))


def _compare(key: str, a: VersionRow, b: VersionRow) -> int:
    if key == "version":
        x1, y1 = SemVer.parse(a.version).key(), SemVer.parse(b.version).key()
        return (x1 > y1) - (x1 < y1)
    if key == "pushed":
        x, y = a.pushed, b.pushed
        return (x > y) - (x < y) if x is not None and y is not None else 0
    x2, y2 = a.numbers.get(key), b.numbers.get(key)
    return (x2 > y2) - (x2 < y2) if x2 is not None and y2 is not None else 0


def _has(key: str, row: VersionRow) -> bool:
    if key == "version":
        return True
    if key == "pushed":
        return row.pushed is not None
    return key in row.numbers


def sort_rows(rows: Sequence[VersionRow], key: str | None) -> list[VersionRow]:
    """Rows ordered by ``key`` (``-key`` descending; default: version), lacking the key last."""
    text = key or "version"
    descending = text.startswith("-")
    name = text.lstrip("-")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", name):
        raise UsageError(
            f"{text!r} is not a sort key; write a metric, param.NAME, version or pushed, '-' to descend", "--sort"
        )
    present = [r for r in rows if _has(name, r)]
    absent = [r for r in rows if not _has(name, r)]

    def order(a: VersionRow, b: VersionRow) -> int:
        return _compare(name, a, b) or _compare("version", a, b)

    ordered = sorted(present, key=functools.cmp_to_key(order))
    if descending:
        ordered.reverse()
    return ordered + absent
