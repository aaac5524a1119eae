"""ONNX inspection: hostile external data (named after the CVEs), contracts, architecture."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from mpkg._internal.contract.contract import Contract, Field
from mpkg.errors import SourceError
from mpkg_builder.sources.onnx_model import compare_contract, inspect_onnx
from onnx import TensorProto, helper, numpy_helper

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
W = np.array([[0.5], [2.0]], dtype=np.float32)


def external(t: TensorProto, location: str, offset: str | None = "0", length: str | None = None) -> TensorProto:
    """Point ``t`` at external data without onnx.save's location checks."""
    nbytes = len(t.raw_data) if t.raw_data else int(np.prod(t.dims)) * 4
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    pairs = [("location", location)]
    if offset is not None:
        pairs.append(("offset", offset))
    pairs.append(("length", length if length is not None else str(nbytes)))
    for k, v in pairs:
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def matmul_model(weight: TensorProto | None = None, extra_nodes: list[onnx.NodeProto] | None = None) -> onnx.ModelProto:
    w = weight if weight is not None else numpy_helper.from_array(W, "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), *(extra_nodes or [])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def save(src: Path, model: onnx.ModelProto, rel: str = "model/model.onnx") -> Path:
    path = src / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def refused(path: Path, src: Path) -> str:
    with pytest.raises(SourceError) as exc:
        inspect_onnx(path, src)
    return exc.value.diagnostics()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    (d / "model").mkdir(parents=True)
    (d / "model" / "w.bin").write_bytes(W.tobytes())
    return d


# --- a sound model --------------------------------------------------------------------


def test_iris_example_contract_and_architecture() -> None:
    info = inspect_onnx(EXAMPLES / "iris-mlp" / "model.onnx", EXAMPLES / "iris-mlp")
    assert info.contract.inputs == (Field("features", "float32", ("batch", 4)),)
    assert [(f.name, f.dtype, f.shape) for f in info.contract.outputs] == [
        ("probabilities", "float32", ("batch", 3)),
        ("label", "int64", ("batch",)),
    ]
    assert info.external_data == () and info.opset == {"ai.onnx": 17}
    arch = info.architecture
    assert arch["operators"]["MatMul"] == 2 and arch["ir_version"] == 8
    assert {"name": "W1", "dtype": "float32", "shape": [4, 16]} in arch["initializers"]
    assert arch["graph_digest"].startswith("sha256:")


def test_external_data_written_by_onnx_is_accepted(src: Path) -> None:
    model = matmul_model(numpy_helper.from_array(np.ones((64, 1), np.float32), "W"))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 64
    onnx.save(
        model,
        str(src / "model" / "m.onnx"),
        save_as_external_data=True,
        location="m.data",
        size_threshold=0,
    )
    info = inspect_onnx(src / "model" / "m.onnx", src)
    assert info.external_data == ("model/m.data",)


def test_external_data_in_subfolder_accepted(src: Path) -> None:
    (src / "model" / "weights").mkdir()
    (src / "model" / "weights" / "w.bin").write_bytes(W.tobytes())
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "weights/w.bin")))
    assert inspect_onnx(path, src).external_data == ("model/weights/w.bin",)


def test_graph_digest_ignores_weights_but_not_structure(src: Path) -> None:
    a = inspect_onnx(save(src, matmul_model(), "a.onnx"), src).architecture
    b = inspect_onnx(save(src, matmul_model(numpy_helper.from_array(W * 3, "W")), "b.onnx"), src).architecture
    relu = helper.make_node("Relu", ["y"], ["z"])
    c_model = matmul_model(extra_nodes=[relu])
    c_model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 1]))
    c = inspect_onnx(save(src, c_model, "c.onnx"), src).architecture
    assert a["graph_digest"] == b["graph_digest"] != c["graph_digest"]


def test_dims_map_to_ints_names_and_unknown(src: Path) -> None:
    model = matmul_model()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].Clear()  # neither value nor param -> -1
    out = model.graph.output[0].type.tensor_type.shape.dim
    out[0].dim_param = "not a valid name!"  # unusable as a contract name -> -1
    info = inspect_onnx(save(src, model), src)
    assert info.contract.inputs[0].shape == (-1, 2)
    assert info.contract.outputs[0].shape == (-1, 1)


def test_initializer_inputs_are_not_contract_inputs(src: Path) -> None:
    model = matmul_model()
    model.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [2, 1]))
    assert [f.name for f in inspect_onnx(save(src, model), src).contract.inputs] == ["x"]


# --- hostile external data -------------------------------------------------------------


def test_cve_2022_25882_parent_traversal_refused(src: Path) -> None:
    (src / "w.bin").write_bytes(W.tobytes())
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "../w.bin")))
    assert "contains '..'" in refused(path, src)


def test_cve_2024_27318_inner_traversal_refused(src: Path) -> None:
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "a/../../w.bin")))
    assert "contains '..'" in refused(path, src)


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("/etc/passwd", "is absolute"),
        ("C:/w.bin", "is absolute"),
        ("sub\\w.bin", "contains a backslash"),
        ("./w.bin", "is not normalised"),
        ("*/_ORT_MEM_ADDR_/*", "in-memory address"),
        ("missing.bin", "does not exist next to the model"),
    ],
)
def test_bad_locations_refused(src: Path, location: str, reason: str) -> None:
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), location)))
    assert reason in refused(path, src)


def test_cve_2026_27489_symlink_to_outside_refused(src: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(W.tobytes())
    os.symlink(secret, src / "model" / "link.bin")
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "link.bin")))
    assert "leaves the model folder" in refused(path, src)


def test_cve_2026_34447_symlink_inside_model_folder_refused(src: Path) -> None:
    os.symlink("w.bin", src / "model" / "alias.bin")
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "alias.bin")))
    assert "goes through a symlink" in refused(path, src)


def test_cve_2026_34447_symlinked_directory_refused(src: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "w.bin").write_bytes(W.tobytes())
    os.symlink(tmp_path / "elsewhere", src / "model" / "dir")
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "dir/w.bin")))
    assert "leaves the model folder" in refused(path, src)


def test_cve_2026_34446_hardlink_refused(src: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(W.tobytes())
    os.link(secret, src / "model" / "hard.bin")
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "hard.bin")))
    assert "is a hardlink (2 links)" in refused(path, src)


def test_external_location_that_is_a_folder_refused(src: Path) -> None:
    (src / "model" / "dir.bin").mkdir()
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "dir.bin")))
    assert "is not a regular file" in refused(path, src)


def test_offset_and_length_past_end_refused(src: Path) -> None:
    path = save(
        src,
        matmul_model(external(numpy_helper.from_array(W, "W"), "w.bin", offset="4", length="8")),
    )
    assert "runs past the end of 'w.bin'" in refused(path, src)


def test_length_not_matching_dims_refused(src: Path) -> None:
    (src / "model" / "big.bin").write_bytes(bytes(64))
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "big.bin", length="16")))
    assert "does not match dims [2, 1]" in refused(path, src)


@pytest.mark.parametrize("offset", ["-1", "0x10", "1e3", " 1"])
def test_non_decimal_offset_refused(src: Path, offset: str) -> None:
    path = save(src, matmul_model(external(numpy_helper.from_array(W, "W"), "w.bin", offset=offset)))
    assert "is not a non-negative decimal integer" in refused(path, src)


def test_duplicate_external_keys_refused(src: Path) -> None:
    t = external(numpy_helper.from_array(W, "W"), "w.bin")
    e = t.external_data.add()
    e.key, e.value = "location", "../../etc/passwd"
    assert "repeats key(s) ['location']" in refused(save(src, matmul_model(t)), src)


def test_unknown_external_key_refused(src: Path) -> None:
    t = external(numpy_helper.from_array(W, "W"), "w.bin")
    e = t.external_data.add()
    e.key, e.value = "basepath", "/"
    assert "unknown key(s) ['basepath']" in refused(save(src, matmul_model(t)), src)


def test_external_entries_without_external_flag_refused(src: Path) -> None:
    t = numpy_helper.from_array(W, "W")
    e = t.external_data.add()
    e.key, e.value = "location", "../w.bin"
    assert "data_location is not EXTERNAL" in refused(save(src, matmul_model(t)), src)


def test_missing_location_refused(src: Path) -> None:
    t = numpy_helper.from_array(W, "W")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    assert "names no location" in refused(save(src, matmul_model(t)), src)


Hide = Callable[[TensorProto], onnx.ModelProto]


def _in_constant_node(t: TensorProto) -> onnx.ModelProto:
    node = helper.make_node("Constant", [], ["W"], value=t)
    model = matmul_model(extra_nodes=[])
    model.graph.ClearField("initializer")
    model.graph.node.insert(0, node)
    return model


def _in_sparse_initializer(t: TensorProto) -> onnx.ModelProto:
    t.name = "S"
    indices = numpy_helper.from_array(np.array([0, 1], dtype=np.int64), "S_idx")
    sparse = helper.make_sparse_tensor(t, indices, [4, 1])
    model = matmul_model()
    model.graph.sparse_initializer.append(sparse)
    return model


def _in_if_subgraph(t: TensorProto) -> onnx.ModelProto:
    branch = helper.make_graph(
        [helper.make_node("Identity", ["inner"], ["out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 1])],
        [t],
    )
    t.name = "inner"
    node = helper.make_node("If", ["cond"], ["z"], then_branch=branch, else_branch=branch)
    model = matmul_model(extra_nodes=[node])
    model.graph.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    return model


def _in_function(t: TensorProto) -> onnx.ModelProto:
    const = helper.make_node("Constant", [], ["k"], value=t)
    fn = helper.make_function("custom", "Fn", [], ["k"], [const], [helper.make_opsetid("", 17)])
    model = matmul_model()
    model.functions.append(fn)
    model.opset_import.append(helper.make_opsetid("custom", 1))
    return model


def _in_constant_tensors_list(t: TensorProto) -> onnx.ModelProto:
    node = helper.make_node("Custom", [], ["q"], domain="custom")
    attr = node.attribute.add()
    attr.name, attr.type = "tables", onnx.AttributeProto.TENSORS
    attr.tensors.append(t)
    return matmul_model(extra_nodes=[node])


@pytest.mark.parametrize(
    ("hide", "where"),
    [
        (_in_constant_node, "graph node 'Constant' attribute 'value'"),
        (_in_sparse_initializer, "graph sparse initializer 'S' values"),
        (_in_if_subgraph, "attribute 'then_branch' subgraph initializer 'hidden'"),
        (_in_function, "function 'Fn' node 'Constant' attribute 'value'"),
        (_in_constant_tensors_list, "attribute 'tables'[0]"),
    ],
    ids=[
        "constant-attribute",
        "sparse-initializer",
        "if-subgraph",
        "function",
        "tensors-attribute",
    ],
)
def test_traversal_hidden_anywhere_is_found(src: Path, hide: Hide, where: str) -> None:
    t = external(numpy_helper.from_array(W, "hidden"), "../../../etc/passwd")
    text = refused(save(src, hide(t)), src)
    assert f"{where}: external data location '../../../etc/passwd' contains '..'" in text


# --- not a model / unsupported -------------------------------------------------------


def test_garbage_is_not_an_onnx_model(src: Path) -> None:
    (src / "m.onnx").write_bytes(b"\xff\xff\xff\xff not protobuf")
    assert "is not a valid ONNX model" in refused(src / "m.onnx", src)


def test_checker_failure_reported(src: Path) -> None:
    model = matmul_model(extra_nodes=[helper.make_node("NoSuchOp", ["y"], ["z"])])
    assert "fails the ONNX checker" in refused(save(src, model), src)


def test_non_tensor_input_refused(src: Path) -> None:
    model = matmul_model()
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    model.graph.input.append(seq)
    model.graph.node.append(helper.make_node("SequenceLength", ["s"], ["n"]))
    model.graph.output.append(helper.make_tensor_value_info("n", TensorProto.INT64, []))
    assert "contracts describe tensors only" in refused(save(src, model), src)


def test_unsupported_element_type_refused(src: Path) -> None:
    model = matmul_model()
    model.graph.input.append(helper.make_tensor_value_info("c", TensorProto.COMPLEX64, [1]))
    model.graph.node.append(helper.make_node("Identity", ["c"], ["c2"]))
    model.graph.output.append(helper.make_tensor_value_info("c2", TensorProto.COMPLEX64, [1]))
    assert "COMPLEX64, which contracts do not support" in refused(save(src, model), src)


def test_unknown_rank_refused(src: Path) -> None:
    model = matmul_model()
    model.graph.input[0].type.tensor_type.ClearField("shape")
    assert "has no shape (unknown rank)" in refused(save(src, model), src)


# --- compare_contract -----------------------------------------------------------------

DERIVED = Contract(
    inputs=(Field("x", "float32", ("N", 4)), Field("mask", "bool", ("N", -1))),
    outputs=(Field("y", "float32", ("N", 3)),),
)


def reasons(declared: Contract) -> list[str]:
    return [str(p) for p in compare_contract(declared, DERIVED)]


def test_declared_may_add_descriptions_flags_and_names() -> None:
    declared = Contract(
        inputs=(
            Field("x", "float32", ("batch", 4), description="features"),
            Field("mask", "bool", ("batch", "width"), optional=True, nullable=True),
        ),
        outputs=(Field("y", "float32", ("batch", 3), enum=None, description="scores"),),
    )
    assert reasons(declared) == []


def test_dtype_disagreement_named() -> None:
    declared = Contract(inputs=(Field("x", "float64", ("N", 4)), DERIVED.inputs[1]), outputs=DERIVED.outputs)
    assert reasons(declared) == ["contract.json: inputs.x.dtype: declared float64 but the graph has float32"]


def test_rank_disagreement_named() -> None:
    declared = Contract(inputs=(Field("x", "float32", ("N",)), DERIVED.inputs[1]), outputs=DERIVED.outputs)
    assert "declared rank 1" in reasons(declared)[0]


def test_fixed_dim_disagreement_named() -> None:
    declared = Contract(inputs=(Field("x", "float32", ("N", "k")), DERIVED.inputs[1]), outputs=DERIVED.outputs)
    assert reasons(declared) == ["contract.json: inputs.x.shape[1]: declared 'k' but the graph fixes it to 4"]


def test_input_may_fix_a_dynamic_dim_but_output_may_not() -> None:
    declared = Contract(
        inputs=(Field("x", "float32", (8, 4)), Field("mask", "bool", (8, 5))),
        outputs=(Field("y", "float32", (8, 3)),),
    )
    assert reasons(declared) == [
        "contract.json: outputs.y.shape[0]: declared fixed size 8 but the graph leaves it "
        "dynamic ('N'); use a name or -1"
    ]


def test_missing_and_extra_fields_named() -> None:
    declared = Contract(inputs=(DERIVED.inputs[0], Field("extra", "int64", (1,))), outputs=DERIVED.outputs)
    got = reasons(declared)
    assert "contract.json: inputs: graph input 'mask' is missing; declare it" in got
    assert any("the graph has no input 'extra'" in r for r in got)


def test_tied_dims_must_stay_tied() -> None:
    declared = Contract(
        inputs=(Field("x", "float32", ("a", 4)), Field("mask", "bool", ("b", -1))),
        outputs=(Field("y", "float32", ("a", 3)),),
    )
    assert any("ties dims together as 'N'" in r for r in reasons(declared))


def test_iris_declared_contract_agrees_with_graph() -> None:
    import json

    declared = Contract.from_json(json.loads((EXAMPLES / "iris-mlp" / "contract.json").read_text()))
    derived = inspect_onnx(EXAMPLES / "iris-mlp" / "model.onnx", EXAMPLES / "iris-mlp").contract
    assert compare_contract(declared, derived) == []
