"""lite-debug: find out why a TFLite / LiteRT model refuses your data, and fix it.

    >>> from lite_debug import inspect_model, load_data, diagnose, fix_all, run, explain
    >>> spec = inspect_model(open("model.tflite", "rb").read())
    >>> mismatches = diagnose(spec, load_data("photo.png", open("photo.png", "rb").read()))

The library never imports streamlit or TensorFlow, and never loads the interpreter in the
calling process: ``run`` uses a worker process.
"""

from __future__ import annotations

from .binding import bind
from .bundle import Bundle, read_bundle, write_bundle
from .diagnosis import FixOutcome, diagnose, fix_all
from .errors import BundleError, DataLoadError, FixError, LiteDebugError, ModelLoadError, WorkerError
from .explain import explain
from .fixes import apply_fix, make_fix
from .generate import generate_feed
from .inspection import inspect_model
from .loading import load_data
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
from .running import Limits, WorkerPool, run

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
