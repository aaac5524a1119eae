"""`mpkg init --from MODEL_DIR` for an MLflow model folder (it has an MLmodel file).

The ``onnx`` flavour is taken as it is; the ``sklearn`` flavour is converted to ONNX
(:mod:`.sklearn_onnx`). The signature becomes the contract, the input example the
example, the run's params and metrics the lineage, and MLmodel's ids the lineage's
origin; the mapping is spec/source.md's table. Models only a pickle can run are refused.
Nothing imports mlflow: its files are read as data (:mod:`.mlmodel`).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mpkg._internal.contract.contract import Contract
from mpkg.errors import SourceError

from ..sources.onnx_model import inspect_onnx
from . import card as cards
from .draft import Draft, DraftExample, DraftFile, Lineage, package_name
from .examples import generated_inputs
from .from_onnx import user_parts, with_descriptions
from .interface import Port
from .mlflow_files import RawExample, pinned, read_example, read_python, read_requirements
from .mlflow_run import Run, find_run, read_run
from .mlmodel import MLModel, read_mlmodel
from .options import InitOptions
from .origin import ORIGIN_NAME, origin_file
from .reading import load_yaml, read_capped

PARAMS_NAME = "params.yaml"
METRICS_NAME = "metrics.json"
EXAMPLE_ORIGIN = "from MLflow's input example (rows the model's author saved with it)"


@dataclass(frozen=True)
class _Weights:
    files: tuple[DraftFile, ...]
    model_file: str
    contract: Contract  # with descriptions (MLflow's names)
    graph_contract: Contract  # exactly the graph's
    ports: tuple[Port, ...]  # empty: the graph's own inputs
    made: str
    versions: Mapping[str, str]


def draft_from_mlflow(folder: Path, options: InitOptions) -> Draft:
    """A draft from an MLflow model directory (onnx flavour, or sklearn converted)."""
    mlmodel = read_mlmodel(folder)
    notes: list[str] = []
    raw_example = read_example(mlmodel, notes)
    flavors = mlmodel.flavors
    if "onnx" in flavors:
        weights = _onnx_flavor(mlmodel)
    elif "sklearn" in flavors:
        weights = _sklearn_flavor(mlmodel, raw_example)
    else:
        raise SourceError(_refusal(mlmodel), mlmodel.where("flavors"))
    optional = [c.name for c in mlmodel.signature.columns if not c.required] if mlmodel.signature else []
    if optional:
        notes.append(
            f"MLflow marks columns {optional[:5]} optional; the package requires them, as every graph input is "
            "required (until contracts describe what clients send, before preprocessing)"
        )
    if mlmodel.signature is not None and mlmodel.signature.has_params:
        notes.append("MLflow's signature has inference params; a package has none, so they are not carried over")
    requirements = read_requirements(mlmodel, notes)
    python = read_python(mlmodel, notes)
    run = _run(mlmodel, options, notes)
    files = list(weights.files)
    contract, module = user_parts(options, weights.contract, weights.graph_contract, files)
    lineage = _lineage_files(run, files)
    origin = _origin(mlmodel, run, requirements, python, weights)
    files.append(origin_file(origin))
    notes += _version_notes(requirements, python)
    name = options.name or package_name(_model_name(folder))
    flavour = "onnx" if "onnx" in flavors else "sklearn"
    example = _example(raw_example, weights, contract, notes)
    return Draft(
        name=name,
        description=f"MLflow {flavour} model"
        + (f" from run {mlmodel.ids['run_id']}" if "run_id" in mlmodel.ids else ""),
        model_format="onnx",
        model_files=(weights.model_file,),
        contract=contract,
        card_body=_card(name, mlmodel, flavour, weights, run),
        made=(weights.made,),
        files=tuple(files),
        code_module=module,
        lineage=Lineage(metrics=lineage.get("metrics"), params=lineage.get("params"), origin=ORIGIN_NAME),
        example=example,
        notes=tuple(notes),
    )


def _model_name(folder: Path) -> str:
    """MLflow 3 keeps a logged model in models/<id>/artifacts/, its name in models/<id>/meta.yaml."""
    folder = folder.absolute()
    if folder.name != "artifacts":
        return folder.name
    try:
        meta = load_yaml(read_capped(folder.parent / "meta.yaml", "meta.yaml", 64 * 1024), "meta.yaml")
    except SourceError:
        return folder.parent.name
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name.isprintable() else folder.parent.name


def _refusal(mlmodel: MLModel) -> str:
    flavors = mlmodel.flavors
    pyfunc = flavors.get("python_function", {})
    if set(flavors) == {"python_function"}:
        pickled = pyfunc.get("python_model") or pyfunc.get("data") or pyfunc.get("model_path") or "its model file"
        return (
            f"has only the python_function flavour (loader {str(pyfunc.get('loader_module'))[:60]}, "
            f"{str(pickled)[:80]}): a pickled Python object, whose computation cannot be read without running "
            "arbitrary code, and mpkg never unpickles. Export the model to ONNX (mlflow.onnx.save_model, skl2onnx, "
            "torch.onnx.export) and run init on that folder or .onnx file"
        )
    names = ", ".join(sorted(str(k)[:40] for k in flavors if k != "python_function"))
    return (
        f"has flavours {names}, which only their own libraries can load (init reads onnx and converts sklearn); "
        "export the model to ONNX and run init on that folder or .onnx file"
    )


def _onnx_flavor(mlmodel: MLModel) -> _Weights:
    from .reading import inside

    where = mlmodel.where("flavors.onnx.data")
    path = inside(mlmodel.folder, mlmodel.flavors["onnx"].get("data"), where)
    rel = path.relative_to(mlmodel.folder.resolve()).as_posix()
    info = inspect_onnx(path, mlmodel.folder.resolve(), f"{mlmodel.folder.name}/{rel}")
    files = [DraftFile(rel, source=path)] + [DraftFile(x, source=mlmodel.folder / x) for x in info.external_data]
    made = (
        f"Made by `mpkg init` from the MLflow model folder {cards.code(mlmodel.folder.name)} "
        "(onnx flavour, taken as it is)."
    )
    return _Weights(tuple(files), rel, info.contract, info.contract, (), made, {})


def _sklearn_flavor(mlmodel: MLModel, raw: RawExample | None) -> _Weights:
    from ..sources.onnx_model import derive_contract
    from .sklearn_onnx import convert_sklearn_flavor

    def check_inputs(ports: Sequence[Port]) -> Mapping[str, Any]:
        from mpkg._internal.contract.contract import Contract

        mapped = _map_example(raw, ports) if raw is not None else None
        return mapped or generated_inputs(Contract(tuple(p.field for p in ports), ()))

    converted = convert_sklearn_flavor(mlmodel, check_inputs)
    graph = converted.model
    for port in converted.ports:  # the MLflow names travel with the graph's own inputs
        vi = next(v for v in graph.graph.input if v.name == port.field.name)
        vi.doc_string = port.field.description
    derived = derive_contract(graph, "model.onnx")
    contract = with_descriptions(derived, graph)
    v = converted.versions
    made = (
        f"Made by `mpkg init` from the MLflow model folder {cards.code(mlmodel.folder.name)}: the sklearn flavour "
        f"(scikit-learn {v['scikit-learn']}, loaded with skops {v['skops']}) converted to ONNX by skl2onnx "
        f"{v['skl2onnx']}; the graph {converted.checked}."
    )
    data = graph.SerializeToString(deterministic=True)
    return _Weights((DraftFile("model.onnx", data=data),), "model.onnx", contract, derived, converted.ports, made, v)


def _map_example(raw: RawExample, ports: Sequence[Port]) -> dict[str, Any] | None:
    """MLflow's example under the package's input names, or None when it does not fit."""
    if raw.columns is not None:
        if all(p.mlflow_name in raw.columns for p in ports if len(p.field.shape) == 1) and all(
            len(p.field.shape) == 1 for p in ports
        ):
            return {p.field.name: raw.columns[p.mlflow_name] for p in ports if p.mlflow_name is not None}
        if len(ports) == 1 and len(ports[0].field.shape) == 2:  # a DataFrame for a matrix input
            columns = list(raw.columns.values())
            return {ports[0].field.name: [list(row) for row in zip(*columns, strict=True)]}
        return None
    tensors = raw.tensors or {}
    if len(ports) == 1 and list(tensors) == [None]:  # an unnamed array for the only input
        return {ports[0].field.name: tensors[None]}
    if all(p.mlflow_name in tensors for p in ports):
        return {p.field.name: tensors[p.mlflow_name] for p in ports}
    return None


def _example(raw: RawExample | None, weights: _Weights, contract: Contract, notes: list[str]) -> DraftExample | None:
    if raw is None:
        return None
    ports = weights.ports or tuple(Port(f, f.name, f.dtype) for f in contract.inputs)
    mapped = _map_example(raw, ports)
    if mapped is None:
        names = ", ".join(p.field.name for p in ports)
        notes.append(f"MLflow's input example does not name the package inputs ({names}); generated inputs instead")
        return None
    return DraftExample(mapped, EXAMPLE_ORIGIN)


def _run(mlmodel: MLModel, options: InitOptions, notes: list[str]) -> Run | None:
    folder = find_run(mlmodel.folder, mlmodel.ids.get("run_id"), options.run_dir)
    if folder is None:
        if "run_id" in mlmodel.ids:
            notes.append(
                f"the files of MLflow run {mlmodel.ids['run_id']} (params, metrics) were not found above the "
                "model folder; pass --run-dir to record them"
            )
        return None
    run = read_run(folder, mlmodel.ids.get("run_id"))
    notes.extend(run.notes)
    return run


def _lineage_files(run: Run | None, files: list[DraftFile]) -> dict[str, str]:
    out: dict[str, str] = {}
    if run is None:
        return out
    if run.params:
        text = yaml.safe_dump(dict(sorted(run.params.items())), sort_keys=True, allow_unicode=True)
        files.append(DraftFile(PARAMS_NAME, data=text.encode("utf-8")))
        out["params"] = PARAMS_NAME
    if run.metrics:
        text = json.dumps(dict(sorted(run.metrics.items())), indent=2, allow_nan=False) + "\n"
        files.append(DraftFile(METRICS_NAME, data=text.encode("utf-8")))
        out["metrics"] = METRICS_NAME
    return out


def _origin(
    mlmodel: MLModel, run: Run | None, requirements: list[str], python: str | None, weights: _Weights
) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": "mlflow", **mlmodel.ids, "flavors": sorted(str(k)[:40] for k in mlmodel.flavors)}
    if run is not None:
        doc["run"] = {k: v for k, v in (("run_name", run.run_name), ("experiment_id", run.experiment_id)) if v}
    if requirements:
        doc["requirements"] = requirements
    if python:
        doc["python"] = python
    if weights.versions:
        doc["converted_with"] = dict(weights.versions)
    return doc


def _version_notes(requirements: list[str], python: str | None) -> list[str]:
    """Where the package's lockfile (this environment) differs from what MLflow saved."""
    from ..lock.closure import FORMAT_NEEDS, installed

    notes = []
    pins = pinned(requirements)
    for name in FORMAT_NEEDS["onnx"]:
        dist = installed(name)
        if name in pins and dist is not None and pins[name] != dist.version:
            notes.append(
                f"MLflow saved the model with {name}=={pins[name]}; the lockfile pins {dist.version}, "
                "the version this environment has and ran the example with"
            )
    here = ".".join(platform.python_version_tuple()[:2])
    if python and ".".join(python.split(".")[:2]) != here:
        notes.append(f"MLflow saved the model with Python {python}; this package is built and locked with {here}")
    return notes


def _card(name: str, mlmodel: MLModel, flavour: str, weights: _Weights, run: Run | None) -> str:
    ids = mlmodel.ids
    intro = f"An MLflow model ({flavour} flavour"
    intro += f", saved by MLflow {ids['mlflow_version']}" if "mlflow_version" in ids else ""
    intro += f" on {ids['utc_time_created']} UTC" if "utc_time_created" in ids else ""
    intro += "), packaged by `mpkg init`. Describe it here in a sentence or two."
    facts: dict[str, list[str]] = {}
    if "run_id" in ids:
        where = f"MLflow run `{ids['run_id']}`"
        if run is not None and run.params:
            facts["Training data"] = [f"{where} logged {len(run.params)} parameter(s) ({PARAMS_NAME}, in the lineage)."]
        if run is not None and run.metrics:
            facts["Evaluation"] = [
                f"{where} logged {len(run.metrics)} metric(s); their last values are in {METRICS_NAME} "
                "(in the lineage and the generated facts below)."
            ]
    extra = _interface_section(mlmodel, weights)
    return cards.template(name, intro, facts, front_matter={"tags": ["mlflow", flavour, "onnx"]}, extra=extra)


def _interface_section(mlmodel: MLModel, weights: _Weights) -> list[str]:
    sig = mlmodel.signature
    out = ["## Interface", ""]
    if sig is None:
        out += ["MLflow recorded no signature: the contract is the graph's own inputs and outputs.", ""]
    elif weights.ports:
        out += ["MLflow's signature, and the package input each part became:", ""]
        out += ["| MLflow | MLflow type | Package input | dtype |", "|---|---|---|---|"]
        for p in weights.ports:
            mlflow = cards.code(p.mlflow_name) if p.mlflow_name is not None else "(unnamed tensor)"
            out.append(f"| {mlflow} | {p.mlflow_type} | {cards.code(p.field.name)} | {p.field.dtype} |")
        out += [
            "",
            f"MLflow's signature says predict returns {cards.code(sig.outputs or 'nothing stated')}; "
            "the package returns the graph's outputs (see the contract).",
            "",
        ]
    else:
        out += [
            f"MLflow's signature ({sig.kind}) was recorded; the contract is the ONNX graph's inputs and outputs, "
            "which the onnx flavour runs as they are.",
            "",
        ]
    return out


__all__ = ["draft_from_mlflow"]
