"""How an MLflow signature becomes a package contract.

Contract names are any name real data uses (spec/format.md §6), so each MLflow column
becomes an input of the same name ("mean radius", "sepal length (cm)"): clients send the
DataFrame they already have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mpkg._internal.contract.contract import Field
from mpkg.errors import SourceError

from .mlmodel import COLUMN_TYPES, ColumnSpec, Signature


@dataclass(frozen=True)
class Port:
    """One package input and the MLflow input it stands for."""

    field: Field
    mlflow_name: str | None  # the column, or the tensor's name (None: MLflow's only, unnamed tensor)
    mlflow_type: str  # an MLflow column type ("double") or a tensor dtype


def column_ports(columns: Sequence[ColumnSpec]) -> list[Port]:
    """One 1-D input per column, in the given order."""
    ports = []
    for col in columns:
        dtype = COLUMN_TYPES[col.type]
        assert dtype is not None  # refused when the signature was read
        description = f"MLflow column ({col.type})"
        ports.append(Port(Field(col.name, dtype, ("batch",), description=description), col.name, col.type))
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
        name = spec.name or "input"
        desc = f"MLflow tensor {spec.name or '(unnamed)'} ({spec.dtype}, shape {list(spec.shape)})"
        return Port(Field(name, spec.dtype, ("batch", width), description=desc), spec.name, spec.dtype)
    if n_features is None:
        raise SourceError("has no signature and the model does not say how many features it takes", where)
    field = Field("input", "float64", ("batch", n_features), description="a row of features per example")
    return Port(field, None, "float64")


__all__ = ["Port", "column_ports", "tensor_port"]
