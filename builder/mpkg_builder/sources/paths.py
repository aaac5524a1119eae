"""Author-given paths: lexically clean, and still inside the source after symlinks resolve.

Lexical checks alone miss symlinks (and a resolved-only check misses '..' tricks on
platforms that normalise differently), so both are applied.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath

_DRIVE = re.compile(r"^[A-Za-z]:")


def lexical_problem(rel: str) -> str | None:
    """Why ``rel`` is not a relative, normalised POSIX path (None when it is)."""
    if not rel:
        return "is empty; give a path relative to the source folder"
    if "\x00" in rel:
        return "contains a NUL byte"
    if "\\" in rel:
        return f"{rel!r} contains a backslash; use '/' as the separator"
    if rel.startswith("/") or _DRIVE.match(rel):
        return f"{rel!r} is absolute; give a path relative to the source folder"
    parts = rel.split("/")
    if any(p == ".." for p in parts):
        return f"{rel!r} contains '..'; paths must stay inside the source folder"
    if any(p in ("", ".") for p in parts):
        return f"{rel!r} is not normalised (empty or '.' component); write it as {_normal(rel)!r}"
    return None


def _normal(rel: str) -> str:
    return str(PurePosixPath(*[p for p in rel.split("/") if p not in ("", ".")]) or ".")


def resolve_inside(root: Path, rel: str) -> tuple[Path | None, str | None]:
    """Resolve ``rel`` under ``root``; refuse it when it leaves ``root`` or does not exist.

    Returns ``(absolute path, None)`` or ``(None, reason)``.
    """
    why = lexical_problem(rel)
    if why:
        return None, why
    base = root.resolve()
    candidate = base / rel
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # symlink loop
        return (
            None,
            f"{rel!r} cannot be resolved ({exc.__class__.__name__}); remove the symlink loop",
        )
    if not resolved.is_relative_to(base):
        return (
            None,
            f"{rel!r} resolves outside the source folder (symlink to {str(resolved)!r}); copy the file into the source",
        )
    if not os.path.lexists(candidate) or not resolved.exists():
        return None, f"{rel!r} does not exist in the source folder"
    return resolved, None


def regular_file_problem(path: Path, rel: str) -> str | None:
    """Why the resolved ``path`` is not a regular file (None when it is)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"{rel!r} cannot be read: {exc.strerror}"
    if stat.S_ISDIR(mode):
        return f"{rel!r} is a folder; name a file"
    if not stat.S_ISREG(mode):
        return f"{rel!r} is not a regular file (device, FIFO or socket); name a regular file"
    return None
