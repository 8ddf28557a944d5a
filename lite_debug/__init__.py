"""lite-debug: find out why a TFLite / LiteRT model refuses your data, and fix it.

    >>> from lite_debug import inspect_model, load_data, diagnose, fix_all, run, explain
    >>> spec = inspect_model(open("model.tflite", "rb").read())
    >>> mismatches = diagnose(spec, load_data("photo.png", open("photo.png", "rb").read()))

The library never imports streamlit or TensorFlow, and never loads the interpreter in the
calling process: ``run`` uses a worker process.
"""

from __future__ import annotations

import importlib
from typing import Any

# What the dashboard's first page needs is imported now; the rest (numpy with it) when first
# used, so `streamlit run app.py` draws the gallery without waiting for the engine.
from .errors import BundleError, DataLoadError, FixError, LiteDebugError, ModelLoadError, WorkerError
from .explain import explain  # also keeps `lite_debug.explain` the function once the module is imported
from .records import (
    Explanation,
    Feed,
    Fix,
    Mismatch,
    ModelSpec,
    OpInfo,
    OutputTensor,
    Quantization,
    RunResult,
    SignatureSpec,
    TensorSpec,
)

_LAZY = {
    "bind": "binding",
    "Bundle": "bundle",
    "read_bundle": "bundle",
    "write_bundle": "bundle",
    "FixOutcome": "diagnosis",
    "diagnose": "diagnosis",
    "fix_all": "diagnosis",
    "apply_fix": "fixes",
    "make_fix": "fixes",
    "generate_feed": "generate",
    "inspect_model": "inspection",
    "load_data": "loading",
    "Limits": "running",
    "WorkerPool": "running",
    "run": "running",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "Bundle",
    "BundleError",
    "DataLoadError",
    "Explanation",
    "Feed",
    "Fix",
    "FixError",
    "FixOutcome",
    "Limits",
    "LiteDebugError",
    "Mismatch",
    "ModelLoadError",
    "ModelSpec",
    "OpInfo",
    "OutputTensor",
    "Quantization",
    "RunResult",
    "SignatureSpec",
    "TensorSpec",
    "WorkerError",
    "WorkerPool",
    "apply_fix",
    "bind",
    "diagnose",
    "explain",
    "fix_all",
    "generate_feed",
    "inspect_model",
    "load_data",
    "make_fix",
    "read_bundle",
    "run",
    "write_bundle",
]
