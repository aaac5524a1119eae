"""The files section: every member whose digest changed, classified by its role.

It runs last: whether a changed ``.onnx`` file is the same model under new names depends on
what the model section already found.
"""

from __future__ import annotations

from .. import rules as R
from ..findings import Findings
from ..views import ManifestView
from . import card, onnx

_FILE_RULE = {
    "code": R.CODE_CHANGED,
    "card": R.CARD_CHANGED,
    "environment": R.LOCKFILE_CHANGED,
    "lineage": R.LINEAGE_CHANGED,
    "example": R.EXAMPLE_CHANGED,
}
_MODEL_CATEGORIES = ("architecture", "weights", "interface")


def diff(d: Findings, old: ManifestView, new: ManifestView) -> None:
    """Files added, removed or changed; weights files by what the model section saw."""
    if new.files is None:  # a build in progress has not hashed its files yet
        return
    a = {f.path: f for f in old.all_files()}
    b = {f.path: f for f in new.files}
    # The card file is compared by digest only without author digests on both sides, and not
    # while a build has yet to render it.
    rendered = any(f.role == "card" for f in new.files)
    skip_card = not rendered or card.author_digests(old.card, new.card)
    onnx_split = onnx.weights_digests(old, new)
    graph_files = set(old.model.files) | set(new.model.files)
    for path in sorted(set(a) | set(b)):
        fa, fb = a.get(path), b.get(path)
        if fa is not None and fb is not None and fa.digest == fb.digest:
            continue
        entry = fb if fb is not None else fa
        assert entry is not None  # the path is on one side at least
        role = entry.role
        if skip_card and role == "card":
            continue
        at = f"files.{path}"
        da = fa.digest if fa else None
        db = fb.digest if fb else None
        state = "added" if fa is None else "removed" if fb is None else "changed"
        if role == "weights":
            if state == "changed" and onnx_split and path in graph_files:
                modelish = any(c.category in _MODEL_CATEGORIES or c.rule == R.GRAPH_PRODUCER_CHANGED for c in d.changes)
                if not modelish:
                    message = f"model file {path} differs only in names and documentation: the same model"
                    d.add(R.GRAPH_NAMES_CHANGED, at, da, db, message)
            elif state == "changed":
                d.add(R.WEIGHTS_CHANGED, at, da, db, f"weights file {path} content changed")
            else:
                d.add(R.WEIGHTS_FILES_CHANGED, at, da, db, f"weights file {path} {state}")
        else:
            d.add(_FILE_RULE.get(role, R.METADATA_CHANGED), at, da, db, f"{role} file {path} {state}")


__all__ = ["diff"]
