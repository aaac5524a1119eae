"""promote and rollback: moving a stage tag, recorded in the history, safe against races.

Stage moves follow one protocol (spec/registry.md §7) because registries cannot
compare-and-swap a tag: plan (stage tags, then the history, read under the caller's policy),
record the move as its own event, re-read the stage tag and refuse if it changed since the
plan (voiding the event), move the tag, then re-read tag and history and report a conflict if
another move raced this one. The local store adds a file lock, so there moves are serial.

The history, not the tag, says who holds a stage: a move replaces the recorded holder, and a
tag someone re-pointed outside mpkg is repaired by the next move (and noted in its event).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpkg._internal.registry.artifact import check_identity, metrics_annotation
from mpkg._internal.registry.history import MOVES, Event, PackageRef, concurrent_moves, descendants, now_text, voided
from mpkg._internal.registry.refs import STAGES, Reference, version_tag
from mpkg._internal.registry.store import Manifest
from mpkg._internal.registry.trust import (
    UNAUTHENTICATED,
    HistoryPolicy,
    StageState,
    load_history,
    load_state,
    resolve_trusted,
)
from mpkg.errors import Problem, RegistryError, UsageError, VerificationError

from .backend import Backend
from .compat import Compatibility, check_compatibility
from .gates import GateResult, evaluate, parse_gate
from .record import current_user, load_signer, write_event

ARCHIVE_PREFIX = "archived-"


def archive_tag(ref: PackageRef) -> str:
    """Where a replaced production holder stays reachable: version plus manifest digest."""
    return f"{ARCHIVE_PREFIX}{version_tag(ref.version)[:96]}-{ref.manifest.split(':', 1)[1][:12]}"


@dataclass(frozen=True)
class MovePlan:
    repository: str
    stage: str
    action: str  # "promote" or "rollback"
    source: PackageRef | None  # the holder the move replaces (as the history records it)
    target: PackageRef
    target_manifest: bytes = field(repr=False)
    source_manifest: bytes | None = field(repr=False)
    parents: tuple[str, ...]
    sequence: int
    gates: tuple[GateResult, ...] = ()
    observed: str | None = None  # the manifest the stage tag named when planned (the race check)
    compat: Compatibility | None = None
    notes: tuple[str, ...] = ()


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
    compat: Compatibility | None = None
    notes: tuple[str, ...] = ()

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
            "compat": self.compat.to_json() if self.compat else None,
            "notes": list(self.notes),
        }


def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}", "--to")
    return stage


def _holder_manifest(backend: Backend, repo: str, state: StageState) -> Manifest | None:
    """The OCI manifest of the stage's holder (the tag's, unless the history says otherwise)."""
    holder = state.holder
    if holder is None:
        return None
    if state.tag is not None and state.tag_manifest is not None and state.tag.manifest == holder.manifest:
        return state.tag_manifest
    found = backend.get_manifest(repo, holder.manifest)
    if found is None:
        raise RegistryError(
            f"the recorded holder of {state.stage}, {holder.version} ({holder.manifest}), is gone from the store",
            f"{repo}:{state.stage}",
        )
    return found


def _repair_notes(name: str, state: StageState) -> tuple[str, ...]:
    problem = state.mismatch(name)
    return (f"repairs the tag: {problem}",) if problem else ()


def _check_candidate(
    backend: Backend, ref: Reference, manifest: Manifest, target: PackageRef, require_signature: Path | str | None
) -> dict[str, float]:
    """Download the candidate (gates need its own metrics; a required signature needs the package)."""
    from mpkg._internal.format.package import read_info
    from mpkg._internal.registry.pull import check_package, download
    from mpkg._internal.trust.verify import Policy

    with tempfile.TemporaryDirectory(prefix="mpkg-promote-") as tmp:
        fetched = download(backend, ref.repository, target, Path(tmp), "candidate.mpkg")
        try:
            info = read_info(fetched.path)
            if info.digest != target.package:
                raise VerificationError(
                    f"package digest {info.digest} differs from the artifact's annotation {target.package}", str(ref)
                )
            check_identity(ref, info.name, info.version, verified=True)
            if require_signature is not None:
                check_package(fetched.path, Policy.from_paths([require_signature]), target, ref)
        finally:
            fetched.release()
    return info.metrics


def plan_promotion(
    backend: Backend,
    ref: Reference,
    stage: str,
    *,
    requires: Sequence[str] = (),
    require_signature: Path | str | None = None,
    allow_major: bool = False,
    allow_downgrade: bool = False,
    policy: HistoryPolicy = UNAUTHENTICATED,
) -> MovePlan:
    """Read the stage tags (first) and the history, and check compatibility, gates and signature."""
    _check_stage(stage)
    gates = [parse_gate(text) for text in requires]
    repo = ref.repository
    manifest, target = resolve_trusted(backend, ref, policy)
    state = load_state(backend, repo, policy)
    state.history.require_ok(ref.name)
    current = state.stages[stage]
    holder, holder_manifest = current.holder, _holder_manifest(backend, repo, current)
    compat = None
    if holder is not None and holder_manifest is not None and holder.manifest != target.manifest:
        compat = check_compatibility(
            backend,
            repo,
            stage,
            (holder_manifest, holder),
            (manifest, target),
            allow_major=allow_major,
            allow_downgrade=allow_downgrade,
        )
    results: tuple[GateResult, ...] = ()
    if gates or require_signature is not None:
        metrics = _check_candidate(backend, ref, manifest, target, require_signature)
        holders: dict[str, dict[str, float] | None] = {}
        for other in {g.stage for g in gates if g.stage}:
            found = _holder_manifest(backend, repo, state.stages[other])
            holders[other] = metrics_annotation(found) if found else None
        results = tuple(evaluate(g, metrics, holders) for g in gates)
        failed = [r for r in results if not r.passed]
        if failed:
            raise VerificationError([Problem(f"--require {r.gate}", r.detail) for r in failed])
    return MovePlan(
        repo,
        stage,
        "promote",
        holder,
        target,
        manifest.data,
        holder_manifest.data if holder_manifest else None,
        state.history.head,
        state.history.next_sequence,
        results,
        current.tag.manifest if current.tag else None,
        compat,
        _repair_notes(ref.name, current),
    )


def plan_rollback(backend: Backend, ref: Reference, stage: str, *, policy: HistoryPolicy = UNAUTHENTICATED) -> MovePlan:
    """The previous holder: the ``from`` of the newest promotion that put the holder there."""
    _check_stage(stage)
    repo = ref.repository
    state = load_state(backend, repo, policy, (stage,))
    history = state.history
    history.require_ok(ref.name)
    current = state.stages[stage]
    holder, holder_manifest = current.holder, _holder_manifest(backend, repo, current)
    if holder is None or holder_manifest is None:
        raise RegistryError(f"{stage} has no holder; nothing to roll back", ref.name)
    dead = voided(history.events)
    promotions = [
        r
        for r in history.events
        if r.event.action == "promote"
        and r.event.stage == stage
        and r.digest not in dead
        and r.event.target is not None
        and r.event.target.manifest == holder.manifest
    ]
    previous = promotions[-1].event.source if promotions else None
    if previous is None:
        raise RegistryError(
            f"the history records no holder of {stage} before {holder.version}; nothing to roll back to", ref.name
        )
    manifest = backend.get_manifest(repo, previous.manifest)
    if manifest is None:
        raise RegistryError(
            f"the previous holder {previous.version} ({previous.manifest}) is gone from the store", ref.name
        )
    return MovePlan(
        repo,
        stage,
        "rollback",
        holder,
        previous,
        manifest.data,
        holder_manifest.data,
        history.head,
        history.next_sequence,
        (),
        current.tag.manifest if current.tag else None,
        None,
        _repair_notes(ref.name, current),
    )


def apply_move(
    backend: Backend, plan: MovePlan, *, key: Path | str | None = None, policy: HistoryPolicy = UNAUTHENTICATED
) -> MoveResult:
    """Record the move, re-check the tag, move it, then confirm nobody raced us."""
    signer = load_signer(key)
    policy.check_signer(signer)
    repo, stage = plan.repository, plan.stage
    if plan.observed == plan.target.manifest and (plan.source is None or plan.source.manifest == plan.target.manifest):
        return MoveResult(repo, stage, plan.action, False, plan.source, plan.target, None, plan.gates)
    who = signer.keyid if signer else None
    notes = tuple(f"gate {g.gate}: {g.detail}" for g in plan.gates)
    notes += ((plan.compat.note,) if plan.compat else ()) + plan.notes
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
        overrides=plan.compat.overrides if plan.compat else (),
    )
    mine = write_event(backend, repo, event, signer)
    now = backend.get_manifest(repo, stage)
    if (now.digest if now else None) != plan.observed:
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
    history = load_history(backend, repo, policy)
    if not history.ok:
        raise RegistryError(
            [Problem(f"{repo}:{stage}", f"moved to {plan.target.version}, but the history now has problems:")]
            + [Problem(f"{repo}:{stage}", p) for p in history.problems]
        )
    events = history.events
    racing = concurrent_moves(events)
    after_mine = descendants(events, mine)
    later = [r for r in events if r.digest in after_mine and r.event.action in MOVES and r.event.stage == stage]
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
    return MoveResult(
        repo, stage, plan.action, True, plan.source, plan.target, mine, plan.gates, archived, plan.compat, plan.notes
    )


def promote(
    backend: Backend,
    ref: Reference,
    stage: str,
    *,
    requires: Sequence[str] = (),
    require_signature: Path | str | None = None,
    allow_major: bool = False,
    allow_downgrade: bool = False,
    key: Path | str | None = None,
    policy: HistoryPolicy = UNAUTHENTICATED,
) -> MoveResult:
    """Move ``stage`` to the package ``ref`` names, if it is compatible and its gates pass."""
    policy.check_signer(load_signer(key))
    with backend.lock(ref.repository):
        plan = plan_promotion(
            backend,
            ref,
            stage,
            requires=requires,
            require_signature=require_signature,
            allow_major=allow_major,
            allow_downgrade=allow_downgrade,
            policy=policy,
        )
        return apply_move(backend, plan, key=key, policy=policy)


def rollback(
    backend: Backend,
    ref: Reference,
    stage: str,
    *,
    key: Path | str | None = None,
    policy: HistoryPolicy = UNAUTHENTICATED,
) -> MoveResult:
    """Move ``stage`` back to the holder recorded before the current one (never gated)."""
    policy.check_signer(load_signer(key))
    with backend.lock(ref.repository):
        return apply_move(backend, plan_rollback(backend, ref, stage, policy=policy), key=key, policy=policy)
