"""Shared fixtures for the source-validation tests: a valid tiny source to break."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.scenarios import catalog

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


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
