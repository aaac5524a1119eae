"""Lockfiles: exact pins only, so the environment a package records is reproducible.

Two formats: pip requirements with ``==`` pins (optionally ``--hash``), and PEP 751
``pylock.toml``. Anything that leaves a version open (ranges, URLs, editable installs,
includes) is refused line by line.
"""

from __future__ import annotations

import re
import tomllib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mpkg.errors import ProblemCollector, SourceError
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

_HASH = re.compile(r"^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$")
# Global pip options that do not change which versions get installed.
_HARMLESS = {
    "--index-url",
    "-i",
    "--extra-index-url",
    "--trusted-host",
    "--find-links",
    "-f",
    "--require-hashes",
    "--only-binary",
    "--no-binary",
    "--prefer-binary",
    "--pre",
}
_REFUSED = {
    "-r": "includes another file",
    "--requirement": "includes another file",
    "-c": "includes a constraints file",
    "--constraint": "includes a constraints file",
    "-e": "is an editable install",
    "--editable": "is an editable install",
}


@dataclass(frozen=True)
class Pin:
    name: str  # canonicalized (PEP 503)
    version: str  # normalised (PEP 440)
    hashes: tuple[str, ...] = ()  # "sha256:<hex>", sorted
    marker: str | None = None


@dataclass(frozen=True)
class Lockfile:
    kind: Literal["requirements", "pylock"]
    requires_python: str | None
    packages: tuple[Pin, ...]  # sorted by (name, marker)

    def pin(self, name: str) -> Pin | None:
        key = canonicalize_name(name)
        return next((p for p in self.packages if p.name == key), None)


def is_pylock_name(name: str) -> bool:
    """PEP 751 file names: pylock.toml or pylock.<name>.toml."""
    return name == "pylock.toml" or bool(re.fullmatch(r"pylock\.[^.]+\.toml", name))


def parse_lockfile(path: Path, where: str | None = None) -> Lockfile:
    """Parse a lockfile, choosing the format from the file name (PEP 751 naming)."""
    where = where if where is not None else path.name
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError("is not UTF-8 text", where) from None
    if is_pylock_name(path.name):
        return parse_pylock(text, where)
    return parse_requirements(text, where)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations; drop comments. Yields (first line number, text)."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buf:
            start = no
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(p.strip() for p in buf).strip()
        buf = []
        if joined:
            out.append((start, joined))
    if buf:
        joined = " ".join(p.strip() for p in buf).strip()
        if joined:
            out.append((start, joined))
    return out


def parse_requirements(text: str, where: str = "requirements.lock") -> Lockfile:
    """Requirements format: every requirement ``name==version``; hashes all-or-nothing."""
    problems = ProblemCollector()
    pins: list[tuple[int, Pin]] = []
    for no, line in _logical_lines(text):
        at = f"{where}:{no}"
        if line.startswith("-"):
            opt = re.split(r"[\s=]", line, maxsplit=1)[0]
            if opt in _REFUSED:
                problems.add(at, f"{line!r} {_REFUSED[opt]}; inline every pin in this one file")
            elif opt not in _HARMLESS:
                problems.add(at, f"{line!r}: option {opt} is not allowed in a lockfile")
            continue
        tokens = line.split()
        hashes: list[str] = []
        spec_tokens: list[str] = []
        bad = False
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.startswith("--hash"):
                value = (
                    tok[len("--hash=") :]
                    if tok.startswith("--hash=")
                    else (tokens[i + 1] if i + 1 < len(tokens) else "")
                )
                i += 1 if tok.startswith("--hash=") else 2
                if not _HASH.match(value):
                    problems.add(
                        at,
                        f"hash {value!r} must be sha256:, sha384: or sha512: with lowercase hex of the right length",
                    )
                    bad = True
                hashes.append(value)
                continue
            if tok.startswith("-"):
                problems.add(at, f"{line!r}: option {tok} is not allowed on a requirement line")
                bad = True
            spec_tokens.append(tok)
            i += 1
        spec = " ".join(spec_tokens)
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            problems.add(
                at,
                f"{spec!r} is not a requirement ({str(exc).splitlines()[0]}); write name==version",
            )
            continue
        if req.url:
            problems.add(at, f"{spec!r} is a URL requirement, not pinned by version; pin name==version")
            continue
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            problems.add(at, f"{spec!r} is not pinned; write {req.name}==<exact version>")
            continue
        try:
            version = str(Version(specs[0].version))
        except InvalidVersion:
            problems.add(at, f"{spec!r} has an invalid version")
            continue
        if bad:
            continue
        pins.append(
            (
                no,
                Pin(
                    name=canonicalize_name(req.name),
                    version=version,
                    hashes=tuple(sorted(set(hashes))),
                    marker=str(req.marker) if req.marker else None,
                ),
            )
        )
    hashed = [no for no, p in pins if p.hashes]
    if hashed and len(hashed) != len(pins):
        for no, p in pins:
            if not p.hashes:
                problems.add(
                    f"{where}:{no}",
                    f"{p.name}=={p.version} has no --hash while other lines do; hash every "
                    "requirement (pip --require-hashes)",
                )
    _check_duplicates([(f"{where}:{no}", p) for no, p in pins], problems)
    if not pins and not problems:
        problems.add(where, "pins no packages; list every runtime dependency as name==version")
    problems.raise_if_any(SourceError)
    return Lockfile(kind="requirements", requires_python=None, packages=_sorted(p for _, p in pins))


def _check_duplicates(pins: list[tuple[str, Pin]], problems: ProblemCollector) -> None:
    seen: dict[tuple[str, str | None], str] = {}
    for at, p in pins:
        key = (p.name, p.marker)
        if key in seen:
            problems.add(
                at,
                f"{p.name} is pinned twice (first at "
                f"{seen[key]}){' for the same marker' if p.marker else ''}; keep one",
            )
        else:
            seen[key] = at


def _sorted(pins: Iterable[Pin]) -> tuple[Pin, ...]:
    return tuple(sorted(pins, key=lambda p: (p.name, p.marker or "")))


def parse_pylock(text: str, where: str = "pylock.toml") -> Lockfile:
    """PEP 751 pylock.toml, validated by ``packaging.pylock`` (packaging >= 25.0)."""
    from packaging.pylock import Pylock, PylockUnsupportedVersionError, PylockValidationError

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(f"is not valid TOML: {exc}", where) from None
    if doc.get("lock-version") != "1.0":
        raise SourceError(f'lock-version must be "1.0", got {doc.get("lock-version")!r}', where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lock = Pylock.from_dict(doc)
    except (PylockValidationError, PylockUnsupportedVersionError) as exc:
        raise SourceError(f"is not a valid PEP 751 lock: {exc}", where) from None
    problems = ProblemCollector()
    pins: list[tuple[str, Pin]] = []
    for i, pkg in enumerate(lock.packages):
        at = f"{where}: packages[{i}]"
        if pkg.version is None:
            problems.add(
                at,
                f"{pkg.name} has no version; lock an exact version (VCS and directory packages are refused)",
            )
            continue
        hashes: set[str] = set()
        for art in [*(pkg.wheels or ()), pkg.sdist, pkg.archive]:
            if art is not None:
                hashes.update(f"{algo}:{value}" for algo, value in art.hashes.items())
        pins.append(
            (
                at,
                Pin(
                    name=canonicalize_name(pkg.name),
                    version=str(pkg.version),
                    hashes=tuple(sorted(hashes)),
                    marker=str(pkg.marker) if pkg.marker else None,
                ),
            )
        )
    _check_duplicates(pins, problems)
    if not pins and not problems:
        problems.add(where, "locks no packages")
    problems.raise_if_any(SourceError)
    return Lockfile(
        kind="pylock",
        requires_python=str(lock.requires_python) if lock.requires_python else None,
        packages=_sorted(p for _, p in pins),
    )
