"""Models built with TensorFlow's converter for the worker's tests, in a subprocess.

TensorFlow is imported only in that subprocess (about 20 s and 1 GB once per test session):
the test process stays as light as the dashboard's, which matters to the tests that measure
its memory. The files are cached for the session in pytest's temporary directory.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

RECIPES = textwrap.dedent(
    '''
    import sys
    from pathlib import Path

    import numpy as np
    import tensorflow as tf

    out = Path(sys.argv[1])


    def convert(fn, name, quantize=None, resource_variables=False, module=None):
        funcs = [fn.get_concrete_function()]
        converter = tf.lite.TFLiteConverter.from_concrete_functions(funcs, module) if module else \\
            tf.lite.TFLiteConverter.from_concrete_functions(funcs)
        if resource_variables:
            converter.experimental_enable_resource_variables = True
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = quantize
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        (out / f"{name}.tflite").write_bytes(converter.convert())


    # Stateful: returns what the previous call was given (a resource variable).
    class Remember(tf.Module):
        def __init__(self):
            self.last = tf.Variable(tf.zeros([1, 4]))

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def __call__(self, x):
            previous = tf.identity(self.last)
            self.last.assign(x)
            return previous


    remember = Remember()
    convert(remember.__call__, "remember", resource_variables=True, module=remember)


    # Outputs of every kind: strings, complex64, bool, and an empty [4, 0].
    @tf.function(input_signature=[tf.TensorSpec([4, 4], tf.float32, name="x"), tf.TensorSpec([2], tf.string, name="s")])
    def kinds(x, s):
        return {"strings": tf.reshape(s, [2, 1]), "spectrum": tf.signal.rfft2d(x), "positive": tf.greater(x, 0.0),
                "empty": x[:, :0] * 2.0}


    convert(kinds, "kinds")


    # An int8 output declared [1, 4] whose size the multiples input decides at run time.
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x"), tf.TensorSpec([2], tf.int32, name="multiples")])
    def tile(x, multiples):
        return tf.tile(x * 2.0, multiples)


    def samples():
        for _ in range(8):
            yield [np.random.uniform(-1, 1, (1, 4)).astype(np.float32), np.array([1, 1], np.int32)]


    convert(tile, "tile_int8", quantize=samples)


    # About 10 ms a sample: a loop of 20,000 steps, batchable (batch dimension 1).
    @tf.function(input_signature=[tf.TensorSpec([1, 1], tf.float32, name="x")])
    def slow(x):
        i = tf.constant(0)
        _, y = tf.while_loop(lambda i, y: i < 20000, lambda i, y: (i + 1, y * 0.9999 + 0.0001), [i, x])
        return y


    convert(slow, "slow_sample")
    '''
)


def build(directory: Path) -> dict[str, bytes]:
    """Every recipe's model, built once into ``directory``; name -> bytes."""
    names = ("remember", "kinds", "tile_int8", "slow_sample")
    if not all((directory / f"{n}.tflite").exists() for n in names):
        directory.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-c", RECIPES, str(directory)], capture_output=True, text=True, timeout=600,
            env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
        )
        if done.returncode != 0:
            raise RuntimeError(f"Building the test models failed:\n{done.stderr[-3000:]}")
    return {n: (directory / f"{n}.tflite").read_bytes() for n in names}
