"""mpkg.load on real packages: verify first, map weights, import code privately, enforce."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mpkg
import numpy as np
import pyarrow as pa
import pytest
from mpkg._internal.load.model import Model, example_inputs, load
from mpkg._internal.load.parts import ModelParts, OnnxModel
from mpkg._internal.load.weights import open_safetensors
from mpkg.errors import ContractError, EnvironmentMismatch, MpkgError, VerificationError

from tests.runtime.pkgfactory import gemm_onnx, make_key, safetensors_bytes, write_package

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
B = np.array([0.5, -0.5, 0.0], np.float32)
GEMM_CONTRACT = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
    "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 3]}],
}
X = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.5, 0.0, 1.0]]


def expected_y(x: Any) -> np.ndarray:
    return np.asarray(x, np.float32) @ W + B


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    private, public = make_key(folder, "signer")
    _, other = make_key(folder, "other")
    return private, public, other


def gemm_package(
    path: Path,
    key: Path | None,
    *,
    code: dict[str, bytes] | None = None,
    example_y: Any = None,
    external: bool = True,
    **kw: Any,
) -> Path:
    if external:
        model, data = gemm_onnx(W, B, external="model.onnx.data", folder=path.parent / (path.stem + "_src"))
        files = {"model.onnx": model, "model.onnx.data": data}
    else:
        model, _ = gemm_onnx(W, B)
        files = {"model.onnx": model}
    example = {
        "inputs": {"x": X},
        "outputs": {"y": (expected_y(X) if example_y is None else example_y).tolist()},
    }
    write_package(
        path,
        name="gemm",
        model_format="onnx",
        model_files=files,
        contract=GEMM_CONTRACT,
        code=code,
        module="pipeline" if code else None,
        entry_points={"preprocess": ["inputs"]} if code else None,
        example=example,
        key=key,
        **kw,
    )
    return path


def test_onnx_package_loads_verifies_and_predicts(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, _ = keys
    pkg = gemm_package(tmp_path / "gemm.mpkg", private)
    model = mpkg.load(pkg, [public])
    assert isinstance(model, Model)
    assert (model.name, model.version) == ("gemm", "1.0.0")
    assert model.digest == str(mpkg.verify(pkg, [public]).digest)
    assert model.card is not None and "# Test model" in model.card.text
    assert model.card.metadata == {"license": "apache-2.0"}
    assert sorted(model.mapped_initializers) == ["B", "W"]  # external data served from the map
    out = model.predict({"x": X})
    np.testing.assert_allclose(out["y"], expected_y(X), rtol=1e-6)
    assert out["y"].dtype == np.float32
    model.smoke_test()
    model.close()


def test_inline_onnx_unsigned_needs_allow_unsigned(tmp_path: Path) -> None:
    pkg = gemm_package(tmp_path / "u.mpkg", None, external=False)
    with pytest.raises(VerificationError, match=r"not signed"):
        load(pkg)
    model = load(pkg, mpkg.Policy.unsafe_allow_unsigned())
    assert model.mapped_initializers == []
    np.testing.assert_allclose(model.predict({"x": np.ones((1, 4), np.float32)})["y"], expected_y([[1, 1, 1, 1]]))


MARKER_CODE = (
    "import pathlib\npathlib.Path({marker!r}).write_text('imported')\ndef preprocess(inputs):\n    return inputs\n"
)


def test_code_never_runs_when_the_signature_check_fails(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, other = keys
    marker = tmp_path / "marker.txt"
    code = {"pipeline.py": MARKER_CODE.format(marker=str(marker)).encode()}
    pkg = gemm_package(tmp_path / "m.mpkg", private, code=code)
    with pytest.raises(VerificationError, match=r"no signature by a trusted key"):
        load(pkg, [other])
    with pytest.raises(VerificationError, match=r"no trusted keys given"):
        load(pkg)
    assert not marker.exists()
    # one flipped byte in the weights: refused, still no code ran
    data = bytearray(pkg.read_bytes())
    spot = data.find(W.tobytes()[:16])
    assert spot > 0
    data[spot] ^= 1
    tampered = tmp_path / "t.mpkg"
    tampered.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=r"model/model.onnx.data: content does not match its digest"):
        load(tampered, [public])
    assert not marker.exists()
    # the untouched package with the right key: the code is imported
    load(pkg, [public]).close()
    assert marker.read_text() == "imported"


def test_inputs_are_checked_before_package_code_runs(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, _ = keys
    calls = tmp_path / "calls.txt"
    code = {
        "pipeline.py": (
            "import pathlib\n"
            "def preprocess(inputs):\n"
            f"    p = pathlib.Path({str(calls)!r})\n"
            "    p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
            "    return inputs\n"
        ).encode()
    }
    model = load(gemm_package(tmp_path / "c.mpkg", private, code=code), [public])
    with pytest.raises(ContractError, match=r"input 'x': expected dtype float32, got float64"):
        model.predict({"x": np.zeros((2, 4))})
    with pytest.raises(ContractError, match=r"input 'x': dim 1 must be 4"):
        model.predict({"x": np.zeros((2, 5), np.float32)})
    with pytest.raises(ContractError, match=r"input 'y': is not an input"):
        model.predict({"x": np.zeros((2, 4), np.float32), "y": [1]})
    assert not calls.exists()
    model.predict({"x": np.zeros((2, 4), np.float16)})  # float16 -> float32 widens
    assert calls.read_text() == "x"


def test_two_packages_with_the_same_module_name_side_by_side(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, _ = keys
    code_a = {
        "pipeline.py": b"from .scale import K\ndef preprocess(inputs):\n    return {'x': inputs['x'] * K}\n",
        "scale.py": b"import numpy as np\nK = np.float32(1)\n",
    }
    code_b = {
        "pipeline.py": b"import scale\ndef preprocess(inputs):\n    return {'x': inputs['x'] * scale.K}\n",
        "scale.py": b"import numpy as np\nK = np.float32(2)\n",
    }
    pa_ = gemm_package(tmp_path / "a.mpkg", private, code=code_a)
    pb_ = gemm_package(tmp_path / "b.mpkg", private, code=code_b, example_y=expected_y(np.asarray(X) * 2))
    load(pa_, [public]).close()  # warm up: first-time imports of numpy/onnxruntime internals
    path_before, modules_before = list(sys.path), set(sys.modules)
    a, b = load(pa_, [public]), load(pb_, [public])
    assert a.digest != b.digest
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(a.predict({"x": x})["y"], expected_y(x), rtol=1e-6)
    np.testing.assert_allclose(b.predict({"x": x})["y"], expected_y(2 * x), rtol=1e-6)
    a.smoke_test()
    b.smoke_test()
    assert sys.path == path_before
    assert a.code is not None and b.code is not None
    prefixes = {a.code.prefix, b.code.prefix}
    private = {m for m in set(sys.modules) - modules_before if m.startswith("_mpkg_code_")}
    assert {m.split(".")[0] for m in private} == prefixes  # package modules only under private names
    assert "scale" not in sys.modules and "pipeline" not in sys.modules
    a.close()
    b.close()
    assert not [m for m in sys.modules if m.split(".")[0] in prefixes]


def test_smoke_test_failure_names_the_output_and_deviation(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, _ = keys
    wrong = expected_y(X)
    wrong[1, 2] += 0.25
    model = load(gemm_package(tmp_path / "s.mpkg", private, example_y=wrong), [public])
    with pytest.raises(VerificationError) as exc:
        model.smoke_test()
    text = exc.value.diagnostics()
    assert "example/example.json: output 'y'" in text
    assert "by up to 0.25" in text and "1 of 6 values" in text


def test_strict_env_refuses_a_mismatched_environment(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, _ = keys
    pkg = gemm_package(tmp_path / "e.mpkg", private, packages=[{"name": "numpy", "version": "0.0.1"}])
    with pytest.raises(EnvironmentMismatch, match=r"numpy: the lockfile pins 0.0.1"):
        load(pkg, [public], strict_env=True)
    load(pkg, [public]).close()  # not strict: loads


CHURN_CONTRACT = {
    "inputs": [
        {"name": "tenure", "dtype": "float64", "shape": ["batch"]},
        {"name": "plan", "dtype": "string", "shape": ["batch"], "enum": ["basic", "premium"]},
        {"name": "charges", "dtype": "float64", "shape": ["batch"], "nullable": True},
    ],
    "outputs": [
        {"name": "p", "dtype": "float64", "shape": ["batch"]},
        {"name": "writeable", "dtype": "bool", "shape": []},
    ],
}
CHURN_CODE = b"""import numpy as np
def predict(weights, inputs):
    w = weights["coef"]
    charges = np.where(np.isnan(inputs["charges"]), weights["fill"][0], inputs["charges"])
    z = w[0] * inputs["tenure"] + w[1] * (inputs["plan"] == "premium") + w[2] * charges
    return {"p": 1 / (1 + np.exp(-z)), "writeable": np.array(w.flags.writeable)}
"""
COEF = np.array([0.1, -1.0, 0.02])


def churn_expected(tenure: list[float], plan: list[str], charges: list[float]) -> np.ndarray:
    c = np.where(np.isnan(charges), 50.0, charges)
    z = COEF[0] * np.array(tenure) + COEF[1] * (np.array(plan) == "premium") + COEF[2] * c
    return np.asarray(1 / (1 + np.exp(-z)))


@pytest.fixture()
def churn(tmp_path: Path, keys: tuple[Path, Path, Path]) -> Model:
    private, public, _ = keys
    weights = safetensors_bytes({"coef": COEF, "fill": np.array([50.0])})
    pkg = tmp_path / "churn.mpkg"
    write_package(
        pkg,
        name="churn",
        model_format="safetensors",
        model_files={"weights.safetensors": weights},
        contract=CHURN_CONTRACT,
        code={"churn.py": CHURN_CODE},
        module="churn",
        entry_points={"predict": ["weights", "inputs"]},
        key=private,
    )
    return load(pkg, [public])


def test_safetensors_package_weights_are_mapped_read_only(churn: Model) -> None:
    assert churn.weights is not None
    coef = churn.weights["coef"]
    assert coef.flags.writeable is False
    package_map = next(k for k in churn._keepalive)  # the one map of the .mpkg
    assert np.shares_memory(coef, np.frombuffer(package_map, np.uint8))  # type: ignore[call-overload]
    out = churn.predict({"tenure": [1.0, 10.0], "plan": ["basic", "premium"], "charges": [None, 20.0]})
    np.testing.assert_allclose(out["p"], churn_expected([1.0, 10.0], ["basic", "premium"], [np.nan, 20.0]))
    assert out["writeable"].item() is False  # the package code saw read-only weights


def test_tabular_predict_accepts_arrow_and_pandas(churn: Model) -> None:
    batch = pa.RecordBatch.from_pydict(
        {
            "tenure": pa.array([1.0, 2.0, 3.0]),
            "plan": pa.array(["basic", "basic", "premium"]),
            "charges": pa.array([None, 10.0, 20.0]),
        }
    )
    expected = churn_expected([1.0, 2.0, 3.0], ["basic", "basic", "premium"], [np.nan, 10.0, 20.0])
    np.testing.assert_allclose(churn.predict(batch)["p"], expected)
    with pytest.raises(ContractError, match=r"scalar"):
        churn.predict_arrow(batch)  # 'writeable' is 0-d: not a column
    with pytest.raises(ContractError, match=r"input 'plan': value 'gold'"):
        churn.predict({"tenure": [1.0], "plan": ["gold"], "charges": [1.0]})
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "tenure": [1.0, 2.0, 3.0],
            "plan": ["basic", "basic", "premium"],
            "charges": [np.nan, 10.0, 20.0],
        }
    )
    np.testing.assert_allclose(churn.predict(frame)["p"], expected)


def test_predict_arrow_returns_a_record_batch(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, _ = keys
    contract = {"inputs": CHURN_CONTRACT["inputs"], "outputs": [CHURN_CONTRACT["outputs"][0]]}
    code = CHURN_CODE.replace(b', "writeable": np.array(w.flags.writeable)', b"")
    weights = safetensors_bytes({"coef": COEF, "fill": np.array([50.0])})
    pkg = tmp_path / "churn2.mpkg"
    write_package(
        pkg,
        name="churn",
        model_format="safetensors",
        model_files={"weights.safetensors": weights},
        contract=contract,
        code={"churn.py": code},
        module="churn",
        entry_points={"predict": ["weights", "inputs"]},
        key=private,
    )
    model = load(pkg, [public])
    batch = pa.table({"tenure": [1.0, 2.0], "plan": ["basic", "premium"], "charges": [5.0, None]})
    out = model.predict_arrow(batch)
    assert isinstance(out, pa.RecordBatch) and out.schema.names == ["p"]
    np.testing.assert_allclose(
        out.column(0).to_numpy(), churn_expected([1.0, 2.0], ["basic", "premium"], [5.0, np.nan])
    )


def test_bad_outputs_from_package_code_are_contract_errors(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, _ = keys
    code = {"m.py": b"import numpy as np\ndef predict(weights, inputs):\n    return {'p': np.zeros(3, np.float32)}\n"}
    pkg = tmp_path / "bad.mpkg"
    write_package(
        pkg,
        name="bad",
        model_format="safetensors",
        model_files={"w.safetensors": safetensors_bytes({"a": np.zeros(1)})},
        contract={
            "inputs": [{"name": "x", "dtype": "float64", "shape": ["batch"]}],
            "outputs": [{"name": "p", "dtype": "int64", "shape": ["batch"]}],
        },
        code=code,
        module="m",
        entry_points={"predict": ["weights", "inputs"]},
        key=private,
    )
    model = load(pkg, [public])
    with pytest.raises(ContractError) as exc:
        model.predict({"x": [1.0, 2.0]})
    text = exc.value.diagnostics()
    assert "output 'p': expected dtype int64, got float32" in text


def test_model_from_parts_runs_a_model_from_source(tmp_path: Path) -> None:
    """The builder's route: no package, no digest yet; record the example it will store."""
    (tmp_path / "w.safetensors").write_bytes(safetensors_bytes({"coef": COEF, "fill": np.array([50.0])}))
    contract = mpkg._internal.contract.contract.Contract.from_json(
        {"inputs": CHURN_CONTRACT["inputs"], "outputs": [CHURN_CONTRACT["outputs"][0]]}
    )
    code = CHURN_CODE.replace(b', "writeable": np.array(w.flags.writeable)', b"")
    model = Model(
        ModelParts(
            name="churn",
            version="0.1.0",
            digest="",
            contract=contract,
            model_format="safetensors",
            weights=open_safetensors([tmp_path / "w.safetensors"]),
            code_files={"churn.py": code},
            code_module="churn",
        )
    )
    doc = model.record_example()
    assert doc["inputs"]["plan"] == ["basic", "basic"]
    assert len(doc["outputs"]["p"]) == 2
    assert set(example_inputs(contract)) == {"tenure", "plan", "charges"}
    onnx_model = Model(
        ModelParts(
            name="g",
            version="1.0.0",
            digest="",
            contract=mpkg._internal.contract.contract.Contract.from_json(GEMM_CONTRACT),
            model_format="onnx",
            weights=OnnxModel(gemm_onnx(W, B)[0]),
        )
    )
    assert onnx_model.record_example({"x": X})["outputs"]["y"] == expected_y(X).tolist()


def test_safetensors_without_predict_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MpkgError, match=r"needs a code module defining predict"):
        Model(
            ModelParts(
                name="n",
                version="1.0.0",
                digest="",
                contract=mpkg._internal.contract.contract.Contract.from_json(GEMM_CONTRACT),
                model_format="safetensors",
                weights=open_safetensors([]),
            )
        )
