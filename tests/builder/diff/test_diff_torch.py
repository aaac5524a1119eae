"""Version truth on torch.onnx exports (opt-in: needs torch, which the test extra leaves out).

PyTorch is 1.3 GB in a virtual environment; the suite does not install it for these few
cases, whose clause of the split (learned values in initializers, names canonical) the
hand-made graphs of tests/builder/sources/test_sources_onnx_split.py already pin. Run with
``.venv/bin/pip install torch==2.13.0`` (the CPU build on this machine's disk).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import pytest
from mpkg.errors import SourceError
from mpkg_builder.diff import Bump, diff_packages

from tests.builder.diff.realmodels import write_source

torch = pytest.importorskip("torch")


def _mlp(seed: int, hidden: int = 16) -> Any:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3)).eval()


def _export(model: Any) -> bytes:
    """The TorchScript exporter (milliseconds; the torch.export one takes seconds and onnxscript)."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.randn(2, 4),),
            out,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
            dynamo=False,
        )
    return out.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from mpkg_builder.build import build_package

    root = tmp_path_factory.mktemp("torch")
    models = {"base": _mlp(0), "twice": _mlp(0), "retrained": _mlp(1), "wider": _mlp(0, hidden=32)}
    return {
        name: Path(build_package(write_source(root / name, "torch-mlp", _export(m)), root / f"{name}.mpkg").path)
        for name, m in models.items()
    }


@pytest.mark.parametrize(
    ("variant", "bump", "rules"),
    [
        ("retrained", Bump.MINOR, {"weights-changed"}),
        ("wider", Bump.MAJOR, {"tensor-shape-changed", "graph-structure-changed"}),
    ],
)
def test_torch_export_gets_the_true_bump(exported: dict[str, Path], variant: str, bump: Bump, rules: set[str]) -> None:
    report = diff_packages(exported["base"], exported[variant])
    assert report.bump is bump and rules <= {c.rule for c in report.changes}


def test_torch_export_twice_is_nothing_to_release(exported: dict[str, Path], tmp_path: Path) -> None:
    from mpkg_builder.build import build_package

    assert diff_packages(exported["base"], exported["twice"]).bump <= Bump.PATCH
    src = write_source(tmp_path / "src", "torch-mlp", _export(_mlp(0)), version=None)
    with pytest.raises(SourceError, match="nothing to release"):
        build_package(src, tmp_path / "out.mpkg", base=exported["base"])
