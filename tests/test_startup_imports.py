"""Each command imports only what it needs: start-up is paid at every deploy, CI step and
container start (issue 15; the ratios are measured in bench/run.py).

Each command runs for real in a fresh interpreter, which then lists the modules it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROBE = """
import json, sys
from mpkg.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""

# What no command outside its own area may load.
SERVING = ("uvicorn", "mpkg.serve", "onnxruntime", "pyarrow")
REPORTS = ("jinja2", "markdown_it")
BUILDER = ("mpkg_builder", "onnx", "yaml", "httpx", "docker", "rich")
REGISTRY = ("httpx", "mpkg_builder.registry", "mpkg_builder.containerize", "mpkg_builder.deploy", "docker")


def loaded(tmp_path: Path, *argv: str | Path) -> set[str]:
    """The modules `mpkg ARGV` imported; the command must succeed."""
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *map(str, argv)], capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["code"] == 0, proc.stderr
    return set(doc["modules"])


def among(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("command", ["verify", "inspect", "unpack"])
def test_runtime_commands_load_no_numpy_server_or_builder(command: str, built: Any, tmp_path: Path) -> None:
    package = built.signed["iris-mlp"]
    argv = {
        "verify": ["verify", package, "--key", built.pub],
        "inspect": ["inspect", package],
        "unpack": ["unpack", package, tmp_path / "out", "--key", built.pub],
    }[command]
    modules = loaded(tmp_path, *argv)
    assert "mpkg._internal.trust.verify" in modules or command == "inspect"  # the probe sees the command's work
    assert not among(modules, ("numpy", *SERVING, *REPORTS, *BUILDER, "importlib.metadata")), command


def test_safetensors_build_loads_no_onnx_registry_or_server(built: Any, tmp_path: Path) -> None:
    modules = loaded(tmp_path, "build", built.sources["churn-tabular"], "-o", tmp_path / "c.mpkg")
    assert "mpkg_builder.writer" in modules
    forbidden = ("onnx", "onnxruntime", "mpkg_builder.sources.onnx_model", "mpkg_builder.diff.engine")
    assert not among(modules, (*forbidden, *REGISTRY, "uvicorn", "mpkg.serve", *REPORTS))


def test_onnx_build_loads_no_registry_or_server(built: Any, tmp_path: Path) -> None:
    modules = loaded(tmp_path, "build", built.sources["iris-mlp"], "-o", tmp_path / "i.mpkg")
    assert "onnx" in modules  # the probe is not vacuous: an ONNX source is read with onnx
    assert not among(modules, (*REGISTRY, "uvicorn", "mpkg.serve", *REPORTS, "mpkg_builder.diff.engine"))
