"""The benchmark's models: random weights, fixed seeds, built once with TensorFlow's converter.

    python -m bench.models            # build what is missing or out of date
    python -m bench.models --force    # build them all again

The files land in ``bench/models/`` (git-ignored) with a ``manifest.json`` that records the
recipe each file was built from, so changing a recipe here rebuilds that model and nothing
else. TensorFlow is imported only in the process that builds (``python -m bench.models``):
the benchmark itself never loads it, so its memory and start-up figures are not TensorFlow's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["MODELS_DIR", "RECIPES", "ensure_models", "model_path"]

MODELS_DIR = Path(__file__).resolve().parent / "models"

# Each recipe is all a model depends on: change a number and that model is built again.
RECIPES: dict[str, dict[str, Any]] = {
    # Three 3×3 convs of 20 channels on 64×64×3, then a mean and a 10-way dense layer: about
    # 1 ms per invoke on the 2-core machine this was tuned on, and a tiny output, so the
    # per-run figure measures the fixed cost of a round trip, not data transfer.
    "conv_1ms": {"kind": "conv", "size": 64, "channels": 20, "layers": 3, "classes": 10, "seed": 1},
    # 1×512×512×3 float32 in and out (3 MB each way) through three 3×3 convs (8, 8, 3 channels).
    "image_512": {"kind": "image", "size": 512, "channels": 8, "layers": 3, "seed": 2},
    # One float32 fully-connected layer of n×n weights: n=48 → 10 KB, 512 → 1 MB, 1600 → 10 MB,
    # 5120 → 105 MB on disk.
    "dense_10k": {"kind": "dense", "units": 48, "seed": 3},
    "dense_1m": {"kind": "dense", "units": 512, "seed": 4},
    "dense_10m": {"kind": "dense", "units": 1600, "seed": 5},
    "dense_100m": {"kind": "dense", "units": 5120, "seed": 6},
    # An MNIST-shaped classifier, batch dimension 1: conv 3×3×8, 2×2 max-pool, dense to 10, softmax.
    "classifier": {"kind": "classifier", "size": 28, "channels": 8, "classes": 10, "seed": 7},
    # 100,001 tensors: x [1, 4], then 50,000 ADDs of a constant [4] each. Written with the
    # flatbuffer schema's object API (no converter: it takes minutes over a graph this long).
    "chain_100k": {"kind": "chain", "ops": 50_000, "width": 4},
    # 33 residual blocks (3×3 conv + ReLU, 1×1 conv, add + ReLU) of 16 channels on 32×32, a mean
    # and a dense head: 101 ops in float; the same weights converted to int8 (float in and out,
    # a representative dataset): 103 ops. The pair the comparison's figure compares layer by layer.
    "deep_100": {"kind": "deep", "size": 32, "channels": 16, "blocks": 33, "seed": 8},
    "deep_100_int8": {"kind": "deep", "size": 32, "channels": 16, "blocks": 33, "seed": 8, "quantize": True},
}


def model_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.tflite"


def _manifest() -> dict[str, Any]:
    try:
        return json.loads((MODELS_DIR / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def _stale(names: list[str]) -> list[str]:
    manifest = _manifest()
    return [n for n in names if manifest.get(n) != RECIPES[n] or not model_path(n).exists()]


def ensure_models(names: list[str] | None = None, *, log=print) -> dict[str, Path]:
    """Build the models that are missing or out of date, in a TensorFlow subprocess; return their paths.

    Raises ``RuntimeError`` with the builder's output when the build fails.
    """
    names = list(RECIPES) if names is None else list(names)
    missing = _stale(names)
    if missing:
        log(f"building bench models with TensorFlow (once, cached in {MODELS_DIR}): {', '.join(missing)}")
        done = subprocess.run(
            [sys.executable, "-m", "bench.models", *missing],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        if done.returncode != 0 or _stale(missing):
            raise RuntimeError(f"Building the bench models failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    return {n: model_path(n) for n in names}


# -- building (runs in the ``python -m bench.models`` process only) ------------------------


def _chain(n_ops: int, width: int) -> bytes:
    """A valid model of ``2 n_ops + 1`` tensors: ``x``, then ``n_ops`` ADDs of a constant each."""
    import flatbuffers
    import numpy as np

    from lite_debug._schema import schema

    fb = schema()

    def tensor(name: str, shape: tuple[int, ...], buffer: int):
        t = fb.TensorT()
        t.name, t.shape, t.buffer, t.type = name.encode(), list(shape), buffer, fb.TensorType.FLOAT32
        return t

    model = fb.ModelT()
    model.version = 3
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.ADD
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [fb.BufferT(), fb.BufferT()]
    sub = fb.SubGraphT()
    sub.tensors, sub.operators = [tensor("x", (1, width), 1)], []
    for i in range(n_ops):
        data = fb.BufferT()
        data.data = np.full(width, 0.5, np.float32).view(np.uint8)
        model.buffers += [data, fb.BufferT()]
        sub.tensors += [tensor(f"c{i}", (width,), len(model.buffers) - 2), tensor(f"y{i}", (1, width), len(model.buffers) - 1)]
        op = fb.OperatorT()
        op.opcodeIndex = 0
        op.inputs = [0 if i == 0 else len(sub.tensors) - 3, len(sub.tensors) - 2]
        op.outputs = [len(sub.tensors) - 1]
        op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.AddOptions, fb.AddOptionsT()
        sub.operators.append(op)
    sub.inputs, sub.outputs = [0], [len(sub.tensors) - 1]
    model.subgraphs = [sub]
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _build(name: str, recipe: dict[str, Any]) -> bytes:
    if recipe["kind"] == "chain":
        return _chain(recipe["ops"], recipe["width"])
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(recipe["seed"])

    def const(shape, scale):
        return tf.constant((rng.standard_normal(shape) * scale).astype(np.float32))

    kind = recipe["kind"]
    if kind in ("conv", "image"):
        size, ch, layers = recipe["size"], recipe["channels"], recipe["layers"]
        chans = [3] + [ch] * layers
        if kind == "image":
            chans[-1] = 3  # 512×512×3 out, like the input
        weights = [(const((3, 3, chans[i], chans[i + 1]), 0.2), const((chans[i + 1],), 0.01)) for i in range(layers)]
        head = const((ch, recipe["classes"]), 0.2) if kind == "conv" else None

        @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="x")])
        def fn(x):
            for i, (w, b) in enumerate(weights):
                x = tf.nn.conv2d(x, w, 1, "SAME") + b
                if i < layers - 1 or head is not None:
                    x = tf.nn.relu(x)
            if head is not None:
                x = tf.matmul(tf.reduce_mean(x, axis=[1, 2]), head)
            return x

    elif kind == "dense":
        n = recipe["units"]
        w, b = const((n, n), 1.0 / n**0.5), const((n,), 0.01)

        @tf.function(input_signature=[tf.TensorSpec([1, n], tf.float32, name="x")])
        def fn(x):
            return tf.matmul(x, w) + b

    elif kind == "classifier":
        size, ch, classes = recipe["size"], recipe["channels"], recipe["classes"]
        w1, b1 = const((3, 3, 1, ch), 0.3), const((ch,), 0.01)
        half = size // 2
        w2, b2 = const((half * half * ch, classes), 0.05), const((classes,), 0.01)

        @tf.function(input_signature=[tf.TensorSpec([1, size, size, 1], tf.float32, name="x")])
        def fn(x):
            h = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME") + b1)
            h = tf.nn.max_pool2d(h, 2, 2, "VALID")
            return tf.nn.softmax(tf.matmul(tf.reshape(h, [1, -1]), w2) + b2)

    elif kind == "deep":
        size, ch = recipe["size"], recipe["channels"]
        stem = (const((3, 3, 3, ch), 0.3), const((ch,), 0.01))
        blocks = [(const((3, 3, ch, ch), 0.3 / ch**0.5), const((ch,), 0.01), const((1, 1, ch, ch), 0.5 / ch**0.5),
                   const((ch,), 0.01)) for _ in range(recipe["blocks"])]
        head = const((ch, 10), 0.2)

        @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="x")])
        def fn(x):
            h = tf.nn.relu(tf.nn.conv2d(x, stem[0], 1, "SAME") + stem[1])
            for w1, b1, w2, b2 in blocks:
                y = tf.nn.relu(tf.nn.conv2d(h, w1, 1, "SAME") + b1)
                h = tf.nn.relu(h + (tf.nn.conv2d(y, w2, 1, "SAME") + b2))  # the bias folds into the conv
            return tf.matmul(tf.reduce_mean(h, axis=[1, 2]), head)

    else:
        raise ValueError(f"Unknown recipe kind {kind!r} for {name}.")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    if recipe.get("quantize"):
        size = recipe["size"]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)] for _ in range(16))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Build the benchmark's models (needs TensorFlow).")
    parser.add_argument(
        "names", nargs="*", help=f"models to build (default: what is stale); any of {', '.join(RECIPES)}"
    )
    parser.add_argument("--force", action="store_true", help="build even what is up to date")
    ns = parser.parse_args(argv)
    names = ns.names or (list(RECIPES) if ns.force else _stale(list(RECIPES)))
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}")
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        data = _build(name, RECIPES[name])
        tmp = model_path(name).with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(model_path(name))
        # Re-read the manifest each time so a concurrent build of another model is not lost.
        manifest = _manifest()
        manifest[name] = RECIPES[name]
        (MODELS_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        print(f"{name}: {len(data):,} bytes")


if __name__ == "__main__":
    _main(sys.argv[1:])
