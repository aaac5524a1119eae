"""The environment section: locked dependencies, the lockfile, and the supported Pythons.

A dependency's change is levelled by its own version numbering (Cargo's reading of 0.x);
``requires_python`` is compared by which Python versions each specifier accepts.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .. import rules as R
from ..findings import Findings
from ..rules import Bump
from ..views import EnvironmentView, ManifestView

_DEP_RULE = {
    Bump.MAJOR: R.DEPENDENCY_MAJOR_CHANGED,
    Bump.MINOR: R.DEPENDENCY_MINOR_CHANGED,
    Bump.PATCH: R.DEPENDENCY_PATCH_CHANGED,
}


def diff(d: Findings, old: ManifestView, new: ManifestView) -> None:
    """Pins added, removed or moved, the Python range, and the lockfile's name or kind."""
    oe, ne = old.environment, new.environment
    op, np_ = _pins(oe), _pins(ne)
    for name in sorted(set(op) | set(np_)):
        a, b = op.get(name), np_.get(name)
        at = f"environment.packages.{name}"
        if b is None:
            d.add(R.DEPENDENCY_REMOVED, at, _one(a), None, f"{name} was removed from the lock")
        elif a is None:
            d.add(R.DEPENDENCY_ADDED, at, None, _one(b), f"{name} {_one(b)} was added to the lock")
        elif a != b:
            if len(a) == len(b):
                level = max(dependency_level(x, y) for x, y in zip(a, b, strict=True))
            else:
                level = Bump.MAJOR
            level = max(level, Bump.PATCH)
            direction = "upgraded" if _newer(a, b) else "downgraded" if _newer(b, a) else "changed"
            d.add(
                _DEP_RULE[level],
                at,
                _one(a),
                _one(b),
                f"{name} {direction} {_one(a)} -> {_one(b)} ({level.label} by its own numbering)",
            )
    _diff_python(d, oe.requires_python, ne.requires_python)
    if oe.kind != ne.kind or oe.lockfile != ne.lockfile:
        d.add(
            R.LOCKFILE_CHANGED,
            "environment.lockfile",
            f"{oe.lockfile} ({oe.kind})",
            f"{ne.lockfile} ({ne.kind})",
            "lockfile format or name changed",
        )


def _pins(env: EnvironmentView) -> dict[str, list[str]]:
    """Versions by normalised name (a lock may pin one name twice, under markers)."""
    out: dict[str, list[str]] = {}
    for p in env.packages:
        out.setdefault(canonicalize_name(p.name), []).append(p.version)
    return {k: sorted(set(v)) for k, v in out.items()}


def dependency_level(old: str, new: str) -> Bump:
    """How big a version delta is by the dependency's own numbering (Cargo's rule for 0.x).

    Unparseable versions are assumed breaking.
    """
    try:
        a, b = Version(old), Version(new)
    except InvalidVersion:
        return Bump.MAJOR
    if a == b:
        return Bump.NONE
    ra = (*a.release, 0, 0, 0)[:3]
    rb = (*b.release, 0, 0, 0)[:3]
    if a.epoch != b.epoch or ra[0] != rb[0]:
        return Bump.MAJOR
    if ra[0] == 0:  # 0.y.z: y is the breaking component; in 0.0.z, z is
        if ra[1] != rb[1] or (ra[1] == 0 and ra[2] != rb[2]):
            return Bump.MAJOR
        return Bump.MINOR if ra[2] != rb[2] else Bump.PATCH
    if ra[1] != rb[1]:
        return Bump.MINOR
    return Bump.PATCH  # patch, a 4th component, pre/post/dev or local


def _one(versions: list[str] | None) -> str | None:
    return None if versions is None else " | ".join(versions)


def _newer(a: list[str], b: list[str]) -> bool:
    try:
        return max(map(Version, b)) > max(map(Version, a))
    except InvalidVersion:
        return False


def _python_grid(specs: Iterable[SpecifierSet]) -> list[Version]:
    """Python versions to probe: X.Y.Z for majors 2-4, minors 0-40 and micros 0, 1, 5 and 40,
    plus each version a specifier names (``*`` read as 0) and its neighbours one minor and/or
    one micro either side, in the same major (so a bound such as ``<3.12.3`` is probed at its edge)."""
    grid = {
        Version(f"{major}.{minor}.{micro}") for major in (2, 3, 4) for minor in range(41) for micro in (0, 1, 5, 40)
    }
    for spec in specs:
        for s in spec:
            try:
                v = Version(s.version.replace("*", "0"))
            except InvalidVersion:
                continue
            rel = (*v.release, 0, 0, 0)[:3]
            for dm in (-1, 0, 1):
                for dp in (-1, 0, 1):
                    if rel[1] + dm >= 0 and rel[2] + dp >= 0:
                        grid.add(Version(f"{rel[0]}.{rel[1] + dm}.{rel[2] + dp}"))
    return sorted(grid)


def _diff_python(d: Findings, old: str | None, new: str | None) -> None:
    """Narrowed if some probed Python the old range accepted is refused; widened if only gained."""
    if (old or "") == (new or ""):
        return
    try:
        a, b = SpecifierSet(old or ""), SpecifierSet(new or "")
    except InvalidSpecifier:
        d.add(
            R.PYTHON_NARROWED,
            "environment.requires_python",
            old,
            new,
            "requires_python changed and cannot be compared; assumed narrowed",
        )
        return
    grid = _python_grid((a, b))
    accepted_a = {v for v in grid if a.contains(v, prereleases=True)}
    accepted_b = {v for v in grid if b.contains(v, prereleases=True)}
    lost = sorted(accepted_a - accepted_b)
    if lost:
        d.add(
            R.PYTHON_NARROWED,
            "environment.requires_python",
            old,
            new,
            f"requires_python narrowed: {old or 'any'!r} -> {new or 'any'!r} (Python {lost[0]} no longer allowed)",
        )
    elif accepted_b - accepted_a:
        d.add(
            R.PYTHON_WIDENED,
            "environment.requires_python",
            old,
            new,
            f"requires_python widened from {old or 'any'!r} to {new or 'any'!r}",
        )
    else:
        d.add(
            R.LOCKFILE_CHANGED,
            "environment.requires_python",
            old,
            new,
            "requires_python rewritten with the same meaning",
        )


__all__ = ["dependency_level", "diff"]
