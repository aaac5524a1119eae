"""`mpkg gc`: delete old versions that never reached a stage, and record each deletion.

A version is collected when its ``push`` event is older than the cutoff, it never appeared in
any stage move, and no stage names it. gc reads the history like every other command, under
the caller's policy, and refuses to act on one with problems.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpkg._internal.registry.history import MOVES, PackageRef, RecordedEvent
from mpkg._internal.registry.layers import read_layers
from mpkg._internal.registry.refs import Reference
from mpkg._internal.registry.trust import UNAUTHENTICATED, HistoryPolicy, load_history, load_state

from .backend import Backend
from .record import append_event, load_signer


@dataclass(frozen=True)
class GcResult:
    """What gc deleted and kept."""

    repository: str
    deleted: bool  # False: dry run
    candidates: tuple[PackageRef, ...]
    kept: tuple[tuple[PackageRef, str], ...]

    def to_json(self) -> dict[str, Any]:
        """The --json document of `mpkg gc`."""
        return {
            "ok": True,
            "repository": self.repository,
            "dry_run": not self.deleted,
            "candidates": [c.to_json() for c in self.candidates],
            "kept": [{**p.to_json(), "reason": why} for p, why in self.kept],
        }


def _blobs(backend: Backend, repo: str, target: PackageRef) -> set[str]:
    """The blobs a version's package is stored in (its pieces, or the one file blob)."""
    manifest = backend.get_manifest(repo, target.manifest)
    found = read_layers(manifest.json(), target.manifest) if manifest is not None else None
    return {layer.digest for layer in found} if found else {target.blob}


def gc(
    backend: Backend,
    ref: Reference,
    *,
    older_than: dt.timedelta,
    yes: bool = False,
    now: dt.datetime | None = None,
    key: Path | str | None = None,
    policy: HistoryPolicy = UNAUTHENTICATED,
) -> GcResult:
    """Delete versions pushed before ``now - older_than`` that never reached a stage. Refuses a
    history with problems, dry run or not: what it lists must be what it would delete."""
    signer = load_signer(key)
    if yes:
        policy.check_signer(signer)
    repo = ref.repository
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    with backend.lock(repo):
        state = load_state(backend, repo, policy)
        state.history.require_ok(ref.name)
        events = state.history.events
        staged = {
            p.manifest
            for r in events
            if r.event.action in MOVES
            for p in (r.event.source, r.event.target)
            if p is not None
        }
        staged.update(p.manifest for s in state.stages.values() for p in (s.tag, s.holder) if p is not None)
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
            survivors = {b for p, _ in kept for b in _blobs(backend, repo, p)}
            for target in candidates:
                blobs = _blobs(backend, repo, target)
                backend.delete_manifest(repo, target.manifest)
                for blob in sorted(blobs - survivors):
                    backend.delete_blob(repo, blob)
                history = load_history(backend, repo, policy)
                history.require_ok(ref.name)
                note = f"gc: older than {older_than}, never staged"
                append_event(history, backend, "delete", signer, target=target, notes=(note,))
    return GcResult(repo, yes, tuple(candidates), tuple(kept))
