"""MLflow's model folder, read as hostile input: the MLmodel file and its signature.

MLmodel is YAML (parsed safely, without aliases, capped at 1 MiB); its signature holds
JSON strings (parsed strictly). Identifiers recorded in lineage are checked against the
forms MLflow writes, so nothing else rides along into a package's manifest. Nothing here
imports mlflow or loads a model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mpkg.errors import ProblemCollector, SourceError

from .reading import MiB, load_json, load_yaml, read_capped, short_text

MLMODEL = "MLmodel"
_IDS: Mapping[str, re.Pattern[str]] = {
    "run_id": re.compile(r"^[0-9a-f]{32}$"),
    "model_uuid": re.compile(r"^(m-)?[0-9a-f]{32}$"),
    "model_id": re.compile(r"^m-[0-9a-f]{32}$"),
    "utc_time_created": re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?$"),
    "mlflow_version": re.compile(r"^[0-9][0-9A-Za-z.+-]{0,31}$"),
}
# MLflow column types -> contract dtypes (None: no tensor form; refused).
COLUMN_TYPES: Mapping[str, str | None] = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "string",
    "binary": None,
    "datetime": None,
}
# numpy dtype names in MLflow tensor specs -> contract dtypes.
TENSOR_TYPES: Mapping[str, str] = {
    **{t: t for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")},
    **{t: t for t in ("float16", "float32", "float64")},
    "object": "string",
    "str": "string",
}
_MAX_FIELDS = 10_000


@dataclass(frozen=True)
class ColumnSpec:
    """One named column of a column-based MLflow signature."""

    name: str
    type: str  # an MLflow type (COLUMN_TYPES)
    required: bool = True


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a tensor-based MLflow signature."""

    name: str | None
    dtype: str  # a contract dtype
    shape: tuple[int, ...]  # -1 for any size


@dataclass(frozen=True)
class Signature:
    """An MLflow signature, read strictly, as init maps it to a contract."""

    kind: Literal["columns", "tensors"]
    columns: tuple[ColumnSpec, ...] = ()
    tensors: tuple[TensorSpec, ...] = ()
    outputs: str = ""  # a one-line summary of what MLflow says predict returns
    has_params: bool = False


@dataclass(frozen=True)
class MLModel:
    """The parts of an MLmodel file init uses."""

    folder: Path
    flavors: Mapping[str, Mapping[str, Any]]
    ids: Mapping[str, str]  # run_id, model_uuid, model_id, utc_time_created, mlflow_version (when given)
    signature: Signature | None
    example_info: Mapping[str, Any] | None = field(default=None)

    def where(self, key: str = "") -> str:
        """Where a key of this MLmodel is, for one-line messages."""
        return f"{self.folder.name}/{MLMODEL}" + (f": {key}" if key else "")


def read_mlmodel(folder: Path) -> MLModel:
    """Read and check an MLmodel file (YAML, capped, no aliases)."""
    where = f"{folder.name}/{MLMODEL}"
    doc = load_yaml(read_capped(folder / MLMODEL, where, MiB), where)
    if not isinstance(doc, dict):
        raise SourceError("must be a YAML mapping", where)
    flavors = doc.get("flavors")
    if not isinstance(flavors, dict) or not flavors or not all(isinstance(v, dict) for v in flavors.values()):
        raise SourceError("has no 'flavors' mapping; is this an MLflow model folder?", f"{where}: flavors")
    problems = ProblemCollector()
    ids: dict[str, str] = {}
    for key, pattern in _IDS.items():
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not pattern.match(value):
            problems.add(f"{where}: {key}", f"{str(value)[:80]!r} is not an MLflow {key}")
        else:
            ids[key] = value
    signature = None
    if isinstance(doc.get("signature"), dict):
        try:
            signature = _signature(doc["signature"], f"{where}: signature")
        except SourceError as exc:
            problems.extend(exc.problems)
    info = doc.get("saved_input_example_info")
    problems.raise_if_any(SourceError)
    return MLModel(folder, flavors, ids, signature, info if isinstance(info, dict) else None)


def _signature(sig: Mapping[str, Any], where: str) -> Signature | None:
    inputs = _json_list(sig.get("inputs"), f"{where}.inputs")
    outputs = _json_list(sig.get("outputs"), f"{where}.outputs")
    has_params = sig.get("params") not in (None, "null", "[]")
    if not inputs:
        return None
    summary = ", ".join(_describe(o) for o in outputs[:8]) + (" …" if len(outputs) > 8 else "")
    if all(isinstance(i, dict) and i.get("type") == "tensor" for i in inputs):
        tensors = tuple(_tensor(i, f"{where}.inputs[{n}]") for n, i in enumerate(inputs))
        return Signature("tensors", tensors=tensors, outputs=summary, has_params=has_params)
    if any(isinstance(i, dict) and i.get("type") == "tensor" for i in inputs):
        raise SourceError("mixes tensor and column specs; MLflow signatures use one kind", f"{where}.inputs")
    columns = tuple(_column(i, f"{where}.inputs[{n}]") for n, i in enumerate(inputs))
    return Signature("columns", columns=columns, outputs=summary, has_params=has_params)


def _json_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, str):
        raise SourceError("must be a JSON string, as MLflow writes it", where)
    doc = load_json(value.encode("utf-8"), where)
    if not isinstance(doc, list) or len(doc) > _MAX_FIELDS:
        raise SourceError(f"must be a JSON list of at most {_MAX_FIELDS} specs", where)
    return doc


def _column(spec: Any, where: str) -> ColumnSpec:
    if not isinstance(spec, dict):
        raise SourceError("must be an object", where)
    name = short_text(spec.get("name"), f"{where}.name", 1024) if spec.get("name") is not None else None
    kind = spec.get("type")
    if name is None:
        raise SourceError("has no name; init maps named columns only", where)
    if not isinstance(kind, str) or kind not in COLUMN_TYPES or COLUMN_TYPES[kind] is None:
        raise SourceError(
            f"column {name!r} has type {str(kind)[:40]!r}, which has no tensor form here "
            f"(supported: {', '.join(k for k, v in COLUMN_TYPES.items() if v)})",
            where,
        )
    required = spec.get("required", True)
    return ColumnSpec(name, kind, required is not False)


def _tensor(spec: dict[str, Any], where: str) -> TensorSpec:
    ts = spec.get("tensor-spec")
    if not isinstance(ts, dict):
        raise SourceError("has no tensor-spec object", where)
    dtype = TENSOR_TYPES.get(str(ts.get("dtype")))
    shape = ts.get("shape")
    if dtype is None:
        raise SourceError(f"tensor dtype {str(ts.get('dtype'))[:40]!r} has no contract dtype", where)
    if (
        not isinstance(shape, list)
        or len(shape) > 32
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape)
    ):
        raise SourceError("tensor shape must be a list of sizes (-1 for any)", where)
    name = spec.get("name")
    return TensorSpec(short_text(name, f"{where}.name", 1024) if name is not None else None, dtype, tuple(shape))


def _describe(spec: Any) -> str:
    if not isinstance(spec, dict):
        return "?"
    if spec.get("type") == "tensor" and isinstance(spec.get("tensor-spec"), dict):
        ts = spec["tensor-spec"]
        return f"tensor {str(ts.get('dtype'))[:16]} {str(ts.get('shape'))[:40]}"
    name = spec.get("name")
    return f"{str(spec.get('type'))[:16]}" + (f" {str(name)[:64]!r}" if name is not None else "")


__all__ = ["COLUMN_TYPES", "MLMODEL", "ColumnSpec", "MLModel", "Signature", "TensorSpec", "read_mlmodel"]
