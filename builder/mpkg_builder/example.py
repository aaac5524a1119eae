"""The smoke-test example: run the model from source once and record what it produced.

The recorded outputs let `mpkg verify --run` and `mpkg serve` refuse a package
that no longer computes what it computed at build time (a broken environment,
a different onnxruntime, a corrupted dependency).
"""

from __future__ import annotations

import mmap
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpkg._internal.contract.contract import Contract
from mpkg._internal.format import canonical
from mpkg._internal.load.model import Model
from mpkg._internal.load.parts import ModelParts, OnnxModel
from mpkg._internal.load.weights import open_safetensors
from mpkg.errors import MpkgError, SourceError

from .sources.validate import ValidatedSource

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6


@dataclass(frozen=True)
class ExampleFile:
    """example/example.json as the package stores it, and the tolerances the manifest records:
    what the build writes (the runtime parses it back as :class:`mpkg._internal.load.parts.Example`)."""

    data: bytes  # canonical JSON
    rtol: float
    atol: float


def record_example(source: ValidatedSource, document: Mapping[str, Any]) -> ExampleFile:
    """Run the model from source on the example inputs and record its outputs, so a package that
    later computes something else is refused."""
    cfg = source.config
    where = cfg.example.file if cfg.example else "example (generated from the contract)"
    rtol = cfg.example.rtol if cfg.example and cfg.example.rtol is not None else DEFAULT_RTOL
    atol = cfg.example.atol if cfg.example and cfg.example.atol is not None else DEFAULT_ATOL
    inputs = source.example["inputs"] if source.example else None
    try:
        with _model_from_source(source, document) as model:
            doc = model.record_example(inputs)
    except MpkgError as exc:
        raise SourceError(f"running the example failed: {exc.reasons()[0]}", where) from None
    except Exception as exc:  # package code is the author's: report, never a traceback
        reason = f"running the example failed in the package code: {type(exc).__name__}: {exc}"
        raise SourceError(reason, where) from None
    try:
        data = canonical.dumps(doc)
    except (TypeError, ValueError) as exc:
        raise SourceError(f"the example's values have no JSON form ({exc})", where) from None
    return ExampleFile(data, float(rtol), float(atol))


def _model_from_source(source: ValidatedSource, document: Mapping[str, Any]) -> Model:
    cfg = source.config
    contract = Contract.from_json(document["contract"])
    code_files: dict[str, bytes] = {}
    code = document.get("code")
    if cfg.code is not None:
        root = cfg.code.root.rstrip("/")
        for rel in source.code_files:
            code_files[Path(rel).relative_to(root).as_posix()] = cfg.path(rel).read_bytes()
    weights: Any
    if cfg.model.format == "onnx":
        rel = cfg.model.files[0]
        folder = posixpath.dirname(rel)
        assert source.onnx is not None
        external = {
            posixpath.relpath(extra, folder or "."): _map(cfg.path(extra)) for extra in source.onnx.external_data
        }
        weights = OnnxModel(cfg.path(rel).read_bytes(), external)
    else:
        weights = open_safetensors([cfg.path(rel) for rel in cfg.model.files])
    return Model(
        ModelParts(
            name=document["name"],
            version=document["version"],
            digest="",
            contract=contract,
            model_format=cfg.model.format,
            weights=weights,
            code_files=code_files,
            code_module=code["module"] if code else None,
            entry_points=code["entry_points"] if code else None,
        )
    )


def _map(path: Path) -> mmap.mmap | bytes:
    """External data mapped read-only (b"" for an empty file, which mmap refuses)."""
    with open(path, "rb") as f:
        if not f.seek(0, 2):
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


__all__ = ["ExampleFile", "record_example"]
