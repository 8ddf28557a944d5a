"""Fixes: pure functions that change the data (or how it is fed) so the model accepts it.

Each kind of fix is one ``FixType`` entry in ``REGISTRY``: its button label, the line of Python
it amounts to (with the input's array called ``x``), what it does to the data, why one would
apply it, its place in the order ``fix_all`` applies fixes in, and whether it changes how many
samples a batch holds. A ``Fix`` is one use of a kind, with its parameters; ``apply_fix`` never
modifies its argument: it returns a new ``Feed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, get_args

import numpy as np

from .errors import FixError
from .quantization import dtype_range, quantize
from .records import Feed, Fix, FixKind
from .resize import resize_image
from . import audio as _audio

__all__ = ["FIX_ORDER", "REGISTRY", "FixType", "apply_fix", "fix_type", "make_fix", "resize_image"]

Params = Mapping[str, Any]


@dataclass(frozen=True)
class FixType:
    """Everything about one kind of fix, in one place.

    ``array`` changes one input's array; ``feed`` changes the whole feed (for fixes that move
    arrays between inputs, create one, or change how the model is allocated). ``changes_samples``
    is True for fixes that change how many samples the data holds, which make no sense applied
    to every sample of a batch.
    """

    kind: FixKind
    label: Callable[[Params], str]
    code: Callable[[Params], str]
    why: str
    array: Callable[[np.ndarray, Params], np.ndarray] | None = None
    feed: Callable[[Feed, Fix], Feed] | None = None
    changes_samples: bool = False


def _fmt(v: float) -> str:
    return f"{v:.8g}"


def _dt(dtype: str) -> str:
    return f"np.{np.dtype(dtype).name}" if dtype != "bool" else "np.bool_"


def _range(r: Any) -> str:
    return f"[{_fmt(r[0])}, {_fmt(r[1])}]"


# -- what the value fixes do ----------------------------------------------------------------


def _normalize_code(p: Params) -> str:
    (slo, shi), (dlo, dhi), dtype = p["source"], p["target"], p.get("dtype", "float32")
    if (slo, dlo) == (0, 0):
        expr = f"x / {_fmt(shi)}" if dhi == 1 else f"x * ({_fmt(dhi)} / {_fmt(shi)})"
    elif (slo, shi, dlo, dhi) == (0, 255, -1, 1):
        expr = "x / 127.5 - 1.0"
    else:
        expr = f"(x - {_fmt(slo)}) / ({_fmt(shi)} - {_fmt(slo)}) * ({_fmt(dhi)} - {_fmt(dlo)}) + {_fmt(dlo)}"
    return f"x = ({expr}).astype({_dt(dtype)})"


def _normalize(x: np.ndarray, p: Params) -> np.ndarray:
    (slo, shi), (dlo, dhi) = p["source"], p["target"]
    span = (shi - slo) or 1.0
    return ((x.astype(np.float64) - slo) / span * (dhi - dlo) + dlo).astype(p.get("dtype", "float32"))


def _cast_code(p: Params) -> str:
    dtype = np.dtype(p["dtype"])
    if dtype.kind in "iu":
        lo, hi = dtype_range(dtype)
        return f"x = np.clip(np.round(np.nan_to_num(x)), {int(lo)}, {int(hi)}).astype({_dt(p['dtype'])})"
    return f"x = x.astype({_dt(p['dtype'])})"


def _cast(x: np.ndarray, p: Params) -> np.ndarray:
    # Casting to an integer type saturates instead of wrapping: 300 into int8 is 127, not 44.
    dtype = np.dtype(p["dtype"])
    if dtype.kind in "iu":
        lo, hi = dtype_range(dtype)
        return np.clip(np.round(np.nan_to_num(x)), lo, hi).astype(dtype)
    return x.astype(dtype)


def _quantize_code(p: Params) -> str:
    lo, hi = dtype_range(p["dtype"])
    scale, zp = p["scale"], p["zero_point"]
    src = p.get("source")
    real = "x"
    if src is not None:
        rlo, rhi = p["target"]
        real = f"((x - {_fmt(src[0])}) / {_fmt(src[1] - src[0])} * {_fmt(rhi - rlo)} + {_fmt(rlo)})"
    return f"x = np.clip(np.round({real} / {_fmt(scale)} + {zp}), {int(lo)}, {int(hi)}).astype({_dt(p['dtype'])})"


def _quantize(x: np.ndarray, p: Params) -> np.ndarray:
    from .records import Quantization

    real = x.astype(np.float64)
    if p.get("source") is not None:
        real = _normalize(real, {"source": p["source"], "target": p["target"], "dtype": "float64"})
    q = Quantization(scale=(float(p["scale"]),), zero_point=(int(p["zero_point"]),))
    return quantize(real, q, p["dtype"])


def _to_rgb(x: np.ndarray) -> np.ndarray:
    if x.shape[-1] != 1:
        x = x[..., np.newaxis]
    return np.repeat(x, 3, axis=-1)


def _to_gray(x: np.ndarray) -> np.ndarray:
    gray = x[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if x.dtype.kind in "iu":
        gray = np.round(gray)
    return gray[..., np.newaxis].astype(x.dtype)


_RESIZE_NAMES = {"tf": "tf.image.resize", "pillow": "Pillow", "opencv": "OpenCV"}


def _resize_label(p: Params) -> str:
    method = p.get("method", "tf")
    return f"Resize to {p['height']}×{p['width']} ({p.get('mode', 'stretch')}, {_RESIZE_NAMES.get(method, method)})"


def _resize_code(p: Params) -> str:
    return (
        f"x = resize_image(x, ({p['height']}, {p['width']}), mode={p.get('mode', 'stretch')!r}, "
        f"method={p.get('method', 'tf')!r})"
    )


# -- what the feed-level fixes do -----------------------------------------------------------


def _reassign(feed: Feed, fix: Fix) -> Feed:
    mapping: dict[str, str] = dict(fix.params)["mapping"]
    missing = [src for src in mapping.values() if src not in feed.arrays]
    if missing:
        raise FixError(f"Cannot reassign: there is no array called {missing[0]!r} in the data.")
    arrays = {target: feed.arrays[src] for target, src in mapping.items()}
    arrays.update({k: v for k, v in feed.arrays.items() if k not in arrays and k not in mapping.values()})
    return feed.replace(arrays=arrays)


def _resize_input(feed: Feed, fix: Fix) -> Feed:
    return feed.replace(resize={**feed.resize, fix.input: tuple(int(d) for d in fix.params["shape"])})


def _generate(feed: Feed, fix: Fix) -> Feed:
    arrays = dict(feed.arrays)
    arrays[fix.input] = np.zeros(tuple(fix.params["shape"]), dtype=fix.params["dtype"])
    return feed.replace(arrays=arrays)


# -- what the audio fixes do ------------------------------------------------------------------
# They change the facts that travel with a recording (Feed.facts) as well as its samples, so
# they work on the feed. Their lines of Python call lite_debug.audio's helpers, which an
# exported script carries (export.AUDIO_HELPERS).


def _audio_fix(transform: Callable[[np.ndarray, Params], np.ndarray], facts: Callable[..., dict[str, Any]]):
    """A feed-level fix: ``transform`` the input's array, then update its ``AudioInfo`` (if any)
    with ``facts(new_array, params)``."""
    from dataclasses import replace

    def apply(feed: Feed, fix: Fix) -> Feed:
        if fix.input not in feed.arrays:
            raise FixError(f"Cannot apply “{fix.label}”: there is no data for input {fix.input!r}.")
        x = np.asarray(feed.arrays[fix.input])
        try:
            new = transform(x, dict(fix.params))
        except FixError:
            raise
        except (ValueError, IndexError, TypeError) as exc:
            raise FixError(f"Cannot apply “{fix.label}” to input {fix.input!r} of shape {list(x.shape)}: {exc}.") from None
        arrays = dict(feed.arrays)
        arrays[fix.input] = new
        known = dict(feed.facts)
        if fix.input in known:
            known[fix.input] = replace(known[fix.input], **facts(new, dict(fix.params)))
        return feed.replace(arrays=arrays, facts=known)

    return apply


def _axis_arg(p: Params) -> str:
    return f", axis={int(p['axis'])}" if p.get("axis", 0) else ""


def _seconds(samples: int, p: Params) -> str:
    rate = p.get("rate")
    return f" ({samples / rate:.3g} s)" if rate else ""


def _to_mono(x: np.ndarray, p: Params) -> np.ndarray:
    if x.ndim < 2:
        raise ValueError("the audio is already mono: it has no channel axis")
    return x.mean(axis=-1).astype(np.float32)


def _take_channel(x: np.ndarray, p: Params) -> np.ndarray:
    if x.ndim < 2:
        raise ValueError("the audio is mono: it has no channel axis")
    return np.ascontiguousarray(x[..., int(p["index"])])


def _split_windows(x: np.ndarray, p: Params) -> np.ndarray:
    axis = int(p.get("axis", 0))
    return _audio.windows(x.reshape(x.shape[axis:]), int(p["size"]), int(p["hop"]))


def _windows_code(p: Params) -> str:
    axis = int(p.get("axis", 0))
    source = f"x.reshape(x.shape[{axis}:])" if axis else "x"
    return f"x = windows({source}, {int(p['size'])}, {int(p['hop'])})"


def _windows_label(p: Params) -> str:
    size, hop = int(p["size"]), int(p["hop"])
    overlap = 1 - hop / size
    how = "no overlap" if overlap <= 0 else f"{overlap:.0%} overlap"
    count = f"{p['count']} windows" if p.get("count") else "windows"
    return f"Split into {count} of {size:,} samples{_seconds(size, p)}, {how} (a batch)"


def _channel_label(p: Params) -> str:
    i = int(p["index"])
    side = {0: " (left)", 1: " (right)"}.get(i, "") if p.get("channels") == 2 else ""
    return f"Take channel {i}{side}"


# -- the registry: one entry per kind, in the order fix_all applies them ----------------------
# First put arrays under the right inputs, then the structure of each array (axes), then its
# size, then its values.

_ENTRIES = (
    FixType(
        "reassign",
        label=lambda p: "Bind the arrays to the inputs they fit",
        code=lambda p: "inputs = {" + ", ".join(f"{k!r}: given[{v!r}]" for k, v in p["mapping"].items()) + "}",
        why="the arrays were bound to the wrong inputs",
        feed=_reassign,
        changes_samples=True,
    ),
    FixType(
        "generate",
        label=lambda p: "Fill with zeros",
        code=lambda p: f"x = np.zeros({tuple(p['shape'])}, dtype={_dt(p['dtype'])})",
        why="the input was given no data",
        feed=_generate,
        changes_samples=True,
    ),
    # Audio: the channels and the rate first, since the length in samples depends on the rate.
    FixType(
        "to_mono",
        label=lambda p: f"Mix the {p.get('channels', 2)} channels down to mono (their mean)",
        code=lambda p: "x = x.mean(axis=-1).astype(np.float32)",
        why="the model takes mono audio, the recording has several channels",
        feed=_audio_fix(_to_mono, lambda new, p: {"channels": 1}),
    ),
    FixType(
        "take_channel",
        label=_channel_label,
        code=lambda p: f"x = np.ascontiguousarray(x[..., {int(p['index'])}])",
        why="the model takes mono audio, the recording has several channels",
        feed=_audio_fix(_take_channel, lambda new, p: {"channels": 1}),
    ),
    FixType(
        "resample",
        label=lambda p: f"Resample {int(p['from_rate']):,} Hz → {int(p['to_rate']):,} Hz (polyphase, scipy's resample_poly)",
        code=lambda p: f"x = resample(x, {int(p['from_rate'])}, {int(p['to_rate'])}{_axis_arg(p)})",
        why="the recording's sample rate is not the one the model takes",
        feed=_audio_fix(
            lambda x, p: _audio.resample(x, int(p["from_rate"]), int(p["to_rate"]), axis=int(p.get("axis", 0))),
            lambda new, p: {"sample_rate": int(p["to_rate"]), "frames": int(new.shape[int(p.get("axis", 0))])},
        ),
        changes_samples=True,
    ),
    FixType(
        "fit_length",
        label=lambda p: (
            f"Keep the first {int(p['size']):,} samples{_seconds(int(p['size']), p)}" if p.get("mode") == "trim"
            else f"Pad with zeros to {int(p['size']):,} samples{_seconds(int(p['size']), p)}"
        ),
        code=lambda p: f"x = pad_or_trim(x, {int(p['size'])}{_axis_arg(p)})",
        why="the recording is not as long as the model's window",
        feed=_audio_fix(
            lambda x, p: _audio.pad_or_trim(x, int(p["size"]), axis=int(p.get("axis", 0))),
            lambda new, p: {"frames": int(p["size"])},
        ),
        changes_samples=True,
    ),
    FixType(
        "split_windows",
        label=_windows_label,
        code=_windows_code,
        why="the recording is longer than the model's window: each window is one sample of a batch",
        feed=_audio_fix(_split_windows, lambda new, p: {"frames": int(p["size"]), "window_hop": int(p["hop"])}),
        changes_samples=True,
    ),
    FixType(
        "to_rgb",
        label=lambda p: "Gray → RGB (repeat the channel)",
        code=lambda p: "x = np.repeat(x[..., np.newaxis] if x.shape[-1] != 1 else x, 3, axis=-1)",
        why="the model expects RGB, the data is grayscale",
        array=lambda x, p: _to_rgb(x),
    ),
    FixType(
        "add_channel",
        label=lambda p: "Add a channel axis",
        code=lambda p: "x = x[..., np.newaxis]",
        why="the model expects a channel axis, the data has none",
        array=lambda x, p: x[..., np.newaxis],
    ),
    FixType(
        "remove_batch",
        label=lambda p: "Remove the extra leading dimension",
        code=lambda p: "x = np.squeeze(x, axis=0)",
        why="the data has an extra leading dimension",
        array=lambda x, p: np.squeeze(x, axis=0),
        changes_samples=True,
    ),
    FixType(
        "add_batch",
        label=lambda p: "Add a batch dimension",
        code=lambda p: "x = np.expand_dims(x, 0)",
        why="the batch dimension is missing",
        array=lambda x, p: np.expand_dims(x, 0),
        changes_samples=True,
    ),
    FixType(
        "take_sample",
        label=lambda p: f"Keep only sample {p['index']}",
        code=lambda p: f"x = x[{p['index']}:{p['index'] + 1}]",
        why="the model takes a fixed batch size",
        array=lambda x, p: x[p["index"] : p["index"] + 1],
        changes_samples=True,
    ),
    FixType(
        "nchw_to_nhwc",
        label=lambda p: "Transpose NCHW → NHWC",
        code=lambda p: "x = np.transpose(x, (0, 2, 3, 1))",
        why="the model is channels-last (NHWC), the data channels-first (NCHW)",
        array=lambda x, p: np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))),
    ),
    FixType(
        "nhwc_to_nchw",
        label=lambda p: "Transpose NHWC → NCHW",
        code=lambda p: "x = np.transpose(x, (0, 3, 1, 2))",
        why="the model is channels-first (NCHW), the data channels-last (NHWC)",
        array=lambda x, p: np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))),
    ),
    FixType(
        "reshape",
        label=lambda p: f"Reshape to {list(p['shape'])}",
        code=lambda p: f"x = x.reshape({tuple(p['shape'])})",
        why="the data has the right number of values in the wrong shape",
        array=lambda x, p: x.reshape(tuple(p["shape"])),
    ),
    FixType(
        "drop_alpha",
        label=lambda p: "Drop the alpha channel",
        code=lambda p: "x = x[..., :3]",
        why="the model expects RGB, the data is RGBA",
        array=lambda x, p: np.ascontiguousarray(x[..., :3]),
    ),
    FixType(
        "to_gray",
        label=lambda p: "RGB → gray (luminance)",
        code=lambda p: (
            "g = x[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]); "
            "x = (np.round(g) if x.dtype.kind in 'iu' else g)[..., np.newaxis].astype(x.dtype)"
        ),
        why="the model expects grayscale, the data is RGB",
        array=lambda x, p: _to_gray(x),
    ),
    FixType(
        "swap_rgb_bgr",
        label=lambda p: "Swap RGB ↔ BGR",
        code=lambda p: "x = x[..., ::-1].copy()",
        why="the model was trained on images in the other channel order (OpenCV loads BGR)",
        array=lambda x, p: np.ascontiguousarray(x[..., ::-1]),
    ),
    FixType(
        "resize_image",
        label=_resize_label,
        code=_resize_code,
        why="the image is not the size the model expects",
        array=lambda x, p: resize_image(x, (p["height"], p["width"]), p.get("mode", "stretch"), p.get("method", "tf")),
    ),
    FixType(
        "resize_input",
        label=lambda p: f"Resize the model's input to {list(p['shape'])}",
        code=lambda p: (
            f"interpreter.resize_tensor_input({p['index']}, {list(p['shape'])})  # then interpreter.allocate_tensors()"
        ),
        why="the input accepts other sizes, but the interpreter is allocated for one",
        feed=_resize_input,
        changes_samples=True,
    ),
    FixType(
        "nan_to_num",
        label=lambda p: "Replace NaN/Inf with 0",
        code=lambda p: "x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)",
        why="the data holds NaN or infinite values",
        array=lambda x, p: np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0),
    ),
    FixType(
        "pcm_to_float",
        label=lambda p: "Scale the int16 samples to [-1, 1] (x / 32768)",
        code=lambda p: "x = (x / 32768.0).astype(np.float32)",
        why="16-bit PCM samples were given as raw integers to a model that takes float audio",
        array=lambda x, p: (x / 32768.0).astype(np.float32),
    ),
    FixType(
        "normalize",
        label=lambda p: f"Scale {_range(p['source'])} → {_range(p['target'])} as {p.get('dtype', 'float32')}",
        code=_normalize_code,
        why="the values are not in the range the model expects",
        array=_normalize,
    ),
    FixType(
        "cast",
        label=lambda p: f"Cast to {p['dtype']}",
        code=_cast_code,
        why="the data's dtype is not the input's",
        array=_cast,
    ),
    FixType(
        "quantize",
        label=lambda p: (
            f"Quantize to {p['dtype']} (scale {_fmt(p['scale'])}, zero point {p['zero_point']})"
            + (f" from {_range(p['source'])}" if p.get("source") is not None else "")
        ),
        code=_quantize_code,
        why="the input is quantized, the data is real values",
        array=_quantize,
    ),
    FixType(
        "dequantize",
        label=lambda p: f"Dequantize (scale {_fmt(p['scale'])}, zero point {p['zero_point']})",
        code=lambda p: f"x = ((x.astype(np.float32) - {p['zero_point']}) * {_fmt(p['scale'])}).astype(np.float32)",
        why="the input is float, the data is quantized",
        array=lambda x, p: ((x.astype(np.float32) - p["zero_point"]) * p["scale"]).astype(np.float32),
    ),
)

REGISTRY: dict[str, FixType] = {entry.kind: entry for entry in _ENTRIES}
FIX_ORDER: tuple[str, ...] = tuple(REGISTRY)
assert set(FIX_ORDER) == set(get_args(FixKind)), "every FixKind needs exactly one registry entry"


def fix_type(kind: str) -> FixType:
    """The registry entry of a fix kind. Raises ``FixError`` for an unknown kind."""
    try:
        return REGISTRY[kind]
    except KeyError:
        raise FixError(f"There is no fix called {kind!r}; known fixes: {', '.join(sorted(REGISTRY))}.") from None


def make_fix(kind: str, input: str, **params: Any) -> Fix:
    """Build a ``Fix`` with its button label and its line of Python. Raises ``FixError`` for an unknown kind."""
    entry = fix_type(kind)
    return Fix(kind=entry.kind, input=input, label=entry.label(params), params=params, code=entry.code(params))


def apply_fix(feed: Feed, fix: Fix) -> Feed:
    """Return a new ``Feed`` with ``fix`` applied; ``feed`` is left as it was.

    Raises ``FixError`` when the fix does not apply (an unknown input, or an array whose
    shape the fix cannot handle).
    """
    entry = fix_type(fix.kind)
    if entry.feed is not None:
        return entry.feed(feed, fix)
    if fix.input not in feed.arrays:
        raise FixError(f"Cannot apply “{fix.label}”: there is no data for input {fix.input!r}.")
    assert entry.array is not None
    try:
        new = entry.array(feed.arrays[fix.input], dict(fix.params))
    except FixError:
        raise
    except (ValueError, IndexError, TypeError) as exc:
        shape = tuple(feed.arrays[fix.input].shape)
        raise FixError(f"Cannot apply “{fix.label}” to input {fix.input!r} of shape {list(shape)}: {exc}.") from None
    arrays = dict(feed.arrays)
    arrays[fix.input] = new
    return feed.replace(arrays=arrays)
