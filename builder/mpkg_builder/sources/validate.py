"""Run every source check and report every problem at once.

The build calls this before writing a byte of the archive, so an author sees the whole
list of what to fix (like pypa/build and installer), not one refusal per attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpkg._internal.contract.contract import Contract
from mpkg._internal.format.safetensors import SafetensorsInfo, parse_safetensors
from mpkg.errors import MpkgError, ProblemCollector, SourceError

from ..config import SourceConfig, list_code_files, load_config
from .card import Card, parse_card
from .entry_points import graph_sides, read_entry_points
from .jsonfile import load_json_strict
from .lineage import collect_lineage
from .lockfile import Lockfile, parse_lockfile
from .pickle import sniff_code_executing

if TYPE_CHECKING:  # onnx loads only for an ONNX source: a safetensors build never pays for it
    from .onnx_model import OnnxInfo


@dataclass(frozen=True)
class ValidatedSource:
    """A source checked as a whole: everything the writer needs, nothing left to refuse."""

    config: SourceConfig
    contract: Contract  # declared (when given) or derived from the ONNX graph
    code_files: tuple[str, ...]  # src-relative
    onnx: OnnxInfo | None
    safetensors: tuple[tuple[str, SafetensorsInfo], ...]  # (src-relative file, header)
    lockfile: Lockfile
    card: Card
    lineage: dict[str, Any]
    example: dict[str, Any] | None  # {"inputs": {...}, optional "outputs": {...}}
    entry_points: Mapping[str, list[str]] = field(default_factory=dict)  # read from the code's syntax tree

    @property
    def files(self) -> tuple[str, ...]:
        """Every src-relative file the package carries, sorted, without duplicates."""
        cfg = self.config
        names = {*cfg.model.files, *self.code_files, cfg.lockfile, cfg.card}
        if self.onnx is not None:
            names.update(self.onnx.external_data)
        if cfg.contract:
            names.add(cfg.contract)
        if cfg.example:
            names.add(cfg.example.file)
        return tuple(sorted(names))


def load_contract(path: Path, where: str) -> Contract:
    """Parse contract.json strictly; problems are reported as SourceError naming the file."""
    doc = load_json_strict(path, where)
    if isinstance(doc, dict) and "extra" in doc:
        raise SourceError("'extra' is set in mpkg.toml: [contract] extra = \"ignore\" (one place to say it)", where)
    try:
        return Contract.from_json(doc, where)
    except MpkgError as exc:
        raise SourceError(exc.problems) from None


def check_example(doc: Any, contract: Contract, where: str) -> list[str]:
    """Reasons the example file does not fit the contract's names (values are checked at build)."""
    reasons: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), dict):
        return ['must be a JSON object {"inputs": {name: value}} (optionally "outputs")']
    extra = sorted(set(doc) - {"inputs", "outputs"})
    if extra:
        reasons.append(f"unknown keys {extra}; only 'inputs' and 'outputs' are allowed")
    for side, fields in (("inputs", contract.inputs), ("outputs", contract.outputs)):
        given = doc.get(side)
        if given is None:
            continue
        if not isinstance(given, dict):
            reasons.append(f"'{side}' must be an object of name: value")
            continue
        names = {f.name for f in fields}
        for name in sorted(set(given) - names):
            reasons.append(f"{side}.{name} is not in the contract (it has {sorted(names)})")
        if side == "inputs":
            for f in fields:
                if not f.optional and f.name not in given:
                    reasons.append(f"inputs.{f.name} is required by the contract but missing")
    return reasons


def validate_source(src: Path) -> ValidatedSource:
    """Load mpkg.toml and check every file it names; raise SourceError with all problems."""
    cfg = load_config(src)  # structural problems first: nothing else can be located without it
    problems = ProblemCollector()

    def attempt(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except SourceError as exc:
            problems.extend(exc.problems)
            return None

    code_files: tuple[str, ...] = ()
    if cfg.code is not None:
        code_files = attempt(list_code_files, src, cfg.code.root) or ()
    for rel in (*cfg.model.files, *(f for f in code_files if not f.endswith(".py"))):
        try:
            reason = sniff_code_executing(src / rel)
        except OSError as exc:
            problems.add(rel, f"cannot be read: {exc.strerror}")
            continue
        if reason:
            problems.add(rel, reason)

    declared: Contract | None = None
    if cfg.contract is not None:
        declared = attempt(load_contract, src / cfg.contract, cfg.contract)

    onnx_info: OnnxInfo | None = None
    st_infos: list[tuple[str, SafetensorsInfo]] = []
    flagged = {p.where for p in problems.problems}
    for rel in cfg.model.files:
        if rel in flagged:
            continue  # already refused as code-executing: do not parse it as a model too
        if cfg.model.format == "onnx":
            from .onnx_model import inspect_onnx

            onnx_info = attempt(inspect_onnx, src / rel, src, rel)
        else:
            info = attempt(parse_safetensors, src / rel, rel, SourceError)
            if info is not None:
                st_infos.append((rel, info))
    entry_points = read_entry_points(cfg, problems)
    if onnx_info is not None and declared is not None:
        from .onnx_model import compare_contract

        # The contract is what clients send and receive. Code that adapts one side (preprocess
        # feeds the graph, postprocess shapes its outputs) makes the graph's side internal: the
        # example run checks that chain. Without it, the contract must agree with the graph.
        sides = graph_sides(entry_points)
        problems.extend(compare_contract(declared, onnx_info.contract, cfg.contract or "contract", sides))
    contract = declared if declared is not None else (onnx_info.contract if onnx_info else None)
    if contract is not None and cfg.contract_extra != "refuse":
        contract = replace(contract, extra=cfg.contract_extra)

    lockfile = attempt(parse_lockfile, src / cfg.lockfile, cfg.lockfile)
    card = attempt(parse_card, src / cfg.card, cfg.card)
    lineage = attempt(collect_lineage, src, cfg)

    example: dict[str, Any] | None = None
    if cfg.example is not None:
        doc = attempt(load_json_strict, src / cfg.example.file, cfg.example.file)
        if doc is not None and contract is not None:
            for reason in check_example(doc, contract, cfg.example.file):
                problems.add(cfg.example.file, reason)
            example = doc

    problems.raise_if_any(SourceError)
    assert contract is not None and lockfile is not None and card is not None and lineage is not None
    return ValidatedSource(
        config=cfg,
        contract=contract,
        code_files=code_files,
        onnx=onnx_info,
        safetensors=tuple(st_infos),
        lockfile=lockfile,
        card=card,
        lineage=lineage,
        example=example,
        entry_points=entry_points,
    )
