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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in (("slow_loop", slow_loop), ("add_float", add_float), ("big_tile", big_tile), ("tile_by_input", tile_by_input), ("gather_table", gather_table)):
        (OUT / f"{name}.tflite").write_bytes(build())
        print("wrote", OUT / f"{name}.tflite")


if __name__ == "__main__":
    main()
