"""Diagnosis on hand-made specs: every kind found, correct data giving nothing, fix_all converging."""

from __future__ import annotations

import numpy as np
import pytest

from lite_debug.diagnosis import diagnose, fix_all
from lite_debug.fixes import apply_fix
from lite_debug.records import Feed

from specs import model, signature, tensor


def kinds(mismatches):
    return [m.kind for m in mismatches]


def test_correct_data_gives_no_mismatch():
    spec = model(tensor())
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    assert diagnose(spec, [x]) == []


def test_image_size_names_height_and_width_and_offers_resizes():
    spec = model(tensor())
    (m,) = diagnose(spec, [np.zeros((1, 256, 256, 3), np.float32)])
    assert m.kind == "shape" and m.severity == "error"
    assert m.dimension == 1 and m.expected == "224×224" and m.got == "256×256"
    assert "height" in m.message and "width" in m.message
    assert [f.params["mode"] for f in m.fixes] == ["stretch", "crop", "pad"]


def test_missing_batch_dimension():
    spec = model(tensor())
    (m,) = diagnose(spec, [np.zeros((224, 224, 3), np.float32)])
    assert m.kind == "batch" and m.fixes[0].kind == "add_batch"
    assert "batch dimension is missing" in m.message


def test_extra_leading_dimension():
    spec = model(tensor(shape=(1, 10)))
    (m,) = diagnose(spec, [np.zeros((1, 1, 10), np.float32)])
    assert m.kind == "batch" and m.fixes[0].kind == "remove_batch"


def test_rank_mismatch_offers_reshape_when_sizes_agree():
    spec = model(tensor(shape=(1, 12)))
    (m,) = diagnose(spec, [np.zeros((1, 3, 2, 2), np.float32)])
    assert m.kind == "rank" and m.fixes[0].kind == "reshape"


def test_nchw_data_into_nhwc_input():
    spec = model(tensor(shape=(1, 64, 64, 3)))
    (m,) = diagnose(spec, [np.zeros((1, 3, 64, 64), np.float32)])
    assert m.kind == "layout" and m.fixes[0].kind == "nchw_to_nhwc"


def test_nhwc_data_into_nchw_input():
    spec = model(tensor(shape=(1, 3, 32, 32)))
    (m,) = diagnose(spec, [np.zeros((1, 32, 32, 3), np.float32)])
    assert m.kind == "layout" and m.fixes[0].kind == "nhwc_to_nchw"


@pytest.mark.parametrize(
    "given, wanted, fix",
    [(1, 3, "to_rgb"), (4, 3, "drop_alpha"), (3, 1, "to_gray")],
)
def test_channels(given, wanted, fix):
    spec = model(tensor(shape=(1, 32, 32, wanted)))
    (m,) = diagnose(spec, [np.zeros((1, 32, 32, given), np.float32)])
    assert m.kind == "channels" and m.fixes[0].kind == fix and m.dimension == 3


def test_two_dimensional_gray_image():
    spec = model(tensor(shape=(1, 32, 32, 3)))
    gray = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)
    found = diagnose(spec, [gray])
    assert kinds(found) == ["batch", "channels", "dtype"]
    out = fix_all(spec, [gray])
    x = out.feed.arrays["input"]
    assert x.shape == (1, 32, 32, 3) and out.remaining == ()
    assert np.allclose(x[0, :, :, 1], gray / 255.0)


def test_dynamic_batch_needs_resize_input():
    spec = model(tensor(shape=(1, 10), sig=(-1, 10)))
    (m,) = diagnose(spec, [np.zeros((4, 10), np.float32)])
    assert m.kind == "dynamic"
    assert [f.kind for f in m.fixes] == ["resize_input", "take_sample"]
    feed = apply_fix(Feed({"input": np.zeros((4, 10), np.float32)}), m.fixes[0])
    assert feed.resize == {"input": (4, 10)}
    assert diagnose(spec, feed) == []


def test_dynamic_dims_need_no_resize_through_a_signature():
    t = tensor("x", shape=(1, 10), sig=(-1, 10))
    spec = model(t, signatures=[signature("serve", t)])
    assert diagnose(spec, {"x": np.zeros((4, 10), np.float32)}, signature="serve") == []


def test_fixed_batch_with_several_samples():
    spec = model(tensor(shape=(1, 10)))
    (m,) = diagnose(spec, [np.zeros((5, 10), np.float32)])
    assert m.kind == "batch" and m.fixes[0].kind == "take_sample"


def test_float64_into_float32():
    spec = model(tensor(shape=(1, 10)))
    (m,) = diagnose(spec, [np.zeros((1, 10))])
    assert m.kind == "dtype" and "float64" in m.message and m.fixes[0].kind == "cast"


def test_float_into_quantized_input_names_scale_and_zero_point():
    spec = model(tensor(shape=(1, 28, 28, 1), dtype="uint8", scale=1 / 255, zero_point=0))
    found = diagnose(spec, [np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)])
    assert kinds(found) == ["quantization"]
    m = found[0]
    assert "0.00392157" in m.message and "zero point 0" in m.message
    assert m.fixes[0].kind == "quantize" and m.fixes[0].params["scale"] == pytest.approx(1 / 255)


def test_uint8_image_into_int8_input_maps_range_and_warns_about_wrapping():
    spec = model(tensor(shape=(1, 32, 32, 3), dtype="int8", scale=1 / 255, zero_point=-128))
    found = diagnose(spec, [np.full((1, 32, 32, 3), 200, np.uint8)])
    assert kinds(found) == ["dtype", "range"]
    fix = found[0].fixes[0]
    assert fix.kind == "quantize" and fix.params["source"] == [0.0, 255.0]
    fixed = apply_fix(Feed({"input": np.full((1, 32, 32, 3), 200, np.uint8)}), fix).arrays["input"]
    # 200/255 as a real value, quantized with scale 1/255 and zero point -128, is 72.
    assert fixed.dtype == np.int8 and int(fixed[0, 0, 0, 0]) == 72


def test_uint8_pixels_into_float_model():
    spec = model(tensor(shape=(1, 8, 8, 3)))
    (m,) = diagnose(spec, [np.full((1, 8, 8, 3), 255, np.uint8)])
    assert m.kind == "dtype" and m.fixes[0].kind == "normalize" and m.fixes[0].params["target"] == [0, 1]


def test_raw_pixel_values_in_float_image_warn():
    spec = model(tensor(shape=(1, 8, 8, 3)))
    (m,) = diagnose(spec, [np.full((1, 8, 8, 3), 200.0, np.float32)])
    assert m.kind == "range" and m.severity == "warning"


def test_data_outside_quantized_range_warns():
    spec = model(tensor(shape=(1, 4), dtype="int8", scale=1 / 255, zero_point=-128))  # real 0..1
    found = diagnose(spec, [np.array([[0, 50, 100, 255]], np.float32)])
    assert kinds(found) == ["quantization", "range"]
    assert found[1].severity == "warning" and "clip" in found[1].message


def test_nan_values_warn():
    spec = model(tensor(shape=(1, 3)))
    (m,) = diagnose(spec, [np.array([[1.0, np.nan, np.inf]], np.float32)])
    assert m.kind == "nan" and m.severity == "warning" and "2 of 3" in m.message


def test_arrays_given_in_the_wrong_order():
    a = tensor("features", (1, 10), "float32", sig=(-1, 10), index=0)
    b = tensor("tokens", (1, 20), "int32", sig=(-1, 20), index=1)
    spec = model(a, b)
    tokens, features = np.zeros((1, 20), np.int32), np.zeros((1, 10), np.float32)
    found = diagnose(spec, [tokens, features])
    assert kinds(found) == ["association", "association"]
    mapping = found[0].fixes[0].params["mapping"]
    assert mapping == {"features": "tokens", "tokens": "features"}
    fixed = fix_all(spec, [tokens, features])
    assert fixed.remaining == ()
    assert fixed.feed.arrays["features"] is features and fixed.feed.arrays["tokens"] is tokens


def test_arrays_under_another_inputs_name():
    a = tensor("image", (1, 4, 4, 3), "float32", index=0)
    b = tensor("mask", (1, 4, 4), "int32", index=1)
    spec = model(a, b)
    found = diagnose(spec, {"image": np.zeros((1, 4, 4), np.int32), "mask": np.zeros((1, 4, 4, 3), np.float32)})
    assert set(kinds(found)) == {"association"}


def test_names_with_converter_decorations_bind():
    t = tensor("serving_default_input_1:0", (1, 3))
    assert diagnose(model(t), {"input_1": np.zeros((1, 3), np.float32)}) == []


def test_missing_and_extra_arrays():
    spec = model(tensor("a", (1, 3), index=0), tensor("b", (1, 3), index=1))
    found = diagnose(spec, [np.zeros((1, 3), np.float32)])
    assert kinds(found) == ["missing"]
    found = diagnose(model(tensor("a", (1, 3))), [np.zeros((1, 3), np.float32), np.zeros(2)])
    assert kinds(found) == ["extra"] and found[0].severity == "warning"


def test_object_arrays_are_reported_not_crashed_on():
    spec = model(tensor(shape=(1, 2)))
    (m,) = diagnose(spec, [np.array([[1, "a"]], dtype=object)])
    assert m.kind == "dtype"


def test_fix_all_resizes_then_normalises_a_photo():
    spec = model(tensor())
    photo = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    out = fix_all(spec, [photo])
    assert [f.kind for f in out.applied] == ["add_batch", "resize_image", "normalize"]
    x = out.feed.arrays["input"]
    assert x.shape == (1, 224, 224, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert out.remaining == ()


def test_fix_all_stops_when_nothing_applies():
    spec = model(tensor(shape=(1, 7)))
    out = fix_all(spec, [np.zeros((1, 5), np.float32)])
    assert out.applied == () and [m.kind for m in out.remaining] == ["shape"]


def test_a_png_into_a_classifier_lists_every_problem_at_once():
    spec = model(tensor())
    found = diagnose(spec, [np.zeros((256, 256, 3), np.uint8)])
    assert kinds(found) == ["batch", "shape", "dtype"]


# -- the model check: ops the runtime lacks are found when the model opens, not by running -------


def test_a_model_the_runtime_cannot_load_is_an_error_of_its_own_kind():
    from lite_debug.diagnosis import check_mismatches
    from lite_debug.gallery import EXAMPLES_DIR
    from lite_debug.inspection import inspect_model
    from lite_debug.running import WorkerPool
    from test_inspection import REAL, need_real_models

    need_real_models()
    pool = WorkerPool(size=1)
    try:
        cases = {
            "matrix_inverse_flex.tflite": (EXAMPLES_DIR, "unsupported_op", "FlexMatrixInverse"),
            "matrix_determinant_custom.tflite": (EXAMPLES_DIR, "unsupported_op", "MatrixDeterminant"),
            "face_landmark_with_attention.tflite": (REAL, "unsupported_op", "Landmarks2TransformMatrix"),
            "selfie_segmentation.tflite": (REAL, None, None),  # its custom op runs in XNNPACK
        }
        for name, (folder, kind, op) in cases.items():
            data = (folder / name).read_bytes()
            found = check_mismatches(pool.check_model(data, inspect_model(data)))
            if kind is None:
                assert found == [], name
                continue
            (m,) = found
            assert m.kind == kind and m.severity == "error" and m.input_index == -1, name
            assert op in m.message and op in m.got and "every run will fail" in m.message, name
    finally:
        pool.close()
