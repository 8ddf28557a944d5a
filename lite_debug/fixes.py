"""Fixes: pure functions that change the data (or how it is fed) so the model accepts it.

Each ``Fix`` names its kind and parameters, a label for a button, and the line of Python a user
would write to do the same (``code``, with the input's array called ``x``). ``apply_fix``
never modifies its argument: it returns a new ``Feed``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PIL import Image

from .errors import FixError
from .quantization import dtype_range, quantize
from .records import Feed, Fix

__all__ = ["FIX_ORDER", "apply_fix", "make_fix", "resize_bilinear"]

# The order in which fix_all applies fixes: first put arrays under the right inputs, then the
# structure of each array (axes), then its size, then its values.
FIX_ORDER = (
    "reassign",
    "generate",
    "to_rgb",
    "add_channel",
    "remove_batch",
    "add_batch",
    "take_sample",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "reshape",
    "drop_alpha",
    "to_gray",
    "resize_image",
    "resize_input",
    "nan_to_num",
    "normalize",
    "cast",
    "quantize",
    "dequantize",
)


def _fmt(v: float) -> str:
    return f"{v:.8g}"


def _dt(dtype: str) -> str:
    return f"np.{np.dtype(dtype).name}" if dtype != "bool" else "np.bool_"


def _normalize_code(p: dict[str, Any]) -> str:
    (slo, shi), (dlo, dhi), dtype = p["source"], p["target"], p.get("dtype", "float32")
    if (slo, dlo) == (0, 0):
        expr = f"x / {_fmt(shi)}" if dhi == 1 else f"x * ({_fmt(dhi)} / {_fmt(shi)})"
    elif (slo, shi, dlo, dhi) == (0, 255, -1, 1):
        expr = "x / 127.5 - 1.0"
    else:
        expr = f"(x - {_fmt(slo)}) / ({_fmt(shi)} - {_fmt(slo)}) * ({_fmt(dhi)} - {_fmt(dlo)}) + {_fmt(dlo)}"
    return f"x = ({expr}).astype({_dt(dtype)})"


def _cast_code(p: dict[str, Any]) -> str:
    dtype = np.dtype(p["dtype"])
    if dtype.kind in "iu":
        lo, hi = dtype_range(dtype)
        return f"x = np.clip(np.round(np.nan_to_num(x)), {int(lo)}, {int(hi)}).astype({_dt(p['dtype'])})"
    return f"x = x.astype({_dt(p['dtype'])})"


def _quantize_code(p: dict[str, Any]) -> str:
    lo, hi = dtype_range(p["dtype"])
    scale, zp = p["scale"], p["zero_point"]
    src = p.get("source")
    real = "x"
    if src is not None:
        rlo, rhi = p["target"]
        real = f"((x - {_fmt(src[0])}) / {_fmt(src[1] - src[0])} * {_fmt(rhi - rlo)} + {_fmt(rlo)})"
    return f"x = np.clip(np.round({real} / {_fmt(scale)} + {zp}), {int(lo)}, {int(hi)}).astype({_dt(p['dtype'])})"


_CODE: dict[str, Callable[[dict[str, Any]], str]] = {
    "add_batch": lambda p: "x = np.expand_dims(x, 0)",
    "remove_batch": lambda p: "x = np.squeeze(x, axis=0)",
    "take_sample": lambda p: f"x = x[{p['index']}:{p['index'] + 1}]",
    "add_channel": lambda p: "x = x[..., np.newaxis]",
    "nchw_to_nhwc": lambda p: "x = np.transpose(x, (0, 2, 3, 1))",
    "nhwc_to_nchw": lambda p: "x = np.transpose(x, (0, 3, 1, 2))",
    "to_rgb": lambda p: "x = np.repeat(x[..., np.newaxis] if x.shape[-1] != 1 else x, 3, axis=-1)",
    "drop_alpha": lambda p: "x = x[..., :3]",
    "to_gray": lambda p: (
        "g = x[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]); "
        "x = (np.round(g) if x.dtype.kind in 'iu' else g)[..., np.newaxis].astype(x.dtype)"
    ),
    "resize_image": lambda p: f"x = resize_bilinear(x, ({p['height']}, {p['width']}), mode={p.get('mode', 'stretch')!r})",
    "reshape": lambda p: f"x = x.reshape({tuple(p['shape'])})",
    "cast": lambda p: _cast_code(p),
    "normalize": _normalize_code,
    "quantize": _quantize_code,
    "dequantize": lambda p: f"x = ((x.astype(np.float32) - {p['zero_point']}) * {_fmt(p['scale'])}).astype(np.float32)",
    "nan_to_num": lambda p: "x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)",
    "generate": lambda p: f"x = np.zeros({tuple(p['shape'])}, dtype={_dt(p['dtype'])})",
    "resize_input": lambda p: (
        f"interpreter.resize_tensor_input({p['index']}, {list(p['shape'])})  # then interpreter.allocate_tensors()"
    ),
    "reassign": lambda p: "inputs = {" + ", ".join(f"{k!r}: given[{v!r}]" for k, v in p["mapping"].items()) + "}",
}

_LABELS: dict[str, Callable[[dict[str, Any]], str]] = {
    "add_batch": lambda p: "Add a batch dimension",
    "remove_batch": lambda p: "Remove the extra leading dimension",
    "take_sample": lambda p: f"Keep only sample {p['index']}",
    "add_channel": lambda p: "Add a channel axis",
    "nchw_to_nhwc": lambda p: "Transpose NCHW → NHWC",
    "nhwc_to_nchw": lambda p: "Transpose NHWC → NCHW",
    "to_rgb": lambda p: "Gray → RGB (repeat the channel)",
    "drop_alpha": lambda p: "Drop the alpha channel",
    "to_gray": lambda p: "RGB → gray (luminance)",
    "resize_image": lambda p: f"Resize to {p['height']}×{p['width']} ({p.get('mode', 'stretch')})",
    "reshape": lambda p: f"Reshape to {list(p['shape'])}",
    "cast": lambda p: f"Cast to {p['dtype']}",
    "normalize": lambda p: f"Scale {_range(p['source'])} → {_range(p['target'])} as {p.get('dtype', 'float32')}",
    "quantize": lambda p: (
        f"Quantize to {p['dtype']} (scale {_fmt(p['scale'])}, zero point {p['zero_point']})"
        + (f" from {_range(p['source'])}" if p.get("source") is not None else "")
    ),
    "dequantize": lambda p: f"Dequantize (scale {_fmt(p['scale'])}, zero point {p['zero_point']})",
    "nan_to_num": lambda p: "Replace NaN/Inf with 0",
    "generate": lambda p: "Fill with zeros",
    "resize_input": lambda p: f"Resize the model's input to {list(p['shape'])}",
    "reassign": lambda p: "Bind the arrays to the inputs they fit",
}


def _range(r: Any) -> str:
    return f"[{_fmt(r[0])}, {_fmt(r[1])}]"


def make_fix(kind: str, input: str, **params: Any) -> Fix:
    """Build a ``Fix`` with its button label and its line of Python."""
    if kind not in _CODE:
        raise FixError(f"There is no fix called {kind!r}; known fixes: {', '.join(sorted(_CODE))}.")
    return Fix(kind=kind, input=input, label=_LABELS[kind](params), params=params, code=_CODE[kind](params))


def resize_bilinear(x: np.ndarray, size: tuple[int, int], mode: str = "stretch") -> np.ndarray:
    """Resize the H and W axes of an NHWC (or HWC, or HW) array with bilinear interpolation.

    ``mode`` is ``stretch`` (ignore the aspect ratio), ``pad`` (keep it, pad with zeros) or
    ``crop`` (keep it, cut the centre). The dtype is kept; integers are rounded and clipped.
    """
    height, width = int(size[0]), int(size[1])
    arr = np.asarray(x)
    squeeze_batch = arr.ndim == 3
    squeeze_channel = arr.ndim == 2
    if squeeze_channel:
        arr = arr[np.newaxis, :, :, np.newaxis]
    elif squeeze_batch:
        arr = arr[np.newaxis]
    if arr.ndim != 4:
        raise FixError(f"Resizing needs an image of 2 to 4 dimensions, but the data has {arr.ndim}.")
    n, h, w, c = arr.shape
    if mode == "stretch":
        th, tw = height, width
    else:
        ratio = min(height / h, width / w) if mode == "pad" else max(height / h, width / w)
        th, tw = max(1, round(h * ratio)), max(1, round(w * ratio))
    out = np.empty((n, th, tw, c), dtype=np.float32)
    for i in range(n):
        for ch in range(c):
            plane = Image.fromarray(arr[i, :, :, ch].astype(np.float32), mode="F")
            out[i, :, :, ch] = np.asarray(plane.resize((tw, th), Image.Resampling.BILINEAR))
    if mode == "pad":
        padded = np.zeros((n, height, width, c), dtype=np.float32)
        top, left = (height - th) // 2, (width - tw) // 2
        padded[:, top : top + th, left : left + tw] = out
        out = padded
    elif mode == "crop":
        top, left = (th - height) // 2, (tw - width) // 2
        out = out[:, top : top + height, left : left + width]
    if arr.dtype.kind in "iub":
        lo, hi = dtype_range(arr.dtype)
        out = np.clip(np.round(out), lo, hi)
    result = out.astype(arr.dtype)
    if squeeze_channel:
        return result[0, :, :, 0]
    return result[0] if squeeze_batch else result


def _to_rgb(x: np.ndarray) -> np.ndarray:
    if x.shape[-1] != 1:
        x = x[..., np.newaxis]
    return np.repeat(x, 3, axis=-1)


def _to_gray(x: np.ndarray) -> np.ndarray:
    gray = x[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if x.dtype.kind in "iu":
        gray = np.round(gray)
    return gray[..., np.newaxis].astype(x.dtype)


def _normalize(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    (slo, shi), (dlo, dhi) = p["source"], p["target"]
    span = (shi - slo) or 1.0
    return ((x.astype(np.float64) - slo) / span * (dhi - dlo) + dlo).astype(p.get("dtype", "float32"))


def _quantize(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    from .records import Quantization

    real = x.astype(np.float64)
    if p.get("source") is not None:
        real = _normalize(real, {"source": p["source"], "target": p["target"], "dtype": "float64"})
    q = Quantization(scale=(float(p["scale"]),), zero_point=(int(p["zero_point"]),))
    return quantize(real, q, p["dtype"])


def _cast(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    # Casting to an integer type saturates instead of wrapping: 300 into int8 is 127, not 44.
    dtype = np.dtype(p["dtype"])
    if dtype.kind in "iu":
        lo, hi = dtype_range(dtype)
        return np.clip(np.round(np.nan_to_num(x)), lo, hi).astype(dtype)
    return x.astype(dtype)


_ARRAY_FIXES: dict[str, Callable[[np.ndarray, dict[str, Any]], np.ndarray]] = {
    "add_batch": lambda x, p: np.expand_dims(x, 0),
    "remove_batch": lambda x, p: np.squeeze(x, axis=0),
    "take_sample": lambda x, p: x[p["index"] : p["index"] + 1],
    "add_channel": lambda x, p: x[..., np.newaxis],
    "nchw_to_nhwc": lambda x, p: np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))),
    "nhwc_to_nchw": lambda x, p: np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))),
    "to_rgb": lambda x, p: _to_rgb(x),
    "drop_alpha": lambda x, p: np.ascontiguousarray(x[..., :3]),
    "to_gray": lambda x, p: _to_gray(x),
    "resize_image": lambda x, p: resize_bilinear(x, (p["height"], p["width"]), p.get("mode", "stretch")),
    "reshape": lambda x, p: x.reshape(tuple(p["shape"])),
    "cast": _cast,
    "normalize": _normalize,
    "quantize": _quantize,
    "dequantize": lambda x, p: ((x.astype(np.float32) - p["zero_point"]) * p["scale"]).astype(np.float32),
    "nan_to_num": lambda x, p: np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0),
}


def apply_fix(feed: Feed, fix: Fix) -> Feed:
    """Return a new ``Feed`` with ``fix`` applied; ``feed`` is left as it was.

    Raises ``FixError`` when the fix does not apply (an unknown input, or an array whose
    shape the fix cannot handle).
    """
    p = dict(fix.params)
    if fix.kind == "reassign":
        mapping: dict[str, str] = p["mapping"]
        missing = [src for src in mapping.values() if src not in feed.arrays]
        if missing:
            raise FixError(f"Cannot reassign: there is no array called {missing[0]!r} in the data.")
        arrays = {target: feed.arrays[src] for target, src in mapping.items()}
        arrays.update({k: v for k, v in feed.arrays.items() if k not in arrays and k not in mapping.values()})
        return feed.replace(arrays=arrays)
    if fix.kind == "resize_input":
        return feed.replace(resize={**feed.resize, fix.input: tuple(int(d) for d in p["shape"])})
    if fix.kind == "generate":
        arrays = dict(feed.arrays)
        arrays[fix.input] = np.zeros(tuple(p["shape"]), dtype=p["dtype"])
        return feed.replace(arrays=arrays)
    if fix.input not in feed.arrays:
        raise FixError(f"Cannot apply “{fix.label}”: there is no data for input {fix.input!r}.")
    func = _ARRAY_FIXES.get(fix.kind)
    if func is None:
        raise FixError(f"There is no fix called {fix.kind!r}.")
    try:
        new = func(feed.arrays[fix.input], p)
    except FixError:
        raise
    except (ValueError, IndexError, TypeError) as exc:
        shape = tuple(feed.arrays[fix.input].shape)
        raise FixError(f"Cannot apply “{fix.label}” to input {fix.input!r} of shape {list(shape)}: {exc}.") from None
    arrays = dict(feed.arrays)
    arrays[fix.input] = new
    return feed.replace(arrays=arrays)
