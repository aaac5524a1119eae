"""The files of a package's code folder: what the build packs and the lock step scans."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mpkg.errors import ProblemCollector, SourceError

from ..sources.paths import resolve_inside
from .schema import CONFIG_NAME

_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


def list_code_files(src: Path, root: str) -> tuple[str, ...]:
    """Every regular file under ``src/root``, sorted, as src-relative POSIX paths.

    Skips ``__pycache__`` and compiled bytecode (rebuilt on import, and machine-specific).
    Refuses symlinked folders, symlinks leaving ``src`` and special files, all at once.
    """
    problems = ProblemCollector()
    resolved, why = resolve_inside(src, root)
    if why or resolved is None:
        raise SourceError(why or "cannot be resolved", f"{CONFIG_NAME}: [code].root")
    if not resolved.is_dir():
        raise SourceError(f"{root!r} is not a folder", f"{CONFIG_NAME}: [code].root")
    base = src.resolve()
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(resolved, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            rel = (here / d).relative_to(base).as_posix()
            if d in _SKIP_DIRS:
                continue
            if (here / d).is_symlink():
                problems.add(rel, "is a symlinked folder; replace it with a real folder")
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            path = here / f
            rel = path.relative_to(base).as_posix()
            if f.endswith(_SKIP_SUFFIXES):
                continue
            try:
                mode = path.lstat().st_mode
            except OSError as exc:
                problems.add(rel, f"cannot be read: {exc.strerror}")
                continue
            if stat.S_ISLNK(mode):
                _, why = resolve_inside(src, rel)
                if why:
                    problems.add(rel, why)
                    continue
                target = path.resolve()
                if not target.is_file():
                    problems.add(
                        rel,
                        "is a symlink to something that is not a regular file; replace it with the file",
                    )
                    continue
            elif not stat.S_ISREG(mode):
                problems.add(
                    rel,
                    "is a special file (device, FIFO or socket); remove it from the code folder",
                )
                continue
            found.append(rel)
    if problems:
        raise SourceError(problems.problems)
    return tuple(sorted(found))


__all__ = ["list_code_files"]
