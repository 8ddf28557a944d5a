"""inspect_model agrees with the interpreter's own details, and refuses what is not a model."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from lite_debug.errors import ModelLoadError
from lite_debug.gallery import examples
from lite_debug.inspection import inspect_model, packed_file
from lite_debug.records import OpInfo

REAL = Path(__file__).parent / "real_models"
REAL_MODELS = sorted(REAL.glob("*.tflite")) if REAL.exists() else []


def need_real_models():
    if not REAL_MODELS:
        msg = "real models missing: run `python scripts/fetch_real_models.py` (needs the package index)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def interpreter_details(model_bytes):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes)
    return it.get_input_details(), it.get_output_details(), it.get_signature_list()


def assert_matches_interpreter(spec, model_bytes):
    ins, outs, sigs = interpreter_details(model_bytes)
    for mine, theirs in ((spec.inputs, ins), (spec.outputs, outs)):
        assert len(mine) == len(theirs)
        for t, d in zip(mine, theirs):
            assert t.index == d["index"] and t.name == d["name"]
            assert list(t.shape) == d["shape"].tolist()
            assert list(t.shape_signature) == d["shape_signature"].tolist()
            assert np.dtype(t.dtype) == np.dtype(d["dtype"])
            scales = d["quantization_parameters"]["scales"]
            assert np.allclose(t.quantization.scale, scales)
            assert list(t.quantization.zero_point) == d["quantization_parameters"]["zero_points"].tolist()
    assert {s.key: {"inputs": sorted(t.name for t in s.inputs), "outputs": sorted(t.name for t in s.outputs)} for s in spec.signatures} == {
        k: {"inputs": sorted(v["inputs"]), "outputs": sorted(v["outputs"])} for k, v in sigs.items()
    }


@pytest.mark.parametrize("ex", examples(), ids=lambda e: e.id)
def test_gallery_models_match_the_interpreter(ex):
    data = ex.model_bytes
    assert_matches_interpreter(inspect_model(data), data)


def test_real_models_match_the_interpreter():
    need_real_models()
    for path in REAL_MODELS:
        data = path.read_bytes()
        assert_matches_interpreter(inspect_model(data), data)


def test_custom_ops_of_a_real_model_are_listed_before_anything_runs():
    need_real_models()
    spec = inspect_model((REAL / "face_landmark_with_attention.tflite").read_bytes())
    assert {o.name for o in spec.custom_ops} == {"TransformLandmarks", "Landmarks2TransformMatrix", "TransformTensorBilinear"}
    assert all("custom op" in o.note for o in spec.custom_ops)
    assert spec.ops[0].kind == "custom"  # unusual ops first


def test_flex_ops_and_op_counts():
    ex = next(e for e in examples() if e.id == "select-tf-op")
    spec = inspect_model(ex.model_bytes)
    assert [(o.name, o.kind) for o in spec.flex_ops] == [("FlexMatrixInverse", "flex")]
    assert "Flex delegate" in spec.flex_ops[0].note


def test_quantization_and_op_inventory():
    ex = next(e for e in examples() if e.id == "uint8-float-data")
    spec = inspect_model(ex.model_bytes)
    q = spec.inputs[0].quantization
    assert q.is_quantized and not q.per_channel and q.scale[0] == pytest.approx(1 / 255) and q.zero_point == (0,)
    assert sum(o.count for o in spec.ops) >= 2 and spec.schema_version == 3


def test_packed_labels_file():
    ex = next(e for e in examples() if e.id == "image-size")
    spec = inspect_model(ex.model_bytes)
    assert [f.name for f in spec.packed_files] == ["labels.txt"]
    labels = packed_file(ex.model_bytes, "labels.txt").decode().splitlines()
    assert len(labels) == 10 and labels[0] == "alpine meadow"


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"TFL3", "only 4 bytes"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML page"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
        (b"PK\x03\x04" + b"\x00" * 40, "zip archive"),
        (b"\x89HDF\r\n\x1a\n" + b"\x00" * 40, "Keras/HDF5"),
        (bytes(range(256)) * 4, "not a TFLite flatbuffer"),
    ],
)
def test_not_a_model(data, words):
    with pytest.raises(ModelLoadError) as info:
        inspect_model(data)
    assert words in str(info.value) and str(info.value).endswith(".")


def test_truncated_and_corrupted_models_raise_model_load_error_only():
    data = next(e for e in examples() if e.id == "image-size").model_bytes
    rng = random.Random(7)
    for cut in (8, 12, 64, 200, len(data) // 3, len(data) // 2):
        try:
            inspect_model(data[:cut])
        except ModelLoadError:
            pass
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            mutated[rng.randrange(8, 2000)] = rng.randrange(256)
        try:
            inspect_model(bytes(mutated))
        except ModelLoadError as exc:
            assert str(exc).endswith(".")


# -- work bounded by the file's size (issue 15, item 5) ------------------------------------------

import sys  # noqa: E402

import crafted  # noqa: E402

ADD_FLOAT = Path(__file__).parent / "fixtures" / "add_float.tflite"


def python_calls(fn) -> int:
    """How many Python and C functions ``fn()`` calls: a measure of work that load cannot move.

    A small model's details are read first, so that first imports (numpy, the schema) are not counted.
    """
    inspect_model(ADD_FLOAT.read_bytes()).ops
    n = 0

    def count(frame, event, arg):
        nonlocal n
        if event in ("call", "c_call"):
            n += 1

    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return n


def _aliased(copies: int, list_slot: int, table) -> bytes:
    base = ADD_FLOAT.read_bytes()
    field = crafted.field_position(base, [("vector", 8, 0), ("field", list_slot, 0)])
    return crafted.alias_vector(base, field, copies, table)


def test_a_tensor_list_naming_one_table_200000_times_is_refused_at_once():
    # 800 KB whose tensor list points 200,000 times at one table: the graph's outputs are
    # tensor 2, which is tensor 0 again. Before: read as 200,000 tensors (seconds of CPU).
    data = _aliased(200_000, 4, crafted.tensor_table("x", (1, 4)))
    with pytest.raises(ModelLoadError, match="one and the same table.*crafted or corrupt") as info:
        inspect_model(data)
    assert str(info.value).endswith(".")
    assert python_calls(lambda: pytest.raises(ModelLoadError, inspect_model, data)) < 2_000


def test_an_operator_list_naming_one_table_200000_times_is_a_sentence_not_a_minute():
    data = _aliased(200_000, 10, crafted.operator_table(0, (0, 1), (2,)))
    spec = inspect_model(data)  # inputs and outputs are fine: only the details see the list
    calls = python_calls(lambda: spec.ops)
    assert "operator list of subgraph 0 has 200,000 entries naming only 1 distinct table" in spec.problem
    assert spec.problem.endswith(".") and spec.ops == () and spec.graph is None
    assert calls < 2_000  # before: 200,000 operators read one by one
    assert spec.sha256 and spec.packed_files == ()  # the rest of the details is still there


def test_tensors_sharing_one_long_shape_vector_stop_at_the_budget():
    # 2,001 tensors whose shapes all point at one vector of 20,000 dimensions: 80 KB in the
    # file, 160 MB of reads if every tensor read it (the work would grow with the square of
    # the file's size). Before: 40 million dimensions multiplied one by one.
    base = crafted.chain_model(1000)
    fields = [crafted.field_position(base, [("vector", 8, 0), ("vector", 4, i), ("field", 4, 0)]) for i in range(2001)]
    data = crafted.share_vector(base, fields, np.full(20_000, 1, "<i4"))
    spec = inspect_model(data)
    calls = python_calls(lambda: spec.ops)
    assert "refers to the same bytes again and again" in spec.problem, spec.problem
    assert calls < 5_000


@pytest.fixture(scope="module")
def chains():
    """Valid models of 2,001 and 10,001 tensors (1,000 and 5,000 ADDs of a constant each)."""
    return {n: crafted.chain_model(n) for n in (1000, 5000)}


def test_the_details_of_10000_tensors_cost_what_the_details_of_2000_cost(chains):
    # Before: ~30 Python calls per tensor (the generated accessors), 4.5 s for 100,000 tensors.
    calls = {}
    for n, data in chains.items():
        spec = inspect_model(data)
        calls[n] = python_calls(lambda: (spec.ops, spec.activation_bytes, spec.sha256))
        assert spec.problem == ""
        assert spec.ops == (OpInfo(name="ADD", kind="builtin", count=n, version=1),)
        assert spec.activation_bytes == (n + 1) * 16  # x and each ADD's output: [1, 4] float32
    assert calls[5000] < calls[1000] + 500 and calls[5000] < 5_000, calls
    graph = inspect_model(chains[5000]).graph
    assert graph.tensor_count == 10_001 and graph.operator_count == 5000


def test_records_of_a_10000_tensor_graph_cost_a_few_calls_each_and_match_the_interpreter(chains):
    from ai_edge_litert.interpreter import Interpreter

    data = chains[5000]
    graph = inspect_model(data).graph
    sub = graph.main
    calls = python_calls(lambda: (list(sub.tensors), list(sub.operators)))
    assert calls < 8 * (len(sub.tensors) + len(sub.operators)), calls
    interpreter = Interpreter(model_content=data)
    for d in interpreter.get_tensor_details()[::97]:
        t = sub.tensors[d["index"]]
        assert (t.name, list(t.shape)) == (d["name"], d["shape"].tolist())
    for d in interpreter._get_ops_details()[::97]:
        o = sub.operators[d["index"]]
        assert (o.name, list(o.inputs), list(o.outputs)) == (d["op_name"], d["inputs"].tolist(), d["outputs"].tolist())
    last = sub.tensors[sub.outputs[0]]
    assert last.producer == 4999 and last.consumers == () and sub.tensors[0].consumers == (0,)


def test_a_diagnosis_reads_the_metadata_alone_not_the_hash_or_the_graph():
    """Inspecting and diagnosing must not take a pass over the whole model: the face detector's
    metadata (its normalisation) is read by itself; the SHA-256 and the graph wait for a run."""
    from lite_debug.diagnosis import diagnose
    from lite_debug.generate import generate_feed

    path = Path(__file__).parent / "real_models" / "face_detection_short_range.tflite"
    if not path.exists():
        pytest.skip("real models not fetched (scripts/fetch_real_models.py)")
    spec = inspect_model(path.read_bytes())
    diagnose(spec, generate_feed(spec))
    assert spec.metadata is not None and spec.metadata.main is not None  # the diagnosis did need it
    assert "_details" not in spec.__dict__ and "sha256" not in spec.__dict__
    # And asked for, the parts agree with the whole.
    assert spec.sha256 == spec._details.sha256 or spec._details.sha256 == ""
    assert len(spec.sha256) == 64 and spec.graph is not None
