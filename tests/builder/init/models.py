"""Sources for `mpkg init`, made by the real libraries users have.

Run as a script (``python models.py DEST``) so MLflow, scikit-learn and skl2onnx load in
their own process, with their own warnings: every kind is written into ``DEST/<kind>``.

- ``onnx/model.onnx``: a scikit-learn pipeline converted by skl2onnx;
- ``safetensors/``: an MLP's weights written by safetensors, with predict.py and contract.json;
- ``hf/``: the same weights as a Hugging Face-style folder (config.json, two shards and their
  index, README.md with front matter, a pickle checkpoint and a tokenizer file beside them);
- ``mlflow-onnx/``: ``mlflow.onnx.save_model`` of an skl2onnx graph (external data, input example);
- ``mlruns/``: ``mlflow.sklearn.log_model`` into a file store, a column signature with a string,
  an integer and a float column, params and metrics (``MLFLOW_RUN_MODEL`` names the model folder);
- ``mlflow-tensor/``: ``mlflow.sklearn.save_model`` with a numpy (tensor) signature;
- ``mlflow-pyfunc/``: a plain python_function model (cloudpickle), refused;
- ``mlflow-cloudpickle/``: an sklearn flavour saved as cloudpickle, refused.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

SPECIES = 3
HIDDEN = 8

PREDICT_PY = '''\
"""An MLP over four iris measurements: relu(x W0^T + b0) W2^T + b2, then softmax."""

import numpy as np


def predict(weights, inputs):
    x = np.asarray(inputs["features"], dtype=np.float32)
    h = np.maximum(x @ weights["mlp.0.weight"].T + weights["mlp.0.bias"], 0)
    z = h @ weights["mlp.2.weight"].T + weights["mlp.2.bias"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return {"probabilities": (e / e.sum(axis=1, keepdims=True)).astype(np.float32)}
'''
CONTRACT = {
    "inputs": [{"name": "features", "dtype": "float32", "shape": ["batch", 4], "description": "sepal and petal, cm"}],
    "outputs": [{"name": "probabilities", "dtype": "float32", "shape": ["batch", SPECIES]}],
}
README = """---
license: apache-2.0
library_name: numpy
tags: [tabular-classification, iris]
datasets: [iris]
---

# iris-mlp-hf

A small MLP classifying iris flowers, laid out as the Hugging Face Hub lays out a model.

## Intended uses & limitations

Teaching only.

## Training data

Fisher's iris data, 150 rows.
"""


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def mlp_weights() -> dict[str, np.ndarray]:
    from sklearn.neural_network import MLPClassifier

    x, y = iris()
    mlp = MLPClassifier(hidden_layer_sizes=(HIDDEN,), max_iter=2000, random_state=0).fit(x, y)
    return {
        "mlp.0.weight": mlp.coefs_[0].T.astype(np.float32).copy(),
        "mlp.0.bias": mlp.intercepts_[0].astype(np.float32),
        "mlp.2.weight": mlp.coefs_[1].T.astype(np.float32).copy(),
        "mlp.2.bias": mlp.intercepts_[1].astype(np.float32),
    }


def write_onnx(dest: Path) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    onx = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, 4]))], options={"zipmap": False})
    dest.mkdir(parents=True)
    (dest / "model.onnx").write_bytes(onx.SerializeToString())


def write_safetensors(dest: Path, weights: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    dest.mkdir(parents=True)
    save_file(weights, str(dest / "weights.safetensors"))
    (dest / "predict.py").write_text(PREDICT_PY)
    (dest / "contract.json").write_text(json.dumps(CONTRACT, indent=2))


def write_hf(dest: Path, weights: dict[str, np.ndarray]) -> None:
    import pickle

    from safetensors.numpy import save_file

    dest.mkdir(parents=True)
    shards = {
        "model-00001-of-00002.safetensors": ["mlp.0.weight", "mlp.0.bias"],
        "model-00002-of-00002.safetensors": ["mlp.2.weight", "mlp.2.bias"],
    }
    weight_map = {}
    for shard, names in shards.items():
        save_file({n: weights[n] for n in names}, str(dest / shard), metadata={"format": "pt"})
        weight_map.update({n: shard for n in names})
    total = sum(int(w.nbytes) for w in weights.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (dest / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config = {"architectures": ["IrisMLP"], "model_type": "iris-mlp", "hidden_size": HIDDEN, "torch_dtype": "float32"}
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    (dest / "README.md").write_text(README)
    (dest / "tokenizer.json").write_text("{}")
    (dest / "pytorch_model.bin").write_bytes(pickle.dumps({"not": "loaded"}))


def write_mlflow(root: Path) -> None:
    import mlflow
    import mlflow.onnx
    import mlflow.pyfunc
    import mlflow.sklearn
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    # Explicit requirements: MLflow would otherwise infer them by importing the model in a subprocess.
    onnx_reqs = [f"onnx=={version('onnx')}", f"onnxruntime=={version('onnxruntime')}"]
    sk_reqs = [f"scikit-learn=={version('scikit-learn')}", f"skops=={version('skops')}"]
    x, y = iris()
    mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=2000, random_state=0).fit(x, y)
    onx = convert_sklearn(mlp, initial_types=[("features", FloatTensorType([None, 4]))], options={"zipmap": False})
    example = {"features": x[:3]}
    mlflow.onnx.save_model(onx, str(root / "mlflow-onnx"), input_example=example, pip_requirements=onnx_reqs)

    lr = LogisticRegression(max_iter=500).fit(x.astype(np.float64), y)
    mlflow.sklearn.save_model(
        lr, str(root / "mlflow-tensor"), input_example=x[:4].astype(np.float64), pip_requirements=sk_reqs
    )
    mlflow.sklearn.save_model(
        lr, str(root / "mlflow-cloudpickle"), serialization_format="cloudpickle", pip_requirements=sk_reqs
    )

    class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    mlflow.pyfunc.save_model(str(root / "mlflow-pyfunc"), python_model=Echo(), pip_requirements=["numpy"])

    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "tenure months": rng.uniform(0, 72, n),
            "plan": rng.choice(["basic", "standard", "premium"], n),
            "support calls": rng.integers(0, 8, n),
        }
    )
    churn = ((frame["support calls"] > 3) | (frame["tenure months"] < 6)).astype(int)
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["tenure months", "support calls"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, churn)
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    mlflow.set_tracking_uri((root / "mlruns").as_uri())
    with mlflow.start_run(run_name="churn-trial") as run:
        mlflow.log_params({"C": 1.0, "max_iter": 500})
        mlflow.log_metric("accuracy", 0.81, step=0)
        mlflow.log_metric("accuracy", 0.87, step=1)
        info = mlflow.sklearn.log_model(pipeline, name="churn", input_example=frame.head(3), pip_requirements=sk_reqs)
    model_dir = next((root / "mlruns").rglob("MLmodel")).parent
    (root / "MLFLOW_RUN").write_text(json.dumps({"run_id": run.info.run_id, "model": str(model_dir)}))
    del info


def main(dest: Path) -> None:
    warnings.simplefilter("ignore")
    write_onnx(dest / "onnx")
    weights = mlp_weights()
    write_safetensors(dest / "safetensors", weights)
    write_hf(dest / "hf", weights)
    write_mlflow(dest)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
