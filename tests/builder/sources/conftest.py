"""Shared fixtures for the source-validation tests: a valid tiny source to break."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


def _load_catalog() -> ModuleType:
    """tests/scenarios/catalog.py by path, so no package layout or conftest is needed."""
    name = "mpkg_scenarios_catalog"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "scenarios" / "catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


catalog = _load_catalog()

CARD = (REPO / "tests" / "scenarios" / "unpinned-lockfile" / "MODEL_CARD.md").read_text()
TOML = """[package]
name = "tiny"
version = "1.0.0"

[model]
format = "onnx"
files = ["model.onnx"]

[environment]
lockfile = "requirements.lock"

[card]
file = "MODEL_CARD.md"
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A valid minimal ONNX source folder (tiny MatMul model) that tests then break."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "mpkg.toml").write_text(TOML)
    (src / "model.onnx").write_bytes(catalog.tiny_onnx())
    (src / "requirements.lock").write_text("numpy==2.4.6\n")
    (src / "MODEL_CARD.md").write_text(CARD)
    return src


@pytest.fixture
def base_toml() -> str:
    """The mpkg.toml text of the ``source`` fixture."""
    return TOML


@pytest.fixture
def scenarios() -> ModuleType:
    """tests/scenarios/catalog.py (SCENARIOS, materialise, tiny_onnx, safetensors_bytes)."""
    return catalog
