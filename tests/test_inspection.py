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
