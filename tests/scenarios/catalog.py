"""Failure-mode scenarios: tiny build sources that must each be refused for one reason.

Each folder next to this file holds the text parts of one source; binary files (ONNX
models, safetensors, pickles) and filesystem tricks (symlinks, hardlinks) are made by
:func:`materialise`, so nothing hostile is committed. ``SCENARIOS`` maps each scenario
to a substring of the one-line reason the build must give.

Usage (from any test)::

    src = materialise("unpinned-lockfile", tmp_path)
    with pytest.raises(SourceError) as exc: build(src, ...)
    assert SCENARIOS["unpinned-lockfile"] in exc.value.diagnostics()
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCENARIOS: dict[str, str] = {
    "bad-toml-key": "unknown key 'fromat'",
    "card-missing-section": "missing section 'Ethical considerations'",
    "contract-disagrees-with-graph": "declared float64 but the graph has float32",
    "diff-rule-misspelt": "did you mean 'weights-changed'?",
    "example-names-unknown-input": "inputs.z is not in the contract",
    "lockfile-partial-hashes": "has no --hash while other lines do",
    "metrics-not-finite": "NaN is not valid JSON",
    "missing-file": "'MODEL_CARD.md' does not exist in the source folder",
    "onnx-external-data-hardlink": "is a hardlink",
    "onnx-external-data-symlink": "leaves the model folder",
    "onnx-external-data-traversal": "contains '..'",
    "path-escapes-source-via-symlink": "resolves outside the source folder",
    "pickle-disguised-as-safetensors": "is a Python pickle",
    "pytorch-checkpoint-disguised-as-onnx": "is a PyTorch checkpoint",
    "safetensors-duplicate-tensor-name": "duplicate tensor name 'w'",
    "safetensors-gap": "gap of 4 bytes",
    "safetensors-without-contract": "is required for safetensors models",
    "unpinned-lockfile": "is not pinned",
    "version-not-semver": "is not a SemVer 2.0.0 version",
}

# Sources that pass every static check but break the chain the build runs on the example
# (contract -> preprocess -> graph inputs -> graph -> graph outputs -> postprocess -> contract):
# refused by `mpkg build` naming the boundary, one line each.
CHAIN_SCENARIOS: dict[str, str] = {
    "postprocess-breaks-contract": "postprocess → contract outputs: output 'probability benign'",
    "preprocess-feeds-wrong-dtype": "preprocess → graph inputs: 'X' is float64 [2, 2]; the graph takes float32",
    "preprocess-feeds-wrong-shape": "preprocess → graph inputs: 'X' is float32 [2, 1]; the graph takes float32 [None, 2]",  # noqa: E501
}

WEIGHT = [[0.5], [2.0]]  # the tiny model: y = x @ WEIGHT, x float32 [batch, 2]


def tiny_onnx(external_location: str | None = None) -> bytes:
    """A valid MatMul model; with ``external_location`` its weight points at external data.

    Serialised directly (not with onnx.save, which refuses hostile locations).
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array(WEIGHT, dtype=np.float32), "W")
    if external_location is not None:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for key, value in (("location", external_location), ("offset", "0"), ("length", "8")):
            entry = w.external_data.add()
            entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


def breast_cancer_onnx(columns: Sequence[str], input_name: str = "X") -> bytes:
    """A real scikit-learn pipeline (scaler + logistic regression) fitted on these columns of
    scikit-learn's breast-cancer data, converted by skl2onnx: input ``input_name`` float32 [N, len(columns)],
    outputs ``label`` int64 [N] and ``probabilities`` float32 [N, 2] (ZipMap off)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    x = data.frame[list(columns)].to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, data.target)
    onx = convert_sklearn(
        model,
        initial_types=[(input_name, FloatTensorType([None, len(columns)]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    out: bytes = onx.SerializeToString()
    return out


def _breast_cancer(dest: Path) -> None:
    (dest / "model.onnx").write_bytes(breast_cancer_onnx(("mean radius", "mean texture")))


def weight_bytes() -> bytes:
    return struct.pack("<2f", *(v[0] for v in WEIGHT))


def safetensors_bytes(header: Mapping[str, object] | str, data: bytes) -> bytes:
    """A safetensors file from a header (a dict, or raw JSON text for malformed ones)."""
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _model(dest: Path) -> None:
    (dest / "model.onnx").write_bytes(tiny_onnx())


def _external(location: str) -> Callable[[Path], None]:
    def make(dest: Path) -> None:
        (dest / "model").mkdir(exist_ok=True)
        (dest / "model" / "model.onnx").write_bytes(tiny_onnx(location))

    return make


def _traversal(dest: Path) -> None:
    _external("../weights.bin")(dest)  # CVE-2022-25882
    (dest / "weights.bin").write_bytes(weight_bytes())


def _symlink(dest: Path) -> None:
    _external("weights.bin")(dest)  # CVE-2026-27489 / CVE-2026-34447
    outside = dest.parent / f"{dest.name}-outside-secret.bin"
    outside.write_bytes(weight_bytes())
    os.symlink(outside, dest / "model" / "weights.bin")


def _hardlink(dest: Path) -> None:
    _external("weights.bin")(dest)  # CVE-2026-34446
    outside = dest.parent / f"{dest.name}-outside-secret.bin"
    outside.write_bytes(weight_bytes())
    os.link(outside, dest / "model" / "weights.bin")


def _card_symlink(dest: Path) -> None:
    _model(dest)
    outside = dest.parent / f"{dest.name}-outside-card.md"
    shutil.copyfile(HERE / "unpinned-lockfile" / "MODEL_CARD.md", outside)
    os.symlink(outside, dest / "MODEL_CARD.md")


def _pickled_weights(dest: Path) -> None:
    payload = pickle.dumps({"w": [0.5, 2.0]}, protocol=4)  # harmless content, hostile format
    (dest / "weights.safetensors").write_bytes(payload)


def _torch_zip(dest: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": [0.5, 2.0]}, protocol=2))
        zf.writestr("archive/version", "3\n")
    (dest / "model.onnx").write_bytes(buf.getvalue())


def _duplicate_names(dest: Path) -> None:
    entry = '{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}'
    text = '{"w":' + entry + ',"w":' + entry + "}"
    (dest / "weights.safetensors").write_bytes(safetensors_bytes(text, weight_bytes()))


def _gap(dest: Path) -> None:
    header = {
        "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
    }
    (dest / "weights.safetensors").write_bytes(safetensors_bytes(header, bytes(12)))


def _valid_safetensors(dest: Path) -> None:
    header = {"w": {"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]}}
    (dest / "weights.safetensors").write_bytes(safetensors_bytes(header, weight_bytes()))


_HOOKS: dict[str, Callable[[Path], None]] = {
    "bad-toml-key": _model,
    "diff-rule-misspelt": _model,
    "card-missing-section": _model,
    "contract-disagrees-with-graph": _model,
    "example-names-unknown-input": _model,
    "lockfile-partial-hashes": _model,
    "metrics-not-finite": _model,
    "missing-file": _model,
    "onnx-external-data-hardlink": _hardlink,
    "onnx-external-data-symlink": _symlink,
    "onnx-external-data-traversal": _traversal,
    "path-escapes-source-via-symlink": _card_symlink,
    "pickle-disguised-as-safetensors": _pickled_weights,
    "pytorch-checkpoint-disguised-as-onnx": _torch_zip,
    "safetensors-duplicate-tensor-name": _duplicate_names,
    "safetensors-gap": _gap,
    "safetensors-without-contract": _valid_safetensors,
    "unpinned-lockfile": _model,
    "version-not-semver": _model,
    **{name: _breast_cancer for name in CHAIN_SCENARIOS},
}


def materialise(name: str, tmp: Path) -> Path:
    """Copy scenario ``name`` into ``tmp/name``, add its runtime-made files, return the folder.

    Files made outside the source (symlink and hardlink targets) go next to it in ``tmp``.
    """
    if name not in SCENARIOS and name not in CHAIN_SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {sorted([*SCENARIOS, *CHAIN_SCENARIOS])}")
    dest = tmp / name
    shutil.copytree(HERE / name, dest)
    _HOOKS[name](dest)
    return dest
