"""`mpkg lock`: exactly what the package code imports and its format needs, and their
requirements, pinned to this environment; refusals; hashes and PEP 751 from the index."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from mpkg_builder.sources.lockfile import parse_lockfile
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[3]
PIPELINE = '''\
"""Imports of every kind lock has to tell apart."""

import json
from typing import TYPE_CHECKING

import numpy as np

import helpers

try:
    import yaml
except ImportError:
    yaml = None

if TYPE_CHECKING:
    import pandas


def preprocess(inputs):
    return {"features": np.asarray(inputs["features"], dtype=np.float32)}
'''


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "iris"
    shutil.copytree(REPO / "examples" / "iris-mlp", folder)
    (folder / "src" / "pipeline.py").write_text(PIPELINE)
    (folder / "src" / "helpers.py").write_text("import json\n")
    (folder / "requirements.lock").unlink()
    return folder


def _pins(path: Path) -> dict[str, str]:
    return {p.name: p.version for p in parse_lockfile(path).packages}


def test_lock_pins_the_closure_of_imports_and_format_needs(src: Path, run_mpkg: Any) -> None:
    run_mpkg("lock", src, expect=0)
    pins = _pins(src / "requirements.lock")
    assert {"onnxruntime", "numpy", "pyyaml"} <= set(pins)  # format needs, an import, an optional import
    assert not {"pandas", "pytest", "pip", "setuptools", "mpkg", "helpers"} & set(pins)
    for name, version in pins.items():
        dist = md.distribution(name)
        assert dist.version == version, name  # pinned to what is installed
        for text in dist.requires or ():  # closed under requirements that apply here
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                assert canonicalize_name(req.name) in pins, f"{name} requires {req.name}"
    text = (src / "requirements.lock").read_text()
    assert "# pyyaml: imported at src/pipeline.py:11" in text
    assert "# numpy: the onnx format; imported at src/pipeline.py:6" in text


def test_verify_env_agrees_with_the_environment_lock_read(src: Path, run_mpkg: Any, tmp_path: Path) -> None:
    run_mpkg("lock", src, expect=0)
    run_mpkg("build", src, "-o", tmp_path / "iris.mpkg", expect=0)
    verify = run_mpkg("verify", tmp_path / "iris.mpkg", "--allow-unsigned", "--env", "--json", expect=0)
    assert json.loads(verify.stdout)["environment"] == {"ok": True, "mismatches": []}


def test_an_import_nothing_provides_is_refused_naming_the_line(src: Path, run_mpkg: Any) -> None:
    (src / "src" / "helpers.py").write_text("import json\nimport not_a_module_anywhere\n")
    proc = run_mpkg("lock", src, expect=1)
    assert "src/helpers.py:2: imports 'not_a_module_anywhere', which no installed distribution provides" in proc.stderr
    assert not (src / "requirements.lock").exists()


def test_importing_a_test_tool_is_refused(src: Path, run_mpkg: Any) -> None:
    (src / "src" / "helpers.py").write_text("import pytest\n")
    proc = run_mpkg("lock", src, expect=1)
    assert "imports 'pytest' from pytest, a test or build tool" in proc.stderr


def _fake_dist(site: Path, name: str, direct_url: dict[str, Any]) -> None:
    """A distribution installed the way pip records a local install (PEP 610 direct_url.json)."""
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text("")
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    (info / "direct_url.json").write_text(json.dumps(direct_url))


@pytest.mark.parametrize(
    ("direct_url", "reason"),
    [
        ({"url": "file:///home/dev/localpkg", "dir_info": {"editable": True}}, "is an editable install"),
        ({"url": "file:///home/dev/localpkg", "dir_info": {}}, "is installed from a local folder"),
        ({"url": "file:///tmp/localpkg-1.0-py3-none-any.whl", "archive_info": {}}, "was installed from a file or URL"),
    ],
)
def test_local_installs_are_refused(
    src: Path, run_mpkg: Any, tmp_path: Path, direct_url: dict[str, Any], reason: str
) -> None:
    site = tmp_path / "site"
    _fake_dist(site, "localpkg", direct_url)
    (src / "src" / "helpers.py").write_text("import localpkg\n")
    proc = run_mpkg("lock", src, env={"PYTHONPATH": str(site)}, expect=1)
    assert f"localpkg 1.0: {reason}" in proc.stderr and "pip install localpkg==1.0" in proc.stderr


def test_lockfile_comment_injection_through_a_file_name(src: Path, run_mpkg: Any, tmp_path: Path) -> None:
    (src / "src" / "a\nnumpy==1.0.0\nb.py").write_text("import yaml\n")
    run_mpkg("lock", src, expect=0)
    pins = _pins(src / "requirements.lock")
    assert pins["numpy"] == md.version("numpy")
    assert "\nnumpy==1.0.0" not in (src / "requirements.lock").read_text()


def test_pylock_needs_a_pylock_name(src: Path, run_mpkg: Any) -> None:
    proc = run_mpkg("lock", src, "--format", "pylock", "-o", src / "locked.toml", expect=2)
    assert "must be named pylock.toml or pylock.NAME.toml" in proc.stderr


@pytest.mark.slow
def test_hashes_come_from_the_index(src: Path, run_mpkg: Any, tmp_path: Path) -> None:
    run_mpkg("lock", src, "--hashes", expect=0)
    lock = parse_lockfile(src / "requirements.lock")
    assert lock.packages and all(len(p.hashes) == 1 and p.hashes[0].startswith("sha256:") for p in lock.packages)
    run_mpkg("build", src, "-o", tmp_path / "hashed.mpkg", expect=0)
    pin = lock.pin("packaging")  # small: check one hash against the bytes pip downloads
    assert pin is not None
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--prefer-binary",
            "-q",
            "-d",
            str(wheels),
            f"packaging=={pin.version}",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    (wheel,) = wheels.iterdir()
    assert pin.hashes == (f"sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}",)


@pytest.mark.slow
def test_pylock_builds_and_verify_env_agrees(src: Path, run_mpkg: Any, tmp_path: Path) -> None:
    config = (src / "mpkg.toml").read_text().replace('"requirements.lock"', '"pylock.toml"')
    (src / "mpkg.toml").write_text(config)
    run_mpkg("lock", src, expect=0)  # the format follows the name mpkg.toml gives
    doc = tomllib.loads((src / "pylock.toml").read_text())
    assert doc["lock-version"] == "1.0" and doc["requires-python"] == f"=={sys.version_info[0]}.{sys.version_info[1]}.*"
    assert all(len(w["hashes"]["sha256"]) == 64 for p in doc["packages"] for w in p.get("wheels", [p.get("sdist")]))
    run_mpkg("build", src, "-o", tmp_path / "pylock.mpkg", expect=0)
    run_mpkg("verify", tmp_path / "pylock.mpkg", "--allow-unsigned", "--env", expect=0)


def test_lock_source_helpers_do_not_read_the_lockfile(tmp_path: Path) -> None:
    """lock runs before a lockfile exists: mpkg.toml may name one that is not there yet."""
    from mpkg_builder.lock import lock_source

    folder = tmp_path / "fresh"
    shutil.copytree(REPO / "examples" / "iris-mlp", folder)
    (folder / "requirements.lock").unlink()
    result = lock_source(folder)
    assert result.path == folder / "requirements.lock" and result.path.is_file()
    assert textwrap.dedent(result.path.read_text()).startswith("# Written by `mpkg lock`")
