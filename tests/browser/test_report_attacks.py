"""Everything a package or a registry says is hostile: each payload renders as text.

A real package is built by the real builder for each payload (tests/harness/payloads.py) and
its reports are opened in Chromium twice: as written (escaping and the CSP both on), and with
the CSP switched off, which shows that escaping alone already stops every payload. In both,
no script runs (a sentinel stays unset, no dialog opens), no request leaves the page and the
payload is visible as text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mpkg._internal.registry.history import Event, PackageRef, now_text, read_events, tips
from mpkg.cli import main
from mpkg.report import page
from mpkg_builder.diff import diff_manifests
from mpkg_builder.registry.oci import OciBackend
from mpkg_builder.registry.record import write_event
from mpkg_builder.report.diff import diff_page

from tests.browser.report_packages import ReportPackages
from tests.conftest import RunMpkg
from tests.harness.browser import Browser, Opened
from tests.harness.payloads import BIDI, PAYLOADS, VISIBLE
from tests.harness.registry import RegistryProcess


def _nothing_ran(opened: Opened, title: str) -> None:
    assert opened.page.evaluate("typeof window.__pwned") == "undefined"
    assert opened.page.title() == title
    assert opened.dialogs == [] and opened.errors == []
    assert opened.requests == [opened.url], opened.requests
    assert opened.page.locator("script, iframe, img, link, object, embed, style").count() == 1  # our <style>
    assert opened.page.locator("[onerror], [onload], [onmouseover], [href^='javascript:' i]").count() == 0


def _open_both_ways(pages: Browser, path: Path, title: str) -> Opened:
    strict = pages.open(path)
    strict.assert_quiet()
    _nothing_ran(strict, title)
    unprotected = pages.open(path, bypass_csp=True)
    _nothing_ran(unprotected, title)
    return strict


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_hostile_package_inspect_report_shows_payload_as_text(
    payload: str, report_packages: ReportPackages, pages: Browser, tmp_path: Path
) -> None:
    package = report_packages.hostile[payload]
    out = tmp_path / "inspect.html"
    assert main(["inspect", str(package), "--html", str(out), "--key", str(report_packages.built.pub)]) == 0
    opened = _open_both_ways(pages, out, "iris-mlp 1.0.0")
    text = opened.text()
    for where in ("#card article", "#card table.facts", "header", "#contract", "#metrics", "#lineage"):
        assert VISIBLE[payload] in opened.text(where) or payload == "javascript-link", where
    assert VISIBLE[payload] in text
    assert "\\u202e" in opened.text("#card article")  # the bidi override is shown, not obeyed
    assert BIDI not in text
    # a card link only works for http(s)/mailto: javascript: and data: links stay text
    assert opened.page.locator("#card a").count() == 0
    assert "[a link](javascript:alert('link'))" in opened.text("#card article")
    if payload == "svg":  # images are named, never loaded
        assert "[image: remote — https://example.com/p.png]" in opened.text("#card article")
    opened.screenshot(f"attack-inspect-{payload}")


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_hostile_package_diff_report_shows_payload_as_text(
    payload: str, report_packages: ReportPackages, pages: Browser, tmp_path: Path
) -> None:
    clean = report_packages.built.signed["iris-mlp"]
    out = tmp_path / "diff.html"
    assert main(["diff", str(clean), str(report_packages.hostile[payload]), "--html", str(out)]) == 0
    opened = _open_both_ways(pages, out, "iris-mlp 1.0.0 → 1.0.0")
    assert VISIBLE[payload] in opened.text("#texts")  # the card's text diff
    assert VISIBLE[payload] in opened.text("#contract")  # the changed field descriptions
    assert VISIBLE[payload] in opened.text("#findings")
    if payload == "script":
        opened.screenshot("attack-diff-script")


def test_contract_field_named_td_script_renders_as_text(pages: Browser, tmp_path: Path) -> None:
    """The format refuses such a name (tests/builder/report), but a report renders any manifest
    JSON it is handed: a library caller's document, a future format's field."""
    name = PAYLOADS["contract-field"]
    base = {"name": "evil", "version": "1.0.0", "contract": {"inputs": [], "outputs": []}}
    old = {**base, "contract": {"inputs": [{"name": name, "dtype": "float32", "shape": [1]}], "outputs": []}}
    new = {
        **base,
        "version": "2.0.0",
        "contract": {"inputs": [{"name": name, "dtype": "float64", "shape": [1], "enum": [name]}], "outputs": []},
    }
    out = tmp_path / "diff.html"
    page.write(out, diff_page(diff_manifests(old, new), old, new, []))
    opened = _open_both_ways(pages, out, "evil 1.0.0 → 2.0.0")
    row = opened.page.locator("#contract tbody tr")
    assert row.count() == 1 and name in row.inner_text()
    assert opened.page.locator("#contract tbody td").count() == 7  # the name did not open or close a cell


def test_hostile_registry_answers_render_as_text_in_history(
    run_mpkg: RunMpkg,
    report_packages: ReportPackages,
    oci_registry: RegistryProcess,
    pages: Browser,
    tmp_path: Path,
) -> None:
    """A registry writer can put anything in an event (user, notes, versions) and a package's
    metric names reach the trend charts: all of it is text in the page and in its SVG."""
    hostile = report_packages.hostile["script"]  # iris-mlp with a <script> everywhere it has text
    name = f"{oci_registry.host}/team/iris-mlp"
    assert main(["push", str(hostile), name, "--insecure"]) == 0
    repo = "team/iris-mlp"
    backend = OciBackend(oci_registry.host, insecure=True)
    try:
        events, _ = read_events(backend, repo)
        pushed = events[0].event.target
        assert pushed is not None
        forged = PackageRef(pushed.manifest, pushed.package, "evil", PAYLOADS["svg"], pushed.blob, pushed.size)
        parents = tips(events)
        event = Event(
            repo, 1, parents, "promote", now_text(), PAYLOADS["img-onerror"], None, "staging", None, forged,
            notes=(PAYLOADS["raw-html-block"], BIDI),
        )  # fmt: skip
        write_event(backend, repo, event, None)
        backend.put_manifest(repo, "staging", backend.get_manifest(repo, pushed.manifest).data)  # type: ignore[union-attr]
    finally:
        backend.close()
    out = tmp_path / "history.html"
    run_mpkg("history", name, "--insecure", "--html", out, expect=0)
    opened = _open_both_ways(pages, out, "127.0.0.1" + name.removeprefix("127.0.0.1") + ": history")
    text = opened.text()
    for p in ("img-onerror", "raw-html-block", "svg", "script"):
        assert VISIBLE[p] in text, p
    charts = opened.page.locator("#metrics svg.chart")
    assert any(VISIBLE["script"] in (c.text_content() or "") for c in charts.all())  # a metric named <script>
    assert "\\u202e" in text and BIDI not in text
    assert VISIBLE["img-onerror"] in opened.text("#events")  # the forged user
    assert "Unauthenticated: no trusted keys were given" in opened.text("header")  # so the forgery is believed
