"""Access to the TFLite flatbuffer schema without loading the interpreter.

The schema module is pure Python (it needs only ``flatbuffers``), so reading a model through
it cannot crash the calling process the way native code can. ai-edge-litert ships it; where
that package is missing, TensorFlow's copy is used.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType


@lru_cache(maxsize=1)
def schema() -> ModuleType:
    try:
        from ai_edge_litert import schema_py_generated as module
    except ImportError:  # pragma: no cover - exercised only without ai-edge-litert
        from tensorflow.lite.python import schema_py_generated as module  # type: ignore[no-redef]
    return module


@lru_cache(maxsize=1)
def builtin_op_names() -> dict[int, str]:
    ops = schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


@lru_cache(maxsize=1)
def tensor_type_names() -> dict[int, str]:
    types = schema().TensorType
    return {v: k for k, v in vars(types).items() if not k.startswith("_") and isinstance(v, int)}


# TensorType name -> the numpy dtype name the interpreter uses for it. Types numpy has no
# dtype for keep a lower-case name of their own; diagnosis treats them as opaque.
NUMPY_NAMES = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "FLOAT64": "float64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "BOOL": "bool",
    "COMPLEX64": "complex64",
    "COMPLEX128": "complex128",
    "STRING": "string",
}
