"""The decisions fixing the data needs that the data alone cannot settle, with their evidence.

A float image model fed 0–255 pixels needs them scaled, but to [0, 1] or to [-1, 1]? A photo of
the wrong size needs resizing, but with TensorFlow's filter or Pillow's, stretched or cropped?
Guessing silently makes a "fixed" input that runs and gives wrong answers. So each such
decision is a ``Choice``: its options, the one taken, and why: the model's own metadata
(normalization mean and std, colour space), its first operations (a ``x * 1/127.5 - 1`` at the
input), its quantization (uint8 with scale 1/255 represents [0, 1]), the user's pick, or, when
nothing says, that it is a guess.

Choices are made on the data as the user gave it (before any fix), so they stay the same
questions while fixes are applied and undone; the diagnosis orders its fixes by them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .records import Choice, ChoiceSource, Feed, Fix, ModelSpec, TensorSpec

__all__ = [
    "RANGE_OPTIONS",
    "choices",
    "option_of",
    "pending_fixes",
    "parse_range",
    "range_key",
    "resize_choices_for",
]

_IMAGE_CHANNELS = (1, 3, 4)
RANGE_OPTIONS = ("[0, 1]", "[-1, 1]", "[0, 255]")
_RANGE_LABELS = {
    "[0, 1]": "[0, 1]  (x / 255)",
    "[-1, 1]": "[-1, 1]  (x / 127.5 − 1)",
    "[0, 255]": "[0, 255]  (pixels as they are)",
}
_METHODS = (("tf", "tf.image.resize (bilinear, half-pixel, no antialiasing)"), ("pillow", "Pillow BILINEAR (antialiased)"), ("opencv", "OpenCV INTER_LINEAR"))
_MODES = (("stretch", "stretch to fit"), ("crop", "keep the aspect ratio, crop the centre"), ("pad", "keep the aspect ratio, pad"))
_ORDERS = (("rgb", "RGB (as image files load)"), ("bgr", "BGR (as OpenCV loads)"))


def range_key(lo: float, hi: float) -> str:
    """``[0, 1]`` for (0, 1): how a value range is written as an option key."""
    return f"[{lo:.6g}, {hi:.6g}]"


def parse_range(key: str) -> tuple[float, float]:
    """``"[0, 1]"`` → (0.0, 1.0). Raises ``ValueError`` for text that is not such a range."""
    inner = key.strip().removeprefix("[").removesuffix("]")
    lo, hi = (float(v) for v in inner.split(","))
    return lo, hi


def _is_image_input(t: TensorSpec) -> bool:
    return t.rank == 4 and (t.shape[3] in _IMAGE_CHANNELS or t.shape[1] in _IMAGE_CHANNELS)


def _channels_last(t: TensorSpec) -> bool:
    return t.shape[3] in _IMAGE_CHANNELS and t.shape[1] not in _IMAGE_CHANNELS


def _looks_like_pixels(x: np.ndarray) -> bool:
    """uint8, or numbers in 0…255 that go well past 1: how decoded images arrive."""
    if x.dtype == np.uint8:
        return True
    if x.dtype.kind not in "iuf" or not x.size:
        return False
    finite = x[np.isfinite(x)] if x.dtype.kind == "f" else x
    if not finite.size:
        return False
    lo, hi = float(finite.min()), float(finite.max())
    return lo >= 0 and 1.5 < hi <= 255


def _spatial(t: TensorSpec, x: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(model's H×W, data's H×W) for an image input, when both can be read; else None."""
    if not _is_image_input(t) or x.ndim not in (2, 3, 4):
        return None
    want = (t.shape[1], t.shape[2]) if _channels_last(t) else (t.shape[2], t.shape[3])
    shape = x.shape
    if x.ndim == 2:
        got = shape
    elif x.ndim == 3:
        got = shape[:2] if shape[-1] in _IMAGE_CHANNELS or shape[0] not in _IMAGE_CHANNELS else shape[1:]
    else:
        got = shape[1:3] if shape[-1] in _IMAGE_CHANNELS or shape[1] not in _IMAGE_CHANNELS else shape[2:]
    return (int(want[0]), int(want[1])), (int(got[0]), int(got[1]))


def _data_channels(x: np.ndarray) -> int | None:
    if x.ndim in (3, 4) and x.shape[-1] in _IMAGE_CHANNELS:
        return int(x.shape[-1])
    if x.ndim == 4 and x.shape[1] in _IMAGE_CHANNELS:
        return int(x.shape[1])
    return 1 if x.ndim == 2 else None


def _range_evidence(spec: ModelSpec, t: TensorSpec, model_bytes: Any) -> tuple[str, str, ChoiceSource] | None:
    """What the model itself says about the value range it expects on an image input: its
    metadata's normalization, then arithmetic by constants at the graph's start, then its
    input quantization."""
    return (
        _from_metadata(spec, t)
        or (_from_graph(spec, t, model_bytes) if model_bytes is not None else None)
        or _from_quantization(spec, t)
    )


def _tensor_metadata(spec: ModelSpec, t: TensorSpec):
    """The metadata of input ``t`` (the metadata lists the main graph's inputs in order)."""
    try:
        metadata = spec.metadata
    except Exception:  # noqa: BLE001 - metadata is the file's word: a damaged one is no evidence
        return None
    main = metadata.main if metadata is not None else None
    if main is None:
        return None
    position = next((i for i, x in enumerate(spec.inputs) if x.index == t.index), None)
    if position is None or position >= len(main.inputs):
        return None
    return main.inputs[position]


def _from_metadata(spec: ModelSpec, t: TensorSpec) -> tuple[str, str, ChoiceSource] | None:
    tm = _tensor_metadata(spec, t)
    if tm is None:
        return None
    mapped = tm.normalized_range(0.0, 255.0)
    if mapped is None or not all(np.isfinite(mapped)):
        return None
    key = _snap(*mapped)
    return key, tm.describe_normalization().rstrip("."), "metadata"


def _from_graph(spec: ModelSpec, t: TensorSpec, model_bytes: Any) -> tuple[str, str, ChoiceSource] | None:
    from .errors import ModelLoadError
    from .graph import input_normalization

    try:
        found = input_normalization(model_bytes, spec.graph)
    except (ModelLoadError, ValueError, IndexError):
        return None
    position = next((i for i, x in enumerate(spec.inputs) if x.index == t.index), None)
    n = next((n for n in found if n.input_index == position), None)
    if n is None or n.expects is None:
        return None
    # The model scales its input itself: it wants the data in the range it maps from.
    return _snap(*n.expects), n.describe().rstrip("."), "graph"


def _from_quantization(spec: ModelSpec, t: TensorSpec) -> tuple[str, str, ChoiceSource] | None:
    from .quantization import real_range

    q = t.quantization
    want = t.numpy_dtype
    if want is None or want.kind not in "iu" or not q.is_quantized or q.per_channel:
        return None
    rr = real_range(q, want)
    if rr is None:
        return None
    key = _snap(*rr)
    zp = q.zero_point[0] if q.zero_point else 0
    return key, f"the input is {want.name} with scale {q.scale[0]:.6g} and zero point {zp}, which represents {key}", "quantization"


def _snap(lo: float, hi: float) -> str:
    """A range close to a usual one is that one: int8 with scale 1/128 covers [-1, 0.992]."""
    for key in RANGE_OPTIONS:
        a, b = parse_range(key)
        if abs(lo - a) <= 0.02 * (b - a) and abs(hi - b) <= 0.02 * (b - a):
            return key
    return range_key(lo, hi)


def choices(
    spec: ModelSpec,
    original: Feed,
    signature: str | None = None,
    preferences: Mapping[str, str] | None = None,
    *,
    model_bytes: Any = None,
) -> list[Choice]:
    """The choices fixing ``original`` (the data as given, bound to the inputs) involves.

    ``preferences`` maps a choice's key to the option the user picked; a pick the choice does
    not offer is ignored. ``model_bytes`` lets the first operations of the graph count as
    evidence (their constants are read from the file). Nothing here raises for odd data: an
    input that is not an image just has no choices.
    """
    prefs = dict(preferences or {})
    inputs, _ = spec.io(signature)
    found: list[Choice] = []
    for t in inputs:
        x = original.arrays.get(t.name)
        if x is None or not _is_image_input(t):
            continue
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            continue
        want = t.numpy_dtype
        if want is not None and want.kind in "fiu" and _looks_like_pixels(x):
            evidence = _range_evidence(spec, t, model_bytes)
            if want.kind == "f" or evidence is not None:
                found.append(_range_choice(t, evidence, prefs))
        spatial = _spatial(t, x)
        if spatial is not None and spatial[0] != spatial[1] and t.shape_signature[1:3] != (-1, -1):
            found += resize_choices_for(t.name, prefs)
        channels = _data_channels(x)
        model_channels = t.shape[3] if _channels_last(t) else t.shape[1]
        if channels in (3, 4) and model_channels == 3:
            found.append(_order_choice(spec, t, prefs))
    from .audio_diagnosis import audio_choices

    found += audio_choices(spec, original, inputs, prefs)  # sample rate, windows or trim: recordings only
    return found


def _pick(key: str, options: Sequence[tuple[str, str]], prefs: Mapping[str, str]) -> str | None:
    wanted = prefs.get(key)
    return wanted if wanted in {k for k, _ in options} else None


def _range_choice(t: TensorSpec, evidence: tuple[str, str, ChoiceSource] | None, prefs: Mapping[str, str]) -> Choice:
    key = f"value range:{t.name}"
    options = [(k, _RANGE_LABELS[k]) for k in RANGE_OPTIONS]
    if evidence is not None and evidence[0] not in RANGE_OPTIONS:
        options.insert(0, (evidence[0], f"{evidence[0]}  (what the model says)"))
    picked = _pick(key, options, prefs)
    if picked is not None:
        reason = "your pick" + (f"; the model says {evidence[0]}: {evidence[1]}" if evidence and evidence[0] != picked else "")
        return Choice(key, t.name, "value range", tuple(options), picked, reason, "preference")
    if evidence is not None:
        return Choice(key, t.name, "value range", tuple(options), evidence[0], _cap(evidence[1]) + ".", evidence[2])
    return Choice(
        key, t.name, "value range", tuple(options), "[0, 1]",
        "A guess: the model's metadata, first operations and dtype say nothing about the range it was trained on. "
        "[0, 1] is the most common for float image models, [-1, 1] the next (MobileNet, MediaPipe); "
        "try both (the preprocessing sweep runs each).",
        "guess",
    )


def resize_choices_for(name: str, prefs: Mapping[str, str]) -> list[Choice]:
    """The two resize choices of an image input (filter, then how to fit the aspect ratio)."""
    method_key, mode_key = f"resize method:{name}", f"resize mode:{name}"
    method = _pick(method_key, _METHODS, prefs)
    mode = _pick(mode_key, _MODES, prefs)
    return [
        Choice(
            method_key, name, "resize method", _METHODS, method or "tf",
            "your pick" if method else (
                "A guess: a model trained with TensorFlow saw tf.image.resize's output (bilinear, half-pixel centres, "
                "no antialiasing); Pillow's filter antialiases when it shrinks, which gives different values."
            ),
            "preference" if method else "guess",
        ),
        Choice(
            mode_key, name, "resize mode", _MODES, mode or "stretch",
            "your pick" if mode else "A guess: stretching keeps the whole picture; crop or pad keep its aspect ratio.",
            "preference" if mode else "guess",
        ),
    ]


def _order_choice(spec: ModelSpec, t: TensorSpec, prefs: Mapping[str, str]) -> Choice:
    key = f"channel order:{t.name}"
    picked = _pick(key, _ORDERS, prefs)
    if picked is not None:
        return Choice(key, t.name, "channel order", _ORDERS, picked, "your pick", "preference")
    space = _metadata_color_space(spec, t)
    if space == "RGB":
        return Choice(key, t.name, "channel order", _ORDERS, "rgb", "The model's metadata says the input is RGB.", "metadata")
    return Choice(
        key, t.name, "channel order", _ORDERS, "rgb",
        "A guess: image files load as RGB and most TFLite image models take RGB; a model trained on images read "
        "with OpenCV takes BGR.",
        "guess",
    )


def _metadata_color_space(spec: ModelSpec, t: TensorSpec) -> str | None:
    tm = _tensor_metadata(spec, t)
    content = tm.content if tm is not None else None
    image = content.image if content is not None else None
    return image.color_space if image is not None else None


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def by_input(found: Iterable[Choice]) -> dict[str, dict[str, Choice]]:
    """``{input: {topic: choice}}`` for quick lookups."""
    out: dict[str, dict[str, Choice]] = {}
    for c in found:
        out.setdefault(c.input, {})[c.topic] = c
    return out


def option_of(fix: Fix) -> list[tuple[str, str]]:
    """The choices a fix answers, as ``(choice key, option)`` pairs: which range a scaling
    fix scales to, which filter and mode a resize uses, whether the channels were swapped."""
    p: Mapping[str, Any] = fix.params
    if fix.kind == "resize_image":
        return [(f"resize method:{fix.input}", p.get("method", "tf")), (f"resize mode:{fix.input}", p.get("mode", "stretch"))]
    if fix.kind == "normalize":
        return [(f"value range:{fix.input}", _snap(*p["target"]))]
    if fix.kind == "quantize" and p.get("source") is not None:
        return [(f"value range:{fix.input}", _snap(*p["target"]))]
    if fix.kind == "cast" and fix.params.get("from_pixels"):
        return [(f"value range:{fix.input}", "[0, 255]")]
    if fix.kind == "swap_rgb_bgr":
        return [(f"channel order:{fix.input}", "bgr")]
    if fix.kind == "resample":
        return [(f"sample rate:{fix.input}", str(int(p["to_rate"])))]
    if fix.kind == "split_windows":
        overlap = 1 - int(p["hop"]) / int(p["size"])
        option = min(("windows", 0.0), ("windows-50", 0.5), ("windows-75", 0.75), key=lambda o: abs(o[1] - overlap))[0]
        return [(f"clip length:{fix.input}", option)]
    if fix.kind == "fit_length" and p.get("mode") == "trim":
        return [(f"clip length:{fix.input}", "trim")]
    return []


def pending_fixes(found: Iterable[Choice], applied: Sequence[Fix]) -> list[Fix]:
    """Fixes the choices ask for that no mismatch does and that are not applied yet: a swap to
    BGR when the user chose BGR (the data cannot tell its own channel order)."""
    from .fixes import make_fix

    swapped = {f.input for f in applied if f.kind == "swap_rgb_bgr"}
    return [
        make_fix("swap_rgb_bgr", c.input)
        for c in found
        if c.topic == "channel order" and c.chosen == "bgr" and c.input not in swapped
    ]
