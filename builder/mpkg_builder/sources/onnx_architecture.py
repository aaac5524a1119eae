"""An ONNX model's architecture summary: what `mpkg diff` compares instead of the graph itself."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from onnx import GraphProto, ModelProto, TensorProto

from .onnx_contract import ONNX_DTYPES
from .onnx_split import split_model

# Where a tensor keeps its values; cleared so the graph digest covers structure only.
_DATA_FIELDS = (
    "raw_data",
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
    "external_data",
)


def _strip_initializer_data(graph: GraphProto) -> None:
    for t in graph.initializer:
        for f in _DATA_FIELDS:
            t.ClearField(f)
        t.ClearField("data_location")
    for s in graph.sparse_initializer:
        for t in (s.values, s.indices):
            for f in _DATA_FIELDS:
                t.ClearField(f)
            t.ClearField("data_location")
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                _strip_initializer_data(attr.g)
            for g in attr.graphs:
                _strip_initializer_data(g)


def _op_counts(graph: GraphProto, counts: Counter[str]) -> None:
    for node in graph.node:
        counts[f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type] += 1
        for attr in node.attribute:
            if attr.HasField("g"):
                _op_counts(attr.g, counts)
            for g in attr.graphs:
                _op_counts(g, counts)


def describe_architecture(model: ModelProto) -> dict[str, Any]:
    """A small JSON-able summary: what diff shows when weights change but structure does not.

    ``structure_digest``, ``weights_digest``, ``class_labels`` and ``producer`` are the
    learned/structure split (:mod:`.onnx_split`, spec/semver.md §4.1) that diff decides by.
    ``graph_digest`` (kept so packages built before the split still compare) is the sha256 of
    the deterministically serialised graph with every initializer's data (and external-data
    pointers) removed; names, dtypes and dims stay.
    """
    graph = GraphProto()
    graph.CopyFrom(model.graph)
    _strip_initializer_data(graph)
    counts: Counter[str] = Counter()
    _op_counts(model.graph, counts)
    for f in model.functions:
        for node in f.node:
            counts[f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type] += 1
    return {
        **split_model(model).to_json(),
        "ir_version": int(model.ir_version),
        "opset_imports": opsets(model),
        "operators": dict(sorted(counts.items())),
        "graph_digest": "sha256:" + hashlib.sha256(graph.SerializeToString(deterministic=True)).hexdigest(),
        "initializers": [
            {
                "name": t.name,
                "dtype": ONNX_DTYPES.get(t.data_type, TensorProto.DataType.Name(t.data_type).lower()),
                "shape": [int(d) for d in t.dims],
            }
            for t in model.graph.initializer
        ],
    }


def opsets(model: ModelProto) -> dict[str, int]:
    """Opset imports by domain ('ai.onnx' for the default), as the manifest records them."""
    return dict(sorted((o.domain or "ai.onnx", int(o.version)) for o in model.opset_import))


__all__ = ["describe_architecture", "opsets"]
