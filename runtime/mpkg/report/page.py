"""One report page: Jinja2 templates (autoescape on), one inline stylesheet, no scripts.

The page's Content-Security-Policy allows exactly that stylesheet (by its sha256) and
nothing else: no script, no image, font, frame or connection, no form target, no base URL.
Escaping is the first defence against what a package says; the policy is the second, so a
slip in one is still caught by the other (spec/report.md).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from mpkg import __version__
from mpkg._internal.io.atomic import atomic_output

from .svg import fmt
from .text import shorten, visible

TEMPLATE_PACKAGES = ("mpkg.report",)


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The one stylesheet, inlined; refused if it could close its own element."""
    css = resources.files("mpkg.report").joinpath("style.css").read_text("utf-8")
    if "</" in css:  # would end the <style> element early
        raise ValueError("style.css must not contain '</'")
    return css


def content_security_policy() -> str:
    """The page's CSP: nothing loads, only the inlined stylesheet (by hash) applies."""
    digest = base64.b64encode(hashlib.sha256(stylesheet().encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; base-uri 'none'; form-action 'none'"


def _finalize(value: Any) -> Any:
    """Every ``{{ … }}`` output: untrusted strings made visible before Jinja2 escapes them."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def human_size(n: int) -> str:
    """A byte count as people read it."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@lru_cache(maxsize=4)
def environment(packages: Sequence[str] = TEMPLATE_PACKAGES) -> jinja2.Environment:
    """The Jinja environment: autoescaping on, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.PackageLoader(p, "templates") for p in packages]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(size=human_size, num=fmt, short=shorten)
    return env


def render(template: str, *, title: str, template_packages: Sequence[str] = TEMPLATE_PACKAGES, **context: Any) -> str:
    """The page as text. ``context`` values are untrusted unless they are :class:`Markup`."""
    return (
        environment(tuple(template_packages))
        .get_template(template)
        .render(
            title=title,
            css=Markup(stylesheet()),  # our own file, pinned by the CSP hash
            csp=content_security_policy(),
            generator=f"mpkg {__version__}",
            **context,
        )
    )


def write(path: str | os.PathLike[str], html: str) -> None:
    """Write the page atomically: it appears complete at ``path`` or not at all."""
    with atomic_output(path) as out:
        out.write(html.encode("utf-8"))


__all__ = ["content_security_policy", "environment", "human_size", "render", "stylesheet", "write"]
