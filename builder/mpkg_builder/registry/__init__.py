"""Registries and the model lifecycle, write side: push, promote, rollback, gc, gates, the local store.

See spec/registry.md. The public API is :mod:`.lifecycle` over a :class:`.backend.Backend`
(:class:`.oci.OciBackend` or :class:`.local.LocalBackend`); what a command may believe of a
repository's history is a :class:`mpkg._internal.registry.trust.HistoryPolicy`; all reading
(references, pulling, the history, the trust layer) is the runtime's :mod:`mpkg._internal.registry`.
"""

from __future__ import annotations

from mpkg._internal.registry.pull import PullResult, pull
from mpkg._internal.registry.refs import Reference, parse_ref
from mpkg._internal.registry.trust import UNAUTHENTICATED, HistoryPolicy

from .backend import Backend
from .gc import GcResult, gc
from .lifecycle import PushResult, open_backend, push
from .local import LocalBackend
from .promote import plan_promotion, promote
from .race import MovePlan, MoveResult, apply_move
from .report import HistoryReport, history
from .rollback import plan_rollback, rollback

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
