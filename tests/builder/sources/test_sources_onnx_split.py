"""The ONNX split into learned parameters, structure and names (spec/semver.md §4.1).

Hand-made graphs pin each clause of the split; the real converters are exercised in
tests/builder/diff/test_diff_converters.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.defs
import pytest
from mpkg_builder.sources.onnx_operators import ML, ML_OPERATORS
from mpkg_builder.sources.onnx_split import OnnxSplit, split_model
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def _model(
    nodes: list[onnx.NodeProto],
    inits: list[TensorProto] = (),  # type: ignore[assignment]
    *,
    name: str = "g",
    out: str = "y",
    ml: bool = False,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", F, ["N", 2])],
        [helper.make_tensor_value_info(out, F, ["N", 1])],
        list(inits),
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(ML, 3)] if ml else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return model


def _w(values: list[float], name: str = "W", raw: bool = True) -> TensorProto:
    array = np.array(values, dtype=np.float32).reshape(2, 1)
    if raw:
        return numpy_helper.from_array(array, name)
    return helper.make_tensor(name, F, [2, 1], array.ravel().tolist())  # float_data, not raw_data


def _matmul(w: str = "W", a: str = "a") -> list[onnx.NodeProto]:
    return [helper.make_node("MatMul", ["x", w], [a], name="mm"), helper.make_node("Relu", [a], ["y"], name="act")]


def split(model: onnx.ModelProto) -> OnnxSplit:
    onnx.checker.check_model(model, full_check=True)
    return split_model(model)


def test_every_ml_attribute_onnx_knows_is_classified() -> None:
    """A new ONNX release that adds an ai.onnx.ml operator or attribute fails here: decide it."""
    known: dict[str, set[str]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == ML:
            known.setdefault(schema.name, set()).update(schema.attributes)
    assert set(ML_OPERATORS) == set(known)
    for op, attributes in known.items():
        s = ML_OPERATORS[op]
        assert not (s.learned & s.labels or s.learned & s.structure or s.labels & s.structure), op
        assert s.learned | s.labels | s.structure == attributes, (op, attributes ^ (s.learned | s.labels | s.structure))
        assert s.why, op


def test_names_doc_strings_and_producer_are_neither() -> None:
    a = _model(_matmul())
    b = _model(_matmul(w="coef", a="hidden_7"), [_w([1, 2], "coef")], name="3f9e0c")
    a.graph.initializer.append(_w([1, 2]))
    for node in b.graph.node:
        node.name, node.doc_string = node.name + "_v2", "converted"
    b.graph.doc_string, b.producer_name, b.producer_version, b.doc_string = "doc", "other", "9.9", "model doc"
    b.metadata_props.add(key="converted_at", value="today")
    sa, sb = split(a), split(b)
    assert (sa.structure_digest, sa.weights_digest) == (sb.structure_digest, sb.weights_digest)
    assert sa.producer != sb.producer


def test_node_order_does_not_matter() -> None:
    """Two independent branches emitted in either order are the same graph."""
    left = helper.make_node("Relu", ["x"], ["l"])
    right = helper.make_node("Sigmoid", ["x"], ["r"])
    join = helper.make_node("Add", ["l", "r"], ["s"])
    reduce = helper.make_node("ReduceSum", ["s"], ["y"], keepdims=1, noop_with_empty_axes=0)
    a = _model([left, right, join, reduce])
    b = _model([right, left, join, reduce])
    assert split(a).structure_digest == split(b).structure_digest
    swapped = _model([left, right, helper.make_node("Sub", ["l", "r"], ["s"]), reduce])
    assert split(a).structure_digest != split(swapped).structure_digest


def test_wiring_is_structure() -> None:
    """The same operators and values, wired the other way round, is another computation."""
    left = helper.make_node("Relu", ["x"], ["l"])
    right = helper.make_node("Sigmoid", ["x"], ["r"])
    a = _model([left, right, helper.make_node("Sub", ["l", "r"], ["s"]), helper.make_node("ReduceSum", ["s"], ["y"])])
    b = _model([left, right, helper.make_node("Sub", ["r", "l"], ["s"]), helper.make_node("ReduceSum", ["s"], ["y"])])
    assert split(a).structure_digest != split(b).structure_digest


def test_initializer_values_are_learned_whatever_field_holds_them() -> None:
    raw = _model(_matmul(), [_w([1, 2])])
    typed = _model(_matmul(), [_w([1, 2], raw=False)])
    retrained = _model(_matmul(), [_w([3, 4])])
    assert split(raw) == split(typed)
    assert split(raw).structure_digest == split(retrained).structure_digest
    assert split(raw).weights_digest != split(retrained).weights_digest


def test_initializer_shape_is_structure() -> None:
    wide = numpy_helper.from_array(np.ones((2, 3), np.float32), "W")
    a = _model(_matmul(), [_w([1, 2])])
    b = _model([helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("ReduceSum", ["a"], ["y"])], [wide])
    assert split(a).structure_digest != split(b).structure_digest


def test_constant_values_are_learned_their_shape_is_structure() -> None:
    def with_constant(values: list[float]) -> onnx.ModelProto:
        c = helper.make_node(
            "Constant", [], ["W"], value=numpy_helper.from_array(np.array(values, np.float32).reshape(-1, 1))
        )
        return _model([c, *_matmul()])

    a, b = split(with_constant([1, 2])), split(with_constant([5, 6]))
    assert a.structure_digest == b.structure_digest and a.weights_digest != b.weights_digest


def _scaler(offset: list[float], scale: list[float]) -> list[onnx.NodeProto]:
    return [
        helper.make_node("Scaler", ["x"], ["s"], domain=ML, offset=offset, scale=scale),
        helper.make_node("ReduceSum", ["s"], ["y"], keepdims=1),
    ]


def test_ml_learned_attributes_are_weights() -> None:
    a = split(_model(_scaler([0.0, 1.0], [1.0, 2.0]), ml=True))
    b = split(_model(_scaler([0.5, 1.5], [1.0, 2.0]), ml=True))
    assert a.structure_digest == b.structure_digest and a.weights_digest != b.weights_digest


def _tree(n_nodes: int, post_transform: str = "NONE", labels: tuple[int, ...] = (0, 1)) -> onnx.ModelProto:
    """A one-tree classifier whose single tree has ``n_nodes`` leaves-and-branches."""
    ids = list(range(n_nodes))
    node = helper.make_node(
        "TreeEnsembleClassifier",
        ["x"],
        ["label", "y"],
        domain=ML,
        classlabels_int64s=list(labels),
        class_ids=[0] * n_nodes,
        class_nodeids=ids,
        class_treeids=[0] * n_nodes,
        class_weights=[0.5] * n_nodes,
        nodes_falsenodeids=[0] * n_nodes,
        nodes_featureids=[0] * n_nodes,
        nodes_modes=["LEAF"] * n_nodes,
        nodes_nodeids=ids,
        nodes_treeids=[0] * n_nodes,
        nodes_truenodeids=[0] * n_nodes,
        nodes_values=[0.0] * n_nodes,
        post_transform=post_transform,
    )
    graph = helper.make_graph(
        [node],
        "trees",
        [helper.make_tensor_value_info("x", F, ["N", 2])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("y", F, ["N", len(labels)]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 3)])
    model.ir_version = 9
    return model


def test_a_tree_retrained_with_more_nodes_is_a_retrain() -> None:
    small, large = split_model(_tree(1)), split_model(_tree(3))
    assert small.structure_digest == large.structure_digest
    assert small.weights_digest != large.weights_digest


def test_post_transform_is_structure_and_labels_are_apart() -> None:
    base = split_model(_tree(1))
    assert split_model(_tree(1, post_transform="LOGISTIC")).structure_digest != base.structure_digest
    relabelled = split_model(_tree(1, labels=(0, 2)))
    assert (relabelled.structure_digest, relabelled.weights_digest) == (base.structure_digest, base.weights_digest)
    assert (base.class_labels, relabelled.class_labels) == (([0, 1],), ([0, 2],))


def test_unknown_ml_attribute_counts_as_structure() -> None:
    a = _model(_scaler([0.0, 1.0], [1.0, 2.0]), ml=True)
    b = _model(_scaler([0.0, 1.0], [1.0, 2.0]), ml=True)
    b.graph.node[0].attribute.append(helper.make_attribute("from_a_newer_onnx", 1))
    assert split_model(a).structure_digest != split_model(b).structure_digest


def test_subgraph_values_are_renamed_canonically() -> None:
    """An If whose branches name their values differently is the same graph."""

    def with_if(suffix: str) -> onnx.ModelProto:
        def branch(op: str) -> onnx.GraphProto:
            return helper.make_graph(
                [
                    helper.make_node(op, ["x"], [f"b{suffix}"]),
                    helper.make_node("Identity", [f"b{suffix}"], ["o" + suffix]),
                ],
                "branch" + suffix,
                [],
                [helper.make_tensor_value_info("o" + suffix, F, ["N", 2])],
            )

        cond = helper.make_node("ReduceSum", ["x"], ["s" + suffix], keepdims=0)
        gt = helper.make_node("Greater", ["s" + suffix, "zero" + suffix], ["c" + suffix])
        node = helper.make_node(
            "If", ["c" + suffix], ["z" + suffix], then_branch=branch("Relu"), else_branch=branch("Neg")
        )
        reduce = helper.make_node("ReduceSum", ["z" + suffix], ["y"], keepdims=1)
        zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero" + suffix)
        return _model([cond, gt, node, reduce], [zero])

    a, b = with_if(""), with_if("_renamed")
    assert split(a).structure_digest == split(b).structure_digest


def _string_tree(labels: list[str]) -> onnx.ModelProto:
    model = _tree(1)
    attr = next(a for a in model.graph.node[0].attribute if a.name == "classlabels_int64s")
    model.graph.node[0].attribute.remove(attr)
    model.graph.node[0].attribute.append(helper.make_attribute("classlabels_strings", labels))
    return model


@pytest.mark.parametrize(
    "model",
    [_tree(1, labels=tuple(range(1001))), _string_tree(["a", "b", "x" * 70_000])],
    ids=["over-1000-labels", "over-64-KiB"],
)
def test_long_label_lists_are_recorded_as_a_digest(model: onnx.ModelProto) -> None:
    """The manifest stays small whatever a hostile converter writes into classlabels."""
    s = split_model(model)
    (recorded,) = s.class_labels
    assert isinstance(recorded, str) and recorded.startswith("blake3:")


def test_attributes_written_at_their_default_are_the_same_as_left_out() -> None:
    """torch.onnx's exporters disagree on writing Gemm's transA=0; the computation is the same."""

    def gemm(**attrs: float) -> onnx.ModelProto:
        node = helper.make_node("Gemm", ["x", "W"], ["a"], **{"transB": 1, **attrs})
        w = numpy_helper.from_array(np.ones((1, 2), np.float32), "W")
        return _model([node, helper.make_node("Relu", ["a"], ["y"])], [w])

    assert split(gemm()).structure_digest == split(gemm(transA=0)).structure_digest
    assert split(gemm()).structure_digest != split(gemm(transA=0, alpha=2.0)).structure_digest
