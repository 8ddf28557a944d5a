"""Resize images the way the code that trained a model did: TensorFlow's, Pillow's or OpenCV's way.

The three disagree, and a model sees the difference. Shrinking a one-hot row of 16 values to 4,
``tf.image.resize`` (bilinear, half-pixel centres, no antialiasing) gives ``[0, 0.5, 0, 0]``;
Pillow's bilinear filter widens itself when it shrinks (antialiasing) and gives
``[0.036, 0.219, 0, 0]``. OpenCV's ``INTER_LINEAR`` samples where TensorFlow does, but computes
8-bit images in fixed point, so integer results can differ from TensorFlow's by one.

This module is self-contained on purpose (numpy, and Pillow only for ``"pillow"``): an exported
script embeds its source, so the script resizes exactly as lite-debug did.
"""

from __future__ import annotations

import numpy as np

METHODS = ("tf", "pillow", "opencv")
MODES = ("stretch", "crop", "pad")


def _taps(out_size, in_size):
    """Source indices and weights along one axis for half-pixel-centre bilinear sampling.

    As TensorFlow's resize_bilinear (half_pixel_centers=True) computes them: the source
    coordinate of output pixel i is (i + 0.5) * in / out - 0.5; below 0 or past the last pixel
    it clamps to the edge.
    """
    scale = np.float32(in_size / out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(src)
    lower = np.clip(floor.astype(np.int64), 0, in_size - 1)
    upper = np.clip(np.ceil(src).astype(np.int64), 0, in_size - 1)
    return lower, upper, (src - floor).astype(np.float32)


def _bilinear_tf(arr, th, tw):
    """tf.image.resize(method="bilinear", antialias=False) on an NHWC array; float32 result."""
    a = arr.astype(np.float32, copy=False)
    y0, y1, fy = _taps(th, a.shape[1])
    x0, x1, fx = _taps(tw, a.shape[2])
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    top = a[:, y0][:, :, x0] + (a[:, y0][:, :, x1] - a[:, y0][:, :, x0]) * fx
    bottom = a[:, y1][:, :, x0] + (a[:, y1][:, :, x1] - a[:, y1][:, :, x0]) * fx
    return top + (bottom - top) * fy


def _opencv_taps(out_size, in_size):
    # cv2.resize INTER_LINEAR: the same half-pixel source coordinate; at the edges the weight
    # goes to the edge pixel (as TensorFlow's clamping does).
    scale = in_size / out_size
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    lower = np.floor(src).astype(np.int64)
    frac = (src - lower).astype(np.float32)
    low_edge, high_edge = lower < 0, lower >= in_size - 1
    frac[low_edge | high_edge] = 0.0
    lower = np.clip(lower, 0, in_size - 1)
    return lower, np.minimum(lower + 1, in_size - 1), frac


def _bilinear_opencv(arr, th, tw):
    """cv2.resize(..., interpolation=cv2.INTER_LINEAR) on an NHWC array.

    8-bit images are computed as OpenCV does, with weights in 11-bit fixed point and the
    result rounded once; other types in float32.
    """
    y0, y1, fy = _opencv_taps(th, arr.shape[1])
    x0, x1, fx = _opencv_taps(tw, arr.shape[2])
    if arr.dtype == np.uint8:
        one = 2048  # INTER_RESIZE_COEF_SCALE
        wx1 = np.rint(fx * one).astype(np.int64)[None, None, :, None]
        wy1 = np.rint(fy * one).astype(np.int64)[None, :, None, None]
        wx0, wy0 = one - wx1, one - wy1
        a = arr.astype(np.int64)
        # Horizontal pass in fixed point, then the vertical one; OpenCV's SIMD path shifts the
        # rows down by 4 bits in between and adds a rounding constant at the end.
        top = (a[:, y0][:, :, x0] * wx0 + a[:, y0][:, :, x1] * wx1) >> 4
        bottom = (a[:, y1][:, :, x0] * wx0 + a[:, y1][:, :, x1] * wx1) >> 4
        acc = ((wy0 * top) >> 16) + ((wy1 * bottom) >> 16)
        return np.clip((acc + 2) >> 2, 0, 255).astype(np.float32)
    a = arr.astype(np.float32, copy=False)
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    top = a[:, y0][:, :, x0] * (1 - fx) + a[:, y0][:, :, x1] * fx
    bottom = a[:, y1][:, :, x0] * (1 - fx) + a[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bottom * fy


def _bilinear_pillow(arr, th, tw):
    """Pillow's Image.resize(BILINEAR), one float plane at a time (antialiased when shrinking)."""
    from PIL import Image

    n, _, _, c = arr.shape
    out = np.empty((n, th, tw, c), dtype=np.float32)
    for i in range(n):
        for ch in range(c):
            # Pillow's 32-bit float mode resizes one plane without rounding in between.
            plane = Image.fromarray(np.ascontiguousarray(arr[i, :, :, ch], dtype=np.float32), mode="F")
            out[i, :, :, ch] = np.asarray(plane.resize((tw, th), Image.Resampling.BILINEAR))
    return out


_FILTERS = {"tf": _bilinear_tf, "pillow": _bilinear_pillow, "opencv": _bilinear_opencv}


def resize_image(x, size, mode="stretch", method="tf"):
    """Resize the H and W axes of an NHWC (or HWC, or HW) array to ``size`` = (height, width).

    ``mode``: ``stretch`` ignores the aspect ratio; ``pad`` keeps it and pads with zeros;
    ``crop`` keeps it and cuts the centre. ``method``: ``tf`` (tf.image.resize, bilinear,
    half-pixel centres, no antialiasing), ``pillow`` (PIL's BILINEAR, which antialiases when it
    shrinks) or ``opencv`` (cv2.INTER_LINEAR). The dtype is kept: integers are rounded and
    clipped. Raises ``ValueError`` for an unknown mode or method, or an array that is not an image.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown resize mode {mode!r}; use one of {', '.join(MODES)}.")
    if method not in _FILTERS:
        raise ValueError(f"Unknown resize method {method!r}; use one of {', '.join(METHODS)}.")
    height, width = int(size[0]), int(size[1])
    arr = np.asarray(x)
    squeeze_batch, squeeze_channel = arr.ndim == 3, arr.ndim == 2
    if squeeze_channel:
        arr = arr[np.newaxis, :, :, np.newaxis]
    elif squeeze_batch:
        arr = arr[np.newaxis]
    if arr.ndim != 4:
        raise ValueError(f"Resizing needs an image of 2 to 4 dimensions, but the data has {arr.ndim}.")
    n, h, w, c = arr.shape
    if min(h, w, height, width) < 1:
        raise ValueError(f"Cannot resize a {h}×{w} image to {height}×{width}.")
    if mode == "stretch":
        th, tw = height, width
    else:
        ratio = min(height / h, width / w) if mode == "pad" else max(height / h, width / w)
        th, tw = max(1, round(h * ratio)), max(1, round(w * ratio))
    out = _FILTERS[method](arr, th, tw)
    if mode == "pad":
        padded = np.zeros((n, height, width, c), dtype=np.float32)
        top, left = (height - th) // 2, (width - tw) // 2
        padded[:, top : top + th, left : left + tw] = out
        out = padded
    elif mode == "crop":
        top, left = (th - height) // 2, (tw - width) // 2
        out = out[:, top : top + height, left : left + width]
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    elif arr.dtype.kind == "b":
        out = np.clip(np.round(out), 0, 1)
    result = out.astype(arr.dtype)
    if squeeze_channel:
        return result[0, :, :, 0]
    return result[0] if squeeze_batch else result
