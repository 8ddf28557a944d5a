"""Each fix does what its line of Python says, and leaves its input untouched."""

from __future__ import annotations

import numpy as np
import pytest

from lite_debug.errors import FixError
from lite_debug.fixes import FIX_ORDER, REGISTRY, apply_fix, make_fix, resize_image
from lite_debug.records import FixKind
from lite_debug.records import Feed


def _audio_scope():
    """The audio helpers as an exported script defines them (export.audio_helpers)."""
    from lite_debug.export import audio_helpers

    scope = {"np": np}
    exec(audio_helpers(), scope)
    return {k: scope[k] for k in ("resample", "pad_or_trim", "windows", "math")}


def run_code(fix, x):
    """Execute the fix's own line of Python, as an exported script would."""
    scope = {"np": np, "x": x.copy(), "resize_image": resize_image, **_audio_scope()}
    exec(fix.code, scope)
    return scope["x"]


CASES = [
    ("add_batch", {}, np.ones((4, 4, 3), np.float32), (1, 4, 4, 3)),
    ("remove_batch", {}, np.ones((1, 1, 5), np.float32), (1, 5)),
    ("take_sample", {"index": 1}, np.arange(6, dtype=np.float32).reshape(3, 2), (1, 2)),
    ("add_channel", {}, np.ones((1, 4, 4), np.float32), (1, 4, 4, 1)),
    ("nchw_to_nhwc", {}, np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4), (1, 3, 4, 2)),
    ("nhwc_to_nchw", {}, np.arange(24, dtype=np.float32).reshape(1, 3, 4, 2), (1, 2, 3, 4)),
    ("to_rgb", {}, np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1), (1, 4, 4, 3)),
    ("drop_alpha", {}, np.ones((1, 4, 4, 4), np.uint8), (1, 4, 4, 3)),
    ("to_gray", {}, np.full((1, 4, 4, 3), 100, np.uint8), (1, 4, 4, 1)),
    ("resize_image", {"height": 3, "width": 5, "mode": "stretch"}, np.ones((1, 6, 10, 3), np.float32), (1, 3, 5, 3)),
    ("resize_image", {"height": 3, "width": 5, "mode": "crop", "method": "pillow"}, np.ones((1, 6, 10, 3), np.float32), (1, 3, 5, 3)),
    ("resize_image", {"height": 3, "width": 5, "mode": "pad", "method": "opencv"}, np.ones((1, 6, 10, 3), np.uint8), (1, 3, 5, 3)),
    ("swap_rgb_bgr", {}, np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3), (1, 2, 2, 3)),
    ("reshape", {"shape": [1, 12]}, np.ones((1, 3, 4), np.float32), (1, 12)),
    ("cast", {"dtype": "float32"}, np.ones((2,), np.float64), (2,)),
    ("normalize", {"source": [0, 255], "target": [-1, 1], "dtype": "float32"}, np.array([0, 255], np.uint8), (2,)),
    ("quantize", {"dtype": "int8", "scale": 0.5, "zero_point": -3}, np.array([-100.0, 0.0, 1.0, 100.0]), (4,)),
    ("dequantize", {"scale": 0.5, "zero_point": 10}, np.array([10, 12], np.uint8), (2,)),
    ("nan_to_num", {}, np.array([np.nan, 1.0, np.inf], np.float32), (3,)),
    # audio: [samples] or [samples, channels] float32, as a recording loads
    ("to_mono", {"channels": 2}, np.stack([np.linspace(-1, 1, 50), np.ones(50)], 1).astype(np.float32), (50,)),
    ("to_mono", {"channels": 2}, np.ones((1, 50, 2), np.float32), (1, 50)),
    ("take_channel", {"index": 1, "channels": 2}, np.stack([np.zeros(50), np.ones(50)], 1).astype(np.float32), (50,)),
    ("resample", {"from_rate": 44100, "to_rate": 16000}, np.sin(np.arange(4410) / 7).astype(np.float32), (1600,)),
    ("resample", {"from_rate": 8000, "to_rate": 16000}, np.ones((800, 2), np.float32), (1600, 2)),
    ("resample", {"from_rate": 48000, "to_rate": 16000, "axis": 1}, np.ones((1, 960), np.float32), (1, 320)),
    ("fit_length", {"size": 100, "mode": "trim", "rate": 16000}, np.arange(250, dtype=np.float32), (100,)),
    ("fit_length", {"size": 100, "mode": "pad"}, np.ones((40, 2), np.float32), (100, 2)),
    ("fit_length", {"size": 100, "mode": "pad", "axis": 1}, np.ones((1, 40), np.float32), (1, 100)),
    ("split_windows", {"size": 100, "hop": 100, "count": 3, "rate": 16000}, np.arange(250, dtype=np.float32), (3, 100)),
    ("split_windows", {"size": 100, "hop": 50}, np.arange(250, dtype=np.float32), (4, 100)),
    ("split_windows", {"size": 100, "hop": 100, "axis": 1}, np.arange(250, dtype=np.float32)[None], (3, 100)),
    ("pcm_to_float", {}, np.array([-32768, 0, 16384, 32767], np.int16), (4,)),
]


@pytest.mark.parametrize("kind, params, x, shape", CASES, ids=[c[0] for c in CASES])
def test_fix_matches_its_code_line_and_keeps_the_input(kind, params, x, shape):
    fix = make_fix(kind, "in", **params)
    before = x.copy()
    out = apply_fix(Feed({"in": x}), fix).arrays["in"]
    assert np.array_equal(x, before, equal_nan=True), "apply_fix must not modify its argument"
    assert out.shape == shape
    by_code = run_code(fix, x)
    assert by_code.shape == out.shape and by_code.dtype == out.dtype
    assert np.allclose(by_code.astype(np.float64), out.astype(np.float64), equal_nan=True)
    assert fix.label


def test_values_of_the_value_fixes():
    q = apply_fix(Feed({"a": np.array([-100.0, 0.0, 1.0, 100.0])}), make_fix("quantize", "a", dtype="int8", scale=0.5, zero_point=-3))
    assert q.arrays["a"].tolist() == [-128, -3, -1, 127]  # clipped, rounded, shifted
    n = apply_fix(Feed({"a": np.array([0, 255], np.uint8)}), make_fix("normalize", "a", source=[0, 255], target=[-1, 1]))
    assert n.arrays["a"].tolist() == [-1.0, 1.0]
    t = apply_fix(Feed({"a": np.arange(24).reshape(1, 2, 3, 4)}), make_fix("nchw_to_nhwc", "a")).arrays["a"]
    assert t[0, 1, 2, 1] == np.arange(24).reshape(1, 2, 3, 4)[0, 1, 1, 2]
    g = apply_fix(Feed({"a": np.array([[[[255, 0, 0]]]], np.uint8)}), make_fix("to_gray", "a")).arrays["a"]
    assert g.item() == 76  # 0.299 * 255


def test_resize_modes_keep_aspect():
    x = np.ones((1, 100, 200, 3), np.float32)
    assert resize_image(x, (50, 50), "stretch").shape == (1, 50, 50, 3)
    padded = resize_image(x, (50, 50), "pad")
    assert padded.shape == (1, 50, 50, 3)
    assert padded[0, 0, 0, 0] == 0 and padded[0, 25, 25, 0] == pytest.approx(1)
    cropped = resize_image(x, (50, 50), "crop")
    assert cropped.shape == (1, 50, 50, 3) and np.allclose(cropped, 1)


def test_resize_is_bilinear_and_keeps_integer_dtype():
    x = np.array([[0, 255]], np.uint8)
    out = resize_image(x, (1, 4))
    assert out.dtype == np.uint8 and out[0, 0] == 0 and out[0, -1] == 255 and 0 < out[0, 1] < out[0, 2] < 255


def test_feed_level_fixes():
    feed = Feed({"a": np.zeros(2), "b": np.ones(3)})
    swapped = apply_fix(feed, make_fix("reassign", "*", mapping={"a": "b", "b": "a"}))
    assert swapped.arrays["a"].shape == (3,) and swapped.arrays["b"].shape == (2,)
    resized = apply_fix(feed, make_fix("resize_input", "a", index=0, shape=[2]))
    assert resized.resize == {"a": (2,)} and feed.resize == {}
    gen = apply_fix(Feed({}), make_fix("generate", "z", shape=[1, 2], dtype="int8"))
    assert gen.arrays["z"].dtype == np.int8 and gen.arrays["z"].shape == (1, 2)


def test_fix_errors_are_sentences():
    with pytest.raises(FixError, match="no data for input"):
        apply_fix(Feed({}), make_fix("add_batch", "missing"))
    with pytest.raises(FixError, match="Cannot apply"):
        apply_fix(Feed({"a": np.ones(5)}), make_fix("reshape", "a", shape=[2, 2]))
    with pytest.raises(FixError, match="no fix called"):
        make_fix("teleport", "a")


def test_every_fix_kind_has_one_registry_entry_and_a_place_in_the_order():
    from typing import get_args

    kinds = {c[0] for c in CASES} | {"reassign", "resize_input", "generate"}
    assert kinds == set(get_args(FixKind)) == set(REGISTRY) == set(FIX_ORDER)
    for kind, entry in REGISTRY.items():
        assert entry.why and (entry.array is None) != (entry.feed is None), kind
    # Only fixes that change how many samples the data holds are skipped for a batch.
    assert {k for k, e in REGISTRY.items() if e.changes_samples} == {
        "reassign", "generate", "remove_batch", "add_batch", "take_sample", "resize_input",
        "resample", "fit_length", "split_windows",  # audio: the samples' count or length along time
    }


def test_tf_resize_matches_tensorflow():
    """The default filter is tf.image.resize's (bilinear, half-pixel centres, no antialiasing)."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    for h, w, th, tw in [(16, 16, 4, 4), (256, 256, 224, 224), (480, 640, 128, 128), (7, 5, 20, 13), (100, 60, 33, 77)]:
        x = (rng.random((2, h, w, 3)) * 255).astype(np.float32)
        want = tf.image.resize(x, (th, tw), method="bilinear", antialias=False).numpy()
        assert np.abs(resize_image(x, (th, tw), method="tf") - want).max() <= 1e-5


def test_pillow_antialiases_and_tf_does_not():
    row = np.zeros((1, 1, 16, 1), np.float32)
    row[0, 0, 5, 0] = 1
    assert resize_image(row, (1, 4), method="tf").ravel().tolist() == [0, 0.5, 0, 0]
    assert np.allclose(resize_image(row, (1, 4), method="pillow").ravel(), [0.0357, 0.2188, 0, 0], atol=1e-3)


def test_opencv_resize_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    for h, w, th, tw in [(256, 256, 224, 224), (480, 640, 128, 128), (100, 60, 33, 77)]:
        x = (rng.random((h, w, 3)) * 255).astype(np.float32)
        want = cv2.resize(x, (tw, th), interpolation=cv2.INTER_LINEAR)
        assert np.abs(resize_image(x, (th, tw), method="opencv") - want).max() <= 1e-4
        u = x.astype(np.uint8)
        got = resize_image(u, (th, tw), method="opencv").astype(int)
        assert np.abs(got - cv2.resize(u, (tw, th), interpolation=cv2.INTER_LINEAR).astype(int)).max() <= 1


def test_resize_label_and_code_name_the_filter():
    fix = make_fix("resize_image", "x", height=2, width=3, mode="crop", method="pillow")
    assert "Pillow" in fix.label and "method='pillow'" in fix.code and "mode='crop'" in fix.code
    assert "tf.image.resize" in make_fix("resize_image", "x", height=2, width=3).label
