"""Build lite-debug's example gallery: small TFLite models and the inputs that break them.

Each example is a tiny model converted with TensorFlow's own ``tf.lite.TFLiteConverter`` (random
weights from a fixed seed, nothing downloaded), one input that reproduces a failure users meet in
practice, and one input that runs. The script then feeds every broken input to
``ai_edge_litert``'s interpreter the naive way (``set_tensor`` by position, or the signature
runner) and records the message it really gives, so that the gallery never quotes an error from
memory. Everything lands in ``lite_debug/examples/`` with a manifest, ``gallery.json``.

The generated files are committed: the app reads them without TensorFlow. Run this script again
only to change the gallery::

    python scripts/build_examples.py            # writes lite_debug/examples/
    python scripts/build_examples.py --check    # rebuilds into a temporary directory and
                                                # reports files that would change

The build is deterministic for a given TensorFlow / LiteRT / Pillow version: weights, pictures
and calibration data come from seeded numpy generators, zip entries carry a fixed timestamp, and
the converter itself writes no time or path into the flatbuffer.
"""

from __future__ import annotations

import argparse
import filecmp
import io
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Quiet TensorFlow's C++ start-up chatter; set before the import below so it takes effect.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = REPO / "lite_debug" / "examples"
MANIFEST = "gallery.json"
SEED = 20_240_611
# The size budget the app relies on: the gallery ships inside the package.
MAX_MODEL_BYTES = 300_000
MAX_TOTAL_BYTES = 1_500_000

LABELS = (
    "alpine meadow",
    "harbour",
    "lighthouse",
    "orchard",
    "desert dune",
    "glacier",
    "vineyard",
    "salt flat",
    "rainforest",
    "city skyline",
)


# --------------------------------------------------------------------------------------------
# Synthetic data


def photo_like(size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size``×``size``×3 uint8 picture that looks like a landscape: sky, sun, hills, noise.

    Real photos are smooth with edges; this has both, so image statistics (range, mean,
    channel order) behave as they would on a photo, without shipping anyone's photo.
    """
    # A vertical gradient from deep blue at the top to hazy white at the horizon.
    height = np.linspace(0.0, 1.0, size)[:, None, None]
    sky = np.array([60.0, 120.0, 230.0]) + height * np.array([120.0, 90.0, -40.0])
    sky = np.broadcast_to(sky, (size, size, 3))
    img = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    s = size / 256
    draw.ellipse([190 * s, 30 * s, 230 * s, 70 * s], fill=(255, 220, 120))
    draw.polygon(
        [(0, 170 * s), (70 * s, 110 * s), (140 * s, 160 * s), (256 * s, 120 * s),
         (256 * s, 256 * s), (0, 256 * s)],
        fill=(70, 130, 60),
    )
    draw.polygon(
        [(0, 210 * s), (120 * s, 180 * s), (256 * s, 215 * s), (256 * s, 256 * s),
         (0, 256 * s)],
        fill=(110, 90, 50),
    )
    draw.rectangle([40 * s, 150 * s, 70 * s, 185 * s], fill=(180, 40, 40))
    draw.polygon([(35 * s, 150 * s), (55 * s, 132 * s), (75 * s, 150 * s)], fill=(90, 30, 30))
    arr = np.asarray(img).astype(np.float64)
    arr += rng.normal(0.0, 6.0, size=arr.shape)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def digit_like(rng: np.random.Generator) -> np.ndarray:
    """A 28×28 float32 picture of a hand-drawn-looking 7, values in [0, 1], MNIST-style."""
    img = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(img)
    draw.line([(7, 7), (21, 7), (12, 23)], fill=255, width=3)
    draw.line([(10, 15), (18, 15)], fill=200, width=2)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr + rng.normal(0.0, 0.02, size=arr.shape).astype(np.float32)
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def representative_images(
    shape: tuple[int, ...], rng: np.random.Generator, count: int = 16
) -> list[np.ndarray]:
    """Calibration batches in [0, 1] that include both ends exactly.

    Including an exact 0 and 1 makes the calibrated input scale exactly 1/255, as it is for a
    real image model, so that the quantized input is the familiar ``pixel`` or ``pixel - 128``.
    """
    batches = []
    for _ in range(count):
        batch = rng.integers(0, 256, size=shape).astype(np.float32) / 255.0
        batch.flat[0], batch.flat[1] = 0.0, 1.0
        batches.append(batch)
    return batches


def quantize(real: np.ndarray, scale: float, zero_point: int, dtype: type) -> np.ndarray:
    """``q = round(real / scale) + zero_point``, clipped to the range of ``dtype``."""
    info = np.iinfo(dtype)
    return np.clip(np.rint(real / scale) + zero_point, info.min, info.max).astype(dtype)


# --------------------------------------------------------------------------------------------
# Conversion


def tf_module() -> Any:
    import tensorflow as tf  # noqa: PLC0415 - heavy import, only when building

    tf.random.set_seed(SEED)
    return tf


def he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.normal(0.0, 1.0, size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def convert(
    functions: list[Any],
    module: Any,
    *,
    representative: list[np.ndarray] | None = None,
    io_type: Any = None,
    select_tf_ops: bool = False,
    allow_custom_ops: bool = False,
) -> bytes:
    """Convert concrete functions of ``module`` the way a user of the TF 2 API would.

    Passing the module routes conversion through the SavedModel importer, which names inputs
    ``serving_default_<arg>:0`` and records a ``serving_default`` signature, as Keras models
    exported with ``model.export`` get too.
    """
    tf = tf_module()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, module)
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([batch] for batch in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    if select_tf_ops:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS,
            tf.lite.OpsSet.SELECT_TF_OPS,
        ]
    converter.allow_custom_ops = allow_custom_ops
    if not select_tf_ops:
        return bytes(converter.convert())
    # A Flex op carries its TensorFlow NodeDef, whose attribute map the converter serializes
    # in an order that changes from call to call. Keeping the smallest of several conversions
    # makes the bytes reproducible (2 attributes, 2 orders: 24 tries miss one with p < 1e-4).
    return min(bytes(converter.convert()) for _ in range(24))


class ConvNet:
    """Weights for a small image classifier: strided 3×3 convs, global average pool, dense."""

    def __init__(self, rng: np.random.Generator, channels: int, widths: tuple[int, ...],
                 classes: int) -> None:
        self.convs = []
        cin = channels
        for cout in widths:
            self.convs.append((he(rng, (3, 3, cin, cout), 9 * cin),
                               (rng.normal(0, 0.05, cout)).astype(np.float32)))
            cin = cout
        self.dense = he(rng, (cin, classes), cin)
        self.bias = (rng.normal(0, 0.05, classes)).astype(np.float32)

    def module(self, size: int, channels: int) -> tuple[Any, Any]:
        tf = tf_module()
        module = tf.Module()
        module.convs = [(tf.Variable(k), tf.Variable(b)) for k, b in self.convs]
        module.dense = tf.Variable(self.dense)
        module.bias = tf.Variable(self.bias)

        @tf.function(input_signature=[tf.TensorSpec([1, size, size, channels], tf.float32,
                                                    name="image")])
        def classify(image: Any) -> dict[str, Any]:
            x = image
            for kernel, bias in module.convs:
                x = tf.nn.relu(tf.nn.conv2d(x, kernel, strides=2, padding="SAME") + bias)
            x = tf.reduce_mean(x, axis=[1, 2])
            return {"probabilities": tf.nn.softmax(x @ module.dense + module.bias)}

        return module, classify.get_concrete_function()


# --------------------------------------------------------------------------------------------
# The examples


@dataclass(frozen=True)
class Built:
    """What one builder produced, before the errors are observed."""

    entry: dict[str, Any]
    # Reproduces the failure with the real interpreter: returns (how it was fed, message) pairs,
    # the first being the naive way that ``observed_error`` records.
    observe: Callable[[Path], list[tuple[str, str]]]


def _message(call: Callable[[], Any]) -> str:
    try:
        call()
    except (ValueError, RuntimeError) as error:
        return str(error)
    raise AssertionError("the broken input ran without an error; the example reproduces nothing")


def _interpreter(path: Path, **kwargs: Any) -> Interpreter:
    return Interpreter(model_path=str(path), **kwargs)


def _set_by_position(model: Path, arrays: list[np.ndarray]) -> None:
    interpreter = _interpreter(model)
    interpreter.allocate_tensors()
    for detail, array in zip(interpreter.get_input_details(), arrays):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()


def build_image_size(out: Path, rng: np.random.Generator) -> Built:
    net = ConvNet(rng, 3, (8, 16, 32), len(LABELS))
    module, fn = net.module(224, 3)
    model = convert([fn], module)
    model += labels_zip(LABELS)
    (out / "image_classifier.tflite").write_bytes(model)

    photo = photo_like(256, rng)
    Image.fromarray(photo, "RGB").save(out / "image-size.broken.png", optimize=False)
    resized = Image.fromarray(photo, "RGB").resize((224, 224), Image.Resampling.BILINEAR)
    good = (np.asarray(resized, dtype=np.float32) / 255.0)[None]
    np.save(out / "image-size.good.npy", good)

    def observe(d: Path) -> list[tuple[str, str]]:
        # The user knew to scale to [0, 1] and add a batch axis, but not to resize.
        pixels = np.asarray(Image.open(d / "image-size.broken.png"), dtype=np.float32) / 255.0
        return [("allocate_tensors(); set_tensor(input 0, PNG as float32 / 255 with a batch "
                 "axis, shape [1, 256, 256, 3])",
                 _message(lambda: _set_by_position(d / "image_classifier.tflite",
                                                   [pixels[None]])))]

    return Built(
        {
            "id": "image-size",
            "title": "A 256×256 photo into a 224×224 classifier",
            "model": "image_classifier.tflite",
            "inputs": {"serving_default_image:0": "image-size.broken.png"},
            "good_inputs": {"serving_default_image:0": "image-size.good.npy"},
            "signature": None,
            "expected_kinds": ["shape"],
            "story": "A user scaled a 256×256 photo to [0, 1], added a batch axis and called "
                     "set_tensor; the interpreter refused it with a dimension mismatch, "
                     "because the classifier takes 224×224 images.",
            "fix": "Resize the picture to 224×224 (or centre-crop it) before adding the batch "
                   "axis.",
            "packed_files": ["labels.txt"],
        },
        observe,
    )


def labels_zip(labels: tuple[str, ...]) -> bytes:
    """A zip archive holding ``labels.txt``, as TFLite Support metadata appends to a model.

    The entry's timestamp is fixed so that the model bytes do not change from build to build.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        info = zipfile.ZipInfo("labels.txt", date_time=(2024, 1, 1, 0, 0, 0))
        archive.writestr(info, "".join(f"{label}\n" for label in labels))
    return buffer.getvalue()


def build_uint8_float_data(out: Path, rng: np.random.Generator) -> Built:
    tf = tf_module()
    net = ConvNet(rng, 1, (8, 16), 10)
    module, fn = net.module(28, 1)
    model = convert([fn], module, representative=representative_images((1, 28, 28, 1), rng),
                    io_type=tf.uint8)
    (out / "digit_classifier_uint8.tflite").write_bytes(model)

    digit = digit_like(rng)[None, :, :, None]
    np.save(out / "uint8-float-data.broken.npy", digit)
    scale, zero_point = _input_quantization(model)
    np.save(out / "uint8-float-data.good.npy", quantize(digit, scale, zero_point, np.uint8))

    def observe(d: Path) -> list[tuple[str, str]]:
        data = np.load(d / "uint8-float-data.broken.npy")
        return [("allocate_tensors(); set_tensor(input 0, the float32 array as saved)",
                 _message(lambda: _set_by_position(d / "digit_classifier_uint8.tflite",
                                                   [data])))]

    return Built(
        {
            "id": "uint8-float-data",
            "title": "Float pixels into a fully-quantized uint8 model",
            "model": "digit_classifier_uint8.tflite",
            "inputs": {"serving_default_image:0": "uint8-float-data.broken.npy"},
            "good_inputs": {"serving_default_image:0": "uint8-float-data.good.npy"},
            "signature": None,
            "expected_kinds": ["quantization"],
            "story": "A user fed the same float32 [0, 1] digits that the float model took to "
                     "its fully-quantized uint8 version; the interpreter said it got FLOAT32 "
                     "but expected UINT8.",
            "fix": f"Quantize the data with the input's parameters, q = round(x / {scale:.6g}) "
                   f"+ {zero_point}, as uint8 (for this model, round(x * 255)).",
        },
        observe,
    )


def build_int8_uint8_image(out: Path, rng: np.random.Generator) -> Built:
    tf = tf_module()
    net = ConvNet(rng, 3, (8, 16), 5)
    module, fn = net.module(32, 3)
    model = convert([fn], module, representative=representative_images((1, 32, 32, 3), rng),
                    io_type=tf.int8)
    (out / "tiny_classifier_int8.tflite").write_bytes(model)

    photo = np.asarray(Image.fromarray(photo_like(256, rng), "RGB")
                       .resize((32, 32), Image.Resampling.BILINEAR))
    Image.fromarray(photo, "RGB").save(out / "int8-uint8-image.broken.png", optimize=False)
    scale, zero_point = _input_quantization(model)
    good = quantize(photo.astype(np.float32)[None] / 255.0, scale, zero_point, np.int8)
    np.save(out / "int8-uint8-image.good.npy", good)

    def observe(d: Path) -> list[tuple[str, str]]:
        pixels = np.asarray(Image.open(d / "int8-uint8-image.broken.png"))[None]
        return [("allocate_tensors(); set_tensor(input 0, PNG pixels as uint8 with a batch "
                 "axis)",
                 _message(lambda: _set_by_position(d / "tiny_classifier_int8.tflite",
                                                   [pixels])))]

    return Built(
        {
            "id": "int8-uint8-image",
            "title": "uint8 pixels into an int8 model",
            "model": "tiny_classifier_int8.tflite",
            "inputs": {"serving_default_image:0": "int8-uint8-image.broken.png"},
            "good_inputs": {"serving_default_image:0": "int8-uint8-image.good.npy"},
            "signature": None,
            # The dtype is wrong, and so is the range: 0..255 does not fit int8, and a plain
            # astype(int8) would wrap bright pixels to negative numbers. With scale 1/255 and
            # zero point -128, the right conversion is the shift pixel - 128.
            "expected_kinds": ["dtype", "range"],
            "story": "A user loaded a 32×32 PNG as uint8 pixels and fed it to an int8 model "
                     "calibrated on [0, 1] data; the interpreter said it got UINT8 but expected "
                     "INT8.",
            "fix": f"Quantize with the input's parameters, q = round(pixel / 255 / {scale:.6g}) "
                   f"+ ({zero_point}), as int8: here that is pixel - 128, not astype(int8).",
        },
        observe,
    )


def build_two_inputs_swapped(out: Path, rng: np.random.Generator) -> Built:
    tf = tf_module()
    embedding = rng.normal(0.0, 0.1, size=(1000, 8)).astype(np.float32)
    w_features = he(rng, (10, 8), 10)
    w_out = he(rng, (8, 1), 8)

    # Built as a plain graph, without a SavedModel signature: then the converter keeps the
    # inputs in argument order (features, tokens) and names them after the arguments. Through
    # the SavedModel importer the order comes out as (tokens, features) whatever the argument
    # order, which would make the user's tokens-first file correct by accident.
    @tf.function(input_signature=[
        tf.TensorSpec([None, 10], tf.float32, name="features"),
        tf.TensorSpec([None, 20], tf.int32, name="tokens"),
    ])
    def score(features: Any, tokens: Any) -> dict[str, Any]:
        pooled = tf.reduce_mean(tf.gather(tf.constant(embedding), tokens), axis=1)
        hidden = tf.nn.relu(features @ tf.constant(w_features) + pooled)
        return {"score": tf.nn.sigmoid(hidden @ tf.constant(w_out))}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([score.get_concrete_function()])
    model = bytes(converter.convert())
    (out / "two_inputs.tflite").write_bytes(model)

    features = rng.normal(0.0, 1.0, size=(1, 10)).astype(np.float32)
    tokens = rng.integers(0, 1000, size=(1, 20)).astype(np.int32)
    np.savez(out / "two-inputs-swapped.broken.npz", tokens, features)
    np.savez(out / "two-inputs-swapped.good.npz", features=features, tokens=tokens)

    def observe(d: Path) -> list[tuple[str, str]]:
        with np.load(d / "two-inputs-swapped.broken.npz") as archive:
            arrays = [archive[key] for key in archive.files]
        return [("allocate_tensors(); set_tensor(input i, arr_i) for arr_0, arr_1 in file "
                 "order",
                 _message(lambda: _set_by_position(d / "two_inputs.tflite", arrays)))]

    return Built(
        {
            "id": "two-inputs-swapped",
            "title": "Two inputs given in the wrong order",
            "model": "two_inputs.tflite",
            "inputs": ["two-inputs-swapped.broken.npz"],
            "good_inputs": ["two-inputs-swapped.good.npz"],
            "signature": None,
            "expected_kinds": ["association"],
            "story": "A model takes float features [N, 10] and int32 token ids [N, 20]; a user "
                     "saved tokens first and set the arrays by position, and the interpreter "
                     "complained about a type on input 0.",
            "fix": "Bind each array to the input of the same name (features, tokens) instead "
                   "of by position, or save the arrays in the order get_input_details() lists.",
            "input_names": ["features", "tokens"],
        },
        observe,
    )


def build_two_signatures(out: Path, rng: np.random.Generator) -> Built:
    tf = tf_module()
    module = tf.Module()
    module.w_enc = tf.Variable(he(rng, (16, 4), 16))
    module.w_dec = tf.Variable(he(rng, (4, 16), 4))

    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32, name="x")])
    def encode(x: Any) -> dict[str, Any]:
        # Centring each sample along axis 1 is what makes a missing batch axis fail: with a
        # bare dense layer, the signature runner resizes the input to [16], FULLY_CONNECTED
        # flattens it back to one row, and the mistake goes unnoticed.
        centred = x - tf.reduce_mean(x, axis=1, keepdims=True)
        return {"z": tf.tanh(centred @ module.w_enc)}

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="z")])
    def decode(z: Any) -> dict[str, Any]:
        return {"x_hat": z @ module.w_dec}

    module.encode, module.decode = encode, decode
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(module, saved, signatures={
            "encode": encode.get_concrete_function(),
            "decode": decode.get_concrete_function(),
        })
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved, signature_keys=["encode", "decode"])
        model = bytes(converter.convert())
    (out / "autoencoder_two_signatures.tflite").write_bytes(model)

    vector = rng.normal(0.0, 1.0, size=(16,)).astype(np.float32)
    np.save(out / "two-signatures-missing-batch.broken.npy", vector)
    np.save(out / "two-signatures-missing-batch.good.npy", vector[None])

    def observe(d: Path) -> list[tuple[str, str]]:
        data = np.load(d / "two-signatures-missing-batch.broken.npy")
        path = d / "autoencoder_two_signatures.tflite"

        def by_runner(**kwargs: Any) -> None:
            _interpreter(path, **kwargs).get_signature_runner("encode")(x=data)

        def by_set_tensor() -> None:
            # Interpreter.set_tensor only reaches subgraph 0, which the converter gave to
            # decode; so a user who ignores signatures feeds decode's z [1, 4], not encode's x.
            interpreter = _interpreter(path)
            interpreter.allocate_tensors()
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], data)

        return [
            ("get_signature_runner('encode')(x=array)", _message(by_runner)),
            ("Interpreter(..., experimental_op_resolver_type=OpResolverType."
             "BUILTIN_WITHOUT_DEFAULT_DELEGATES).get_signature_runner('encode')(x=array)",
             _message(lambda: by_runner(experimental_op_resolver_type=OpResolverType
                                        .BUILTIN_WITHOUT_DEFAULT_DELEGATES))),
            ("allocate_tensors(); set_tensor(get_input_details()[0]['index'], array), where "
             "input 0 of the plain API is subgraph 0, the decode signature's z [1, 4]",
             _message(by_set_tensor)),
        ]

    return Built(
        {
            "id": "two-signatures-missing-batch",
            "title": "A vector without its batch axis, for one of two signatures",
            "model": "autoencoder_two_signatures.tflite",
            "inputs": {"x": "two-signatures-missing-batch.broken.npy"},
            "good_inputs": {"x": "two-signatures-missing-batch.good.npy"},
            "signature": "encode",
            "expected_kinds": ["batch"],
            "story": "A model has two signatures, encode and decode; a user passed one 16-value "
                     "vector of shape (16,) to encode, and the interpreter rejected it.",
            "fix": "Add a batch axis, x[None] or np.expand_dims(x, 0), to make it [1, 16].",
        },
        observe,
    )


def build_segmentation_nchw(out: Path, rng: np.random.Generator) -> Built:
    tf = tf_module()
    module = tf.Module()
    module.k1 = tf.Variable(he(rng, (3, 3, 3, 8), 27))
    module.k2 = tf.Variable(he(rng, (3, 3, 8, 8), 72))
    module.k3 = tf.Variable(he(rng, (1, 1, 8, 1), 8))

    @tf.function(input_signature=[tf.TensorSpec([1, 64, 64, 3], tf.float32, name="image")])
    def segment(image: Any) -> dict[str, Any]:
        x = tf.nn.relu(tf.nn.conv2d(image, module.k1, 1, "SAME"))
        x = tf.nn.relu(tf.nn.conv2d(x, module.k2, 1, "SAME"))
        logits = tf.squeeze(tf.nn.conv2d(x, module.k3, 1, "SAME"), axis=-1)
        return {"mask": tf.sigmoid(logits)}

    model = convert([segment.get_concrete_function()], module)
    (out / "segmenter.tflite").write_bytes(model)

    picture = photo_like(64, rng).astype(np.float32)[None] / 255.0
    np.save(out / "segmentation-nchw.broken.npy", np.ascontiguousarray(
        picture.transpose(0, 3, 1, 2)))
    np.save(out / "segmentation-nchw.good.npy", picture)

    def observe(d: Path) -> list[tuple[str, str]]:
        data = np.load(d / "segmentation-nchw.broken.npy")
        return [("allocate_tensors(); set_tensor(input 0, the [1, 3, 64, 64] array)",
                 _message(lambda: _set_by_position(d / "segmenter.tflite", [data])))]

    return Built(
        {
            "id": "segmentation-nchw",
            "title": "A channels-first tensor from PyTorch into a channels-last model",
            "model": "segmenter.tflite",
            "inputs": {"serving_default_image:0": "segmentation-nchw.broken.npy"},
            "good_inputs": {"serving_default_image:0": "segmentation-nchw.good.npy"},
            "signature": None,
            "expected_kinds": ["layout"],
            "story": "A user exported a preprocessed batch from a PyTorch pipeline, [1, 3, 64, "
                     "64] (NCHW), and fed it to a TFLite segmenter that takes [1, 64, 64, 3] "
                     "(NHWC).",
            "fix": "Move the channels last with x.transpose(0, 2, 3, 1); a reshape would "
                   "scramble the pixels.",
        },
        observe,
    )


def _matrix_model(out: Path, *, name: str, op: Callable[[Any], Any],
                  output: str, select_tf_ops: bool, allow_custom_ops: bool) -> Path:
    tf = tf_module()
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([1, 3, 3], tf.float32, name="matrix")])
    def apply(matrix: Any) -> dict[str, Any]:
        return {output: op(matrix)}

    model = convert([apply.get_concrete_function()], module, select_tf_ops=select_tf_ops,
                    allow_custom_ops=allow_custom_ops)
    path = out / name
    path.write_bytes(model)
    return path


def well_conditioned(rng: np.random.Generator) -> np.ndarray:
    """A [1, 3, 3] float32 matrix far from singular: identity plus small noise."""
    return (np.eye(3) + rng.normal(0.0, 0.1, size=(3, 3))).astype(np.float32)[None]


def _allocate(path: Path) -> None:
    _interpreter(path).allocate_tensors()


def build_select_tf_op(out: Path, rng: np.random.Generator) -> Built:
    tf = tf_module()
    _matrix_model(out, name="matrix_inverse_flex.tflite", op=tf.linalg.inv,
                  output="inverse", select_tf_ops=True, allow_custom_ops=False)
    np.save(out / "select-tf-op.input.npy", well_conditioned(rng))

    def observe(d: Path) -> list[tuple[str, str]]:
        return [("allocate_tensors()",
                 _message(lambda: _allocate(d / "matrix_inverse_flex.tflite")))]

    return Built(
        {
            "id": "select-tf-op",
            "title": "A model that needs TensorFlow ops the interpreter lacks",
            "model": "matrix_inverse_flex.tflite",
            "inputs": {"serving_default_matrix:0": "select-tf-op.input.npy"},
            "good_inputs": {"serving_default_matrix:0": "select-tf-op.input.npy"},
            "signature": None,
            "expected_kinds": [],
            "story": "The model was converted with SELECT_TF_OPS so that tf.linalg.inv became "
                     "FlexMatrixInverse; the input is fine, but ai-edge-litert cannot allocate "
                     "the model at all.",
            "fix": "Run it with an interpreter linked against the Flex delegate (full "
                   "TensorFlow's tf.lite.Interpreter), or rewrite the graph without "
                   "tf.linalg.inv so that it converts to builtin ops only.",
        },
        observe,
    )


def build_reshape_breaks(out: Path, rng: np.random.Generator) -> Built:
    tf = tf_module()
    module = tf.Module()
    module.w = tf.Variable(he(rng, (12, 2), 12))
    module.b = tf.Variable(rng.normal(0.0, 0.05, 2).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 3], tf.float32, name="x")])
    def predict(x: Any) -> dict[str, Any]:
        # The bug users write: a constant batch of 1 baked into the reshape.
        flat = tf.reshape(x, [1, 12])
        return {"y": flat @ module.w + module.b}

    model = convert([predict.get_concrete_function()], module)
    (out / "reshape_fixed_batch.tflite").write_bytes(model)

    batch = rng.normal(0.0, 1.0, size=(2, 4, 3)).astype(np.float32)
    np.save(out / "reshape-breaks-on-resize.broken.npy", batch)
    np.save(out / "reshape-breaks-on-resize.good.npy", batch[:1])

    def observe(d: Path) -> list[tuple[str, str]]:
        data = np.load(d / "reshape-breaks-on-resize.broken.npy")
        path = d / "reshape_fixed_batch.tflite"

        def resized(**kwargs: Any) -> None:
            interpreter = _interpreter(path, **kwargs)
            interpreter.resize_tensor_input(0, list(data.shape))
            interpreter.allocate_tensors()

        def unresized() -> None:
            _set_by_position(path, [data])

        without = {"experimental_op_resolver_type":
                   OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        return [
            ("resize_tensor_input(0, [2, 4, 3]); allocate_tensors()", _message(resized)),
            ("Interpreter(..., experimental_op_resolver_type=OpResolverType."
             "BUILTIN_WITHOUT_DEFAULT_DELEGATES); resize_tensor_input(0, [2, 4, 3]); "
             "allocate_tensors()", _message(lambda: resized(**without))),
            ("allocate_tensors(); set_tensor(input 0, the [2, 4, 3] array) without resizing",
             _message(unresized)),
        ]

    return Built(
        {
            "id": "reshape-breaks-on-resize",
            "title": "A batch of 2 into a model whose reshape fixed the batch to 1",
            "model": "reshape_fixed_batch.tflite",
            "inputs": {"serving_default_x:0": "reshape-breaks-on-resize.broken.npy"},
            "good_inputs": {"serving_default_x:0": "reshape-breaks-on-resize.good.npy"},
            "signature": None,
            "expected_kinds": ["dynamic"],
            "story": "The input's batch is dynamic ([-1, 4, 3]), so a user resized it to 2 and "
                     "allocated; a RESHAPE to a constant [1, 12] inside the graph cannot hold 24 "
                     "values, and the default XNNPACK delegate hides that behind 'failed to "
                     "reshape'.",
            "fix": "Run the samples one at a time with batch 1, or re-export the model with "
                   "tf.reshape(x, [-1, 12]) so the batch can change.",
        },
        observe,
    )


def build_custom_op(out: Path, rng: np.random.Generator) -> Built:
    tf = tf_module()
    _matrix_model(out, name="matrix_determinant_custom.tflite", op=tf.linalg.det,
                  output="determinant", select_tf_ops=False, allow_custom_ops=True)
    np.save(out / "custom-op.input.npy", well_conditioned(rng))

    def observe(d: Path) -> list[tuple[str, str]]:
        return [("allocate_tensors()",
                 _message(lambda: _allocate(d / "matrix_determinant_custom.tflite")))]

    return Built(
        {
            "id": "custom-op",
            "title": "A model with a custom op nobody registered",
            "model": "matrix_determinant_custom.tflite",
            "inputs": {"serving_default_matrix:0": "custom-op.input.npy"},
            "good_inputs": {"serving_default_matrix:0": "custom-op.input.npy"},
            "signature": None,
            "expected_kinds": [],
            "story": "The model was converted with allow_custom_ops=True, so tf.linalg.det "
                     "became a CUSTOM op, MatrixDeterminant; the input is fine, but no "
                     "interpreter has a kernel registered for that op.",
            "fix": "Register a kernel for MatrixDeterminant in a custom interpreter build, or "
                   "convert with SELECT_TF_OPS instead, or compute the determinant outside the "
                   "model.",
        },
        observe,
    )


SOUNDS = ("silence", "speech", "whistle", "dog bark", "siren")


def recording_like(rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A stereo recording, ``[frames, 2]`` float in [-1, 1]: a rising whistle, a steady hum,
    then a burst of noise, with the right channel a little quieter and later, as two
    microphones hear one room."""
    t = np.arange(int(round(rate * seconds))) / rate
    whistle = 0.35 * np.sin(2 * np.pi * (900 * t + 600 * t ** 2)) * (t < seconds * 0.45)
    hum = 0.2 * np.sin(2 * np.pi * 220 * t) * ((t >= seconds * 0.35) & (t < seconds * 0.8))
    noise = 0.25 * rng.normal(0.0, 1.0, t.size) * (t >= seconds * 0.7)
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)  # no click at either end
    left = (whistle + hum + noise) * fade
    right = 0.8 * np.roll(left, int(rate * 0.0005))
    return np.clip(np.stack([left, right], axis=1), -1.0, 1.0)


def build_audio_rate(out: Path, rng: np.random.Generator) -> Built:
    import soundfile  # noqa: PLC0415 - only this example writes audio
    from scipy.signal import resample_poly  # noqa: PLC0415

    tf = tf_module()
    module = tf.Module()
    module.k1 = tf.Variable(he(rng, (64, 1, 8), 64))
    module.k2 = tf.Variable(he(rng, (8, 8, 16), 64))
    module.dense = tf.Variable(he(rng, (16, len(SOUNDS)), 16))
    module.bias = tf.Variable(rng.normal(0.0, 0.05, len(SOUNDS)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 16000], tf.float32, name="audio")])
    def classify(audio: Any) -> dict[str, Any]:
        # One second at 16 kHz, as keyword spotters and sound-event classifiers take it.
        x = tf.nn.relu(tf.nn.conv1d(audio[:, :, None], module.k1, stride=16, padding="SAME"))
        x = tf.nn.relu(tf.nn.conv1d(x, module.k2, stride=4, padding="SAME"))
        x = tf.reduce_mean(x, axis=1)
        return {"scores": tf.nn.softmax(x @ module.dense + module.bias)}

    model = convert([classify.get_concrete_function()], module) + labels_zip(SOUNDS)
    (out / "sound_classifier.tflite").write_bytes(model)

    # What a phone or a desktop recorder writes: 44.1 kHz, stereo, 16-bit, and longer than 1 s.
    recording = recording_like(44_100, 1.5, rng)
    soundfile.write(out / "audio-rate.broken.wav", recording, 44_100, subtype="PCM_16", format="WAV")
    pcm, _ = soundfile.read(out / "audio-rate.broken.wav", dtype="float32")
    mono = pcm.mean(axis=1)
    at_16k = resample_poly(mono, 160, 441).astype(np.float32)
    np.save(out / "audio-rate.good.npy", at_16k[None, :16000])

    def observe(d: Path) -> list[tuple[str, str]]:
        samples, _ = soundfile.read(d / "audio-rate.broken.wav", dtype="float32")
        return [("soundfile.read(WAV, dtype='float32') ([66150, 2]); allocate_tensors(); set_tensor(input 0, "
                 "the samples with a batch axis)",
                 _message(lambda: _set_by_position(d / "sound_classifier.tflite", [samples[None]])))]

    return Built(
        {
            "id": "audio-rate",
            "title": "A 44.1 kHz stereo recording into a 16 kHz mono sound classifier",
            "model": "sound_classifier.tflite",
            "inputs": {"serving_default_audio:0": "audio-rate.broken.wav"},
            "good_inputs": {"serving_default_audio:0": "audio-rate.good.npy"},
            "signature": None,
            "expected_kinds": ["audio_channels", "sample_rate", "audio_length"],
            "story": "A user attached the 1.5 s WAV their laptop recorded (44.1 kHz, stereo, 16-bit) to a bug "
                     "report about a sound classifier that takes one second of mono audio at 16 kHz, [1, 16000]; "
                     "read with soundfile and given a batch axis, it met a dimension mismatch.",
            "fix": "Mix the channels down to mono, resample 44.1 kHz to 16 kHz (polyphase, 160/441), and split "
                   "the 1.5 s into 1 s windows run as a batch (or keep the first second).",
            "packed_files": ["labels.txt"],
        },
        observe,
    )


BUILDERS: tuple[Callable[[Path, np.random.Generator], Built], ...] = (
    build_image_size,
    build_uint8_float_data,
    build_int8_uint8_image,
    build_two_inputs_swapped,
    build_two_signatures,
    build_segmentation_nchw,
    build_select_tf_op,
    build_reshape_breaks,
    build_custom_op,
    build_audio_rate,
)


# --------------------------------------------------------------------------------------------
# Checks and the manifest


def _input_quantization(model: bytes) -> tuple[float, int]:
    detail = Interpreter(model_content=model).get_input_details()[0]
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


def _load_good(d: Path, name: str) -> Iterator[np.ndarray]:
    if name.endswith(".npz"):
        with np.load(d / name) as archive:
            yield from (archive[key] for key in archive.files)
    else:
        yield np.load(d / name)


def check_good_inputs(d: Path, entry: dict[str, Any]) -> None:
    """Run the good input; raise if it does not run (except where the model cannot run)."""
    interpreter = _interpreter(d / entry["model"])
    if entry["id"] in ("select-tf-op", "custom-op"):
        return
    if entry["signature"]:
        runner = interpreter.get_signature_runner(entry["signature"])
        runner(**{k: np.load(d / v) for k, v in entry["good_inputs"].items()})
        return
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    good = entry["good_inputs"]
    if isinstance(good, list):
        arrays = [a for name in good for a in _load_good(d, name)]
        for detail, array in zip(details, arrays, strict=True):
            interpreter.set_tensor(detail["index"], array)
    else:
        by_name = {detail["name"]: detail["index"] for detail in details}
        for key, name in good.items():
            interpreter.set_tensor(by_name[key], np.load(d / name))
    interpreter.invoke()
    for detail in interpreter.get_output_details():
        output = interpreter.get_tensor(detail["index"])
        if not np.all(np.isfinite(output.astype(np.float64))):
            raise AssertionError(f"{entry['id']}: the good input gave non-finite outputs")


def check_packed_labels(path: Path) -> None:
    data = path.read_bytes()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    if names != ["labels.txt"]:
        raise AssertionError(f"{path.name}: packed files are {names}, not ['labels.txt']")


def describe(d: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Tensor names, dtypes, shapes and quantization of one model, for the manifest."""
    interpreter = _interpreter(d / entry["model"])

    def tensor(detail: dict[str, Any]) -> dict[str, Any]:
        scale, zero_point = detail["quantization"]
        return {
            "name": detail["name"],
            "dtype": np.dtype(detail["dtype"]).name,
            "shape": detail["shape_signature"].tolist(),
            "quantization": ({"scale": float(scale), "zero_point": int(zero_point)}
                             if scale else None),
        }

    description: dict[str, Any] = {
        # What the plain API (get_input_details, set_tensor by index) sees: subgraph 0 only.
        "model_inputs": [tensor(detail) for detail in interpreter.get_input_details()],
        "model_outputs": [tensor(detail) for detail in interpreter.get_output_details()],
        "signatures": interpreter.get_signature_list(),
    }
    if entry["signature"]:
        runner = interpreter.get_signature_runner(entry["signature"])
        description["signature_inputs"] = {
            name: tensor(detail) for name, detail in runner.get_input_details().items()}
        description["signature_outputs"] = {
            name: tensor(detail) for name, detail in runner.get_output_details().items()}
    return description


def build(out: Path) -> list[dict[str, Any]]:
    """Build every example into ``out`` and return the manifest entries."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for builder in BUILDERS:
        # One generator per example, so that changing one example leaves the others' bytes
        # alone.
        rng = np.random.default_rng([SEED, len(entries)])
        built = builder(out, rng)
        entry = built.entry
        observed = built.observe(out)
        entry["observed_error"] = observed[0][1]
        entry["observed_errors"] = [{"with": how, "error": message} for how, message in observed]
        check_good_inputs(out, entry)
        entry.update(describe(out, entry))
        size = (out / entry["model"]).stat().st_size
        if size > MAX_MODEL_BYTES:
            raise AssertionError(f"{entry['model']} is {size} bytes, over {MAX_MODEL_BYTES}")
        entries.append(entry)
    check_packed_labels(out / "image_classifier.tflite")
    (out / MANIFEST).write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    total = sum(path.stat().st_size for path in out.iterdir() if path.is_file())
    if total > MAX_TOTAL_BYTES:
        raise AssertionError(f"the gallery is {total} bytes, over {MAX_TOTAL_BYTES}")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR,
                        help="directory to write into (default: lite_debug/examples)")
    parser.add_argument("--check", action="store_true",
                        help="build into a temporary directory and list files that differ "
                             "from --out; exit 1 if any do")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as scratch:
            fresh = Path(scratch)
            build(fresh)
            names = sorted(p.name for p in fresh.iterdir())
            differ = [n for n in names
                      if not (args.out / n).exists()
                      or not filecmp.cmp(fresh / n, args.out / n, shallow=False)]
        for name in differ:
            print(f"differs: {name}")
        return 1 if differ else 0
    for entry in build(args.out):
        size = (args.out / entry["model"]).stat().st_size
        print(f"{entry['id']:30} {entry['model']:36} {size:7d} B  {entry['observed_error']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
