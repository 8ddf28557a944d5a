"""Inputs made up to fit a model: zeros, random values, or uniform values in a range.

A model that cannot run at all (an op the runtime lacks, a reshape that breaks) fails the same
on any data, so running it on generated inputs catches that before anyone hunts for a file.
"""

from __future__ import annotations

import numpy as np

from .errors import FixError
from .quantization import dtype_range
from .records import Feed, ModelSpec, TensorSpec

__all__ = ["GENERATE_MODES", "generate_array", "generate_feed"]

GENERATE_MODES = ("zeros", "random", "uniform")
MAX_GENERATED_BYTES = 1 << 30  # a model declaring a larger input gets a sentence, not a MemoryError


def generate_array(
    tensor: TensorSpec,
    mode: str = "zeros",
    *,
    low: float = 0.0,
    high: float = 1.0,
    seed: int = 0,
    max_bytes: int = MAX_GENERATED_BYTES,
) -> np.ndarray:
    """An array of the tensor's shape and dtype.

    ``random`` draws from [0, 1) for floats and from the whole range of integer types (for a
    quantized input: the real range its scale and zero point represent); ``uniform`` draws real
    values from [low, high) and quantizes them when the input is quantized. Raises ``FixError``
    for types that cannot be generated (strings, resources), an unknown mode, or an input larger
    than ``max_bytes``.
    """
    dtype = tensor.numpy_dtype
    if dtype is None or dtype.kind not in "biuf":
        raise FixError(f"Cannot make up data for input {tensor.name!r} of type {tensor.dtype}; give a file instead.")
    shape = tuple(max(1, int(d)) for d in tensor.shape)
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize > max_bytes:
        raise FixError(
            f"Input {tensor.name!r} would take {count * dtype.itemsize:,} bytes ({list(shape)} of {dtype.name}), more than "
            f"the {max_bytes:,} bytes lite-debug makes up; give a file instead."
        )
    if mode == "zeros":
        q = tensor.quantization
        if q.is_quantized and dtype.kind in "iu" and not q.per_channel:
            # Zero as a real value is the zero point, not the integer 0.
            lo, hi = dtype_range(dtype)
            zero = q.zero_point[0] if q.zero_point else 0
            if not lo <= zero <= hi:
                raise FixError(
                    f"Input {tensor.name!r} declares zero point {zero}, which {dtype.name} cannot hold: the model "
                    "is corrupt, so lite-debug cannot make up data for it."
                )
            return np.full(shape, zero, dtype=dtype)
        return np.zeros(shape, dtype=dtype)
    rng = np.random.default_rng(seed)
    if mode == "random":
        if dtype.kind == "f":
            return rng.random(shape).astype(dtype)
        if dtype.kind == "b":
            return rng.random(shape) < 0.5
        lo, hi = dtype_range(dtype)
        if dtype.itemsize > 2:
            lo, hi = 0, 100  # token ids, indices, counts: keep them small and valid-looking
        return rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(dtype)
    if mode == "uniform":
        if high <= low:
            raise FixError(f"The range for uniform values must have low < high, not {low}…{high}.")
        real = rng.uniform(low, high, size=shape)
        q = tensor.quantization
        if dtype.kind in "iu" and q.is_quantized and not q.per_channel:
            from .quantization import quantize

            return quantize(real, q, dtype)
        if dtype.kind in "iu":
            lo, hi = dtype_range(dtype)
            return np.clip(np.round(real), lo, hi).astype(dtype)
        return real.astype(dtype)
    raise FixError(f"Unknown way to generate data {mode!r}; use one of {', '.join(GENERATE_MODES)}.")


def generate_feed(spec: ModelSpec, mode: str = "zeros", signature: str | None = None, **kwargs) -> Feed:
    """A ``Feed`` with a generated array for every input of the model (or signature)."""
    inputs, _ = spec.io(signature)
    return Feed(arrays={t.name: generate_array(t, mode, **kwargs) for t in inputs})
