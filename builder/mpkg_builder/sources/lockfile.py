"""Lockfiles: exact pins only, so the environment a package records is reproducible.

Two formats: pip requirements with ``==`` pins (optionally ``--hash``), and PEP 751
``pylock.toml``. Anything that leaves a version open (ranges, URLs, editable installs,
includes) is refused line by line.

Every field is validated, because a lockfile is later written out as the requirements an
image installs (``mpkg containerize``): a line separator smuggled into a pylock hash value
used to become an extra ``evil @ https://...`` requirement there. A :class:`Pin` exists only
with a PEP 503 name, a normalised PEP 440 version, hashes that are lowercase hex of the
named algorithm's length and a marker that parses; no value anywhere in a lockfile may hold
a control character or a line or paragraph separator.
"""

from __future__ import annotations

import re
import tomllib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mpkg._internal.format.manifest import PIN_NAME_RE, PIN_VERSION_RE
from mpkg._internal.format.shape import ONE_LINE
from mpkg.errors import Problem, ProblemCollector, SourceError
from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

# Hash algorithms pip's --require-hashes mode takes that are still collision resistant.
HASH_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_HASH = re.compile(r"(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})", re.ASCII)
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
    """One pinned distribution, as validated; what is written from it is exactly this."""

    name: str  # canonicalized (PEP 503)
    version: str  # normalised (PEP 440)
    hashes: tuple[str, ...] = ()  # "sha256:<hex>", sorted
    marker: str | None = None  # normalised (str(Marker))

    def __post_init__(self) -> None:
        if not _pin_is_valid(self):  # parsers validate with reasons first; this is the last line
            raise ValueError(f"not a validated pin: {self!r}")


def _pin_is_valid(pin: Pin) -> bool:
    return (
        PIN_NAME_RE.fullmatch(pin.name) is not None
        and PIN_VERSION_RE.fullmatch(pin.version) is not None
        and all(_HASH.fullmatch(h) for h in pin.hashes)
        and (pin.marker is None or (ONE_LINE.fullmatch(pin.marker) is not None and pin.marker.strip() == pin.marker))
    )


def make_pin(
    name: str, version: str, hashes: Iterable[str], marker: Marker | str | None, at: str, problems: ProblemCollector
) -> Pin | None:
    """A Pin from parsed fields, or None with each problem added (naming ``at``)."""
    before = len(problems.problems)
    try:
        canonical = canonicalize_name(name, validate=True)
    except InvalidName:
        problems.add(at, f"{_show(name)} is not a package name (PEP 508)")
        canonical = None
    try:
        normal = str(Version(version))
    except InvalidVersion:
        problems.add(at, f"{_show(version)} is not a version (PEP 440)")
        normal = None
    hash_list = sorted(set(hashes))
    for h in hash_list:
        if not _HASH.fullmatch(h):
            problems.add(
                at, f"hash {_show(h)} must be sha256:, sha384: or sha512: with lowercase hex of the right length"
            )
    marker_text = None
    if marker is not None:
        try:
            marker_text = str(marker if isinstance(marker, Marker) else Marker(marker))
        except InvalidMarker:
            problems.add(at, f"marker {_show(str(marker))} does not parse (PEP 508)")
        else:
            if not ONE_LINE.fullmatch(marker_text):
                problems.add(at, f"marker {_show(marker_text)} holds a control character or line separator")
    if len(problems.problems) != before or canonical is None or normal is None:
        return None
    return Pin(canonical, normal, tuple(hash_list), marker_text)


def _show(text: str) -> str:
    """A value for a message: quoted, escaped, at most 80 characters."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


@dataclass(frozen=True)
class Lockfile:
    """A validated lockfile: every pin exact, in one order."""

    kind: Literal["requirements", "pylock"]
    requires_python: str | None
    packages: tuple[Pin, ...]  # sorted by (name, marker)

    def pin(self, name: str) -> Pin | None:
        """The pin of a distribution, by any spelling of its name."""
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
        if not ONE_LINE.fullmatch(line):
            problems.add(at, f"{_show(line)} holds a control character; a lockfile line is plain text")
            continue
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
        pin = make_pin(req.name, specs[0].version, hashes, req.marker, at, problems)
        if pin is not None and not bad:
            pins.append((no, pin))
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
    unsafe = _unsafe_strings(doc)
    if unsafe:
        raise SourceError(
            [
                Problem(f"{where}: {key}", "holds a control character or line separator; lockfile values are one line")
                for key in unsafe
            ]
        )
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
                for algo, value in art.hashes.items():
                    if algo not in HASH_HEX_LENGTH:
                        problems.add(at, f"{pkg.name}: hash algorithm {_show(algo)} is not sha256, sha384 or sha512")
                        continue
                    hashes.add(f"{algo}:{value.lower() if value.isascii() else value}")
        pin = make_pin(pkg.name, str(pkg.version), hashes, pkg.marker, at, problems)
        if pin is not None:
            pins.append((at, pin))
    _check_duplicates(pins, problems)
    if not pins and not problems:
        problems.add(where, "locks no packages")
    problems.raise_if_any(SourceError)
    return Lockfile(
        kind="pylock",
        requires_python=_requires_python(lock.requires_python, where),
        packages=_sorted(p for _, p in pins),
    )


def _requires_python(spec: object, where: str) -> str | None:
    if not spec:
        return None
    try:
        return str(SpecifierSet(str(spec)))
    except InvalidSpecifier:
        raise SourceError(f"requires-python {_show(str(spec))} is not a version specifier", where) from None


def _unsafe_strings(value: object, key: str = "") -> list[str]:
    """The dotted keys of every string (or key) holding a control character or line separator."""
    found: list[str] = []
    stack: list[tuple[object, str]] = [(value, key)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, str):
            if not ONE_LINE.fullmatch(node):
                found.append(at or "(document)")
        elif isinstance(node, dict):
            for k, v in node.items():
                child = f"{at}.{k}" if at else str(k)
                if not ONE_LINE.fullmatch(str(k)):
                    found.append(_show(child))
                stack.append((v, child))
        elif isinstance(node, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node))
    return sorted(found)
