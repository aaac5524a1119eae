"""Package sources for the end-to-end diff tests, generated at test time.

ONNX graphs come from onnx.helper and safetensors weights from a seeded numpy
generator, so every file is deterministic and the golden reports hold across machines.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).parent / "golden"

CARD = """---
license: apache-2.0
tags: [{tag}]
---

# {name}

A generated model for the `mpkg diff` tests.

## Intended use

Testing semantic-version inference only.

## Limitations

Random weights; predictions mean nothing.

## Training data

None: weights are drawn from a seeded generator.

## Evaluation

Not evaluated.

## Ethical considerations

None beyond those of any test fixture.
"""


def check_golden(name: str, text: str) -> None:
    """Compare with golden/<name>; MPKG_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("MPKG_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with MPKG_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class OnnxSpec:
    """One variant of a tiny MLP: X[batch, in_dim] -> ReduceMean -> Gemm -> Relu -> Gemm -> Softmax.

    ReduceMean over the features makes the graph run for any feature count, so declaring that
    dim dynamic is a true interface change with the same operators and initializers.
    """

    version: str = "1.0.0"
    in_dim: int | str = 4
    hidden: int = 8
    seed: int = 0
    extra_relu: bool = False
    accuracy: float = 0.9
    pins: tuple[str, ...] = ("numpy==2.4.6",)


@dataclass(frozen=True)
class SafetensorsSpec:
    version: str = "1.0.0"
    seed: int = 0
    code_comment: str = ""
    predict_params: str = "weights, inputs"
    extra_optional_input: bool = False
    pins: tuple[str, ...] = ("numpy==2.4.6",)
    accuracy: float = 0.8
    extra: dict[str, Any] = field(default_factory=dict)


def _onnx_model(spec: OnnxSpec) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(spec.seed)
    h = spec.hidden
    inits = [
        numpy_helper.from_array(rng.standard_normal((h, 1)).astype(np.float32), "fc1.weight"),
        numpy_helper.from_array(rng.standard_normal(h).astype(np.float32), "fc1.bias"),
        numpy_helper.from_array(rng.standard_normal((3, h)).astype(np.float32), "fc2.weight"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "fc2.bias"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["features"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Gemm", ["m", "fc1.weight", "fc1.bias"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["a"]),
    ]
    if spec.extra_relu:
        nodes.append(helper.make_node("Relu", ["a"], ["a2"]))
    nodes += [
        helper.make_node("Gemm", ["a2" if spec.extra_relu else "a", "fc2.weight", "fc2.bias"], ["z"], transB=1),
        helper.make_node("Softmax", ["z"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", spec.in_dim])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mpkg-tests")
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def _common(src: Path, name: str, version: str, pins: tuple[str, ...], accuracy: float) -> str:
    src.mkdir(parents=True)
    (src / "MODEL_CARD.md").write_text(CARD.format(name=name, tag=name))
    (src / "requirements.lock").write_text("\n".join(pins) + "\n")
    (src / "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
    return f"""[package]
name = "{name}"
version = "{version}"

[environment]
lockfile = "requirements.lock"

[card]
file = "MODEL_CARD.md"

[lineage]
metrics = "metrics.json"
"""


def write_onnx_source(src: Path, spec: OnnxSpec) -> Path:
    toml = _common(src, "tiny-mlp", spec.version, spec.pins, spec.accuracy)
    (src / "model.onnx").write_bytes(_onnx_model(spec))
    toml += '\n[model]\nformat = "onnx"\nfiles = ["model.onnx"]\n'
    (src / "mpkg.toml").write_text(toml)
    return src


def write_safetensors_source(src: Path, spec: SafetensorsSpec) -> Path:
    from safetensors.numpy import save_file

    toml = _common(src, "tiny-linear", spec.version, spec.pins, spec.accuracy)
    rng = np.random.default_rng(spec.seed)
    save_file(
        {"coef": rng.standard_normal(3).astype(np.float32), "intercept": np.zeros(1, np.float32)},
        str(src / "weights.safetensors"),
    )
    (src / "code").mkdir()
    (src / "code" / "linear.py").write_text(
        f'"""A linear model.{spec.code_comment}"""\n\nimport numpy as np\n\n\n'
        f"def predict({spec.predict_params}):\n"
        '    x = np.asarray(inputs["x"], dtype=np.float32)\n'
        '    z = x @ weights["coef"] + weights["intercept"][0]\n'
        '    return {"y": z}\n'
    )
    inputs: list[dict[str, Any]] = [{"name": "x", "dtype": "float32", "shape": ["batch", 3]}]
    if spec.extra_optional_input:
        inputs.append({"name": "weight", "dtype": "float32", "shape": ["batch"], "optional": True})
    contract = {
        "inputs": inputs,
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch"]}],
    }
    (src / "contract.json").write_text(json.dumps(contract))
    toml += (
        '\n[model]\nformat = "safetensors"\nfiles = ["weights.safetensors"]\n'
        '\n[code]\nroot = "code"\nmodule = "linear"\n'
        '\n[contract]\nfile = "contract.json"\n'
    )
    (src / "mpkg.toml").write_text(toml)
    return src


ONNX_VARIANTS: dict[str, OnnxSpec] = {
    "base": OnnxSpec(),
    "retrained": OnnxSpec(version="1.1.0", seed=1, accuracy=0.93),
    "dynamic-dim": OnnxSpec(version="1.1.0", in_dim="n_features"),
    "wider-input": OnnxSpec(version="1.0.1", in_dim=5),
    "wider-hidden": OnnxSpec(version="2.0.0", hidden=16),
    "extra-op": OnnxSpec(version="2.0.0", extra_relu=True),
    "dep-patch": OnnxSpec(version="1.0.1", pins=("numpy==2.4.7",)),
}
SAFETENSORS_VARIANTS: dict[str, SafetensorsSpec] = {
    "base": SafetensorsSpec(),
    "code-fix": SafetensorsSpec(version="1.0.1", code_comment=" Fixed."),
    "retrained": SafetensorsSpec(version="1.1.0", seed=2, accuracy=0.85),
    "optional-input": SafetensorsSpec(version="1.1.0", extra_optional_input=True),
    "predict-signature": SafetensorsSpec(version="2.0.0", predict_params="weights, inputs, context=None"),
}


@dataclass(frozen=True)
class Built:
    onnx: dict[str, Path]
    safetensors: dict[str, Path]
    sources: Path
