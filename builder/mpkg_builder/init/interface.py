"""How an MLflow signature becomes a package contract today.

A contract input must be a graph input (spec/format.md §6), and contract names are
``[A-Za-z_][A-Za-z0-9_.:-/]*``. MLflow's column names are whatever the DataFrame had
("sepal length (cm)"), so each column becomes an input named by :func:`field_name`, with
the MLflow name kept in its description and in the card. This is the one seam to change
once contracts take any UTF-8 column name (issue 11, "the package's contract is what
clients send"): make :func:`field_name` return the column name unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mpkg._internal.contract.contract import Field
from mpkg.errors import SourceError

from .mlmodel import COLUMN_TYPES, ColumnSpec, Signature

_NOT_NAME = re.compile(r"[^A-Za-z0-9_.:\-/]+")
_MAX_NAME = 128


@dataclass(frozen=True)
class Port:
    """One package input and the MLflow input it stands for."""

    field: Field
    mlflow_name: str | None  # the column, or the tensor's name (None: MLflow's only, unnamed tensor)
    mlflow_type: str  # an MLflow column type ("double") or a tensor dtype


def field_name(column: str, taken: set[str]) -> str:
    """A contract name for an MLflow column: runs of other characters become '_'."""
    base = _NOT_NAME.sub("_", column).strip("_")[:_MAX_NAME] or "column"
    if not (base[0].isalpha() or base[0] == "_"):
        base = f"_{base}"[:_MAX_NAME]
    name, n = base, 2
    while name in taken:
        name = f"{base[: _MAX_NAME - 4]}_{n}"
        n += 1
    taken.add(name)
    return name


def column_ports(columns: Sequence[ColumnSpec]) -> list[Port]:
    """One 1-D input per column, in the given order."""
    taken: set[str] = set()
    ports = []
    for col in columns:
        dtype = COLUMN_TYPES[col.type]
        assert dtype is not None  # refused when the signature was read
        name = field_name(col.name, taken)
        description = f"MLflow column {col.name!r} ({col.type})"
        ports.append(Port(Field(name, dtype, ("batch",), description=description), col.name, col.type))
    return ports


def tensor_port(signature: Signature | None, n_features: int | None, where: str) -> Port:
    """The one 2-D input of a model that takes a matrix."""
    if signature is not None and signature.kind == "tensors":
        if len(signature.tensors) != 1:
            raise SourceError(f"names {len(signature.tensors)} input tensors; a scikit-learn model takes one", where)
        spec = signature.tensors[0]
        if len(spec.shape) != 2:
            raise SourceError(
                f"the input tensor has shape {list(spec.shape)}; a scikit-learn model takes [-1, n]", where
            )
        width = spec.shape[1] if spec.shape[1] >= 0 else n_features
        if width is None:
            raise SourceError("the input tensor's width is not fixed and the model does not say it", where)
        name = field_name(spec.name, set()) if spec.name else "input"
        desc = f"MLflow tensor {spec.name or '(unnamed)'} ({spec.dtype}, shape {list(spec.shape)})"
        return Port(Field(name, spec.dtype, ("batch", width), description=desc), spec.name, spec.dtype)
    if n_features is None:
        raise SourceError("has no signature and the model does not say how many features it takes", where)
    field = Field("input", "float64", ("batch", n_features), description="a row of features per example")
    return Port(field, None, "float64")


__all__ = ["Port", "column_ports", "field_name", "tensor_port"]
