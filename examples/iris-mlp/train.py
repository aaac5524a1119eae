"""Train a small MLP on the iris data with plain numpy and write model.onnx.

Deterministic: fixed seed, full-batch gradient descent in float64, weights rounded to
float32 before export, so rerunning on the same platform rewrites identical bytes.
The committed model.onnx means the demo needs no training; run this to regenerate:

    python examples/iris-mlp/train.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
SPECIES = ("setosa", "versicolor", "virginica")
PARAMS: dict[str, Any] = {
    "hidden": 16,
    "epochs": 2000,
    "learning_rate": 0.1,
    "l2": 0.0001,
    "seed": 0,
    "test_every": 5,
}


def load() -> tuple[np.ndarray, np.ndarray]:
    with (HERE / "data" / "iris.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = np.array([[float(r[k]) for k in ("sepal_length", "sepal_width", "petal_length", "petal_width")] for r in rows])
    y = np.array([SPECIES.index(r["species"]) for r in rows])
    return x, y


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def train(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(PARAMS["seed"])
    h = PARAMS["hidden"]
    w1 = rng.normal(0, 1 / np.sqrt(4), (4, h))
    b1 = np.zeros(h)
    w2 = rng.normal(0, 1 / np.sqrt(h), (h, 3))
    b2 = np.zeros(3)
    onehot = np.eye(3)[y]
    lr, l2 = PARAMS["learning_rate"], PARAMS["l2"]
    for _ in range(PARAMS["epochs"]):
        a1 = x @ w1 + b1
        z1 = np.maximum(a1, 0)
        p = softmax(z1 @ w2 + b2)
        g2 = (p - onehot) / len(x)
        gw2 = z1.T @ g2 + l2 * w2
        gb2 = g2.sum(axis=0)
        g1 = (g2 @ w2.T) * (a1 > 0)
        gw1 = x.T @ g1 + l2 * w1
        gb1 = g1.sum(axis=0)
        w1, b1, w2, b2 = w1 - lr * gw1, b1 - lr * gb1, w2 - lr * gw2, b2 - lr * gb2
    return {"W1": w1, "B1": b1, "W2": w2, "B2": b2}


def forward(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    z1 = np.maximum(x @ weights["W1"] + weights["B1"], 0)
    return softmax(z1 @ weights["W2"] + weights["B2"])


def build_model(weights: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in sorted(weights.items())]
    inits += [
        numpy_helper.from_array(mean.astype(np.float32), "MEAN"),
        numpy_helper.from_array(std.astype(np.float32), "STD"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "MEAN"], ["centred"], name="centre"),
        helper.make_node("Div", ["centred", "STD"], ["scaled"], name="scale"),
        helper.make_node("MatMul", ["scaled", "W1"], ["h_mm"], name="dense1"),
        helper.make_node("Add", ["h_mm", "B1"], ["h_pre"], name="bias1"),
        helper.make_node("Relu", ["h_pre"], ["h"], name="relu1"),
        helper.make_node("MatMul", ["h", "W2"], ["logits_mm"], name="dense2"),
        helper.make_node("Add", ["logits_mm", "B2"], ["logits"], name="bias2"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
        helper.make_node("ArgMax", ["logits"], ["label"], name="argmax", axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "iris_mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mpkg-examples")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    x, y = load()
    test = np.arange(len(x)) % PARAMS["test_every"] == 0
    mean, std = x[~test].mean(axis=0), x[~test].std(axis=0)
    weights = train((x[~test] - mean) / std, y[~test])
    weights = {k: v.astype(np.float32).astype(np.float64) for k, v in weights.items()}
    probs = forward(weights, (x - mean) / std)
    pred = probs.argmax(axis=1)
    metrics = {
        "accuracy": {
            "train": round(float((pred[~test] == y[~test]).mean()), 4),
            "test": round(float((pred[test] == y[test]).mean()), 4),
        },
        "log_loss": {"test": round(float(-np.log(probs[test, y[test]]).mean()), 4)},
    }
    model = build_model(weights, mean, std)
    (HERE / "model.onnx").write_bytes(model.SerializeToString(deterministic=True))
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main()
