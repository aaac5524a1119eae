"""The builder's side of the command line: what it needs installed, and how it says so."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import mpkg_builder
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def test_required_modules_are_the_builder_extra() -> None:
    """mpkg_builder.REQUIRES (looked up at import) names the import packages of the `builder` extra."""
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["builder"]
    distributions = {Requirement(r).name.lower() for r in extra}
    provided = metadata.packages_distributions()
    of_modules = {dist.lower() for module in mpkg_builder.REQUIRES for dist in provided.get(module, [])}
    assert of_modules == distributions
