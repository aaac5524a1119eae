"""`mpkg init --from model.onnx`: the contract comes from the graph."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import onnx
from mpkg._internal.contract.contract import Contract, Field
from mpkg.errors import SourceError

from ..sources.entry_points import entry_points_of, graph_sides
from ..sources.onnx_model import compare_contract, inspect_onnx
from . import card as cards
from .draft import CONTRACT_NAME, Draft, DraftFile, package_name
from .options import InitOptions, code_file, contract_file

_DOC_MAX = 500


def draft_from_onnx(path: Path, options: InitOptions) -> Draft:
    """A draft from an .onnx file: the contract from the graph, the example generated."""
    info = inspect_onnx(path, path.parent, str(path))  # checker, external data kept inside its folder
    model = onnx.load(str(path), load_external_data=False)
    files = [DraftFile(path.name, source=path)]
    files += [DraftFile(rel, source=path.parent / rel) for rel in info.external_data]
    contract, module = user_parts(options, with_descriptions(info.contract, model), info.contract, files)
    name = options.name or package_name(path.stem)
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    made_by = f"made by {cards.code(producer)}, " if producer else ""
    opsets = ", ".join(f"{k} {v}" for k, v in info.opset.items())
    intro = (
        f"An ONNX model ({cards.code(path.name)}, {made_by}opsets {opsets}), "
        "packaged by `mpkg init`. Describe it here in a sentence or two."
    )
    return Draft(
        name=name,
        description=f"ONNX model from {path.name}"[:200] if path.name.isprintable() else "ONNX model",
        model_format="onnx",
        model_files=(path.name,),
        contract=contract,
        card_body=cards.template(name, intro, front_matter={"tags": ["onnx"]}),
        made=(f"Made by `mpkg init` from {cards.code(path.name)}; the contract is the graph's inputs and outputs.",),
        files=tuple(files),
        code_module=module,
    )


def user_parts(
    options: InitOptions, derived: Contract, graph: Contract, files: list[DraftFile]
) -> tuple[Contract, str | None]:
    """(the contract, the code module): the user's --contract (checked against the graph now,
    not at build) or the one derived, written as contract.json; the --code file."""
    given = contract_file(options)
    code = code_file(options)
    if given is not None:
        problems = compare_contract(given[1], graph, str(options.contract), graph_sides(code_entry_points(code)))
        if problems:
            raise SourceError(problems)
        files.append(given[0])
    else:
        files.append(DraftFile(CONTRACT_NAME, data=contract_json(derived)))
    if code is not None:
        files.append(code[0])
    return (given[1] if given else derived), (code[1] if code else None)


def code_entry_points(code: tuple[DraftFile, str] | None) -> list[str]:
    """The entry points the --code file defines (none when it does not parse: the build says why)."""
    if code is None or code[0].data is None:
        return []
    try:
        return list(entry_points_of(ast.parse(code[0].data)))
    except (SyntaxError, ValueError):
        return []


def contract_json(contract: Contract) -> bytes:
    """The contract as init writes it: indented UTF-8 JSON, names as they are."""
    return (json.dumps(contract.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def with_descriptions(contract: Contract, model: onnx.ModelProto) -> Contract:
    """The graph's own doc strings on its inputs and outputs become contract descriptions."""
    docs = {vi.name: vi.doc_string for vi in [*model.graph.input, *model.graph.output]}

    def describe(field: Field) -> Field:
        doc = " ".join(docs.get(field.name, "").split())
        if doc and doc.isprintable() and len(doc) <= _DOC_MAX:
            return dataclasses.replace(field, description=doc)
        return field

    return Contract(tuple(map(describe, contract.inputs)), tuple(map(describe, contract.outputs)))


__all__ = ["contract_json", "draft_from_onnx", "user_parts", "with_descriptions"]
