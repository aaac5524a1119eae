"""The builder's HTML reports: `mpkg diff --html` and `mpkg history --html`.

Both are pages of the runtime's report machinery (:mod:`mpkg.report`: template, stylesheet,
CSP, Markdown, SVG); this package adds their view models, the text diffs of card, code and
lockfile (:mod:`.texts`), the stage timeline (:mod:`.timeline`) and their templates.
"""

from __future__ import annotations

TEMPLATE_PACKAGES = ("mpkg_builder.report", "mpkg.report")

__all__ = ["TEMPLATE_PACKAGES"]
