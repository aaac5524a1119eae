"""`mpkg promote REF --to ALIAS`: plan a move of an alias to a package, behind gates, then apply it.

The plan reads the alias tags, then the history (spec/registry.md §7 step 1), refuses a name
``push`` recorded as a tag, checks compatibility with the recorded holder (:mod:`.compat`), the
metric gates (:mod:`.gates`, against the candidate's own metrics) and a required signature;
:func:`.race.apply_move` then moves the alias.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from mpkg._internal.registry.aliases import check_alias, known_aliases
from mpkg._internal.registry.artifact import check_identity, metrics_annotation
from mpkg._internal.registry.history import PackageRef
from mpkg._internal.registry.refs import STAGES, Reference
from mpkg._internal.registry.store import Manifest
from mpkg._internal.registry.trust import (
    UNAUTHENTICATED,
    History,
    HistoryPolicy,
    RepositoryState,
    load_state,
    resolve_trusted,
)
from mpkg.errors import Problem, UsageError, VerificationError

from .backend import Backend
from .compat import check_compatibility
from .gates import Gate, GateResult, evaluate, parse_gate
from .race import MovePlan, MoveResult, apply_move, read_holder, repair_notes
from .record import load_signer


def _check_not_pushed(history: History, alias: str, where: str) -> None:
    """An alias moves; a pushed tag never does: refuse to move a name ``mpkg push`` recorded."""
    if any(r.event.action == "push" and r.event.tag == alias for r in history.events):
        raise UsageError(
            f"{alias!r} is a tag pushed with `mpkg push` (immutable), so it cannot be an alias; choose another name",
            where,
        )


def _check_gate_aliases(state: RepositoryState, stage: str, gates: Sequence[Gate]) -> None:
    """A gate against an alias no move ever named is a typo (``produciton``), not "no holder yet"."""
    for gate in gates:
        other = gate.stage
        if other is not None and other not in STAGES and other != stage and not state.stages[other].recorded:
            known = ", ".join(s for s, v in state.stages.items() if s in STAGES or v.recorded)
            raise UsageError(f"{gate}: {other!r} is no alias of this repository (its aliases: {known})", "--require")


def _check_candidate(
    backend: Backend, ref: Reference, manifest: Manifest, target: PackageRef, require_signature: Path | str | None
) -> dict[str, float]:
    """Download the candidate (gates need its own metrics; a required signature needs the package)."""
    from mpkg._internal.format.package import read_info
    from mpkg._internal.registry.pull import check_package, download
    from mpkg._internal.trust.verify import Policy

    with tempfile.TemporaryDirectory(prefix="mpkg-promote-") as tmp:
        fetched = download(backend, ref.repository, manifest, target, Path(tmp), "candidate.mpkg")
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
    check_alias(stage, "--to")
    gates = [parse_gate(text) for text in requires]
    repo = ref.repository
    manifest, target = resolve_trusted(backend, ref, policy)
    state = load_state(backend, repo, policy, known_aliases([stage, *(g.stage for g in gates)]))
    state.history.require_ok(ref.name)
    _check_not_pushed(state.history, stage, "--to")
    _check_gate_aliases(state, stage, gates)
    current = state.stages[stage]
    holder, holder_manifest = current.holder, read_holder(backend, repo, current)
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
            found = read_holder(backend, repo, state.stages[other])
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
        repair_notes(ref.name, current),
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
