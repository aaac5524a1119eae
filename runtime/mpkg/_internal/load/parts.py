"""The parts a :class:`~mpkg._internal.load.model.Model` is made of, as frozen data.

A model is built the same way from a verified package (``mpkg.load``) and from a source
folder (the builder records the example's outputs before the package exists): both fill in a
:class:`ModelParts`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mpkg._internal.contract.contract import Contract
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.load.weights import TensorMap
from mpkg.errors import FormatError


@dataclass(frozen=True)
class ModelCard:
    """The model card's text and the metadata the manifest records for it (``Model.card``)."""

    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Example:
    """The stored input example and the outputs the builder recorded for it."""

    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    rtol: float = 1e-5
    atol: float = 1e-6
    where: str = "example/example.json"

    @classmethod
    def from_bytes(cls, data: bytes, rtol: float, atol: float, where: str) -> Example:
        """Parse example.json strictly: a package's bytes are untrusted even after verification."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FormatError(f"is not valid JSON ({exc})", where) from None
        if (
            not isinstance(doc, dict)
            or set(doc) != {"inputs", "outputs"}
            or not all(isinstance(doc[k], dict) for k in doc)
        ):
            raise FormatError('must be {"inputs": {name: data}, "outputs": {name: data}}', where)
        return cls(doc["inputs"], doc["outputs"], float(rtol), float(atol), where)


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX model's bytes and its external data files, by the location the model uses
    (relative to the model file's folder). Buffers may be memoryviews over a mmap."""

    model: bytes
    external: Mapping[str, Any] = field(default_factory=dict)


Weights = OnnxModel | TensorMap


@dataclass(frozen=True)
class ModelParts:
    """Everything a model is made of, with or without a package: the one argument list of ``Model``.

    ``code_files`` maps paths relative to the code root to bytes; ``code_location`` is where they
    appear to be (``__file__``); ``entry_points`` None means: whichever of
    preprocess/postprocess/predict the module defines. ``keepalive`` holds what the weights
    refer to (the map, the open file) until the model is closed."""

    name: str
    version: str
    digest: str
    contract: Contract
    model_format: str
    weights: Weights
    code_files: Mapping[str, bytes] = field(default_factory=dict)
    code_module: str | None = None
    code_location: str | None = None
    entry_points: Mapping[str, Sequence[str]] | None = None
    card: ModelCard | None = None
    example: Example | None = None
    manifest: Manifest | None = None
    keepalive: tuple[object, ...] = ()


__all__ = ["Example", "ModelCard", "ModelParts", "OnnxModel", "Weights"]
