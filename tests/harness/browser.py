"""Debian's Chromium, driven by Playwright for Python, for the HTML report tests.

Playwright never downloads a browser here (no `playwright install`): it launches
``/usr/bin/chromium`` from Debian's package with the flags this machine needs (no sandbox as
root, no background networking) and a fresh profile per launch. Each page is opened in its
own context that records every request, console message, page error, dialog and CSP
violation, so a test can say "nothing left the page and nothing ran".

Fixture: ``browser``, one Chromium per test module. Not per session: Playwright's sync API
keeps an asyncio loop running on the thread that started it, and every other test on the same
xdist worker that calls ``asyncio.run`` would fail while it lives. Skips, with the reason, only
when Playwright or the chromium binary is missing (.ci/system-deps.sh installs chromium as root).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("MPKG_TEST_ARTIFACTS", REPO / "test-artifacts")) / "reports"
PHONE = 390
DESKTOP = 1100
# Runs before any of the page's own content: records CSP violations where tests can read them.
_RECORDER = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@dataclass
class Opened:
    """A report open in a page, and everything the page did while loading."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.__csp"))

    def assert_quiet(self) -> None:
        """No request but the file itself, no console output of any kind, no page error,
        no dialog, no CSP violation: the page neither fetched nor ran anything."""
        assert self.requests == [self.url], self.requests
        assert self.console == [], self.console
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs
        assert self.csp_violations() == []

    def screenshot(self, name: str) -> Path:
        """A full-page PNG under test-artifacts/reports/ (ignored by git), kept for review."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        return path

    def text(self, selector: str = "body") -> str:
        return str(self.page.inner_text(selector))


class Browser:
    def __init__(self, chromium: Any) -> None:
        self._chromium = chromium
        self._contexts: list[Any] = []

    def open(self, path: Path, *, width: int = DESKTOP, dark: bool = False, bypass_csp: bool = False) -> Opened:
        """Open ``path`` in a new context. ``bypass_csp`` switches the page's CSP off, to show
        that escaping alone already stops what a hostile package tries."""
        context = self._chromium.new_context(
            viewport={"width": width, "height": 900},
            color_scheme="dark" if dark else "light",
            bypass_csp=bypass_csp,
            java_script_enabled=True,  # on, so that a script that slipped through would run
        )
        self._contexts.append(context)
        context.add_init_script(_RECORDER)
        page = context.new_page()
        opened = Opened(page, path.resolve().as_uri())
        page.on("request", lambda r: opened.requests.append(r.url))
        page.on("console", lambda m: opened.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: opened.errors.append(str(e)))

        def dialog(d: Any) -> None:
            opened.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", dialog)
        page.goto(opened.url, wait_until="load")
        return opened

    def close(self) -> None:
        for context in self._contexts:
            context.close()
        self._contexts.clear()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install 'mpkg[test]')")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium, as root)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        b = Browser(chromium)
        try:
            yield b
        finally:
            b.close()
            chromium.close()


@pytest.fixture
def pages(browser: Browser) -> Iterator[Browser]:
    """The session's browser; the contexts a test opens are closed after it."""
    yield browser
    browser.close()
