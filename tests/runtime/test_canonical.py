"""Canonical JSON: RFC 8785 vectors, round trips, and strict parsing of untrusted bytes."""

from __future__ import annotations

import inspect
import math
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mpkg._internal.format import canonical
from mpkg.errors import FormatError

# RFC 8785 Appendix B number vectors (IEEE-754 hex -> expected text), a representative subset.
RFC8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), RFC8785_NUMBERS)
def test_rfc8785_numbers(bits: str, expected: str) -> None:
    value = _from_bits(bits)
    assert canonical.dumps(value).decode() == expected


def _from_bits(bits: str) -> float:
    import struct

    result: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return result


def test_rfc8785_object_example() -> None:
    doc = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": '€$\u000f\nA\'B"\\\\"/',
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical.dumps(doc).decode() == expected


def test_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 (surrogate pair D83D...) sorts before U+FB33 in UTF-16, after it in code points.
    doc = {"\ufb33": 1, "\U0001f600": 2}
    assert canonical.dumps(doc).decode() == '{"\U0001f600":2,"\ufb33":1}'


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_round_trip_is_stable(value: object) -> None:
    encoded = canonical.dumps(value)
    decoded = canonical.loads_canonical(encoded, "doc")
    assert canonical.dumps(decoded) == encoded
    assert _as_doubles(decoded) == _as_doubles(value)


def _as_doubles(value: object) -> object:
    """JSON numbers are doubles: compare documents with every number as a float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [_as_doubles(v) for v in value]
    assert isinstance(value, dict)
    return {k: _as_doubles(v) for k, v in value.items()}


@given(json_values)
def test_fast_and_exact_canonical_checks_agree(value: object) -> None:
    """The json C-encoder shortcut in loads_canonical accepts exactly what the exact encoder does,
    both for canonical bytes and for json.dumps' own (sometimes non-canonical) rendering."""
    import json

    assert canonical.loads_canonical(canonical.dumps(value), "doc") is not None or value is None
    try:
        python_form = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    except (TypeError, ValueError):
        return
    exact = python_form == canonical.dumps(value)
    try:
        canonical.loads_canonical(python_form, "doc")
        accepted = True
    except FormatError:
        accepted = False
    assert accepted == exact


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_round_trips_exactly(value: float) -> None:
    text = canonical.dumps(value).decode()
    assert float(text) == value or (value == 0 and text == "0")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 2**53 + 1])
def test_unencodable_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        canonical.dumps(bad)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"a":1,"a":2}', "duplicate key"),
        (b'{"a":NaN}', "not valid JSON"),
        (b"\xff\xfe", "is not UTF-8"),
        (b"[" * 100000, "deeper than 64 levels"),
        (b'{"a": 1}', "canonical"),
        (b'{"b":1,"a":2}', "canonical"),
        (b'{"a":1.0}', "canonical"),
        # What json.dumps writes where RFC 8785 differs, so the C-encoder fast path must not accept it:
        (b'{"a":1e-07}', "canonical"),  # Python's float repr; RFC 8785 writes 1e-7
        ('{"\ufffd":1,"\U0001f600":2}'.encode(), "canonical"),  # code-point order; UTF-16 puts the emoji first
        (b'{"a":"\\ud800"}', "canonical"),  # a lone surrogate has no UTF-8 form
    ],
)
def test_strict_parse_refuses(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError) as info:
        canonical.loads_canonical(data, "mpkg/manifest.json")
    assert reason in str(info.value)
    assert "mpkg/manifest.json" in str(info.value)


def _at_depth(frames: int, fn: Any) -> Any:
    """``fn()`` called ``frames`` Python frames below here."""
    return fn() if frames <= 0 else _at_depth(frames - 1, fn)


def _verdict(data: bytes) -> str:
    try:
        canonical.loads_canonical(data, "doc")
    except FormatError as exc:
        return str(exc)
    return "ok"


@pytest.mark.parametrize("depth", [canonical.MAX_DEPTH, canonical.MAX_DEPTH + 1, 5_000])
def test_nesting_limit_does_not_depend_on_the_callers_stack(depth: int) -> None:
    """Before, json.loads and the re-encoder recursed on the caller's stack: a document one
    caller accepted raised RecursionError (or was refused) for a caller deeper in its stack."""
    data = b"[" * depth + b"]" * depth
    shallow = _verdict(data)
    budget = sys.getrecursionlimit() - len(inspect.stack(0))
    for frames in (budget - 120, budget - 40):  # too little room to parse 64 levels here
        assert _at_depth(frames, lambda: _verdict(data)) == shallow
    assert (shallow == "ok") == (depth <= canonical.MAX_DEPTH)
    if depth > canonical.MAX_DEPTH:
        assert shallow == f"doc: nests arrays and objects deeper than {canonical.MAX_DEPTH} levels"
