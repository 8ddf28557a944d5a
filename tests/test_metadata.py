"""read_metadata reads TFLite Support metadata (real mediapipe models and models written here),
and turns corrupt or crafted metadata into a sentence within bounded work."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

import crafted
from lite_debug.errors import ModelLoadError
from lite_debug.gallery import examples
from lite_debug.inspection import inspect_model
from lite_debug.metadata import (
    AssociatedFile,
    AudioProperties,
    BoundingBoxProperties,
    ImageProperties,
    TensorGroup,
    read_metadata,
)
from test_inspection import ADD_FLOAT, REAL, need_real_models, python_calls

# -- writing metadata the way TFLite Support's writer does (field indices of metadata_schema.fbs)

AXIS_LABELS, VALUE_LABELS, SCORE_CALIBRATION, VOCABULARY, DESCRIPTIONS = 2, 3, 4, 5, 1


def afile(name: str, kind: int, description: str = "", locale: str = "") -> list:
    fields = [(0, "str", name), (1, "str", description), (2, "i8", kind)]
    return fields + ([(3, "str", locale)] if locale else [])


def tensor(name: str, description: str = "", *, content=None, units=(), stats=None, files=(), dims=()) -> list:
    fields = [(0, "str", name), (1, "str", description)]
    if dims:
        fields.append((2, "strings", list(dims)))
    if content:
        fields.append((3, "table", content))
    if units:
        fields.append((4, "tables", list(units)))
    if stats:
        lo, hi = stats
        fields.append((5, "table", [(0, "floats", hi), (1, "floats", lo)]))
    if files:
        fields.append((6, "tables", list(files)))
    return fields


IMAGE_RGB_224 = [(0, "u8", 2), (1, "table", [(0, "i8", 1), (1, "table", [(0, "u32", 224), (1, "u32", 160)])])]
FEATURE = [(0, "u8", 1), (1, "table", [])]
AUDIO = [(0, "u8", 4), (1, "table", [(0, "u32", 16000), (1, "u32", 2)])]
BOXES = [(0, "u8", 3), (1, "table", [(0, "u32s", [1, 0, 3, 2]), (1, "i8", 1), (2, "i8", 1)]), (2, "table", [(0, "i32", 2), (1, "i32", 5)])]


def normalization(mean, std) -> list:
    return [(0, "u8", 1), (1, "table", [(0, "floats", list(mean)), (1, "floats", list(std))])]


def subgraph(inputs, outputs, **more) -> list:
    fields = [(0, "str", more.get("name", "main")), (1, "str", more.get("description", "")),
              (2, "tables", inputs), (3, "tables", outputs)]
    for index, key in ((4, "files"), (5, "in_units"), (6, "out_units"), (7, "in_groups"), (8, "out_groups"), (9, "custom")):
        if more.get(key):
            fields.append((index, "tables", more[key]))
    return fields


def model_metadata(subgraphs, **more) -> bytes:
    fields = [(0, "str", more.get("name", "")), (1, "str", more.get("description", "")), (2, "str", more.get("version", "")),
              (3, "tables", subgraphs), (4, "str", more.get("author", "")), (5, "str", more.get("license", "")),
              (7, "str", more.get("min_parser_version", "1.0.0"))]
    if more.get("files"):
        fields.append((6, "tables", more["files"]))
    return crafted.flatbuffer(fields)


def classifier() -> bytes:
    return next(e for e in examples() if e.id == "image-size").model_bytes


DESCRIPTION = "Classifies **scenes**; <b>not</b> HTML\n[link](javascript:alert(1))"


def full_metadata() -> bytes:
    image = tensor(
        "image", "The photo, RGB.", content=IMAGE_RGB_224, units=[normalization([127.5], [127.5])],
        stats=([-1.0], [1.0]), dims=("batch", "height", "width", "channels"),
    )
    scores = tensor(
        "probability", "One score per class.", content=FEATURE, stats=([0.0], [1.0]),
        files=[afile("labels.txt", AXIS_LABELS, "Labels of the classes.", locale="en"), afile("labels_fr.txt", AXIS_LABELS, locale="fr")],
        units=[[(0, "u8", 2), (1, "table", [(0, "i8", 2), (1, "f32", 0.25)])]],
    )
    boxes = tensor("boxes", content=BOXES)
    sound = tensor("sound", content=AUDIO)
    main = subgraph(
        [image, sound], [scores, boxes], description="The only subgraph.",
        files=[afile("README.txt", DESCRIPTIONS)],
        in_units=[[(0, "u8", 6), (1, "table", [(0, "str", r"\s+"), (1, "tables", [afile("vocab.txt", VOCABULARY)])])]],
        out_units=[[(0, "u8", 3), (1, "table", [(0, "f32", 0.5)])]],
        out_groups=[[(0, "str", "result"), (1, "strings", ["probability", "boxes"])]],
        custom=[[(0, "str", "EXTRA"), (1, "bytes", b"12345678")]],
    )
    return model_metadata(
        [main], name="Scene classifier", description=DESCRIPTION, version="v2", author="lite-debug tests",
        license="Apache-2.0", files=[afile("model_card.md", DESCRIPTIONS)],
    )


@pytest.fixture(scope="module")
def with_metadata() -> bytes:
    return crafted.add_metadata(classifier(), full_metadata(), {"labels.txt": b"alpine meadow\nbeach\n", "vocab.txt": b"a\nb\n"})


# -- reading -----------------------------------------------------------------------------------------


def test_every_field_written_reads_back(with_metadata):
    md = read_metadata(with_metadata)
    assert md.problem == ""
    assert (md.name, md.description, md.version, md.author, md.license) == (
        "Scene classifier", DESCRIPTION, "v2", "lite-debug tests", "Apache-2.0")
    assert md.min_parser_version == "1.0.0"
    assert [f.name for f in md.associated_files] == ["model_card.md"]
    sub = md.main
    assert (sub.name, sub.description) == ("main", "The only subgraph.")
    image, sound = sub.inputs
    assert image.name == "image" and image.description == "The photo, RGB."
    assert image.dimension_names == ("batch", "height", "width", "channels")
    assert image.content.kind == "image"
    assert image.content.image == ImageProperties(color_space="RGB", default_size=(224, 160))
    assert image.normalization.mean == (127.5,) and image.normalization.std == (127.5,)
    assert (image.stats_min, image.stats_max) == ((-1.0,), (1.0,))
    assert image.normalized_range(0, 255) == (-1.0, 1.0)
    assert "mean [127.5] and std [127.5]" in image.describe_normalization()
    assert sound.content.kind == "audio" and sound.content.audio == AudioProperties(sample_rate=16000, channels=2)
    scores, boxes = sub.outputs
    assert scores.content.kind == "feature" and scores.normalization is None and scores.describe_normalization() == ""
    assert scores.associated_files == (
        AssociatedFile("labels.txt", "Labels of the classes.", "TENSOR_AXIS_LABELS", "en", "", packed_size=20),
        AssociatedFile("labels_fr.txt", "", "TENSOR_AXIS_LABELS", "fr", "", packed_size=None),
    )
    (calibration,) = scores.process_units
    assert calibration.kind == "ScoreCalibrationOptions"
    assert calibration.options == {"score_transformation": "INVERSE_LOGISTIC", "default_score": 0.25}
    assert boxes.content.bounding_box == BoundingBoxProperties(index=(1, 0, 3, 2), type="BOUNDARIES", coordinate_type="PIXEL")
    assert boxes.content.value_range == (2, 5)
    (regex,) = sub.input_process_units
    assert regex.kind == "RegexTokenizerOptions" and regex.options == {"delim_regex_pattern": r"\s+"}
    assert regex.files[0].name == "vocab.txt" and regex.files[0].type == "VOCABULARY" and regex.files[0].packed_size == 4
    assert sub.output_process_units[0].options == {"global_score_threshold": 0.5}
    assert sub.output_groups == (TensorGroup("result", ("probability", "boxes")),) and sub.input_groups == ()
    assert sub.custom_metadata == (("EXTRA", 8),)
    assert [f.name for f in sub.associated_files] == ["README.txt"]
    assert [f.name for f in md.label_files()] == ["labels.txt", "labels_fr.txt"]
    where = {f.name: w for w, f in md.files()}
    assert where == {"model_card.md": "model", "README.txt": "subgraph 0", "labels.txt": "output 0 'probability'",
                     "labels_fr.txt": "output 0 'probability'", "vocab.txt": "subgraph 0"}


def test_the_spec_reads_metadata_on_first_use(with_metadata):
    spec = inspect_model(with_metadata)
    assert "_details" not in spec.__dict__  # nothing past the inputs and outputs read yet
    assert spec.metadata == read_metadata(with_metadata)
    assert "TFLITE_METADATA" in spec.metadata_names
    assert {f.name for f in spec.packed_files} == {"labels.txt", "vocab.txt"}


def test_models_without_metadata():
    for ex in examples():
        assert read_metadata(ex.model_bytes) is None, ex.id
        assert inspect_model(ex.model_bytes).metadata is None
    with pytest.raises(ModelLoadError):
        read_metadata(b"not a model at all")


def test_the_real_mediapipe_models():
    need_real_models()
    face = read_metadata((REAL / "face_detection_short_range.tflite").read_bytes())
    assert face.name == "Short Range Face Detection" and face.problem == ""
    (image,) = face.main.inputs
    assert image.content.image.color_space == "RGB"
    assert image.normalization.mean == (127.5,) and image.normalization.std == (127.5,)
    assert image.normalized_range(0, 255) == (-1.0, 1.0) and (image.stats_min, image.stats_max) == ((-1.0,), (1.0,))
    assert [o.name for o in face.main.outputs] == ["raw boxes/keypoints", "scores"]

    hand = read_metadata((REAL / "hand_landmark_lite.tflite").read_bytes())
    (image,) = hand.main.inputs
    assert image.normalized_range(0, 255) == (0.0, 1.0) and image.normalization.std == (255.0, 255.0, 255.0)
    (labels,) = hand.label_files()
    assert (labels.name, labels.type, labels.packed_size) == ("handedness.txt", "TENSOR_AXIS_LABELS", 11)
    assert hand.main.output_groups[0].tensor_names == ("landmarks", "presense score", "handedness", "world landmarks")
    assert hand.min_parser_version == "1.2.0"

    selfie = read_metadata((REAL / "selfie_segmentation.tflite").read_bytes())
    mask = selfie.main.outputs[0]
    assert mask.content.image.color_space == "GRAYSCALE" and mask.content.value_range == (1, 2)
    assert selfie.label_files()[0].name == "labels.txt" and selfie.main.custom_metadata == (("SEGMENTER_METADATA", 16),)

    mesh = read_metadata((REAL / "face_landmark_with_attention.tflite").read_bytes())
    assert mesh.main.inputs[0].normalized_range(0, 255) == (0.0, 1.0) and len(mesh.main.outputs) == 7


# -- hostile metadata: a sentence, bounded work -------------------------------------------------------


def test_a_buffer_without_the_m001_identifier_is_not_read():
    data = crafted.add_metadata(classifier(), crafted.flatbuffer([(0, "str", "x")], identifier=b"XXXX"))
    md = read_metadata(data)
    assert "lacks the 'M001' identifier" in md.problem and md.name == ""


def test_a_metadata_entry_naming_a_missing_buffer():
    model = crafted.unpack_model(crafted.add_metadata(classifier(), full_metadata()))
    next(m for m in model.metadata if m.name == b"TFLITE_METADATA").buffer = 10_000
    md = read_metadata(crafted.pack_model(model))
    assert "names buffer 10000, which the model lacks" in md.problem
    assert inspect_model(crafted.pack_model(model)).problem == ""  # the graph itself is fine


def test_a_tensor_list_naming_one_table_100000_times():
    # The metadata's list of outputs points 100,000 times at one TensorMetadata table: refused.
    meta = bytearray(model_metadata([subgraph([tensor("image")], [tensor("out")])]))
    sub_field = crafted.field_position(bytes(meta), [("vector", 10, 0), ("field", 10, 0)])
    aliased = crafted.alias_vector(bytes(meta), sub_field, 100_000, crafted.raw_table([(4, "str", "out")]))
    data = crafted.add_metadata(classifier(), aliased)
    calls = python_calls(lambda: read_metadata(data))
    md = read_metadata(data)
    assert "output list of subgraph 0 has 100,000 entries naming only 1 distinct table" in md.problem
    assert md.name == "" and calls < 3_000


def test_names_sharing_one_long_string_stop_at_the_budget():
    # 2,000 dimension names that all point at one 100 KB string: 200 MB of reads for a 110 KB buffer.
    meta = model_metadata([subgraph([tensor("image", dims=["d"] * 2000)], [])])
    dims = crafted.field_position(meta, [("vector", 10, 0), ("vector", 8, 0), ("field", 8, 0)])
    start = dims + struct.unpack_from("<I", meta, dims)[0]
    fields = [start + 4 + 4 * i for i in range(2000)]
    shared = crafted.share_vector(meta, fields, np.zeros(100_000, np.uint8))  # a vector of bytes reads as a string
    data = crafted.add_metadata(classifier(), shared)
    calls = python_calls(lambda: read_metadata(data))
    md = read_metadata(data)
    assert "refers to the same bytes again and again" in md.problem
    assert calls < 20_000


def test_corrupt_metadata_is_a_sentence_never_an_exception(with_metadata):
    meta = full_metadata()
    rng = random.Random(5)
    problems = 0
    for _ in range(400):
        mutated = bytearray(meta)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(8, len(mutated))] = rng.randrange(256)
        if rng.random() < 0.2:
            mutated = mutated[: rng.randrange(8, len(mutated))]
        md = read_metadata(crafted.add_metadata(classifier(), bytes(mutated)))
        assert md is not None
        if md.problem:
            problems += 1
            assert md.problem.endswith("."), md.problem
        md.files(), md.label_files()
        for sub in md.subgraphs:
            for t in (*sub.inputs, *sub.outputs):
                t.describe_normalization()
    assert problems > 50  # the mutations did reach the reader


def test_the_trailing_zip_does_not_confuse_the_metadata():
    # packed files are matched by name; a model with files but no metadata has None
    data = ADD_FLOAT.read_bytes()
    assert read_metadata(data) is None
