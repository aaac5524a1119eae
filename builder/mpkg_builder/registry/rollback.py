"""`mpkg rollback NAME --stage ALIAS`: move an alias back to the holder recorded before the current one.

The previous holder is the ``from`` of the newest unvoided promotion that put the current holder
there, so repeated rollbacks walk back through earlier holders and restore exactly the recorded
manifest. Never gated; applied by :func:`.race.apply_move` like a promotion.
"""

from __future__ import annotations

from pathlib import Path

from mpkg._internal.registry.aliases import check_alias
from mpkg._internal.registry.history import voided
from mpkg._internal.registry.refs import Reference
from mpkg._internal.registry.trust import UNAUTHENTICATED, HistoryPolicy, load_state
from mpkg.errors import RegistryError

from .backend import Backend
from .race import MovePlan, MoveResult, apply_move, read_holder, repair_notes
from .record import load_signer


def plan_rollback(backend: Backend, ref: Reference, stage: str, *, policy: HistoryPolicy = UNAUTHENTICATED) -> MovePlan:
    """The previous holder: the ``from`` of the newest promotion that put the holder there."""
    check_alias(stage, "--stage")
    repo = ref.repository
    state = load_state(backend, repo, policy, (stage,))
    history = state.history
    history.require_ok(ref.name)
    current = state.stages[stage]
    holder, holder_manifest = current.holder, read_holder(backend, repo, current)
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
        repair_notes(ref.name, current),
    )


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
