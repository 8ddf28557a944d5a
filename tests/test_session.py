"""The workspace a dashboard session keeps: batches, choices, the history of fixes, undo.

Real files where it matters: the mediapipe models the suite fetches, a real JPEG photograph,
the gallery's PNG and arrays.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lite_debug.diagnosis import diagnose
from lite_debug.errors import FixError
from lite_debug.gallery import EXAMPLES_DIR, example
from lite_debug.loading import load_data
from lite_debug.records import Feed
from lite_debug.resize import resize_image
from lite_debug.session import Workspace
from test_inspection import REAL, need_real_models

PHOTO = REAL / "grace_hopper.jpg"


def real(name: str) -> Workspace:
    need_real_models()
    return Workspace.open(name, (REAL / name).read_bytes())


def photo() -> np.ndarray:
    need_real_models()
    (x,) = load_data("grace_hopper.jpg", PHOTO.read_bytes())
    return x


def with_data(ws: Workspace, x: np.ndarray, source: str = "data") -> Workspace:
    ws.set_feed(Feed({ws.inputs[0].name: x}), source=source)
    return ws


# -- a batch is a stack of samples, never the rows of one image -------------------------------


def test_a_photo_without_a_batch_axis_is_one_sample_not_a_batch_of_its_rows():
    ws = with_data(real("face_detection_short_range.tflite"), photo(), "grace_hopper.jpg")
    assert ws.feed.arrays["input"].shape == (600, 512, 3)
    assert ws.batch is None and not ws.batch_ready
    kinds = [m.kind for m in ws.errors]
    assert kinds == ["batch", "shape", "dtype"]
    ws.apply_all()
    assert ws.errors == [] and ws.feed.arrays["input"].shape == (1, 128, 128, 3)
    assert ws.batch is None


def test_the_gallery_png_and_an_hwc_npy_are_not_batches():
    ws = Workspace.from_example("image-size")  # a 256×256×3 PNG for a [1, 224, 224, 3] classifier
    assert ws.feed.arrays[ws.inputs[0].name].shape == (256, 256, 3)
    assert ws.batch is None
    seg = with_data(real("selfie_segmentation.tflite"), np.zeros((256, 256, 3), np.uint8), "hwc.npy")
    assert seg.inputs[0].shape == (1, 256, 256, 3) and seg.batch is None
    assert [m.kind for m in seg.errors] == ["batch", "dtype"]


def test_a_grayscale_photo_is_one_sample():
    need_real_models()
    gray = np.asarray(Image.open(PHOTO).convert("L"))
    ws = with_data(real("face_detection_short_range.tflite"), gray, "gray.png")
    assert gray.ndim == 2 and ws.batch is None
    ws.apply_all()
    assert ws.errors == [] and ws.feed.arrays["input"].shape == (1, 128, 128, 3)


def test_a_real_stack_is_still_a_batch_and_each_sample_opens_whole():
    ws = Workspace.from_example("image-size")
    name = ws.inputs[0].name
    stack = np.stack([photo()[:256, :256]] * 4)  # [4, 256, 256, 3] uint8
    with_data(ws, stack, "stack.npy")
    assert ws.batch == (4, 1)
    ws.fix_batch()
    assert ws.feed.arrays[name].shape == (4, 224, 224, 3) and ws.batch_ready
    ws.open_sample(2)
    assert ws.feed.arrays[name].shape == (1, 224, 224, 3) and ws.errors == []


def test_a_stack_with_a_sample_axis_is_folded_into_a_batch():
    ws = Workspace.from_example("image-size")
    name = ws.inputs[0].name
    stack = np.zeros((3, 1, 224, 224, 3), np.float32)
    with_data(ws, stack, "samples.npy")
    assert ws.batch == (3, 1)
    ws.fix_batch()
    assert ws.feed.arrays[name].shape == (3, 224, 224, 3) and ws.batch_ready
    ws.undo()
    ws.open_sample(1)
    assert ws.feed.arrays[name].shape == (1, 224, 224, 3)


def test_a_dynamic_resize_absorbs_the_batch():
    ex = example("reshape-breaks-on-resize")  # an input whose batch is -1 in its signature
    ws = Workspace._for_model(ex.model_file, ex.model_bytes)
    t = ws.inputs[0]
    assert t.shape_signature[0] == -1
    with_data(ws, np.zeros((4, *t.shape[1:]), t.numpy_dtype), "stack.npy")
    assert ws.batch == (4, 1)
    dynamic = next(m for m in ws.errors if m.kind == "dynamic")
    ws.apply(next(f for f in dynamic.fixes if f.kind == "resize_input"))
    assert ws.batch is None and not ws.batch_ready and not ws.only_the_batch_left


# -- the diagnosis follows the data, whatever the history ---------------------------------------


def test_the_diagnosis_is_never_stale_after_apply_undo_apply():
    ws = Workspace.from_example("image-size")
    for _ in range(100):
        ws.apply(ws.errors[0].fixes[0])
        assert [m.message for m in ws.mismatches] == [m.message for m in diagnose(ws.spec, ws.feed, choices=ws.choices)]
        ws.undo()
        assert [m.message for m in ws.mismatches] == [m.message for m in diagnose(ws.spec, ws.feed, choices=ws.choices)]


def test_undo_takes_back_a_whole_click_and_steps_say_what_they_answered():
    ws = Workspace.from_example("image-size")
    ws.apply(ws.errors[0].fixes[0])  # one fix: the batch axis
    ws.apply_all()
    assert [s.click for s in ws.steps] == [0, 1, 1]
    assert [s.answered.kind for s in ws.steps] == ["batch", "shape", "dtype"]
    ws.undo()
    assert [s.fix.kind for s in ws.steps] == ["add_batch"]
    ws.undo()
    assert ws.steps == [] and ws.feed is ws.original
    with pytest.raises(FixError, match="nothing to undo"):
        ws.undo()


# -- choices: the guesses are shown, and can be changed before and after applying -------------


def test_a_float_model_that_says_nothing_shows_the_range_as_a_guess():
    ws = with_data(Workspace.from_example("image-size"), photo())  # a converter-built classifier: no metadata
    name = ws.inputs[0].name
    by_topic = {c.topic: c for c in ws.choices}
    assert set(by_topic) == {"value range", "resize method", "resize mode", "channel order"}
    rng = by_topic["value range"]
    assert rng.chosen == "[0, 1]" and rng.guess and "guess" in rng.reason.lower()
    assert by_topic["resize method"].chosen == "tf" and by_topic["resize method"].guess
    assert by_topic["channel order"].guess
    dtype = next(m for m in ws.errors if m.kind == "dtype")
    assert dtype.choice == rng.key == f"value range:{name}" and "guess" in dtype.message


def test_the_face_detector_says_minus_one_to_one_in_its_metadata():
    ws = with_data(real("face_detection_short_range.tflite"), photo())
    by_topic = {c.topic: c for c in ws.choices}
    rng = by_topic["value range"]
    assert rng.chosen == "[-1, 1]" and rng.source == "metadata" and not rng.guess
    assert "mean [127.5] and std [127.5]" in rng.reason
    assert by_topic["channel order"].source == "metadata" and "RGB" in by_topic["channel order"].reason
    ws.apply_all()
    x = ws.feed.arrays["input"]
    assert x.min() < -0.5 and x.max() <= 1.0  # scaled as the model's own metadata says


def test_a_model_that_rescales_its_input_itself_wants_raw_pixels():
    tf = pytest.importorskip("tensorflow")
    from test_graph import keras_model

    model = keras_model(tf, lambda k, x: k.layers.Conv2D(4, 3, padding="same")(k.layers.Rescaling(1 / 127.5, offset=-1)(x)))
    ws = Workspace.open("rescales.tflite", model)
    t = ws.inputs[0]
    pixels = np.full(tuple(t.shape[1:]), 200, np.uint8)
    with_data(ws, pixels)
    rng = next(c for c in ws.choices if c.topic == "value range")
    assert rng.source == "graph" and rng.chosen == "[0, 255]" and "a guess from the graph" in rng.reason
    ws.apply_all()
    assert float(ws.feed.arrays[t.name].max()) == 200.0  # cast, not scaled: the model scales itself


def test_changing_the_range_after_applying_replays_the_fixes():
    ws = with_data(real("face_detection_short_range.tflite"), photo())
    ws.apply_all()
    x = ws.feed.arrays["input"]
    assert x.min() < -0.5 and x.max() <= 1
    ws.choose("value range:input", "[0, 1]")
    y = ws.feed.arrays["input"]
    assert y.min() >= 0 and y.max() <= 1 and ws.errors == []
    assert np.allclose(y * 2 - 1, x, atol=1e-5)  # the same resize, only the scaling changed
    assert next(c for c in ws.choices if c.topic == "value range").source == "preference"


def test_changing_the_resize_filter_after_applying_uses_it():
    ws = with_data(real("face_detection_short_range.tflite"), photo())
    ws.apply_all()
    ws.choose("resize method:input", "pillow")
    resize = next(s.fix for s in ws.steps if s.fix.kind == "resize_image")
    assert resize.params["method"] == "pillow"
    want = resize_image(photo()[np.newaxis], (128, 128), "stretch", "pillow").astype(np.float32) / 127.5 - 1
    assert np.allclose(ws.feed.arrays["input"], want, atol=1e-6)


def test_a_pick_made_before_applying_is_what_apply_all_uses():
    ws = with_data(real("face_detection_short_range.tflite"), photo())
    ws.choose("value range:input", "[-1, 1]")
    ws.choose("resize mode:input", "crop")
    assert ws.steps == []
    ws.apply_all()
    kinds = {s.fix.kind: s.fix.params for s in ws.steps}
    assert kinds["normalize"]["target"] == [-1.0, 1.0] and kinds["resize_image"]["mode"] == "crop"


def test_choosing_bgr_swaps_the_channels_once():
    ws = with_data(real("face_detection_short_range.tflite"), photo())
    ws.apply_all()
    rgb = ws.feed.arrays["input"]
    ws.choose("channel order:input", "bgr")
    assert [s.fix.kind for s in ws.steps].count("swap_rgb_bgr") == 1
    assert np.allclose(ws.feed.arrays["input"], rgb[..., ::-1])
    assert not any(m.kind == "channels" for m in ws.mismatches)
    ws.choose("channel order:input", "rgb")
    assert "swap_rgb_bgr" not in [s.fix.kind for s in ws.steps]


def test_a_quantized_input_takes_its_range_from_the_quantization():
    ex = example("int8-uint8-image")
    ws = Workspace.from_example("int8-uint8-image")
    rng = next(c for c in ws.choices if c.topic == "value range")
    assert rng.source == "quantization" and not rng.guess and "scale" in rng.reason
    assert ex.id == ws.example_id


def test_unknown_picks_are_refused_with_a_sentence():
    ws = with_data(real("face_detection_short_range.tflite"), photo())
    with pytest.raises(FixError, match="not an option"):
        ws.choose("value range:input", "[0, 7]")
    with pytest.raises(FixError, match="no choice"):
        ws.choose("value range:nosuch", "[0, 1]")


def test_the_export_replays_steps_without_diagnosing_each(monkeypatch):
    import lite_debug.export as export

    ws = Workspace.from_example("image-size")
    ws.apply_all()
    calls = []
    monkeypatch.setattr(export, "diagnose", lambda *a, **k: calls.append(1) or [])
    text = ws.script().text
    assert calls == []  # the workspace passes what remains; each step already knows what it answered
    assert "It fixes the batch error" in text and "It fixes the shape error" in text


def test_png_bytes_from_the_gallery_load_as_hwc():
    ex = example("image-size")
    (x,) = load_data(ex.input_files[0], (EXAMPLES_DIR / ex.input_files[0]).read_bytes())
    assert x.shape == (256, 256, 3) and x.dtype == np.uint8
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="PNG")
    assert buf.getvalue()[:4] == b"\x89PNG"
