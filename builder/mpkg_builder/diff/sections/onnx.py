"""The ONNX graph, from its architecture summary: IR version, opsets, operators, class labels,
producer and the structure digest (spec/semver.md §4.1).

Since the learned/structure split, a package records a digest of the learned values and one
of the structure without them, so a retrain, a graph edit and a re-conversion that only
renamed things are told apart even though all three rewrite the same ``.onnx`` file.
"""

from __future__ import annotations

from typing import Any

from mpkg._internal.contract.contract import Contract

from .. import rules as R
from ..findings import Findings
from ..views import ArchitectureView, ManifestView, Producer
from .contract import brief
from .tree import short


def _archs(old: ManifestView, new: ManifestView) -> tuple[ArchitectureView | None, ArchitectureView | None]:
    return old.model.architecture, new.model.architecture


def weights_digests(old: ManifestView, new: ManifestView) -> bool:
    """Both ONNX packages record a digest of the learned values alone, so a retrain can be
    told apart from a graph edit even though both live in the same .onnx file."""
    return all(a is not None and a.kind == "onnx" and a.weights_digest is not None for a in _archs(old, new))


def split(old: ManifestView, new: ManifestView) -> bool:
    """Both record the learned/structure split (spec/semver.md §4.1); else graph_digest decides."""
    return weights_digests(old, new) and all(a is not None and a.structure_digest is not None for a in _archs(old, new))


def diff_graph(d: Findings, oa: ArchitectureView, na: ArchitectureView, interface_changed: bool, split: bool) -> None:
    """Everything about the graph but its learned values; ``interface_changed``: the contracts differ."""
    if oa.ir_version != na.ir_version:
        d.add(
            R.GRAPH_IR_VERSION_CHANGED,
            "graph.ir_version",
            oa.ir_version,
            na.ir_version,
            f"ONNX IR version changed from {oa.ir_version} to {na.ir_version}",
        )
    oo, no = oa.opsets, na.opsets
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
    for op in sorted(set(oa.operators) | set(na.operators)):
        a, b = oa.operators.get(op, 0), na.operators.get(op, 0)
        if a != b:
            d.add(R.GRAPH_OPERATORS_CHANGED, f"graph.operators.{op}", a, b, f"{op} operators: {a} -> {b}")
    if split:
        _diff_labels(d, oa.class_labels, na.class_labels)
        _diff_producer(d, oa.producer, na.producer)
    old_digest = oa.structure_digest if split else oa.graph_digest
    new_digest = na.structure_digest if split else na.graph_digest
    if old_digest != new_digest:
        # The digest also covers the graph's inputs and outputs; when nothing else about the
        # graph moved and the contract did, the interface findings already classify the change.
        graph_same = (
            oa.operators == na.operators
            and oo == no
            and _init_layout(oa, split) == _init_layout(na, split)
            and oa.ir_version == na.ir_version
        )
        # With the graph's interface recorded on both sides (package code may adapt it to the
        # contract), a change of that interface alone is internal when the contract held still.
        moved = oa.interface != na.interface if oa.interface is not None and na.interface is not None else None
        if graph_same and moved and not interface_changed:
            assert oa.interface is not None and na.interface is not None
            d.add(
                R.GRAPH_INTERFACE_INTERNAL,
                "graph.interface",
                _signature(oa.interface),
                _signature(na.interface),
                "the graph's inputs or outputs changed behind the same contract (package code adapts them)",
            )
        elif graph_same and moved is not False and interface_changed:
            d.add(
                R.GRAPH_INTERFACE_CHANGED,
                "graph.structure",
                old_digest,
                new_digest,
                "graph digest changed with the interface; operators and initializers did not",
            )
        else:
            d.add(
                R.GRAPH_STRUCTURE_CHANGED,
                "graph.structure",
                old_digest,
                new_digest,
                "ONNX graph structure changed (wiring, attributes or node order)"
                if not split
                else "ONNX graph structure changed (operators, wiring or structural attributes)",
            )


def _signature(interface: Contract) -> list[str]:
    """A graph interface as one short entry per input and output, for the finding's old/new."""
    sides = (("input", interface.inputs), ("output", interface.outputs))
    return [f"{side} {f.name!r} {brief(f)}" for side, fields in sides for f in fields]


def _init_layout(arch: ArchitectureView, split: bool) -> list[Any]:
    """Initializers as the graph digest sees them: with the split, names are not structure."""
    if split:
        return [(t.dtype, t.shape) for t in arch.initializers]
    return list(arch.initializers)


def _diff_labels(d: Findings, old: tuple[Any, ...], new: tuple[Any, ...]) -> None:
    if old == new:
        return
    flat_old = [v for ls in old if isinstance(ls, list) for v in ls]
    flat_new = [v for ls in new if isinstance(ls, list) for v in ls]
    gained = [v for v in flat_new if v not in flat_old]
    lost = [v for v in flat_old if v not in flat_new]
    parts = [f"gained {short(', '.join(map(str, gained)))}"] if gained else []
    parts += [f"lost {short(', '.join(map(str, lost)))}"] if lost else []
    d.add(
        R.CLASS_LABELS_CHANGED,
        "graph.class_labels",
        list(old),
        list(new),
        f"class labels changed ({', '.join(parts) or 'reordered or too many to list'})",
    )


def _diff_producer(d: Findings, old: Producer | None, new: Producer | None) -> None:
    if old == new:
        return
    before, after = str(old or Producer("?", "?")), str(new or Producer("?", "?"))
    d.add(R.GRAPH_PRODUCER_CHANGED, "graph.producer", before, after, f"ONNX file written by {before} -> {after}")


__all__ = ["diff_graph", "split", "weights_digests"]
