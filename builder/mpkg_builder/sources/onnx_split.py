"""An ONNX model split into learned parameters, structure and names (spec/semver.md §4.1).

Converters for classical models keep what a fit learns in node attributes of the
``ai.onnx.ml`` domain (LinearClassifier coefficients, TreeEnsemble node arrays, SVM
support vectors) rather than in initializers, and stamp every conversion with a fresh
graph name. To tell a retrain from a new model, the build records two digests:

- ``weights_digest``: the learned values: initializer and sparse-initializer data,
  ``Constant`` values, and the learned attributes of the operators in :data:`ML_OPERATORS`;
- ``structure_digest``: everything else that decides what the graph computes: operator
  types and domains, structural attributes, the wiring, initializer dtypes and shapes,
  opsets, IR version, local functions and the interface (input and output names and types).

Names that do not change behaviour are in neither: the graph name, node names, the names
of intermediate values and initializers (the wiring is hashed with positional ids in a
canonical topological order, so re-exporting with other names or another valid node
order gives the same digest), doc strings, value_info, producer and metadata.
Class labels are recorded apart (``class_labels``): they are what clients read back.
"""

from __future__ import annotations

import functools
import heapq
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import onnx.defs
from mpkg._internal.format.digests import Digest, new_file_hasher
from onnx import (
    AttributeProto,
    FunctionProto,
    GraphProto,
    ModelProto,
    NodeProto,
    SparseTensorProto,
    TensorProto,
    helper,
)

from .onnx_operators import CONSTANT_VALUES, ML, ML_OPERATORS
from .onnx_values import attribute_bytes, tensor_chunks, type_json

MAX_LABELS = 1000  # longer label lists, or longer than MAX_LABEL_BYTES as JSON, are recorded as a digest
MAX_LABEL_BYTES = 64 * 1024


@dataclass(frozen=True)
class OnnxSplit:
    """The digests that let `diff` tell a retrain from an architecture change without reading weights."""

    structure_digest: str
    weights_digest: str
    class_labels: tuple[Any, ...]  # per labelled node, in canonical order; duplicates dropped
    producer: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The manifest's model.architecture fields for this split."""
        return {
            "structure_digest": self.structure_digest,
            "weights_digest": self.weights_digest,
            "class_labels": list(self.class_labels),
            "producer": dict(self.producer),
        }


def split_model(model: ModelProto) -> OnnxSplit:
    """The learned/structure split of ``model`` (loaded without external data)."""
    walk = _Walk({_domain(o.domain): int(o.version) for o in model.opset_import})
    top = walk.graph(model.graph, None)
    structure = {
        "ir_version": int(model.ir_version),
        "opsets": sorted([_domain(o.domain), int(o.version)] for o in model.opset_import),
        "graph": top,
        "functions": sorted(
            ([_domain(f.domain), f.name, f.overload, walk.function(f)] for f in model.functions),
            key=lambda item: (item[0], item[1], item[2]),
        ),
        # training graphs are not what serving runs; compared whole, names and all
        "training_info": [str(_blake3(ti.SerializeToString(deterministic=True))) for ti in model.training_info],
    }
    sh = new_file_hasher()
    sh.update(json.dumps(structure, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    labels: list[Any] = []
    for entry in walk.labels:
        if entry not in labels:
            labels.append(entry)
    return OnnxSplit(
        structure_digest=f"blake3:{sh.hexdigest()}",
        weights_digest=f"blake3:{walk.learned.hexdigest()}",
        class_labels=tuple(labels),
        producer={"name": model.producer_name, "version": model.producer_version},
    )


def _domain(domain: str) -> str:
    return "ai.onnx" if domain in ("", "ai.onnx") else domain


def _blake3(data: bytes) -> Digest:
    h = new_file_hasher()
    h.update(data)
    return Digest("blake3", h.hexdigest())


class _Scope:
    """Canonical ids of the values visible in one graph, falling back to enclosing graphs."""

    def __init__(self, walk: _Walk, parent: _Scope | None, inits: Mapping[str, TensorProto | SparseTensorProto]):
        self.walk, self.parent, self.inits = walk, parent, inits
        self.ids: dict[str, str] = {}
        self.records: list[Any] = []  # initializers, in order of first use

    def ref(self, name: str) -> str:
        """The canonical id of ``name``; an initializer gets its id (and is hashed) on first use."""
        if not name:
            return ""
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.ids:
                return scope.ids[name]
            if name in scope.inits:
                cid = f"w{len(self.walk.init_ids)}"
                self.walk.init_ids.append(cid)
                scope.ids[name] = cid
                scope.records.append(self.walk.initializer(cid, scope.inits[name]))
                return cid
            scope = scope.parent
        return f"free:{name}"

    def sort_ref(self, name: str) -> str:
        """What ordering may depend on before ids exist: ids, or an initializer's dtype and shape."""
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.ids:
                return scope.ids[name]
            if name in scope.inits:
                return json.dumps(_init_sort_key(scope.inits[name]))
            scope = scope.parent
        return ""


class _Walk:
    """One canonical pass: structure as JSON-able records, learned bytes into one hasher."""

    def __init__(self, opsets: Mapping[str, int]) -> None:
        self.opsets = opsets
        self.learned = new_file_hasher()
        self.labels: list[Any] = []
        self.init_ids: list[str] = []
        self.values = 0  # canonical value counter, model-wide
        self.nodes = 0  # canonical node counter, model-wide (keys learned attribute values)

    def feed(self, key: list[Any], chunks: list[bytes]) -> None:
        """A length-prefixed header, then the length-prefixed value bytes, so no two layouts collide."""
        head = json.dumps(key, separators=(",", ":")).encode("utf-8")
        self.learned.update(len(head).to_bytes(8, "little") + head)
        self.learned.update(sum(len(c) for c in chunks).to_bytes(8, "little"))
        for c in chunks:
            self.learned.update(c)

    def initializer(self, cid: str, t: TensorProto | SparseTensorProto) -> list[Any]:
        if isinstance(t, SparseTensorProto):
            self.feed(["sparse", cid], [*tensor_chunks(t.values), *tensor_chunks(t.indices)])
            return [cid, "sparse", int(t.values.data_type), [int(d) for d in t.dims]]
        self.feed(["init", cid], tensor_chunks(t))
        return [cid, int(t.data_type), [int(d) for d in t.dims]]

    def graph(self, g: GraphProto, parent: _Scope | None, formal: list[str] | None = None) -> dict[str, Any]:
        """``formal``: positional parameter names (subgraphs, functions); the top graph's inputs keep names."""
        inits: dict[str, TensorProto | SparseTensorProto] = {t.name: t for t in g.initializer}
        inits.update({s.values.name: s for s in g.sparse_initializer})
        scope = _Scope(self, parent, inits)
        interface_in: list[Any] = []
        if formal is not None:
            scope.ids.update({name: f"arg{i}" for i, name in enumerate(formal)})
        inputs = [vi for vi in g.input if vi.name not in inits]
        for i, vi in enumerate(inputs):
            top = parent is None and formal is None
            scope.ids[vi.name] = f"in:{vi.name}" if top else f"arg{i}"
            interface_in.append([vi.name if top else i, type_json(vi.type)])
        nodes = []
        for node in _canonical_order(g, scope):
            self.nodes += 1
            record: dict[str, Any] = {
                "op": [_domain(node.domain), node.op_type],
                "in": [scope.ref(v) for v in node.input],
                "attrs": self._attributes(node, self.nodes, scope),
            }
            outs = []
            for v in node.output:
                if v:
                    scope.ids[v] = f"v{self.values}"
                    self.values += 1
                outs.append(scope.ids[v] if v else "")
            record["out"] = outs
            nodes.append(record)
        top = parent is None and formal is None
        outputs = [[o.name if top else i, scope.ref(o.name), type_json(o.type)] for i, o in enumerate(g.output)]
        for name in sorted(set(inits) - set(scope.ids), key=lambda n: _init_sort_key(inits[n])):
            scope.ref(name)  # unused initializers still count, after the used ones
        return {"inputs": interface_in, "outputs": outputs, "initializers": scope.records, "nodes": nodes}

    def function(self, f: FunctionProto) -> dict[str, Any]:
        g = GraphProto()
        g.node.extend(f.node)
        for o in f.output:
            g.output.add(name=o)
        body = self.graph(g, None, formal=list(f.input))
        return {
            "inputs": len(f.input),
            "attributes": sorted(f.attribute),
            "body": body,
            "opsets": sorted([_domain(o.domain), int(o.version)] for o in f.opset_import),
        }

    def _attributes(self, node: NodeProto, at: int, scope: _Scope) -> dict[str, Any]:
        domain = _domain(node.domain)
        split = ML_OPERATORS.get(node.op_type) if domain == ML else None
        constant = domain == "ai.onnx" and node.op_type == "Constant"
        out: dict[str, Any] = {}
        for a in sorted(node.attribute, key=lambda a: a.name):
            if a.ref_attr_name:
                out[a.name] = ["ref", a.ref_attr_name, int(a.type)]
            elif split is not None and a.name in split.labels:
                self.labels.append(_labels(a))
                out[a.name] = ["labels", int(a.type)]
            elif split is not None and a.name in split.learned:
                self.feed(["attr", at, a.name, int(a.type)], attribute_bytes(a))
                out[a.name] = ["learned", int(a.type)]
            elif constant and a.name in CONSTANT_VALUES:
                self.feed(["attr", at, a.name, int(a.type)], attribute_bytes(a))
                out[a.name] = ["learned", int(a.type), _shape_of(a)]
            elif not _is_default(domain, node.op_type, self.opsets.get(domain), a):
                out[a.name] = self._structural(a, scope)
        return out

    def _structural(self, a: AttributeProto, scope: _Scope) -> Any:
        kind = int(a.type)
        if kind == AttributeProto.FLOAT:
            return [kind, float(a.f)]
        if kind == AttributeProto.INT:
            return [kind, int(a.i)]
        if kind == AttributeProto.STRING:
            return [kind, a.s.hex()]
        if kind == AttributeProto.FLOATS:
            return [kind, [float(x) for x in a.floats]]
        if kind == AttributeProto.INTS:
            return [kind, [int(x) for x in a.ints]]
        if kind == AttributeProto.STRINGS:
            return [kind, [s.hex() for s in a.strings]]
        if kind == AttributeProto.GRAPH:
            return [kind, self.graph(a.g, scope, formal=[])]
        if kind == AttributeProto.GRAPHS:
            return [kind, [self.graph(g, scope, formal=[]) for g in a.graphs]]
        if kind == AttributeProto.TYPE_PROTO:
            return [kind, type_json(a.tp)]
        if kind == AttributeProto.TYPE_PROTOS:
            return [kind, [type_json(t) for t in a.type_protos]]
        # tensors held as structure (e.g. ConstantOfShape's fill value): their bytes are structure too
        return [kind, str(_blake3(b"".join(attribute_bytes(a))))]


@functools.cache
def _defaults(domain: str, op_type: str, version: int) -> Mapping[str, Any]:
    """The operator's attribute defaults at this opset (empty for unknown and local operators)."""
    try:
        schema = onnx.defs.get_schema(op_type, version, "" if domain == "ai.onnx" else domain)
    except onnx.defs.SchemaError:
        return {}
    return {
        name: helper.get_attribute_value(a.default_value)
        for name, a in schema.attributes.items()
        if a.default_value.type != AttributeProto.UNDEFINED
    }


def _is_default(domain: str, op_type: str, version: int | None, a: AttributeProto) -> bool:
    """An attribute written out at its schema default means the same as leaving it out
    (exporters differ on this), so it is not hashed."""
    if version is None or a.type not in (
        AttributeProto.FLOAT,
        AttributeProto.INT,
        AttributeProto.STRING,
        AttributeProto.FLOATS,
        AttributeProto.INTS,
        AttributeProto.STRINGS,
    ):
        return False
    defaults = _defaults(domain, op_type, version)
    return a.name in defaults and helper.get_attribute_value(a) == defaults[a.name]


def _init_sort_key(t: TensorProto | SparseTensorProto) -> tuple[Any, ...]:
    if isinstance(t, SparseTensorProto):
        return (1, int(t.values.data_type), list(t.dims))
    return (0, int(t.data_type), list(t.dims))


def _shape_of(a: AttributeProto) -> Any:
    if a.type == AttributeProto.TENSOR:
        return [int(a.t.data_type), [int(d) for d in a.t.dims]]
    if a.type == AttributeProto.SPARSE_TENSOR:
        return [int(a.sparse_tensor.values.data_type), [int(d) for d in a.sparse_tensor.dims]]
    if a.type in (AttributeProto.FLOATS, AttributeProto.INTS, AttributeProto.STRINGS):
        return len(a.floats) + len(a.ints) + len(a.strings)
    return None


def _labels(a: AttributeProto) -> Any:
    values: list[Any] = [int(x) for x in a.ints] or [s.decode("utf-8", "replace") for s in a.strings]
    encoded = json.dumps(values).encode("utf-8")
    if len(values) > MAX_LABELS or len(encoded) > MAX_LABEL_BYTES:
        return str(_blake3(encoded))
    return values


# --- canonical node order --------------------------------------------------------------------


def _free_names(g: GraphProto) -> set[str]:
    """Names a subgraph reads from its enclosing scopes."""
    defined = {vi.name for vi in g.input} | {t.name for t in g.initializer}
    defined |= {s.values.name for s in g.sparse_initializer}
    used: set[str] = set()
    for node in g.node:
        defined.update(node.output)
        used.update(v for v in node.input if v)
        for sub in _subgraphs(node):
            used |= _free_names(sub)
    used.update(o.name for o in g.output)
    return used - defined


def _subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    for a in node.attribute:
        if a.HasField("g"):
            yield a.g
        yield from a.graphs


def _canonical_order(g: GraphProto, scope: _Scope) -> list[NodeProto]:
    """A topological order that does not depend on how the converter ordered or named things.

    Among ready nodes the smallest key goes first: operator, structural attribute names and
    the (already canonical) references of its inputs, with initializers keyed by dtype and
    shape, not name. Ties (identical keys) keep the file's order; nodes in a cycle (an invalid
    graph, refused by the checker anyway) follow in file order.
    """
    nodes = list(g.node)
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for v in node.output:
            if v:
                producer.setdefault(v, i)
    deps: list[set[int]] = []
    for node in nodes:
        reads = {v for v in node.input if v}
        for sub in _subgraphs(node):
            reads |= _free_names(sub)
        deps.append({producer[v] for v in reads if v in producer})
    users: dict[int, list[int]] = {}
    for i, ds in enumerate(deps):
        for d in ds:
            users.setdefault(d, []).append(i)
    waiting = [len(ds) for ds in deps]
    canonical: dict[str, str] = {}
    emitted = 0

    def key(i: int) -> tuple[Any, ...]:
        node = nodes[i]
        refs = []
        for v in node.input:
            refs.append(canonical[v] if v in canonical else scope.sort_ref(v))
        domain = _domain(node.domain)
        version = scope.walk.opsets.get(domain)
        attrs = sorted(a.name for a in node.attribute if not _is_default(domain, node.op_type, version, a))
        return (_domain(node.domain), node.op_type, refs, attrs, i)

    ready = [key(i) for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order: list[NodeProto] = []
    done: set[int] = set()
    while ready:
        i = heapq.heappop(ready)[-1]
        done.add(i)
        order.append(nodes[i])
        for v in nodes[i].output:
            if v:
                canonical[v] = f"v{emitted}"
                emitted += 1
        for u in users.get(i, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, key(u))
    order.extend(n for i, n in enumerate(nodes) if i not in done)
    return order


__all__ = ["OnnxSplit", "split_model"]
