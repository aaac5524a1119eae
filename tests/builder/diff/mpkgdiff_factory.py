"""Real, schema-valid manifest documents for the diff rule tables.

Each factory returns a manifest as the builder writes it (checked by
``Manifest.from_json``); tests mutate a deep copy and diff the two documents.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.manifest import Manifest

Doc = dict[str, Any]


def digest(tag: str) -> str:
    return str(hash_bytes(tag.encode()))


def _file(path: str, role: str, tag: str | None = None, size: int = 100) -> dict[str, Any]:
    return {
        "path": path,
        "size": size,
        "digest": digest(tag or path),
        "encoding": "identity",
        "role": role,
    }


def _common(name: str, files: list[dict[str, Any]]) -> Doc:
    files = [
        *files,
        _file("card/MODEL_CARD.md", "card"),
        _file("environment/requirements.lock", "environment"),
        _file("example/example.json", "example"),
        _file("lineage/metrics.json", "lineage"),
        _file("lineage/params.yaml", "lineage"),
    ]
    files.sort(key=lambda f: f["path"].encode())
    return {
        "format_version": 1,
        "name": name,
        "version": "1.0.0",
        "description": "A test model.",
        "environment": {
            "lockfile": "environment/requirements.lock",
            "kind": "requirements",
            "requires_python": ">=3.10",
            "packages": [
                {"name": "numpy", "version": "1.26.4"},
                {"name": "onnxruntime", "version": "1.17.1"},
                {"name": "scipy", "version": "0.13.2"},
            ],
        },
        "card": {
            "path": "card/MODEL_CARD.md",
            "metadata": {"license": "apache-2.0", "tags": ["iris"]},
        },
        "example": {"path": "example/example.json", "rtol": 1e-5, "atol": 1e-6},
        "lineage": {
            "git": {"commit": "a" * 40, "dirty": False},
            "data": [{"path": "data/iris.csv", "md5": "0" * 32}],
            "params": {"epochs": 50, "lr": 0.01},
            "metrics": {"accuracy": 0.97, "f1": 0.96},
            "builder": {"mpkg": "0.1.0", "python": "3.11", "platform": "linux-x86_64"},
        },
        "files": files,
    }


def onnx_manifest() -> Doc:
    """An iris-like ONNX package: features float32[batch, 4] -> label, probabilities."""
    doc = _common(
        "iris-mlp",
        [_file("model/model.onnx", "weights", "onnx-v1", 4096), _file("code/pipeline.py", "code")],
    )
    doc["model"] = {
        "format": "onnx",
        "files": ["model/model.onnx"],
        "architecture": {
            "kind": "onnx",
            "ir_version": 9,
            "opset_imports": {"ai.onnx": 17},
            "operators": {"Gemm": 2, "Relu": 1, "Softmax": 1, "ArgMax": 1},
            "graph_digest": "sha256:" + "1" * 64,
            "initializers": [
                {"name": "fc1.weight", "dtype": "float32", "shape": [16, 4]},
                {"name": "fc1.bias", "dtype": "float32", "shape": [16]},
                {"name": "fc2.weight", "dtype": "float32", "shape": [3, 16]},
                {"name": "fc2.bias", "dtype": "float32", "shape": [3]},
            ],
        },
    }
    doc["code"] = {
        "root": "code",
        "module": "pipeline",
        "entry_points": {"postprocess": ["outputs"]},
    }
    doc["contract"] = {
        "inputs": [
            {"name": "features", "dtype": "float32", "shape": ["batch", 4], "description": "cm"},
            {
                "name": "species_hint",
                "dtype": "string",
                "shape": ["batch"],
                "optional": True,
                "enum": ["setosa", "versicolor", "virginica"],
            },
        ],
        "outputs": [
            {"name": "label", "dtype": "int64", "shape": ["batch"], "enum": [0, 1, 2]},
            {"name": "probabilities", "dtype": "float32", "shape": ["batch", 3]},
        ],
    }
    Manifest.from_json(doc)
    return doc


def safetensors_manifest() -> Doc:
    """A churn-like safetensors package with a predict(weights, inputs) entry point."""
    doc = _common(
        "churn-tabular",
        [
            _file("model/weights.safetensors", "weights", "st-v1", 8192),
            _file("code/model.py", "code"),
        ],
    )
    doc["model"] = {
        "format": "safetensors",
        "files": ["model/weights.safetensors"],
        "architecture": {
            "kind": "safetensors",
            "tensors": [
                {
                    "file": "model/weights.safetensors",
                    "name": "coef",
                    "dtype": "float32",
                    "shape": [8],
                },
                {
                    "file": "model/weights.safetensors",
                    "name": "intercept",
                    "dtype": "float32",
                    "shape": [1],
                },
            ],
        },
    }
    doc["code"] = {
        "root": "code",
        "module": "model",
        "entry_points": {"predict": ["weights", "inputs"]},
    }
    doc["contract"] = {
        "inputs": [
            {"name": "tenure", "dtype": "int32", "shape": [-1]},
            {
                "name": "plan",
                "dtype": "string",
                "shape": [-1],
                "nullable": True,
                "enum": ["basic", "pro"],
            },
        ],
        "outputs": [{"name": "churn", "dtype": "float32", "shape": [-1]}],
    }
    Manifest.from_json(doc)
    return doc


def onnx_split_manifest() -> Doc:
    """A converted classifier as the builder records it now: the learned/structure split of
    spec/semver.md §4.1 (structure and weights digests, class labels, producer), an
    external-data file, and a card whose author text has its own digest."""
    doc = onnx_manifest()
    doc["files"].append(_file("model/model.onnx.data", "weights", "data-v1", 8192))
    doc["files"].sort(key=lambda f: f["path"].encode())
    doc["model"]["architecture"].update(
        {
            "structure_digest": digest("structure-v1"),
            "weights_digest": digest("weights-v1"),
            "class_labels": [[0, 1, 2]],
            "producer": {"name": "skl2onnx", "version": "1.20.0"},
        }
    )
    doc["card"]["author_digest"] = digest("author-v1")
    Manifest.from_json(doc)
    return doc


def graph_interface(x_dtype: str = "float32") -> dict[str, Any]:
    """The graph's own inputs and outputs, as the builder records them in model.architecture."""
    return {
        "inputs": [{"name": "X", "dtype": x_dtype, "shape": ["N", 4]}],
        "outputs": [
            {"name": "label", "dtype": "int64", "shape": ["N"]},
            {"name": "probabilities", "dtype": "float32", "shape": ["N", 3]},
        ],
    }


def onnx_interface_manifest() -> Doc:
    """A package whose preprocess adapts its contract to the graph: the graph interface is
    recorded apart from the contract (spec/semver.md §4)."""
    doc = onnx_split_manifest()
    doc["model"]["architecture"]["interface"] = graph_interface()
    doc["code"]["entry_points"]["preprocess"] = ["inputs"]
    Manifest.from_json(doc)
    return doc


FACTORIES: dict[str, Callable[[], Doc]] = {
    "onnx": onnx_manifest,
    "onnx-split": onnx_split_manifest,
    "onnx-interface": onnx_interface_manifest,
    "safetensors": safetensors_manifest,
}


def mutate(doc: Doc, change: Callable[[Doc], None]) -> Doc:
    """A changed deep copy, still a valid manifest (checked)."""
    out = copy.deepcopy(doc)
    change(out)
    out["files"].sort(key=lambda f: f["path"].encode())
    Manifest.from_json(out)
    return out


def field_of(doc: Doc, side: str, name: str) -> dict[str, Any]:
    return next(f for f in doc["contract"][side] if f["name"] == name)


def file_of(doc: Doc, path: str) -> dict[str, Any]:
    return next(f for f in doc["files"] if f["path"] == path)
