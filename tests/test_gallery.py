"""Every gallery example: its failure is diagnosed, its fix makes it run, its correct input is clean.

The same checks run on real models that a registry package ships (see fetch_real_models.py).
"""

from __future__ import annotations


import numpy as np
import pytest

from lite_debug.diagnosis import diagnose, fix_all
from lite_debug.fixes import apply_fix
from lite_debug.gallery import example, examples
from lite_debug.inspection import inspect_model
from lite_debug.running import Limits, WorkerPool, run

from test_inspection import REAL, need_real_models

CANNOT_RUN_HERE = {"select-tf-op": "FlexMatrixInverse", "custom-op": "MatrixDeterminant"}


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=2, limits=Limits(run_seconds=30, load_seconds=30))
    yield p
    p.close()


@pytest.mark.parametrize("ex", examples(), ids=lambda e: e.id)
def test_broken_input_shows_the_expected_mismatch(ex):
    spec = inspect_model(ex.model_bytes)
    found = diagnose(spec, ex.broken_inputs(), ex.signature)
    kinds = {m.kind for m in found}
    assert set(ex.expected_kinds) <= kinds
    if ex.expected_kinds:
        assert any(m.severity == "error" for m in found)
    for m in found:
        assert m.message.endswith((".", ")")) and m.input_name


@pytest.mark.parametrize("ex", examples(), ids=lambda e: e.id)
def test_correct_input_gives_no_mismatch(ex):
    spec = inspect_model(ex.model_bytes)
    assert diagnose(spec, ex.good_inputs(), ex.signature) == []


@pytest.mark.parametrize("ex", examples(), ids=lambda e: e.id)
def test_broken_input_fails_in_the_real_interpreter_and_is_explained(ex, pool):
    spec = inspect_model(ex.model_bytes)
    r = run(ex.model_bytes, ex.broken_inputs(), ex.signature, spec=spec, pool=pool)
    if ex.id == "reshape-breaks-on-resize":
        # Bound as given, the batch of 2 meets an input allocated for 1: set_tensor refuses it.
        assert r.status == "error" and "Dimension mismatch" in r.error_message
    elif ex.id == "int8-uint8-image":
        # The PNG also lacks the batch axis, but the interpreter checks the type first.
        assert r.status == "error" and "UINT8 but expected type INT8" in r.error_message
    else:
        assert r.status == "error", f"{ex.id} ran although it should fail"
    assert r.explanation is not None and r.explanation.recognised


@pytest.mark.parametrize("ex", examples(), ids=lambda e: e.id)
def test_fix_all_makes_the_example_run(ex, pool):
    spec = inspect_model(ex.model_bytes)
    out = fix_all(spec, ex.broken_inputs(), ex.signature)
    if any(f.kind == "split_windows" for f in out.applied):
        # A recording cut into windows: what is left is that they are a batch, run one by one.
        from lite_debug.batch import run_batch

        assert [m.kind for m in out.remaining if m.severity == "error"] == ["batch"]
        result = run_batch(ex.model_bytes, spec, out.feed, signature=ex.signature, pool=pool)
        assert result.status == "ok" and result.count == len(next(iter(out.feed.arrays.values())))
        good = run(ex.model_bytes, ex.good_inputs(), ex.signature, spec=spec, pool=pool)
        assert good.ok and np.allclose(next(iter(result.outputs.values()))[:1], good.outputs[0].values, atol=1e-5)
        return
    assert not [m for m in out.remaining if m.severity == "error"]
    r = run(ex.model_bytes, out.feed, ex.signature, spec=spec, pool=pool)
    if ex.id in CANNOT_RUN_HERE:
        assert r.status == "error" and CANNOT_RUN_HERE[ex.id] in r.error_message
        assert r.explanation.facts.get("op") == CANNOT_RUN_HERE[ex.id]
    elif ex.id == "reshape-breaks-on-resize":
        assert r.status == "error" and r.explanation.facts.get("op") == "RESHAPE"
        assert "24 != 12" in (r.kernel_message or "")
    else:
        assert r.ok, (ex.id, r.error_message)
        good = run(ex.model_bytes, ex.good_inputs(), ex.signature, spec=spec, pool=pool)
        assert good.ok
        assert [o.shape for o in r.outputs] == [o.shape for o in good.outputs]


def test_fixed_values_equal_the_good_input_where_they_should(pool):
    # The uint8 example's broken data is the good data before quantization.
    ex = example("uint8-float-data")
    spec = inspect_model(ex.model_bytes)
    out = fix_all(spec, ex.broken_inputs())
    good = next(iter(ex.good_inputs().values()))
    assert np.array_equal(next(iter(out.feed.arrays.values())), good)
    # The swapped arrays end up exactly where the good input has them.
    ex = example("two-inputs-swapped")
    spec = inspect_model(ex.model_bytes)
    out = fix_all(spec, ex.broken_inputs())
    good = ex.good_inputs()
    for name in ("features", "tokens"):
        assert np.array_equal(out.feed.arrays[name], good[name])
    # NCHW transposed back equals the NHWC good input.
    ex = example("segmentation-nchw")
    spec = inspect_model(ex.model_bytes)
    out = fix_all(spec, ex.broken_inputs())
    assert np.array_equal(next(iter(out.feed.arrays.values())), next(iter(ex.good_inputs().values())))


def test_reshape_example_runs_one_sample_at_a_time(pool):
    ex = example("reshape-breaks-on-resize")
    spec = inspect_model(ex.model_bytes)
    (m,) = diagnose(spec, ex.broken_inputs())
    take = next(f for f in m.fixes if f.kind == "take_sample")
    feed = apply_fix(fix_all(spec, ex.broken_inputs()).feed.replace(resize={}), take)
    r = run(ex.model_bytes, feed, spec=spec, pool=pool)
    assert r.ok and r.outputs[0].shape == (1, 2)


def _photo(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], axis=-1)
    return img.astype(np.uint8)


def test_real_detector_takes_a_photo_after_fix_all(pool):
    need_real_models()
    data = (REAL / "face_detection_short_range.tflite").read_bytes()
    spec = inspect_model(data)
    found = diagnose(spec, [_photo(480, 640)])
    assert [m.kind for m in found] == ["batch", "shape", "dtype"]
    out = fix_all(spec, [_photo(480, 640)])
    r = run(data, out.feed, spec=spec, pool=pool)
    assert r.ok and [o.shape for o in r.outputs] == [(1, 896, 16), (1, 896, 1)]
    assert all(np.isfinite(o.values).all() for o in r.outputs)


def test_real_hand_model_with_nchw_data(pool):
    need_real_models()
    data = (REAL / "hand_landmark_lite.tflite").read_bytes()
    spec = inspect_model(data)
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    assert [m.kind for m in diagnose(spec, [x])] == ["layout"]
    r = run(data, fix_all(spec, [x]).feed, spec=spec, pool=pool)
    assert r.ok and r.outputs[0].shape == (1, 63)


def test_real_model_with_custom_ops_fails_with_the_op_named(pool):
    need_real_models()
    data = (REAL / "face_landmark_with_attention.tflite").read_bytes()
    spec = inspect_model(data)
    from lite_debug.generate import generate_feed

    r = run(data, generate_feed(spec), spec=spec, pool=pool)
    assert r.status == "error" and r.explanation.kind == "unresolved_custom_op"
    assert r.explanation.facts.get("op") in {o.name for o in spec.custom_ops}


def test_real_model_whose_custom_op_xnnpack_provides_runs(pool):
    # MediaPipe's Convolution2DTransposeBias is a custom op, but the default XNNPACK delegate
    # implements it: the selfie segmenter runs, and the op's note says why.
    need_real_models()
    data = (REAL / "selfie_segmentation.tflite").read_bytes()
    spec = inspect_model(data)
    (op,) = spec.custom_ops
    assert op.name == "Convolution2DTransposeBias" and "XNNPACK delegate implements" in op.note
    x = np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32)
    r = run(data, [x], spec=spec, pool=pool)
    assert r.ok and r.outputs[0].shape == (1, 256, 256, 1)
    assert 0.0 <= float(r.outputs[0].values.min()) and float(r.outputs[0].values.max()) <= 1.0
