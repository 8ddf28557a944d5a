"""read_graph agrees with the interpreter and the schema's own accessors, stays bounded on
crafted files, finds statefulness and the normalisation a model starts with."""

from __future__ import annotations

import os
import random
import re
import struct

import numpy as np
import pytest

import crafted
from lite_debug._schema import schema
from lite_debug.errors import ModelLoadError
from lite_debug.gallery import examples
from lite_debug.graph import Graph, Operator, Subgraph, Tensor, constant_values, input_normalization, read_graph
from lite_debug.inspection import inspect_model
from lite_debug.records import Quantization
from test_inspection import ADD_FLOAT, REAL, REAL_MODELS, need_real_models, python_calls

RUNNABLE = [e for e in examples() if e.id not in ("select-tf-op", "custom-op")]


def _models():
    return [(p.name, p.read_bytes()) for p in REAL_MODELS] + [(e.id, e.model_bytes) for e in examples()]


# -- agreement with the interpreter and the schema --------------------------------------------------


def _interpreter(data: bytes):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=data)


@pytest.mark.parametrize("name", [p.name for p in REAL_MODELS] + [e.id for e in RUNNABLE])
def test_tensors_and_operators_match_the_interpreter(name):
    data = (REAL / name).read_bytes() if name.endswith(".tflite") else next(e for e in examples() if e.id == name).model_bytes
    graph = read_graph(data)
    sub = graph.main
    interpreter = _interpreter(data)
    details = interpreter.get_tensor_details()
    assert len(sub.tensors) == len(details)
    for d in details:
        t = sub.tensors[d["index"]]
        assert (t.index, t.name) == (d["index"], d["name"])
        assert list(t.shape) == d["shape"].tolist() and list(t.shape_signature) == d["shape_signature"].tolist()
        assert np.dtype(t.dtype) == d["dtype"]
        assert np.allclose(t.quantization.scale, d["quantization_parameters"]["scales"])
        assert list(t.quantization.zero_point) == d["quantization_parameters"]["zero_points"].tolist()
    ops = interpreter._get_ops_details()
    assert len(sub.operators) == len(ops)
    for d in ops:
        o = sub.operators[d["index"]]
        assert o.name == d["op_name"]
        assert list(o.inputs) == d["inputs"].tolist() and list(o.outputs) == d["outputs"].tolist()
    # producers and consumers are the operators' outputs and inputs seen from the tensors
    for o in sub.operators:
        assert all(sub.tensors[t].producer == o.index for t in o.outputs)
        assert all(o.index in sub.tensors[t].consumers for t in o.inputs if t >= 0)
    for t in sub.tensors:
        assert list(t.consumers) == sorted(t.consumers)
        assert t.producer is None or t.index in sub.operators[t.producer].outputs
        if t.is_constant:
            assert t.producer is None
    assert [t.index for t in sub.tensors] == list(range(len(sub.tensors)))


def _snake_to_camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def test_builtin_options_match_the_schemas_generated_accessors():
    need_real_models()
    from lite_debug.graph import _ACTIVATION, _MIRROR, _OPTION_FIELDS, _PADDING

    fb = schema()
    option_names = {v: k for k, v in vars(fb.BuiltinOptions).items() if not k.startswith("_")}
    checked = set()
    for name, data in _models():
        model = fb.Model.GetRootAs(data, 0)
        graph = read_graph(data)
        for s, sub in enumerate(graph.subgraphs):
            for o in sub.operators:
                generated = model.Subgraphs(s).Operators(o.index)
                kind = option_names.get(generated.BuiltinOptionsType())
                if kind not in _OPTION_FIELDS:
                    assert dict(o.options) == {}, (name, o)
                    continue
                table = generated.BuiltinOptions()
                options = getattr(fb, kind)()
                options.Init(table.Bytes, table.Pos)
                expected = {}
                for field, _, how, _ in _OPTION_FIELDS[kind]:
                    getter = getattr(options, _snake_to_camel(field).replace("2d", "2D"), None)
                    if getter is None:
                        getter = next(getattr(options, m) for m in dir(options) if m.lower() == field.replace("_", ""))
                    if how == "ints":
                        value = tuple(int(v) for v in getattr(options, getter.__name__ + "AsNumpy")()) if getattr(options, getter.__name__ + "Length")() else ()
                    else:
                        value = getter()
                    value = {"act": _ACTIVATION, "pad": _PADDING, "mirror": _MIRROR}.get(how, {}).get(value, value)
                    if how == "str":
                        value = (value or b"").decode()
                    if how == "type":
                        value = inspect_type(value)
                    expected[field] = value
                assert dict(o.options) == expected, (name, o.index, kind)
                checked.add(kind)
    assert {"Conv2DOptions", "DepthwiseConv2DOptions", "Pool2DOptions", "ReshapeOptions", "ConcatenationOptions"} <= checked


def inspect_type(code: int) -> str:
    from lite_debug._schema import NUMPY_NAMES, tensor_type_names

    name = tensor_type_names()[code]
    return NUMPY_NAMES.get(name) or name.lower()


def test_inventory_and_memory_estimate_come_from_the_graph():
    need_real_models()
    data = (REAL / "face_landmark_with_attention.tflite").read_bytes()
    spec = inspect_model(data)
    graph = spec.graph
    counts = {}
    for o in graph.main.operators:
        counts[o.name] = counts.get(o.name, 0) + 1
    assert {o.name: o.count for o in spec.ops} == counts
    assert spec.activation_bytes == sum(t.nbytes for t in graph.main.tensors if not t.is_constant)
    assert spec.ops[0].kind == "custom" and not spec.is_stateful


def test_records_behave_as_tuples():
    data = ADD_FLOAT.read_bytes()
    sub = read_graph(data).main
    tensors = sub.tensors
    assert len(tensors) == 3 and tensors[-1] is tensors[2] and tensors[0:2] == (tensors[0], tensors[1])
    assert tuple(tensors) == tensors and list(tensors) == list(tensors)
    with pytest.raises(IndexError):
        tensors[3]
    again = read_graph(data).main
    assert again == sub and hash(again.tensors) == hash(sub.tensors)
    assert sub.operators[0].options == {"fused_activation_function": "NONE"}
    with pytest.raises(TypeError):
        sub.operators[0].options["x"] = 1  # records are read-only, options too


# -- neighbourhoods and the drawing -----------------------------------------------------------------


def test_neighbourhood_of_an_operator_and_of_a_tensor():
    need_real_models()
    sub = read_graph((REAL / "hand_landmark_lite.tflite").read_bytes()).main
    j = len(sub.operators) // 2
    op = sub.operators[j]
    ops, tensors = sub.neighbourhood(op=j, hops=0)
    assert ops == (j,) and set(tensors) == {t for t in (*op.inputs, *op.outputs) if t >= 0}
    ops1, tensors1 = sub.neighbourhood(op=j, hops=1)
    producers = {sub.tensors[t].producer for t in op.inputs if t >= 0} - {None}
    readers = {c for t in op.outputs for c in sub.tensors[t].consumers}
    assert producers | readers | {j} <= set(ops1) and set(tensors) <= set(tensors1)
    assert len(sub.neighbourhood(op=j, hops=3)[0]) >= len(ops1)
    t = op.outputs[0]
    ops_t, tensors_t = sub.neighbourhood(tensor=t, hops=1)
    assert set(ops_t) == {j, *sub.tensors[t].consumers} and t in tensors_t
    with pytest.raises(IndexError):
        sub.neighbourhood(op=len(sub.operators))


def test_the_drawing_shows_names_as_text_never_as_markup():
    model = crafted.unpack_model(ADD_FLOAT.read_bytes())
    hostile = 'x"];\nevil [label=<<b>b</b>>]\\N\x07'  # fits the 48 characters a label keeps
    model.subgraphs[0].tensors[0].name = hostile.encode()
    sub = read_graph(crafted.pack_model(model)).main
    assert sub.tensors[0].name == hostile
    ops, tensors = sub.neighbourhood(op=0, hops=1)
    dot = sub.dot(ops, tensors, focus_op=0)
    # every node is one line whose label is one quoted DOT string: quotes and backslashes
    # escaped, the newline and the bell shown as text, no HTML-like <...> label
    node = re.compile(r'^  (?:op|t)\d+ \[shape=\w+, style=(?:filled|"filled,bold"), fillcolor="#[0-9a-f]{6}", label="((?:[^"\\]|\\.)*)"\];$')
    lines = [line for line in dot.splitlines() if "label=" in line and "->" not in line]
    labels = [node.match(line).group(1) for line in lines]
    assert len(labels) == 3
    assert labels[1].startswith('x\\"];\\\\x0aevil [label=<<b>b</b>>]\\\\N\\\\x07\\n[1, 4] float32 (input)')
    assert "\x07" not in dot and len(dot.splitlines()) == dot.count("\n") + 1


# -- bounded on crafted files (aliased vectors, the fuzz-style campaign) -----------------------------

# (path to the vector-of-tables field, what to alias it to) in a model's tables
_TABLE_LISTS = [
    ("subgraphs", [("field", 8, 0)], lambda: crafted.raw_table([])),
    ("tensors", [("vector", 8, 0), ("field", 4, 0)], lambda: crafted.tensor_table("t", (1, 4))),
    ("operators", [("vector", 8, 0), ("field", 10, 0)], lambda: crafted.operator_table(0, (0,), (0,))),
    ("operator codes", [("field", 6, 0)], lambda: crafted.raw_table([(8, "i32", 1)])),
    ("buffers", [("field", 12, 0)], lambda: crafted.raw_table([])),
    ("metadata", [("field", 16, 0)], lambda: crafted.raw_table([(4, "str", "TFLITE_METADATA"), (6, "u32", 0)])),
    ("signature defs", [("field", 18, 0)], lambda: crafted.raw_table([(8, "str", "k"), (12, "u32", 0)])),
]
# int32 vectors that every tensor or operator of a list may be pointed at, at once
_SCALAR_LISTS = [
    ("tensor shapes", 4, 4),
    ("tensor signatures", 4, 18),
    ("operator inputs", 10, 6),
    ("operator outputs", 10, 8),
]
CASES = int(os.environ.get("LITE_DEBUG_FUZZ_CASES", "300")) // 10


def _every_step(data: bytes) -> None:
    """What the dashboard asks of a model: inspect, details, every record, a neighbourhood."""
    try:
        spec = inspect_model(data)
    except ModelLoadError as exc:
        assert str(exc).endswith("."), exc
        return
    spec.ops, spec.activation_bytes, spec.sha256, spec.packed_files
    assert spec.problem == "" or spec.problem.endswith("."), spec.problem
    graph = spec.graph
    if graph is None:
        assert spec.problem
        return
    for sub in graph.subgraphs:
        list(sub.tensors), list(sub.operators)
        if len(sub.operators):
            ops, tensors = sub.neighbourhood(op=0, hops=2)
            sub.dot(ops, tensors)
    input_normalization(data, graph)


@pytest.mark.parametrize("seed", range(CASES))
def test_aliased_vectors_end_in_a_sentence_within_bounded_work(seed):
    rng = random.Random(seed)
    pool = _models() if REAL_MODELS else [(e.id, e.model_bytes) for e in examples()]
    mutant = None
    while mutant is None:  # some models lack some lists (no signatures): draw again
        name, data = rng.choice(pool)
        copies = rng.choice((2, 3, 1000, 100_000))
        if rng.random() < 0.6:
            label, path, table = rng.choice(_TABLE_LISTS)
            try:
                mutant = crafted.alias_vector(data, crafted.field_position(data, path), copies, table())
            except ValueError:
                continue
        else:
            label, list_slot, field_slot = rng.choice(_SCALAR_LISTS)
            where = crafted.field_position(data, [("vector", 8, 0), ("field", list_slot, 0)])
            n = struct.unpack_from("<I", data, where + struct.unpack_from("<I", data, where)[0])[0]
            fields = []
            for i in range(n):
                try:
                    fields.append(crafted.field_position(data, [("vector", 8, 0), ("vector", list_slot, i), ("field", field_slot, 0)]))
                except ValueError:
                    pass
            if fields:
                length = rng.choice((1, 4, 10_000, 200_000))
                mutant = crafted.share_vector(data, fields, np.zeros(length, "<i4"))
                copies = len(fields) * length
    size = len(mutant)
    calls = python_calls(lambda: _every_step(mutant))
    # what the file can pay for: the records of a valid file of this size cost about as much
    assert calls < 40 * size // 16 + 50_000, (name, label, copies, calls)


def test_a_corrupt_graph_is_a_sentence_and_a_graph_read_is_complete():
    # The records are built later from checked columns: once read_graph returned, building
    # them cannot fail, however corrupt the rest of the file.
    rng = random.Random(11)
    pool = [e.model_bytes for e in examples()]
    for _ in range(300):
        data = bytearray(rng.choice(pool))
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(8, min(len(data), 4000))] = rng.randrange(256)
        try:
            graph = read_graph(bytes(data))
        except ModelLoadError as exc:
            assert str(exc).endswith(".")
            continue
        for sub in graph.subgraphs:
            list(sub.tensors), list(sub.operators)
        graph.ops, graph.stateful, graph.activation_bytes()


# -- statefulness ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip("tensorflow", reason="the models of these tests are built with TensorFlow's converter")


def build_stateful(tf) -> bytes:
    """A model with a resource variable: each run adds its input to a total it keeps."""

    class Counter(tf.Module):
        def __init__(self):
            self.total = tf.Variable(tf.zeros([4]))

        @tf.function(input_signature=[tf.TensorSpec([4], tf.float32)])
        def add(self, x):
            self.total.assign_add(x)
            return self.total.read_value()

    module = Counter()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.add.get_concrete_function()], module)
    converter.experimental_enable_resource_variables = True
    return bytes(converter.convert())


@pytest.fixture(scope="module")
def stateful_model(tf):
    return build_stateful(tf)


def test_a_model_with_variables_is_stateful(stateful_model):
    spec = inspect_model(stateful_model)
    assert spec.is_stateful
    reasons = spec.graph.stateful
    assert any("VAR_HANDLE" in r for r in reasons) and any("ASSIGN_VARIABLE" in r for r in reasons)
    assert any("resource tensor" in r for r in reasons)
    var = next(o for o in spec.graph.main.operators if o.name == "VAR_HANDLE")
    assert var.options["shared_name"] == "Variable"
    assert next(o for o in spec.graph.main.operators if o.name == "CALL_ONCE").options == {"init_subgraph_index": 1}


def test_converter_and_real_models_are_not_stateful():
    for name, data in _models():
        assert not inspect_model(data).is_stateful, name


def test_a_variable_tensor_makes_a_model_stateful():
    model = crafted.unpack_model(ADD_FLOAT.read_bytes())
    model.subgraphs[0].tensors[1].isVariable = True
    graph = read_graph(crafted.pack_model(model))
    assert graph.stateful == ("1 variable tensor",) and graph.main.tensors[1].is_variable


# -- normalisation at the start of the graph ---------------------------------------------------------


def keras_model(tf, body, shape=(32, 32, 3), quantize=False) -> bytes:
    import keras

    inp = keras.Input(shape)
    model = keras.Model(inp, body(keras, inp))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.uniform(0, 255, (1, *shape)).astype(np.float32)] for _ in range(8))
    return bytes(converter.convert())


@pytest.fixture(scope="module")
def normalising(tf):
    """Converter-built models that start with normalisation (a conv with SAME padding keeps
    the ops: with VALID padding the converter folds them into the weights)."""
    conv = lambda k, x: k.layers.Conv2D(4, 3, padding="same")(x)  # noqa: E731
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    return {
        "rescale -1..1": keras_model(tf, lambda k, x: conv(k, k.layers.Rescaling(1 / 127.5, offset=-1)(x))),
        "rescale then pool": keras_model(tf, lambda k, x: conv(k, k.layers.MaxPooling2D()(k.layers.Rescaling(1 / 127.5, offset=-1)(x)))),
        "x*2-1": keras_model(tf, lambda k, x: conv(k, k.layers.Rescaling(2.0, offset=-1)(x))),
        "imagenet": keras_model(tf, lambda k, x: conv(k, k.layers.Normalization(mean=mean, variance=std**2)(x))),
        "int8 rescale": keras_model(tf, lambda k, x: conv(k, k.layers.Rescaling(1 / 127.5, offset=-1)(x)), quantize=True),
        "none": keras_model(tf, lambda k, x: conv(k, x)),
    }


def test_rescaling_to_minus_one_one_says_the_model_expects_0_255(normalising):
    (n,) = input_normalization(normalising["rescale -1..1"])
    assert n.ops == ("MUL", "ADD") and n.input_index == 0
    assert n.scale == pytest.approx((1 / 127.5,)) and n.offset == pytest.approx((-1.0,))
    assert n.expects == (0.0, 255.0) and n.maps_to == (-1.0, 1.0) and not n.standardises
    assert "[0, 255]" in n.describe() and "guess" in n.describe()
    (p,) = input_normalization(normalising["rescale then pool"])
    assert p.expects == (0.0, 255.0)


def test_x_times_2_minus_1_expects_0_1(normalising):
    (n,) = input_normalization(normalising["x*2-1"])
    assert n.expects == (0.0, 1.0) and n.maps_to == (-1.0, 1.0)


def test_mean_std_per_channel_is_a_standardisation_of_0_255(normalising):
    (n,) = input_normalization(normalising["imagenet"])
    assert n.ops == ("SUB", "MUL") and len(n.scale) == 3
    assert n.scale == pytest.approx(tuple(1 / (np.array([0.229, 0.224, 0.225]) * 255)), rel=1e-4)
    assert n.expects == (0.0, 255.0) and n.standardises
    lo, hi = n.maps_to
    assert lo == pytest.approx(-2.118, abs=1e-3) and hi == pytest.approx(2.64, abs=1e-2)


def test_a_quantized_model_is_followed_through_quantize_with_its_int8_constants(normalising):
    graph = read_graph(normalising["int8 rescale"])
    first = [graph.main.operators[j].name for j in graph.main.tensors[graph.main.inputs[0]].consumers]
    (n,) = input_normalization(normalising["int8 rescale"], graph)
    assert first == ["QUANTIZE"] and n.ops[0] == "QUANTIZE" and "MUL" in n.ops
    assert n.expects == (0.0, 255.0) and n.maps_to == (-1.0, 1.0)


def test_no_normalisation_no_record(normalising):
    assert input_normalization(normalising["none"]) == ()


def test_the_real_mediapipe_models_start_with_a_convolution():
    # What the brief asked to report: none of the four normalises in the graph; their metadata
    # says how (see test_metadata).
    need_real_models()
    for path in REAL_MODELS:
        if path.name == "melspectrogram.tflite":
            continue  # openWakeWord's audio front end, not a mediapipe model: it starts with a TRANSPOSE
        data = path.read_bytes()
        graph = read_graph(data)
        first = {graph.main.operators[j].name for j in graph.main.tensors[graph.main.inputs[0]].consumers}
        assert first == {"CONV_2D"} and input_normalization(data, graph) == (), path.name


def test_constant_values_reads_small_constants_only():
    need_real_models()
    data = (REAL / "face_detection_short_range.tflite").read_bytes()
    sub = read_graph(data).main
    model = schema().Model.GetRootAs(data, 0)
    small = [t for t in sub.tensors if t.is_constant and t.dtype in ("float16", "float32", "int32") and 0 < np.prod(t.shape) <= 4096]
    assert small
    for t in small[:20]:
        expected = model.Buffers(t.buffer).DataAsNumpy().view(t.dtype).astype(float).tolist()
        assert constant_values(data, t) == tuple(expected)
    big = max((t for t in sub.tensors if t.is_constant), key=lambda t: t.nbytes)
    assert constant_values(data, big) is None  # more than 4,096 values
    assert constant_values(data, sub.tensors[sub.inputs[0]]) is None  # not a constant


def test_records_built_by_hand_work_without_columns():
    t = Tensor(0, "x", (1, 4), (1, 4), "float32", Quantization(), 0, False, False, None, (0,))
    y = Tensor(1, "y", (1, 4), (1, 4), "float32", Quantization(), 0, False, False, 0, ())
    op = Operator(0, "RELU", "builtin", 1, 0, (0,), (1,))
    graph = Graph((Subgraph(0, "main", (0,), (1,), (t, y), (op,)),))
    assert graph.activation_bytes() == 32 and graph.ops[0].count == 1 and graph.stateful == ()
    assert graph.main.neighbourhood(tensor=0) == ((0,), (0, 1))
