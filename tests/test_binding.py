"""Binding arrays to inputs the way the user meant: by name (with the converter's decorations
stripped), else by position; what matches nothing is kept, for the diagnosis to report."""

from __future__ import annotations

import numpy as np

from lite_debug.binding import bind, bind_mixed, normalise_name
from lite_debug.records import Feed
from specs import model, signature, tensor

A = tensor("serving_default_image:0", (1, 4), index=0)
B = tensor("serving_default_mask:0", (1, 2), dtype="int32", index=1)
SPEC = model(A, B, signatures=(signature("serving_default", tensor("image", (1, 4)), tensor("mask", (1, 2), dtype="int32", index=1)),))


def test_names_match_without_the_converters_decorations():
    assert normalise_name("serving_default_input_1:0") == "input_1"
    assert normalise_name("IMAGE") == "image"
    feed = bind(SPEC, {"mask": np.zeros((1, 2), np.int32), "image": np.ones((1, 4), np.float32)})
    assert list(feed.arrays) == [A.name, B.name]
    assert feed.arrays[A.name].dtype == np.float32 and feed.arrays[B.name].dtype == np.int32


def test_a_list_binds_by_position_and_extras_keep_a_name():
    feed = bind(SPEC, [np.ones((1, 4)), np.ones((1, 2)), np.ones(3)])
    assert list(feed.arrays) == [A.name, B.name, "extra_2"]
    single = bind(SPEC, np.ones((1, 4)))
    assert list(single.arrays) == [A.name]


def test_unmatched_names_fill_free_inputs_in_order_then_stay_extra():
    feed = bind(SPEC, {"mask": np.zeros((1, 2)), "pixels": np.ones((1, 4)), "stray": np.ones(1)})
    assert feed.arrays[A.name].shape == (1, 4) and feed.arrays[B.name].shape == (1, 2)
    assert "stray" in feed.arrays


def test_a_signature_binds_to_its_own_names():
    feed = bind(SPEC, [np.ones((1, 4)), np.ones((1, 2))], "serving_default")
    assert list(feed.arrays) == ["image", "mask"]


def test_a_feed_is_returned_as_it_is():
    feed = Feed({"x": np.ones(1)}, resize={"x": (3,)})
    assert bind(SPEC, feed) is feed


def test_named_and_positional_arrays_together():
    feed = bind_mixed(SPEC, {"mask": np.zeros((1, 2))}, [np.ones((1, 4))])
    assert feed.arrays[A.name].shape == (1, 4) and feed.arrays[B.name].shape == (1, 2)
    assert bind_mixed(SPEC, {}, [np.ones((1, 4))]).arrays[A.name].shape == (1, 4)
