"""Real packages for the end-to-end diff tests, built once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.builder.diff.mpkgdiff_sources import (
    ONNX_VARIANTS,
    SAFETENSORS_VARIANTS,
    Built,
    write_onnx_source,
    write_safetensors_source,
)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    from mpkg_builder.build import build_package

    root = tmp_path_factory.mktemp("diff-e2e")
    out: dict[str, dict[str, Path]] = {"onnx": {}, "safetensors": {}}
    writers: list[tuple[str, dict[str, Any], Callable[[Path, Any], Path]]] = [
        ("onnx", ONNX_VARIANTS, write_onnx_source),
        ("safetensors", SAFETENSORS_VARIANTS, write_safetensors_source),
    ]
    for kind, variants, write in writers:
        for name, spec in variants.items():
            src = write(root / "src" / kind / name, spec)
            pkg = root / f"{kind}-{name}.mpkg"
            build_package(src, pkg)
            out[kind][name] = pkg
    return Built(out["onnx"], out["safetensors"], root / "src")
