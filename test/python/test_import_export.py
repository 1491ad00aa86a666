"""Import/export details: custom domains, sub-graphs, external data, metadata, types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from helpers import assert_same_outputs, run
from spa.exporter import export_module, save_module
from spa.importer import import_model

F = onnx.TensorProto.FLOAT


def _model(nodes, inputs, outputs, initializers=(), opsets=(("", 17),), **kwargs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
                             ir_version=10, **kwargs)


def test_custom_domain_op_round_trips_and_runs() -> None:
    # com.microsoft::Gelu is an onnxruntime contrib op: the round trip can be run.
    model = _model([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft", name="gelu")],
                   [helper.make_tensor_value_info("x", F, [3, 4])], [helper.make_tensor_value_info("y", F, [3, 4])],
                   opsets=(("", 17), ("com.microsoft", 1)))
    exported = export_module(import_model(model))
    assert [(n.domain, n.op_type, n.name) for n in exported.graph.node] == [("com.microsoft", "Gelu", "gelu")]
    # written at the opset it came with
    assert {(o.domain, o.version) for o in exported.opset_import} == {("", 17), ("com.microsoft", 1)}
    feeds = {"x": np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)}
    assert_same_outputs(run(model, feeds), run(exported, feeds))


def test_unknown_domain_op_keeps_every_attribute_kind() -> None:
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "body", [],
                             [helper.make_tensor_value_info("z", F, [2])])
    node = helper.make_node("Mystery", ["x", "", "x"], ["y", "y2"], domain="acme.ops", name="m",
                            count=3, scale=0.5, label="hi", sizes=[1, 2], weights=[0.25],
                            names=["a", "b"], table=numpy_helper.from_array(np.arange(4, dtype=np.int64)),
                            body=body)
    node.attribute.append(helper.make_attribute("empty_ints", [], attr_type=onnx.AttributeProto.INTS))
    model = _model([node], [helper.make_tensor_value_info("x", F, [2])],
                   [helper.make_tensor_value_info("y", F, [2])], opsets=(("", 17), ("acme.ops", 3)))
    exported = export_module(import_model(model))
    (out,) = exported.graph.node
    assert (out.domain, out.op_type, list(out.input), list(out.output)) == ("acme.ops", "Mystery", ["x", "", "x"], ["y", "y2"])
    before = {a.name: a for a in node.attribute}
    after = {a.name: a for a in out.attribute}
    assert set(after) == set(before)
    for name in ("count", "scale", "label", "sizes", "empty_ints", "weights", "names"):
        assert after[name] == before[name], name
    assert after["empty_ints"].type == onnx.AttributeProto.INTS
    np.testing.assert_array_equal(numpy_helper.to_array(after["table"].t), np.arange(4))
    assert [n.op_type for n in after["body"].g.node] == ["Identity"]


def test_if_subgraphs_use_outer_values() -> None:
    then_graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", F, [2])])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                                   [helper.make_tensor_value_info("e", F, [2])])
    model = _model([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
                    helper.make_node("Greater", ["s", "zero"], ["c"]),
                    helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph)],
                   [helper.make_tensor_value_info("x", F, [2])], [helper.make_tensor_value_info("y", F, [2])],
                   initializers=[numpy_helper.from_array(np.array(0, dtype=np.float32), "zero")])
    exported = export_module(import_model(model))
    onnx.checker.check_model(exported, full_check=True)
    for values in ([1.0, 2.0], [-1.0, -2.0]):
        feeds = {"x": np.array(values, dtype=np.float32)}
        assert_same_outputs(run(model, feeds), run(exported, feeds))


def test_dynamic_dims_and_metadata_survive() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", F, ["batch", 3])],
                   [helper.make_tensor_value_info("y", F, ["batch", 3])],
                   producer_name="unit", model_version=7, doc_string="doc")
    helper.set_model_props(model, {"author": "spa"})
    exported = export_module(import_model(model))
    assert exported.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert exported.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert (exported.producer_name, exported.model_version, exported.doc_string) == ("unit", 7, "doc")
    assert {p.key: p.value for p in exported.metadata_props} == {"author": "spa"}


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int8, np.uint8, np.int32, np.int64, np.bool_])
def test_initializer_types_round_trip_bit_exact(dtype) -> None:
    values = (np.arange(-6, 6).reshape(3, 4) % 5).astype(dtype)
    tensor = numpy_helper.from_array(values, "w")
    proto_type = tensor.data_type
    model = _model([helper.make_node("Identity", ["w"], ["y"])], [],
                   [helper.make_tensor_value_info("y", proto_type, [3, 4])], initializers=[tensor])
    exported = export_module(import_model(model))
    (weight,) = exported.graph.initializer
    assert weight.data_type == proto_type
    np.testing.assert_array_equal(numpy_helper.to_array(weight), values)


def test_external_data_model_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "fc.weight")
    model = _model([helper.make_node("MatMul", ["x", "fc.weight"], ["y"])],
                   [helper.make_tensor_value_info("x", F, [4, 64])], [helper.make_tensor_value_info("y", F, [4, 32])],
                   initializers=[weight])
    source = tmp_path / "source.onnx"
    onnx.save_model(model, source, save_as_external_data=True, location="source.data", size_threshold=0)
    target = tmp_path / "out" / "pruned.onnx"
    target.parent.mkdir()
    save_module(import_model(source), target, external_data=True)
    assert (tmp_path / "out" / "pruned.onnx.data").stat().st_size >= 64 * 32 * 4
    assert onnx.load(target, load_external_data=False).graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL
    feeds = {"x": rng.standard_normal((4, 64)).astype(np.float32)}
    assert_same_outputs(run(source, feeds), run(target, feeds))


@pytest.mark.slow
def test_model_over_2gb_round_trips(tmp_path: Path) -> None:
    count = 3 * 2**28  # 3 GiB of float32, written as external data (protobuf cannot hold it)
    data = np.lib.format.open_memmap(tmp_path / "tmp.npy", mode="w+", dtype=np.float32, shape=(count,))
    data[:] = 1.0
    data[-1] = 5.0  # the last element must arrive too
    data.tofile(tmp_path / "big.data")
    del data
    weight = onnx.TensorProto(name="w", data_type=F, dims=[count], data_location=onnx.TensorProto.EXTERNAL)
    weight.external_data.add(key="location", value="big.data")
    model = _model([helper.make_node("ReduceMax", ["w"], ["y"], keepdims=0),
                    helper.make_node("ReduceMin", ["w"], ["z"], keepdims=0)], [],
                   [helper.make_tensor_value_info("y", F, []), helper.make_tensor_value_info("z", F, [])],
                   initializers=[weight])
    onnx.save_model(model, tmp_path / "big.onnx")
    target = tmp_path / "out.onnx"
    save_module(import_model(tmp_path / "big.onnx"), target)  # external data chosen automatically
    assert (tmp_path / "out.onnx.data").stat().st_size == count * 4
    assert run(target, {}) == [5.0, 1.0]


def test_dense_text_constants_export(tmp_path: Path) -> None:
    # Hand-written IR uses inline dense<...> constants, including splats and bit-packed i1.
    from spa.ir.files import read_module

    source = tmp_path / "consts.mlir"
    source.write_text("""
module attributes {onnx.ir_version = 10 : i64, onnx.opset_import = {ai.onnx = 26 : i64}} {
  func.func @main_graph() -> (tensor<2x3xf32> {onnx.name = "a"}, tensor<5xi1> {onnx.name = "b"}, tensor<3xi64> {onnx.name = "c"}) {
    %a = onnx.Initializer "a" = dense<1.5> : tensor<2x3xf32>
    %b = onnx.Initializer "b" = dense<[true, false, true, true, false]> : tensor<5xi1>
    %c = onnx.Initializer "c" = dense<[7, -8, 9]> : tensor<3xi64>
    return %a, %b, %c : tensor<2x3xf32>, tensor<5xi1>, tensor<3xi64>
  }
}
""")
    exported = export_module(read_module(source))
    values = {t.name: numpy_helper.to_array(t) for t in exported.graph.initializer}
    np.testing.assert_array_equal(values["a"], np.full((2, 3), 1.5, dtype=np.float32))
    np.testing.assert_array_equal(values["b"], np.array([True, False, True, True, False]))
    np.testing.assert_array_equal(values["c"], np.array([7, -8, 9], dtype=np.int64))
    a, b, c = run(exported, {})
    np.testing.assert_array_equal(b, values["b"])
