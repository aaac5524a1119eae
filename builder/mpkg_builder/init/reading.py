"""Reading what `mpkg init` is pointed at: someone else's files, so hostile until checked.

Every file is capped in size before it is read, YAML is parsed safely and without
aliases (an alias bomb is a few hundred bytes), JSON strictly, and every path a file
names is resolved inside the folder that holds it. Nothing is ever unpickled.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from mpkg._internal.format import canonical
from mpkg.errors import FormatError, SourceError

from ..sources.paths import regular_file_problem, resolve_inside

KiB = 1024
MiB = 1024 * KiB
_YAML_MAX_DEPTH = 64


def read_capped(path: Path, where: str, limit: int) -> bytes:
    """The bytes of the regular file ``path``, refused when larger than ``limit``."""
    try:
        # O_NONBLOCK: opening a FIFO must not hang init; regular files ignore the flag.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SourceError("is not a regular file", where)
            if info.st_size > limit:
                raise SourceError(f"is {info.st_size} bytes, more than the {limit} bytes init reads from it", where)
            data = f.read(limit + 1)
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", where) from None
    if len(data) > limit:
        raise SourceError(f"grew past the {limit} bytes init reads from it", where)
    return data


def inside(folder: Path, rel: object, where: str) -> Path:
    """The regular file a hostile document names, which must stay inside ``folder``."""
    if not isinstance(rel, str):
        raise SourceError(f"must name a file as a string, not {type(rel).__name__}", where)
    resolved, why = resolve_inside(folder, rel)
    if why is None and resolved is not None:
        why = regular_file_problem(resolved, rel)
    if why or resolved is None:
        raise SourceError(why or "cannot be resolved", where)
    return resolved


class _NoAliasLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader, refusing anchors/aliases and absurd nesting."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"uses a YAML alias (*{event.anchor}) at line {event.start_mark.line + 1}")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > _YAML_MAX_DEPTH:
                raise yaml.YAMLError(f"nests deeper than {_YAML_MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(data: bytes, where: str) -> Any:
    """Parse untrusted YAML safely: SafeLoader without aliases (no billion laughs)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError("is not UTF-8 text", where) from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SourceError(f"is not valid YAML: {str(exc).splitlines()[0]}", where) from None
    except RecursionError:
        raise SourceError("nests too deeply", where) from None


def load_json(data: bytes, where: str) -> Any:
    """Parse untrusted JSON with the format's own strict reader."""
    try:
        return canonical.loads(data, where)
    except FormatError as exc:
        raise SourceError(exc.problems) from None


def short_text(value: object, where: str, limit: int = 256) -> str:
    """A one-line printable string of at most ``limit`` characters from a hostile document."""
    if not isinstance(value, str):
        raise SourceError(f"must be a string, not {type(value).__name__}", where)
    if len(value) > limit or not value.isprintable():
        raise SourceError(f"must be one printable line of at most {limit} characters", where)
    return value


__all__ = ["KiB", "MiB", "inside", "load_json", "load_yaml", "read_capped", "short_text"]
