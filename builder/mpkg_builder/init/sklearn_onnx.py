"""An MLflow ``sklearn`` flavour, converted to ONNX with skl2onnx.

The model is loaded with skops, which refuses any type it does not trust by default;
pickle and cloudpickle files are never loaded (mpkg never unpickles). skl2onnx converts
it for float32 (and string) inputs; a small adapter in front of the graph takes the
package's interface (one 1-D input per MLflow column, or MLflow's matrix, in MLflow's
dtypes), so the contract is the graph's inputs. The converted graph is then checked
against scikit-learn's own predictions on the example before init accepts it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from mpkg._internal.contract.dtypes import NUMPY_DTYPE
from mpkg.errors import SourceError
from onnx import TensorProto, helper

from .interface import Port, column_ports, tensor_port
from .mlmodel import MLModel
from .reading import inside

EXTRA = "mpkg[sklearn]"
_NEEDS = {"sklearn": "scikit-learn", "skl2onnx": "skl2onnx", "skops": "skops"}
_ONNX_TYPES = {
    "bool": TensorProto.BOOL,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "string": TensorProto.STRING,
}


@dataclass(frozen=True)
class Converted:
    """A scikit-learn model converted to ONNX, and what the conversion checked."""

    model: onnx.ModelProto
    ports: tuple[Port, ...]
    versions: Mapping[str, str]  # scikit-learn, skl2onnx, skops
    checked: str  # what the comparison with scikit-learn showed, for the card


def convert_sklearn_flavor(mlmodel: MLModel, check_inputs: Any) -> Converted:
    """``check_inputs(ports)`` gives JSON-ready example inputs to compare the graph with scikit-learn."""
    flavor = mlmodel.flavors["sklearn"]
    where = mlmodel.where("flavors.sklearn")
    fmt = flavor.get("serialization_format")
    path = inside(mlmodel.folder, flavor.get("pickled_model"), f"{where}.pickled_model")
    if fmt != "skops":
        raise SourceError(
            f"{path.name} is serialized with {str(fmt)[:20]!r}, a pickle: loading it runs any code it holds, and "
            "mpkg never unpickles. Save the model with mlflow.sklearn.save_model(..., serialization_format='skops') "
            "or as ONNX (mlflow.onnx.save_model), then run init on that",
            where,
        )
    missing = [dist for module, dist in _NEEDS.items() if not _importable(module)]
    if missing:
        raise SourceError(
            f"converting the sklearn flavour to ONNX needs {', '.join(missing)}: pip install '{EXTRA}'", where
        )
    model = _load_skops(path, where)
    ports = _ports(mlmodel, model, where)
    graph = _convert(model, ports, where)
    checked = _compare(model, graph, ports, check_inputs(ports), where)
    versions = {dist: version(dist) for dist in _NEEDS.values()}
    return Converted(graph, tuple(ports), versions, checked)


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _load_skops(path: Path, where: str) -> Any:
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=str(path))
    except Exception as exc:  # a damaged or hostile zip: skops's own errors
        raise SourceError(f"{path.name} is not a readable skops file ({type(exc).__name__})", where) from None
    if untrusted:
        shown = ", ".join(untrusted[:5]) + (" …" if len(untrusted) > 5 else "")
        raise SourceError(
            f"{path.name} holds types skops does not trust by default ({shown}); init loads only trusted types. "
            "If you trust them, load the model yourself, convert it with skl2onnx and init from the .onnx",
            where,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # version skew warnings: the comparison below is the real check
            return skops.io.load(str(path))
    except Exception as exc:
        raise SourceError(f"{path.name} could not be loaded by skops ({type(exc).__name__}: {exc})", where) from None


def _ports(mlmodel: MLModel, model: Any, where: str) -> list[Port]:
    """The package inputs: MLflow's columns in the order the model was fitted on, or its matrix."""
    sig = mlmodel.signature
    features = [str(f) for f in getattr(model, "feature_names_in_", [])]
    n_features = getattr(model, "n_features_in_", None)
    if sig is not None and sig.kind == "columns":
        by_name = {c.name: c for c in sig.columns}
        if features:
            absent = [f for f in features if f not in by_name]
            if absent:
                raise SourceError(f"the model was fitted on columns the signature lacks: {absent[:5]}", where)
            return column_ports([by_name[f] for f in features])
        return column_ports(sig.columns)
    if sig is None and features:
        from .mlmodel import ColumnSpec

        return column_ports([ColumnSpec(f, "double") for f in features])
    return [tensor_port(sig, int(n_features) if n_features is not None else None, where)]


def _convert(model: Any, ports: Sequence[Port], where: str) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.base import is_classifier

    def initial(port: Port) -> Any:
        width = port.field.shape[1] if len(port.field.shape) == 2 else 1
        kind = StringTensorType if port.field.dtype == "string" else FloatTensorType
        return kind([None, width])

    types = [(p.mlflow_name or p.field.name, initial(p)) for p in ports]
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = convert_sklearn(model, initial_types=types, options=options)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise SourceError(
            f"skl2onnx cannot convert this model ({first}); convert it yourself and init from the .onnx", where
        ) from None
    return _with_adapter(converted, ports, where)


def _with_adapter(model: onnx.ModelProto, ports: Sequence[Port], where: str) -> onnx.ModelProto:
    """Put the package's inputs in front of the converted graph: 1-D columns are unsqueezed to
    [N, 1] and every numeric input is cast to float32, as skl2onnx's inputs expect."""
    graph = model.graph
    if len(graph.input) != len(ports):
        raise SourceError(f"skl2onnx made {len(graph.input)} inputs for {len(ports)} features", where)
    taken = _names(graph) - {vi.name for vi in graph.input}  # the inputs are renamed below
    clash = sorted({p.field.name for p in ports} & taken)
    if clash:
        raise SourceError(
            f"input names {clash} collide with names inside the converted graph; rename the columns", where
        )
    internal = [f"mpkg_adapter_in_{i}" for i in range(len(graph.input))]
    _rename_inputs(graph, dict(zip([vi.name for vi in graph.input], internal, strict=True)))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    nodes, new_inputs = [], []
    for i, (port, target) in enumerate(zip(ports, internal, strict=True)):
        field = port.field
        shape = ["batch"] + [d for d in field.shape[1:] if isinstance(d, int)]
        new_inputs.append(helper.make_tensor_value_info(field.name, _ONNX_TYPES[field.dtype], shape))
        current = field.name
        if len(field.shape) == 1:
            out = f"mpkg_adapter_2d_{i}"
            if opset >= 13:
                nodes.append(helper.make_node("Unsqueeze", [current, "mpkg_adapter_axis_1"], [out]))
            else:
                nodes.append(helper.make_node("Unsqueeze", [current], [out], axes=[1]))
            current = out
        if field.dtype in ("string", "float32"):
            nodes.append(helper.make_node("Identity", [current], [target]))
        else:
            nodes.append(helper.make_node("Cast", [current], [target], to=TensorProto.FLOAT))
    if opset >= 13 and any(len(p.field.shape) == 1 for p in ports):
        graph.initializer.append(helper.make_tensor("mpkg_adapter_axis_1", TensorProto.INT64, [1], [1]))
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *old])
    del graph.input[:]
    graph.input.extend(new_inputs)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise SourceError(f"the converted graph fails the ONNX checker ({str(exc).splitlines()[0]})", where) from None
    return model


def _names(graph: onnx.GraphProto) -> set[str]:
    names = {vi.name for vi in [*graph.input, *graph.output, *graph.value_info]}
    names |= {t.name for t in graph.initializer}
    for node in graph.node:
        names.update(node.output)
    return names


def _rename_inputs(graph: onnx.GraphProto, renames: Mapping[str, str]) -> None:
    for node in graph.node:
        for j, name in enumerate(node.input):
            if name in renames:
                node.input[j] = renames[name]
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs] if attr.type in (attr.GRAPH, attr.GRAPHS) else []:
                _rename_inputs(sub, renames)
    for vi in graph.input:
        if vi.name in renames:
            vi.name = renames[vi.name]


def _compare(model: Any, graph: onnx.ModelProto, ports: Sequence[Port], inputs: Mapping[str, Any], where: str) -> str:
    """Run the graph and scikit-learn on the same rows; refuse a graph that disagrees."""
    import onnxruntime as ort

    feeds = {p.field.name: np.asarray(inputs[p.field.name], dtype=_numpy(p.field.dtype)) for p in ports}
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    try:
        x = _sklearn_input(ports, feeds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if hasattr(model, "predict_proba") and "probabilities" in outputs:
                expected, actual, what = model.predict_proba(x), outputs["probabilities"], "predict_proba"
            else:
                expected, actual, what = model.predict(x), next(iter(outputs.values())), "predict"
    except Exception as exc:  # e.g. an encoder refusing a generated category
        return f"not compared with scikit-learn: it refused the example ({type(exc).__name__})"
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.dtype.kind in "fc" or actual.dtype.kind == "f":
        same = expected.size == actual.size and np.allclose(
            actual.astype(np.float64).ravel(), expected.astype(np.float64).ravel(), rtol=1e-3, atol=1e-4
        )
    else:
        same = expected.size == actual.size and bool(np.all(actual.ravel() == expected.ravel()))
    rows = len(next(iter(feeds.values())))
    if not same:
        raise SourceError(
            f"the ONNX graph skl2onnx made disagrees with scikit-learn's {what} on the {rows} example rows; "
            "convert the model yourself and init from the .onnx",
            where,
        )
    return f"agrees with scikit-learn's {what} on the {rows} example rows (rtol 1e-3, atol 1e-4)"


def _sklearn_input(ports: Sequence[Port], feeds: Mapping[str, np.ndarray]) -> Any:
    if len(ports) == 1 and len(ports[0].field.shape) == 2:
        return feeds[ports[0].field.name]
    import pandas as pd

    return pd.DataFrame({p.mlflow_name or p.field.name: feeds[p.field.name] for p in ports})


def _numpy(dtype: str) -> Any:
    return object if dtype == "string" else NUMPY_DTYPE[dtype]


__all__ = ["EXTRA", "Converted", "convert_sklearn_flavor"]
