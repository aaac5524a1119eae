"""Load the real example packages built from examples/ (iris-mlp: ONNX; churn-tabular: tabular)."""

from __future__ import annotations

from pathlib import Path

import mpkg
import numpy as np
import pyarrow as pa
import pytest
from mpkg.errors import ContractError
from mpkg_builder.build import build_package

from tests.runtime.pkgfactory import make_key

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("examples")
    private, public = make_key(folder, "ci")
    out = {"pub": public}
    for name in ("iris-mlp", "churn-tabular"):
        out[name] = folder / f"{name}.mpkg"
        build_package(EXAMPLES / name, out[name], key=private)
    return out


def test_iris_loads_smoke_tests_and_predicts(built: dict[str, Path]) -> None:
    model = mpkg.load(built["iris-mlp"], [built["pub"]])
    assert model.name == "iris-mlp"
    model.smoke_test()
    out = model.predict({"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
    assert out["label"].tolist() == [0, 2]
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ContractError, match=r"input 'features'"):
        model.predict({"features": [[1.0, 2.0, 3.0]]})


def test_churn_takes_arrow_with_nulls(built: dict[str, Path]) -> None:
    model = mpkg.load(built["churn-tabular"], [built["pub"]])
    model.smoke_test()
    table = pa.table(
        {
            "tenure": [1.0, 48.0],
            "calls": pa.array([5, 0], pa.int32()),
            "plan": ["basic", "premium"],
            "monthly_charges": [None, 80.0],
        }
    )
    out = model.predict_arrow(table)
    p = out.column("churn_probability").to_numpy()
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
    with pytest.raises(ContractError, match=r"input 'tenure': holds 1 null"):
        model.predict(
            pa.table(
                {
                    "tenure": [None, 1.0],
                    "calls": [1, 2],
                    "plan": ["basic", "basic"],
                    "monthly_charges": [1.0, 2.0],
                }
            )
        )
