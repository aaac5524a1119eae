"""`mpkg history`: every event of a repository, checked, and what each stage holds.

The report reads the history under the caller's policy like every other command, but lists
what is wrong instead of stopping at it: broken links, unsigned or untrusted events (with
keys), an altered event, a history older than the one this client saw, a missing pinned head,
and stage tags that disagree with the history's newest move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mpkg._internal.registry.aliases import known_aliases
from mpkg._internal.registry.history import PackageRef, RecordedEvent, concurrent_moves
from mpkg._internal.registry.refs import Reference
from mpkg._internal.registry.trust import UNAUTHENTICATED, HistoryPolicy, load_history, load_state
from mpkg.errors import UsageError

from .backend import Backend


@dataclass(frozen=True)
class HistoryReport:
    """What `mpkg history` shows: events, stage holders, tag checks and problems."""

    repository: str
    events: tuple[RecordedEvent, ...]
    problems: tuple[str, ...]
    holders: dict[str, PackageRef | None] = field(default_factory=dict)
    concurrent: tuple[str, ...] = ()  # event digests of moves raced by another move
    head: tuple[str, ...] = ()  # the tips: pin one with --since-head
    authenticated: bool = False  # every event was checked against trusted keys
    # the problems the policy refuses the history itself for (links, signatures, marks, the
    # pinned head): every other command stops at these; the rest are stage and version tags
    refusals: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the history and the tags agree."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The --json document of `mpkg history`."""
        return {
            "ok": self.ok,
            "repository": self.repository,
            "authenticated": self.authenticated,
            "head": list(self.head),
            "events": [r.to_json() | {"concurrent": r.digest in self.concurrent} for r in self.events],
            "holders": {k: v.to_json() if v else None for k, v in self.holders.items()},
            "problems": list(self.problems),
        }


def history(
    backend: Backend, ref: Reference, *, policy: HistoryPolicy = UNAUTHENTICATED, require_signed: bool = False
) -> HistoryReport:
    """Every event, checked under ``policy`` (links, signatures, high-water mark, pinned head),
    and the stage tags against the history. ``require_signed`` insists that keys were given."""
    if require_signed and not policy.authenticated:
        raise UsageError("--require-signed needs trusted keys: pass --key PUB or set MPKG_KEYS", "--require-signed")
    aliases = known_aliases(r.event.stage for r in load_history(backend, ref.repository, policy).events)
    state = load_state(backend, ref.repository, policy, aliases)  # the alias tags, then the history again
    problems = list(state.history.problems)
    problems.extend(p for s in state.stages.values() if (p := s.mismatch(ref.name)) is not None)
    problems.extend(_tag_problems(backend, ref, state.history.events))
    return HistoryReport(
        ref.repository,
        state.history.events,
        tuple(problems),
        {stage: s.tag for stage, s in state.stages.items()},
        tuple(sorted(concurrent_moves(state.history.events))),
        state.history.head,
        state.history.authenticated,
        state.history.problems,
    )


def _tag_problems(backend: Backend, ref: Reference, events: Sequence[RecordedEvent]) -> list[str]:
    """Each tag a push recorded must still name what was pushed under it (unless gc deleted it)."""
    deleted = {r.event.target.manifest for r in events if r.event.action == "delete" and r.event.target}
    pushed: dict[str, RecordedEvent] = {}
    for r in events:
        if r.event.action == "push" and r.event.tag and r.event.target:
            pushed[r.event.tag] = r
    problems = []
    for tag, r in pushed.items():
        target = r.event.target
        assert target is not None
        if target.manifest in deleted:
            continue
        found = backend.get_manifest(ref.repository, tag)
        if found is None:
            problems.append(
                f"{ref.name}:{tag} is gone but {r.label} pushed {target.version} ({target.manifest[:19]}) under it: "
                "the tag was deleted outside mpkg"
            )
        elif found.digest != target.manifest:
            problems.append(
                f"{ref.name}:{tag} names {found.digest[:19]} but {r.label} pushed {target.version} "
                f"({target.manifest[:19]}) under it: the tag was re-pointed outside mpkg (rollback)"
            )
    return problems
