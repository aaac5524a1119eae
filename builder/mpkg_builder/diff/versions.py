"""SemVer 2.0.0 arithmetic for mpkg's own versions: bump, precedence, the 0.x convention.

0.x follows Cargo: in ``0.y.z`` a breaking (major) change bumps ``y`` and anything
else bumps ``z``; in ``0.0.z`` every change bumps ``z`` (each release may break).
Bumping a pre-release releases it when that is enough (``1.0.0-rc.1`` + major ->
``1.0.0``; ``1.2.0-rc.1`` + minor -> ``1.2.0``; ``1.2.3-rc.1`` + patch -> ``1.2.3``),
as npm's ``semver.inc`` does. Build metadata is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpkg._internal.format.manifest import SEMVER_RE

from .rules import Bump


@dataclass(frozen=True)
class SemVer:
    """A parsed SemVer 2.0.0 version, so precedence and bumps are computed, not string-compared."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """The version ``text`` spells; ValueError says what a version looks like."""
        m = SEMVER_RE.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a SemVer 2.0.0 version such as 1.2.3")
        pre = tuple(m.group(4).split(".")) if m.group(4) else ()
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre, m.group(5) or "")

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(self.pre)
        return text + (f"+{self.build}" if self.build else "")

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """Precedence key (SemVer §11): a release sorts after its pre-releases; build is ignored."""
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)


def precedes(a: str, b: str) -> bool:
    """True if version ``a`` has lower precedence than ``b``."""
    return SemVer.parse(a).key() < SemVer.parse(b).key()


def bump_version(version: str, bump: Bump) -> str:
    """The smallest version after ``version`` that a change of size ``bump`` requires."""
    v = SemVer.parse(version)
    if bump is Bump.NONE:
        return str(SemVer(v.major, v.minor, v.patch, v.pre))
    # Which component the change lands on (Cargo's 0.x convention).
    if v.major == 0:
        part = "patch" if v.minor == 0 or bump is not Bump.MAJOR else "minor"
    else:
        part = {Bump.MAJOR: "major", Bump.MINOR: "minor", Bump.PATCH: "patch"}[bump]
    if part == "major":
        if v.pre and v.minor == 0 and v.patch == 0:
            return f"{v.major}.0.0"
        return f"{v.major + 1}.0.0"
    if part == "minor":
        if v.pre and v.patch == 0:
            return f"{v.major}.{v.minor}.0"
        return f"{v.major}.{v.minor + 1}.0"
    if v.pre:
        return f"{v.major}.{v.minor}.{v.patch}"
    return f"{v.major}.{v.minor}.{v.patch + 1}"


def level_of(base: str, version: str) -> Bump:
    """The largest bump ``version`` already covers relative to ``base`` (NONE if not after it)."""
    have = SemVer.parse(version).key()
    for bump in (Bump.MAJOR, Bump.MINOR, Bump.PATCH):
        if have >= SemVer.parse(bump_version(base, bump)).key():
            return bump
    return Bump.NONE


__all__ = ["SemVer", "bump_version", "level_of", "precedes"]
