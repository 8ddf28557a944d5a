"""The TFLite Support metadata a model may carry, read without the interpreter or tflite-support.

Models made with TFLite Support's metadata writer (MediaPipe's, the Model Maker's, most of
Kaggle's image classifiers) hold a second flatbuffer, file identifier ``M001``, schema
``metadata_schema.fbs`` of tensorflow/tflite-support, in the buffer that the model's
``metadata`` list names ``TFLITE_METADATA``. It says what each input and output is (an RGB
or grayscale image, audio at a sample rate, bounding boxes, features), how to normalise
inputs (mean and standard deviation), the value range of tensors, and which associated files
(labels, vocabularies) the model packs in the zip appended to it.

``read_metadata(model_bytes)`` reads it in place (copies only the strings and small vectors
that become the records) with ``_flat.Reader``: every offset is checked, the work is bounded
by the metadata's size, and lists whose entries name one table twice are refused. Metadata
that is corrupt or crafted gives a ``ModelMetadata`` whose ``problem`` says so, never an
exception. ``ModelSpec.metadata`` reads it on first use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from ._flat import Reader
from .errors import ModelLoadError

__all__ = [
    "AssociatedFile",
    "AudioProperties",
    "BoundingBoxProperties",
    "Content",
    "ImageProperties",
    "ModelMetadata",
    "ProcessUnit",
    "SubgraphMetadata",
    "TensorGroup",
    "TensorMetadata",
    "read_metadata",
]

METADATA_NAME = "TFLITE_METADATA"
_IDENTIFIER = b"M001"
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U8 = struct.Struct("<B").unpack_from
_I8 = struct.Struct("<b").unpack_from
_F32 = struct.Struct("<f").unpack_from

# Enums of metadata_schema.fbs, by value.
FILE_TYPES = ("UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
              "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY", "SCANN_INDEX_FILE")
COLOR_SPACES = ("UNKNOWN", "RGB", "GRAYSCALE")
BOX_TYPES = ("UNKNOWN", "BOUNDARIES", "UPPER_LEFT", "CENTER")
COORDINATE_TYPES = ("RATIO", "PIXEL")
SCORE_TRANSFORMATIONS = ("IDENTITY", "LOG", "INVERSE_LOGISTIC")
# union ContentProperties and union ProcessUnitOptions: 0 is NONE
CONTENT_KINDS = ("", "feature", "image", "bounding_box", "audio")
PROCESS_UNITS = ("", "NormalizationOptions", "ScoreCalibrationOptions", "ScoreThresholdingOptions",
                 "BertTokenizerOptions", "SentencePieceTokenizerOptions", "RegexTokenizerOptions")
LABEL_FILE_TYPES = ("TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS")


def _enum(names: tuple[str, ...], value: int) -> str:
    return names[value] if 0 <= value < len(names) else f"UNKNOWN_{value}"


@dataclass(frozen=True)
class AssociatedFile:
    """A file the metadata refers to: labels, a vocabulary, a description.

    ``type`` is the schema's name (``TENSOR_AXIS_LABELS``, …). ``packed_size`` is its size in
    the zip appended to the model, or None when the model does not pack a file of that name.
    """

    name: str
    description: str = ""
    type: str = "UNKNOWN"
    locale: str = ""
    version: str = ""
    packed_size: int | None = None

    @property
    def is_labels(self) -> bool:
        return self.type in LABEL_FILE_TYPES


@dataclass(frozen=True)
class ImageProperties:
    color_space: str = "UNKNOWN"  # RGB, GRAYSCALE or UNKNOWN
    default_size: tuple[int, int] | None = None  # (width, height)


@dataclass(frozen=True)
class AudioProperties:
    sample_rate: int = 0
    channels: int = 0


@dataclass(frozen=True)
class BoundingBoxProperties:
    """Which of the last dimension's values are the box (``index``), and how they are written."""

    index: tuple[int, ...] = ()
    type: str = "UNKNOWN"  # BOUNDARIES, UPPER_LEFT, CENTER
    coordinate_type: str = "RATIO"  # RATIO or PIXEL


@dataclass(frozen=True)
class Content:
    """What a tensor holds: ``kind`` is ``image``, ``audio``, ``bounding_box``, ``feature`` or ``""``.

    ``value_range`` is the schema's ValueRange (an index range, e.g. of the classes a
    segmentation mask holds), or None.
    """

    kind: Literal["", "feature", "image", "bounding_box", "audio"] | str = ""
    image: ImageProperties | None = None
    audio: AudioProperties | None = None
    bounding_box: BoundingBoxProperties | None = None
    value_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class ProcessUnit:
    """A step that the metadata says to apply before or after the model.

    ``kind`` is the schema's table name (``NormalizationOptions``, ``ScoreCalibrationOptions``,
    ``ScoreThresholdingOptions``, ``BertTokenizerOptions``, ``SentencePieceTokenizerOptions``,
    ``RegexTokenizerOptions``). ``mean`` and ``std`` are a normalisation's; ``options`` holds
    the other kinds' scalar fields by their schema names; ``files`` their vocabularies.
    """

    kind: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    files: tuple[AssociatedFile, ...] = ()


@dataclass(frozen=True)
class TensorMetadata:
    """What the metadata says about one input or output, in the model's order."""

    name: str = ""
    description: str = ""
    dimension_names: tuple[str, ...] = ()
    content: Content | None = None
    process_units: tuple[ProcessUnit, ...] = ()
    stats_min: tuple[float, ...] = ()
    stats_max: tuple[float, ...] = ()
    associated_files: tuple[AssociatedFile, ...] = ()

    @property
    def normalization(self) -> ProcessUnit | None:
        """The first NormalizationOptions among the process units: ``(x - mean) / std``."""
        return next((p for p in self.process_units if p.kind == "NormalizationOptions"), None)

    def normalized_range(self, lo: float, hi: float) -> tuple[float, float] | None:
        """Where the normalisation sends data in [lo, hi] (the widest over the channels)."""
        n = self.normalization
        if n is None or not n.mean or not n.std or any(s == 0 for s in n.std):
            return None
        width = max(len(n.mean), len(n.std))
        means = n.mean * width if len(n.mean) == 1 else n.mean
        stds = n.std * width if len(n.std) == 1 else n.std
        ends = [(x - m) / s for m, s in zip(means, stds) for x in (lo, hi)]
        return min(ends), max(ends)

    def describe_normalization(self) -> str:
        """A sentence on the normalisation, or ``""`` when the metadata gives none."""
        n = self.normalization
        if n is None:
            return ""
        mean = ", ".join(f"{m:g}" for m in n.mean)
        std = ", ".join(f"{s:g}" for s in n.std)
        text = f"The metadata says to normalise this input as (x − mean) / std with mean [{mean}] and std [{std}]"
        mapped = self.normalized_range(0, 255)
        if mapped is not None:
            text += f": data in [0, 255] becomes [{mapped[0]:.4g}, {mapped[1]:.4g}]"
        if self.stats_min and self.stats_max:
            text += f"; the tensor's stated range is [{min(self.stats_min):g}, {max(self.stats_max):g}]"
        return text + "."


@dataclass(frozen=True)
class TensorGroup:
    name: str
    tensor_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubgraphMetadata:
    """The metadata of one subgraph: its inputs and outputs in order, files, process units.

    ``custom_metadata`` holds the names and sizes of the custom metadata entries (their bytes
    are an application's own; they are not read).
    """

    name: str = ""
    description: str = ""
    inputs: tuple[TensorMetadata, ...] = ()
    outputs: tuple[TensorMetadata, ...] = ()
    associated_files: tuple[AssociatedFile, ...] = ()
    input_process_units: tuple[ProcessUnit, ...] = ()
    output_process_units: tuple[ProcessUnit, ...] = ()
    input_groups: tuple[TensorGroup, ...] = ()
    output_groups: tuple[TensorGroup, ...] = ()
    custom_metadata: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ModelMetadata:
    """A model's TFLite Support metadata. ``problem`` is a sentence when it could not be read
    (in part or at all); the fields hold what was read before that."""

    name: str = ""
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    min_parser_version: str = ""
    subgraphs: tuple[SubgraphMetadata, ...] = ()
    associated_files: tuple[AssociatedFile, ...] = ()
    problem: str = ""

    @property
    def main(self) -> SubgraphMetadata | None:
        return self.subgraphs[0] if self.subgraphs else None

    def files(self) -> tuple[tuple[str, AssociatedFile], ...]:
        """Every associated file, with where the metadata attaches it (``"model"``,
        ``"subgraph 0"``, ``"input 0 'image'"``, ``"output 1 'scores'"``, …)."""
        out = [("model", f) for f in self.associated_files]
        for s, sub in enumerate(self.subgraphs):
            out += [(f"subgraph {s}", f) for f in sub.associated_files]
            for side, tensors in (("input", sub.inputs), ("output", sub.outputs)):
                for i, t in enumerate(tensors):
                    where = f"{side} {i}" + (f" {t.name!r}" if t.name else "")
                    out += [(where, f) for f in t.associated_files]
                    out += [(where, f) for p in t.process_units for f in p.files]
            for p in (*sub.input_process_units, *sub.output_process_units):
                out += [(f"subgraph {s}", f) for f in p.files]
        return tuple(out)

    def label_files(self) -> tuple[AssociatedFile, ...]:
        """The files of label types (TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS), each once."""
        seen: dict[str, AssociatedFile] = {}
        for _, f in self.files():
            if f.is_labels and f.name not in seen:
                seen[f.name] = f
        return tuple(seen.values())


# -- reading -------------------------------------------------------------------------------------

# Field indices ((slot - 4) // 2), from metadata_schema.fbs (tflite-support) in field order.
_MM_NAME, _MM_DESCRIPTION, _MM_VERSION, _MM_SUBGRAPHS, _MM_AUTHOR, _MM_LICENSE, _MM_FILES, _MM_MIN_PARSER = range(8)
(_SG_NAME, _SG_DESCRIPTION, _SG_INPUTS, _SG_OUTPUTS, _SG_FILES, _SG_IN_UNITS, _SG_OUT_UNITS, _SG_IN_GROUPS,
 _SG_OUT_GROUPS, _SG_CUSTOM) = range(10)
_TM_NAME, _TM_DESCRIPTION, _TM_DIMENSIONS, _TM_CONTENT, _TM_UNITS, _TM_STATS, _TM_FILES = range(7)
_AF_NAME, _AF_DESCRIPTION, _AF_TYPE, _AF_LOCALE, _AF_VERSION = range(5)
_C_PROPERTIES_TYPE, _C_PROPERTIES, _C_RANGE = range(3)
_PU_OPTIONS_TYPE, _PU_OPTIONS = range(2)
# TFLite schema: Model.metadata / Model.buffers; Metadata.name, .buffer; Buffer.data, .offset, .size
_M_BUFFERS, _M_METADATA = 4, 6
_MD_NAME, _MD_BUFFER = 0, 1
_B_DATA, _B_OFFSET, _B_SIZE = 0, 1, 2

_CORRUPT = (IndexError, struct.error, ValueError, TypeError, OverflowError)


def read_metadata(model_bytes: bytes | bytearray | memoryview) -> ModelMetadata | None:
    """The model's TFLite Support metadata, or None when it carries none.

    Reads in place (copies only strings and small vectors). Never raises for the metadata's
    own content: a corrupt or crafted one gives a record whose ``problem`` says so. Raises
    ``ModelLoadError`` only when ``model_bytes`` is not a TFLite model.
    """
    from .inspection import _check_header, _packed_files, as_buffer

    data = as_buffer(model_bytes)
    _check_header(data, "the model")
    try:
        where = _locate(Reader(data))
    except ModelLoadError as exc:
        return ModelMetadata(problem=str(exc))
    except _CORRUPT as exc:
        return ModelMetadata(problem=f"The model's list of metadata is corrupt ({type(exc).__name__} while reading it).")
    if where is None:
        return None
    start, size = where
    view = memoryview(data)[start : start + size]
    if size < 8 or bytes(view[4:8]) != _IDENTIFIER:
        return ModelMetadata(
            problem=(
                f"The model's {METADATA_NAME} buffer ({size:,} bytes) is not TFLite Support metadata "
                f"(it lacks the '{_IDENTIFIER.decode()}' identifier), so it is not read."
            )
        )
    packed = {f.name: f.size for f in _packed_files(data)}
    reader = _MetadataReader(Reader(view, what="The model's metadata"), packed)
    return reader.read()


def _locate(r: Reader) -> tuple[int, int] | None:
    """(start, size) of the TFLITE_METADATA buffer's bytes in the model, or None."""
    root = r.root()
    sl = r.slots(root)
    p = r.target(root, sl[_M_METADATA])
    if not p:
        return None
    for m in r.tables(p + 4, r.u32_at(p), "metadata list"):
        ms = r.slots(m)
        if r.text(m, ms[_MD_NAME]) != METADATA_NAME:
            continue
        index = r.u32_at(m + ms[_MD_BUFFER]) if ms[_MD_BUFFER] else 0
        b = r.target(root, sl[_M_BUFFERS])
        n = r.u32_at(b) if b else 0
        if not 0 < index < n:
            raise ModelLoadError(
                f"The model's {METADATA_NAME} entry names buffer {index}, which the model lacks; the file is corrupt."
            )
        buf = r.element(b + 4, n, index)
        bs = r.slots(buf)
        if bs[_B_DATA]:
            v = r.target(buf, bs[_B_DATA])
            size = r.u32_at(v)
            r._at(v + 4, size)
            return v + 4, size
        if bs[_B_OFFSET] and bs[_B_SIZE]:
            # models past 2 GB keep buffers after the flatbuffer: offset from the file's start
            start, size = _U64(r.buf, buf + bs[_B_OFFSET])[0], _U64(r.buf, buf + bs[_B_SIZE])[0]
            r._at(start, size)
            return start, size
        return None
    return None


class _MetadataReader:
    """Builds the records from the metadata flatbuffer; each method reads one kind of table."""

    def __init__(self, r: Reader, packed: dict[str, int]) -> None:
        self.r = r
        self.packed = packed

    def read(self) -> ModelMetadata:
        r = self.r
        got: dict[str, Any] = {}
        try:
            root = r.root()
            s = r.slots(root)
            for key, i in (("name", _MM_NAME), ("description", _MM_DESCRIPTION), ("version", _MM_VERSION),
                           ("author", _MM_AUTHOR), ("license", _MM_LICENSE), ("min_parser_version", _MM_MIN_PARSER)):
                got[key] = r.text(root, s[i])
            got["associated_files"] = self.files(root, s[_MM_FILES], "model's associated files")
            got["subgraphs"] = tuple(
                self.subgraph(t, k) for k, t in enumerate(self.tables(root, s[_MM_SUBGRAPHS], "subgraph list"))
            )
        except ModelLoadError as exc:
            return ModelMetadata(**got, problem=str(exc))
        except _CORRUPT as exc:
            return ModelMetadata(
                **got,
                problem=(
                    f"The model's metadata is corrupt or truncated ({type(exc).__name__} while reading it); "
                    "what came before is shown."
                ),
            )
        return ModelMetadata(**got)

    def tables(self, table: int, offset: int, what: str) -> list[int]:
        p = self.r.target(table, offset)
        return self.r.tables(p + 4, self.r.u32_at(p), what) if p else []

    def strings(self, table: int, offset: int, what: str) -> tuple[str, ...]:
        r = self.r
        p = r.target(table, offset)
        if not p:
            return ()
        n = r.u32_at(p)
        r._at(p + 4, 4 * n)
        r.charge(4 * n)
        out = []
        for i in range(n):
            q = p + 4 + 4 * i
            s = q + r.u32_at(q)
            k = r.u32_at(s)
            r._at(s + 4, k)
            r.charge(k)
            out.append(str(r.buf[s + 4 : s + 4 + k], "utf-8", "replace"))
        return tuple(out)

    def files(self, table: int, offset: int, what: str) -> tuple[AssociatedFile, ...]:
        r = self.r
        out = []
        for f in self.tables(table, offset, what):
            s = r.slots(f)
            name = r.text(f, s[_AF_NAME])
            out.append(
                AssociatedFile(
                    name=name,
                    description=r.text(f, s[_AF_DESCRIPTION]),
                    type=_enum(FILE_TYPES, _I8(r.buf, f + s[_AF_TYPE])[0] if s[_AF_TYPE] else 0),
                    locale=r.text(f, s[_AF_LOCALE]),
                    version=r.text(f, s[_AF_VERSION]),
                    packed_size=self.packed.get(name),
                )
            )
        return tuple(out)

    def subgraph(self, t: int, k: int) -> SubgraphMetadata:
        r = self.r
        s = r.slots(t)
        custom = []
        for c in self.tables(t, s[_SG_CUSTOM], f"custom metadata list of subgraph {k}"):
            cs = r.slots(c)
            data = r.target(c, cs[1])
            custom.append((r.text(c, cs[0]), r.u32_at(data) if data else 0))
        return SubgraphMetadata(
            name=r.text(t, s[_SG_NAME]),
            description=r.text(t, s[_SG_DESCRIPTION]),
            inputs=tuple(self.tensor(x) for x in self.tables(t, s[_SG_INPUTS], f"input list of subgraph {k}")),
            outputs=tuple(self.tensor(x) for x in self.tables(t, s[_SG_OUTPUTS], f"output list of subgraph {k}")),
            associated_files=self.files(t, s[_SG_FILES], f"associated files of subgraph {k}"),
            input_process_units=self.units(t, s[_SG_IN_UNITS]),
            output_process_units=self.units(t, s[_SG_OUT_UNITS]),
            input_groups=self.groups(t, s[_SG_IN_GROUPS]),
            output_groups=self.groups(t, s[_SG_OUT_GROUPS]),
            custom_metadata=tuple(custom),
        )

    def groups(self, table: int, offset: int) -> tuple[TensorGroup, ...]:
        r = self.r
        out = []
        for g in self.tables(table, offset, "tensor groups"):
            s = r.slots(g)
            out.append(TensorGroup(name=r.text(g, s[0]), tensor_names=self.strings(g, s[1], "tensor names")))
        return tuple(out)

    def tensor(self, t: int) -> TensorMetadata:
        r = self.r
        s = r.slots(t)
        stats = r.target(t, s[_TM_STATS])
        smax = smin = ()
        if stats:
            ss = r.slots(stats)
            smax, smin = r.vec(stats, ss[0], "f", 4), r.vec(stats, ss[1], "f", 4)
        return TensorMetadata(
            name=r.text(t, s[_TM_NAME]),
            description=r.text(t, s[_TM_DESCRIPTION]),
            dimension_names=self.strings(t, s[_TM_DIMENSIONS], "dimension names"),
            content=self.content(r.target(t, s[_TM_CONTENT])),
            process_units=self.units(t, s[_TM_UNITS]),
            stats_min=smin,
            stats_max=smax,
            associated_files=self.files(t, s[_TM_FILES], "associated files of a tensor"),
        )

    def content(self, c: int) -> Content | None:
        if not c:
            return None
        r = self.r
        s = r.slots(c)
        code = _U8(r.buf, c + s[_C_PROPERTIES_TYPE])[0] if s[_C_PROPERTIES_TYPE] else 0
        kind = _enum(CONTENT_KINDS, code) if code else ""
        p = r.target(c, s[_C_PROPERTIES])
        image = audio = box = None
        if p and kind == "image":
            ps = r.slots(p)
            size = r.target(p, ps[1])
            default = None
            if size:
                zs = r.slots(size)
                default = (r.u32(size, 4) if zs[0] else 0, r.u32(size, 6) if zs[1] else 0)
            image = ImageProperties(
                color_space=_enum(COLOR_SPACES, _I8(r.buf, p + ps[0])[0] if ps[0] else 0), default_size=default
            )
        elif p and kind == "audio":
            ps = r.slots(p)
            audio = AudioProperties(
                sample_rate=r.u32_at(p + ps[0]) if ps[0] else 0, channels=r.u32_at(p + ps[1]) if ps[1] else 0
            )
        elif p and kind == "bounding_box":
            ps = r.slots(p)
            box = BoundingBoxProperties(
                index=r.vec(p, ps[0], "I", 4),
                type=_enum(BOX_TYPES, _I8(r.buf, p + ps[1])[0] if ps[1] else 0),
                coordinate_type=_enum(COORDINATE_TYPES, _I8(r.buf, p + ps[2])[0] if ps[2] else 0),
            )
        value_range = None
        v = r.target(c, s[_C_RANGE])
        if v:
            vs = r.slots(v)
            value_range = (_I32(r.buf, v + vs[0])[0] if vs[0] else 0, _I32(r.buf, v + vs[1])[0] if vs[1] else 0)
        return Content(kind=kind, image=image, audio=audio, bounding_box=box, value_range=value_range)

    def units(self, table: int, offset: int) -> tuple[ProcessUnit, ...]:
        r = self.r
        out = []
        for u in self.tables(table, offset, "process units"):
            s = r.slots(u)
            code = _U8(r.buf, u + s[_PU_OPTIONS_TYPE])[0] if s[_PU_OPTIONS_TYPE] else 0
            kind = _enum(PROCESS_UNITS, code) if code else ""
            o = r.target(u, s[_PU_OPTIONS])
            if not o or not kind:
                out.append(ProcessUnit(kind=kind))
                continue
            os_ = r.slots(o)
            if kind == "NormalizationOptions":
                out.append(ProcessUnit(kind, mean=r.vec(o, os_[0], "f", 4), std=r.vec(o, os_[1], "f", 4)))
            elif kind == "ScoreCalibrationOptions":
                out.append(ProcessUnit(kind, options={
                    "score_transformation": _enum(SCORE_TRANSFORMATIONS, _I8(r.buf, o + os_[0])[0] if os_[0] else 0),
                    "default_score": _F32(r.buf, o + os_[1])[0] if os_[1] else 0.0,
                }))
            elif kind == "ScoreThresholdingOptions":
                out.append(ProcessUnit(kind, options={"global_score_threshold": _F32(r.buf, o + os_[0])[0] if os_[0] else 0.0}))
            elif kind == "BertTokenizerOptions":
                out.append(ProcessUnit(kind, files=self.files(o, os_[0], "vocabulary files")))
            elif kind == "SentencePieceTokenizerOptions":
                files = self.files(o, os_[0], "sentencepiece models") + self.files(o, os_[1], "vocabulary files")
                out.append(ProcessUnit(kind, files=files))
            else:  # RegexTokenizerOptions
                out.append(ProcessUnit(kind, options={"delim_regex_pattern": r.text(o, os_[0])},
                                       files=self.files(o, os_[1], "vocabulary files")))
        return tuple(out)
