"""What ``mpkg.toml`` may say: its tables and keys, and the typed form a checked file takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..diff.rules import DEFAULT_RULES, RuleSet

CONFIG_NAME = "mpkg.toml"

TABLES: dict[str, tuple[set[str], set[str]]] = {
    # table: (required keys, optional keys)
    "package": ({"name"}, {"version", "description"}),
    "model": ({"format", "files"}, set()),
    "code": ({"root", "module"}, set()),
    "environment": ({"lockfile"}, set()),
    "contract": (set(), {"file", "extra"}),
    "card": ({"file"}, set()),
    "lineage": (set(), {"metrics", "params", "data", "origin"}),
    "example": ({"file"}, {"rtol", "atol"}),
    "diff": (set(), {"rules"}),  # rule overrides for `mpkg diff` / `build --base` (spec/semver.md)
}
REQUIRED_TABLES = ("package", "model", "environment", "card")


@dataclass(frozen=True)
class PackageSection:
    """[package]: the name, and the version unless `build --base` infers it."""

    name: str
    version: str | None
    description: str


@dataclass(frozen=True)
class ModelSection:
    """[model]: the weights format and its file(s)."""

    format: Literal["onnx", "safetensors"]
    files: tuple[str, ...]


@dataclass(frozen=True)
class CodeSection:
    """[code]: the folder packed as code and the module the runtime imports."""

    root: str
    module: str


@dataclass(frozen=True)
class DataRef:
    """A dataset that lives elsewhere, named by URI and pinned by digest."""

    uri: str
    digest: str  # "sha256:<hex>", "sha512:<hex>" or "md5:<hex>"


@dataclass(frozen=True)
class LineageSection:
    """[lineage]: where metrics, params, data and origin records come from."""

    metrics: str | None = None
    params: str | None = None
    data: tuple[str, ...] = ()  # DVC files (.dvc, dvc.lock) or plain data files in the source
    refs: tuple[DataRef, ...] = ()  # data = [{uri = "s3://...", digest = "sha256:..."}]
    origin: str | None = None  # JSON object: where the weights came from (written by `mpkg init`)


@dataclass(frozen=True)
class ExampleSection:
    """[example]: the self-test input and its tolerances."""

    file: str
    rtol: float | None = None
    atol: float | None = None


@dataclass(frozen=True)
class SourceConfig:
    """A validated mpkg.toml. Paths are relative POSIX strings, checked to stay inside ``src``."""

    src: Path
    package: PackageSection
    model: ModelSection
    code: CodeSection | None
    lockfile: str
    contract: str | None
    card: str
    lineage: LineageSection
    example: ExampleSection | None
    diff_rules: RuleSet = DEFAULT_RULES  # [diff.rules]: re-levelled rules for `build --base`
    contract_extra: str = "refuse"  # [contract].extra: what requests' inputs the contract lacks get

    def path(self, rel: str) -> Path:
        """Absolute path of a source-relative path named in this config."""
        return self.src / rel


__all__ = [
    "CONFIG_NAME",
    "REQUIRED_TABLES",
    "TABLES",
    "CodeSection",
    "DataRef",
    "ExampleSection",
    "LineageSection",
    "ModelSection",
    "PackageSection",
    "SourceConfig",
]
