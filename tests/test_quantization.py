"""Affine quantization: per-tensor and per-channel dequantization, exact and without temporaries."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from lite_debug.quantization import dequantize, quantize, real_range
from lite_debug.records import Quantization


def reference(raw: np.ndarray, q: Quantization) -> np.ndarray:
    """The definition, in float64, channel by channel."""
    scale = np.asarray(q.scale, np.float64)
    zero = np.asarray(q.zero_point or (0,), np.float64)
    if len(scale) > 1:
        shape = [1] * raw.ndim
        shape[q.quantized_dimension] = len(scale)
        scale = scale.reshape(shape)
        zero = zero.reshape(shape) if zero.size > 1 else zero
    return (raw.astype(np.float64) - zero) * scale


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32"])
def test_per_tensor_dequantization_is_the_definition(dtype):
    info = np.iinfo(dtype)
    raw = np.random.default_rng(0).integers(max(info.min, -(2**20)), min(info.max, 2**20), (3, 5, 7), dtype=dtype)
    q = Quantization(scale=(0.0173,), zero_point=(-3 if info.min < 0 else 128,))
    got = dequantize(raw, q)
    assert got.dtype == np.float32 and got.shape == raw.shape
    assert np.allclose(got, reference(raw, q), rtol=1e-6, atol=0)


@pytest.mark.parametrize("axis", [0, 1, 3])
@pytest.mark.parametrize("dtype", ["int8", "int32"])
def test_per_channel_dequantization_uses_each_channels_parameters(axis, dtype):
    shape = [2, 3, 4, 5]
    channels = shape[axis]
    rng = np.random.default_rng(axis)
    raw = rng.integers(-100, 100, shape, dtype=dtype)
    q = Quantization(
        scale=tuple(float(s) for s in rng.uniform(0.001, 1.0, channels)),
        zero_point=tuple(int(z) for z in rng.integers(-5, 5, channels)),
        quantized_dimension=axis,
    )
    got = dequantize(raw, q)
    assert got.dtype == np.float32
    assert np.allclose(got, reference(raw, q), rtol=1e-6)
    # Channel c of the result uses scale c and zero point c, nothing else.
    c = channels - 1
    index = [slice(None)] * 4
    index[axis] = c
    assert np.allclose(got[tuple(index)], (raw[tuple(index)] - q.zero_point[c]) * q.scale[c], rtol=1e-6)


def test_per_channel_with_one_zero_point_for_all():
    raw = np.arange(12, dtype=np.int8).reshape(3, 4)
    q = Quantization(scale=(1.0, 2.0, 3.0, 4.0), zero_point=(1,), quantized_dimension=1)
    assert dequantize(raw, q).tolist() == ((raw - 1) * np.array([1.0, 2.0, 3.0, 4.0])).tolist()


def test_parameters_that_do_not_fit_the_tensor_are_refused_with_a_sentence():
    q = Quantization(scale=(1.0, 2.0), zero_point=(0, 0), quantized_dimension=1)
    with pytest.raises(ValueError, match="2 per-channel scales on dimension 1, but its shape is \\[3, 4\\]"):
        dequantize(np.zeros((3, 4), np.int8), q)


def test_float_and_unquantized_arrays_come_back_as_they_are():
    x = np.ones((2, 2), np.float32)
    assert dequantize(x, Quantization(scale=(0.5,), zero_point=(0,))) is x
    raw = np.ones(3, np.int8)
    assert dequantize(raw, Quantization()) is raw


def test_dequantizing_takes_no_temporary_beyond_the_result():
    # 16 MiB of int8 -> 64 MiB of float32; float64 temporaries took 256 MiB more.
    raw = np.ones(16 << 20, np.int8)
    q = Quantization(scale=(0.5,), zero_point=(1,))
    tracemalloc.start()
    try:
        out = dequantize(raw, q)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.nbytes == 64 << 20 and float(out[0]) == 0.0
    assert peak < out.nbytes + (4 << 20), f"peak {peak >> 20} MiB for a {out.nbytes >> 20} MiB result"
    # The same for 32-bit integers, a million elements at a time through float64.
    raw = np.ones(4 << 20, np.int32)
    tracemalloc.start()
    try:
        out = dequantize(raw, q)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < out.nbytes + (20 << 20)


def test_quantize_then_dequantize_stays_within_half_a_step():
    q = Quantization(scale=(0.02,), zero_point=(-10,))
    x = np.linspace(-2.3, 2.3, 101).astype(np.float32)
    back = dequantize(quantize(x, q, "int8"), q)
    assert np.all(np.abs(back - x) <= 0.01 + 1e-6)
    lo, hi = real_range(q, "int8")
    assert lo == pytest.approx(0.02 * (-128 + 10)) and hi == pytest.approx(0.02 * (127 + 10))
