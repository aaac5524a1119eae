"""ONNX models: the one reader the build calls, over four checks of one loaded model.

The model is loaded without following any external-data location; then every tensor's
external data is checked (:mod:`.onnx_external`), the ONNX checker runs, the contract is
derived from the graph (:mod:`.onnx_contract`) and the architecture summarised
(:mod:`.onnx_architecture`). Every problem found is reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from mpkg._internal.contract.contract import Contract
from mpkg.errors import ProblemCollector, SourceError

from .onnx_architecture import describe_architecture, opsets
from .onnx_contract import ONNX_DTYPES, compare_contract, derive_contract
from .onnx_external import check_external, iter_tensors


@dataclass(frozen=True)
class OnnxInfo:
    """What the build takes from an ONNX model: its contract, external files, opsets and summary."""

    contract: Contract
    external_data: tuple[str, ...]  # src-relative POSIX paths of external-data files
    opset: dict[str, int]  # domain ('ai.onnx' for the default) -> version
    architecture: dict[str, Any]  # small, JSON-able summary (see describe_architecture)


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
        loc = check_external(tensor, f"{where}: {at}", model_dir, src, problems)
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
        opset=opsets(model),
        # The graph's interface is recorded apart from the package contract, which package code
        # may adapt: diff tells a graph interface change behind the same contract (semver.md §4).
        architecture={**describe_architecture(model), "interface": contract.to_json()},
    )


__all__ = [
    "ONNX_DTYPES",
    "OnnxInfo",
    "compare_contract",
    "derive_contract",
    "describe_architecture",
    "inspect_onnx",
    "iter_tensors",
]
