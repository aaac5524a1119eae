"""Real .mpkg files for runtime tests, written with the canonical writer.

Until ``mpkg_builder.build.build_package`` can build the examples end to end, tests need
packages with exact, hand-chosen contents (e.g. code that writes a marker at import), so
this writes them directly: ArchiveWriter + Manifest + a real Ed25519 signature.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from mpkg._internal.format.manifest import Manifest
from mpkg_builder.signing import envelope_for, keygen, load_private_key
from mpkg_builder.writer import ArchiveWriter
from onnx import TensorProto, helper, numpy_helper

CARD = b"---\nlicense: apache-2.0\n---\n# Test model\n\nFor tests only.\n"


def write_package(
    out: Path,
    *,
    name: str,
    model_format: str,
    model_files: Mapping[str, bytes],
    contract: Mapping[str, Any],
    code: Mapping[str, bytes] | None = None,
    module: str | None = None,
    entry_points: Mapping[str, list[str]] | None = None,
    example: Mapping[str, Any] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    packages: list[dict[str, str]] | None = None,
    requires_python: str | None = None,
    key: Path | None = None,
    version: str = "1.0.0",
) -> Manifest:
    """Write a package; ``model_files``/``code`` keys are paths under model/ and code/."""
    files: list[tuple[str, bytes, str]] = []
    for path, data in model_files.items():
        files.append((f"model/{path}", data, "weights"))
    for path, data in (code or {}).items():
        files.append((f"code/{path}", data, "code"))
    files.append(("card/MODEL_CARD.md", CARD, "card"))
    files.append(("environment/requirements.lock", b"numpy==2.0.0\n", "environment"))
    if example is not None:
        files.append(("example/example.json", json.dumps(example).encode(), "example"))
    files.sort(key=lambda f: f[0].encode())
    env: dict[str, Any] = {
        "lockfile": "environment/requirements.lock",
        "kind": "requirements",
        "packages": packages or [],
    }
    if requires_python:
        env["requires_python"] = requires_python
    doc: dict[str, Any] = {
        "format_version": 1,
        "name": name,
        "version": version,
        "description": "test package",
        "model": {"format": model_format, "files": [f"model/{p}" for p in model_files]},
        "contract": dict(contract),
        "environment": env,
        "card": {"path": "card/MODEL_CARD.md", "metadata": {"license": "apache-2.0"}},
    }
    if module is not None:
        doc["code"] = {"root": "code", "module": module, "entry_points": dict(entry_points or {})}
    if example is not None:
        doc["example"] = {"path": "example/example.json", "rtol": rtol, "atol": atol}
    buf = io.BytesIO()
    writer = ArchiveWriter(buf)
    entries = [writer.add_bytes(p, d, role) for p, d, role in files]
    doc["files"] = [e.to_json() for e in entries]
    manifest = Manifest.from_json(doc)
    signatures = envelope_for(manifest, load_private_key(key)).to_bytes() if key else None
    writer.finish(manifest.to_bytes(), signatures)
    out.write_bytes(buf.getvalue())
    return manifest


def make_key(folder: Path, name: str = "signer") -> tuple[Path, Path]:
    """(private key, public key) paths of a fresh Ed25519 key pair."""
    pair = keygen(folder / name)
    return pair.private_path, pair.public_path


def gemm_onnx(
    weight: np.ndarray,
    bias: np.ndarray,
    in_name: str = "x",
    out_name: str = "y",
    external: str | None = None,
    folder: Path | None = None,
) -> tuple[bytes, bytes | None]:
    """A one-Gemm ONNX model y = x @ W + b; with ``external``, initializers live in that file."""
    graph = helper.make_graph(
        [helper.make_node("Gemm", [in_name, "W", "B"], [out_name])],
        "g",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["batch", weight.shape[0]])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", weight.shape[1]])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    if external is None:
        return model.SerializeToString(), None
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        model,
        str(folder / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=external,
        size_threshold=0,
    )
    return (folder / "model.onnx").read_bytes(), (folder / external).read_bytes()


def safetensors_bytes(tensors: Mapping[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save(dict(tensors))
