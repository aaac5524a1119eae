"""`mpkg init` on each source kind, made by the real libraries, then `build`, `verify --run
--env` and `serve` with one inference: the folder init writes builds as it is, and the
package answers what init's own run of the model recorded."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from mpkg._internal.format.package import read_manifest
from mpkg.serve.tensors import V2_OF_DTYPE

from tests.builder.init.initsources import Made
from tests.harness.server import MPKG_SERVE, ServerProcess

pytestmark = pytest.mark.slow
PREDICT = ("safetensors/predict.py", "safetensors/contract.json")


def _source(made: Made, kind: str) -> tuple[Path, list[str]]:
    code = ["--code", str(made / PREDICT[0]), "--contract", str(made / PREDICT[1])]
    return {
        "onnx": (made / "onnx" / "model.onnx", []),
        "safetensors": (made / "safetensors" / "weights.safetensors", code),
        "hf": (made / "hf", code),
        "mlflow-onnx": (made / "mlflow-onnx", []),
        "mlflow-sklearn-columns": (made.mlflow_run[1], []),
        "mlflow-sklearn-tensor": (made / "mlflow-tensor", []),
    }[kind]


def _infer(url: str, name: str, contract: dict[str, Any], inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    body = {
        "inputs": [
            {
                "name": f["name"],
                "datatype": V2_OF_DTYPE[f["dtype"]],
                "shape": list(np.shape(inputs[f["name"]])),
                "data": np.asarray(inputs[f["name"]], dtype=object).ravel().tolist(),
            }
            for f in contract["inputs"]
        ]
    }
    response = httpx.post(f"{url}/v2/models/{name}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return {o["name"]: np.reshape(np.asarray(o["data"]), o["shape"]) for o in response.json()["outputs"]}


@pytest.mark.parametrize(
    "kind", ["onnx", "safetensors", "hf", "mlflow-onnx", "mlflow-sklearn-columns", "mlflow-sklearn-tensor"]
)
def test_init_build_verify_serve(kind: str, made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    source, extra = _source(made, kind)
    dest = tmp_path / "pkg"
    init = run_mpkg("init", dest, "--from", source, *extra, "--json", expect=0)
    report = json.loads(init.stdout)
    assert (dest / "mpkg.toml").is_file() and report["files"][-1] == "mpkg.toml"
    assert not list(dest.glob(".mpkg-init-*")), "the staging folder is removed"
    config = tomllib.loads((dest / "mpkg.toml").read_text())

    out = tmp_path / "dist" / f"{kind}.mpkg"  # build creates dist/
    build = run_mpkg("build", dest, "-o", out, expect=0)
    # What init cannot know is a warning naming each section (the HF README states its intended use).
    for section in ("Limitations", "Evaluation", "Ethical considerations"):
        assert f"section {section!r} says 'Not stated'" in build.stderr
    assert ("section 'Intended use' says 'Not stated'" in build.stderr) == (kind != "hf")
    run_mpkg("build", dest, "-o", tmp_path / "strict.mpkg", "--strict-card", expect=1)
    assert not (tmp_path / "strict.mpkg").exists()
    verify = run_mpkg("verify", out, "--allow-unsigned", "--run", "--env", "--json", expect=0)
    assert json.loads(verify.stdout)["smoke_test"] == {"ok": True}

    manifest = read_manifest(out)
    example = json.loads((dest / "example.json").read_text())
    assert set(example["outputs"]) == {f.name for f in manifest.contract.outputs}
    card = (dest / config["card"]["file"]).read_text()
    assert "a real run" in card and "## How this package was made" in card
    locked = {p["name"] for p in manifest.environment["packages"]}
    assert "numpy" in locked and "pytest" not in locked and "mlflow" not in locked

    server = ServerProcess(MPKG_SERVE, [str(out), "--allow-unsigned"], tmp_path / "serve.log")
    try:
        url = server.wait_ready()
        answer = _infer(url, manifest.name, manifest.contract.to_json(), example["inputs"])
    finally:
        assert server.stop() == 0
    for name, expected in example["outputs"].items():
        assert np.allclose(answer[name].astype(np.float64), np.asarray(expected, dtype=np.float64), rtol=1e-5), name
    _check_kind(kind, dest, manifest, made)


def _check_kind(kind: str, dest: Path, manifest: Any, made: Made) -> None:
    """What each kind must carry over from its source."""
    lineage = manifest.lineage
    if kind == "onnx":
        assert manifest.model_format == "onnx" and "onnxruntime" in {
            p["name"] for p in manifest.environment["packages"]
        }
    if kind in ("safetensors", "hf"):
        assert manifest.model_format == "safetensors"
        text = (dest / ("README.md" if kind == "hf" else "MODEL_CARD.md")).read_text()
        assert "| `mlp.0.weight` | F32 | [8, 4] |" in text  # the tensor table
    if kind == "hf":
        readme = (made / "hf" / "README.md").read_text()
        text = (dest / "README.md").read_text()
        assert text.startswith(readme.rstrip("\n"))  # the README is the card, byte for byte
        assert manifest.card["metadata"]["license"] == "apache-2.0"  # front matter kept
        assert list(manifest.model_files) == [
            "model/model-00001-of-00002.safetensors",
            "model/model-00002-of-00002.safetensors",
        ]
        assert not (dest / "pytorch_model.bin").exists()
        assert lineage["origin"]["config"]["model_type"] == "iris-mlp"
    if kind.startswith("mlflow"):
        origin = lineage["origin"]
        assert origin["kind"] == "mlflow" and len(origin["model_uuid"].removeprefix("m-")) == 32
        assert "utc_time_created" in origin
    if kind == "mlflow-sklearn-columns":
        run_id, _ = made.mlflow_run
        assert lineage["origin"]["run_id"] == run_id
        assert lineage["params"] == {"C": "1.0", "max_iter": "500"}
        assert lineage["metrics"] == {"accuracy": 0.87}  # the last step's value
        inputs = {f.name: f for f in manifest.contract.inputs}
        assert {n: f.dtype for n, f in inputs.items()} == {  # MLflow's column names, kept
            "tenure months": "float64",
            "plan": "string",
            "support calls": "int64",
        }
        assert inputs["tenure months"].description == "MLflow column (double)"
        assert "pyarrow" in {p["name"] for p in manifest.environment["packages"]}  # tabular
    if kind == "mlflow-sklearn-tensor":
        (field,) = manifest.contract.inputs
        assert (field.dtype, field.shape) == ("float64", ("batch", 4))
