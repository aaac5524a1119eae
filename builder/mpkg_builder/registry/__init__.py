"""Registries and the model lifecycle: OCI artifacts, the local store, stages and history.

See spec/registry.md. The public API is :mod:`.lifecycle` over a :class:`.backend.Backend`
(:class:`.oci.OciBackend` or :class:`.local.LocalBackend`); what a command may believe of a
repository's history is a :class:`.trust.HistoryPolicy`.
"""

from __future__ import annotations

from .backend import Backend
from .lifecycle import (
    GcResult,
    HistoryReport,
    MovePlan,
    MoveResult,
    PullResult,
    PushResult,
    apply_move,
    gc,
    history,
    open_backend,
    plan_promotion,
    plan_rollback,
    promote,
    pull,
    push,
    rollback,
)
from .local import LocalBackend
from .refs import Reference, parse_ref
from .trust import UNAUTHENTICATED, HistoryPolicy

__all__ = [
    "UNAUTHENTICATED",
    "Backend",
    "GcResult",
    "HistoryPolicy",
    "HistoryReport",
    "LocalBackend",
    "MovePlan",
    "MoveResult",
    "PullResult",
    "PushResult",
    "Reference",
    "apply_move",
    "gc",
    "history",
    "open_backend",
    "parse_ref",
    "plan_promotion",
    "plan_rollback",
    "promote",
    "pull",
    "push",
    "rollback",
]
