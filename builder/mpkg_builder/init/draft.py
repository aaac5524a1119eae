"""A source folder before it is written: what each source kind produces for `mpkg init`.

Each source module (from_onnx, from_safetensors, from_mlflow, from_hf) turns what it was
pointed at into a :class:`Draft`; :mod:`.stage` writes, proves and commits it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mpkg._internal.contract.contract import Contract

from ..config import CONFIG_NAME
from ..tomltext import toml_list, toml_string

CARD_NAME = "MODEL_CARD.md"
LOCK_NAME = "requirements.lock"
EXAMPLE_NAME = "example.json"
CONTRACT_NAME = "contract.json"
CODE_ROOT = "src"
INITIAL_VERSION = "0.1.0"

_NAME_PART = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class DraftFile:
    """One file to write: its bytes, or a file to copy (streamed; weights can be large)."""

    rel: str
    data: bytes | None = None
    source: Path | None = None


@dataclass(frozen=True)
class Lineage:
    """Lineage files init writes (metrics, params, origin), each optional."""

    metrics: str | None = None
    params: str | None = None
    origin: str | None = None


@dataclass(frozen=True)
class DraftExample:
    """Inputs init writes to example.json, and a sentence for the card saying where they came from."""

    inputs: Mapping[str, Any]
    origin: str


@dataclass(frozen=True)
class Draft:
    """Everything init learned from a source, before a file is written."""

    name: str
    description: str
    model_format: Literal["onnx", "safetensors"]
    model_files: tuple[str, ...]
    contract: Contract
    card_body: str  # the card up to its "How this package was made" section
    made: tuple[str, ...]  # bullet lines for that section
    files: tuple[DraftFile, ...]  # weights, code, contract, lineage files
    code_module: str | None = None  # under CODE_ROOT
    lineage: Lineage = field(default_factory=Lineage)
    example: DraftExample | None = None  # None: generated from the contract
    card_name: str = CARD_NAME
    notes: tuple[str, ...] = ()  # printed by init: what it decided or could not know


def package_name(hint: str) -> str:
    """A valid package name (``^[a-z][a-z0-9-]{0,63}$``) from a file or folder name."""
    words = [w for w in _NAME_PART.split(hint.lower()) if w]
    name = "-".join(words).lstrip("0123456789-")[:64].rstrip("-")
    return name or "model"


def render_config(draft: Draft) -> str:
    """mpkg.toml for ``draft``: every table init fills, nothing else."""
    lines = [
        "# Written by `mpkg init`. Reference: spec/source.md.",
        "[package]",
        f"name = {toml_string(draft.name)}",
        f"version = {toml_string(INITIAL_VERSION)}",
        f"description = {toml_string(draft.description)}",
        "",
        "[model]",
        f"format = {toml_string(draft.model_format)}",
        f"files = {toml_list(draft.model_files)}",
    ]
    if draft.code_module is not None:
        lines += ["", "[code]", f"root = {toml_string(CODE_ROOT)}", f"module = {toml_string(draft.code_module)}"]
    lines += ["", "[environment]", f"lockfile = {toml_string(LOCK_NAME)}"]
    if any(f.rel == CONTRACT_NAME for f in draft.files):
        lines += ["", "[contract]", f"file = {toml_string(CONTRACT_NAME)}"]
    lines += ["", "[card]", f"file = {toml_string(draft.card_name)}"]
    lineage = [(k, v) for k, v in vars(draft.lineage).items() if v is not None]
    if lineage:
        lines += ["", "[lineage]", *(f"{k} = {toml_string(v)}" for k, v in lineage)]
    lines += ["", "[example]", f"file = {toml_string(EXAMPLE_NAME)}"]
    return "\n".join(lines) + "\n"


def written_files(draft: Draft) -> list[str]:
    """Every file init writes for ``draft``, mpkg.toml last (its presence means complete)."""
    return [*(f.rel for f in draft.files), draft.card_name, LOCK_NAME, EXAMPLE_NAME, CONFIG_NAME]


__all__ = [
    "CARD_NAME",
    "CODE_ROOT",
    "CONTRACT_NAME",
    "EXAMPLE_NAME",
    "LOCK_NAME",
    "Draft",
    "DraftExample",
    "DraftFile",
    "Lineage",
    "package_name",
    "render_config",
    "written_files",
]
