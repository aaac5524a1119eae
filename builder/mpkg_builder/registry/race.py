"""The stage-move protocol (spec/registry.md §7): how promote and rollback move an alias safely.

Registries cannot compare-and-swap a tag, so a move is planned first (:class:`MovePlan`: the
alias tags, then the history, read under the caller's policy; made by :mod:`.promote` or
:mod:`.rollback`) and then applied here in four steps: **record** the move as its own event,
**check** that the alias tag still names what the plan saw (else void the event and stop),
**move** the tag (archiving the replaced holder), and **confirm** that no other move raced this
one. The local store adds a file lock, so there moves are serial.

The history, not the tag, says who holds an alias: a move replaces the recorded holder, and a
tag someone re-pointed outside mpkg is repaired by the next move (and noted in its event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpkg._internal.registry.aliases import ARCHIVE_PREFIX, archives
from mpkg._internal.registry.history import MOVES, Event, PackageRef, concurrent_moves, descendants, now_text
from mpkg._internal.registry.refs import version_tag
from mpkg._internal.registry.store import Manifest
from mpkg._internal.registry.trust import UNAUTHENTICATED, HistoryPolicy, StageState, load_history
from mpkg.errors import Problem, RegistryError

from .backend import Backend
from .compat import Compatibility
from .gates import GateResult
from .record import Signer, current_user, load_signer, write_event


def archive_tag(ref: PackageRef) -> str:
    """Where a replaced holder stays reachable: version plus manifest digest."""
    return f"{ARCHIVE_PREFIX}{version_tag(ref.version)[:96]}-{ref.manifest.split(':', 1)[1][:12]}"


@dataclass(frozen=True)
class MovePlan:
    """A checked, not yet applied move: what the alias held when planned and what it is to hold."""

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
    """What a move did (``changed`` False: the alias already held the target)."""

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
        """The result as ``promote``/``rollback --json`` print it."""
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


def read_holder(backend: Backend, repo: str, state: StageState) -> Manifest | None:
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


def repair_notes(name: str, state: StageState) -> tuple[str, ...]:
    """The note a move records when it repairs an alias tag that disagrees with the history."""
    problem = state.mismatch(name)
    return (f"repairs the tag: {problem}",) if problem else ()


def apply_move(
    backend: Backend, plan: MovePlan, *, key: Path | str | None = None, policy: HistoryPolicy = UNAUTHENTICATED
) -> MoveResult:
    """Record the move, check the tag did not move since the plan, move it, confirm nobody raced us."""
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
    now = backend.get_manifest(repo, stage)  # check
    if (now.digest if now else None) != plan.observed:
        _void(backend, plan, mine, who, signer, now)
    archived = None
    if archives(stage) and plan.source is not None and plan.source_manifest is not None:
        archived = archive_tag(plan.source)
        backend.put_manifest(repo, archived, plan.source_manifest)
    backend.put_manifest(repo, stage, plan.target_manifest)
    _confirm(backend, plan, mine, policy)  # confirm
    return MoveResult(
        repo, stage, plan.action, True, plan.source, plan.target, mine, plan.gates, archived, plan.compat, plan.notes
    )


def _void(
    backend: Backend, plan: MovePlan, mine: str, who: str | None, signer: Signer | None, now: Manifest | None
) -> None:
    """Step 3 failed: the tag moved since the plan. Void our event, leave the tag, report the conflict."""
    repo, stage = plan.repository, plan.stage
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


def _confirm(backend: Backend, plan: MovePlan, mine: str, policy: HistoryPolicy) -> None:
    """Step 5: the tag holds our target and no unvoided move of the alias raced ours, else a conflict."""
    repo, stage = plan.repository, plan.stage
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
