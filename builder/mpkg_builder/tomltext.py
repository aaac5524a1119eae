"""TOML values as text, for the few files mpkg writes in TOML (mpkg.toml, pylock.toml).

Python ships a TOML reader but no writer; these files are flat enough that quoting
strings correctly is all it takes. Every control character is escaped, so a name or
path from hostile input can never end a string or start a new key.
"""

from __future__ import annotations

from collections.abc import Sequence

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(value: str) -> str:
    """A TOML basic string."""
    out = []
    for c in value:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_list(values: Sequence[str]) -> str:
    """A TOML array of strings, each escaped as TOML requires."""
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


__all__ = ["toml_list", "toml_string"]
