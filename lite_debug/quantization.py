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
    """Real values of a quantized array as float32; a float array comes back unchanged."""
    if not q.is_quantized or raw.dtype.kind not in "iu":
        return raw
    scale = _broadcast(q.scale, q, raw.ndim)
    zero = _broadcast(q.zero_point or (0,), q, raw.ndim)
    return ((raw.astype(np.float64) - zero) * scale).astype(np.float32)


def real_range(q: Quantization, dtype: str | np.dtype) -> tuple[float, float] | None:
    """The real values a per-tensor quantized input can represent, or None if not quantized."""
    if not q.is_quantized or q.per_channel:
        return None
    lo, hi = dtype_range(dtype)
    zp = q.zero_point[0] if q.zero_point else 0
    return q.scale[0] * (lo - zp), q.scale[0] * (hi - zp)
