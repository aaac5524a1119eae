"""An ONNX graph's interface as a contract, and where an author's declared contract disagrees with it."""

from __future__ import annotations

import re
from collections.abc import Sequence

import onnx
from mpkg._internal.contract.contract import Contract, Dim, Field
from mpkg.errors import Problem, ProblemCollector, SourceError
from onnx import ModelProto, TensorProto

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
_DIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


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


__all__ = ["ONNX_DTYPES", "compare_contract", "derive_contract"]
