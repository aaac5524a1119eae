"""The distributions a package needs, pinned to what this environment has installed.

Roots (what the code imports, what the model format needs at run time) are followed
through each distribution's declared requirements, with markers evaluated for this
environment and the extras actually asked for. Test and build tools are never locked;
distributions installed from a local folder, file or VCS checkout are refused, because a
lockfile can only pin releases an index serves.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mpkg.errors import ProblemCollector, SourceError
from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from .imports import Import

# What a model format needs at run time, besides the code's own imports.
FORMAT_NEEDS: Mapping[str, tuple[str, ...]] = {"onnx": ("onnxruntime", "numpy"), "safetensors": ("numpy",)}
TABULAR_NEEDS = ("pyarrow",)
RUNTIME = canonicalize_name("mpkg")

# Tools for testing, building, packaging and linting: never a run-time dependency of a model.
TOOLS = frozenset(
    canonicalize_name(n)
    for n in (
        "pip",
        "setuptools",
        "wheel",
        "build",
        "installer",
        "uv",
        "pipx",
        "virtualenv",
        "twine",
        "flit",
        "flit-core",
        "hatchling",
        "hatch",
        "poetry",
        "poetry-core",
        "pdm",
        "pdm-backend",
        "setuptools-scm",
        "scikit-build-core",
        "maturin",
        "meson-python",
        "cython",
        "pytest",
        "pytest-cov",
        "pytest-xdist",
        "pytest-timeout",
        "pytest-benchmark",
        "pytest-mock",
        "pluggy",
        "iniconfig",
        "hypothesis",
        "coverage",
        "tox",
        "nox",
        "mypy",
        "ruff",
        "black",
        "flake8",
        "pylint",
        "isort",
        "pre-commit",
    )
)


@dataclass(frozen=True)
class Root:
    """A distribution the package needs directly, and why."""

    name: NormalizedName
    why: str
    extras: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Locked:
    """One pinned distribution and why it is in the lockfile."""

    name: NormalizedName
    version: str
    required_by: tuple[str, ...]  # root reasons or the distributions that require it


@dataclass(frozen=True)
class Resolution:
    """The closure lock computed: pins, their roots, and what was left out."""

    pins: tuple[Locked, ...]  # sorted by name
    roots: tuple[Root, ...]
    notes: tuple[str, ...]  # what was left out, and why


def roots_for(model_format: str, tabular: bool, imports: Sequence[Import]) -> tuple[list[Root], list[str]]:
    """Roots for a package: format needs, then the distributions providing each import.

    Raises SourceError naming every import no installed distribution provides."""
    problems = ProblemCollector()
    notes: list[str] = []
    reasons: dict[NormalizedName, list[str]] = {}

    def add(name: str, why: str) -> None:
        reasons.setdefault(canonicalize_name(name), []).append(why)

    for name in FORMAT_NEEDS.get(model_format, ()):
        add(name, f"the {model_format} format")
    if tabular:
        for name in TABULAR_NEEDS:
            if installed(name) is None:
                notes.append(f"{name} is not installed: the package will not take Arrow tables (pip install {name})")
            else:
                add(name, "tabular inputs")
    for imp in imports:
        dists = providers(imp.module)
        if not dists:
            if imp.optional:
                notes.append(f"{imp.where}: optional import {imp.module!r} is not installed; not locked")
            else:
                problems.add(
                    imp.where,
                    f"imports {imp.module!r}, which no installed distribution provides; install it, then lock again",
                )
            continue
        for dist in sorted(set(dists)):
            if canonicalize_name(dist) == RUNTIME:
                continue  # the runtime that loads the package provides itself
            if canonicalize_name(dist) in TOOLS:
                problems.add(
                    imp.where,
                    f"imports {imp.module!r} from {dist}, a test or build tool; "
                    "package code must not need it at run time",
                )
                continue
            add(dist, f"imported at {imp.where}")
    problems.raise_if_any(SourceError)
    return [Root(name, "; ".join(whys)) for name, whys in reasons.items()], notes


def providers(module: str) -> list[str]:
    """The distributions that provide the top-level ``module``: a distribution of the same name
    that ships it (one RECORD read), else any that does (every RECORD read, once)."""
    dist = installed(module)
    if dist is not None and _ships(dist, module):
        return [str(dist.metadata["Name"])]
    return list(_all_providers().get(module, []))


@functools.cache
def _all_providers() -> Mapping[str, list[str]]:
    return md.packages_distributions()


def _ships(dist: md.Distribution, module: str) -> bool:
    top = (dist.read_text("top_level.txt") or "").split()
    if top:
        return module in top
    return any(f.parts and f.parts[0].split(".", 1)[0] == module for f in dist.files or ())


def resolve(roots: Iterable[Root]) -> Resolution:
    """Every distribution reachable from ``roots``, pinned to its installed version."""
    roots = tuple(roots)
    problems = ProblemCollector()
    notes: list[str] = []
    versions: dict[NormalizedName, str] = {}
    required_by: dict[NormalizedName, list[str]] = {}
    extras: dict[NormalizedName, set[str]] = {}
    queue: list[tuple[NormalizedName, frozenset[str], str]] = [(r.name, r.extras, r.why) for r in roots]
    while queue:
        name, wanted, why = queue.pop(0)
        required_by.setdefault(name, [])
        if why not in required_by[name]:
            required_by[name].append(why)
        new_extras = set(wanted) - extras.get(name, set())
        if name in versions and not new_extras:
            continue
        extras.setdefault(name, set()).update(wanted)
        dist = installed(name)
        if dist is None:
            problems.add(name, f"is required ({why}) but not installed; install it, then lock again")
            continue
        reason = _local_origin(dist)
        if reason:
            problems.add(
                f"{name} {dist.version}",
                f"{reason}; a lockfile pins releases from an index: "
                f"install it from the index (pip install {name}=={dist.version}), then lock again",
            )
            continue
        versions[name] = dist.version
        for req in _requirements(dist, extras[name], problems):
            key = canonicalize_name(req.name)
            if key in TOOLS:
                note = f"{key} (required by {name}) is a build or test tool: not locked"
                if note not in notes:
                    notes.append(note)
                continue
            queue.append((key, frozenset(req.extras), name))
    problems.raise_if_any(SourceError)
    pins = tuple(Locked(n, versions[n], tuple(required_by[n])) for n in sorted(versions))
    return Resolution(pins, roots, tuple(notes))


def installed(name: str) -> md.Distribution | None:
    """The installed distribution ``name`` (the one imports would find), or None."""
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        return None


def _local_origin(dist: md.Distribution) -> str | None:
    """Why ``dist`` was not installed from an index (PEP 610 direct_url.json), or None."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return "has an unreadable direct_url.json (installed from a direct URL)"
    if not isinstance(doc, dict):
        return "was installed from a direct URL"
    if isinstance(doc.get("dir_info"), dict):
        kind = "an editable install" if doc["dir_info"].get("editable") else "installed from a local folder"
        return f"is {kind} ({doc.get('url', '?')})"
    if "vcs_info" in doc:
        return f"was installed from a VCS checkout ({doc.get('url', '?')})"
    return f"was installed from a file or URL ({doc.get('url', '?')}), not an index"


def _requirements(dist: md.Distribution, extras: set[str], problems: ProblemCollector) -> list[Requirement]:
    """The requirements of ``dist`` that apply here, for its base and the requested extras."""
    out = []
    for text in dist.requires or ():
        try:
            req = Requirement(text)
        except InvalidRequirement:
            problems.add(f"{dist.metadata['Name']} {dist.version}", f"declares an unreadable requirement {text!r}")
            continue
        if req.marker is not None and not any(_applies(req, e) for e in ("", *sorted(extras))):
            continue
        out.append(req)
    return out


def _applies(req: Requirement, extra: str) -> bool:
    assert req.marker is not None
    try:
        return bool(req.marker.evaluate({"extra": extra}))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return False


__all__ = ["FORMAT_NEEDS", "TOOLS", "Locked", "Resolution", "Root", "installed", "providers", "resolve", "roots_for"]
