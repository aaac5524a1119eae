"""`mpkg build`: validate a source folder, then stream it into a canonical package.

Two phases. ``plan`` reads and validates every source (all problems reported
at once, nothing written); ``write`` streams the planned files into a temp file
beside the output, hashing what it writes, and renames it into place.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpkg import __version__
from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.manifest import FORMAT_VERSION, Manifest
from mpkg._internal.format.package import read_manifest
from mpkg._internal.io.atomic import atomic_output
from mpkg.errors import Problem, ProblemCollector, SourceError

from .config import CONFIG_NAME
from .diff.rules import RuleSet
from .signing import envelope_for, load_private_key
from .sources.card import render_packaged_card
from .sources.lineage import is_dvc_file
from .sources.validate import ValidatedSource, validate_source
from .writer import ArchiveWriter, Progress

EXAMPLE_PATH = "example/example.json"


@dataclass(frozen=True)
class PlannedFile:
    """One file to pack: package path, where its bytes come from, its role."""

    path: str
    role: str
    source: Path | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        """The file's size, from its bytes or its source."""
        return len(self.data) if self.data is not None else self.source.stat().st_size  # type: ignore[union-attr]


@dataclass(frozen=True)
class BuildPlan:
    """Everything the manifest says, except the files' digests (known only once written)."""

    document: Mapping[str, Any]
    files: tuple[PlannedFile, ...]
    warnings: tuple[str, ...] = ()  # built anyway; --strict-card makes card warnings errors

    @property
    def total_bytes(self) -> int:
        """Bytes the build will write, for progress."""
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class BuildResult:
    """What a build wrote: identity, digest, size and signers."""

    name: str
    version: str
    digest: str
    path: str
    size: int
    signed_by: tuple[str, ...] = ()
    manifest: Manifest | None = field(default=None, repr=False, compare=False)
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The --json document of `mpkg build`."""
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "path": self.path,
            "size": self.size,
            "signed_by": list(self.signed_by),
            "warnings": list(self.warnings),
        }


def build_package(
    src: str | Path,
    out: str | Path,
    key: str | Path | None = None,
    base: str | Path | None = None,
    progress: Callable[[int], Callable[[int], None] | None] | None = None,
    strict_card: bool = False,
) -> BuildResult:
    """Build ``src`` into ``out``. Raises SourceError listing every problem; writes nothing then."""
    private_key = load_private_key(key) if key is not None else None
    plan_ = plan(Path(src), Path(base) if base is not None else None, strict_card)
    advance = progress(plan_.total_bytes) if progress else None
    return write(plan_, Path(out), private_key, advance)


def plan(src: Path, base: Path | None = None, strict_card: bool = False) -> BuildPlan:
    """Validate the source (every problem at once) and decide what goes where in the package."""
    src = src.absolute()
    if not (src / CONFIG_NAME).is_file():
        raise SourceError(f"no {CONFIG_NAME} here; point mpkg build at a package source folder", str(src))
    source = validate_source(src)
    cfg = source.config
    problems = ProblemCollector()
    warnings = _card_warnings(source, strict_card)
    files: list[PlannedFile] = []

    model_doc = _plan_model(source, files)
    code_doc = _plan_code(source, files, problems)
    lock = source.lockfile
    env_doc: dict[str, Any] = {
        "lockfile": f"environment/{Path(cfg.lockfile).name}",
        "kind": lock.kind,
        "packages": [{"name": p.name, "version": p.version} for p in lock.packages],
    }
    if lock.requires_python:
        env_doc["requires_python"] = lock.requires_python
    files.append(PlannedFile(env_doc["lockfile"], "environment", source=cfg.path(cfg.lockfile)))
    lineage = _plan_lineage(source, files)
    problems.raise_if_any(SourceError)

    declared_version = cfg.package.version
    base_manifest: Manifest | None = read_manifest(base) if base is not None else None
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": cfg.package.name,
        "version": declared_version or "0.0.0",
        "model": model_doc,
        "contract": source.contract.to_json(),
        "environment": env_doc,
        "lineage": lineage,
    }
    if cfg.package.description:
        document["description"] = cfg.package.description
    if code_doc is not None:
        document["code"] = code_doc
    document["example"] = _plan_example(source, document, files)
    # The card's own words are digested apart from its generated facts, so a change of the
    # version it states is not a card change (spec/semver.md §7).
    card_path = f"card/{Path(cfg.card).name}"
    author_text = cfg.path(cfg.card).read_text(encoding="utf-8")
    document["card"] = {
        "path": card_path,
        "metadata": dict(source.card.metadata),
        "author_digest": str(hash_bytes(author_text.encode("utf-8"))),
    }
    if base_manifest is not None:
        document["base"] = {"digest": str(base_manifest.digest), "version": base_manifest.version}
        document["version"] = _infer_version(base_manifest, document, files, declared_version, cfg.diff_rules)
    elif declared_version is None:
        raise SourceError("is required unless building with --base PREV.mpkg", f"{CONFIG_NAME}: [package].version")
    facts: dict[str, Any] = {
        k: document[k]
        for k in ("name", "version", "description", "contract", "environment", "lineage")
        if k in document
    }
    facts["metrics"] = lineage.get("metrics") or {}
    files.append(PlannedFile(card_path, "card", data=render_packaged_card(author_text, facts).encode("utf-8")))
    files.sort(key=lambda f: f.path.encode("utf-8"))
    _check_unique(files)
    return BuildPlan(document, tuple(files), warnings)


def _card_warnings(source: ValidatedSource, strict: bool) -> tuple[str, ...]:
    """Sections that still say "Not stated:": warnings, or with --strict-card errors."""
    card = source.config.card
    problems = [
        Problem(card, f"section {s!r} says 'Not stated': a person has to write it") for s in source.card.unstated
    ]
    if strict and problems:
        raise SourceError(problems)
    return tuple(str(p) for p in problems)


def _plan_model(source: ValidatedSource, files: list[PlannedFile]) -> dict[str, Any]:
    cfg = source.config
    architecture: dict[str, Any] = {"kind": cfg.model.format}
    model_files = [f"model/{rel}" for rel in cfg.model.files]
    for rel in cfg.model.files:
        files.append(PlannedFile(f"model/{rel}", "weights", source=cfg.path(rel)))
    if source.onnx is not None:
        for extra in source.onnx.external_data:
            files.append(PlannedFile(f"model/{extra}", "weights", source=cfg.path(extra)))
        architecture.update(source.onnx.architecture)
    for rel, st in source.safetensors:
        architecture.setdefault("tensors", []).extend(
            {"file": f"model/{rel}", "name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in st.tensors
        )
    return {"format": cfg.model.format, "files": model_files, "architecture": architecture}


def _plan_code(source: ValidatedSource, files: list[PlannedFile], problems: ProblemCollector) -> dict[str, Any] | None:
    cfg = source.config
    if cfg.code is None:
        if cfg.model.format == "safetensors":
            problems.add(
                f"{CONFIG_NAME}: [code]",
                "is required for safetensors models: its module defines predict(weights, inputs)",
            )
        return None
    root = cfg.code.root.rstrip("/")
    for rel in source.code_files:
        files.append(PlannedFile(f"code/{Path(rel).relative_to(root).as_posix()}", "code", source=cfg.path(rel)))
    entry_points = dict(source.entry_points)
    module = f"{cfg.code.root}/{cfg.code.module.replace('.', '/')}"
    if cfg.model.format == "safetensors" and "predict" not in entry_points:
        problems.add(module, "must define predict(weights, inputs) for a safetensors model")
    if cfg.model.format == "onnx" and "predict" in entry_points:
        problems.add(module, "defines predict(); ONNX packages run the graph, so use preprocess/postprocess")
    return {"root": "code", "module": cfg.code.module, "entry_points": entry_points}


def _plan_lineage(source: ValidatedSource, files: list[PlannedFile]) -> dict[str, Any]:
    cfg = source.config
    lineage = dict(source.lineage)
    lineage["builder"] = {
        "mpkg": __version__,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "platform": f"{sys.platform}-{platform.machine()}",
    }
    dvc = [d for d in cfg.lineage.data if is_dvc_file(d)]  # plain data files are hashed, not packed
    for rel in (r for r in (cfg.lineage.metrics, cfg.lineage.params, cfg.lineage.origin, *dvc) if r):
        files.append(PlannedFile(f"lineage/{rel}", "lineage", source=cfg.path(rel)))
    return lineage


def _plan_example(source: ValidatedSource, document: Mapping[str, Any], files: list[PlannedFile]) -> dict[str, Any]:
    """Run the model from source on the example input and record what it produced."""
    from .example import record_example

    example = record_example(source, document)
    files.append(PlannedFile(EXAMPLE_PATH, "example", data=example.data))
    return {"path": EXAMPLE_PATH, "rtol": example.rtol, "atol": example.atol}


def _infer_version(
    base: Manifest, document: dict[str, Any], files: list[PlannedFile], declared: str | None, rules: RuleSet
) -> str:
    from .diff import infer_version

    return infer_version(base, document, files, declared, rules).version


def _check_unique(files: list[PlannedFile]) -> None:
    from mpkg._internal.format.manifest import fold, path_problem

    seen: dict[str, str] = {}
    problems = []
    for f in files:
        reason = path_problem(f.path)
        if reason:
            problems.append(Problem(f.path, f"cannot be packed: the path {reason}"))
        key = fold(f.path)
        if key in seen:
            problems.append(Problem(f.path, f"collides with {seen[key]!r} (same name ignoring case/Unicode form)"))
        seen[key] = f.path
    if problems:
        raise SourceError(problems)


def write(plan: BuildPlan, out: Path, private_key: Any = None, advance: Progress | None = None) -> BuildResult:
    """Stream the plan into ``out`` atomically; sign it in the same pass if a key is given."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as f:
        writer = ArchiveWriter(f, advance)
        entries = []
        for pf in plan.files:
            if pf.data is not None:
                entries.append(writer.add_bytes(pf.path, pf.data, pf.role))
            else:
                assert pf.source is not None
                entries.append(writer.add_file(pf.path, pf.source, pf.role))
        document = {**plan.document, "files": [e.to_json() for e in entries]}
        manifest = Manifest.from_json(document)
        signatures = None
        signed_by: tuple[str, ...] = ()
        if private_key is not None:
            envelope = envelope_for(manifest, private_key)
            signatures = envelope.to_bytes()
            signed_by = tuple(s.keyid for s in envelope.signatures)
        writer.finish(manifest.to_bytes(), signatures)
        size = writer.offset
    digest = str(manifest.digest)
    return BuildResult(manifest.name, manifest.version, digest, str(out), size, signed_by, manifest, plan.warnings)


__all__ = ["BuildPlan", "BuildResult", "build_package", "plan", "write"]
