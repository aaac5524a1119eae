"""Typed, read-only views of the manifest fields `mpkg diff` compares, built once per manifest.

The section differs read these instead of the raw JSON, so the shape of a manifest (which
keys are optional, what an absent one means) is decided here once. The document is one the
runtime's parser accepted (a package) or one the builder wrote (a build in progress, which
may still lack ``version``, ``files`` or a rendered card); free-form parts (card metadata,
lineage records, architecture facts no rule names) stay JSON values and are compared as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mpkg._internal.contract.contract import Contract
from mpkg._internal.format import canonical
from mpkg._internal.format.digests import package_digest
from mpkg._internal.format.manifest import Manifest
from mpkg.errors import ContractError

ManifestLike = Manifest | Mapping[str, Any]

# Lineage records that say where and how a package was built, not what it holds.
BUILD_RECORDS = ("git", "builder")
# Architecture facts the ONNX and tensor differs read; any other key is compared as a value.
ONNX_FACTS = frozenset(
    {"kind", "ir_version", "opsets", "opset_imports", "operators", "graph_digest", "initializers"}
    | {"weights_digest", "structure_digest", "class_labels", "producer", "interface"}
)
TENSOR_FACTS = frozenset({"kind", "tensors"})


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class TensorView:
    """One weight tensor (safetensors) or initializer (ONNX): what a loader needs to match."""

    name: str
    dtype: str | None
    shape: tuple[int, ...] | None
    file: str | None = None  # safetensors only

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> TensorView:
        """The view of one ``tensors``/``initializers`` entry."""
        shape = doc.get("shape")
        return cls(doc["name"], doc.get("dtype"), None if shape is None else tuple(shape), doc.get("file"))

    @property
    def shape_json(self) -> list[int] | None:
        """The shape as the manifest writes it (a list), for findings and messages."""
        return None if self.shape is None else list(self.shape)


@dataclass(frozen=True)
class Producer:
    """The converter that wrote an ONNX file (``?`` where the manifest does not say)."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class ArchitectureView:
    """``model.architecture``: the facts that tell a retrain from a different model."""

    kind: str | None
    ir_version: int | None
    opsets: Mapping[str, int]
    operators: Mapping[str, int]
    graph_digest: str | None
    structure_digest: str | None
    weights_digest: str | None
    class_labels: tuple[Any, ...]  # per labelled node: a list of labels, or the digest of a long one
    producer: Producer | None
    initializers: tuple[TensorView, ...]
    tensors: tuple[TensorView, ...]
    other: Mapping[str, Any]  # facts no rule names, compared as values
    # The ONNX graph's own inputs and outputs, which package code may adapt to the contract;
    # None where the package does not record it (built before it was recorded).
    interface: Contract | None = None

    @classmethod
    def of(cls, doc: Mapping[str, Any], model_format: str | None) -> ArchitectureView:
        """The view of a non-empty architecture of a model in ``model_format``."""
        producer = doc.get("producer") or {}
        known = ONNX_FACTS if model_format == "onnx" else TENSOR_FACTS
        return cls(
            kind=doc.get("kind"),
            ir_version=doc.get("ir_version"),
            opsets=dict(doc.get("opsets", doc.get("opset_imports", {}))),
            operators=dict(doc.get("operators", {})),
            graph_digest=doc.get("graph_digest"),
            structure_digest=_text(doc.get("structure_digest")),
            weights_digest=_text(doc.get("weights_digest")),
            class_labels=tuple(doc.get("class_labels", [])),
            producer=Producer(producer.get("name", "?"), producer.get("version", "?")) if producer else None,
            initializers=tuple(TensorView.of(t) for t in doc.get("initializers", [])),
            tensors=tuple(TensorView.of(t) for t in doc.get("tensors", [])),
            other={k: v for k, v in doc.items() if k not in known},
            interface=_contract(doc["interface"]) if "interface" in doc and model_format == "onnx" else None,
        )


@dataclass(frozen=True)
class ModelView:
    """``model``: its format, the files that hold it, and its architecture if recorded."""

    format: str | None
    files: tuple[str, ...]
    architecture: ArchitectureView | None  # None when absent or empty: nothing to compare

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ModelView:
        """The view of a ``model`` object."""
        fmt = doc.get("format")
        arch = doc.get("architecture") or {}
        return cls(fmt, tuple(doc.get("files", [])), ArchitectureView.of(arch, fmt) if arch else None)


@dataclass(frozen=True)
class CodeView:
    """``code``: the module the runtime imports and the entry points it calls."""

    module: str | None
    entry_points: Mapping[str, tuple[str, ...]]  # entry point -> parameter names

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> CodeView:
        """The view of a ``code`` object."""
        eps: Mapping[str, list[str]] = doc.get("entry_points", {})
        return cls(doc.get("module"), {ep: tuple(params) for ep, params in eps.items()})


@dataclass(frozen=True)
class Pin:
    """One locked dependency, as the lockfile names it."""

    name: str
    version: str


@dataclass(frozen=True)
class EnvironmentView:
    """``environment``: the lockfile, its pins and the supported Pythons."""

    lockfile: str | None
    kind: str | None
    requires_python: str | None
    packages: tuple[Pin, ...]

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> EnvironmentView:
        """The view of an ``environment`` object (empty when absent)."""
        pins = tuple(Pin(p["name"], p["version"]) for p in doc.get("packages", []))
        return cls(doc.get("lockfile"), doc.get("kind"), doc.get("requires_python"), pins)


@dataclass(frozen=True)
class LineageView:
    """``lineage``: free-form provenance records (git, data, params, metrics, builder, …)."""

    records: Mapping[str, Any]

    def names(self) -> set[str]:
        """The records present."""
        return set(self.records)

    def record(self, name: str) -> Any:
        """One record's JSON value, None when absent."""
        return self.records.get(name)


@dataclass(frozen=True)
class CardView:
    """``card``: where the model card is, its metadata, and the digest of the author's words."""

    path: str | None
    author_digest: str | None  # only packages built since the card split record it
    metadata: Mapping[str, Any]

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> CardView:
        """The view of a ``card`` object."""
        return cls(doc.get("path"), _text(doc.get("author_digest")), doc.get("metadata") or {})


@dataclass(frozen=True)
class ExampleView:
    """``example``: the packaged self-test and its tolerances."""

    path: Any
    rtol: Any
    atol: Any

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ExampleView:
        """The view of an ``example`` object."""
        return cls(doc.get("path"), doc.get("rtol"), doc.get("atol"))

    def to_json(self) -> dict[str, Any]:
        """The object as the manifest writes it, for the added/removed finding."""
        return {"path": self.path, "rtol": self.rtol, "atol": self.atol}


@dataclass(frozen=True)
class FileView:
    """One ``files`` entry: a member's path, size, digest, encoding and role."""

    path: str
    size: Any
    digest: str
    encoding: Any
    role: str  # "" when the entry names none

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> FileView:
        """The view of one ``files`` entry."""
        return cls(doc["path"], doc.get("size"), doc["digest"], doc.get("encoding"), doc.get("role", ""))


@dataclass(frozen=True)
class ManifestView:
    """One side of a diff: every field a section differ compares, typed."""

    digest: str
    name: str | None
    version: str | None  # a build in progress has none yet
    description: str
    contract: Contract  # empty when unreadable: every field then counts as added or removed
    model: ModelView
    code: CodeView | None
    environment: EnvironmentView
    lineage: LineageView
    card: CardView | None  # a build in progress has not rendered its card yet
    example: ExampleView | None
    files: tuple[FileView, ...] | None  # None: a build in progress has not hashed its files yet
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def of(cls, manifest: ManifestLike) -> ManifestView:
        """The view of a parsed manifest or of a manifest document (its digest computed here)."""
        if isinstance(manifest, Manifest):
            doc, digest = manifest.raw, str(manifest.digest)
        else:
            doc, digest = manifest, str(package_digest(canonical.dumps(manifest)))
        code, card, example = doc.get("code"), doc.get("card"), doc.get("example")
        return cls(
            digest=digest,
            name=doc.get("name"),
            version=doc.get("version"),
            description=doc.get("description", ""),
            contract=_contract(doc.get("contract")),
            model=ModelView.of(doc.get("model", {})),
            code=CodeView.of(code) if code else None,
            environment=EnvironmentView.of(doc.get("environment", {})),
            lineage=LineageView(doc.get("lineage") or {}),
            card=None if card is None else CardView.of(card),
            example=None if example is None else ExampleView.of(example),
            files=tuple(FileView.of(f) for f in doc["files"]) if "files" in doc else None,
            raw=doc,
        )

    def all_files(self) -> tuple[FileView, ...]:
        """The files, none yet for a build in progress."""
        return self.files or ()

    def weights(self) -> dict[str, str]:
        """Weights files by path -> digest."""
        return {f.path: f.digest for f in self.all_files() if f.role == "weights"}

    def release_content(self) -> dict[str, Any]:
        """The manifest less what says how and when it was built: version, base, git and builder
        lineage, and the card file (its own words are compared by author digest or card rules;
        the rest is generated from the fields compared here)."""
        out = {k: v for k, v in self.raw.items() if k not in ("version", "base", "files")}
        out["lineage"] = {k: v for k, v in self.lineage.records.items() if k not in BUILD_RECORDS}
        out["files"] = [f for f in self.all_files() if f.role != "card"]
        return out


def _contract(doc: object) -> Contract:
    try:
        return Contract.from_json(doc)
    except ContractError:
        return Contract((), ())


__all__ = [
    "BUILD_RECORDS",
    "ArchitectureView",
    "CardView",
    "CodeView",
    "EnvironmentView",
    "ExampleView",
    "FileView",
    "LineageView",
    "ManifestLike",
    "ManifestView",
    "ModelView",
    "Pin",
    "Producer",
    "TensorView",
]
