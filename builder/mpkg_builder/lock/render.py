"""Lockfile text: pip requirements (``name==version``, optional hashes) or PEP 751 pylock.toml.

Both are re-read by the build's own lockfile parser before they are written, so ``lock``
can never write a file ``build`` refuses.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping, Sequence

from mpkg import __version__
from mpkg.errors import printable

from ..sources.lockfile import parse_pylock, parse_requirements
from ..tomltext import toml_string
from .closure import Locked, Resolution
from .index import Artifact

REQUIREMENTS_NAME = "requirements.lock"
PYLOCK_NAME = "pylock.toml"


def describe_environment() -> str:
    """The interpreter and platform the pins were read from, for the lockfile header."""
    return f"Python {platform.python_version()} on {sys.platform}-{platform.machine()}"


def _header(resolution: Resolution, comment: str) -> list[str]:
    lines = [f"Written by `mpkg lock` from this environment ({describe_environment()})."]
    lines += [f"{root.name}: {root.why}" for root in resolution.roots]
    lines += [f"Left out: {note}" for note in resolution.notes]
    # Paths and names in these comments come from the source: never let one start a new line.
    return [f"{comment} {printable(line)}" for line in lines]


def requirements_text(resolution: Resolution, artifacts: Mapping[str, Artifact] | None = None) -> str:
    """Exact pins, one per line; with ``artifacts`` each line carries its ``--hash``."""
    lines = _header(resolution, "#")
    for pin in resolution.pins:
        line = f"{pin.name}=={pin.version}"
        if artifacts is not None:
            line += f" \\\n    --hash=sha256:{artifacts[pin.name].sha256}"
        lines.append(line)
    text = "\n".join(lines) + "\n"
    parse_requirements(text, REQUIREMENTS_NAME)
    return text


def pylock_text(resolution: Resolution, artifacts: Mapping[str, Artifact]) -> str:
    """PEP 751 ``pylock.toml`` for this Python feature version and platform."""
    major, minor = sys.version_info[:2]
    env = f'sys_platform == "{sys.platform}" and platform_machine == "{platform.machine()}"'
    lines = [*_header(resolution, "#"), 'lock-version = "1.0"']
    lines.append(f"environments = [{toml_string(env)}]")
    lines.append(f"requires-python = {toml_string(f'=={major}.{minor}.*')}")
    lines.append(f"created-by = {toml_string(f'mpkg {__version__}')}")
    for pin in resolution.pins:
        art = artifacts[pin.name]
        lines += ["", "[[packages]]", f"name = {toml_string(pin.name)}", f"version = {toml_string(pin.version)}"]
        hashes = f"{{ sha256 = {toml_string(art.sha256)} }}"
        entry = f"{{ name = {toml_string(art.filename)}, url = {toml_string(art.url)}, hashes = {hashes} }}"
        lines.append(f"wheels = [{entry}]" if art.is_wheel else f"sdist = {entry}")
    text = "\n".join(lines) + "\n"
    parse_pylock(text, PYLOCK_NAME)
    return text


def summary(pins: Sequence[Locked]) -> str:
    """The pins as one line, for the command's output."""
    return ", ".join(f"{p.name} {p.version}" for p in pins)


__all__ = ["PYLOCK_NAME", "REQUIREMENTS_NAME", "pylock_text", "requirements_text", "summary"]
