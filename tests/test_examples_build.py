"""The example gallery that ``scripts/build_examples.py`` generated, checked without TensorFlow.

Each example must still do what the manifest says with the interpreter installed today: the
model loads, the good input runs, and the broken input, fed the naive way, fails with the error
that was recorded. The messages are matched on their key part, since LiteRT rewords them
between versions; if one of these tests fails after an upgrade, rebuild the gallery with
``python scripts/build_examples.py`` and look at what changed.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "lite_debug" / "examples"
GALLERY = json.loads((EXAMPLES / "gallery.json").read_text(encoding="utf-8"))
BY_ID = {entry["id"]: entry for entry in GALLERY}

IDS = [
    "image-size",
    "uint8-float-data",
    "int8-uint8-image",
    "two-inputs-swapped",
    "two-signatures-missing-batch",
    "segmentation-nchw",
    "select-tf-op",
    "reshape-breaks-on-resize",
    "custom-op",
    "audio-rate",
]
# Models whose failure is that no stock interpreter can allocate them, whatever the input.
UNRUNNABLE = {"select-tf-op", "custom-op"}
KINDS = {"shape", "rank", "batch", "dynamic", "layout", "channels", "dtype", "quantization",
         "range", "nan", "association", "audio_channels", "sample_rate", "audio_length", "audio_range"}
FIELDS = {"id", "title", "model", "inputs", "good_inputs", "signature", "expected_kinds",
          "story", "fix", "observed_error"}


def interpreter(entry: dict[str, Any], **kwargs: Any) -> Interpreter:
    return Interpreter(model_path=str(EXAMPLES / entry["model"]), **kwargs)


def input_files(entry: dict[str, Any], field: str) -> list[str]:
    files = entry[field]
    return list(files) if isinstance(files, list) else list(files.values())


def arrays_in(name: str) -> list[np.ndarray]:
    path = EXAMPLES / name
    if name.endswith(".npz"):
        with np.load(path) as archive:
            return [archive[key] for key in archive.files]
    if name.endswith(".png"):
        with Image.open(path) as image:
            return [np.asarray(image)]
    if name.endswith(".wav"):
        import soundfile

        return [soundfile.read(path, dtype="float32")[0]]
    return [np.load(path)]


def set_by_position(entry: dict[str, Any], arrays: list[np.ndarray]) -> None:
    runner = interpreter(entry)
    runner.allocate_tensors()
    for detail, array in zip(runner.get_input_details(), arrays):
        runner.set_tensor(detail["index"], array)
    runner.invoke()


# --------------------------------------------------------------------------------------------
# The broken inputs, fed the way the story's user fed them. Each entry: (a call, the key part of
# the message it must raise). The first one is the manifest's ``observed_error``; all appear, in
# order, in ``observed_errors``.


def _image_size() -> None:
    # Scaled to [0, 1] with a batch axis: only the size is wrong.
    (pixels,) = arrays_in("image-size.broken.png")
    set_by_position(BY_ID["image-size"], [pixels.astype(np.float32)[None] / 255.0])


def _uint8_float_data() -> None:
    set_by_position(BY_ID["uint8-float-data"], arrays_in("uint8-float-data.broken.npy"))


def _int8_uint8_image() -> None:
    (pixels,) = arrays_in("int8-uint8-image.broken.png")
    set_by_position(BY_ID["int8-uint8-image"], [pixels[None]])


def _two_inputs_swapped() -> None:
    set_by_position(BY_ID["two-inputs-swapped"], arrays_in("two-inputs-swapped.broken.npz"))


def _two_signatures(**kwargs: Any) -> Callable[[], None]:
    def call() -> None:
        (vector,) = arrays_in("two-signatures-missing-batch.broken.npy")
        interpreter(BY_ID["two-signatures-missing-batch"], **kwargs).get_signature_runner(
            "encode")(x=vector)
    return call


def _two_signatures_plain_set_tensor() -> None:
    (vector,) = arrays_in("two-signatures-missing-batch.broken.npy")
    runner = interpreter(BY_ID["two-signatures-missing-batch"])
    runner.allocate_tensors()
    runner.set_tensor(runner.get_input_details()[0]["index"], vector)


def _segmentation_nchw() -> None:
    set_by_position(BY_ID["segmentation-nchw"], arrays_in("segmentation-nchw.broken.npy"))


def _audio_rate() -> None:
    # Read with soundfile as float32 [frames, 2] and given a batch axis, as the story's user did.
    (samples,) = arrays_in("audio-rate.broken.wav")
    set_by_position(BY_ID["audio-rate"], [samples[None]])


def _allocate(example: str) -> Callable[[], None]:
    return lambda: interpreter(BY_ID[example]).allocate_tensors()


def _reshape_resized(**kwargs: Any) -> Callable[[], None]:
    def call() -> None:
        (batch,) = arrays_in("reshape-breaks-on-resize.broken.npy")
        runner = interpreter(BY_ID["reshape-breaks-on-resize"], **kwargs)
        runner.resize_tensor_input(0, list(batch.shape))
        runner.allocate_tensors()
    return call


def _reshape_not_resized() -> None:
    set_by_position(BY_ID["reshape-breaks-on-resize"],
                    arrays_in("reshape-breaks-on-resize.broken.npy"))


WITHOUT_DELEGATES = {"experimental_op_resolver_type":
                     OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}

NAIVE: dict[str, list[tuple[Callable[[], None], str]]] = {
    "image-size": [
        (_image_size, r"Dimension mismatch\. Got 256 but expected 224 for dimension 1 of input 0"),
    ],
    "uint8-float-data": [
        (_uint8_float_data, r"Got value of type FLOAT32 but expected type UINT8 for input 0"),
    ],
    "int8-uint8-image": [
        (_int8_uint8_image, r"Got value of type UINT8 but expected type INT8 for input 0"),
    ],
    "two-inputs-swapped": [
        (_two_inputs_swapped,
         r"Got value of type INT32 but expected type FLOAT32 for input 0, name: features"),
    ],
    "two-signatures-missing-batch": [
        (_two_signatures(), r"XNNPack delegate failed to reshape runtime.*failed to prepare"),
        (_two_signatures(**WITHOUT_DELEGATES), r"Invalid axis index.*\(MEAN\) failed to prepare"),
        (_two_signatures_plain_set_tensor, r"Dimension mismatch\. Got 1 but expected 2 for input 0"),
    ],
    "segmentation-nchw": [
        (_segmentation_nchw, r"Dimension mismatch\. Got 3 but expected 64 for dimension 1 of input 0"),
    ],
    "select-tf-op": [
        (_allocate("select-tf-op"),
         r"Select TensorFlow op\(s\).*not supported.*Flex delegate.*\(FlexMatrixInverse\) failed "
         r"to prepare"),
    ],
    "reshape-breaks-on-resize": [
        (_reshape_resized(), r"XNNPack delegate failed to reshape runtime.*failed to prepare"),
        (_reshape_resized(**WITHOUT_DELEGATES),
         r"num_input_elements != num_output_elements \(24 != 12\).*\(RESHAPE\) failed to prepare"),
        (_reshape_not_resized, r"Dimension mismatch\. Got 2 but expected 1 for dimension 0 of input 0"),
    ],
    "audio-rate": [
        (_audio_rate, r"Dimension mismatch\. Got 3 but expected 2 for input 0"),
    ],
    "custom-op": [
        (_allocate("custom-op"),
         r"Encountered unresolved custom op: MatrixDeterminant\..*\(MatrixDeterminant\) failed to "
         r"prepare"),
    ],
}
NAIVE_CASES = [(example, i) for example, calls in NAIVE.items() for i in range(len(calls))]


# --------------------------------------------------------------------------------------------
# The manifest


def test_manifest_lists_the_examples_in_order() -> None:
    assert [entry["id"] for entry in GALLERY] == IDS


@pytest.mark.parametrize("example", IDS)
def test_entry_has_the_documented_fields(example: str) -> None:
    entry = BY_ID[example]
    assert FIELDS <= set(entry)
    assert set(entry["expected_kinds"]) <= KINDS
    assert entry["title"] and entry["story"] and entry["fix"] and entry["observed_error"]
    assert entry["observed_errors"][0]["error"] == entry["observed_error"]
    assert type(entry["inputs"]) is type(entry["good_inputs"])
    if isinstance(entry["inputs"], dict):
        assert set(entry["inputs"]) == set(entry["good_inputs"])


@pytest.mark.parametrize("example", IDS)
def test_entry_points_to_existing_files(example: str) -> None:
    entry = BY_ID[example]
    for name in [entry["model"], *input_files(entry, "inputs"), *input_files(entry, "good_inputs")]:
        assert (EXAMPLES / name).is_file(), name


def test_gallery_stays_small() -> None:
    files = [path for path in EXAMPLES.iterdir() if path.is_file()]
    assert sum(path.stat().st_size for path in files) < 1_500_000
    for entry in GALLERY:
        assert (EXAMPLES / entry["model"]).stat().st_size < 300_000, entry["model"]


def test_no_stray_files() -> None:
    referenced = {"gallery.json"}
    for entry in GALLERY:
        referenced |= {entry["model"], *input_files(entry, "inputs"),
                       *input_files(entry, "good_inputs")}
    assert {path.name for path in EXAMPLES.iterdir()} == referenced


@pytest.mark.parametrize("example", IDS)
def test_input_keys_name_real_inputs(example: str) -> None:
    entry = BY_ID[example]
    runner = interpreter(entry)
    if entry["signature"]:
        names = set(runner.get_signature_runner(entry["signature"]).get_input_details())
    else:
        names = {detail["name"] for detail in runner.get_input_details()}
    if isinstance(entry["inputs"], dict):
        assert set(entry["inputs"]) <= names
    else:
        assert set(entry["input_names"]) == names


def test_expected_kinds() -> None:
    assert {entry["id"]: entry["expected_kinds"] for entry in GALLERY} == {
        "image-size": ["shape"],
        "uint8-float-data": ["quantization"],
        "int8-uint8-image": ["dtype", "range"],
        "two-inputs-swapped": ["association"],
        "two-signatures-missing-batch": ["batch"],
        "segmentation-nchw": ["layout"],
        "select-tf-op": [],
        "reshape-breaks-on-resize": ["dynamic"],
        "custom-op": [],
        "audio-rate": ["audio_channels", "sample_rate", "audio_length"],
    }


# --------------------------------------------------------------------------------------------
# The models and their inputs


@pytest.mark.parametrize("example", IDS)
def test_model_loads(example: str) -> None:
    assert interpreter(BY_ID[example]).get_input_details()


def test_image_classifier_packs_labels_like_tflite_support() -> None:
    data = (EXAMPLES / BY_ID["image-size"]["model"]).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["labels.txt"]
        labels = archive.read("labels.txt").decode("utf-8").splitlines()
    assert len(labels) == 10 and all(labels)
    # The appended archive must not stop the interpreter from reading the flatbuffer.
    runner = Interpreter(model_content=data)
    runner.allocate_tensors()
    assert runner.get_output_details()[0]["shape"].tolist() == [1, 10]


def test_quantization_is_what_the_fixes_assume() -> None:
    uint8 = interpreter(BY_ID["uint8-float-data"]).get_input_details()[0]
    int8 = interpreter(BY_ID["int8-uint8-image"]).get_input_details()[0]
    assert uint8["dtype"] is np.uint8 and uint8["quantization"][1] == 0
    assert int8["dtype"] is np.int8 and int8["quantization"][1] == -128
    for detail in (uint8, int8):
        assert detail["quantization"][0] == pytest.approx(1 / 255)


@pytest.mark.parametrize("example", sorted(set(IDS) - UNRUNNABLE))
def test_good_input_runs(example: str) -> None:
    entry = BY_ID[example]
    runner = interpreter(entry)
    if entry["signature"]:
        outputs = runner.get_signature_runner(entry["signature"])(
            **{key: arrays_in(name)[0] for key, name in entry["good_inputs"].items()})
        results = list(outputs.values())
    else:
        runner.allocate_tensors()
        details = runner.get_input_details()
        good = entry["good_inputs"]
        if isinstance(good, list):
            pairs = zip(details, [a for name in good for a in arrays_in(name)], strict=True)
        else:
            by_name = {detail["name"]: detail for detail in details}
            pairs = ((by_name[key], arrays_in(name)[0]) for key, name in good.items())
        for detail, array in pairs:
            runner.set_tensor(detail["index"], array)
        runner.invoke()
        results = [runner.get_tensor(d["index"]) for d in runner.get_output_details()]
    assert results
    for result in results:
        assert np.all(np.isfinite(result.astype(np.float64)))


@pytest.mark.parametrize("example", sorted(UNRUNNABLE))
def test_unsupported_op_fails_at_allocate_whatever_the_input(example: str) -> None:
    entry = BY_ID[example]
    runner = interpreter(entry)
    with pytest.raises(RuntimeError, match=r"(?s)Select TensorFlow op|Flex|custom op"):
        runner.allocate_tensors()
    assert entry["inputs"] == entry["good_inputs"]


@pytest.mark.parametrize(("example", "case"), NAIVE_CASES,
                         ids=[f"{example}-{case}" for example, case in NAIVE_CASES])
def test_broken_input_raises_the_recorded_error(example: str, case: int) -> None:
    call, pattern = NAIVE[example][case]
    recorded = BY_ID[example]["observed_errors"][case]["error"]
    assert re.search(pattern, recorded, re.DOTALL), recorded
    with pytest.raises((ValueError, RuntimeError)) as raised:
        call()
    assert re.search(pattern, str(raised.value), re.DOTALL), str(raised.value)


@pytest.mark.parametrize("example", IDS)
def test_every_recorded_error_is_checked(example: str) -> None:
    assert len(BY_ID[example]["observed_errors"]) == len(NAIVE[example])
