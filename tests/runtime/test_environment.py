"""Environment checks against the lockfile, using the real installed distributions."""

from __future__ import annotations

import importlib.metadata
import platform

from mpkg._internal.load.environment import check_environment

NUMPY = importlib.metadata.version("numpy")


def test_matching_environment_has_no_mismatch() -> None:
    env = {
        "packages": [{"name": "numpy", "version": NUMPY}, {"name": "NumPy", "version": NUMPY}],
        "requires_python": f">={platform.python_version()}",
    }
    assert check_environment(env) == []


def test_every_mismatch_is_listed() -> None:
    env = {
        "requires_python": "<3.0",
        "packages": [
            {"name": "numpy", "version": "0.0.1"},
            {"name": "surely-not-installed-mpkg-test", "version": "1.0"},
        ],
    }
    mismatches = check_environment(env)
    assert len(mismatches) == 3
    assert f"python {platform.python_version()} is outside requires_python '<3.0'" in mismatches[0]
    assert f"numpy: the lockfile pins 0.0.1, the environment has {NUMPY}" in mismatches
    assert "surely-not-installed-mpkg-test: the lockfile pins 1.0, it is not installed" in mismatches


def test_equivalent_versions_match() -> None:
    env = {"packages": [{"name": "x", "version": "2.1"}]}
    assert check_environment(env, lookup=lambda name: "2.1.0") == []
    assert check_environment({"requires_python": ">=3.11"}, python_version="3.10.2") != []
