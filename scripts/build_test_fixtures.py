"""Build the tiny model fixtures the tests use (beside the gallery's), with TensorFlow's converter.

    python scripts/build_test_fixtures.py

Writes ``tests/fixtures/*.tflite``; the files are committed, so the tests need no TensorFlow.
- ``slow_loop.tflite``: a WHILE loop that runs as many times as its int32 input says, to test
  time limits (10**9 iterations never finish in a test's time).
- ``add_float.tflite``: y = x + 1 on float32 [1, 4], the smallest model that runs.
- ``big_tile.tflite``: tiles a [1, 4] input 20 million times (a 320 MB tensor) then sums it:
  a small file that needs a lot of memory, which the estimate from its shapes sees.
- ``tile_by_input.tflite``: the same, with the multiples given as an input: the memory shows
  only at run time, so only the worker's address-space limit stops it.
- ``gather_table.tflite``: looks ids [1, 3] up in a 10-row table; an id past 9 fails at invoke
  (one bad sample in a batch).
- ``ssd_detector.tflite``: an SSD-style detector on [1, 64, 64, 3] images whose last op is the
  real ``TFLite_Detection_PostProcess`` (boxes [1, 10, 4], classes [1, 10], scores [1, 10],
  count [1]) over 64 anchors and 3 classes, with ``labels.txt`` packed as TFLite Support does.
  The converter emits the op from a function marked ``experimental_implements``, as
  TensorFlow's object detection API exports its models; the "backbone" is a resize, so the
  detections follow the picture's colours.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def _convert(fn) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    return converter.convert()


def slow_loop() -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="iterations"), tf.TensorSpec([1], tf.float32, name="x")])
    def loop(iterations, x):
        i = tf.constant(0)

        def body(i, x):
            return i + 1, x * 1.0000001 + 1e-7

        _, y = tf.while_loop(lambda i, x: i < iterations, body, [i, x])
        return y

    return _convert(loop)


def add_float() -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def add(x):
        return x + 1.0

    return _convert(add)


def big_tile() -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def tile(x):
        return tf.reduce_sum(tf.tile(x, [20_000_000, 1]), axis=0)

    return _convert(tile)


def tile_by_input() -> bytes:
    @tf.function(
        input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x"), tf.TensorSpec([2], tf.int32, name="multiples")]
    )
    def tile(x, multiples):
        return tf.reduce_sum(tf.tile(x, multiples), axis=0)

    return _convert(tile)


def gather_table() -> bytes:
    table = tf.constant(np.arange(40, dtype=np.float32).reshape(10, 4))

    @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.int32, name="ids")])
    def lookup(ids):
        return tf.gather(table, ids)

    return _convert(lookup)


SSD_LABELS = ("red thing", "green thing", "blue thing")


def ssd_detector() -> bytes:
    import io
    import zipfile

    n, classes = 64, len(SSD_LABELS)
    # One 0.25×0.25 anchor centred on each cell of an 8×8 grid: [ycenter, xcenter, h, w].
    centres = (np.arange(8, dtype=np.float32) + 0.5) / 8
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    anchors = np.stack([yy.ravel(), xx.ravel(), np.full(n, 0.25), np.full(n, 0.25)], -1).astype(np.float32)
    implements = " ".join([
        'name: "TFLite_Detection_PostProcess"',
        'attr { key: "max_detections" value { i: 10 } }',
        'attr { key: "max_classes_per_detection" value { i: 1 } }',
        'attr { key: "detections_per_class" value { i: 100 } }',
        'attr { key: "use_regular_nms" value { b: false } }',
        'attr { key: "nms_score_threshold" value { f: 0.3 } }',
        'attr { key: "nms_iou_threshold" value { f: 0.5 } }',
        f'attr {{ key: "num_classes" value {{ i: {classes} }} }}',
        'attr { key: "y_scale" value { f: 10.0 } }',
        'attr { key: "x_scale" value { f: 10.0 } }',
        'attr { key: "h_scale" value { f: 5.0 } }',
        'attr { key: "w_scale" value { f: 5.0 } }',
    ])

    @tf.function(experimental_implements=implements)
    def post_process(box_encodings, class_predictions, anchors):
        # A placeholder body: the converter replaces the whole function with the op.
        return (tf.constant(0.0, name="boxes"), tf.constant(0.0, name="classes"),
                tf.constant(0.0, name="scores"), tf.constant(0.0, name="num_detections"))

    @tf.function(input_signature=[tf.TensorSpec([1, 64, 64, 3], tf.float32, name="image")])
    def detect(image):
        cells = tf.reshape(tf.nn.avg_pool2d(image, 8, 8, "VALID"), [1, n, 3])
        boxes = tf.zeros([1, n, 4]) + 0.0 * cells[..., :1]  # the anchors themselves
        scores = tf.concat([1.0 - tf.reduce_max(cells, -1, keepdims=True), cells], -1)  # background first
        return post_process(boxes, scores, tf.constant(anchors))

    # Through a module (the SavedModel importer): only that path turns the marked function into the op.
    module = tf.Module()
    module.detect = detect
    converter = tf.lite.TFLiteConverter.from_concrete_functions([detect.get_concrete_function()], module)
    converter.allow_custom_ops = True
    model = converter.convert()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo("labels.txt", date_time=(2024, 1, 1, 0, 0, 0))
        archive.writestr(info, "".join(f"{label}\n" for label in SSD_LABELS))
    return model + buf.getvalue()


def main(names: list[str] | None = None) -> None:
    """Build every fixture, or only those named (``python scripts/build_test_fixtures.py ssd_detector``)."""
    OUT.mkdir(parents=True, exist_ok=True)
    builders = (("slow_loop", slow_loop), ("add_float", add_float), ("big_tile", big_tile), ("tile_by_input", tile_by_input),
                ("gather_table", gather_table), ("ssd_detector", ssd_detector))
    for name, build in builders:
        if names and name not in names:
            continue
        (OUT / f"{name}.tflite").write_bytes(build())
        print("wrote", OUT / f"{name}.tflite")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
