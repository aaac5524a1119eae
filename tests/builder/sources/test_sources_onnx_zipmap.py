"""skl2onnx's default ZipMap output (a list of dicts) is refused with the option that fixes it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from mpkg.errors import SourceError
from mpkg_builder.build import build_package


@pytest.mark.slow
def test_zipmap_output_names_the_fix(source: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(0)
        model = LogisticRegression().fit(rng.normal(size=(30, 4)), np.arange(30) % 3)
        onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 4]))])
    (source / "model.onnx").write_bytes(onx.SerializeToString())
    with pytest.raises(SourceError) as exc:
        build_package(source, tmp_path / "p.mpkg")
    assert "skl2onnx's ZipMap" in exc.value.diagnostics()
    assert 'options={id(model): {"zipmap": False}}' in exc.value.diagnostics()
