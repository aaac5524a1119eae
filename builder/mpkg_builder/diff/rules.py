"""The semantic-versioning rules of `mpkg diff`, as data.

Each rule has a stable id (used in reports and in per-project overrides), a
default bump and the reason for it; spec/semver.md is the same table in prose and
a test keeps the two in step. The engine only decides *which* rule a change
matches; *how much* it bumps comes from here, so a project can re-level a rule
(like cargo-semver-checks lint levels, :mod:`.overrides`) without touching the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum


class Bump(IntEnum):
    """A required version bump; ordered so the overall bump is ``max`` of the findings."""

    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3

    @property
    def label(self) -> str:
        """The lowercase name reports and rule overrides use (``major``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Bump:
        """The bump a label names, in any case; ValueError otherwise."""
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(text) from None


@dataclass(frozen=True)
class Rule:
    """One row of the rule table: its id, default bump, category, and why."""

    id: str
    bump: Bump
    category: str
    summary: str
    rationale: str


MAJOR, MINOR, PATCH = Bump.MAJOR, Bump.MINOR, Bump.PATCH

# Rule ids, one constant each: grep a rule id to find where the engine emits it.
NAME_CHANGED = "name-changed"
MODEL_FORMAT_CHANGED = "model-format-changed"
INPUT_REMOVED = "input-removed"
INPUT_ADDED_REQUIRED = "input-added-required"
INPUT_ADDED_OPTIONAL = "input-added-optional"
INPUT_BECAME_REQUIRED = "input-became-required"
INPUT_BECAME_OPTIONAL = "input-became-optional"
INPUT_DTYPE_WIDENED = "input-dtype-widened"
INPUT_DTYPE_NARROWED = "input-dtype-narrowed"
INPUT_RANK_CHANGED = "input-rank-changed"
INPUT_DIM_CHANGED = "input-dim-changed"
INPUT_DIM_FIXED = "input-dim-fixed"
INPUT_DIM_DYNAMIC = "input-dim-dynamic"
INPUT_DIM_RENAMED = "input-dim-renamed"
INPUT_ENUM_NARROWED = "input-enum-narrowed"
INPUT_ENUM_WIDENED = "input-enum-widened"
INPUT_NULLABLE_REMOVED = "input-nullable-removed"
INPUT_NULLABLE_ADDED = "input-nullable-added"
INPUT_DESCRIPTION_CHANGED = "input-description-changed"
OUTPUT_REMOVED = "output-removed"
OUTPUT_ADDED = "output-added"
OUTPUT_BECAME_OPTIONAL = "output-became-optional"
OUTPUT_BECAME_REQUIRED = "output-became-required"
OUTPUT_DTYPE_WIDENED = "output-dtype-widened"
OUTPUT_DTYPE_NARROWED = "output-dtype-narrowed"
OUTPUT_DTYPE_CHANGED = "output-dtype-changed"
OUTPUT_RANK_CHANGED = "output-rank-changed"
OUTPUT_DIM_CHANGED = "output-dim-changed"
OUTPUT_DIM_DYNAMIC = "output-dim-dynamic"
OUTPUT_DIM_FIXED = "output-dim-fixed"
OUTPUT_DIM_RENAMED = "output-dim-renamed"
OUTPUT_ENUM_WIDENED = "output-enum-widened"
OUTPUT_ENUM_NARROWED = "output-enum-narrowed"
OUTPUT_NULLABLE_ADDED = "output-nullable-added"
OUTPUT_NULLABLE_REMOVED = "output-nullable-removed"
OUTPUT_DESCRIPTION_CHANGED = "output-description-changed"
CONTRACT_ORDER_CHANGED = "contract-order-changed"
TENSOR_ADDED = "tensor-added"
TENSOR_REMOVED = "tensor-removed"
TENSOR_DTYPE_CHANGED = "tensor-dtype-changed"
TENSOR_SHAPE_CHANGED = "tensor-shape-changed"
TENSOR_FILE_CHANGED = "tensor-file-changed"
GRAPH_OPERATORS_CHANGED = "graph-operators-changed"
GRAPH_STRUCTURE_CHANGED = "graph-structure-changed"
GRAPH_INTERFACE_CHANGED = "graph-interface-changed"
GRAPH_INTERFACE_INTERNAL = "graph-interface-internal"
GRAPH_OPSET_CHANGED = "graph-opset-changed"
GRAPH_IR_VERSION_CHANGED = "graph-ir-version-changed"
GRAPH_PRODUCER_CHANGED = "graph-producer-changed"
GRAPH_NAMES_CHANGED = "graph-names-changed"
CLASS_LABELS_CHANGED = "class-labels-changed"
INPUT_EXTRA_IGNORED = "input-extra-ignored"
INPUT_EXTRA_REFUSED = "input-extra-refused"
ARCHITECTURE_CHANGED = "architecture-changed"
ARCHITECTURE_UNKNOWN = "architecture-unknown"
WEIGHTS_FILES_CHANGED = "weights-files-changed"
WEIGHTS_CHANGED = "weights-changed"
ENTRY_POINT_ADDED = "entry-point-added"
ENTRY_POINT_REMOVED = "entry-point-removed"
ENTRY_POINT_SIGNATURE_CHANGED = "entry-point-signature-changed"
CODE_MODULE_CHANGED = "code-module-changed"
CODE_CHANGED = "code-changed"
DEPENDENCY_MAJOR_CHANGED = "dependency-major-changed"
DEPENDENCY_MINOR_CHANGED = "dependency-minor-changed"
DEPENDENCY_PATCH_CHANGED = "dependency-patch-changed"
DEPENDENCY_ADDED = "dependency-added"
DEPENDENCY_REMOVED = "dependency-removed"
PYTHON_NARROWED = "python-narrowed"
PYTHON_WIDENED = "python-widened"
LOCKFILE_CHANGED = "lockfile-changed"
DESCRIPTION_CHANGED = "description-changed"
CARD_CHANGED = "card-changed"
METRICS_CHANGED = "metrics-changed"
PARAMS_CHANGED = "params-changed"
LINEAGE_CHANGED = "lineage-changed"
BUILD_LINEAGE_CHANGED = "build-lineage-changed"
EXAMPLE_CHANGED = "example-changed"
METADATA_CHANGED = "metadata-changed"
OTHER_CHANGED = "other-changed"


# fmt: off
_TABLE: tuple[tuple[str, Bump, str, str, str], ...] = (
    # --- identity and format ---------------------------------------------------------
    (NAME_CHANGED, MAJOR, "package",
     "the package name changed",
     "a different name is a different package; nothing that asked for the old one finds it"),
    (MODEL_FORMAT_CHANGED, MAJOR, "model",
     "the model format changed (e.g. onnx -> safetensors)",
     "loaders, runtimes and serving code for one format cannot load the other"),
    # --- inputs (contravariant: the package must keep accepting what callers send) ----
    (INPUT_REMOVED, MAJOR, "interface",
     "an input was removed or renamed",
     "callers still send it; a rename is a removal plus an addition"),
    (INPUT_ADDED_REQUIRED, MAJOR, "interface",
     "a required input was added",
     "existing callers do not send it"),
    (INPUT_ADDED_OPTIONAL, MINOR, "interface",
     "an optional input was added",
     "existing calls stay valid; new callers gain a feature"),
    (INPUT_BECAME_REQUIRED, MAJOR, "interface",
     "an optional input became required",
     "callers that omit it are now refused"),
    (INPUT_BECAME_OPTIONAL, MINOR, "interface",
     "a required input became optional",
     "every existing call still sends it; omitting it is new"),
    (INPUT_DTYPE_WIDENED, MINOR, "interface",
     "an input dtype widened along a safe cast",
     "every value callers send still fits; the runtime casts (mpkg._internal.contract.dtypes.SAFE_CASTS)"),
    (INPUT_DTYPE_NARROWED, MAJOR, "interface",
     "an input dtype narrowed or changed incompatibly",
     "some values callers send no longer fit the new dtype"),
    (INPUT_RANK_CHANGED, MAJOR, "interface",
     "an input's rank (number of dims) changed",
     "tensors of the old rank are refused"),
    (INPUT_DIM_CHANGED, MAJOR, "interface",
     "a fixed input dim changed size",
     "tensors of the old size are refused"),
    (INPUT_DIM_FIXED, MAJOR, "interface",
     "a dynamic input dim became fixed",
     "callers sending any other size are refused"),
    (INPUT_DIM_DYNAMIC, MINOR, "interface",
     "a fixed input dim became dynamic",
     "the old size is still accepted, and more"),
    (INPUT_DIM_RENAMED, PATCH, "interface",
     "a dynamic input dim was renamed (e.g. batch -> n)",
     "dynamic dims accept any size whatever their name; the name is documentation"),
    (INPUT_ENUM_NARROWED, MAJOR, "interface",
     "an input enum lost values (or gained a restriction)",
     "callers sending a dropped value are refused"),
    (INPUT_ENUM_WIDENED, MINOR, "interface",
     "an input enum gained values (or lost its restriction)",
     "every old value is still accepted"),
    (INPUT_NULLABLE_REMOVED, MAJOR, "interface",
     "an input stopped accepting nulls",
     "callers sending nulls are refused"),
    (INPUT_NULLABLE_ADDED, MINOR, "interface",
     "an input started accepting nulls",
     "every old call is still valid"),
    (INPUT_DESCRIPTION_CHANGED, PATCH, "interface",
     "an input's description changed",
     "documentation only"),
    (OUTPUT_REMOVED, MAJOR, "interface",
     "an output was removed or renamed",
     "consumers read it"),
    # --- outputs (covariant: consumers must keep being able to read what comes back) ---
    (OUTPUT_ADDED, MINOR, "interface",
     "an output was added",
     "consumers ignore fields they do not know"),
    (OUTPUT_BECAME_OPTIONAL, MAJOR, "interface",
     "an output may now be absent",
     "consumers expect it in every response"),
    (OUTPUT_BECAME_REQUIRED, MINOR, "interface",
     "an optional output is now always present",
     "consumers already handle its presence"),
    (OUTPUT_DTYPE_WIDENED, MAJOR, "interface",
     "an output dtype widened",
     "consumers holding the old dtype may not fit the new values"),
    (OUTPUT_DTYPE_NARROWED, MINOR, "interface",
     "an output dtype narrowed along a safe cast",
     "every new value fits what consumers hold (mpkg._internal.contract.dtypes.SAFE_CASTS)"),
    (OUTPUT_DTYPE_CHANGED, MAJOR, "interface",
     "an output dtype changed incompatibly",
     "neither dtype holds the other's values"),
    (OUTPUT_RANK_CHANGED, MAJOR, "interface",
     "an output's rank changed",
     "consumers index the old rank"),
    (OUTPUT_DIM_CHANGED, MAJOR, "interface",
     "a fixed output dim changed size",
     "consumers rely on the old size"),
    (OUTPUT_DIM_DYNAMIC, MAJOR, "interface",
     "a fixed output dim became dynamic",
     "consumers relying on the fixed size may get another"),
    (OUTPUT_DIM_FIXED, MINOR, "interface",
     "a dynamic output dim became fixed",
     "a stronger promise; consumers already handle any size"),
    (OUTPUT_DIM_RENAMED, PATCH, "interface",
     "a dynamic output dim was renamed",
     "the name is documentation"),
    (OUTPUT_ENUM_WIDENED, MAJOR, "interface",
     "an output enum gained values (or lost its restriction)",
     "consumers may receive a value they do not handle"),
    (OUTPUT_ENUM_NARROWED, MINOR, "interface",
     "an output enum lost values (or gained a restriction)",
     "consumers handle every value that can still occur"),
    (OUTPUT_NULLABLE_ADDED, MAJOR, "interface",
     "an output may now be null",
     "consumers do not expect nulls"),
    (OUTPUT_NULLABLE_REMOVED, MINOR, "interface",
     "an output is no longer null",
     "consumers already handle non-null values"),
    (OUTPUT_DESCRIPTION_CHANGED, PATCH, "interface",
     "an output's description changed",
     "documentation only"),
    (CONTRACT_ORDER_CHANGED, PATCH, "interface",
     "inputs or outputs were reordered",
     "fields are matched by name, never by position"),
    (INPUT_EXTRA_IGNORED, MINOR, "interface",
     "inputs the contract does not name are now dropped instead of refused ([contract] extra)",
     "every old call is still valid, and calls carrying extra columns now succeed"),
    (INPUT_EXTRA_REFUSED, MAJOR, "interface",
     "inputs the contract does not name are now refused instead of dropped ([contract] extra)",
     "callers sending extra columns, which used to be dropped, are refused"),
    # --- architecture ------------------------------------------------------------------
    (TENSOR_ADDED, MAJOR, "architecture",
     "a weight tensor was added",
     "a different architecture: fine-tuning, adapters and weight surgery on the old one break"),
    (TENSOR_REMOVED, MAJOR, "architecture",
     "a weight tensor was removed or renamed",
     "code that loads weights by name breaks"),
    (TENSOR_DTYPE_CHANGED, MAJOR, "architecture",
     "a weight tensor's dtype changed",
     "a different numeric architecture (e.g. quantisation); loaders expecting the old dtype break"),
    (TENSOR_SHAPE_CHANGED, MAJOR, "architecture",
     "a weight tensor's shape changed",
     "a different architecture; loading old-shaped weights into it fails"),
    (TENSOR_FILE_CHANGED, PATCH, "architecture",
     "a tensor moved to another weights file",
     "storage layout only; tensors are found by name through the manifest"),
    (GRAPH_OPERATORS_CHANGED, MAJOR, "architecture",
     "the ONNX graph's operator counts changed",
     "a different computation, even with the same interface"),
    (GRAPH_STRUCTURE_CHANGED, MAJOR, "architecture",
     "the ONNX graph structure changed",
     "a different computation (wiring or attributes), even with the same operators"),
    (GRAPH_INTERFACE_CHANGED, PATCH, "architecture",
     "the ONNX graph digest changed only alongside the interface",
     "operators, opsets and initializers are unchanged; the interface findings classify it"),
    (GRAPH_INTERFACE_INTERNAL, PATCH, "architecture",
     "the ONNX graph's inputs or outputs changed behind an unchanged contract",
     "package code adapts the contract to the graph, so callers send and receive the same; "
     "the graph's own interface is private to the package"),
    (GRAPH_OPSET_CHANGED, MAJOR, "architecture",
     "an ONNX opset import changed",
     "operator semantics follow the opset; runtimes lacking the new opset refuse the model"),
    (GRAPH_IR_VERSION_CHANGED, MAJOR, "architecture",
     "the ONNX IR version changed",
     "runtimes older than the new IR version refuse the model"),
    (GRAPH_PRODUCER_CHANGED, PATCH, "metadata",
     "the converter that wrote the ONNX file changed, and the graph is equivalent",
     "same structure and learned parameters: the same computation, written by another tool version"),
    (GRAPH_NAMES_CHANGED, PATCH, "build",
     "the ONNX file differs only in names and documentation (graph/node/value names, doc strings)",
     "names that do not change behaviour; converters write a fresh graph name on every conversion"),
    (CLASS_LABELS_CHANGED, MAJOR, "interface",
     "the class labels a classifier returns changed (added, removed, renamed or reordered)",
     "clients read label values and probability columns by class; a new, missing or moved class breaks them"),
    (ARCHITECTURE_CHANGED, MAJOR, "architecture",
     "another architecture field changed",
     "unknown architecture facts are assumed to matter"),
    (ARCHITECTURE_UNKNOWN, MAJOR, "architecture",
     "weights changed and one package records no architecture to compare",
     "without an architecture summary a retrain cannot be told from a new model"),
    (WEIGHTS_FILES_CHANGED, MAJOR, "architecture",
     "a weights file was added, removed or renamed",
     "consumers that open weights by path break"),
    (WEIGHTS_CHANGED, MINOR, "weights",
     "weight values changed (retrained)",
     "same tensors, new values: callers keep working but get different predictions"),
    # --- code ----------------------------------------------------------------------------
    (ENTRY_POINT_ADDED, MAJOR, "code",
     "an entry point (preprocess/postprocess/predict) was added",
     "the runtime now calls different code on every request: a protocol change"),
    (ENTRY_POINT_REMOVED, MAJOR, "code",
     "an entry point was removed",
     "the runtime's call protocol for the package changed"),
    (ENTRY_POINT_SIGNATURE_CHANGED, MAJOR, "code",
     "an entry point's parameters changed",
     "the runtime calls entry points with fixed arguments"),
    (CODE_MODULE_CHANGED, PATCH, "code",
     "the code module was renamed",
     "the runtime finds it through the manifest"),
    (CODE_CHANGED, PATCH, "code",
     "code files changed with the same entry points",
     "preprocessing fixes behind the same protocol and interface"),
    # --- environment ---------------------------------------------------------------------
    (DEPENDENCY_MAJOR_CHANGED, MAJOR, "dependencies",
     "a locked dependency changed major version",
     "its own SemVer says it breaks; a 0.y change counts as major (Cargo)"),
    (DEPENDENCY_MINOR_CHANGED, MINOR, "dependencies",
     "a locked dependency changed minor version",
     "new features; environments pinned to the old lock must upgrade"),
    (DEPENDENCY_PATCH_CHANGED, PATCH, "dependencies",
     "a locked dependency changed patch version",
     "fixes only"),
    (DEPENDENCY_ADDED, MINOR, "dependencies",
     "a dependency was added to the lock",
     "environments built for the old lock must install it"),
    (DEPENDENCY_REMOVED, PATCH, "dependencies",
     "a dependency was removed from the lock",
     "old environments still satisfy the package"),
    (PYTHON_NARROWED, MAJOR, "dependencies",
     "the supported Python versions narrowed",
     "some Python that ran the old package cannot run the new one"),
    (PYTHON_WIDENED, MINOR, "dependencies",
     "the supported Python versions widened",
     "every old Python still works, and more"),
    (LOCKFILE_CHANGED, PATCH, "dependencies",
     "the lockfile changed without a version change",
     "hashes, markers, comments or the lockfile format"),
    (DESCRIPTION_CHANGED, PATCH, "metadata",
     "the description changed",
     "documentation only"),
    # --- documentation and lineage -------------------------------------------------------
    (CARD_CHANGED, PATCH, "metadata",
     "the model card or its metadata changed",
     "documentation only"),
    (METRICS_CHANGED, PATCH, "lineage",
     "a recorded metric changed",
     "informational; the interface and the architecture are what consumers depend on"),
    (PARAMS_CHANGED, PATCH, "lineage",
     "a training parameter changed",
     "how the weights were made; their effect is covered by weights-changed"),
    (LINEAGE_CHANGED, PATCH, "lineage",
     "data lineage (or another lineage record) changed",
     "provenance only"),
    (BUILD_LINEAGE_CHANGED, PATCH, "build",
     "the git commit or the builder (mpkg, Python, platform) changed",
     "where and how the package was built, not what it holds"),
    (EXAMPLE_CHANGED, PATCH, "metadata",
     "the packaged example or its tolerances changed",
     "a self-test, not part of the interface"),
    (METADATA_CHANGED, PATCH, "build",
     "the packages differ only in version or base",
     "different digests are never the same release"),
    (OTHER_CHANGED, PATCH, "metadata",
     "the manifests differ in a way no other rule classifies (e.g. enum order)",
     "different digests are never the same release; nothing callers rely on moved"),
)
# fmt: on

RULES: Mapping[str, Rule] = {r[0]: Rule(*r) for r in _TABLE}


@dataclass(frozen=True)
class RuleSet:
    """Default levels plus a project's overrides (rule id -> bump)."""

    overrides: Mapping[str, Bump] = field(default_factory=dict)

    def bump(self, rule_id: str) -> Bump:
        """The rule's bump for this project: its override, else the table's default."""
        return self.overrides.get(rule_id, RULES[rule_id].bump)


DEFAULT_RULES = RuleSet()


__all__ = ["DEFAULT_RULES", "RULES", "Bump", "Rule", "RuleSet"]
