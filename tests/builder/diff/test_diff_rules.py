"""Every diff rule, in both directions, on real manifest documents.

Each case mutates a valid manifest; diffing (base, mutated) must fire exactly the
forward rules with the forward bump, and (mutated, base) exactly the reverse ones.
A final test checks that the cases exercise every rule in the table.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from mpkg.errors import FormatError
from mpkg_builder.diff import RULES, Bump, diff_manifests

from tests.builder.diff.mpkgdiff_factory import (
    FACTORIES,
    Doc,
    digest,
    field_of,
    file_of,
    graph_interface,
    mutate,
    onnx_manifest,
    onnx_split_manifest,
    safetensors_manifest,
)

MAJOR, MINOR, PATCH, NONE = Bump.MAJOR, Bump.MINOR, Bump.PATCH, Bump.NONE
Change = Callable[[Doc], None]
ONNX, CARD = "model/model.onnx", "card/MODEL_CARD.md"


# --- mutation helpers --------------------------------------------------------------------


def set_field(side: str, name: str, **values: Any) -> Change:
    def change(doc: Doc) -> None:
        field_of(doc, side, name).update(values)

    return change


def drop_key(side: str, name: str, key: str) -> Change:
    def change(doc: Doc) -> None:
        field_of(doc, side, name).pop(key, None)

    return change


def drop_field(side: str, name: str) -> Change:
    def change(doc: Doc) -> None:
        doc["contract"][side] = [f for f in doc["contract"][side] if f["name"] != name]

    return change


def set_dim(side: str, name: str, i: int, dim: int | str) -> Change:
    def change(doc: Doc) -> None:
        field_of(doc, side, name)["shape"][i] = dim

    return change


def arch(**values: Any) -> Change:
    def change(doc: Doc) -> None:
        doc["model"]["architecture"].update(values)

    return change


def tensor(tensor_name: str, **values: Any) -> Change:
    def change(doc: Doc) -> None:
        a = doc["model"]["architecture"]
        items = a.get("initializers", a.get("tensors"))
        next(t for t in items if t["name"] == tensor_name).update(values)

    return change


def rename_tensor(name: str, new: str) -> Change:
    return tensor(name, name=new)


def add_tensor(name: str) -> Change:
    def change(doc: Doc) -> None:
        doc["model"]["architecture"]["initializers"].append({"name": name, "dtype": "float32", "shape": [3]})

    return change


def retag(path: str, tag: str) -> Change:
    """Give a file new content (a new digest)."""

    def change(doc: Doc) -> None:
        file_of(doc, path)["digest"] = digest(tag)

    return change


def add_file(path: str, role: str, model_file: bool = False) -> Change:
    def change(doc: Doc) -> None:
        doc["files"].append(
            {
                "path": path,
                "size": 10,
                "digest": digest(path),
                "role": role,
                "encoding": "identity",
            }
        )
        if model_file:
            doc["model"]["files"].append(path)

    return change


def drop_file(path: str) -> Change:
    def change(doc: Doc) -> None:
        doc["files"] = [f for f in doc["files"] if f["path"] != path]

    return change


def entry_points(**eps: list[str]) -> Change:
    def change(doc: Doc) -> None:
        doc["code"]["entry_points"] = eps

    return change


def pin(name: str, version: str | None) -> Change:
    def change(doc: Doc) -> None:
        pkgs = [p for p in doc["environment"]["packages"] if p["name"] != name]
        if version is not None:
            pkgs.append({"name": name, "version": version})
        doc["environment"]["packages"] = sorted(pkgs, key=lambda p: p["name"])

    return change


def env(**values: Any) -> Change:
    def change(doc: Doc) -> None:
        for k, v in values.items():
            if v is None:
                doc["environment"].pop(k, None)
            else:
                doc["environment"][k] = v

    return change


def at(path: str, value: Any) -> Change:
    """Set a value at a dotted path (``lineage.metrics.accuracy``)."""

    def change(doc: Doc) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value

    return change


def both(*changes: Change) -> Change:
    def change(doc: Doc) -> None:
        for c in changes:
            c(doc)

    return change


def rename_code_module(doc: Doc) -> None:
    doc["code"]["module"] = "main"
    file_of(doc, "code/pipeline.py")["path"] = "code/main.py"


def swap_outputs(doc: Doc) -> None:
    doc["contract"]["outputs"].reverse()


def move_tensor_to_shard(doc: Doc) -> None:
    add_file("model/weights-2.safetensors", "weights", model_file=True)(doc)
    tensor("intercept", file="model/weights-2.safetensors")(doc)


def drop_architecture(doc: Doc) -> None:
    doc["model"]["architecture"] = {}
    retag("model/model.onnx", "onnx-v2")(doc)


def to_safetensors(doc: Doc) -> None:
    st = safetensors_manifest()
    doc.clear()
    doc.update(st, name="iris-mlp")


# --- the table ---------------------------------------------------------------------------
# (id, factory, change, forward rules, forward bump, reverse rules, reverse bump)
R = set[str]
GRAPH_2 = "sha256:" + "2" * 64
# fmt: off
CASES: list[tuple[str, str, Change, R, Bump, R, Bump]] = [
    # inputs (contravariant)
    ("input-required-removed", "onnx", drop_field("inputs", "features"),
     {"input-removed"}, MAJOR, {"input-added-required"}, MAJOR),
    ("input-optional-removed", "onnx", drop_field("inputs", "species_hint"),
     {"input-removed"}, MAJOR, {"input-added-optional"}, MINOR),
    ("input-optionality", "onnx", set_field("inputs", "features", optional=True),
     {"input-became-optional"}, MINOR, {"input-became-required"}, MAJOR),
    ("input-dtype-widen", "onnx", set_field("inputs", "features", dtype="float64"),
     {"input-dtype-widened"}, MINOR, {"input-dtype-narrowed"}, MAJOR),
    ("input-dtype-int-widen", "safetensors", set_field("inputs", "tenure", dtype="int64"),
     {"input-dtype-widened"}, MINOR, {"input-dtype-narrowed"}, MAJOR),
    ("input-dtype-incompatible", "onnx", set_field("inputs", "features", dtype="string"),
     {"input-dtype-narrowed"}, MAJOR, {"input-dtype-narrowed"}, MAJOR),
    ("input-rank", "onnx", set_field("inputs", "features", shape=["batch", 2, 2]),
     {"input-rank-changed"}, MAJOR, {"input-rank-changed"}, MAJOR),
    ("input-dim-size", "onnx", set_dim("inputs", "features", 1, 5),
     {"input-dim-changed"}, MAJOR, {"input-dim-changed"}, MAJOR),
    ("input-dim-fixed-to-dynamic", "onnx", set_dim("inputs", "features", 1, "n_features"),
     {"input-dim-dynamic"}, MINOR, {"input-dim-fixed"}, MAJOR),
    ("input-dim-minus-one-to-fixed", "safetensors", set_dim("inputs", "tenure", 0, 16),
     {"input-dim-fixed"}, MAJOR, {"input-dim-dynamic"}, MINOR),
    ("input-dim-renamed", "onnx", set_dim("inputs", "features", 0, "n"),
     {"input-dim-renamed"}, PATCH, {"input-dim-renamed"}, PATCH),
    ("input-dim-named-vs-minus-one", "safetensors", set_dim("inputs", "tenure", 0, "rows"),
     {"input-dim-renamed"}, PATCH, {"input-dim-renamed"}, PATCH),
    ("input-enum-value-added", "onnx",
     set_field("inputs", "species_hint", enum=["setosa", "versicolor", "virginica", "unknown"]),
     {"input-enum-widened"}, MINOR, {"input-enum-narrowed"}, MAJOR),
    ("input-enum-dropped", "onnx", drop_key("inputs", "species_hint", "enum"),
     {"input-enum-widened"}, MINOR, {"input-enum-narrowed"}, MAJOR),
    ("input-enum-value-swapped", "onnx",
     set_field("inputs", "species_hint", enum=["setosa", "versicolor", "other"]),
     {"input-enum-widened", "input-enum-narrowed"}, MAJOR,
     {"input-enum-widened", "input-enum-narrowed"}, MAJOR),
    ("input-nulls", "onnx", set_field("inputs", "features", nullable=True),
     {"input-nullable-added"}, MINOR, {"input-nullable-removed"}, MAJOR),
    ("input-description", "onnx", set_field("inputs", "features", description="centimetres"),
     {"input-description-changed"}, PATCH, {"input-description-changed"}, PATCH),
    # outputs (covariant)
    ("output-removed", "onnx", drop_field("outputs", "probabilities"),
     {"output-removed"}, MAJOR, {"output-added"}, MINOR),
    ("output-dtype-widen", "onnx", set_field("outputs", "probabilities", dtype="float64"),
     {"output-dtype-widened"}, MAJOR, {"output-dtype-narrowed"}, MINOR),
    ("output-dtype-incompatible", "onnx", set_field("outputs", "probabilities", dtype="int64"),
     {"output-dtype-changed"}, MAJOR, {"output-dtype-changed"}, MAJOR),
    ("output-rank", "onnx", set_field("outputs", "probabilities", shape=["batch"]),
     {"output-rank-changed"}, MAJOR, {"output-rank-changed"}, MAJOR),
    ("output-dim-size", "onnx", set_dim("outputs", "probabilities", 1, 4),
     {"output-dim-changed"}, MAJOR, {"output-dim-changed"}, MAJOR),
    ("output-dim-fixed-to-dynamic", "onnx", set_dim("outputs", "probabilities", 1, "classes"),
     {"output-dim-dynamic"}, MAJOR, {"output-dim-fixed"}, MINOR),
    ("output-dim-renamed", "onnx", set_dim("outputs", "probabilities", 0, "n"),
     {"output-dim-renamed"}, PATCH, {"output-dim-renamed"}, PATCH),
    ("output-enum-value-added", "onnx", set_field("outputs", "label", enum=[0, 1, 2, 3]),
     {"output-enum-widened"}, MAJOR, {"output-enum-narrowed"}, MINOR),
    ("output-enum-introduced", "onnx", set_field("outputs", "probabilities", enum=[0.0, 1.0]),
     {"output-enum-narrowed"}, MINOR, {"output-enum-widened"}, MAJOR),
    ("output-nulls", "onnx", set_field("outputs", "probabilities", nullable=True),
     {"output-nullable-added"}, MAJOR, {"output-nullable-removed"}, MINOR),
    ("output-optionality", "onnx", set_field("outputs", "probabilities", optional=True),
     {"output-became-optional"}, MAJOR, {"output-became-required"}, MINOR),
    ("output-description", "onnx", set_field("outputs", "label", description="species index"),
     {"output-description-changed"}, PATCH, {"output-description-changed"}, PATCH),
    ("outputs-reordered", "onnx", swap_outputs,
     {"contract-order-changed"}, PATCH, {"contract-order-changed"}, PATCH),
    ("extra-columns-ignored", "safetensors", lambda doc: doc["contract"].update(extra="ignore"),
     {"input-extra-ignored"}, MINOR, {"input-extra-refused"}, MAJOR),
    # architecture
    ("onnx-tensor-shape", "onnx", tensor("fc1.weight", shape=[32, 4]),
     {"tensor-shape-changed"}, MAJOR, {"tensor-shape-changed"}, MAJOR),
    ("safetensors-tensor-shape", "safetensors", tensor("coef", shape=[9]),
     {"tensor-shape-changed"}, MAJOR, {"tensor-shape-changed"}, MAJOR),
    ("tensor-dtype", "safetensors", tensor("coef", dtype="float16"),
     {"tensor-dtype-changed"}, MAJOR, {"tensor-dtype-changed"}, MAJOR),
    ("tensor-added", "onnx", add_tensor("fc3.bias"),
     {"tensor-added"}, MAJOR, {"tensor-removed"}, MAJOR),
    ("tensor-moved-shard", "safetensors", move_tensor_to_shard,
     {"tensor-file-changed", "weights-files-changed"}, MAJOR,
     {"tensor-file-changed", "weights-files-changed"}, MAJOR),
    ("graph-operators", "onnx",
     arch(operators={"Gemm": 2, "Relu": 2, "Softmax": 1, "ArgMax": 1}, graph_digest=GRAPH_2),
     {"graph-operators-changed", "graph-structure-changed"}, MAJOR,
     {"graph-operators-changed", "graph-structure-changed"}, MAJOR),
    ("graph-rewired", "onnx", arch(graph_digest="sha256:" + "2" * 64),
     {"graph-structure-changed"}, MAJOR, {"graph-structure-changed"}, MAJOR),
    ("graph-digest-with-interface", "onnx",
     both(arch(graph_digest="sha256:" + "2" * 64), set_dim("inputs", "features", 1, "n_features")),
     {"graph-interface-changed", "input-dim-dynamic"}, MINOR,
     {"graph-interface-changed", "input-dim-fixed"}, MAJOR),
    # the graph's inputs changed dtype behind the same contract: preprocess adapts them
    ("graph-interface-behind-contract", "onnx-interface",
     arch(structure_digest=digest("structure-v2"), interface=graph_interface("float64")),
     {"graph-interface-internal"}, PATCH, {"graph-interface-internal"}, PATCH),
    # the same interface, another wiring: a different computation
    ("graph-rewired-same-interface", "onnx-interface", arch(structure_digest=digest("structure-v2")),
     {"graph-structure-changed"}, MAJOR, {"graph-structure-changed"}, MAJOR),
    ("graph-opset", "onnx", arch(opset_imports={"ai.onnx": 18}),
     {"graph-opset-changed"}, MAJOR, {"graph-opset-changed"}, MAJOR),
    ("graph-ir-version", "onnx", arch(ir_version=10),
     {"graph-ir-version-changed"}, MAJOR, {"graph-ir-version-changed"}, MAJOR),
    ("architecture-other-field", "onnx", arch(quantization="int8"),
     {"architecture-changed"}, MAJOR, {"architecture-changed"}, MAJOR),
    ("architecture-missing", "onnx", drop_architecture,
     {"architecture-unknown", "weights-changed"}, MAJOR,
     {"architecture-unknown", "weights-changed"}, MAJOR),
    ("model-format", "onnx", to_safetensors,
     {"model-format-changed"}, MAJOR, {"model-format-changed"}, MAJOR),
    # weights
    ("safetensors-retrained", "safetensors", retag("model/weights.safetensors", "st-v2"),
     {"weights-changed"}, MINOR, {"weights-changed"}, MINOR),
    ("onnx-retrained", "onnx", retag("model/model.onnx", "onnx-v2"),
     {"weights-changed"}, MINOR, {"weights-changed"}, MINOR),
    ("onnx-external-data-added", "onnx", add_file("model/model.onnx.data", "weights"),
     {"weights-files-changed"}, MAJOR, {"weights-files-changed"}, MAJOR),
    # the learned/structure split of converted models (spec/semver.md §4.1)
    ("split-retrained", "onnx-split", both(arch(weights_digest=digest("weights-v2")), retag(ONNX, "x")),
     {"weights-changed"}, MINOR, {"weights-changed"}, MINOR),
    ("split-converted-twice", "onnx-split", retag(ONNX, "renamed"),
     {"graph-names-changed"}, PATCH, {"graph-names-changed"}, PATCH),
    ("split-initializer-renamed", "onnx-split", both(rename_tensor("fc1.weight", "w0"), retag(ONNX, "renamed")),
     {"graph-names-changed"}, PATCH, {"graph-names-changed"}, PATCH),
    ("split-converter-upgrade", "onnx-split",
     both(arch(producer={"name": "skl2onnx", "version": "1.21.0"}), retag(ONNX, "upgraded")),
     {"graph-producer-changed"}, PATCH, {"graph-producer-changed"}, PATCH),
    ("split-new-estimator", "onnx-split",
     both(arch(structure_digest=digest("structure-v2"), weights_digest=digest("weights-v2")), retag(ONNX, "gb")),
     {"graph-structure-changed", "weights-changed"}, MAJOR, {"graph-structure-changed", "weights-changed"}, MAJOR),
    ("split-new-class", "onnx-split", both(arch(class_labels=[[0, 1, 2, 3]]), retag(ONNX, "4 classes")),
     {"class-labels-changed"}, MAJOR, {"class-labels-changed"}, MAJOR),
    ("split-external-data", "onnx-split", retag("model/model.onnx.data", "data-v2"),
     {"weights-changed"}, MINOR, {"weights-changed"}, MINOR),
    ("split-card-author-text", "onnx-split", both(at("card.author_digest", digest("author-v2")), retag(CARD, "c2")),
     {"card-changed"}, PATCH, {"card-changed"}, PATCH),
    ("split-card-generated-only", "onnx-split", both(at("version", "1.0.1"), retag(CARD, "says 1.0.1")),
     {"metadata-changed"}, PATCH, {"metadata-changed"}, PATCH),
    # code
    ("entry-point-added", "onnx", entry_points(preprocess=["inputs"], postprocess=["outputs"]),
     {"entry-point-added"}, MAJOR, {"entry-point-removed"}, MAJOR),
    ("entry-point-params", "onnx", entry_points(postprocess=["outputs", "inputs"]),
     {"entry-point-signature-changed"}, MAJOR, {"entry-point-signature-changed"}, MAJOR),
    ("code-edited", "onnx", retag("code/pipeline.py", "pipeline-v2"),
     {"code-changed"}, PATCH, {"code-changed"}, PATCH),
    ("code-module-renamed", "onnx", rename_code_module,
     {"code-module-changed", "code-changed"}, PATCH,
     {"code-module-changed", "code-changed"}, PATCH),
    ("code-file-added", "safetensors", add_file("code/util.py", "code"),
     {"code-changed"}, PATCH, {"code-changed"}, PATCH),
    # dependencies
    ("dep-major", "onnx", pin("numpy", "2.0.0"),
     {"dependency-major-changed"}, MAJOR, {"dependency-major-changed"}, MAJOR),
    ("dep-minor", "onnx", pin("numpy", "1.27.0"),
     {"dependency-minor-changed"}, MINOR, {"dependency-minor-changed"}, MINOR),
    ("dep-patch", "onnx", pin("numpy", "1.26.5"),
     {"dependency-patch-changed"}, PATCH, {"dependency-patch-changed"}, PATCH),
    ("dep-zero-minor-is-major", "onnx", pin("scipy", "0.14.0"),
     {"dependency-major-changed"}, MAJOR, {"dependency-major-changed"}, MAJOR),
    ("dep-zero-patch-is-minor", "onnx", pin("scipy", "0.13.3"),
     {"dependency-minor-changed"}, MINOR, {"dependency-minor-changed"}, MINOR),
    ("dep-added", "onnx", pin("pandas", "2.2.2"),
     {"dependency-added"}, MINOR, {"dependency-removed"}, PATCH),
    ("python-narrowed", "onnx", env(requires_python=">=3.11"),
     {"python-narrowed"}, MAJOR, {"python-widened"}, MINOR),
    ("python-unbounded", "onnx", env(requires_python=None),
     {"python-widened"}, MINOR, {"python-narrowed"}, MAJOR),
    ("python-upper-bound", "onnx", env(requires_python=">=3.10,<3.13"),
     {"python-narrowed"}, MAJOR, {"python-widened"}, MINOR),
    ("python-same-meaning", "onnx", env(requires_python=">=3.10.0"),
     {"lockfile-changed"}, PATCH, {"lockfile-changed"}, PATCH),
    ("lockfile-bytes", "onnx", retag("environment/requirements.lock", "lock-v2"),
     {"lockfile-changed"}, PATCH, {"lockfile-changed"}, PATCH),
    # documentation and lineage
    ("name", "onnx", at("name", "iris-mlp-2"), {"name-changed"}, MAJOR, {"name-changed"}, MAJOR),
    ("description", "onnx", at("description", "Now with more petals."),
     {"description-changed"}, PATCH, {"description-changed"}, PATCH),
    ("card-metadata", "onnx", at("card.metadata.license", "mit"),
     {"card-changed"}, PATCH, {"card-changed"}, PATCH),
    ("card-text", "onnx", retag("card/MODEL_CARD.md", "card-v2"),
     {"card-changed"}, PATCH, {"card-changed"}, PATCH),
    ("metrics", "onnx", at("lineage.metrics.accuracy", 0.98),
     {"metrics-changed"}, PATCH, {"metrics-changed"}, PATCH),
    ("params", "onnx", at("lineage.params.lr", 0.02),
     {"params-changed"}, PATCH, {"params-changed"}, PATCH),
    ("git", "onnx", at("lineage.git.commit", "b" * 40),
     {"build-lineage-changed"}, PATCH, {"build-lineage-changed"}, PATCH),
    ("builder", "onnx", at("lineage.builder.mpkg", "0.2.0"),
     {"build-lineage-changed"}, PATCH, {"build-lineage-changed"}, PATCH),
    ("data-lineage", "onnx", at("lineage.data", [{"path": "data/iris.csv", "md5": "1" * 32}]),
     {"lineage-changed"}, PATCH, {"lineage-changed"}, PATCH),
    ("lineage-file", "onnx", retag("lineage/params.yaml", "params-v2"),
     {"lineage-changed"}, PATCH, {"lineage-changed"}, PATCH),
    ("example-tolerance", "onnx", at("example.rtol", 1e-4),
     {"example-changed"}, PATCH, {"example-changed"}, PATCH),
    ("example-file", "onnx", retag("example/example.json", "example-v2"),
     {"example-changed"}, PATCH, {"example-changed"}, PATCH),
    ("version-only", "onnx", at("version", "1.0.1"),
     {"metadata-changed"}, PATCH, {"metadata-changed"}, PATCH),
    ("enum-reordered-only", "onnx",
     set_field("inputs", "species_hint", enum=["virginica", "setosa", "versicolor"]),
     {"other-changed"}, PATCH, {"other-changed"}, PATCH),
]
# fmt: on


def _rules(old: Doc, new: Doc) -> tuple[set[str], Bump]:
    report = diff_manifests(old, new)
    return {c.rule for c in report.changes}, report.bump


@pytest.mark.parametrize(
    ("factory", "change", "fwd", "fwd_bump", "rev", "rev_bump"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_rule_both_directions(factory: str, change: Change, fwd: R, fwd_bump: Bump, rev: R, rev_bump: Bump) -> None:
    base = FACTORIES[factory]()
    changed = mutate(base, change)
    rules, bump = _rules(base, changed)
    if "model-format-changed" in fwd:  # a format switch changes everything; the format decides
        assert fwd <= rules
    else:
        assert rules == fwd
    assert bump is fwd_bump
    rules, bump = _rules(changed, base)
    if "model-format-changed" in rev:
        assert rev <= rules
    else:
        assert rules == rev
    assert bump is rev_bump


def test_cases_cover_every_rule() -> None:
    covered = set().union(*(case[3] | case[5] for case in CASES))
    assert covered >= set(RULES), sorted(set(RULES) - covered)


def test_identical_manifests_are_none() -> None:
    doc = onnx_manifest()
    report = diff_manifests(doc, onnx_manifest())
    assert report.bump is NONE and report.changes == ()
    assert report.suggested_version == "1.0.0"


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_any_difference_is_at_least_patch(kind: str) -> None:
    base = FACTORIES[kind]()
    changed = mutate(base, at("lineage.builder.python", "3.12"))
    report = diff_manifests(base, changed)
    assert report.bump >= PATCH and report.old_digest != report.new_digest


def test_subject_paths_name_the_exact_dim() -> None:
    base = onnx_manifest()
    report = diff_manifests(base, mutate(base, set_dim("inputs", "features", 1, 5)))
    (change,) = report.changes
    assert (change.subject, change.old, change.new) == ("inputs.features.shape[1]", 4, 5)
    assert change.category == "interface" and change.bump is MAJOR


def test_dependency_names_are_normalised() -> None:
    """Manifests hold PEP 503 names (a package pinning "NumPy" is refused); diff still compares
    normalised names when handed raw documents, e.g. a plan from another tool."""
    base = onnx_manifest()
    with pytest.raises(FormatError, match=r"environment\.packages"):
        mutate(base, both(pin("numpy", None), pin("NumPy", "1.26.4")))
    changed = copy.deepcopy(base)
    both(pin("numpy", None), pin("NumPy", "1.26.4"))(changed)
    assert diff_manifests(base, changed).changes[0].rule == "other-changed"


def test_onnx_weights_digest_separates_retrain_from_graph_edit() -> None:
    """With a digest of learned values alone (and no structure digest: graph_digest decides),
    a graph-only edit is not a retrain."""
    base = mutate(onnx_manifest(), arch(weights_digest="sha256:" + "3" * 64))
    retrained = mutate(base, both(arch(weights_digest="sha256:" + "4" * 64), retag("model/model.onnx", "x")))
    rules, bump = _rules(base, retrained)
    assert rules == {"weights-changed"} and bump is MINOR
    metadata_only = mutate(base, retag("model/model.onnx", "producer-name-changed"))
    rules, bump = _rules(base, metadata_only)
    assert rules == {"graph-names-changed"} and bump is PATCH
    relabelled = mutate(base, both(retag("model/model.onnx", "y"), arch(graph_digest="sha256:" + "5" * 64)))
    rules, _ = _rules(base, relabelled)
    assert rules == {"graph-structure-changed"}


def test_split_against_a_package_built_before_it_compares_graph_digests() -> None:
    """A package built before the split (graph_digest only) still diffs against one built after."""
    legacy = onnx_manifest()
    split = onnx_split_manifest()
    rules, bump = _rules(legacy, mutate(split, drop_file("model/model.onnx.data")))
    assert "architecture-changed" not in rules and "graph-structure-changed" not in rules, rules
    assert bump is PATCH, rules


def test_class_label_message_names_gained_and_lost() -> None:
    base = onnx_split_manifest()
    change = next(
        c
        for c in diff_manifests(base, mutate(base, arch(class_labels=[[0, 2, 7]]))).changes
        if c.rule == "class-labels-changed"
    )
    assert change.message == "class labels changed (gained 7, lost 1)"


def test_metrics_are_reported_with_deltas() -> None:
    base = onnx_manifest()
    changed = mutate(base, both(at("lineage.metrics.accuracy", 0.98), at("lineage.metrics.recall", 0.5)))
    report = diff_manifests(base, changed)
    (acc, f1) = report.metrics
    assert (acc.name, acc.old, acc.new) == ("accuracy", 0.97, 0.98)
    assert acc.delta == pytest.approx(0.01)
    assert (f1.name, f1.delta) == ("f1", 0.0)
    assert {c.subject for c in report.changes} == {
        "lineage.metrics.accuracy",
        "lineage.metrics.recall",
    }


def test_json_shape() -> None:
    base = onnx_manifest()
    doc = diff_manifests(base, mutate(base, set_dim("inputs", "features", 1, 5))).to_json()
    assert {"bump", "from_version", "to_version", "suggested_version", "changes"} <= set(doc)
    assert doc["bump"] == "major" and doc["suggested_version"] == "2.0.0"
    assert set(doc["changes"][0]) >= {"bump", "category", "subject", "old", "new", "message"}


def test_findings_are_sorted_by_bump_then_subject() -> None:
    base = onnx_manifest()
    changed = mutate(
        base,
        both(
            at("description", "x"),
            set_dim("inputs", "features", 1, 5),
            pin("numpy", "1.27.0"),
            set_field("outputs", "probabilities", dtype="float64"),
        ),
    )
    report = diff_manifests(base, changed)
    bumps = [c.bump for c in report.changes]
    assert bumps == sorted(bumps, reverse=True)
    assert [c.rule for c in report.changes] == [
        "input-dim-changed",
        "output-dtype-widened",
        "dependency-minor-changed",
        "description-changed",
    ]
