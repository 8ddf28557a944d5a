"""One serialisation of a workspace: what a bundle holds, and what the case store will keep.

``dump_workspace`` turns a ``Workspace`` into a JSON-able manifest and a few binary members
(the model, each array of the data as given as an ``.npy`` written without pickling, each raw
output of the last run). The manifest names every member by its content address,
``sha256:<hex>``, as the case store names its blobs, so the same manifest can be saved there
as it is; a bundle keeps the members as files and maps the addresses to their paths.

``load_workspace`` rebuilds the workspace from a manifest and a function that reads a member:
the model inspected again, the data as given, the picks, every fix replayed with ``make_fix``
and ``apply_fix`` in its click (so undo works as before), the signature, the error a bug
report reported. The run that was saved is kept apart, as ``Recorded``: the rebuilt workspace
has not run yet, and ``compare_outputs`` sets a new run beside the saved one.

A manifest comes from a file somebody attached to a bug report: everything in it is checked
(types, sizes, names, which fixes and with which parameters, the content address of every
member read) before it is used, nothing is unpickled, and every refusal is a ``BundleError``
with a sentence.
"""

from __future__ import annotations

import hashlib
import io
import math
import platform
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, get_args

import numpy as np

from .errors import BundleError, FixError, LiteDebugError
from .records import (
    AudioInfo,
    Explanation,
    Feed,
    Fix,
    FixKind,
    Mismatch,
    MismatchKind,
    OutputTensor,
    Quantization,
    RunResult,
    RunStatus,
    Step,
)

if TYPE_CHECKING:
    from .session import Workspace

__all__ = [
    "FORMAT",
    "VERSION",
    "ParsedCase",
    "Recorded",
    "VersionDifference",
    "build_workspace",
    "compare_outputs",
    "compare_versions",
    "dump_workspace",
    "load_workspace",
    "parse_case",
    "versions",
]

FORMAT = "lite-debug-case"
VERSION = 1

# What a manifest may hold. Generous for real work, small enough that a hostile manifest
# cannot make the reader allocate or loop much.
MAX_ARRAYS = 256
MAX_OUTPUTS = 1024
MAX_CLICKS = 4096
MAX_STEPS = 4096
MAX_MISMATCHES = 4096
MAX_FIXES_PER_MISMATCH = 64
MAX_ENTRIES = 1024  # preferences, versions, resize maps, fix mappings, facts
MAX_NAME = 4096  # characters of a name (input, output, file, choice key)
MAX_TEXT = 256 << 10  # characters of a message or a reported passage
MAX_DIMS = 32
MAX_DIM = 2**31 - 1
MAX_ARRAY_BYTES = 1 << 30  # what loading.LoadLimits lets one array be
MAX_REPLAY_ELEMENTS = 1 << 28  # what one replayed fix may make (a resize, generated zeros)

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_DTYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"}
)
_MODES = ("stretch", "crop", "pad")
_METHODS = ("tf", "pillow", "opencv")
_LIMITS = ("time", "memory", "cpu")


# -- records -------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Recorded:
    """What a saved case (or a bundle) recorded, kept apart from what this session computes.

    ``run`` is the last run when it was saved (status, error, explanation, outputs), None when
    it had not run; ``stale`` is True when the data changed after that run (fixes applied or
    undone since), so its outputs belong to other data. ``diagnosis`` is the diagnosis of the
    data as given, before any fix. ``versions`` are those of the machine that saved it
    (compare with ``compare_versions``). ``notes`` are sentences to show: an old bundle, a fix
    that replayed to other values than it had.
    """

    run: RunResult | None = None
    stale: bool = False
    diagnosis: tuple[Mismatch, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    format_version: int = VERSION
    notes: tuple[str, ...] = ()

    @property
    def errors(self) -> tuple[Mismatch, ...]:
        """The errors of the diagnosis before any fix: the original failure, as diagnosed."""
        return tuple(m for m in self.diagnosis if m.severity == "error")


@dataclass(frozen=True)
class VersionDifference:
    """A package (or Python, or the platform) whose version differs from the recorded one.

    ``recorded`` or ``current`` is None where one side did not have it installed.
    """

    name: str
    recorded: str | None
    current: str | None

    @property
    def sentence(self) -> str:
        if self.recorded is None:
            return f"{self.name} {self.current} is installed here; the recorded run had none."
        if self.current is None:
            return f"The recorded run had {self.name} {self.recorded}; it is not installed here."
        return f"{self.name} was {self.recorded} for the recorded run and is {self.current} here."

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "recorded": self.recorded, "current": self.current}


def versions() -> dict[str, str]:
    """Versions of what a run depends on, without importing the runtime."""
    found = {"python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__}
    for dist in ("ai-edge-litert", "tensorflow", "tensorflow-cpu", "tflite-runtime", "lite-debug"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


# -- comparing a new run with the recorded one ---------------------------------------------------
def compare_outputs(recorded: Recorded | RunResult | None, result: RunResult | None) -> dict[str, dict[str, Any]]:
    """Each output of the recorded run beside the same output of ``result``, by name.

    For every output either run has: ``max_abs``, the largest absolute difference of the real
    (dequantized) values over the positions finite on both sides (None when the shapes differ
    or one side lacks the output); ``nonfinite_differs``, how many positions are NaN or
    infinite on one side and not the same on the other; ``equal`` (the raw arrays are
    identical, dtype included), ``shape_equal``, ``dtype_equal``, ``recorded_shape`` and
    ``shape`` (None on the side that lacks it). Every value is plain JSON (no NaN or
    infinity). Empty when either run is missing. Raises nothing.
    """
    run = recorded.run if isinstance(recorded, Recorded) else recorded
    if run is None or result is None:
        return {}
    old = {o.name: o for o in run.outputs}
    new = {o.name: o for o in result.outputs}
    out: dict[str, dict[str, Any]] = {}
    for name in [*old, *(n for n in new if n not in old)]:
        a, b = old.get(name), new.get(name)
        entry: dict[str, Any] = {
            "max_abs": None,
            "nonfinite_differs": 0,
            "equal": False,
            "shape_equal": False,
            "dtype_equal": False,
            "recorded_shape": list(a.shape) if a is not None else None,
            "shape": list(b.shape) if b is not None else None,
        }
        if a is not None and b is not None:
            entry["shape_equal"] = a.shape == b.shape
            entry["dtype_equal"] = a.dtype == b.dtype
            entry["equal"] = bool(
                entry["shape_equal"]
                and entry["dtype_equal"]
                and np.array_equal(a.raw, b.raw, equal_nan=a.raw.dtype.kind in "fc")
            )
            if entry["shape_equal"] and a.values.dtype.kind in "biuf" and b.values.dtype.kind in "biuf":
                x, y = a.values.astype(np.float64), b.values.astype(np.float64)
                both = np.isfinite(x) & np.isfinite(y)
                same = (x == y) | (np.isnan(x) & np.isnan(y))  # inf == inf; NaN on both sides
                entry["nonfinite_differs"] = int(np.count_nonzero(~both & ~same))
                diff = np.abs(x[both] - y[both])
                entry["max_abs"] = float(diff.max()) if diff.size else 0.0
        out[name] = entry
    return out


_COMPARED = (
    "python",
    "numpy",
    "ai-edge-litert",
    "tensorflow",
    "tensorflow-cpu",
    "tflite-runtime",
    "lite-debug",
    "platform",
)


def compare_versions(recorded: Mapping[str, str], current: Mapping[str, str] | None = None) -> list[VersionDifference]:
    """The versions that differ between the recorded run and this machine (``versions()`` by
    default): the runtime and what feeds it first, then anything else either side names."""
    here = versions() if current is None else dict(current)
    names = [n for n in _COMPARED if n in recorded or n in here]
    names += sorted((set(recorded) | set(here)) - set(names))
    return [
        VersionDifference(name, recorded.get(name), here.get(name))
        for name in names
        if recorded.get(name) != here.get(name)
    ]


# -- writing -------------------------------------------------------------------------------------
def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _address(data: bytes | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _array_digest(x: np.ndarray) -> str:
    """The SHA-256 (hex) of an array's values: a check on a replay, not an address. It carries no
    "sha256:" prefix, since a case store reads every such string in a manifest as a stored part."""
    x = np.ascontiguousarray(x)
    return hashlib.sha256(memoryview(x).cast("B") if x.size else b"").hexdigest()


def _plain(value: Any) -> Any:
    """JSON-ready: tuples to lists, numpy scalars and arrays to Python, anything else to text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _fix_dict(fix: Fix) -> dict[str, Any]:
    return _plain(fix.to_dict())


def _explanation_dict(e: Explanation | None) -> dict[str, Any] | None:
    return None if e is None else _plain({**e.to_dict(), "message": e.message})


def _shapes(feed: Feed) -> dict[str, Any]:
    return {
        "arrays": [
            {
                "name": name,
                "dtype": str(np.asarray(x).dtype),
                "shape": [int(d) for d in np.shape(x)],
                "values_sha256": _array_digest(np.asarray(x)),
            }
            for name, x in feed.arrays.items()
        ],
        "resize": {k: [int(d) for d in v] for k, v in feed.resize.items()},
    }


def _click_dict(click: tuple[str, object]) -> dict[str, Any]:
    action, arg = click
    if action == "all":
        return {"action": "all", "include_warnings": bool(arg)}
    if action == "fix":
        return {"action": "fix", "fix": _fix_dict(arg)}  # type: ignore[arg-type]
    if action == "sample":
        return {"action": "sample", "index": int(arg)}  # type: ignore[arg-type]
    return {"action": "batch"}


def _run_dict(result: RunResult, stale: bool, put: Callable[[bytes], str]) -> dict[str, Any]:
    return _plain(
        {
            "status": result.status,
            "error_type": result.error_type,
            "error_message": result.error_message,
            "kernel_message": result.kernel_message,
            "signal": result.signal,
            "invoke_ms": result.invoke_ms,
            "total_ms": result.total_ms,
            "detail": result.detail,
            "limit": result.limit,
            "explanation": _explanation_dict(result.explanation),
            "stale": bool(stale),
            "outputs": [
                {
                    "name": o.name,
                    "index": int(o.index),
                    "member": put(_npy(o.raw)),
                    "dtype": str(o.raw.dtype),
                    "shape": [int(d) for d in o.raw.shape],
                    "quantization": {
                        "scale": list(o.quantization.scale),
                        "zero_point": list(o.quantization.zero_point),
                        "quantized_dimension": int(o.quantization.quantized_dimension),
                    },
                }
                for o in result.outputs
                if str(o.raw.dtype) in _DTYPES  # strings and complex values are not kept
            ],
        }
    )


def dump_workspace(ws: "Workspace") -> tuple[dict[str, Any], dict[str, bytes | memoryview]]:
    """A workspace as a JSON-able manifest and its binary members, keyed by content address.

    The members are the model (as the workspace holds it: bytes or a memoryview, not copied),
    each array of the data as given (``.npy``, no pickle) and each raw output of the last run.
    The manifest holds the data's shapes, the picks, the diagnosis of the data as given, every
    click and every fix applied (kind, parameters, label, line of Python, what it answered, the
    shape and hash of the data after it), the last run (flagged ``stale`` if the data changed
    since), the reported error and the versions of this machine. Raises ``BundleError`` for
    data numpy cannot save without pickling (object arrays).
    """
    from .diagnosis import diagnose

    members: dict[str, bytes | memoryview] = {}

    def put(data: bytes | memoryview, digest: str | None = None) -> str:
        digest = digest or _address(data)
        members.setdefault(digest, data)
        return digest

    arrays = []
    for name, x in ws.original.arrays.items():
        x = np.asarray(x)
        if x.dtype.hasobject or str(x.dtype) not in _DTYPES:
            raise BundleError(
                f"The data for {name!r} is an array of {x.dtype}, which a saved case does not hold (only numbers "
                "and booleans, never pickled objects); convert it to a numeric array first."
            )
        arrays.append({"name": name, "member": put(_npy(x)), "dtype": str(x.dtype), "shape": [int(d) for d in x.shape]})
    diagnosis = diagnose(ws.spec, ws.original, ws.signature, choices=ws.choices) if ws.original.arrays else []
    reported = None
    if ws.reported is not None:
        reported = {
            "path": ws.reported.path,
            "text": ws.reported.text,
            "explanation": _explanation_dict(ws.reported.explanation),
        }
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # The model's hash is the one its spec computed once (60 ms for 100 MB), not again per save.
        "model": {"name": ws.model_name, "member": put(ws.model_bytes, "sha256:" + ws.spec.sha256 if ws.spec.sha256 else None),
                  "size": len(ws.model_bytes)},
        "signature": ws.signature,
        "data_source": ws.data_source,
        "original": {
            "arrays": arrays, "resize": {k: [int(d) for d in v] for k, v in ws.original.resize.items()},
            "facts": {k: info.to_dict() for k, info in ws.original.facts.items()},  # a recording's rate, channels, …
        },
        "preferences": dict(ws.preferences),
        "diagnosis": [_plain(m.to_dict()) for m in diagnosis],
        "clicks": [_click_dict(c) for c in ws.clicks],
        "steps": [
            {
                "click": int(s.click),
                "fix": _fix_dict(s.fix),
                "answered": _plain(s.answered.to_dict()) if s.answered is not None else None,
                "after": _shapes(s.feed),
            }
            for s in ws.steps
        ],
        "run": _run_dict(ws.result, ws.result_stale, put) if ws.result is not None else None,
        "reported": _plain(reported),
        "versions": versions(),
    }
    return _plain(manifest), members


# -- reading: every value checked before it is used ----------------------------------------------
def _refuse(where: str, what: str) -> BundleError:
    return BundleError(
        f"The saved case is damaged or was altered: its {where} {what}, so it cannot be opened; "
        "export it again from lite-debug, or open the model and data on their own."
    )


def _obj(v: Any, where: str, keys: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _refuse(where, f"should be an object, not {_kind(v)}")
    if len(v) > MAX_ENTRIES:
        raise _refuse(where, f"has {len(v):,} entries, more than the {MAX_ENTRIES:,} allowed")
    missing = [k for k in keys if k not in v]
    if missing:
        raise _refuse(where, f"lacks {missing[0]!r}")
    return v


def _list(v: Any, where: str, most: int) -> list[Any]:
    if not isinstance(v, list):
        raise _refuse(where, f"should be a list, not {_kind(v)}")
    if len(v) > most:
        raise _refuse(where, f"has {len(v):,} items, more than the {most:,} allowed")
    return v


def _text(v: Any, where: str, most: int = MAX_NAME, optional: bool = False) -> str:
    if v is None and optional:
        return None  # type: ignore[return-value]
    if not isinstance(v, str):
        raise _refuse(where, f"should be text, not {_kind(v)}")
    if len(v) > most:
        raise _refuse(where, f"is {len(v):,} characters long, more than the {most:,} allowed")
    return v


def _int(v: Any, where: str, lo: int = -MAX_DIM, hi: int = MAX_DIM, optional: bool = False) -> int:
    if v is None and optional:
        return None  # type: ignore[return-value]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _refuse(where, f"should be a whole number, not {_kind(v)}")
    if not lo <= v <= hi:
        raise _refuse(where, f"is {v}, outside {lo}…{hi}")
    return v


def _number(v: Any, where: str, optional: bool = False, positive: bool = False) -> float:
    if v is None and optional:
        return None  # type: ignore[return-value]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _refuse(where, f"should be a number, not {_kind(v)}")
    if not math.isfinite(v) or abs(v) > 1e300:
        raise _refuse(where, f"is {v}, not a finite number")
    if positive and v <= 0:
        raise _refuse(where, f"is {v}, not a positive number")
    return v


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise _refuse(where, f"should be true or false, not {_kind(v)}")
    return v


def _choice(v: Any, where: str, allowed: Sequence[Any]) -> Any:
    if not isinstance(v, (str, type(None))) or v not in allowed:
        shown = repr(v)[:60] if isinstance(v, str) else _kind(v)
        raise _refuse(where, f"is {shown}, none of {', '.join(repr(a) for a in allowed if a is not None)}")
    return v


def _shape(v: Any, where: str, lo: int = 0) -> tuple[int, ...]:
    dims = _list(v, where, MAX_DIMS)
    return tuple(_int(d, f"{where}[{i}]", lo, MAX_DIM) for i, d in enumerate(dims))


def _dtype(v: Any, where: str) -> str:
    return _choice(v, where, sorted(_DTYPES))


def _digest(v: Any, where: str) -> str:
    if not isinstance(v, str) or not _DIGEST.fullmatch(v):
        raise _refuse(where, "should be a content address (sha256: and 64 hex digits)")
    return v


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true or false", type(None): "null"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__
    )


# The parameters each kind of fix takes, and what each must be: everything a fix's label and
# line of Python interpolate is checked here, so a manifest cannot write code into a script.
_RANGE, _SIZE, _INDEX = "range", "size", "index"
_PARAMS: dict[str, dict[str, str]] = {
    "reassign": {"mapping": "mapping"},
    "generate": {"shape": "shape", "dtype": "dtype"},
    "take_sample": {"index": _INDEX},
    "reshape": {"shape": "reshape"},
    "resize_image": {"height": _SIZE, "width": _SIZE, "mode?": "mode", "method?": "method"},
    "resize_input": {"index": _INDEX, "shape": "shape"},
    "normalize": {"source": _RANGE, "target": _RANGE, "dtype?": "dtype"},
    "cast": {"dtype": "dtype", "from_pixels?": "bool"},
    "quantize": {"dtype": "dtype", "scale": "scale", "zero_point": "int", "source?": "range?", "target?": _RANGE},
    "dequantize": {"scale": "scale", "zero_point": "int"},
    "to_mono": {"channels?": _SIZE},
    "take_channel": {"index": _INDEX, "channels?": _SIZE},
    "resample": {"from_rate": "rate", "to_rate": "rate", "axis?": _INDEX},
    "fit_length": {"size": "samples", "mode": "fit", "rate?": "rate", "axis?": _INDEX},
    "split_windows": {"size": "samples", "hop": "samples", "count?": "samples", "rate?": "rate", "axis?": _INDEX},
    "pcm_to_float": {},
}
_MAX_RATE = 768_000  # Hz: what audio interfaces record at, and what the loader accepts
_MAX_SAMPLES = 1 << 31
assert set(_PARAMS) <= set(get_args(FixKind))


def _param(kind: str, v: Any, where: str) -> Any:
    if kind == "mapping":
        m = _obj(v, where)
        return {_text(k, f"{where} key"): _text(s, f"{where}[{k!r}]") for k, s in m.items()}
    if kind in ("shape", "reshape"):
        return list(_shape(v, where, lo=-1 if kind == "reshape" else 0))
    if kind == "dtype":
        return _dtype(v, where)
    if kind == _INDEX:
        return _int(v, where, -MAX_DIM, MAX_DIM)
    if kind == _SIZE:
        return _int(v, where, 1, 1 << 16)
    if kind == "mode":
        return _choice(v, where, _MODES)
    if kind == "method":
        return _choice(v, where, _METHODS)
    if kind == "bool":
        return _bool(v, where)
    if kind == "scale":
        return _number(v, where, positive=True)
    if kind == "int":
        return _int(v, where, -(2**40), 2**40)
    if kind == "rate":
        return _int(v, where, 1, _MAX_RATE)
    if kind == "samples":
        return _int(v, where, 1, _MAX_SAMPLES)
    if kind == "fit":
        return _choice(v, where, ("trim", "pad"))
    if kind in (_RANGE, "range?"):
        if v is None and kind == "range?":
            return None
        pair = _list(v, where, 2)
        if len(pair) != 2:
            raise _refuse(where, "should be two numbers, low and high")
        return [_number(pair[0], f"{where}[0]"), _number(pair[1], f"{where}[1]")]
    raise AssertionError(kind)


def _fix(v: Any, where: str) -> Fix:
    """A fix rebuilt from its kind, input and parameters: its label and line of Python are
    made again here, never taken from the manifest."""
    from .fixes import make_fix

    d = _obj(v, where, ("kind", "input"))
    kind = _choice(d["kind"], f"{where}.kind", get_args(FixKind))
    name = _text(d["input"], f"{where}.input")
    params = _obj(d.get("params", {}), f"{where}.params")
    schema = _PARAMS.get(kind, {})
    allowed = {k.rstrip("?"): t for k, t in schema.items()}
    for key in params:
        if key not in allowed:
            raise _refuse(f"{where}.params", f"has {str(key)[:60]!r}, which the fix {kind!r} does not take")
    checked: dict[str, Any] = {}
    for key, t in schema.items():
        bare = key.rstrip("?")
        if bare not in params:
            if key.endswith("?"):
                continue
            raise _refuse(f"{where}.params", f"lacks {bare!r}, which the fix {kind!r} needs")
        checked[bare] = _param(t, params[bare], f"{where}.params.{bare}")
    if kind == "quantize" and checked.get("source") is not None and "target" not in checked:
        raise _refuse(f"{where}.params", "has a source range and no target range")
    try:
        return make_fix(kind, name, **checked)
    except (FixError, KeyError, TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError) as exc:
        raise _refuse(where, f"cannot be rebuilt ({exc})") from None


def _explanation(v: Any, where: str) -> Explanation | None:
    if v is None:
        return None
    d = _obj(v, where, ("kind", "title", "cause", "fix"))
    facts = {}
    for k, value in _obj(d.get("facts", {}), f"{where}.facts").items():
        if isinstance(value, list):
            value = [_scalar(x, f"{where}.facts[{k!r}]") for x in _list(value, f"{where}.facts[{k!r}]", MAX_ENTRIES)]
        else:
            value = _scalar(value, f"{where}.facts[{k!r}]")
        facts[_text(k, f"{where}.facts key")] = value
    return Explanation(
        kind=_text(d["kind"], f"{where}.kind"),
        title=_text(d["title"], f"{where}.title", MAX_TEXT),
        cause=_text(d["cause"], f"{where}.cause", MAX_TEXT),
        fix=_text(d["fix"], f"{where}.fix", MAX_TEXT),
        facts=facts,
        matched=tuple(_text(m, f"{where}.matched") for m in _list(d.get("matched", []), f"{where}.matched", 64)),
        message=_text(d.get("message", ""), f"{where}.message", MAX_TEXT),
    )


def _scalar(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return _text(v, where, MAX_TEXT) if isinstance(v, str) else v
    if isinstance(v, float):
        return v
    raise _refuse(where, f"should be a plain value, not {_kind(v)}")


def _mismatch(v: Any, where: str) -> Mismatch:
    d = _obj(v, where, ("input", "kind", "severity", "expected", "got", "message"))
    inp = _obj(d["input"], f"{where}.input", ("index", "name"))
    return Mismatch(
        input_index=_int(inp["index"], f"{where}.input.index", -1, MAX_DIM),
        input_name=_text(inp["name"], f"{where}.input.name"),
        kind=_choice(d["kind"], f"{where}.kind", get_args(MismatchKind)),
        severity=_choice(d["severity"], f"{where}.severity", ("error", "warning")),
        expected=_text(d["expected"], f"{where}.expected", MAX_TEXT),
        got=_text(d["got"], f"{where}.got", MAX_TEXT),
        message=_text(d["message"], f"{where}.message", MAX_TEXT),
        fixes=tuple(
            _fix(f, f"{where}.fixes[{i}]")
            for i, f in enumerate(_list(d.get("fixes", []), f"{where}.fixes", MAX_FIXES_PER_MISMATCH))
        ),
        dimension=_int(d.get("dimension"), f"{where}.dimension", -1, MAX_DIMS, optional=True),
        choice=_text(d.get("choice"), f"{where}.choice", optional=True),
    )


@dataclass(frozen=True)
class _After:
    """The shape of the data after a step, as recorded: what a replay must give."""

    arrays: tuple[tuple[str, str, tuple[int, ...], str], ...]  # name, dtype, shape, SHA-256 of the values
    resize: tuple[tuple[str, tuple[int, ...]], ...]


def _after(v: Any, where: str) -> _After:
    d = _obj(v, where, ("arrays",))
    arrays = []
    for i, a in enumerate(_list(d["arrays"], f"{where}.arrays", MAX_ARRAYS)):
        w = f"{where}.arrays[{i}]"
        a = _obj(a, w, ("name", "dtype", "shape"))
        shape = _shape(a["shape"], f"{w}.shape")
        dtype = _dtype(a["dtype"], f"{w}.dtype")
        if _nbytes(shape, dtype) > MAX_ARRAY_BYTES:
            raise _refuse(
                w, f"declares {_nbytes(shape, dtype):,} bytes, more than the {MAX_ARRAY_BYTES:,} an array may have"
            )
        digest = a.get("values_sha256", "")
        if not isinstance(digest, str) or (digest and not _HEX64.fullmatch(digest)):
            raise _refuse(f"{w}.values_sha256", "should be 64 hexadecimal digits")
        arrays.append((_text(a["name"], f"{w}.name"), dtype, shape, digest))
    resize = _resize(d.get("resize", {}), f"{where}.resize")
    return _After(tuple(arrays), tuple(resize.items()))


def _facts(v: Any, where: str, arrays: Mapping[str, np.ndarray]) -> dict[str, AudioInfo]:
    """The facts of the recordings among the data as given (``AudioInfo`` by input name)."""
    out: dict[str, AudioInfo] = {}
    for name, d in _obj(v, where).items():
        w = f"{where}[{str(name)[:60]!r}]"
        if name not in arrays:
            raise _refuse(w, "names no array of the data")
        d = _obj(d, w, ("sample_rate", "channels", "frames", "container", "sample_format"))
        hop = d.get("window_hop")
        out[name] = AudioInfo(
            sample_rate=_int(d["sample_rate"], f"{w}.sample_rate", 1, _MAX_RATE),
            channels=_int(d["channels"], f"{w}.channels", 1, 256),
            frames=_int(d["frames"], f"{w}.frames", 1, _MAX_SAMPLES),
            container=_text(d["container"], f"{w}.container", 40),
            sample_format=_text(d["sample_format"], f"{w}.sample_format", 40),
            clipped_fraction=min(1.0, max(0.0, _number(d.get("clipped_fraction", 0.0), f"{w}.clipped_fraction"))),
            window_hop=None if hop is None else _int(hop, f"{w}.window_hop", 1, _MAX_SAMPLES),
        )
    return out


def _resize(v: Any, where: str) -> dict[str, tuple[int, ...]]:
    return {_text(k, f"{where} key"): _shape(s, f"{where}[{k!r}]") for k, s in _obj(v, where).items()}


def _nbytes(shape: Sequence[int], dtype: str) -> int:
    return math.prod(max(int(d), 0) for d in shape) * np.dtype(dtype).itemsize


def _quantization(v: Any, where: str) -> Quantization:
    d = _obj(v, where)
    scale = tuple(_number(s, f"{where}.scale") for s in _list(d.get("scale", []), f"{where}.scale", 1 << 16))
    zero = tuple(
        _int(z, f"{where}.zero_point", -(2**40), 2**40)
        for z in _list(d.get("zero_point", []), f"{where}.zero_point", 1 << 16)
    )
    return Quantization(
        scale=scale,
        zero_point=zero,
        quantized_dimension=_int(d.get("quantized_dimension", 0), f"{where}.quantized_dimension", 0, MAX_DIMS),
    )


@dataclass(frozen=True, eq=False)
class ParsedCase:
    """A manifest checked and its members read, before the workspace is rebuilt from it.

    ``bundle.read_bundle`` fills its ``Bundle`` from one; ``load_workspace`` rebuilds from one.
    """

    model_name: str
    model: bytes
    signature: str | None
    data_source: str
    original: Feed
    preferences: dict[str, str]
    clicks: tuple[tuple[str, object], ...]
    steps: tuple[tuple[int, Fix, Mismatch | None, _After], ...]
    run: RunResult | None
    stale: bool
    reported: Any  # archive.ErrorText | None
    diagnosis: tuple[Mismatch, ...]
    versions: dict[str, str]
    created: str
    raw_diagnosis: tuple[dict[str, Any], ...] = ()
    raw_run: Mapping[str, Any] = field(default_factory=dict)


class _Members:
    """Reads each member once and checks that its bytes have the address that names them."""

    def __init__(self, read_member: Callable[[str], bytes]) -> None:
        self.read_member, self.cache = read_member, {}

    def __call__(self, digest: str, where: str) -> bytes:
        if digest in self.cache:
            return self.cache[digest]
        try:
            data = self.read_member(digest)
        except KeyError:
            raise _refuse(where, f"names the file {digest[:19]}…, which the case does not hold") from None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BundleError(f"The saved case's member {digest[:19]}… could not be read as bytes.")
        if _address(data) != digest:
            raise _refuse(
                where,
                f"names the file {digest[:19]}…, whose content does not have that address (it was changed or damaged)",
            )
        self.cache[digest] = bytes(data)
        return self.cache[digest]

    def array(self, digest: str, where: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        from .errors import DataLoadError
        from .loading import LoadLimits, load_data

        raw = self(digest, where)
        try:
            (x,) = load_data(f"{where}.npy", raw, limits=LoadLimits(max_array_bytes=MAX_ARRAY_BYTES))
        except DataLoadError as exc:
            raise _refuse(where, f"cannot be read as an array: {exc}") from None
        except ValueError:
            raise _refuse(where, "holds more than one array") from None
        if str(x.dtype) != dtype or tuple(x.shape) != shape:
            raise _refuse(where, f"is {x.dtype} {list(x.shape)}, but the manifest says {dtype} {list(shape)}")
        return x


def parse_case(manifest: Any, read_member: Callable[[str], bytes]) -> ParsedCase:
    """Check a case manifest and read the members it names (see the module docstring).

    ``read_member(address)`` returns a member's bytes; each is checked against its address.
    Raises ``BundleError`` with a sentence for anything malformed, inconsistent or over a limit.
    """
    m = _obj(manifest, "manifest", ("format", "version", "model", "original"))
    if m["format"] != FORMAT:
        raise _refuse("manifest", f"names the format {str(m['format'])[:60]!r}, not {FORMAT!r}")
    version = _int(m["version"], "format version", 0, 10**6)
    if version > VERSION:
        raise BundleError(
            f"The saved case was written in format version {version}, newer than the {VERSION} this lite-debug "
            "reads; update lite-debug to open it."
        )
    members = _Members(read_member)
    model_entry = _obj(m["model"], "model", ("name", "member"))
    model_name = _text(model_entry["name"], "model.name")
    model = members(_digest(model_entry["member"], "model.member"), "model")

    original = _obj(m["original"], "original", ("arrays",))
    arrays: dict[str, np.ndarray] = {}
    for i, a in enumerate(_list(original["arrays"], "original.arrays", MAX_ARRAYS)):
        w = f"original.arrays[{i}]"
        a = _obj(a, w, ("name", "member", "dtype", "shape"))
        name = _text(a["name"], f"{w}.name")
        if name in arrays:
            raise _refuse(f"{w}.name", f"repeats {name!r}")
        dtype, shape = _dtype(a["dtype"], f"{w}.dtype"), _shape(a["shape"], f"{w}.shape")
        if _nbytes(shape, dtype) > MAX_ARRAY_BYTES:
            raise _refuse(
                w, f"declares {_nbytes(shape, dtype):,} bytes, more than the {MAX_ARRAY_BYTES:,} an array may have"
            )
        arrays[name] = members.array(_digest(a["member"], f"{w}.member"), w, dtype, shape)
    feed = Feed(
        arrays=arrays, resize=_resize(original.get("resize", {}), "original.resize"),
        facts=_facts(original.get("facts", {}), "original.facts", arrays),
    )

    preferences = {
        _text(k, "preferences key"): _text(v, f"preferences[{k!r}]")
        for k, v in _obj(m.get("preferences", {}), "preferences").items()
    }
    raw_diagnosis = _list(m.get("diagnosis", []), "diagnosis", MAX_MISMATCHES)
    diagnosis = tuple(_mismatch(d, f"diagnosis[{i}]") for i, d in enumerate(raw_diagnosis))

    clicks: list[tuple[str, object]] = []
    for i, c in enumerate(_list(m.get("clicks", []), "clicks", MAX_CLICKS)):
        w = f"clicks[{i}]"
        c = _obj(c, w, ("action",))
        action = _choice(c["action"], f"{w}.action", ("all", "fix", "batch", "sample"))
        if action == "all":
            clicks.append(("all", _bool(c.get("include_warnings", False), f"{w}.include_warnings")))
        elif action == "fix":
            clicks.append(("fix", _fix(c.get("fix"), f"{w}.fix")))
        elif action == "sample":
            clicks.append(("sample", _int(c.get("index"), f"{w}.index", 0, MAX_DIM)))
        else:
            clicks.append(("batch", None))
    steps = []
    last = 0
    for i, s in enumerate(_list(m.get("steps", []), "steps", MAX_STEPS)):
        w = f"steps[{i}]"
        s = _obj(s, w, ("click", "fix", "after"))
        click = _int(s["click"], f"{w}.click", 0, max(len(clicks) - 1, 0))
        if not clicks or click < last:
            raise _refuse(f"{w}.click", "is not a click of the history in order")
        last = click
        answered = _mismatch(s["answered"], f"{w}.answered") if s.get("answered") is not None else None
        steps.append((click, _fix(s["fix"], f"{w}.fix"), answered, _after(s["after"], f"{w}.after")))

    run, stale, raw_run = None, False, {}
    if m.get("run") is not None:
        raw_run = _obj(m["run"], "run", ("status",))
        run = _run(raw_run, "run", members)
        stale = _bool(raw_run.get("stale", False), "run.stale")

    reported = None
    if m.get("reported") is not None:
        from .archive import ErrorText

        r = _obj(m["reported"], "reported", ("path", "text", "explanation"))
        explanation = _explanation(r["explanation"], "reported.explanation")
        if explanation is None:
            raise _refuse("reported.explanation", "is missing")
        reported = ErrorText(
            path=_text(r["path"], "reported.path"),
            text=_text(r["text"], "reported.text", MAX_TEXT),
            explanation=explanation,
        )

    vers = {
        _text(k, "versions key", 200): _text(v, f"versions[{k!r}]", 1000)
        for k, v in _obj(m.get("versions", {}), "versions").items()
    }
    signature = m.get("signature")
    return ParsedCase(
        model_name=model_name,
        model=model,
        signature=None if signature is None else _text(signature, "signature"),
        data_source=_text(m.get("data_source", ""), "data_source", MAX_TEXT),
        original=feed,
        preferences=preferences,
        clicks=tuple(clicks),
        steps=tuple(steps),
        run=run,
        stale=stale,
        reported=reported,
        diagnosis=diagnosis,
        versions=vers,
        created=_text(m.get("created", ""), "created", 100),
        raw_diagnosis=tuple(_plain(d) for d in raw_diagnosis),
        raw_run=_plain({k: v for k, v in raw_run.items() if k != "outputs"}),
    )


def _run(
    d: dict[str, Any], where: str, members: _Members | None = None, outputs: Sequence[OutputTensor] = ()
) -> RunResult:
    """A recorded run from its JSON (and its outputs, read through ``members`` or given)."""
    d = _obj(d, where, ("status",))
    read: list[OutputTensor] = list(outputs)
    if members is not None:
        names: set[str] = set()
        for i, o in enumerate(_list(d.get("outputs", []), f"{where}.outputs", MAX_OUTPUTS)):
            w = f"{where}.outputs[{i}]"
            o = _obj(o, w, ("name", "member", "dtype", "shape"))
            name = _text(o["name"], f"{w}.name")
            if name in names:
                raise _refuse(f"{w}.name", f"repeats {name!r}")
            names.add(name)
            dtype, shape = _dtype(o["dtype"], f"{w}.dtype"), _shape(o["shape"], f"{w}.shape")
            if _nbytes(shape, dtype) > MAX_ARRAY_BYTES:
                raise _refuse(
                    w, f"declares {_nbytes(shape, dtype):,} bytes, more than the {MAX_ARRAY_BYTES:,} an array may have"
                )
            raw = members.array(_digest(o["member"], f"{w}.member"), w, dtype, shape)
            q = _quantization(o.get("quantization", {}), f"{w}.quantization")
            read.append(_output(name, _int(o.get("index", i), f"{w}.index", 0, MAX_DIM), raw, q, w))
    opt = lambda key, most=MAX_TEXT: _text(d.get(key), f"{where}.{key}", most, optional=True)  # noqa: E731
    return RunResult(
        status=_choice(d["status"], f"{where}.status", get_args(RunStatus)),
        outputs=tuple(read),
        error_type=opt("error_type", MAX_NAME),
        error_message=opt("error_message"),
        explanation=_explanation(d.get("explanation"), f"{where}.explanation"),
        kernel_message=opt("kernel_message"),
        signal=opt("signal", 100),
        invoke_ms=_number(d.get("invoke_ms"), f"{where}.invoke_ms", optional=True),
        total_ms=_number(d.get("total_ms"), f"{where}.total_ms", optional=True),
        detail=_text(d.get("detail") or "", f"{where}.detail", MAX_TEXT),
        limit=_choice(d.get("limit"), f"{where}.limit", (*_LIMITS, None)),
    )


def _output(name: str, index: int, raw: np.ndarray, q: Quantization, where: str) -> OutputTensor:
    from .quantization import dequantize

    if q.per_channel and not (q.quantized_dimension < raw.ndim and raw.shape[q.quantized_dimension] == len(q.scale)):
        raise _refuse(
            f"{where}.quantization",
            f"has {len(q.scale)} scales on dimension {q.quantized_dimension} of an output of shape {list(raw.shape)}",
        )
    if len(q.zero_point) > max(len(q.scale), 1):
        raise _refuse(f"{where}.quantization", "has more zero points than scales")
    return OutputTensor(name=name, index=index, raw=raw, values=dequantize(raw, q), quantization=q)


# -- rebuilding the workspace --------------------------------------------------------------------
def load_workspace(
    manifest: Any, read_member: Callable[[str], bytes], *, container: str | None = None, source: str | None = None
) -> "Workspace":
    """Rebuild a workspace from a manifest of ``dump_workspace`` (see the module docstring).

    ``read_member(address)`` returns the bytes of a member (``store.get_blob`` does). The
    workspace gets ``recorded`` (a ``Recorded``: the saved run, the diagnosis before any fix,
    the versions, notes) and ``result`` None. ``container`` names the file it came in;
    ``source`` replaces the saved description of where the data came from. Raises
    ``BundleError`` with a sentence when the manifest is malformed, the model is not a model,
    or a fix does not replay to the shapes it had.
    """
    return build_workspace(parse_case(manifest, read_member), container=container, source=source)


def build_workspace(
    case: ParsedCase, *, container: str | None = None, source: str | None = None, format_version: int = VERSION
) -> "Workspace":
    """The workspace of a parsed case (see ``load_workspace``), its fixes replayed."""
    from .session import Workspace

    try:
        ws = Workspace._for_model(case.model_name, case.model)
    except LiteDebugError as exc:
        raise BundleError(
            f"The saved case's model {case.model_name!r} cannot be opened: {_lower_first(str(exc))}"
        ) from None
    if case.signature is not None and case.signature not in {s.key for s in ws.spec.signatures}:
        known = ", ".join(repr(s.key) for s in ws.spec.signatures) or "none"
        raise _refuse(
            "signature", f"is {case.signature[:60]!r}, which the model does not have (its signatures: {known})"
        )
    ws.container = container
    ws.signature = case.signature
    ws.set_feed(case.original, source=source if source is not None else case.data_source)
    ws.preferences = dict(case.preferences)
    ws._cache.clear()
    steps, notes = _replay(case)
    ws.steps, ws.clicks = steps, list(case.clicks)
    ws.result, ws.result_stale = None, False
    ws.reported = case.reported
    ws.recorded = Recorded(  # type: ignore[attr-defined]
        run=case.run,
        stale=case.stale,
        diagnosis=case.diagnosis,
        versions=dict(case.versions),
        created=case.created,
        format_version=format_version,
        notes=tuple(notes),
    )
    return ws


def _replay(case: ParsedCase) -> tuple[list[Step], list[str]]:
    """Every saved step done again with ``apply_fix``; refuses a replay whose shapes differ."""
    from .fixes import apply_fix

    feed, steps, notes = case.original, [], []
    for number, (click, fix, answered, after) in enumerate(case.steps, start=1):
        what = f"fix {number} of the history (“{fix.label}”)"
        _check_budget(fix, feed, what)
        try:
            feed = apply_fix(feed, fix)
        except FixError as exc:
            raise BundleError(
                f"The saved case's {what} does not apply to the data it was saved with: {exc} "
                "The case was altered or damaged; open the model and data on their own."
            ) from None
        except (ValueError, TypeError, IndexError, KeyError, OverflowError, ZeroDivisionError, MemoryError) as exc:
            raise BundleError(
                f"The saved case's {what} cannot be replayed ({type(exc).__name__}); the case was altered "
                "or damaged, so open the model and data on their own."
            ) from None
        got = [(n, str(np.asarray(x).dtype), tuple(int(d) for d in np.shape(x))) for n, x in feed.arrays.items()]
        want = [(n, dt, shape) for n, dt, shape, _ in after.arrays]
        resize = tuple((k, tuple(int(d) for d in v)) for k, v in feed.resize.items())
        if got != want or dict(resize) != dict(after.resize):
            raise BundleError(
                f"Replaying the saved case's {what} gives data of other shapes than it recorded "
                f"({_describe(got)} instead of {_describe(want)}); the case was altered, or made by a lite-debug whose "
                "fixes work differently, so it cannot be opened with its history."
            )
        changed = [
            n for n, _, _, digest in after.arrays if digest and _array_digest(np.asarray(feed.arrays[n])) != digest
        ]
        if changed:
            notes.append(
                f"Replaying {what} gave other values for {', '.join(repr(n) for n in changed)} than when it was saved "
                "(the same shapes): numpy or lite-debug may differ here. The data shown is what this machine computes."
            )
        steps.append(Step(fix=fix, answered=answered, feed=feed, click=click))
    return steps, notes


def _check_budget(fix: Fix, feed: Feed, what: str) -> None:
    """Refuse, before it allocates, a fix whose parameters ask for a huge array."""
    p = fix.params
    elements = 0
    if fix.kind == "generate":
        elements = math.prod(p["shape"])
    elif fix.kind == "resize_image" and fix.input in feed.arrays:
        x = np.asarray(feed.arrays[fix.input])
        if x.ndim in (2, 3, 4):
            h, w = (x.shape[0], x.shape[1]) if x.ndim < 4 else (x.shape[1], x.shape[2])
            n = x.shape[0] if x.ndim == 4 else 1
            c = x.shape[-1] if x.ndim >= 3 else 1
            height, width = p["height"], p["width"]
            th, tw = height, width
            if p.get("mode", "stretch") != "stretch" and h and w:
                ratio = min(height / h, width / w) if p.get("mode") == "pad" else max(height / h, width / w)
                th, tw = max(1, round(h * ratio)), max(1, round(w * ratio))
            elements = n * c * max(th, height) * max(tw, width)
    elif fix.kind in ("resample", "fit_length", "split_windows") and fix.input in feed.arrays:
        x = np.asarray(feed.arrays[fix.input])
        axis = int(p.get("axis", 0))
        frames = x.shape[axis] if 0 <= axis < x.ndim else 1
        per_frame = x.size // max(1, frames)
        if fix.kind == "resample":
            elements = math.ceil(x.size * p["to_rate"] / p["from_rate"])
        elif fix.kind == "fit_length":
            elements = per_frame * p["size"]
        else:
            elements = per_frame * p["size"] * (1 + math.ceil(max(0, frames - p["size"]) / p["hop"]))
    if elements > MAX_REPLAY_ELEMENTS:
        raise BundleError(
            f"The saved case's {what} would make an array of {elements:,} values, more than the "
            f"{MAX_REPLAY_ELEMENTS:,} lite-debug replays; the case was altered or damaged."
        )


def _lower_first(sentence: str) -> str:
    return sentence[:1].lower() + sentence[1:]


def _describe(arrays: Sequence[tuple[str, str, tuple[int, ...]]]) -> str:
    return ", ".join(f"{n!r} {dt} {list(s)}" for n, dt, s in arrays) or "no arrays"
