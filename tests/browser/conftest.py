"""Fixtures for the report pages in a real browser: Chromium, the packages they describe."""

from __future__ import annotations

import pytest

from tests.browser.report_packages import ReportPackages, build_report_packages
from tests.conftest import Built
from tests.harness.browser import Browser, browser, pages
from tests.harness.registry import RegistryProcess, oci_registry

__all__ = ["Browser", "RegistryProcess", "browser", "oci_registry", "pages"]


@pytest.fixture(scope="session")
def report_packages(built: Built, tmp_path_factory: pytest.TempPathFactory) -> ReportPackages:
    return build_report_packages(built, tmp_path_factory.mktemp("report-packages"))
