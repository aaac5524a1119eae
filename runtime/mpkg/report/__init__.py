"""HTML reports: one self-contained file per report, safe to open whatever a package says.

The pieces (spec/report.md): :mod:`.page` renders Jinja2 templates into a page with one
inline stylesheet and a Content-Security-Policy that allows nothing else; :mod:`.markdown`
renders model cards as text-only Markdown; :mod:`.svg` and :mod:`.charts` draw inline SVG;
:mod:`.inspect` is `mpkg inspect --html`. The builder's diff and history reports use the same
pieces. They need the ``mpkg[report]`` extra; :func:`require` says so in one line.
"""

from __future__ import annotations

from ..errors import UsageError

REPORT_EXTRA = "mpkg[report]"
_MODULES = ("jinja2", "markdown_it")


class ReportUnavailable(UsageError):
    """The report extra is not installed (exit 2, like a command that needs the builder)."""


def require() -> None:
    """Refuse, before any work is done, when the report's dependencies cannot be imported."""
    import importlib

    missing = []
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ReportUnavailable(
            f"needs the report extra: pip install '{REPORT_EXTRA}' (missing {', '.join(missing)})", "--html"
        )


__all__ = ["REPORT_EXTRA", "ReportUnavailable", "require"]
