"""ONNX models: structural check, hostile external-data refusal, contract derivation.

External data locations are attacker-controlled strings that ONNX tooling has repeatedly
followed out of the model folder (CVE-2022-25882 '../', CVE-2024-27318 'a/../../x',
CVE-2026-27489 / CVE-2026-34447 symlinks, CVE-2026-34446 hardlinks). Every tensor that can
carry external data is visited, including sparse tensors, node attributes, subgraphs,
functions and training graphs, and the model is loaded without following any location.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from mpkg._internal.contract.contract import Contract, Dim, Field
from mpkg.errors import Problem, ProblemCollector, SourceError
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto

from .onnx_split import split_model
from .paths import lexical_problem

# ONNX TensorProto.DataType -> contract dtype.
ONNX_DTYPES: dict[int, str] = {
    TensorProto.BOOL: "bool",
    TensorProto.INT8: "int8",
    TensorProto.INT16: "int16",
    TensorProto.INT32: "int32",
    TensorProto.INT64: "int64",
    TensorProto.UINT8: "uint8",
    TensorProto.UINT16: "uint16",
    TensorProto.UINT32: "uint32",
    TensorProto.UINT64: "uint64",
    TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16",
    TensorProto.FLOAT: "float32",
    TensorProto.DOUBLE: "float64",
    TensorProto.STRING: "string",
}
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
_DIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
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


@dataclass(frozen=True)
class OnnxInfo:
    contract: Contract
    external_data: tuple[str, ...]  # src-relative POSIX paths of external-data files
    opset: dict[str, int]  # domain ('ai.onnx' for the default) -> version
    architecture: dict[str, Any]  # small, JSON-able summary (see describe_architecture)


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


def _check_external(
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


# --- contract ------------------------------------------------------------------------------


def _dim(d: onnx.TensorShapeProto.Dimension) -> Dim:
    if d.HasField("dim_value"):
        return int(d.dim_value)
    if d.HasField("dim_param") and _DIM_NAME.match(d.dim_param):
        return d.dim_param
    return -1


def _field(vi: onnx.ValueInfoProto, where: str, problems: ProblemCollector) -> Field | None:
    kind = vi.type.WhichOneof("value")
    if kind != "tensor_type":
        fix = ""
        if kind == "sequence_type" and vi.type.sequence_type.elem_type.WhichOneof("value") == "map_type":
            fix = (
                ": this is skl2onnx's ZipMap (a list of dicts); convert with "
                'options={id(model): {"zipmap": False}} to get a probabilities tensor'
            )
        problems.add(where, f"{vi.name!r} is of ONNX type {kind!r}; contracts describe tensors only{fix}")
        return None
    tt = vi.type.tensor_type
    dtype = ONNX_DTYPES.get(tt.elem_type)
    if dtype is None:
        name = (
            TensorProto.DataType.Name(tt.elem_type)
            if tt.elem_type in TensorProto.DataType.values()
            else str(tt.elem_type)
        )
        problems.add(where, f"{vi.name!r} has element type {name}, which contracts do not support")
        return None
    if not tt.HasField("shape"):
        problems.add(
            where,
            f"{vi.name!r} has no shape (unknown rank); give the graph {where.split()[-1]} a shape when exporting",
        )
        return None
    return Field(name=vi.name, dtype=dtype, shape=tuple(_dim(d) for d in tt.shape.dim))


def derive_contract(model: ModelProto, where: str = "model") -> Contract:
    """Inputs (graph inputs that are not initializers) and outputs, as the graph declares them."""
    problems = ProblemCollector()
    inits = {t.name for t in model.graph.initializer} | {s.values.name for s in model.graph.sparse_initializer}
    inputs = [_field(vi, f"{where}: graph input", problems) for vi in model.graph.input if vi.name not in inits]
    zipmapped = {v for n in model.graph.node if n.op_type == "ZipMap" for v in n.output}
    for vi in model.graph.output:
        if vi.name in zipmapped:
            problems.add(
                f"{where}: graph output",
                f"{vi.name!r} is a ZipMap output (skl2onnx's ZipMap: a list of {{label: probability}} maps), which "
                'contracts cannot describe; convert without it: skl2onnx options={id(model): {"zipmap": False}}, '
                "onnxmltools zipmap=False",
            )
    outputs = [_field(vi, f"{where}: graph output", problems) for vi in model.graph.output if vi.name not in zipmapped]
    if not outputs:
        problems.add(where, "graph has no outputs")
    problems.raise_if_any(SourceError)
    return Contract(inputs=tuple(f for f in inputs if f), outputs=tuple(f for f in outputs if f))


def compare_contract(
    declared: Contract, derived: Contract, where: str = "contract.json", sides: Sequence[str] = ("inputs", "outputs")
) -> list[Problem]:
    """Disagreements between an author's contract and the one derived from the graph, on ``sides``.

    The declared contract may add descriptions, enums, optional/nullable flags, and name
    dims the graph leaves dynamic (-1 or a dim_param of any name). Names, dtypes, ranks and
    fixed dims must agree. Inputs may fix a dim the graph leaves dynamic (a narrowing the
    model accepts); outputs may not (the graph does not promise it). A graph dim_param shared
    by several dims must map to a single declared name or size.
    """
    problems: list[Problem] = []
    for side in sides:
        dec = {f.name: f for f in getattr(declared, side)}
        der = {f.name: f for f in getattr(derived, side)}
        for name in sorted(set(der) - set(dec)):
            problems.append(Problem(f"{where}: {side}", f"graph {side[:-1]} {name!r} is missing; declare it"))
        for name in sorted(set(dec) - set(der)):
            problems.append(
                Problem(
                    f"{where}: {side}.{name}",
                    f"the graph has no {side[:-1]} {name!r} (graph has {sorted(der)})",
                )
            )
        ties: dict[str, set[Dim]] = {}
        for name in [n for n in der if n in dec]:
            d, g = dec[name], der[name]
            at = f"{where}: {side}.{name}"
            if d.dtype != g.dtype:
                problems.append(Problem(f"{at}.dtype", f"declared {d.dtype} but the graph has {g.dtype}"))
            if len(d.shape) != len(g.shape):
                problems.append(
                    Problem(
                        f"{at}.shape",
                        f"declared rank {len(d.shape)} {list(d.shape)} but the graph has rank "
                        f"{len(g.shape)} {list(g.shape)}",
                    )
                )
                continue
            for i, (dd, gd) in enumerate(zip(d.shape, g.shape, strict=True)):
                if isinstance(gd, int) and gd >= 0:
                    if dd != gd:
                        problems.append(
                            Problem(
                                f"{at}.shape[{i}]",
                                f"declared {dd!r} but the graph fixes it to {gd}",
                            )
                        )
                    continue
                if isinstance(dd, int) and dd >= 0 and side == "outputs":
                    problems.append(
                        Problem(
                            f"{at}.shape[{i}]",
                            f"declared fixed size {dd} but the graph leaves it dynamic ({gd!r}); use a name or -1",
                        )
                    )
                    continue
                if isinstance(gd, str) and dd != -1:
                    ties.setdefault(gd, set()).add(dd)
        for param, names in sorted(ties.items()):
            if len(names) > 1:
                shown = sorted(map(str, names))
                problems.append(
                    Problem(
                        f"{where}: {side}",
                        f"the graph ties dims together as {param!r} but the contract declares "
                        f"them as {shown}; use one name",
                    )
                )
    return problems


# --- architecture --------------------------------------------------------------------------


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
        "opset_imports": _opsets(model),
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


def _opsets(model: ModelProto) -> dict[str, int]:
    return dict(sorted((o.domain or "ai.onnx", int(o.version)) for o in model.opset_import))


# --- entry point ---------------------------------------------------------------------------


def inspect_onnx(path: Path, src: Path, where: str | None = None) -> OnnxInfo:
    """Load (never following external data), check and describe the ONNX model at ``path``.

    ``src`` is the source folder: external data must live inside it, in the model's folder.
    Raises :class:`SourceError` with every problem found.
    """
    where = where if where is not None else path.name
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ValueError...
        raise SourceError(
            f"is not a valid ONNX model ({exc.__class__.__name__}: {exc}); export it again", where
        ) from None
    problems = ProblemCollector()
    model_dir = path.parent
    locations: set[str] = set()
    for tensor, at in iter_tensors(model):
        loc = _check_external(tensor, f"{where}: {at}", model_dir, src, problems)
        if loc is not None:
            locations.add(loc)
    if not problems:
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as exc:  # ValidationError, InferenceError, ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            problems.add(where, f"fails the ONNX checker: {first}")
    contract: Contract | None = None
    try:
        contract = derive_contract(model, where)
    except SourceError as exc:
        problems.extend(exc.problems)
    problems.raise_if_any(SourceError)
    assert contract is not None
    return OnnxInfo(
        contract=contract,
        external_data=tuple(sorted(locations)),
        opset=_opsets(model),
        # The graph's interface is recorded apart from the package contract, which package code
        # may adapt: diff tells a graph interface change behind the same contract (semver.md §4).
        architecture={**describe_architecture(model), "interface": contract.to_json()},
    )
