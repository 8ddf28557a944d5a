"""The preprocessing sweep: candidates from the open choices, one run each, a plain score."""

from __future__ import annotations

import numpy as np

from lite_debug.records import Choice, OutputTensor
from lite_debug.sweep import candidates, score_outputs


def out(values, name="y"):
    v = np.asarray(values, np.float32)
    return OutputTensor(name, 0, v, v)


def choice(topic, key, options, chosen):
    return Choice(f"{topic}:{key}", key, topic, tuple((o, o) for o in options), chosen, "a guess", "guess")


def test_candidates_are_ranges_times_tf_and_pillow():
    found = [
        choice("value range", "x", ["[0, 1]", "[-1, 1]", "[0, 255]"], "[0, 1]"),
        choice("resize method", "x", ["tf", "pillow", "opencv"], "tf"),
        choice("resize mode", "x", ["stretch", "crop", "pad"], "stretch"),
    ]
    got = candidates(found)
    assert len(got) == 6
    assert {c["value range:x"] for c in got} == {"[0, 1]", "[-1, 1]", "[0, 255]"}
    assert {c["resize method:x"] for c in got} == {"tf", "pillow"}  # OpenCV's equals tf's on float data
    assert candidates([choice("channel order", "x", ["rgb", "bgr"], "rgb")]) == []


def test_a_classifier_is_scored_by_its_top_probability():
    s = score_outputs([out([[0.1, 0.7, 0.2]])])
    assert s.basis == "top class probability" and abs(s.value - 0.7) < 1e-6 and "class 1" in s.summary
    logits = score_outputs([out([[0.0, 2.0, 0.0]])])  # softmax first
    assert abs(logits.value - np.exp(2) / (np.exp(2) + 2)) < 1e-6


def test_a_detector_is_scored_by_its_highest_anchor_and_never_as_classes():
    logits = np.full((1, 896, 1), -5.0, np.float32)
    logits[0, 42, 0] = 3.0
    s = score_outputs([out(np.zeros((1, 896, 16))), out(logits)])
    assert s.basis == "highest detection score" and abs(s.value - 1 / (1 + np.exp(-3))) < 1e-6
    assert "anchor 42" in s.summary and "class" not in s.summary


def test_other_outputs_get_no_score_and_say_so():
    s = score_outputs([out(np.ones((1, 8, 8, 3)))])
    assert s.value is None and s.basis == "none" and "no score" in s.summary
    assert score_outputs([out([[np.nan, 1.0]])]).value is None
