"""Typed, frozen records that cross lite-debug's boundaries.

The interpreter describes tensors as loosely typed dicts; lite-debug converts them once, here,
into records that the diagnosis, the fixes, the worker, the command line and the dashboard all
share. Records hold numpy arrays where data is involved; those compare by identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Mapping

if TYPE_CHECKING:  # numpy is imported where it is used: the dashboard's first page needs none of it
    import numpy as np

    from .graph import Graph
    from .metadata import ModelMetadata

__all__ = [
    "AudioInfo",
    "Choice",
    "Explanation",
    "Feed",
    "Fix",
    "FixKind",
    "Mismatch",
    "MismatchKind",
    "ModelCheck",
    "ModelDetails",
    "ModelSpec",
    "OpInfo",
    "OutputTensor",
    "PackedFile",
    "Quantization",
    "RunResult",
    "SignatureSpec",
    "Step",
    "TensorSpec",
]

Severity = Literal["error", "warning"]

# Every kind of fix (one entry each in fixes.REGISTRY, which a test checks against this list).
FixKind = Literal[
    "reassign", "generate", "to_rgb", "add_channel", "remove_batch", "add_batch", "take_sample",
    "nchw_to_nhwc", "nhwc_to_nchw", "reshape", "drop_alpha", "to_gray", "swap_rgb_bgr", "resize_image",
    "resize_input", "nan_to_num", "normalize", "cast", "quantize", "dequantize",
    # audio (lite_debug.audio_diagnosis): channels, rate, length, then the int16 scale
    "to_mono", "take_channel", "resample", "fit_length", "split_windows", "pcm_to_float",
]
# Every kind of mismatch the diagnosis reports. The last four come from loading the model in a
# worker (ops the runtime lacks, a kernel's Prepare, a delegate, anything else that stops it).
MismatchKind = Literal[
    "association", "missing", "batch", "rank", "layout", "channels", "shape", "dynamic", "dtype",
    "quantization", "range", "nan", "extra", "unsupported_op", "prepare", "delegate", "load",
    # audio inputs fed a recording (lite_debug.audio_diagnosis)
    "audio_channels", "sample_rate", "audio_length", "audio_range",
]

# Custom ops the default XNNPACK delegate implements (MediaPipe's), so models using them run.
XNNPACK_CUSTOM_OPS = frozenset({"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D"})
RunStatus = Literal["ok", "error", "crashed", "timeout", "skipped", "protocol"]


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``.

    Per-tensor quantization has one scale and one zero point; per-channel quantization has
    one of each per slice along ``quantized_dimension``.
    """

    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0

    @property
    def is_quantized(self) -> bool:
        return bool(self.scale) and any(s != 0.0 for s in self.scale)

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    def describe(self) -> str:
        """A compact human form: ``scale 0.0039, zero point -128`` or a per-channel summary."""
        if not self.is_quantized:
            return "not quantized"
        if not self.per_channel:
            return f"scale {self.scale[0]:.6g}, zero point {self.zero_point[0] if self.zero_point else 0}"
        return (
            f"per-channel on dimension {self.quantized_dimension}: {len(self.scale)} scales "
            f"{min(self.scale):.3g}…{max(self.scale):.3g}"
        )


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model (or of one of its signatures)."""

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    quantization: Quantization = field(default_factory=Quantization)
    tensor_name: str = ""

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def dynamic_dims(self) -> tuple[int, ...]:
        """Dimensions that the model lets the caller resize (``-1`` in the signature)."""
        return tuple(i for i, d in enumerate(self.shape_signature) if d == -1)

    @property
    def is_dynamic(self) -> bool:
        return bool(self.dynamic_dims)

    @property
    def numpy_dtype(self) -> np.dtype | None:
        """The numpy dtype, or None for types numpy lacks (string, resource, bfloat16, …)."""
        import numpy as np

        try:
            dt = np.dtype(self.dtype)
        except TypeError:
            return None
        return dt if dt.kind in "biufc" else None

    def shape_text(self, signature: bool = False) -> str:
        dims = self.shape_signature if signature else self.shape
        return "[" + ", ".join("?" if d == -1 else str(d) for d in dims) + "]"


@dataclass(frozen=True)
class SignatureSpec:
    """A named entry point of a model, with its inputs and outputs by signature name."""

    key: str
    subgraph_index: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class OpInfo:
    """An operator used by the model, how often, and whether this runtime can run it."""

    name: str
    kind: Literal["builtin", "custom", "flex"]
    count: int
    version: int = 1

    @property
    def note(self) -> str:
        if self.kind == "flex":
            return (
                f"{self.name} is a Select TensorFlow op: it runs only in an interpreter linked "
                "with the Flex delegate; ai-edge-litert has none, so allocating the model fails."
            )
        if self.kind == "custom" and self.name in XNNPACK_CUSTOM_OPS:
            return (
                f"{self.name} is a MediaPipe custom op that the default XNNPACK delegate implements: it runs "
                "here, but not in an interpreter built without the default delegates."
            )
        if self.kind == "custom":
            return (
                f"{self.name} is a custom op: the interpreter needs a registration or a delegate "
                "that provides it, or allocating the model fails."
            )
        return ""


@dataclass(frozen=True)
class PackedFile:
    """A file packed into the model, such as a labels list in a metadata zip."""

    name: str
    size: int


@dataclass(frozen=True)
class ModelDetails:
    """What takes a pass over the whole model to know, so ``ModelSpec`` reads it only when asked.

    ``problem`` is a sentence when those parts of the file turned out to be corrupt. ``graph``
    is the whole graph (``lite_debug.graph``), None when it could not be read; ``metadata``
    the TFLite Support metadata (``lite_debug.metadata``), None when the model has none.
    """

    ops: tuple[OpInfo, ...] = ()
    packed_files: tuple[PackedFile, ...] = ()
    metadata_names: tuple[str, ...] = ()
    activation_bytes: int = 0
    sha256: str = ""
    problem: str = ""
    graph: Graph | None = field(default=None, compare=False, repr=False)
    metadata: ModelMetadata | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """Everything lite-debug reads from a model file without running it.

    Inputs, outputs and signatures are read at once; the operator inventory, packed files,
    memory estimate and hash come from ``details``, which may be a function called (once) on
    first use: inspecting a 100 MB model then costs what reading its inputs costs.
    """

    size: int
    schema_version: int
    description: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    signatures: tuple[SignatureSpec, ...] = ()
    subgraph_count: int = 1
    tensor_count: int = 0
    details: Any = field(default_factory=ModelDetails, repr=False)

    @cached_property
    def _details(self) -> ModelDetails:
        d = self.details
        return d() if callable(d) else d

    @property
    def ops(self) -> tuple[OpInfo, ...]:
        return self._details.ops

    @property
    def packed_files(self) -> tuple[PackedFile, ...]:
        return self._details.packed_files

    @property
    def metadata_names(self) -> tuple[str, ...]:
        return self._details.metadata_names

    @property
    def activation_bytes(self) -> int:
        return self._details.activation_bytes

    @cached_property
    def sha256(self) -> str:
        part = getattr(self.details, "sha256", None)
        return part() if callable(part) else self._details.sha256

    @property
    def problem(self) -> str:
        return self._details.problem

    @property
    def graph(self) -> Graph | None:
        """Operators and tensors of every subgraph (read on first use); None when unreadable."""
        return self._details.graph

    @cached_property
    def metadata(self) -> ModelMetadata | None:
        """The model's TFLite Support metadata (read on first use); None when it has none."""
        if "_details" not in self.__dict__:
            part = getattr(self.details, "metadata", None)
            if callable(part):
                return part()
        return self._details.metadata

    @property
    def is_stateful(self) -> bool:
        """Whether the model keeps state between invokes (variable ops, resource or variable tensors)."""
        g = self._details.graph
        return g is not None and g.is_stateful

    @property
    def custom_ops(self) -> tuple[OpInfo, ...]:
        return tuple(op for op in self.ops if op.kind == "custom")

    @property
    def flex_ops(self) -> tuple[OpInfo, ...]:
        return tuple(op for op in self.ops if op.kind == "flex")

    def signature(self, key: str) -> SignatureSpec:
        for sig in self.signatures:
            if sig.key == key:
                return sig
        known = ", ".join(repr(s.key) for s in self.signatures) or "none"
        raise KeyError(f"The model has no signature {key!r}; its signatures are: {known}.")

    def io(self, signature: str | None = None) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Inputs and outputs as a caller sees them: the model's, or one signature's."""
        if signature is None:
            return self.inputs, self.outputs
        sig = self.signature(signature)
        return sig.inputs, sig.outputs


@dataclass(frozen=True)
class Fix:
    """One change to the data (or to how the model is run) that resolves a mismatch.

    ``params`` holds what ``apply_fix`` needs; ``code`` is the line of Python a user would
    write to do the same, with the input's array called ``x``.
    """

    kind: FixKind
    input: str
    label: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=True)
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "input": self.input, "label": self.label, "params": _jsonable(self.params), "code": self.code}


@dataclass(frozen=True)
class Mismatch:
    """One problem found between the data and what an input of the model expects."""

    input_index: int
    input_name: str
    kind: MismatchKind
    severity: Severity
    expected: str
    got: str
    message: str
    fixes: tuple[Fix, ...] = ()
    dimension: int | None = None
    choice: str | None = None  # the key of the Choice that ordered the fixes, when one did

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": {"index": self.input_index, "name": self.input_name},
            "kind": self.kind,
            "severity": self.severity,
            "expected": self.expected,
            "got": self.got,
            "dimension": self.dimension,
            "message": self.message,
            "fixes": [f.to_dict() for f in self.fixes],
            "choice": self.choice,
        }


ChoiceTopic = Literal["value range", "resize method", "resize mode", "channel order", "sample rate", "clip length"]
ChoiceSource = Literal["preference", "metadata", "graph", "quantization", "guess"]


@dataclass(frozen=True)
class Choice:
    """A decision the data alone cannot settle, which fixing the data needs: which value range
    the model expects, which resize filter and mode, which channel order.

    ``options`` are ``(key, label)`` pairs; ``chosen`` is the key taken and ``reason`` says why:
    the evidence (the model's metadata, its first ops, its quantization), the user's pick, or
    that it is a guess. ``key`` is stable for an input and topic, so a pick survives reruns.
    """

    key: str
    input: str
    topic: ChoiceTopic
    options: tuple[tuple[str, str], ...]
    chosen: str
    reason: str
    source: ChoiceSource

    @property
    def guess(self) -> bool:
        return self.source == "guess"

    def label_of(self, option: str) -> str:
        return dict(self.options).get(option, option)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "input": self.input, "topic": self.topic, "chosen": self.chosen,
            "options": [k for k, _ in self.options], "reason": self.reason, "source": self.source, "guess": self.guess,
        }


@dataclass(frozen=True)
class Explanation:
    """What an interpreter message means, in plain words.

    ``kind`` is a stable identifier (``"dimension_mismatch"``, ``"unknown"``, …); ``facts``
    holds what the message names (op, node, input, dimension, got, expected, …); ``matched``
    lists every kind recognised in the message, the primary one first.
    """

    kind: str
    title: str
    cause: str
    fix: str
    facts: Mapping[str, Any] = field(default_factory=dict, hash=False)
    matched: tuple[str, ...] = ()
    message: str = ""

    @property
    def recognised(self) -> bool:
        return self.kind != "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "recognised": self.recognised,
            "title": self.title,
            "cause": self.cause,
            "fix": self.fix,
            "facts": _jsonable(self.facts),
            "matched": list(self.matched),
        }


@dataclass(frozen=True, eq=False)
class Feed:
    """The data for one run: an array per input name, and the inputs to resize first.

    ``resize`` maps an input name to the shape that ``resize_tensor_input`` gives it before
    ``allocate_tensors``; the worker applies it, and the exported script repeats it.
    ``facts`` maps an input name to what is known about its array beyond the numbers: an
    ``AudioInfo`` when the array is a recording (its sample rate, channels, …), which the
    audio fixes keep up to date (resampling changes the rate, mixing down the channels).
    """

    arrays: Mapping[str, np.ndarray]
    resize: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    facts: Mapping[str, AudioInfo] = field(default_factory=dict)

    def replace(self, **changes: Any) -> "Feed":
        return Feed(
            arrays=changes.get("arrays", self.arrays), resize=changes.get("resize", self.resize),
            facts=changes.get("facts", self.facts),
        )


@dataclass(frozen=True, eq=False)
class Step:
    """One fix applied to the data: the fix, the mismatch it answered (if one of the diagnosis
    did), and the data after it. ``click`` numbers the user's actions: "apply all" applies
    several fixes in one click, and undo takes back a whole click."""

    fix: Fix
    answered: Mismatch | None
    feed: Feed
    click: int


@dataclass(frozen=True, eq=False)
class OutputTensor:
    """One output of a run: the raw array and its dequantized values."""

    name: str
    index: int
    raw: np.ndarray
    values: np.ndarray
    quantization: Quantization = field(default_factory=Quantization)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.raw.shape)

    @property
    def dtype(self) -> str:
        return str(self.raw.dtype)


@dataclass(frozen=True, eq=False)
class RunResult:
    """The outcome of running a model once in a worker process.

    ``status`` is ``ok``; ``error`` (the interpreter raised: ``error_type``, ``error_message``
    and its ``explanation``); ``crashed`` (native code killed the worker: ``signal``);
    ``timeout`` (the run passed its time limit and the worker was killed); ``skipped`` (not
    run, e.g. refused because the model's tensors would not fit the memory limit; or run, but
    its outputs not sent back because they pass the cap on what a run may return,
    ``limit="output"``); or ``protocol`` (the worker's reply broke the protocol, as a worker
    taken over by the model's native code might: it was killed). ``limit`` names the worker
    limit involved, if any.
    """

    status: RunStatus
    outputs: tuple[OutputTensor, ...] = ()
    error_type: str | None = None
    error_message: str | None = None
    explanation: Explanation | None = None
    kernel_message: str | None = None
    signal: str | None = None
    invoke_ms: float | None = None
    total_ms: float | None = None
    detail: str = ""
    limit: str | None = None  # "time", "memory", "cpu" or "output" when a worker limit ended or refused the run

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def output(self, name: str) -> OutputTensor:
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(name)


def _jsonable(value: Any) -> Any:
    """Turn tuples, numpy scalars and arrays in fix parameters into JSON-ready values."""
    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class AudioInfo:
    """Facts about a decoded recording, kept beside its samples (``loading.LoadedFile.audio``).

    The samples themselves are float32 in [-1, 1] (an int16 sample is divided by 32768),
    shaped ``[frames]`` for mono and ``[frames, channels]`` otherwise. ``container`` is the
    file's kind (``"WAV"``, ``"FLAC"``, ``"Ogg"``, ``"MP3"``); ``sample_format`` how it stored
    each sample, as libsndfile names it (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``,
    ``"VORBIS"``, ``"MPEG_LAYER_III"``, …); ``clipped_fraction`` the share of samples at
    either end of the format's scale, which is where a recording that was too loud sits.

    Once the recording is cut into windows (``[windows, frames]``), ``frames`` counts the
    samples of one window and ``window_hop`` says how many samples apart the windows start;
    it is None for a recording in one piece.
    """

    sample_rate: int
    channels: int
    frames: int
    container: str
    sample_format: str
    clipped_fraction: float = 0.0
    window_hop: int | None = None

    @property
    def duration(self) -> float:
        """Seconds of audio: frames / sample rate."""
        return self.frames / self.sample_rate

    @property
    def layout(self) -> str:
        """How the loaded array is laid out: ``"[samples]"`` or ``"[samples, channels]"``."""
        return "[samples]" if self.channels == 1 else "[samples, channels]"

    def describe(self) -> str:
        """One line for people: ``WAV (PCM_16), 44,100 Hz, 2 channels, 2.5 s``."""
        channels = "mono" if self.channels == 1 else "stereo" if self.channels == 2 else f"{self.channels} channels"
        text = f"{self.container} ({self.sample_format}), {self.sample_rate:,} Hz, {channels}, {self.duration:.3g} s"
        if self.window_hop is not None:
            text += f" per window, windows every {self.window_hop / self.sample_rate:.3g} s"
        if self.clipped_fraction >= 0.001:  # a few samples at full scale are peaks, not clipping
            text += f", {self.clipped_fraction:.2%} of samples at full scale"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate, "channels": self.channels, "frames": self.frames,
            "duration": self.duration, "container": self.container, "sample_format": self.sample_format,
            "clipped_fraction": self.clipped_fraction, "window_hop": self.window_hop,
        }


CheckStatus = Literal["ok", "error", "crashed", "timeout", "skipped", "protocol"]


@dataclass(frozen=True)
class ModelCheck:
    """Whether a model loads and allocates its tensors in a worker (nothing is invoked).

    ``status``: ``ok``; ``error`` (the interpreter refused it: an unresolved custom op, a Flex
    op, a failed Prepare, a delegate error; ``error_type``, ``message`` and its
    ``explanation``, and ``kernel_message``, the message of a retry without the default
    delegates when XNNPACK's hid the kernel's, ``""`` when that retry allocated); ``crashed``
    (``signal``); ``timeout``; ``skipped`` (not tried: ``limit="memory"``); ``protocol``.
    ``detail`` is a sentence for the statuses that have no interpreter message.
    """

    status: CheckStatus
    error_type: str | None = None
    message: str | None = None
    explanation: Explanation | None = None
    kernel_message: str | None = None
    signal: str | None = None
    limit: str | None = None
    detail: str = ""
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"
