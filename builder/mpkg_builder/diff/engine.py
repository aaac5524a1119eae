"""The diff engine: two manifests in, classified findings out.

Everything it needs is in the manifest (contract, architecture summary, per-file
digests, lockfile pins, lineage), so diffing two multi-GB packages parses two
small JSON documents and never touches a tensor. The engine decides which rule
each difference matches; :mod:`.rules` says how big a bump that rule requires.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mpkg._internal.contract.contract import Contract, Field
from mpkg._internal.contract.dtypes import is_safe_cast
from mpkg._internal.format import canonical
from mpkg._internal.format.digests import Digest, hash_bytes, hash_range, package_digest
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.format.package import read_manifest
from mpkg.errors import ContractError, Problem, SourceError
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import rules as R
from .rules import DEFAULT_RULES, RULES, Bump, RuleSet
from .versions import SemVer, bump_version, level_of, precedes

CONFIG_VERSION_KEY = "mpkg.toml: [package].version"


@dataclass(frozen=True)
class Change:
    """One finding: what changed (``subject``, e.g. ``inputs.x.shape[1]``) and its bump."""

    rule: str
    bump: Bump
    category: str
    subject: str
    old: Any
    new: Any
    message: str
    diff: str | None = None  # a bounded unified diff of the text (card, code, lockfile), escaped

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "bump": self.bump.label,
            "category": self.category,
            "subject": self.subject,
            "old": self.old,
            "new": self.new,
            "message": self.message,
            "diff": self.diff,
        }


@dataclass(frozen=True)
class MetricDelta:
    """A metric in both packages, old -> new (informational, like `dvc metrics diff`)."""

    name: str
    old: float
    new: float

    @property
    def delta(self) -> float:
        return self.new - self.old

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old, "new": self.new, "delta": self.delta}


@dataclass(frozen=True)
class DiffReport:
    name: str
    from_version: str
    to_version: str | None
    old_digest: str
    new_digest: str
    changes: tuple[Change, ...]
    metrics: tuple[MetricDelta, ...] = ()

    @property
    def bump(self) -> Bump:
        """The highest finding; NONE only for equal digests (otherwise there is a finding)."""
        return max((c.bump for c in self.changes), default=Bump.NONE)

    @property
    def suggested_version(self) -> str:
        return bump_version(self.from_version, self.bump)

    @property
    def version_ok(self) -> bool:
        """The new package's own version is at least the suggested one (always true without one)."""
        if self.to_version is None or self.bump is Bump.NONE:
            return True
        return not precedes(self.to_version, self.suggested_version)

    def at_least(self, bump: Bump) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.bump >= bump)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bump": self.bump.label,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "suggested_version": self.suggested_version,
            "version_ok": self.version_ok,
            "old_digest": self.old_digest,
            "new_digest": self.new_digest,
            "changes": [c.to_json() for c in self.changes],
            "metrics": [m.to_json() for m in self.metrics],
        }


ManifestLike = Manifest | Mapping[str, Any]


def _doc(m: ManifestLike) -> tuple[Mapping[str, Any], str]:
    if isinstance(m, Manifest):
        return m.raw, str(m.digest)
    return m, str(package_digest(canonical.dumps(m)))


def diff_manifests(old: ManifestLike, new: ManifestLike, rules: RuleSet = DEFAULT_RULES) -> DiffReport:
    """Classify every difference between two manifests (parsed or as JSON documents).

    ``new`` may lack ``version`` (a build that is about to infer it).
    """
    old_doc, old_digest = _doc(old)
    new_doc, new_digest = _doc(new)
    d = _Differ(rules)
    if old_digest != new_digest:
        _diff_all(d, old_doc, new_doc)
        if not d.changes and _without_build_metadata(old_doc) == _without_build_metadata(new_doc):
            d.add(
                R.METADATA_CHANGED,
                "version",
                old_doc.get("version"),
                new_doc.get("version"),
                "the packages differ only in version or base; a new release is at least a patch",
            )
        elif not d.changes:
            d.add(
                R.OTHER_CHANGED,
                "manifest",
                old_digest,
                new_digest,
                "the manifests differ in a way no other rule classifies (e.g. enum order)",
            )
    new_version = new_doc.get("version")
    return DiffReport(
        name=str(new_doc.get("name", old_doc.get("name", ""))),
        from_version=str(old_doc.get("version", "0.0.0")),
        to_version=new_version if isinstance(new_version, str) else None,
        old_digest=old_digest,
        new_digest=new_digest,
        changes=tuple(sorted(d.changes, key=lambda c: (-c.bump, c.category, c.subject, c.rule))),
        metrics=_metric_deltas(old_doc, new_doc),
    )


def _without_build_metadata(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest less what says how and when it was built: version, base, git and builder
    lineage, and the card file (its own words are compared by author digest or card rules;
    the rest is generated from the fields compared here)."""
    out = {k: v for k, v in doc.items() if k not in ("version", "base", "files")}
    out["lineage"] = {k: v for k, v in (doc.get("lineage") or {}).items() if k not in _BUILD_LINEAGE}
    out["files"] = [f for f in doc.get("files", []) if f.get("role") != "card"]
    return out


def diff_packages(
    old: str | os.PathLike[str], new: str | os.PathLike[str], rules: RuleSet = DEFAULT_RULES
) -> DiffReport:
    """Diff two .mpkg files by their manifests: parses layout and manifest, reads no weights.

    Card, code and lockfile findings carry a bounded diff of their text (small members only,
    each checked against its manifest digest).
    """
    from .textdiff import with_text_diffs

    manifests = (read_manifest(old), read_manifest(new))
    return with_text_diffs(diff_manifests(*manifests, rules), old, new, manifests)


# --- the engine ---------------------------------------------------------------------------


class _Differ:
    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.changes: list[Change] = []

    def add(self, rule: str, subject: str, old: Any, new: Any, message: str) -> None:
        self.changes.append(Change(rule, self.rules.bump(rule), RULES[rule].category, subject, old, new, message))


def _diff_all(d: _Differ, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    if old.get("name") != new.get("name"):
        d.add(
            "name-changed",
            "name",
            old.get("name"),
            new.get("name"),
            f"package name changed from {old.get('name')!r} to {new.get('name')!r}",
        )
    if old.get("description", "") != new.get("description", ""):
        d.add(
            "description-changed",
            "description",
            old.get("description", ""),
            new.get("description", ""),
            "description changed",
        )
    _diff_contract(d, old.get("contract"), new.get("contract"))
    _diff_model(d, old, new)
    _diff_code(d, old.get("code"), new.get("code"))
    _diff_environment(d, old.get("environment", {}), new.get("environment", {}))
    _diff_lineage(d, old.get("lineage", {}), new.get("lineage", {}))
    _diff_card(d, old.get("card"), new.get("card"))
    _diff_example(d, old.get("example"), new.get("example"))
    _diff_files(d, old, new)


# --- contract -----------------------------------------------------------------------------


def _contract(doc: object) -> Contract:
    try:
        return Contract.from_json(doc)
    except ContractError:
        return Contract((), ())


def _diff_contract(d: _Differ, old_doc: object, new_doc: object) -> None:
    old, new = _contract(old_doc), _contract(new_doc)
    for side in ("inputs", "outputs"):
        olds: tuple[Field, ...] = getattr(old, side)
        news: tuple[Field, ...] = getattr(new, side)
        by_old = {f.name: f for f in olds}
        by_new = {f.name: f for f in news}
        is_in = side == "inputs"
        kind = "input" if is_in else "output"
        for name, f in by_old.items():
            if name not in by_new:
                d.add(
                    f"{kind}-removed",
                    f"{side}.{name}",
                    _brief(f),
                    None,
                    f"{kind} {name!r} was removed (a rename counts as removed + added)",
                )
        for name, f in by_new.items():
            if name in by_old:
                _diff_field(d, side, by_old[name], f)
            elif not is_in:
                d.add("output-added", f"{side}.{name}", None, _brief(f), f"output {name!r} was added")
            elif f.optional:
                d.add(
                    "input-added-optional",
                    f"{side}.{name}",
                    None,
                    _brief(f),
                    f"optional input {name!r} was added",
                )
            else:
                d.add(
                    "input-added-required",
                    f"{side}.{name}",
                    None,
                    _brief(f),
                    f"required input {name!r} was added; existing callers do not send it",
                )
        common_old = [f.name for f in olds if f.name in by_new]
        common_new = [f.name for f in news if f.name in by_old]
        if common_old != common_new:
            d.add("contract-order-changed", side, common_old, common_new, f"{side} were reordered")
    if old.extra != new.extra:
        rule = R.INPUT_EXTRA_IGNORED if new.extra == "ignore" else R.INPUT_EXTRA_REFUSED
        d.add(rule, "contract.extra", old.extra, new.extra, f"inputs the contract does not name: {new.extra}d")


def _brief(f: Field) -> str:
    text = f"{f.dtype}{list(f.shape)}"
    if f.optional:
        text += " optional"
    if f.nullable:
        text += " nullable"
    return text


def _diff_field(d: _Differ, side: str, old: Field, new: Field) -> None:
    at = f"{side}.{old.name}"
    is_in = side == "inputs"
    kind = "input" if is_in else "output"
    if old.optional != new.optional:
        if is_in:
            rule = "input-became-required" if old.optional else "input-became-optional"
        else:
            rule = "output-became-required" if old.optional else "output-became-optional"
        d.add(
            rule,
            f"{at}.optional",
            old.optional,
            new.optional,
            f"{kind} {old.name!r} is now {'optional' if new.optional else 'required'}",
        )
    if old.dtype != new.dtype:
        widened = is_safe_cast(old.dtype, new.dtype)
        narrowed = is_safe_cast(new.dtype, old.dtype)
        if is_in:
            rule = "input-dtype-widened" if widened else "input-dtype-narrowed"
        else:
            rule = (
                "output-dtype-widened" if widened else "output-dtype-narrowed" if narrowed else "output-dtype-changed"
            )
        how = "widened" if widened else "narrowed" if narrowed else "changed incompatibly"
        d.add(
            rule,
            f"{at}.dtype",
            old.dtype,
            new.dtype,
            f"{kind} {old.name!r} dtype {how}: {old.dtype} -> {new.dtype}",
        )
    if len(old.shape) != len(new.shape):
        d.add(
            f"{kind}-rank-changed",
            f"{at}.shape",
            list(old.shape),
            list(new.shape),
            f"{kind} {old.name!r} rank changed from {len(old.shape)} to {len(new.shape)}",
        )
    else:
        for i, (a, b) in enumerate(zip(old.shape, new.shape, strict=True)):
            _diff_dim(d, kind, old.name, f"{at}.shape[{i}]", i, a, b)
    if old.nullable != new.nullable:
        rule = f"{kind}-nullable-added" if new.nullable else f"{kind}-nullable-removed"
        what = (
            ("now accepts nulls" if new.nullable else "no longer accepts nulls")
            if is_in
            else ("may now be null" if new.nullable else "is no longer null")
        )
        d.add(rule, f"{at}.nullable", old.nullable, new.nullable, f"{kind} {old.name!r} {what}")
    _diff_enum(d, kind, old, new, at)
    if old.description != new.description:
        d.add(
            f"{kind}-description-changed",
            f"{at}.description",
            old.description,
            new.description,
            f"{kind} {old.name!r} description changed",
        )


def _is_fixed(dim: int | str) -> bool:
    return isinstance(dim, int) and dim >= 0


def _diff_dim(d: _Differ, kind: str, name: str, at: str, i: int, a: int | str, b: int | str) -> None:
    if a == b:
        return
    where = f"{kind} {name!r} dim {i}"
    if _is_fixed(a) and _is_fixed(b):
        d.add(f"{kind}-dim-changed", at, a, b, f"{where} changed from {a} to {b}")
    elif _is_fixed(a):
        d.add(f"{kind}-dim-dynamic", at, a, b, f"{where} changed from fixed {a} to dynamic {b!r}")
    elif _is_fixed(b):
        d.add(f"{kind}-dim-fixed", at, a, b, f"{where} changed from dynamic {a!r} to fixed {b}")
    else:
        d.add(f"{kind}-dim-renamed", at, a, b, f"{where} renamed from {a!r} to {b!r} (still dynamic)")


def _diff_enum(d: _Differ, kind: str, old: Field, new: Field, at: str) -> None:
    """``None`` means any value: adding an enum restricts, dropping it frees."""
    if old.enum == new.enum:
        return
    olds = None if old.enum is None else {repr(v) for v in old.enum}
    news = None if new.enum is None else {repr(v) for v in new.enum}
    if olds == news:
        return  # reordered only
    if olds is None:
        lost, gained = "every value outside " + _show(sorted(news or ())), ""
    elif news is None:
        lost, gained = "", "every value (the restriction was removed)"
    else:
        lost, gained = _show(sorted(olds - news)), _show(sorted(news - olds))
    old_v = None if old.enum is None else list(old.enum)
    new_v = None if new.enum is None else list(new.enum)
    if lost:
        d.add(
            f"{kind}-enum-narrowed",
            f"{at}.enum",
            old_v,
            new_v,
            f"{kind} {old.name!r} enum lost {lost}",
        )
    if gained:
        d.add(
            f"{kind}-enum-widened",
            f"{at}.enum",
            old_v,
            new_v,
            f"{kind} {old.name!r} enum gained {gained}",
        )


def _show(values: list[str]) -> str:
    return ", ".join(values)


# --- model and architecture ---------------------------------------------------------------


def _diff_model(d: _Differ, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    om, nm = old.get("model", {}), new.get("model", {})
    if om.get("format") != nm.get("format"):
        d.add(
            R.MODEL_FORMAT_CHANGED,
            "model.format",
            om.get("format"),
            nm.get("format"),
            f"model format changed from {om.get('format')} to {nm.get('format')}",
        )
        return  # architectures of different formats are not comparable
    oa, na = om.get("architecture") or {}, nm.get("architecture") or {}
    if not oa or not na:
        if _weights(old) != _weights(new):
            which = "old" if not oa else "new"
            d.add(
                R.ARCHITECTURE_UNKNOWN,
                "model.architecture",
                bool(oa),
                bool(na),
                f"the {which} package records no architecture; retrain or new model? unknown",
            )
        return
    if om.get("format") == "onnx":
        known = {"kind", "ir_version", "opsets", "opset_imports", "operators", "graph_digest", "initializers"}
        known |= {"weights_digest", "structure_digest", "class_labels", "producer", "interface"}
        split = _onnx_split(old, new)
        _diff_onnx(d, oa, na, old.get("contract"), new.get("contract"), split)
        if _onnx_weights_digests(old, new) and oa["weights_digest"] != na["weights_digest"]:
            d.add(
                R.WEIGHTS_CHANGED,
                "model.architecture.weights_digest",
                oa["weights_digest"],
                na["weights_digest"],
                "learned parameters changed (retrained)" if split else "initializer values changed (retrained)",
            )
        renamed_only = split and oa["structure_digest"] == na["structure_digest"]
        if not renamed_only:  # an equal structure digest means the initializers differ by name only
            _diff_tensors(d, oa.get("initializers", []), na.get("initializers", []), with_file=False)
    else:
        known = {"kind", "tensors"}
        _diff_tensors(d, oa.get("tensors", []), na.get("tensors", []), with_file=True)
    for key in sorted((set(oa) | set(na)) - known):
        if oa.get(key) != na.get(key):
            d.add(
                R.ARCHITECTURE_CHANGED,
                f"model.architecture.{key}",
                oa.get(key),
                na.get(key),
                f"architecture field {key!r} changed",
            )


def _archs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [(doc.get("model") or {}).get("architecture") or {} for doc in (old, new)]


def _onnx_weights_digests(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Both ONNX packages record a digest of the learned values alone, so a retrain can be
    told apart from a graph edit even though both live in the same .onnx file."""
    return all(a.get("kind") == "onnx" and isinstance(a.get("weights_digest"), str) for a in _archs(old, new))


def _onnx_split(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Both record the learned/structure split (spec/semver.md §4.1); else graph_digest decides."""
    return _onnx_weights_digests(old, new) and all(isinstance(a.get("structure_digest"), str) for a in _archs(old, new))


def _weights(doc: Mapping[str, Any]) -> dict[str, str]:
    return {f["path"]: f["digest"] for f in doc.get("files", []) if f.get("role") == "weights"}


def _diff_onnx(d: _Differ, oa: Mapping[str, Any], na: Mapping[str, Any], oc: object, nc: object, split: bool) -> None:
    if oa.get("ir_version") != na.get("ir_version"):
        d.add(
            R.GRAPH_IR_VERSION_CHANGED,
            "graph.ir_version",
            oa.get("ir_version"),
            na.get("ir_version"),
            f"ONNX IR version changed from {oa.get('ir_version')} to {na.get('ir_version')}",
        )
    oo: Mapping[str, int] = oa.get("opsets", oa.get("opset_imports", {}))
    no: Mapping[str, int] = na.get("opsets", na.get("opset_imports", {}))
    for domain in sorted(set(oo) | set(no)):
        if oo.get(domain) != no.get(domain):
            label = domain or "ai.onnx"
            d.add(
                R.GRAPH_OPSET_CHANGED,
                f"graph.opsets[{label!r}]",
                oo.get(domain),
                no.get(domain),
                f"opset {label} changed from {oo.get(domain)} to {no.get(domain)}",
            )
    ops_old: Mapping[str, int] = oa.get("operators", {})
    ops_new: Mapping[str, int] = na.get("operators", {})
    for op in sorted(set(ops_old) | set(ops_new)):
        a, b = ops_old.get(op, 0), ops_new.get(op, 0)
        if a != b:
            d.add(R.GRAPH_OPERATORS_CHANGED, f"graph.operators.{op}", a, b, f"{op} operators: {a} -> {b}")
    if split:
        _diff_labels(d, oa.get("class_labels", []), na.get("class_labels", []))
        _diff_producer(d, oa.get("producer") or {}, na.get("producer") or {})
    key = "structure_digest" if split else "graph_digest"
    if oa.get(key) != na.get(key):
        # The digest also covers the graph's inputs and outputs; when nothing else about the
        # graph moved and the contract did, the interface findings already classify the change.
        graph_same = (
            ops_old == ops_new
            and oo == no
            and _init_layout(oa, split) == _init_layout(na, split)
            and oa.get("ir_version") == na.get("ir_version")
        )
        # With the graph's interface recorded on both sides (package code may adapt it to the
        # contract), a change of that interface alone is internal when the contract held still.
        moved = (
            _contract(oa["interface"]) != _contract(na["interface"])
            if "interface" in oa and "interface" in na
            else None
        )
        if graph_same and moved and _contract(oc) == _contract(nc):
            d.add(
                R.GRAPH_INTERFACE_INTERNAL,
                "graph.interface",
                _signature(oa["interface"]),
                _signature(na["interface"]),
                "the graph's inputs or outputs changed behind the same contract (package code adapts them)",
            )
        elif graph_same and moved is not False and _contract(oc) != _contract(nc):
            d.add(
                R.GRAPH_INTERFACE_CHANGED,
                "graph.structure",
                oa.get(key),
                na.get(key),
                "graph digest changed with the interface; operators and initializers did not",
            )
        else:
            d.add(
                R.GRAPH_STRUCTURE_CHANGED,
                "graph.structure",
                oa.get(key),
                na.get(key),
                "ONNX graph structure changed (wiring, attributes or node order)"
                if not split
                else "ONNX graph structure changed (operators, wiring or structural attributes)",
            )


def _signature(interface: object) -> list[str]:
    """A graph interface as one short entry per input and output, for the finding's old/new."""
    c = _contract(interface)
    return [f"{side} {f.name!r} {_brief(f)}" for side, fs in (("input", c.inputs), ("output", c.outputs)) for f in fs]


def _init_layout(arch: Mapping[str, Any], split: bool) -> list[Any]:
    """Initializers as the graph digest sees them: with the split, names are not structure."""
    inits = arch.get("initializers", [])
    return [[t.get("dtype"), t.get("shape")] for t in inits] if split else list(inits)


def _diff_labels(d: _Differ, old: Sequence[Any], new: Sequence[Any]) -> None:
    if list(old) == list(new):
        return
    flat_old = [v for ls in old if isinstance(ls, list) for v in ls]
    flat_new = [v for ls in new if isinstance(ls, list) for v in ls]
    gained = [v for v in flat_new if v not in flat_old]
    lost = [v for v in flat_old if v not in flat_new]
    parts = [f"gained {_short(', '.join(map(str, gained)))}"] if gained else []
    parts += [f"lost {_short(', '.join(map(str, lost)))}"] if lost else []
    d.add(
        R.CLASS_LABELS_CHANGED,
        "graph.class_labels",
        list(old),
        list(new),
        f"class labels changed ({', '.join(parts) or 'reordered or too many to list'})",
    )


def _diff_producer(d: _Differ, old: Mapping[str, str], new: Mapping[str, str]) -> None:
    if old == new:
        return
    before = f"{old.get('name', '?')} {old.get('version', '?')}"
    after = f"{new.get('name', '?')} {new.get('version', '?')}"
    d.add(R.GRAPH_PRODUCER_CHANGED, "graph.producer", before, after, f"ONNX file written by {before} -> {after}")


def _diff_tensors(
    d: _Differ, old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], with_file: bool
) -> None:
    by_old = {t["name"]: t for t in old}
    by_new = {t["name"]: t for t in new}
    for name in sorted(set(by_old) | set(by_new)):
        a, b = by_old.get(name), by_new.get(name)
        at = f"tensors.{name}"
        if b is None:
            assert a is not None
            d.add("tensor-removed", at, _tensor(a), None, f"weight tensor {name!r} was removed")
        elif a is None:
            d.add("tensor-added", at, None, _tensor(b), f"weight tensor {name!r} was added")
        else:
            if a.get("dtype") != b.get("dtype"):
                d.add(
                    "tensor-dtype-changed",
                    f"{at}.dtype",
                    a.get("dtype"),
                    b.get("dtype"),
                    f"weight tensor {name!r} dtype changed: {a.get('dtype')} -> {b.get('dtype')}",
                )
            if a.get("shape") != b.get("shape"):
                d.add(
                    "tensor-shape-changed",
                    f"{at}.shape",
                    a.get("shape"),
                    b.get("shape"),
                    f"weight tensor {name!r} shape changed: {a.get('shape')} -> {b.get('shape')}",
                )
            if with_file and a.get("file") != b.get("file"):
                d.add(
                    "tensor-file-changed",
                    f"{at}.file",
                    a.get("file"),
                    b.get("file"),
                    f"weight tensor {name!r} moved from {a.get('file')} to {b.get('file')}",
                )


def _tensor(t: Mapping[str, Any]) -> str:
    return f"{t.get('dtype')}{t.get('shape')}"


# --- code ---------------------------------------------------------------------------------


def _diff_code(d: _Differ, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
    oe: Mapping[str, list[str]] = (old or {}).get("entry_points", {})
    ne: Mapping[str, list[str]] = (new or {}).get("entry_points", {})
    for ep in sorted(set(oe) | set(ne)):
        at = f"code.entry_points.{ep}"
        if ep not in ne:
            d.add(
                "entry-point-removed",
                at,
                oe[ep],
                None,
                f"entry point {ep}({', '.join(oe[ep])}) was removed",
            )
        elif ep not in oe:
            d.add(
                "entry-point-added",
                at,
                None,
                ne[ep],
                f"entry point {ep}({', '.join(ne[ep])}) was added",
            )
        elif list(oe[ep]) != list(ne[ep]):
            d.add(
                "entry-point-signature-changed",
                at,
                oe[ep],
                ne[ep],
                f"entry point {ep} parameters: ({', '.join(oe[ep])}) -> ({', '.join(ne[ep])})",
            )
    if old and new and old.get("module") != new.get("module"):
        d.add(
            "code-module-changed",
            "code.module",
            old.get("module"),
            new.get("module"),
            f"code module renamed from {old.get('module')} to {new.get('module')}",
        )


# --- environment --------------------------------------------------------------------------


def _pins(env: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in env.get("packages", []):
        out.setdefault(canonicalize_name(p["name"]), []).append(p["version"])
    return {k: sorted(set(v)) for k, v in out.items()}


def dependency_level(old: str, new: str) -> Bump:
    """How big a version delta is by the dependency's own numbering (Cargo's rule for 0.x).

    Unparseable versions are assumed breaking.
    """
    try:
        a, b = Version(old), Version(new)
    except InvalidVersion:
        return Bump.MAJOR
    if a == b:
        return Bump.NONE
    ra = (*a.release, 0, 0, 0)[:3]
    rb = (*b.release, 0, 0, 0)[:3]
    if a.epoch != b.epoch or ra[0] != rb[0]:
        return Bump.MAJOR
    if ra[0] == 0:  # 0.y.z: y is the breaking component; in 0.0.z, z is
        if ra[1] != rb[1] or (ra[1] == 0 and ra[2] != rb[2]):
            return Bump.MAJOR
        return Bump.MINOR if ra[2] != rb[2] else Bump.PATCH
    if ra[1] != rb[1]:
        return Bump.MINOR
    return Bump.PATCH  # patch, a 4th component, pre/post/dev or local


_DEP_RULE = {
    Bump.MAJOR: "dependency-major-changed",
    Bump.MINOR: "dependency-minor-changed",
    Bump.PATCH: "dependency-patch-changed",
}


def _diff_environment(d: _Differ, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    op, np_ = _pins(old), _pins(new)
    for name in sorted(set(op) | set(np_)):
        a, b = op.get(name), np_.get(name)
        at = f"environment.packages.{name}"
        if b is None:
            d.add("dependency-removed", at, _one(a), None, f"{name} was removed from the lock")
        elif a is None:
            d.add("dependency-added", at, None, _one(b), f"{name} {_one(b)} was added to the lock")
        elif a != b:
            if len(a) == len(b):
                level = max(dependency_level(x, y) for x, y in zip(a, b, strict=True))
            else:
                level = Bump.MAJOR
            level = max(level, Bump.PATCH)
            direction = "upgraded" if _newer(a, b) else "downgraded" if _newer(b, a) else "changed"
            d.add(
                _DEP_RULE[level],
                at,
                _one(a),
                _one(b),
                f"{name} {direction} {_one(a)} -> {_one(b)} ({level.label} by its own numbering)",
            )
    _diff_python(d, old.get("requires_python"), new.get("requires_python"))
    if old.get("kind") != new.get("kind") or old.get("lockfile") != new.get("lockfile"):
        d.add(
            "lockfile-changed",
            "environment.lockfile",
            f"{old.get('lockfile')} ({old.get('kind')})",
            f"{new.get('lockfile')} ({new.get('kind')})",
            "lockfile format or name changed",
        )


def _one(versions: list[str] | None) -> str | None:
    return None if versions is None else " | ".join(versions)


def _newer(a: list[str], b: list[str]) -> bool:
    try:
        return max(map(Version, b)) > max(map(Version, a))
    except InvalidVersion:
        return False


def _python_grid(specs: Iterable[SpecifierSet]) -> list[Version]:
    """Python versions to probe: every 3.x.y up to 3.40.40 plus the versions the specifiers name."""
    grid = {
        Version(f"{major}.{minor}.{micro}") for major in (2, 3, 4) for minor in range(41) for micro in (0, 1, 5, 40)
    }
    for spec in specs:
        for s in spec:
            try:
                v = Version(s.version.replace("*", "0"))
            except InvalidVersion:
                continue
            rel = (*v.release, 0, 0, 0)[:3]
            for dm in (-1, 0, 1):
                for dp in (-1, 0, 1):
                    if rel[1] + dm >= 0 and rel[2] + dp >= 0:
                        grid.add(Version(f"{rel[0]}.{rel[1] + dm}.{rel[2] + dp}"))
    return sorted(grid)


def _diff_python(d: _Differ, old: str | None, new: str | None) -> None:
    if (old or "") == (new or ""):
        return
    try:
        a, b = SpecifierSet(old or ""), SpecifierSet(new or "")
    except InvalidSpecifier:
        d.add(
            "python-narrowed",
            "environment.requires_python",
            old,
            new,
            "requires_python changed and cannot be compared; assumed narrowed",
        )
        return
    grid = _python_grid((a, b))
    accepted_a = {v for v in grid if a.contains(v, prereleases=True)}
    accepted_b = {v for v in grid if b.contains(v, prereleases=True)}
    lost = sorted(accepted_a - accepted_b)
    if lost:
        d.add(
            "python-narrowed",
            "environment.requires_python",
            old,
            new,
            f"requires_python narrowed: {old or 'any'!r} -> {new or 'any'!r} (Python {lost[0]} no longer allowed)",
        )
    elif accepted_b - accepted_a:
        d.add(
            "python-widened",
            "environment.requires_python",
            old,
            new,
            f"requires_python widened from {old or 'any'!r} to {new or 'any'!r}",
        )
    else:
        d.add(
            "lockfile-changed",
            "environment.requires_python",
            old,
            new,
            "requires_python rewritten with the same meaning",
        )


# --- lineage, card, example ---------------------------------------------------------------


def _leaves(doc: Any, prefix: str) -> dict[str, Any]:
    if isinstance(doc, Mapping) and doc:
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out.update(_leaves(v, f"{prefix}.{k}"))
        return out
    return {prefix: doc}


def _diff_tree(d: _Differ, rule: str, old: Any, new: Any, prefix: str, what: str) -> None:
    a, b = _leaves(old, prefix), _leaves(new, prefix)
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key) or (key in a) != (key in b):
            name = key.removeprefix(prefix + ".")
            if key not in a:
                how = f"added ({_short(b[key])})"
            elif key not in b:
                how = f"removed (was {_short(a[key])})"
            else:
                how = f"{_short(a[key])} -> {_short(b[key])}"
            d.add(rule, key, a.get(key), b.get(key), f"{what} {name}: {how}")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_BUILD_LINEAGE = ("git", "builder")  # where and how it was built, not what it holds


def _diff_lineage(d: _Differ, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "metrics":
            _diff_tree(d, R.METRICS_CHANGED, a or {}, b or {}, "lineage.metrics", "metric")
        elif key == "params":
            _diff_tree(d, R.PARAMS_CHANGED, a or {}, b or {}, "lineage.params", "parameter")
        elif key in _BUILD_LINEAGE:
            _diff_tree(d, R.BUILD_LINEAGE_CHANGED, a, b, f"lineage.{key}", "build")
        else:
            _diff_tree(d, R.LINEAGE_CHANGED, a, b, f"lineage.{key}", "lineage")


def _diff_card(d: _Differ, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
    if new is None:  # a build in progress has not rendered its card yet
        return
    old = old or {}
    if old.get("path") != new.get("path"):
        d.add(R.CARD_CHANGED, "card.path", old.get("path"), new.get("path"), "model card moved")
    if _card_text_digests(old, new) and old["author_digest"] != new["author_digest"]:
        d.add(
            R.CARD_CHANGED,
            f"files.{new.get('path')}",
            old["author_digest"],
            new["author_digest"],
            "model card text changed",
        )
    _diff_tree(
        d,
        R.CARD_CHANGED,
        old.get("metadata") or {},
        new.get("metadata") or {},
        "card.metadata",
        "card metadata",
    )


def _card_text_digests(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Both cards record a digest of the author's text alone; the generated facts then follow
    from fields compared on their own, so the card file's own digest is not compared."""
    return all(isinstance((c or {}).get("author_digest"), str) for c in (old, new))


def _diff_example(d: _Differ, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
    if old == new:
        return
    if old is None or new is None:
        d.add(
            "example-changed",
            "example",
            old,
            new,
            "example was " + ("added" if old is None else "removed"),
        )
        return
    for key in ("path", "rtol", "atol"):
        if old.get(key) != new.get(key):
            d.add(
                "example-changed",
                f"example.{key}",
                old.get(key),
                new.get(key),
                f"example {key} changed",
            )


_FILE_RULE = {
    "code": R.CODE_CHANGED,
    "card": R.CARD_CHANGED,
    "environment": R.LOCKFILE_CHANGED,
    "lineage": R.LINEAGE_CHANGED,
    "example": R.EXAMPLE_CHANGED,
}


def _diff_files(d: _Differ, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    if "files" not in new:
        return
    a = {f["path"]: f for f in old.get("files", [])}
    b = {f["path"]: f for f in new.get("files", [])}
    # The card file is compared by digest only without author digests on both sides, and not
    # while a build has yet to render it.
    rendered = any(f.get("role") == "card" for f in new.get("files", []))
    skip_card = not rendered or _card_text_digests(old.get("card"), new.get("card"))
    onnx_split = _onnx_weights_digests(old, new)
    graph_files = set((old.get("model") or {}).get("files", [])) | set((new.get("model") or {}).get("files", []))
    for path in sorted(set(a) | set(b)):
        fa, fb = a.get(path), b.get(path)
        if fa is not None and fb is not None and fa["digest"] == fb["digest"]:
            continue
        role = (fb or fa or {}).get("role", "")
        if skip_card and role == "card":
            continue
        at = f"files.{path}"
        da = fa["digest"] if fa else None
        db = fb["digest"] if fb else None
        state = "added" if fa is None else "removed" if fb is None else "changed"
        if role == "weights":
            if state == "changed" and onnx_split and path in graph_files:
                modelish = ("architecture", "weights", "interface")
                if not any(c.category in modelish or c.rule == R.GRAPH_PRODUCER_CHANGED for c in d.changes):
                    d.add(
                        R.GRAPH_NAMES_CHANGED,
                        at,
                        da,
                        db,
                        f"model file {path} differs only in names and documentation: the same model",
                    )
            elif state == "changed":
                d.add(R.WEIGHTS_CHANGED, at, da, db, f"weights file {path} content changed")
            else:
                d.add(R.WEIGHTS_FILES_CHANGED, at, da, db, f"weights file {path} {state}")
        else:
            d.add(_FILE_RULE.get(role, R.METADATA_CHANGED), at, da, db, f"{role} file {path} {state}")


def _metric_deltas(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[MetricDelta, ...]:
    def numeric(doc: Mapping[str, Any]) -> dict[str, float]:
        metrics = (doc.get("lineage") or {}).get("metrics") or {}
        return {
            k: v for k, v in _leaves(metrics, "").items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }

    a, b = numeric(old), numeric(new)
    return tuple(MetricDelta(k.lstrip("."), a[k], b[k]) for k in sorted(set(a) & set(b)))


# --- version inference for `mpkg build --base` ----------------------------------------------


class PlannedLike(Protocol):
    """What the build knows about a file before writing it (mpkg_builder.build.PlannedFile)."""

    @property
    def path(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def source(self) -> Path | None: ...
    @property
    def data(self) -> bytes | None: ...


def _hash_planned(f: PlannedLike) -> tuple[int, Digest]:
    if f.data is not None:
        return len(f.data), hash_bytes(f.data)
    assert f.source is not None
    try:
        with open(f.source, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            return size, hash_range(fh, 0, size)
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", str(f.source)) from None


def _build_metadata_subject(c: Change) -> str:
    if c.rule == R.GRAPH_NAMES_CHANGED:
        return f"names inside {c.subject.removeprefix('files.')}"
    return "version and base" if c.rule == R.METADATA_CHANGED else c.subject


@dataclass(frozen=True)
class VersionDecision:
    """What `mpkg build --base` settles on, and the diff that justified it."""

    version: str
    required: str
    declared: str | None
    report: DiffReport = field(repr=False)

    @property
    def bump(self) -> Bump:
        return self.report.bump


def infer_version(
    base: ManifestLike,
    new: ManifestLike,
    files: Sequence[PlannedLike] | None = None,
    declared: str | None = None,
    rules: RuleSet = DEFAULT_RULES,
    hasher: Callable[[PlannedLike], tuple[int, Digest]] = _hash_planned,
) -> VersionDecision:
    """The version a build diffed against ``base`` must carry.

    ``new`` is the manifest being built; when it has no ``files`` yet, pass the planned
    ``files`` and their digests are computed here (weights are read once; only their
    digests are compared). Without ``declared`` the version is the smallest the diff
    requires (2.3.1 + minor -> 2.4.0). A declared version is kept if it is at least that,
    else SourceError names the findings that need the higher bump.
    """
    doc = dict(new.raw if isinstance(new, Manifest) else new)
    doc.pop("version", None)
    if files is not None and "files" not in doc:
        entries = []
        for f in sorted(files, key=lambda f: f.path.encode("utf-8")):
            size, digest = hasher(f)
            entries.append(
                {
                    "path": f.path,
                    "size": size,
                    "digest": str(digest),
                    "encoding": "identity",
                    "role": f.role,
                }
            )
        doc["files"] = entries
    report = diff_manifests(base, doc, rules)
    if report.changes and all(c.category == "build" for c in report.changes):
        what = ", ".join(sorted({_build_metadata_subject(c) for c in report.changes}))
        raise SourceError(
            f"nothing to release: the source has not changed since {report.name} {report.from_version} "
            f"({report.old_digest}); only build metadata differs ({what}). Keep {report.from_version}, "
            "or change the source",
            "--base",
        )
    required = report.suggested_version
    if declared is None:
        return VersionDecision(required, required, None, report)
    try:
        SemVer.parse(declared)
    except ValueError as exc:
        raise SourceError(str(exc), CONFIG_VERSION_KEY) from None
    if not precedes(declared, required):
        return VersionDecision(
            declared,
            required,
            declared,
            DiffReport(
                report.name,
                report.from_version,
                declared,
                report.old_digest,
                report.new_digest,
                report.changes,
                report.metrics,
            ),
        )
    covered = level_of(report.from_version, declared)
    problems = [
        Problem(
            CONFIG_VERSION_KEY,
            f"declares {declared}, but the changes since {report.from_version} require "
            f"at least {required} "
            f"({report.bump.label}); raise the version or remove it to let mpkg infer it",
        )
    ]
    problems.extend(
        Problem(c.subject, f"{c.message} — needs a {c.bump.label} bump [{c.rule}]")
        for c in report.changes
        if c.bump > covered
    )
    raise SourceError(problems)


__all__ = [
    "Change",
    "DiffReport",
    "ManifestLike",
    "MetricDelta",
    "PlannedLike",
    "VersionDecision",
    "dependency_level",
    "diff_manifests",
    "diff_packages",
    "infer_version",
]
