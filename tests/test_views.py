"""Views: each output read as what it is, with the assumption stated, on real models and odd outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lite_debug.inspection import inspect_model
from lite_debug.records import OutputTensor, Quantization
from lite_debug.report import preview_image
from lite_debug.running import Limits, WorkerPool, run
from lite_debug.session import Workspace, _packed_labels
from lite_debug.views import KINDS, OutputHint, interpret, summary_line

from test_inspection import REAL, need_real_models

FIXTURES = REAL.parent / "fixtures"


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=1, limits=Limits(run_seconds=30, load_seconds=30))
    yield p
    p.close()


def output(values, name="out", position=0, quantization=Quantization()):
    values = np.asarray(values)
    return OutputTensor(name=name, index=position, raw=values, values=values, quantization=quantization)


def picture(h: int, w: int) -> np.ndarray:
    """A smooth picture with some structure (no real photo ships with the tests)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx / w, yy / h, ((xx + yy) % 64) / 64], axis=-1).astype(np.float32)[None]


def real_run(pool, name: str):
    """The model's spec, labels, the picture fed and the views of one run of a real model."""
    need_real_models()
    data = (REAL / f"{name}.tflite").read_bytes()
    spec = inspect_model(data)
    t = spec.inputs[0]
    x = picture(t.shape[1], t.shape[2])
    r = run(data, {t.name: x}, spec=spec, pool=pool)
    assert r.ok, r.detail
    views = interpret(r.outputs, spec, labels=_packed_labels(data, spec), input_image=preview_image(x))
    return r, views


def assert_stated(view):
    # One sentence (or two), a claim labelled as a guess, and the kinds the user can switch to.
    assert view.assumption.startswith(("Assumed:", "Read as", "Shown as", "Chosen:", "Metadata:", "The output"))
    assert view.assumption.endswith(".")
    assert view.alternatives[0] == view.kind and all(k in KINDS for k in view.alternatives)
    json.dumps(view.to_dict(), allow_nan=False)  # --json can carry it as it is


# -- real models ---------------------------------------------------------------------------------


def test_face_detector_outputs_are_anchors_never_classes(pool):
    r, (regressors, scores) = real_run(pool, "face_detection_short_range")
    assert (regressors.name, scores.name) == ("regressors", "classificators")
    assert scores.kind == "anchor_scores" and regressors.kind == "anchor_boxes"
    assert scores.assumption.startswith("Assumed: read as 896 anchor scores, sigmoid applied")
    assert "class" not in scores.summary and "classes" not in scores.title
    # The logits are negative here: the scores shown are their sigmoid, the highest listed first.
    logits = r.outputs[1].values.reshape(-1)
    top = scores.data["top"]
    assert top[0]["anchor"] == int(np.argmax(logits))
    assert top[0]["score"] == pytest.approx(1 / (1 + np.exp(-logits.max())))
    assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
    assert "decoding boxes needs anchors the file does not hold" in regressors.assumption
    assert "6 points of (x, y)" in regressors.assumption
    assert regressors.data["top"][0]["anchor"] == top[0]["anchor"]
    # No heatmap of a 896×16 table squeezed into a strip: it is not offered as a map at all.
    assert "mask" not in regressors.alternatives and "array" in regressors.alternatives
    for v in (regressors, scores):
        assert_stated(v)


def test_selfie_segmentation_is_a_labelled_mask_over_the_input(pool):
    r, (mask,) = real_run(pool, "selfie_segmentation")
    assert mask.kind == "mask"
    assert "256×256 mask" in mask.assumption and "'selfie'" in mask.assumption
    assert "values in 0–1 taken as probabilities" in mask.assumption
    assert mask.data["image"] is not None and mask.data["mask"].shape == (256, 256)
    assert np.array_equal(mask.data["mask"], r.outputs[0].values[0, :, :, 0])
    assert_stated(mask)


def test_hand_landmarks_are_points_over_the_input_and_world_points_apart(pool):
    r, (points, presence, handedness, world) = real_run(pool, "hand_landmark_lite")
    assert points.kind == "keypoints" and points.data["where"] == "pixels"
    assert points.data["points"].shape == (21, 3)
    assert "21 3-D points, drawn over the input" in points.assumption and "inside the 224×224 input" in points.assumption
    assert world.kind == "keypoints" and world.data["where"] == "own"
    assert "'Identity' of the same shape" in world.assumption
    assert presence.kind == handedness.kind == "scalar"
    for v in (points, presence, handedness, world):
        assert_stated(v)
        assert "class" not in v.summary


def test_image_classifier_with_packed_labels_gets_top_classes(pool):
    ws = Workspace.from_example("image-size")
    ws.apply_all()
    r = ws.run(pool)
    assert r.ok
    (view,) = interpret(r.outputs, ws.spec, labels=ws.labels)
    assert view.kind == "classification"
    assert "labels.txt names 10 classes" in view.assumption and "already probabilities" in view.assumption
    probs = r.outputs[0].values.reshape(-1)
    best = int(np.argmax(probs))
    assert view.data["top"][0]["class"] == best
    assert view.data["top"][0]["label"] == f"{best}: {ws.labels[best]}"
    assert summary_line(view).startswith("StatefulPartitionedCall:0: float32 [1, 10]: top class ")
    assert_stated(view)


def test_ssd_detector_with_the_post_processing_op_gets_boxes_over_the_input(pool):
    data = (FIXTURES / "ssd_detector.tflite").read_bytes()
    spec = inspect_model(data)
    assert "TFLite_Detection_PostProcess" in {op.name for op in spec.ops}
    x = np.zeros((1, 64, 64, 3), np.float32)
    x[0, :16, :16, 0] = 1.0  # red in the top-left 2×2 cells of the 8×8 anchor grid
    r = run(data, [x], spec=spec, pool=pool)
    assert r.ok, r.detail
    views = interpret(r.outputs, spec, labels=_packed_labels(data, spec), input_image=preview_image(x))
    assert {v.kind for v in views} == {"detections"}
    boxes = next(v for v in views if v.data["draw"])
    assert r.outputs[boxes.position].shape == (1, 10, 4)
    assert "uses TFLite_Detection_PostProcess" in boxes.assumption and "in fractions of the input" in boxes.assumption
    rows = boxes.data["rows"]
    assert len(rows) == 4 and {row["label"] for row in rows} == {"red thing"}
    # Every box lies in the red corner (fractions of the input).
    assert all(row["box"][2] <= 0.4 and row["box"][3] <= 0.4 for row in rows)
    assert sum(v.data["draw"] for v in views) == 1
    for v in views:
        assert_stated(v)


def test_detections_named_like_the_op_without_it_say_it_is_read_from_names():
    boxes = output(np.array([[[0.1, 0.1, 0.5, 0.5], [0, 0, 0, 0]]], np.float32), "TFLite_Detection_PostProcess")
    outs = [
        boxes,
        output(np.array([[1.0, 0.0]], np.float32), "detection_classes", 1),
        output(np.array([[0.9, 0.0]], np.float32), "detection_scores", 2),
        output(np.array([1.0], np.float32), "num_detections", 3),
    ]
    views = interpret(outs, labels=["???", "cat", "dog"])
    assert [v.kind for v in views] == ["detections"] * 4
    assert "no TFLite_Detection_PostProcess op" in views[0].assumption
    # The label map's background line is skipped: class 1 is 'dog'.
    assert views[0].data["rows"] == [{"class": 1, "label": "dog", "score": pytest.approx(0.9), "box": pytest.approx([0.1, 0.1, 0.5, 0.5])}]


# -- what is not a class ------------------------------------------------------------------------------


def test_one_value_per_sample_of_a_batch_is_not_classes():
    (view,) = interpret([output(np.array([0.2, 3.0, -1.0, 0.5], np.float32))], batch=4)
    assert view.kind == "per_sample"
    assert "for each of 4 samples, not as classes" in view.assumption
    assert "class" not in view.summary.replace("classes", "")
    assert view.summary == "one value per sample for 4 samples: 0.2, 3, -1, 0.5"


def test_an_autoencoders_vector_is_a_feature_vector_not_a_top_class():
    ws = Workspace.from_example("two-signatures-missing-batch")
    x = np.random.default_rng(1).normal(size=(1, 16)).astype(np.float32)
    (view,) = interpret([output(x, "x_hat")], ws.spec, signature="decode")
    assert view.kind == "embedding"
    assert "top class" not in summary_line(view)
    assert view.summary.startswith("feature vector of 16 values, L2 norm ")
    assert view.data["norm"] == pytest.approx(float(np.linalg.norm(x)))
    assert "classification" in view.alternatives  # still one click away


def test_a_class_axis_needs_evidence():
    raw = np.array([[2.0, -1.0, 0.5]], np.float32)
    (unnamed,) = interpret([output(raw, "features")])
    assert unnamed.kind == "embedding"
    (named,) = interpret([output(raw, "logits")])
    assert named.kind == "classification" and "softmax applied" in named.assumption
    assert sum(t["score"] for t in named.data["top"]) == pytest.approx(1.0)
    (labelled,) = interpret([output(raw, "y")], labels=["a", "b", "c"])
    assert labelled.kind == "classification" and labelled.data["top"][0]["label"] == "0: a"


def test_a_quantized_probability_vector_reads_as_probabilities():
    q = Quantization(scale=(1 / 256,), zero_point=(0,))
    raw = np.array([[0, 250, 6]], np.uint8)
    values = raw.astype(np.float32) / 256
    out = OutputTensor("probabilities", 0, raw, values, q)
    (view,) = interpret([out])
    assert view.kind == "classification" and "already probabilities" in view.assumption
    assert view.data["top"][0]["class"] == 1


def test_a_class_map_takes_the_best_class_of_each_pixel_with_labels():
    scores = np.zeros((1, 16, 16, 3), np.float32)
    scores[0, :, :8, 1] = 1.0
    scores[0, :, 8:, 2] = 1.0
    (view,) = interpret([output(scores, "seg")], labels=["sky", "tree", "road"])
    assert view.kind == "class_map"
    assert "labels.txt names 3 classes" in view.assumption
    assert {e["label"]: e["share"] for e in view.data["legend"]} == {"1: tree": 0.5, "2: road": 0.5}


def test_a_logit_mask_gets_a_sigmoid_and_says_so():
    logits = np.full((1, 32, 32), -3.0, np.float32)
    (view,) = interpret([output(logits, "mask")])
    assert view.kind == "mask" and "sigmoid applied" in view.assumption
    assert float(view.data["mask"].max()) == pytest.approx(1 / (1 + np.exp(3.0)))


def test_a_map_from_a_model_without_an_image_input_is_values_not_a_mask():
    # openWakeWord's melspectrogram: raw samples in, [1, 1, 97, 32] frames × mel bands out. It
    # was shown as a "mask over the input" with a sigmoid, "one value per pixel", all but black.
    from specs import model, tensor

    spec = model(tensor("input", (1, 16000), sig=(-1, -1)))
    bands = np.random.default_rng(0).normal(-2, 3, (1, 1, 97, 32)).astype(np.float32)
    (view,) = interpret([output(bands, "PartitionedCall:0")], spec)
    assert view.kind == "array" and "pixel" not in view.assumption
    assert "mask" in view.alternatives  # still a reading the user can pick
    # The same map from an image model stays a mask over the picture.
    image_model = model(tensor("image", (1, 97, 32, 3)))
    (seg,) = interpret([output(bands, "PartitionedCall:0")], image_model)
    assert seg.kind == "mask"


# -- choosing another view, and metadata ------------------------------------------------------------


def test_the_user_can_choose_another_reading_and_an_impossible_one_is_refused_in_words():
    outs = [output(np.zeros((1, 896, 16), np.float32), "regressors"),
            output(np.full((1, 896, 1), -2.0, np.float32), "classificators", 1)]
    views = interpret(outs, choose={1: "array", 0: "keypoints"})
    assert views[1].kind == "array" and views[1].assumption.startswith("Chosen: ")
    assert views[1].alternatives[0] == "array" and "anchor_scores" in views[1].alternatives
    assert views[0].kind == "anchor_boxes"
    assert "cannot be read as keypoints" in views[0].assumption


def test_metadata_hints_decide_the_kind_and_the_labels():
    x = np.array([[0.1, 0.7, 0.2]], np.float32)
    hint = OutputHint(kind="classification", labels=("x", "y", "z"), description="scores <b>")
    (view,) = interpret([output(x, "feat")], metadata={"feat": hint})
    assert view.kind == "classification" and view.assumption.startswith("Metadata: ")
    assert view.data["top"][0]["label"] == "1: y" and view.facts["description"] == "scores <b>"

    class Item:
        kind, labels, activation, description = "embedding", None, None, ""

    class Meta:
        outputs = [Item()]

    (view,) = interpret([output(x, "probabilities")], metadata=Meta())
    assert view.kind == "embedding"


# -- outputs the page could not show ------------------------------------------------------------------


def test_odd_outputs_each_get_a_view_and_a_sentence():
    outs = [
        output(np.zeros((4, 0), np.float32), "empty", 0),
        output(np.array([1 + 2j, 3 - 1j], np.complex64), "cplx", 1),
        output(np.array(["a", "b"]), "text", 2),
        output(np.array([1.0, 2.0], np.float32), "same", 3),
        output(np.array([1.0, 2.0], np.float32), "same", 4),
        output(np.array([[np.nan, np.inf, 1.0]], np.float32), "bad\x00name", 5),
    ]
    views = interpret(outs)
    assert [v.position for v in views] == list(range(6))
    assert views[0].kind == "empty" and "holds no values (shape [4, 0])" in views[0].assumption
    assert views[1].kind == "array" and "complex values shown as their magnitude" in views[1].assumption
    assert views[2].kind == "unreadable" and "is not numbers" in views[2].assumption
    assert views[3].name == views[4].name == "same"
    line = summary_line(views[5])
    assert line.startswith("bad\\x00name: float32 [1, 3]") and "\x00" not in line
    for v in views:
        assert_stated(v)
