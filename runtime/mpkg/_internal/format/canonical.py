"""Canonical JSON (RFC 8785, JCS) — the bytes the package digest is taken over.

Keys sorted by UTF-16 code units, no insignificant whitespace, UTF-8, numbers in
ECMAScript's shortest round-trip form. ``loads`` is the strict inverse used on
untrusted manifests: duplicate keys, NaN/Infinity, non-UTF-8 and documents nested
deeper than MAX_DEPTH are refused.

The nesting limit is the same whatever the caller's stack depth: parsing and
re-encoding recurse, so when the calling thread has too little recursion budget left
for MAX_DEPTH levels, the work runs on a fresh thread (whose stack starts empty) instead
of failing for a document another caller would accept.
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from mpkg.errors import FormatError

_SAFE_INT = 2**53
MAX_DEPTH = 64  # arrays and objects inside each other, in any JSON document mpkg reads
# Recursion budget a parse + re-encode of a MAX_DEPTH document needs (json's C scanner and
# ``_encode`` each take one level per nesting level), with room for the frames around them.
_NEEDED_BUDGET = 2 * MAX_DEPTH + 64
T = TypeVar("T")


def _number(value: int | float) -> str:
    if isinstance(value, bool):  # pragma: no cover - handled by caller
        raise TypeError
    if isinstance(value, int):
        if abs(value) > _SAFE_INT:
            raise ValueError(f"integer {value} is outside the interoperable range ±2^53")
        return str(value)
    if not math.isfinite(value):
        raise ValueError("NaN and Infinity have no JSON form")
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < _SAFE_INT:
        return str(int(value))
    # repr gives the shortest round-trip digits; reformat them as ECMAScript Number::toString does.
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    # decimal exponent n such that value = 0.d1d2... * 10^n
    n = len(int_part.lstrip("0")) if int_part.strip("0") else -(len(frac_part) - len(frac_part.lstrip("0")))
    if exp_text:
        n += int(exp_text)
    digits = digits.rstrip("0")
    k = len(digits)
    sign = "-" if value < 0 else ""
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    if k == 1:
        return sign + digits + exp
    return sign + digits[0] + "." + digits[1:] + exp


# json.dumps(s, ensure_ascii=False) without its per-call overhead: the C escaper it uses
# (only '"', '\\' and control characters are escaped, as RFC 8785 requires).
_string: Callable[[str], str] = json.encoder.encode_basestring


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, (int, float)):
        out.append(_number(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        for i, key in enumerate(keys):
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, got {key!r}")
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def dumps(value: Any) -> bytes:
    """Encode ``value`` canonically. Raises TypeError/ValueError for unencodable data."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"duplicate key {key!r}; each key may appear once")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise FormatError(f"{name} is not valid JSON")


_MAX_INT_DIGITS = 400  # far beyond any double; int() of thousands of digits is refused (or slow)


def _parse_int(text: str) -> int | float:
    # JSON numbers are IEEE doubles (RFC 8785): integers beyond 2^53 are read as the double they denote.
    if len(text) > _MAX_INT_DIGITS:
        raise FormatError(f"has an integer of {len(text)} digits; JSON numbers are doubles")
    value = int(text)
    return value if abs(value) <= _SAFE_INT else float(value)


def _too_deep(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _recursion_budget() -> int:
    """How many more frames this thread may push before RecursionError."""
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return sys.getrecursionlimit() - depth


def _on_fresh_stack(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` here when the stack has room for MAX_DEPTH, else on a new thread."""
    if _recursion_budget() >= _NEEDED_BUDGET:
        return fn(*args)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="mpkg-json", daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result


def _too_deep_reason() -> str:
    return f"nests arrays and objects deeper than {MAX_DEPTH} levels"


def _loads(data: bytes, where: str, floats: list[str] | None = None) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"is not UTF-8 (byte {exc.start})", where) from None
    parse_float: Callable[[str], Any] = float
    if floats is not None:

        def parse_float(token: str) -> float:
            floats.append(token)
            return float(token)

    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_refuse_constant,
            parse_int=_parse_int,
            parse_float=parse_float,
        )
    except FormatError as exc:
        raise FormatError(exc.problems[0].reason, where) from None
    except RecursionError:
        raise FormatError(_too_deep_reason(), where) from None
    except ValueError as exc:
        raise FormatError(f"is not valid JSON ({exc})", where) from None
    if isinstance(value, (dict, list)) and _too_deep(value, MAX_DEPTH):
        raise FormatError(_too_deep_reason(), where)
    return value


def loads(data: bytes, where: str) -> Any:
    """Strictly parse JSON from untrusted bytes; problems name ``where``."""
    return _on_fresh_stack(_loads, data, where)


# A UTF-8 lead byte of a character beyond the BMP: only there do code-point order (Python's) and
# UTF-16 order (RFC 8785's) of object keys differ.
_BEYOND_BMP = re.compile(rb"[\xf0-\xf4]")


def _is_canonical_fast(value: Any, data: bytes) -> bool:
    """True only if ``data`` is certainly canonical, using json's C encoder; False means "ask the
    exact encoder". Sound because the caller rules out the two places the C encoder differs from
    RFC 8785: floats whose ``repr`` is not their ECMAScript form, and key order beyond the BMP;
    strings are escaped by the same function, and integers within 2^53 print alike."""
    try:
        fast = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
        return fast.encode("utf-8") == data
    except (TypeError, ValueError):  # lone surrogates, for one: the exact encoder says why
        return False


def _loads_canonical(data: bytes, where: str) -> Any:
    floats: list[str] = []
    value = _loads(data, where, floats)
    if (
        all(repr(f) == _number(f) for f in map(float, floats))
        and not _BEYOND_BMP.search(data)
        and _is_canonical_fast(value, data)
    ):
        return value  # 10-20x faster on a manifest of 10,000 files
    try:
        again = dumps(value)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"has no canonical form ({exc})", where) from None
    if again != data:
        raise FormatError("is not in canonical JSON form (RFC 8785); rebuild the package", where)
    return value


def loads_canonical(data: bytes, where: str) -> Any:
    """Parse and insist the bytes are exactly the canonical encoding (one byte form per document)."""
    return _on_fresh_stack(_loads_canonical, data, where)
