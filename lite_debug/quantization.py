"""Affine quantization math, as the interpreter defines it: ``real = scale * (q - zero_point)``."""

from __future__ import annotations

import numpy as np

from .records import Quantization

__all__ = ["dequantize", "dtype_range", "quantize", "real_range"]


def dtype_range(dtype: str | np.dtype) -> tuple[float, float]:
    """The smallest and largest value a numeric dtype holds."""
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return float(info.min), float(info.max)
    if dt.kind == "b":
        return 0.0, 1.0
    info = np.finfo(dt)
    return float(info.min), float(info.max)


def _broadcast(values: tuple, q: Quantization, ndim: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size <= 1 or ndim == 0:
        return arr.reshape(()) if arr.size == 1 else np.zeros(())
    shape = [1] * ndim
    shape[q.quantized_dimension] = arr.size
    return arr.reshape(shape)


def quantize(x: np.ndarray, q: Quantization, dtype: str | np.dtype) -> np.ndarray:
    """Map real values to ``dtype`` with the tensor's scale and zero point: round, then clip."""
    if not q.is_quantized:
        raise ValueError("The tensor has no quantization parameters, so there is nothing to quantize with.")
    x = np.asarray(x, dtype=np.float64)
    scale = _broadcast(q.scale, q, x.ndim)
    zero = _broadcast(q.zero_point or (0,), q, x.ndim)
    lo, hi = dtype_range(dtype)
    return np.clip(np.round(x / scale + zero), lo, hi).astype(dtype)


def dequantize(raw: np.ndarray, q: Quantization) -> np.ndarray:
    """Real values of a quantized array as a new float32 array; any other array comes back as is.

    Computed in float32 in place, with no temporary larger than the result: a 128 MiB int8
    output costs 512 MiB here, not the 2 GiB that float64 temporaries took. Integers of 8 and
    16 bits are exact in float32 before the scale is applied; wider ones go through float64
    a million elements at a time, which is what the interpreter's own float arithmetic keeps.
    Per-channel parameters apply along ``quantized_dimension``; a count that does not match
    that dimension's size raises ``ValueError`` with a sentence.
    """
    if not q.is_quantized or raw.dtype.kind not in "iu":
        return raw
    scale = _broadcast(q.scale, q, raw.ndim).astype(np.float32)
    zero = _broadcast(q.zero_point or (0,), q, raw.ndim)
    if q.per_channel and raw.ndim:
        axis = q.quantized_dimension
        if not 0 <= axis < raw.ndim or raw.shape[axis] != len(q.scale) or (len(q.zero_point) not in (0, 1, len(q.scale))):
            raise ValueError(
                f"The tensor has {len(q.scale)} per-channel scales on dimension {axis}, but its shape is "
                f"{list(raw.shape)}; the model's quantization parameters do not fit the tensor."
            )
    out = np.empty(raw.shape, dtype=np.float32)
    if raw.dtype.itemsize <= 2:
        np.subtract(raw, zero.astype(np.float32), out=out, dtype=np.float32)
        out *= scale
        return out
    if zero.ndim or scale.ndim:  # per-channel: one channel's slice at a time
        axis = q.quantized_dimension
        raw_c, out_c = np.moveaxis(raw, axis, 0), np.moveaxis(out, axis, 0)
        zeros = np.broadcast_to(np.asarray(q.zero_point or (0,), dtype=np.float64), (len(q.scale),))
        for c in range(len(q.scale)):
            out_c[c] = (raw_c[c].astype(np.float64) - zeros[c]) * float(q.scale[c])
        return out
    flat_raw, flat_out = raw.reshape(-1), out.reshape(-1)
    step = 1 << 20
    z, sc = float(zero), float(q.scale[0])
    for start in range(0, flat_raw.size, step):
        piece = flat_raw[start : start + step].astype(np.float64)
        piece -= z
        piece *= sc
        flat_out[start : start + step] = piece
    return out


def real_range(q: Quantization, dtype: str | np.dtype) -> tuple[float, float] | None:
    """The real values a per-tensor quantized input can represent, or None if not quantized."""
    if not q.is_quantized or q.per_channel:
        return None
    lo, hi = dtype_range(dtype)
    zp = q.zero_point[0] if q.zero_point else 0
    return q.scale[0] * (lo - zp), q.scale[0] * (hi - zp)
