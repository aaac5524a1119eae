"""`mpkg lock`: the lockfile a package needs, read from the running environment.

Exactly the distributions the package code imports (from its syntax tree), what the
model format needs at run time, and their requirements, transitively, pinned to the
installed versions (rules: spec/source.md, "mpkg lock"). :mod:`.imports` reads the code,
:mod:`.closure` resolves against the environment, :mod:`.index` asks pip for hashes,
:mod:`.render` writes either format, :mod:`.write` ties them together.

Names are loaded on first use, so registering the `lock` command costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .source import LockInputs
    from .write import LockFormat, LockResult, lock_source, lockfile_text, plan_lock

_EXPORTS = {
    "LockInputs": "source",
    "LockFormat": "write",
    "LockResult": "write",
    "lock_source": "write",
    "lockfile_text": "write",
    "plan_lock": "write",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = ["LockFormat", "LockInputs", "LockResult", "lock_source", "lockfile_text", "plan_lock"]
