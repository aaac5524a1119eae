"""Plan a lock (what to pin) and write it, in either format, for a package source."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from mpkg._internal.io.atomic import atomic_output
from mpkg.errors import SourceError, UsageError

from ..sources.lockfile import is_pylock_name
from .closure import Resolution, resolve, roots_for
from .imports import scan_imports
from .index import index_artifacts
from .render import PYLOCK_NAME, REQUIREMENTS_NAME, pylock_text, requirements_text
from .source import LockInputs, read_source

LockFormat = Literal["requirements", "pylock"]


@dataclass(frozen=True)
class LockResult:
    """What lock wrote, for the summary and --json."""

    path: Path
    kind: LockFormat
    resolution: Resolution
    hashed: bool
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """The --json document of `mpkg lock`."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "hashes": self.hashed,
            "packages": [{"name": p.name, "version": p.version} for p in self.resolution.pins],
            "roots": [{"name": r.name, "why": r.why} for r in self.resolution.roots],
            "notes": list(self.notes),
        }


def plan_lock(inputs: LockInputs) -> Resolution:
    """What the package needs, resolved against this environment (nothing written)."""
    imports, problems = scan_imports(inputs.code, inputs.local)
    if problems:
        raise SourceError(problems)
    roots, notes = roots_for(inputs.model_format, inputs.tabular, imports)
    resolution = resolve(roots)
    return replace(resolution, notes=(*notes, *resolution.notes))


def lockfile_text(resolution: Resolution, kind: LockFormat, hashes: bool) -> str:
    """The lockfile, in ``kind``; pylock always records artifacts, so it always asks the index."""
    if kind == "pylock" or hashes:
        artifacts = index_artifacts([(p.name, p.version) for p in resolution.pins])
        return pylock_text(resolution, artifacts) if kind == "pylock" else requirements_text(resolution, artifacts)
    return requirements_text(resolution)


def lock_source(
    src: str | Path, output: str | Path | None = None, kind: LockFormat | None = None, hashes: bool = False
) -> LockResult:
    """Write the lockfile of the package source ``src`` (atomically; replaces the old one)."""
    src = Path(src)
    inputs, named = read_source(src)
    if kind is None:
        kind = "pylock" if named is not None and is_pylock_name(Path(named).name) else "requirements"
    notes: list[str] = []
    if output is not None:
        path = Path(output)
    elif named is not None and is_pylock_name(Path(named).name) == (kind == "pylock"):
        path = src / named
    else:
        path = src / (PYLOCK_NAME if kind == "pylock" else REQUIREMENTS_NAME)
        if named is not None:
            notes.append(f"mpkg.toml names {named!r}; set [environment].lockfile = {path.name!r} to build with it")
    if kind == "pylock" and importlib.util.find_spec("packaging.pylock") is None:
        raise UsageError("needs packaging >= 25 (PEP 751 support): pip install -U packaging", "--format pylock")
    if kind == "pylock" and not is_pylock_name(path.name):
        raise UsageError(f"a PEP 751 lock must be named pylock.toml or pylock.NAME.toml, not {path.name!r}", "--output")
    resolution = plan_lock(inputs)
    text = lockfile_text(resolution, kind, hashes)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as f:
        f.write(text.encode("utf-8"))
    return LockResult(path, kind, resolution, hashes or kind == "pylock", (*resolution.notes, *notes))


__all__ = ["LockFormat", "LockInputs", "LockResult", "lock_source", "lockfile_text", "plan_lock"]
