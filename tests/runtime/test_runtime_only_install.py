"""A real runtime-only install (`pip install mpkg`, no extras) in a fresh venv.

What a serving host has: verify works, and every builder command answers with one line naming
the extra to install, not an ImportError traceback. Installed for real (not by blocking imports,
which tests/runtime/test_runtime_isolation.py does): the dependency closure is pip's, so a
builder-only import reached through a runtime dependency would show here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.harness.wheelhouse import wheelhouse

REPO = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def runtime_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding mpkg without extras, offline: the project's wheel, built by its own
    backend from a copy of the checkout (no build/ left in it), and its dependencies packed
    from this environment (tests/harness/wheelhouse.py)."""
    root = tmp_path_factory.mktemp("runtime-only")
    source = root / "source"
    junk = shutil.ignore_patterns(".venv*", ".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc")
    for name in ("runtime", "builder"):
        shutil.copytree(REPO / name, source / name, ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    house = root / "wheels"
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", house, source)
    assert built.returncode == 0, built.stderr[-2000:]
    wheelhouse([r for r in metadata.requires("mpkg") or [] if "extra ==" not in r], house)
    venv = root / "venv"
    assert _run(sys.executable, "-m", "venv", venv).returncode == 0
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile", "--no-index"]
    install = _run(*pip, "--find-links", house, "mpkg")
    assert install.returncode == 0, install.stderr[-2000:]
    return venv


def _mpkg(venv: Path, *argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MPKG_KEYS", "PYTHONPATH", "VIRTUAL_ENV")}
    proc = _run(venv / "bin" / "mpkg", *argv, cwd=cwd, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.slow
def test_builder_commands_name_the_extra(runtime_only: Path, tmp_path: Path) -> None:
    missing = _run(runtime_only / "bin" / "python", "-c", "import onnx")
    assert missing.returncode != 0, "the runtime-only venv has onnx: the test would prove nothing"
    for argv in (["build", ".", "-o", "x.mpkg"], ["diff", "a.mpkg", "b.mpkg"], ["push", "x.mpkg", "r/x:1"]):
        proc = _mpkg(runtime_only, *argv, cwd=tmp_path)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert (
            proc.stderr == f"mpkg {argv[0]}: needs the builder: pip install 'mpkg[builder]' (No module named 'onnx')\n"
        )
        assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []
    help_text = " ".join(_mpkg(runtime_only, "--help").stdout.split())
    assert "not available here: build, containerize, deploy, diff" in help_text
    assert "pip install 'mpkg[builder]'" in help_text


@pytest.mark.slow
def test_runtime_commands_work(runtime_only: Path, built: Any) -> None:
    proc = _mpkg(runtime_only, "verify", built.signed["iris-mlp"], "--key", built.pub, "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"ok": true' in proc.stdout
