"""Hand-made ModelSpec records for unit tests that need no model file."""

from __future__ import annotations

from lite_debug.records import ModelSpec, Quantization, SignatureSpec, TensorSpec


def tensor(name="input", shape=(1, 224, 224, 3), dtype="float32", sig=None, index=0, scale=None, zero_point=0):
    q = Quantization(scale=(scale,), zero_point=(zero_point,)) if scale is not None else Quantization()
    return TensorSpec(
        index=index,
        name=name,
        shape=tuple(shape),
        shape_signature=tuple(sig) if sig is not None else tuple(shape),
        dtype=dtype,
        quantization=q,
        tensor_name=name,
    )


def model(*inputs, outputs=None, signatures=()):
    outputs = outputs or (tensor("out", (1, 10), index=99),)
    return ModelSpec(
        size=1000,
        schema_version=3,
        description="",
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        signatures=tuple(signatures),
    )


def signature(key, *inputs):
    return SignatureSpec(key=key, subgraph_index=0, inputs=tuple(inputs), outputs=(tensor("out", (1, 4), index=50),))
