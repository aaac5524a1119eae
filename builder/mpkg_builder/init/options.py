"""What the user gives `mpkg init` besides the source: code, a contract, a run folder, a name."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from mpkg._internal.contract.contract import Contract
from mpkg.errors import MpkgError, Problem, SourceError

from .draft import CODE_ROOT, CONTRACT_NAME, DraftFile
from .reading import MiB, load_json, read_capped

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CODE_MAX = 16 * MiB


@dataclass(frozen=True)
class InitOptions:
    """What the user adds to a source on the command line."""

    code: Path | None = None  # a Python file: predict() for safetensors, pre/postprocess for ONNX
    contract: Path | None = None  # contract.json: required for safetensors, optional for ONNX
    run_dir: Path | None = None  # an MLflow run folder (params/, metrics/), when not found from mlruns/
    name: str | None = None  # the package name (default: from the source's name)


def code_file(options: InitOptions) -> tuple[DraftFile, str] | None:
    """(the code file to write under src/, its module name), or None without --code."""
    if options.code is None:
        return None
    path = options.code
    module = path.stem
    if path.suffix != ".py" or not _MODULE.match(module) or keyword.iskeyword(module):
        raise SourceError(f"{path.name!r} is not an importable Python module file; name it like predict.py", "--code")
    data = read_capped(path, f"--code {path}", CODE_MAX)
    return DraftFile(f"{CODE_ROOT}/{path.name}", data=data), module


def contract_file(options: InitOptions) -> tuple[DraftFile, Contract] | None:
    """(contract.json to write, the parsed contract), or None without --contract."""
    if options.contract is None:
        return None
    where = f"--contract {options.contract}"
    data = read_capped(options.contract, where, 16 * MiB)
    try:
        contract = Contract.from_json(load_json(data, where), where)
    except MpkgError as exc:
        raise SourceError(exc.problems) from None
    return DraftFile(CONTRACT_NAME, data=data), contract


def require_code_and_contract(options: InitOptions, source: str, what: str) -> None:
    """Safetensors carry tensors only: the computation and the interface must come from the user."""
    problems = []
    if options.code is None:
        problems.append(
            f"--code FILE is missing: {what} holds tensors, not the computation; pass a Python file "
            "defining predict(weights, inputs) that returns a dict of name -> array"
        )
    if options.contract is None:
        problems.append(
            f"--contract FILE is missing: {what} does not say what the model takes and returns; pass a "
            "contract.json with its inputs and outputs (spec/format.md §6)"
        )
    if problems:
        raise SourceError([Problem(source, p) for p in problems])


__all__ = ["InitOptions", "code_file", "contract_file", "require_code_and_contract"]
