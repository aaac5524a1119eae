"""One differ per manifest section, each ``diff(findings, old, new)`` over two `ManifestView`s.

`SECTIONS` is the order the engine runs them in: the files section runs last because it
reads what the model section found.
"""

from __future__ import annotations

from collections.abc import Callable

from ..findings import Findings
from ..views import ManifestView
from . import card, code, contract, environment, example, files, lineage, model, package

SectionDiffer = Callable[[Findings, ManifestView, ManifestView], None]

SECTIONS: tuple[SectionDiffer, ...] = (
    package.diff,
    contract.diff,
    model.diff,
    code.diff,
    environment.diff,
    lineage.diff,
    card.diff,
    example.diff,
    files.diff,
)

__all__ = ["SECTIONS", "SectionDiffer"]
