"""JSON source files, parsed by the same strict parser the runtime uses on manifests.

Duplicate keys and NaN/Infinity are refused: two parsers disagreeing on one file
is how a reviewer and a machine end up seeing different values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mpkg._internal.format import canonical
from mpkg.errors import FormatError, SourceError


def load_json_strict(path: Path, where: str) -> Any:
    """Read a source JSON file with the format's strict reader (no duplicate keys, no NaN)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", where) from None
    try:
        return canonical.loads(data, where)
    except FormatError as exc:
        raise SourceError(exc.problems) from None
