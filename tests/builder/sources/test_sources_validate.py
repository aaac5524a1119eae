"""Whole-source validation: every scenario is refused for its one reason; examples pass and run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest
from mpkg.errors import SourceError
from mpkg_builder.sources.validate import validate_source
from safetensors.numpy import load_file

from tests.scenarios import catalog

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


@pytest.mark.parametrize("name", sorted(catalog.SCENARIOS))
def test_scenario_refused_for_its_one_reason(tmp_path: Path, name: str) -> None:
    src = catalog.materialise(name, tmp_path)
    with pytest.raises(SourceError) as exc:
        validate_source(src)
    assert len(exc.value.problems) == 1, exc.value.diagnostics()
    assert catalog.SCENARIOS[name] in exc.value.diagnostics()


def test_every_scenario_folder_is_catalogued() -> None:
    folders = {p.name for p in catalog.HERE.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders == set(catalog.SCENARIOS) | set(catalog.CHAIN_SCENARIOS)


def test_problems_from_every_file_reported_together(source: Path) -> None:
    (source / "requirements.lock").write_text("numpy>=1\n")
    (source / "MODEL_CARD.md").write_text("# nothing\n")
    (source / "model.onnx").write_bytes(b"\x80\x04\x95" + bytes(8) + b"}\x94.")
    with pytest.raises(SourceError) as exc:
        validate_source(source)
    files = {p.where.split(":")[0] for p in exc.value.problems}
    assert files == {"requirements.lock", "MODEL_CARD.md", "model.onnx"}


def test_non_python_code_files_are_sniffed(source: Path) -> None:
    (source / "mpkg.toml").write_text((source / "mpkg.toml").read_text() + '\n[code]\nroot = "src"\nmodule = "m"\n')
    (source / "src").mkdir()
    (source / "src" / "m.py").write_text("import pickle\n")
    (source / "src" / "vocab.bin").write_bytes(json.dumps([1]).encode())
    (source / "src" / "state.dat").write_bytes(b"\x80\x05K\x01.")
    with pytest.raises(SourceError) as exc:
        validate_source(source)
    assert [p.where for p in exc.value.problems] == ["src/state.dat"]


def test_iris_example_validates_and_runs_its_example() -> None:
    v = validate_source(EXAMPLES / "iris-mlp")
    assert v.files == (
        "MODEL_CARD.md",
        "contract.json",
        "example.json",
        "model.onnx",
        "requirements.lock",
        "src/pipeline.py",
    )
    assert v.example is not None
    pipeline = _import(EXAMPLES / "iris-mlp" / "src" / "pipeline.py")
    feeds = pipeline.preprocess({k: np.array(x) for k, x in v.example["inputs"].items()})
    session = ort.InferenceSession(str(EXAMPLES / "iris-mlp" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = pipeline.postprocess(dict(zip(names, session.run(None, feeds), strict=True)))
    assert outputs["label"].tolist() == v.example["outputs"]["label"]
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_churn_example_validates_and_predicts_with_nulls_as_nan() -> None:
    v = validate_source(EXAMPLES / "churn-tabular")
    assert v.onnx is None and [name for name, _ in v.safetensors] == ["weights.safetensors"]
    assert v.contract.is_tabular and v.example is not None
    churn = _import(EXAMPLES / "churn-tabular" / "src" / "churn.py")
    weights = load_file(str(EXAMPLES / "churn-tabular" / "weights.safetensors"))
    for w in weights.values():
        w.setflags(write=False)
    inputs = {
        "tenure": np.array(v.example["inputs"]["tenure"], dtype=np.float64),
        "calls": np.array(v.example["inputs"]["calls"], dtype=np.int64),
        "plan": np.array(v.example["inputs"]["plan"], dtype=object),
        "monthly_charges": np.array(
            [np.nan if x is None else x for x in v.example["inputs"]["monthly_charges"]],
            dtype=np.float64,
        ),
    }
    prob = churn.predict(weights, inputs)["churn_probability"]
    assert prob.dtype == np.float64 and prob.shape == (3,)
    assert np.all((prob > 0) & (prob < 1))
    # Short tenure with many calls churns more than a long-tenure premium customer.
    assert prob[0] > prob[1]


def _import(path: Path) -> ModuleType:
    name = f"example_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
