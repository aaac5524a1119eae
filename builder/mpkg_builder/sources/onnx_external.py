"""Hostile external data in an ONNX model: every tensor that can point outside the file, checked.

External data locations are attacker-controlled strings that ONNX tooling has repeatedly
followed out of the model folder (CVE-2022-25882 '../', CVE-2024-27318 'a/../../x',
CVE-2026-27489 / CVE-2026-34447 symlinks, CVE-2026-34446 hardlinks). Every tensor that can
carry external data is visited, including sparse tensors, node attributes, subgraphs,
functions and training graphs; a location is accepted only if it names a single-link regular
file inside the model's folder and the source, and its offset and length fit that file.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import onnx
from mpkg.errors import ProblemCollector
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto

from .paths import lexical_problem

# Bytes per element, to check an external tensor's length against its dims.
_ITEMSIZE: dict[int, int] = {
    TensorProto.BOOL: 1,
    TensorProto.INT8: 1,
    TensorProto.UINT8: 1,
    TensorProto.INT16: 2,
    TensorProto.UINT16: 2,
    TensorProto.FLOAT16: 2,
    TensorProto.BFLOAT16: 2,
    TensorProto.INT32: 4,
    TensorProto.UINT32: 4,
    TensorProto.FLOAT: 4,
    TensorProto.INT64: 8,
    TensorProto.UINT64: 8,
    TensorProto.DOUBLE: 8,
    TensorProto.COMPLEX64: 8,
    TensorProto.COMPLEX128: 16,
}
_EXTERNAL_KEYS = {"location", "offset", "length", "checksum"}


# --- walking every tensor ------------------------------------------------------------------


def _graph_tensors(graph: GraphProto, where: str) -> Iterator[tuple[TensorProto, str]]:
    for t in graph.initializer:
        yield t, f"{where} initializer {t.name!r}"
    for s in graph.sparse_initializer:
        yield s.values, f"{where} sparse initializer {s.values.name!r} values"
        yield s.indices, f"{where} sparse initializer {s.values.name!r} indices"
    for node in graph.node:
        yield from _node_tensors(node, f"{where} node {node.name or node.op_type!r}")


def _node_tensors(node: onnx.NodeProto, where: str) -> Iterator[tuple[TensorProto, str]]:
    for attr in node.attribute:
        at = f"{where} attribute {attr.name!r}"
        if attr.type == AttributeProto.TENSOR or attr.HasField("t"):
            yield attr.t, at
        for i, t in enumerate(attr.tensors):
            yield t, f"{at}[{i}]"
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values, f"{at} values"
            yield attr.sparse_tensor.indices, f"{at} indices"
        for i, s in enumerate(attr.sparse_tensors):
            yield s.values, f"{at}[{i}] values"
            yield s.indices, f"{at}[{i}] indices"
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g, f"{at} subgraph")
        for i, g in enumerate(attr.graphs):
            yield from _graph_tensors(g, f"{at} subgraph[{i}]")


def iter_tensors(model: ModelProto) -> Iterator[tuple[TensorProto, str]]:
    """Every TensorProto in the model that could point at external data, with where it sits."""
    yield from _graph_tensors(model.graph, "graph")
    for f in model.functions:
        for node in f.node:
            yield from _node_tensors(node, f"function {f.name!r} node {node.name or node.op_type!r}")
    for i, ti in enumerate(model.training_info):
        yield from _graph_tensors(ti.initialization, f"training_info[{i}] initialization")
        yield from _graph_tensors(ti.algorithm, f"training_info[{i}] algorithm")


# --- external data -------------------------------------------------------------------------


def check_external(
    tensor: TensorProto,
    where: str,
    model_dir: Path,
    src: Path,
    problems: ProblemCollector,
) -> str | None:
    """Check one tensor's external data; return the src-relative location when it is sound."""
    entries = list(tensor.external_data)
    external = tensor.data_location == TensorProto.EXTERNAL
    if not external:
        if entries:
            problems.add(
                where,
                "has external_data entries but data_location is not EXTERNAL; readers disagree "
                "on such tensors: re-export the model",
            )
        return None
    keys = [e.key for e in entries]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        problems.add(
            where,
            f"external_data repeats key(s) {dupes}; readers disagree on which wins: re-export the model",
        )
        return None
    unknown = sorted(set(keys) - _EXTERNAL_KEYS)
    if unknown:
        problems.add(
            where,
            f"external_data has unknown key(s) {unknown}; allowed: location, offset, length, checksum",
        )
        return None
    kv: dict[str, str] = {str(e.key): str(e.value) for e in entries}
    location = kv.get("location")
    if not location:
        problems.add(where, "is EXTERNAL but names no location")
        return None
    if "_ORT_MEM_ADDR_" in location:
        problems.add(
            where,
            f"external data location {location!r} is an in-memory address marker; refuse to read process memory",
        )
        return None
    why = lexical_problem(location)
    if why:
        problems.add(where, f"external data location {why}")
        return None
    numbers: dict[str, int] = {}
    for key in ("offset", "length"):
        if key in kv:
            if not re.fullmatch(r"\d{1,19}", kv[key]):
                problems.add(where, f"external data {key} {kv[key]!r} is not a non-negative decimal integer")
                return None
            numbers[key] = int(kv[key])
    lexical = model_dir / location
    base = model_dir.resolve()
    try:
        resolved = lexical.resolve()
    except (OSError, RuntimeError):
        problems.add(where, f"external data location {location!r} cannot be resolved (symlink loop)")
        return None
    if not os.path.lexists(lexical):
        problems.add(
            where,
            f"external data file {location!r} does not exist next to the model; add it to the source",
        )
        return None
    if resolved != base / location:
        escapes = not resolved.is_relative_to(base)
        detail = "leaves the model folder" if escapes else "goes through a symlink"
        problems.add(
            where,
            f"external data location {location!r} {detail} (resolves to {str(resolved)!r}); "
            "replace symlinks with the real file",
        )
        return None
    if not resolved.is_relative_to(src.resolve()):
        problems.add(where, f"external data location {location!r} is outside the source folder")
        return None
    st = resolved.lstat()
    if not stat.S_ISREG(st.st_mode):
        problems.add(where, f"external data location {location!r} is not a regular file")
        return None
    if st.st_nlink > 1:
        problems.add(
            where,
            f"external data file {location!r} is a hardlink ({st.st_nlink} links); copy it so it has a single link",
        )
        return None
    offset = numbers.get("offset", 0)
    length = numbers.get("length", st.st_size - offset)
    if offset + length > st.st_size or length < 0:
        problems.add(
            where,
            f"external data offset {offset} + length {length} runs past the end of {location!r} ({st.st_size} bytes)",
        )
        return None
    itemsize = _ITEMSIZE.get(tensor.data_type)
    if itemsize is not None:
        expected = math.prod(tensor.dims) * itemsize
        if length != expected:
            problems.add(
                where,
                f"external data length {length} does not match dims {list(tensor.dims)} ({expected} bytes)",
            )
            return None
    return resolved.relative_to(src.resolve()).as_posix()


__all__ = ["check_external", "iter_tensors"]
