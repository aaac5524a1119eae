"""The three reports, written by the real CLI and opened in Debian's Chromium.

Each page is checked for its key elements as a reader sees them (rendered text, not HTML
source), for silence (no request but the file, no console output, no CSP violation), at a
phone's width in dark mode, printed to PDF, and saved as a screenshot under test-artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path

from mpkg._internal.format.package import read_manifest
from mpkg._internal.registry.refs import parse_ref
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.oci import OciBackend

from tests.browser.report_packages import ReportPackages
from tests.conftest import RunMpkg
from tests.harness.browser import PHONE, Browser, Opened
from tests.harness.registry import RegistryProcess


def _on_phone_in_dark(pages: Browser, path: Path, name: str) -> Opened:
    """The same page at a phone's width in dark mode: quiet, no sideways scrolling of the page
    itself (wide tables and charts scroll inside their own boxes)."""
    phone = pages.open(path, width=PHONE, dark=True)
    phone.assert_quiet()
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE + 1
    background = phone.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)", background  # the dark palette
    phone.screenshot(f"{name}-phone-dark")
    return phone


def _printed(opened: Opened, out: Path, collapsed: str | None = None) -> None:
    """Printed: the navigation is dropped, collapsed sections open, the page is a non-empty PDF."""
    if collapsed:
        assert not opened.page.is_visible(collapsed)
    opened.page.emulate_media(media="print")
    assert not opened.page.is_visible("nav.toc")
    if collapsed:
        assert opened.page.is_visible(collapsed)
    opened.page.pdf(path=str(out))
    assert out.read_bytes().startswith(b"%PDF") and out.stat().st_size > 5000


def test_inspect_report_of_each_example(
    run_mpkg: RunMpkg, report_packages: ReportPackages, pages: Browser, tmp_path: Path
) -> None:
    built = report_packages.built
    for name, package in built.signed.items():
        out = tmp_path / f"{name}.html"
        run_mpkg("inspect", package, "--html", out, "--key", built.pub, expect=0)
        manifest = read_manifest(package)
        opened = pages.open(out)
        opened.assert_quiet()
        assert opened.text("h1") == f"{manifest.name} {manifest.version}"
        assert str(manifest.digest) in opened.text("header")
        # the card, rendered from Markdown: headings, lists; its front matter as a facts table
        headings = opened.page.locator("#card article h3, #card article h4").all_inner_texts()
        assert {"Intended use", "Limitations", "Evaluation"} <= set(headings), headings
        keys, values = (opened.page.locator(f"#card table.facts {cell}").all_inner_texts() for cell in ("th", "td"))
        facts = dict(zip(keys, values, strict=True))
        assert facts["license"] == manifest.card["metadata"]["license"]
        # the contract: one row per field, with dtype and shape
        rows = opened.page.locator("#contract tbody tr")
        fields = [*manifest.contract.inputs, *manifest.contract.outputs]
        assert rows.count() == len(fields)
        assert fields[0].name in rows.nth(0).inner_text() and fields[0].dtype in rows.nth(0).inner_text()
        # files with sizes and digests; signatures verified against the key given
        assert opened.page.locator("#files tbody tr").count() == len(manifest.files)
        assert str(manifest.files[0].digest) in opened.text("#files")
        assert opened.page.locator("#signatures tbody tr").inner_text().split("\t")[1] == "verified"
        # lineage as a graph: this package's node is drawn; metrics listed
        graph = opened.page.locator("#lineage svg.chart")
        assert f"{manifest.name} {manifest.version}" in (graph.text_content() or "")
        assert opened.page.locator("#lineage svg.chart rect.node-self").count() == 1
        assert opened.page.locator("#metrics tbody tr").count() == len(manifest.metrics)
        opened.screenshot(f"inspect-{name}")
        _on_phone_in_dark(pages, out, f"inspect-{name}")
        _printed(opened, tmp_path / f"{name}.pdf", collapsed="#card details .card")


def test_inspect_report_without_key_says_not_checked(
    run_mpkg: RunMpkg, report_packages: ReportPackages, pages: Browser, tmp_path: Path
) -> None:
    out = tmp_path / "iris.html"
    run_mpkg("inspect", report_packages.built.signed["iris-mlp"], "--html", out, expect=0)
    opened = pages.open(out)
    opened.assert_quiet()
    section = opened.text("#signatures")
    assert "not checked" in section and "invalid" not in section
    assert "signed · not checked" in opened.text("header")


def test_inspect_report_follows_the_base_chain(
    run_mpkg: RunMpkg, report_packages: ReportPackages, pages: Browser, tmp_path: Path
) -> None:
    v1 = report_packages.built.signed["iris-mlp"]
    out = tmp_path / "v2.html"
    run_mpkg("inspect", report_packages.iris_v2, "--html", out, "--base", v1, expect=0)
    opened = pages.open(out)
    opened.assert_quiet()
    graph = opened.page.locator("#lineage svg.chart").text_content() or ""
    assert "iris-mlp 2.0.0" in graph and "iris-mlp 1.0.0" in graph and "read from the package given" in graph


def test_diff_report_between_two_builds(
    run_mpkg: RunMpkg, report_packages: ReportPackages, pages: Browser, tmp_path: Path
) -> None:
    old, new = report_packages.built.signed["iris-mlp"], report_packages.iris_v2
    out = tmp_path / "diff.html"
    result = json.loads(run_mpkg("diff", old, new, "--json", "--html", out, expect=0).stdout)
    opened = pages.open(out)
    opened.assert_quiet()
    # the bump as a badge with the suggested version
    assert opened.text("header .badge.big") == "MAJOR" and result["bump"] == "major"
    assert f"suggested version {result['suggested_version']}" in opened.text("header")
    # findings grouped by bump, with their rule ids
    groups = opened.page.locator("#findings h3").all_inner_texts()
    assert [g.split()[0] for g in groups] == ["MAJOR", "PATCH"], groups
    rules = set(opened.page.locator("#findings tbody td:last-child").all_inner_texts())
    assert rules == {c["rule"] for c in result["changes"]}
    # the contract side by side, the changed enum highlighted on both sides
    label = opened.page.locator("#contract tbody tr", has_text="label")
    assert label.locator("td.changed").count() == 2
    assert "0, 1, 2, 3" in label.locator("td.changed").nth(1).inner_text()
    assert opened.page.locator("#contract tbody tr", has_text="probabilities").locator("td.changed").count() == 0
    # metric deltas as a chart with signs and units
    chart = opened.page.locator("#metrics svg.chart")
    drawn = chart.text_content() or ""
    assert "change relative to the old value (%)" in drawn
    assert "\u22120.0334 (\u22123.455 %)" in drawn  # accuracy.test 0.9667 -> 0.9333
    assert chart.locator("rect.bar-neg").count() == 1 and chart.locator("rect.bar-pos").count() == 2
    # the text diffs of card and code
    texts = opened.text("#texts")
    assert "-Teaching and testing" in texts and "+Teaching, testing and demos" in texts
    assert "+# 2.0.0: clip measurements to 0-25 cm" in texts
    assert opened.page.locator("#texts pre.diff span.d-add").count() >= 2
    opened.screenshot("diff-iris-1.0.0-2.0.0")
    _on_phone_in_dark(pages, out, "diff-iris")
    _printed(opened, tmp_path / "diff.pdf")


def test_history_report_of_two_versions_in_the_real_registry(
    run_mpkg: RunMpkg, report_packages: ReportPackages, oci_registry: RegistryProcess, pages: Browser, tmp_path: Path
) -> None:
    built = report_packages.built
    name = f"{oci_registry.host}/team/iris-mlp"
    backend = OciBackend(oci_registry.host, insecure=True)
    try:
        for package in (built.signed["iris-mlp"], report_packages.iris_v2):
            lifecycle.push(backend, parse_ref(name), package, key=built.key)
        for version, stage in (("1.0.0", "staging"), ("1.0.0", "production")):
            lifecycle.promote(backend, parse_ref(f"{name}:{version}"), stage, key=built.key)
        # 2.0.0 widens an output enum: a MAJOR change, promoted with the override on record
        lifecycle.promote(backend, parse_ref(f"{name}:2.0.0"), "staging", allow_major=True, key=built.key)
    finally:
        backend.close()
    out = tmp_path / "history.html"
    run_mpkg("history", name, "--insecure", "--key", built.pub, "--html", out, expect=0)
    opened = pages.open(out)
    opened.assert_quiet()
    # every version on the timeline, with its stage moves and who signed them
    rows = opened.page.locator("#versions table.versions tbody tr")
    assert rows.count() == 2
    v1, v2 = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert v1.startswith("1.0.0") and "promote → staging" in v1 and "promote → production" in v1
    assert v2.startswith("2.0.0") and "replacing 1.0.0" in v2 and "--allow-major" in v2.lower()
    assert "verified" in v1 and "key " in v1
    assert "Authenticated: every event carries a valid signature" in opened.text("header")
    timeline = opened.page.locator("#versions svg.chart")
    drawn = timeline.text_content() or ""
    assert "holds production" in drawn and "holds staging" in drawn and "time (UTC)" in drawn
    assert timeline.locator("circle.mark-push").count() == 2
    assert timeline.locator("polygon.mark-production").count() == 1
    # the current holder of each stage marked
    assert rows.nth(0).locator(".badge.stage-production").count() == 1
    assert rows.nth(1).locator(".badge.stage-staging").count() == 1
    # each metric's trend across versions as a chart with labelled axes
    charts = opened.page.locator("#metrics svg.chart")
    assert charts.count() == 3  # accuracy.test, accuracy.train, log_loss.test
    first = charts.nth(0).text_content() or ""
    assert "version, in push order" in first and "accuracy.test" in first
    assert charts.nth(0).locator("circle.holder").count() == 1  # production's ring on 1.0.0
    # the event log: five events, each signed and verified
    events = opened.page.locator("#events ol.timeline > li")
    assert events.count() == 5
    assert all("verified" in e for e in events.all_inner_texts())
    opened.screenshot("history-iris-mlp")
    _on_phone_in_dark(pages, out, "history-iris-mlp")
    _printed(opened, tmp_path / "history.pdf")
