"""The code section: the entry points the runtime calls and the module it imports."""

from __future__ import annotations

from collections.abc import Mapping

from .. import rules as R
from ..findings import Findings
from ..views import ManifestView


def diff(d: Findings, old: ManifestView, new: ManifestView) -> None:
    """Entry points added, removed or re-parametered (a protocol change), and a renamed module."""
    empty: Mapping[str, tuple[str, ...]] = {}
    oe = old.code.entry_points if old.code else empty
    ne = new.code.entry_points if new.code else empty
    for ep in sorted(set(oe) | set(ne)):
        at = f"code.entry_points.{ep}"
        if ep not in ne:
            message = f"entry point {ep}({', '.join(oe[ep])}) was removed"
            d.add(R.ENTRY_POINT_REMOVED, at, list(oe[ep]), None, message)
        elif ep not in oe:
            d.add(R.ENTRY_POINT_ADDED, at, None, list(ne[ep]), f"entry point {ep}({', '.join(ne[ep])}) was added")
        elif oe[ep] != ne[ep]:
            d.add(
                R.ENTRY_POINT_SIGNATURE_CHANGED,
                at,
                list(oe[ep]),
                list(ne[ep]),
                f"entry point {ep} parameters: ({', '.join(oe[ep])}) -> ({', '.join(ne[ep])})",
            )
    if old.code and new.code and old.code.module != new.code.module:
        d.add(
            R.CODE_MODULE_CHANGED,
            "code.module",
            old.code.module,
            new.code.module,
            f"code module renamed from {old.code.module} to {new.code.module}",
        )


__all__ = ["diff"]
