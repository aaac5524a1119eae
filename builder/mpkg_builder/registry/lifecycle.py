"""push, pull, promote, rollback, history, gc: the model lifecycle over any :class:`Backend`.

Stage moves follow one protocol (spec/registry.md §6) because registries cannot
compare-and-swap a tag: record the move as its own event, re-read the stage tag and refuse
if it changed since the plan (voiding the event), move the tag, then re-read tag and history
and report a conflict if another move raced this one. The local store adds a file lock, so
there moves are simply serial.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from mpkg.atomic import Temporary, temporary
from mpkg.errors import Problem, RegistryError, UsageError, VerificationError

from .auth import Credentials
from .backend import (
    EMPTY_DATA,
    PACKAGE_ARTIFACT_TYPE,
    PACKAGE_LAYER_TYPE,
    Backend,
    Manifest,
    Progress,
    artifact_manifest,
    digest_bytes,
    sha256_file,
)
from .gates import GateResult, evaluate, parse_gate
from .history import (
    EVENT_TAG_PREFIX,
    MOVES,
    Event,
    HistoryReport,
    PackageRef,
    RecordedEvent,
    Signer,
    ancestors,
    concurrent_moves,
    current_user,
    next_sequence,
    now_text,
    read_events,
    tips,
    voided,
    write_event,
)
from .local import LocalBackend
from .refs import STAGES, Reference, version_tag

ProgressFactory = Callable[[int], Progress | None]

ANNOTATION_NAME = "dev.mpkg.package.name"
ANNOTATION_VERSION = "dev.mpkg.package.version"
ANNOTATION_DIGEST = "dev.mpkg.package.digest"
ANNOTATION_METRICS = "dev.mpkg.package.metrics"
ARCHIVE_PREFIX = "archived-"


def open_backend(
    ref: Reference,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
    home: Path | None = None,
) -> Backend:
    """The registry a REF names, or the local store when it names no host."""
    if ref.host is None:
        return LocalBackend(home)
    from .auth import docker_credentials
    from .oci import OciBackend

    creds = credentials or docker_credentials(ref.host)
    return OciBackend(ref.host, insecure=insecure, credentials=creds)


def _reserved(tag: str) -> bool:
    return tag in STAGES or tag.startswith((EVENT_TAG_PREFIX, ARCHIVE_PREFIX))


def archive_tag(ref: PackageRef) -> str:
    """Where a replaced production holder stays reachable: version plus manifest digest."""
    return f"{ARCHIVE_PREFIX}{version_tag(ref.version)[:96]}-{ref.manifest.split(':', 1)[1][:12]}"


# --- the package artifact -------------------------------------------------------------


def package_manifest(name: str, version: str, digest: str, metrics: dict[str, float], blob: str, size: int) -> bytes:
    """The package's OCI manifest: same package, same bytes (no timestamps)."""
    layer = {
        "mediaType": PACKAGE_LAYER_TYPE,
        "digest": blob,
        "size": size,
        "annotations": {"org.opencontainers.image.title": f"{name}-{version}.mpkg"},
    }
    return artifact_manifest(
        PACKAGE_ARTIFACT_TYPE,
        [layer],
        {
            ANNOTATION_NAME: name,
            ANNOTATION_VERSION: version,
            ANNOTATION_DIGEST: digest,
            ANNOTATION_METRICS: json.dumps(metrics, sort_keys=True, separators=(",", ":")),
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": version,
        },
    )


def package_ref(manifest: Manifest, where: str) -> PackageRef:
    """Read a package artifact's manifest strictly; anything else is refused."""
    doc = manifest.json()
    layers = doc.get("layers")
    annotations = doc.get("annotations")
    if (
        doc.get("artifactType") != PACKAGE_ARTIFACT_TYPE
        or not isinstance(layers, list)
        or len(layers) != 1
        or not isinstance(layers[0], dict)
        or layers[0].get("mediaType") != PACKAGE_LAYER_TYPE
        or not isinstance(annotations, dict)
    ):
        raise RegistryError(
            f"is not an mpkg package artifact ({PACKAGE_ARTIFACT_TYPE} with one {PACKAGE_LAYER_TYPE} layer)", where
        )
    layer = layers[0]
    digest, name, version = (annotations.get(k) for k in (ANNOTATION_DIGEST, ANNOTATION_NAME, ANNOTATION_VERSION))
    if (
        not isinstance(digest, str)
        or not isinstance(name, str)
        or not isinstance(version, str)
        or not isinstance(layer.get("digest"), str)
        or not isinstance(layer.get("size"), int)
    ):
        raise RegistryError("package artifact lacks its name/version/digest annotations", where)
    return PackageRef(manifest.digest, digest, name, version, layer["digest"], layer["size"])


def _metrics_annotation(manifest: Manifest) -> dict[str, float]:
    raw = (manifest.json().get("annotations") or {}).get(ANNOTATION_METRICS, "{}")
    try:
        metrics = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return {str(k): v for k, v in metrics.items()} if isinstance(metrics, dict) else {}


def _resolve(backend: Backend, ref: Reference) -> tuple[Manifest, PackageRef]:
    if ref.reference is None:
        raise UsageError(f"{ref} names no tag or digest; add :TAG or @sha256:...", "REF")
    manifest = backend.get_manifest(ref.repository, ref.reference)
    if manifest is None:
        raise RegistryError(f"not found in {backend.describe()}", str(ref))
    return manifest, package_ref(manifest, str(ref))


def _holder(backend: Backend, repo: str, stage: str) -> tuple[Manifest, PackageRef] | None:
    manifest = backend.get_manifest(repo, stage)
    if manifest is None:
        return None
    return manifest, package_ref(manifest, f"{repo}:{stage}")


def _signer(key: Path | str | None) -> Signer | None:
    return Signer.load(key) if key is not None else None


# --- push / pull ----------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    ref: str
    name: str
    version: str
    package_digest: str
    manifest_digest: str
    blob_digest: str
    size: int
    uploaded: bool  # False: the store already had the bytes
    tagged: bool  # False: the tag already named this exact manifest

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "digest": self.package_digest,
            "manifest": self.manifest_digest,
            "blob": self.blob_digest,
            "size": self.size,
            "uploaded": self.uploaded,
            "tagged": self.tagged,
        }


def push(
    backend: Backend,
    ref: Reference,
    package: Path,
    *,
    key: Path | str | None = None,
    progress: ProgressFactory | None = None,
) -> PushResult:
    """Store a package as an OCI artifact under ``ref`` (default tag: its version).
    ``progress(total)`` may return a callback told each piece uploaded (a progress bar)."""
    from mpkg.package import read_info

    if ref.digest:
        raise UsageError("push takes REPO[:TAG], not a digest", "REF")
    signer = _signer(key)
    info = read_info(package)
    tag = ref.tag or version_tag(info.version)
    if _reserved(tag):
        raise UsageError(
            f"tag {tag!r} is managed by mpkg (stages, archives, history); push a version tag and use `mpkg promote`",
            "REF",
        )
    repo = ref.repository
    blob, size = sha256_file(package)
    data = package_manifest(info.name, info.version, info.digest, dict(info.metrics), blob, size)
    digest = digest_bytes(data)
    with backend.lock(repo):
        existing = backend.get_manifest(repo, tag)
        if existing is not None and existing.digest != digest:
            other = package_ref(existing, f"{ref.name}:{tag}")
            raise RegistryError(
                f"tag {tag} already names another package ({other.package}); versions are "
                "immutable: bump the version or push under another tag",
                str(ref.with_tag(tag)),
            )
        backend.push_blob_bytes(repo, EMPTY_DATA)
        uploaded = backend.push_blob_file(repo, package, blob, size, progress(size) if progress else None)
        tagged = existing is None
        if tagged:
            backend.put_manifest(repo, tag, data)
            target = PackageRef(digest, info.digest, info.name, info.version, blob, size)
            events, _ = read_events(backend, repo)
            parents = tips(events)
            write_event(
                backend,
                repo,
                Event(
                    repo,
                    next_sequence(events, parents),
                    parents,
                    "push",
                    now_text(),
                    current_user(),
                    signer.keyid if signer else None,
                    target=target,
                    notes=(f"tag {tag}",),
                ),
                signer,
            )
    return PushResult(
        str(ref.with_tag(tag)), info.name, info.version, info.digest, digest, blob, size, uploaded, tagged
    )


@dataclass(frozen=True)
class PullResult:
    ref: str
    path: str
    name: str
    version: str
    package_digest: str
    manifest_digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "ref": self.ref,
            "path": self.path,
            "name": self.name,
            "version": self.version,
            "digest": self.package_digest,
            "manifest": self.manifest_digest,
            "size": self.size,
        }


def _download(
    backend: Backend, repo: str, target: PackageRef, directory: Path, stem: str, progress: Progress | None = None
) -> Temporary:
    """Stream the package blob to a hidden temp file in ``directory``, checking its digest.
    The temporary (mpkg.atomic) is locked until unlinked, removed on signals, swept if orphaned."""
    tmp = temporary(directory / stem)
    try:
        with tmp.open() as out:
            sink = cast(BinaryIO, _Counted(out, progress)) if progress else out  # fetch_blob only writes
            backend.fetch_blob(repo, target.blob, target.size, sink)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _verify(path: Path, keys: Sequence[Path | str], allow_unsigned: bool, target: PackageRef, where: str) -> None:
    from mpkg.verify import verify

    result = verify(path, list(keys), allow_unsigned)
    if not result.ok:
        raise VerificationError([Problem(where, e.replace(str(path), where)) for e in result.errors])
    if str(result.digest) != target.package:
        raise VerificationError(
            f"package digest {result.digest} differs from the artifact's annotation "
            f"{target.package}; refusing a substituted package",
            where,
        )


class _Counted(io.RawIOBase):
    """A writable file that reports each write to a progress callback."""

    def __init__(self, out: BinaryIO, progress: Progress) -> None:
        self._out, self._progress = out, progress

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = self._out.write(data)
        self._progress(n)
        return n


def pull(
    backend: Backend,
    ref: Reference,
    out: Path,
    *,
    keys: Sequence[Path | str] = (),
    allow_unsigned: bool = False,
    progress: ProgressFactory | None = None,
) -> PullResult:
    """Fetch, check the blob digest, verify the package, then atomically rename to ``out``.
    ``progress(total)`` may return a callback told each piece downloaded (a progress bar)."""
    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"directory {directory} does not exist", "-o")
    if out.is_dir():
        raise UsageError(f"{out} is a directory; name the output file", "-o")
    _, target = _resolve(backend, ref)
    tmp = _download(backend, ref.repository, target, directory, out.name, progress(target.size) if progress else None)
    try:
        _verify(tmp.path, keys, allow_unsigned, target, str(ref))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return PullResult(str(ref), str(out), target.name, target.version, target.package, target.manifest, target.size)


# --- stage moves ----------------------------------------------------------------------


@dataclass(frozen=True)
class MovePlan:
    repository: str
    stage: str
    action: str  # "promote" or "rollback"
    source: PackageRef | None  # the holder the plan saw
    target: PackageRef
    target_manifest: bytes = field(repr=False)
    source_manifest: bytes | None = field(repr=False)
    parents: tuple[str, ...]
    sequence: int
    gates: tuple[GateResult, ...] = ()


@dataclass(frozen=True)
class MoveResult:
    repository: str
    stage: str
    action: str
    changed: bool
    source: PackageRef | None
    target: PackageRef
    event: str | None
    gates: tuple[GateResult, ...] = ()
    archived_as: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "repository": self.repository,
            "stage": self.stage,
            "action": self.action,
            "changed": self.changed,
            "event": self.event,
            "archived_as": self.archived_as,
            "from": self.source.to_json() if self.source else None,
            "to": self.target.to_json(),
            "gates": [{"gate": str(g.gate), "passed": g.passed, "detail": g.detail} for g in self.gates],
        }


def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}", "--to")
    return stage


def plan_promotion(
    backend: Backend,
    ref: Reference,
    stage: str,
    *,
    requires: Sequence[str] = (),
    require_signature: Path | str | None = None,
) -> MovePlan:
    """Read the stage's holder (first) and history tips, and check gates and signature."""
    _check_stage(stage)
    gates = [parse_gate(text) for text in requires]
    repo = ref.repository
    manifest, target = _resolve(backend, ref)
    holder = _holder(backend, repo, stage)  # before the history: see spec §6
    events, _ = read_events(backend, repo)
    parents = tips(events)
    results: tuple[GateResult, ...] = ()
    if gates or require_signature is not None:
        tmp_dir = Path(tempfile.mkdtemp(prefix="mpkg-promote-"))
        try:
            path = _download(backend, repo, target, tmp_dir, "candidate.mpkg")
            from mpkg.package import read_info

            info = read_info(path)
            if info.digest != target.package:
                raise VerificationError(
                    f"package digest {info.digest} differs from the artifact's annotation {target.package}", str(ref)
                )
            if require_signature is not None:
                _verify(path.path, [require_signature], False, target, str(ref))
        finally:
            for p in tmp_dir.iterdir():
                p.unlink()
            tmp_dir.rmdir()
        holders: dict[str, dict[str, float] | None] = {}
        for other in {g.stage for g in gates if g.stage}:
            found = holder if other == stage else _holder(backend, repo, other)
            holders[other] = _metrics_annotation(found[0]) if found else None
        results = tuple(evaluate(g, info.metrics, holders) for g in gates)
        failed = [r for r in results if not r.passed]
        if failed:
            raise VerificationError([Problem(f"--require {r.gate}", r.detail) for r in failed])
    return MovePlan(
        repo,
        stage,
        "promote",
        holder[1] if holder else None,
        target,
        manifest.data,
        holder[0].data if holder else None,
        parents,
        next_sequence(events, parents),
        results,
    )


def plan_rollback(backend: Backend, ref: Reference, stage: str) -> MovePlan:
    """The previous holder: the ``from`` of the newest promotion that put the holder there."""
    _check_stage(stage)
    repo = ref.repository
    holder = _holder(backend, repo, stage)
    if holder is None:
        raise RegistryError(f"{stage} has no holder; nothing to roll back", ref.name)
    events, _ = read_events(backend, repo)
    dead = voided(events)
    promotions = [
        r
        for r in events
        if r.event.action == "promote"
        and r.event.stage == stage
        and r.digest not in dead
        and r.event.target is not None
        and r.event.target.manifest == holder[1].manifest
    ]
    previous = promotions[-1].event.source if promotions else None
    if previous is None:
        raise RegistryError(
            f"the history records no holder of {stage} before {holder[1].version}; nothing to roll back to", ref.name
        )
    manifest = backend.get_manifest(repo, previous.manifest)
    if manifest is None:
        raise RegistryError(
            f"the previous holder {previous.version} ({previous.manifest}) is gone from the store", ref.name
        )
    parents = tips(events)
    return MovePlan(
        repo,
        stage,
        "rollback",
        holder[1],
        package_ref(manifest, ref.name),
        manifest.data,
        holder[0].data,
        parents,
        next_sequence(events, parents),
    )


def apply_move(backend: Backend, plan: MovePlan, *, key: Path | str | None = None) -> MoveResult:
    """Record the move, re-check the holder, move the tag, then confirm nobody raced us."""
    signer = _signer(key)
    repo, stage = plan.repository, plan.stage
    if plan.source is not None and plan.source.manifest == plan.target.manifest:
        return MoveResult(repo, stage, plan.action, False, plan.source, plan.target, None, plan.gates)
    who = signer.keyid if signer else None
    notes = tuple(f"gate {g.gate}: {g.detail}" for g in plan.gates)
    event = Event(
        repo,
        plan.sequence,
        plan.parents,
        plan.action,
        now_text(),
        current_user(),
        who,
        stage,
        plan.source,
        plan.target,
        notes=notes,
    )
    mine = write_event(backend, repo, event, signer)
    expected = plan.source.manifest if plan.source else None
    now = backend.get_manifest(repo, stage)
    if (now.digest if now else None) != expected:
        write_event(
            backend,
            repo,
            Event(
                repo,
                plan.sequence + 1,
                (mine,),
                "void",
                now_text(),
                current_user(),
                who,
                stage,
                voids=mine,
                notes=(f"{stage} changed to {now.digest if now else None} meanwhile",),
            ),
            signer,
        )
        raise RegistryError(
            f"{stage} moved to {now.digest if now else 'nothing'} while this {plan.action} ran "
            "(another promotion won); nothing changed: check `mpkg history` and re-run",
            f"{repo}:{stage}",
        )
    archived = None
    if stage == "production" and plan.source is not None and plan.source_manifest is not None:
        archived = archive_tag(plan.source)
        backend.put_manifest(repo, archived, plan.source_manifest)
    backend.put_manifest(repo, stage, plan.target_manifest)
    # confirm: the tag holds our target and no unvoided move raced ours
    after = backend.get_manifest(repo, stage)
    events, _ = read_events(backend, repo)
    racing = concurrent_moves(events)
    later = [
        r for r in events if mine in ancestors(events, r.digest) and r.event.action in MOVES and r.event.stage == stage
    ]
    if mine in racing or ((after.digest if after else None) != plan.target.manifest and not later):
        others = [r for r in events if r.digest in racing and r.digest != mine]
        names = (
            ", ".join(f"{r.event.target.version if r.event.target else '?'} ({r.digest[:19]})" for r in others)
            or "an untracked tag write"
        )
        raise RegistryError(
            f"conflict: {stage} was moved concurrently by {names}; it now holds "
            f"{after.digest if after else 'nothing'}. Both moves are in `mpkg history`; "
            "re-run the promotion you want",
            f"{repo}:{stage}",
        )
    return MoveResult(repo, stage, plan.action, True, plan.source, plan.target, mine, plan.gates, archived)


def promote(
    backend: Backend,
    ref: Reference,
    stage: str,
    *,
    requires: Sequence[str] = (),
    require_signature: Path | str | None = None,
    key: Path | str | None = None,
) -> MoveResult:
    """Move ``stage`` to the package ``ref`` names, if its gates and signature pass."""
    with backend.lock(ref.repository):
        plan = plan_promotion(backend, ref, stage, requires=requires, require_signature=require_signature)
        return apply_move(backend, plan, key=key)


def rollback(backend: Backend, ref: Reference, stage: str, *, key: Path | str | None = None) -> MoveResult:
    """Move ``stage`` back to the holder recorded before the current one."""
    with backend.lock(ref.repository):
        return apply_move(backend, plan_rollback(backend, ref, stage), key=key)


# --- history and gc -------------------------------------------------------------------


def history(
    backend: Backend, ref: Reference, *, keys: Sequence[Path | str] = (), require_signed: bool = False
) -> HistoryReport:
    """Every event, checked: links, signatures (against ``keys``), and the current holders."""
    from mpkg.signatures import load_public_keys

    trusted = load_public_keys(keys)
    repo = ref.repository
    events, problems = read_events(backend, repo, trusted)
    for r in events:
        if r.signature == "invalid":
            problems.append(
                f"history event {r.event.sequence} ({r.digest[:19]}): its signature "
                "does not verify; the entry was altered"
            )
        elif require_signed and r.signature != "verified":
            problems.append(
                f"history event {r.event.sequence} ({r.digest[:19]}): not signed by a trusted key ({r.signature})"
            )
    holders: dict[str, PackageRef | None] = {}
    racing = concurrent_moves(events)
    dead = voided(events)
    for stage in STAGES:
        found = _holder(backend, repo, stage)
        holders[stage] = found[1] if found else None
        held = found[1].manifest if found else None
        last = [
            r
            for r in events
            if r.event.action in MOVES
            and r.event.stage == stage
            and r.digest not in dead
            and r.event.target is not None
        ]
        recorded = last[-1].event.target.manifest if last and last[-1].event.target else None
        if recorded is not None and recorded != held and last[-1].digest not in racing:
            problems.append(
                f"{stage} holds {held} but the history's last move put {recorded} there: the tag was moved outside mpkg"
            )
    return HistoryReport(repo, tuple(events), tuple(problems), holders, tuple(sorted(racing)))


@dataclass(frozen=True)
class GcResult:
    repository: str
    deleted: bool  # False: dry run
    candidates: tuple[PackageRef, ...]
    kept: tuple[tuple[PackageRef, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "repository": self.repository,
            "dry_run": not self.deleted,
            "candidates": [c.to_json() for c in self.candidates],
            "kept": [{**p.to_json(), "reason": why} for p, why in self.kept],
        }


def gc(
    backend: Backend,
    ref: Reference,
    *,
    older_than: dt.timedelta,
    yes: bool = False,
    now: dt.datetime | None = None,
    key: Path | str | None = None,
) -> GcResult:
    """Delete versions pushed before ``now - older_than`` that never reached a stage."""
    signer = _signer(key)
    repo = ref.repository
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    with backend.lock(repo):
        events, problems = read_events(backend, repo)
        if problems and yes:
            raise RegistryError(f"refusing to delete with a damaged history: {problems[0]}", ref.name)
        staged = {
            p.manifest
            for r in events
            if r.event.action in MOVES
            for p in (r.event.source, r.event.target)
            if p is not None
        }
        for stage in STAGES:
            found = _holder(backend, repo, stage)
            if found:
                staged.add(found[1].manifest)
        gone = {r.event.target.manifest for r in events if r.event.action == "delete" and r.event.target}
        pushed: dict[str, RecordedEvent] = {}
        for r in events:
            if r.event.action == "push" and r.event.target and r.event.target.manifest not in gone:
                pushed.setdefault(r.event.target.manifest, r)
        candidates: list[PackageRef] = []
        kept: list[tuple[PackageRef, str]] = []
        for manifest, r in pushed.items():
            target = r.event.target
            assert target is not None
            if manifest in staged:
                kept.append((target, "reached a stage"))
            elif r.event.when >= cutoff:
                kept.append((target, f"pushed {r.event.time}, not older than the cutoff"))
            elif backend.get_manifest(repo, manifest) is None:
                kept.append((target, "already gone from the store"))
            else:
                candidates.append(target)
        if yes:
            survivors = {p.blob for p, _ in kept}
            for target in candidates:
                backend.delete_manifest(repo, target.manifest)
                if target.blob not in survivors:
                    backend.delete_blob(repo, target.blob)
                events, _ = read_events(backend, repo)
                parents = tips(events)
                write_event(
                    backend,
                    repo,
                    Event(
                        repo,
                        next_sequence(events, parents),
                        parents,
                        "delete",
                        now_text(),
                        current_user(),
                        signer.keyid if signer else None,
                        target=target,
                        notes=(f"gc: older than {older_than}, never staged",),
                    ),
                    signer,
                )
    return GcResult(repo, yes, tuple(candidates), tuple(kept))
