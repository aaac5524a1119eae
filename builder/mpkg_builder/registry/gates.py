"""Promotion gates: a small, strict grammar compared in exact decimal arithmetic (no eval).

    gate   := METRIC OP rhs
    OP     := ">=" | "<=" | ">" | "<" | "=="
    rhs    := NUMBER | ALIAS [ ("+" | "-") NUMBER ]
    ALIAS  := "staging" | "production" | any alias (spec/registry.md §3: champion, eu-production)
    METRIC := [A-Za-z_][A-Za-z0-9_./-]*
    NUMBER := decimal, optional exponent (no nan, no inf); signed only when absolute

Examples: ``f1>=production+0.005``, ``loss<=staging``, ``f1>=champion``, ``accuracy>=0.9``.
A relative gate passes when the stage has no holder yet (nothing to compare against); the
result says so. Metric values are compared as the decimals their shortest repr spells, so
``0.905 >= 0.9+0.005`` holds exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from mpkg._internal.registry.aliases import ALIAS_PATTERN, alias_problem
from mpkg.errors import UsageError

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_GATE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_./-]*)\s*(?P<op>>=|<=|==|>|<)\s*"
    rf"(?:(?P<stage>{ALIAS_PATTERN})\s*(?:(?P<sign>[+-])\s*(?P<offset>{_NUM}))?"
    rf"|(?P<number>[+-]?{_NUM}))\s*$"
)
_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
}


@dataclass(frozen=True)
class Gate:
    """One promotion gate: a metric compared with a number or with an alias holder's value."""

    metric: str
    op: str
    stage: str | None  # None: compare with ``value`` alone
    value: Decimal  # the absolute bound, or the offset added to the stage holder's metric
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class GateResult:
    """A gate, whether it passed, and the values it compared."""

    gate: Gate
    passed: bool
    detail: str


def parse_gate(text: str) -> Gate:
    """Parse ``accuracy>=0.9`` or ``f1>=champion+0.005``; a usage error names the gate."""
    m = _GATE.match(text)
    if not m:
        raise UsageError(
            f"{text!r} is not a gate; write METRIC OP (NUMBER | STAGE[+|-NUMBER]) with OP one "
            "of >= <= > < ==, e.g. 'f1>=production+0.005' or 'accuracy>=0.9'",
            "--require",
        )
    if m.group("stage"):
        problem = alias_problem(m.group("stage"))
        if problem is not None:
            raise UsageError(f"{text!r}: {problem}", "--require")
        offset = Decimal(m.group("offset") or "0")
        value = -offset if m.group("sign") == "-" else offset
        canon = f"{m.group('metric')}{m.group('op')}{m.group('stage')}"
        if m.group("offset"):
            canon += f"{m.group('sign')}{m.group('offset')}"
        return Gate(m.group("metric"), m.group("op"), m.group("stage"), value, canon)
    number = m.group("number")
    return Gate(m.group("metric"), m.group("op"), None, Decimal(number), f"{m.group('metric')}{m.group('op')}{number}")


def _decimal(value: float) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def evaluate(
    gate: Gate,
    candidate: Mapping[str, float],
    holders: Mapping[str, Mapping[str, float] | None],
) -> GateResult:
    """Check one gate: candidate metrics against a bound or a stage holder's metrics."""
    mine = _decimal(candidate[gate.metric]) if gate.metric in candidate else None
    if mine is None:
        return GateResult(gate, False, f"the package has no finite metric {gate.metric!r}")
    if gate.stage is None:
        bound = gate.value
    else:
        holder = holders.get(gate.stage)
        if holder is None:
            return GateResult(gate, True, f"{gate.stage} has no holder yet; nothing to compare")
        theirs = _decimal(holder[gate.metric]) if gate.metric in holder else None
        if theirs is None:
            return GateResult(gate, False, f"the {gate.stage} holder has no finite metric {gate.metric!r}")
        bound = theirs + gate.value
    ok = _OPS[gate.op](mine, bound)
    return GateResult(gate, ok, f"{gate.metric}={mine} {gate.op} {bound}: " + ("pass" if ok else "fail"))
