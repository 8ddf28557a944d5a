"""The messages between the server and a worker: typed requests, typed replies, and the reply codec.

Requests go from the server to a worker it started itself, so they are pickled (``_wire.Channel.send``).
Replies come back from a process that runs hostile native code: if a model takes the worker
over, whatever it sends must not run code in the server or make it wait or allocate without
bound. So a reply is never unpickled. It is one frame::

    u32 header length | header (JSON: plain types only) | raw buffers

The header names a reply class registered here (``@reply``) and its fields; a field typed
``Array`` refers to a buffer by number, either inline in the frame or in the shared memory region
(``_shm``) at an offset. ``decode_reply`` checks every field against its class's type hints, every
buffer's dtype against a short whitelist (no object, structured or big-endian dtypes) and its
size against the frame, the region and the run's output cap, and raises ``ProtocolError`` for
anything else.

Adding a request type takes one request record here and one handler in ``_worker`` (registered
with ``@handles``); a new reply type is one record with ``@reply``.

Nothing here imports numpy at module level: the worker imports this module before the
interpreter, and numpy imported first moves the heap (see ``_worker``).
"""

from __future__ import annotations

import dataclasses
import json
import operator
import struct
import sys
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable

__all__ = [
    "Array", "Batch", "BatchDone", "Exit", "Failed", "Load", "LoadReference", "Loaded", "More", "Output",
    "OutputSize", "Progress", "ProtocolError", "ReferenceLoaded", "ReferenceTensor", "Request", "Run", "RunDone",
    "RunReference", "STAT_COLUMNS", "Stop", "TooLarge", "Trace", "Traced", "decode_reply", "encode_reply",
    "footprint", "reply",
]


class ProtocolError(Exception):
    """A worker's reply is malformed, over its size cap, or not one the server asked for."""


class Array:
    """Marks a field that carries a numpy array (a raw buffer on the wire, never a pickle)."""


# -- requests: server -> worker (pickled; the worker trusts the process that started it) -----------


@dataclass
class Request:
    """Base of every request. ``soon``: the caller will send another request right after the
    reply (a benchmark, ``--repeat``): the worker then polls for it instead of sleeping."""

    soon: bool = field(default=False, kw_only=True)


@dataclass
class Load(Request):
    """Load a model (its bytes, or a file the server wrote) and build its interpreter.

    ``stateful``: the model keeps state between invokes beyond variable tensors (resource
    variables, hash tables, random ops…), so its interpreter is rebuilt before a run that does
    not keep state. ``variables``: it has variable tensors, reset before such a run. ``allocate``: also allocate its tensors and, when the default XNNPACK
    delegate refuses, try once without it (the model check). Reply: ``Loaded`` or ``Failed``.
    """

    model: bytes | None = None
    path: str | None = None
    stateful: bool = True
    variables: bool = True
    allocate: bool = False


@dataclass
class Run(Request):
    """One invoke. ``arrays``: (input index, or signature input name; array or shared-memory
    descriptor). ``keep_state``: do not reset variables or rebuild a stateful interpreter first.
    Reply: ``RunDone``, ``TooLarge`` or ``Failed``."""

    arrays: list = field(default_factory=list)
    signature: str | None = None
    resize: dict = field(default_factory=dict)
    no_default_delegates: bool = False
    keep_state: bool = False
    output_cap: int | None = None
    region: tuple | None = None
    reference_kernels: bool = False  # the reference kernels (BUILTIN_REF), no delegate


@dataclass
class Batch(Request):
    """``n`` samples, ``chunk`` rows per invoke. The rows past ``available`` follow in ``More``
    messages. A ``Stop`` between blocks ends the batch early (``BatchDone.done`` says where).
    Replies: ``Progress``… then ``BatchDone``, ``TooLarge`` or ``Failed``."""

    n: int = 0
    chunk: int = 1
    arrays: list = field(default_factory=list)
    signature: str | None = None
    available: int | None = None
    keep_state: bool = False
    output_cap: int | None = None
    region: tuple | None = None


@dataclass
class More(Request):
    """The batch's rows up to ``rows`` are in shared memory now."""

    rows: int = 0


@dataclass
class Stop(Request):
    """End the running batch after the block in progress (another session waits for a worker)."""


@dataclass
class Exit(Request):
    """End the worker process."""


@dataclass
class Trace(Request):
    """One plain invoke, as ``Run`` does, then one through a copy of the model in which every
    tensor of ``mark`` is also an output of subgraph ``subgraph``, so that the interpreter (and
    any delegate) must write it out; each tensor of ``tensors`` is then reduced to statistics
    (``STAT_COLUMNS``) and those of ``fetch`` are sent back whole. ``quantized``: tensor ->
    (scales, zero points, quantized dimension) for the tensors whose statistics are in real
    units. ``weights``: tensor -> the constant it dequantizes: such a tensor is read from that
    constant (a delegate folds the DEQUANTIZE of weights into the op that reads them, and never
    writes its output). Reply: ``Traced``, ``TooLarge`` or ``Failed``."""

    arrays: list = field(default_factory=list)
    signature: str | None = None
    resize: dict = field(default_factory=dict)
    no_default_delegates: bool = False
    subgraph: int = 0
    tensors: list = field(default_factory=list)
    mark: list = field(default_factory=list)
    quantized: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    fetch: list = field(default_factory=list)
    output_cap: int | None = None
    region: tuple | None = None
    reference_kernels: bool = False  # both runs with the reference kernels (BUILTIN_REF), no delegate


@dataclass
class Prepare(Request):
    """Get ready for a ``Trace`` with these fields (the same meanings) before one is asked for:
    build the marked copy and allocate it, reduce the constants of ``weights`` to their
    statistics, and, for a model that keeps no state and has numeric inputs of fixed shapes,
    invoke it once on zeros (its arena and the delegate's plans made then, not in the trace).
    Reply: ``Prepared`` or ``Failed``."""

    subgraph: int = 0
    mark: list = field(default_factory=list)
    quantized: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    no_default_delegates: bool = False
    reference_kernels: bool = False


@dataclass
class LoadReference(Request):
    """For ``lite_debug._tf_worker`` only: load a Keras (``kind="keras"``: a ``.keras`` zip;
    ``"h5"``: a legacy HDF5 file) or SavedModel (``"saved_model"``: its folder, zipped) model with
    TensorFlow, Keras in safe mode. ``signature``: the SavedModel signature to run (default
    ``serving_default``). Reply: ``ReferenceLoaded`` or ``Failed``."""

    model: bytes | None = None
    path: str | None = None
    kind: str = "keras"
    signature: str | None = None


@dataclass
class RunReference(Request):
    """Call the loaded reference once. ``arrays``: (input name, array) for each of its inputs.
    Reply: ``RunDone`` (outputs numbered in the order ``ReferenceLoaded`` lists them), ``TooLarge``
    or ``Failed``."""

    arrays: list = field(default_factory=list)
    output_cap: int | None = None
    region: tuple | None = None


# -- replies: worker -> server (the codec below; never pickled) -------------------------------------

REPLIES: dict[str, type] = {}


def reply(cls: type) -> type:
    """Register a reply record: a frozen dataclass whose fields are plain types, ``Array``,
    tuples, dicts and other reply records (see ``decode_reply``)."""
    REPLIES[cls.__name__] = cls
    return cls


@reply
@dataclass(frozen=True)
class Output:
    """One output tensor: ``value`` is a numeric array or, for a string tensor, an object array
    of bytes (sent as lengths and bytes). ``name`` is the runtime's, which a NUL byte cuts: the
    server names outputs by ``index`` from its own reading of the model where it can."""

    index: int
    name: str
    value: Array
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension: int = 0


@reply
@dataclass(frozen=True)
class OutputSize:
    """What an output would cost the server, for a reply refused as too large."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@reply
@dataclass(frozen=True)
class Loaded:
    """The model loaded (and, when asked, allocated its tensors)."""

    kernel_message: str | None = None


@reply
@dataclass(frozen=True)
class Prepared:
    """The marked copy is ready. ``build_ms``: building and allocating it (0 when it was kept
    from before); ``warm_ms``: its first invoke (0 when none was made)."""

    build_ms: float = 0.0
    warm_ms: float = 0.0


@reply
@dataclass(frozen=True)
class Failed:
    """The interpreter raised. ``kernel_message``: the message of a second try without the default
    delegates, ``""`` when that try succeeded, ``None`` when none was made."""

    error_type: str
    message: str
    stage: str
    kernel_message: str | None = None


@reply
@dataclass(frozen=True)
class Progress:
    done: int
    total: int


@reply
@dataclass(frozen=True)
class RunDone:
    """``notes``: a sentence for each output that has no values to send (a resource tensor…)."""

    outputs: tuple[Output, ...]
    invoke_ms: float
    need: int = 0
    notes: tuple[str, ...] = ()


@reply
@dataclass(frozen=True)
class BatchDone:
    """``failed``: a failed chunk's number -> its message; ``times``: each chunk's invoke in seconds
    (float64); ``done``: chunks run (fewer than asked when a ``Stop`` came)."""

    outputs: tuple[Output, ...]
    failed: dict[int, str]
    times: Array
    done: int
    need: int = 0
    notes: tuple[str, ...] = ()


@reply
@dataclass(frozen=True)
class TooLarge:
    """The run finished, but its outputs would cost the server more than the cap: none are sent."""

    outputs: tuple[OutputSize, ...]
    total: int
    cap: int
    invoke_ms: float = 0.0


@reply
@dataclass(frozen=True)
class ReferenceTensor:
    """An input or output of a reference model: its name, shape (-1 where any size goes) and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@reply
@dataclass(frozen=True)
class ReferenceLoaded:
    """A Keras or SavedModel reference loaded: its inputs and outputs in calling order, what
    TensorFlow and Keras versions loaded it, and how long loading took (TensorFlow's import included)."""

    inputs: tuple[ReferenceTensor, ...]
    outputs: tuple[ReferenceTensor, ...]
    versions: str = ""
    load_ms: float = 0.0
    signature: str = ""


# The columns of ``Traced.stats``, one row per traced tensor. Min, max, mean and std are of the
# finite values, in real units for a quantized tensor; the rest are counts of elements.
STAT_COLUMNS = ("count", "min", "max", "mean", "std", "nan", "inf", "zeros", "at_qmin", "at_qmax")


@reply
@dataclass(frozen=True)
class Traced:
    """A trace. ``stats``: float64 ``[len(tensors), len(STAT_COLUMNS)]``; ``status``: int8 per
    tensor, 0 read, 1 no numbers to read (strings, resources), 2 the runtime would not give its
    values; ``ranks`` (int32) and ``shapes`` (int64, the dimensions one after another): each
    tensor's shape in this run. ``outputs``: the plain run's; ``equal`` and ``differences``: per
    output, whether the traced run gave the same values, and the largest difference.
    ``fetched``: the values of the tensors asked for, in the order asked. ``reused``: the plain
    run compared with is the worker's run of the same inputs just before (its interpreter still
    held the outputs), not a new one."""

    stats: Array
    status: Array
    ranks: Array
    shapes: Array
    outputs: tuple[Output, ...]
    equal: tuple[bool, ...]
    differences: tuple[float, ...]
    fetched: tuple[Output, ...]
    invoke_ms: float
    trace_ms: float
    stats_ms: float
    build_ms: float
    notes: tuple[str, ...] = ()
    reused: bool = False
    need: int = 0


# -- what outputs cost the server ---------------------------------------------------------------------

# dtype strings a reply may carry (little-endian numerics and bool): nothing with objects in it.
DTYPES = frozenset({"|b1", "|i1", "|u1", "<i2", "<u2", "<f2", "<i4", "<u4", "<f4", "<i8", "<u8", "<f8", "<c8", "<c16"})
STRINGS = "bytes"  # the dtype name of a string tensor on the wire: lengths (<i8) and bytes (|u1)
_OBJECT_BYTES = 48  # a bytes object in CPython, beyond its data, plus its slot in an object array


def footprint(dtype: str, count: int, nbytes: int, quantized: bool) -> int:
    """Bytes the server holds for one output: the raw array, plus its dequantized float32 copy
    when it is a quantized integer tensor; for strings, the bytes objects an object array holds."""
    if dtype == STRINGS:
        return nbytes + _OBJECT_BYTES * count
    if quantized and dtype[1:2] in ("i", "u"):
        return nbytes + 4 * count
    return nbytes


# -- the frame ----------------------------------------------------------------------------------------

_U32 = struct.Struct("<I")
_ALIGN = 64
HEADER_LIMIT = 16 << 20  # the JSON header of any reply; error messages are cut well below this


def encode_reply(record: Any, region: Any = None, threshold: int = 16 << 10) -> tuple[list, int]:
    """The frame's parts (to send with ``Channel.send_parts``) and the bytes that did not fit the
    region. Arrays of ``threshold`` bytes or more go into ``region`` when there is room."""
    arrays: list = []
    body = _plain(record, arrays)
    descs: list = []
    need = 0
    large = [i for i, (_, a) in enumerate(arrays) if a.nbytes >= threshold]
    placed: dict[int, int] = {}
    if large:
        from . import _shm

        at = region.reserve([arrays[i][1] for i in large]) if region is not None else None
        if at is None:
            need = _shm.needed([arrays[i][1] for i in large])
        else:
            for i, desc in zip(large, at):
                region.write(desc, arrays[i][1])
                placed[i] = desc[1]
    inline: list = []
    offset = 0
    for i, (dtype, a) in enumerate(arrays):
        if i in placed:
            descs.append([dtype, list(a.shape), "s", placed[i]])
            continue
        descs.append([dtype, list(a.shape), "i", offset])
        if not a.nbytes:
            continue
        inline.append(a)
        offset += a.nbytes
        pad = -offset % _ALIGN
        if pad:
            inline.append(b"\0" * pad)
            offset += pad
    header = json.dumps({"t": type(record).__name__, "v": body, "a": descs}, separators=(",", ":")).encode()
    pad = -(_U32.size + len(header)) % _ALIGN
    head = _U32.pack(len(header) + pad) + header + b" " * pad  # JSON ignores the trailing spaces
    return [head, *inline], need


_PLAIN = frozenset({type(None), bool, int, float, str})
_DEFAULTABLE = _PLAIN | {tuple}
_FIELDS: dict[type, Any] = {}  # a record's field getter and their plain defaults (None: not a record)
_NO_DEFAULT = object()


def _layout(kind: type) -> tuple[Callable[[Any], tuple], tuple]:
    names = [f.name for f in fields(kind)]
    defaults = tuple(f.default if type(f.default) in _DEFAULTABLE else _NO_DEFAULT for f in fields(kind))
    many = operator.attrgetter(*names) if names else (lambda v: ())
    getter = many if len(names) > 1 else (lambda v: (many(v),) if names else ())
    return getter, defaults


def _plain(value: Any, arrays: list) -> Any:
    """``value`` as JSON-ready data; arrays replaced by ``{"$a": number}`` and collected."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is tuple or kind is list:
        return [v if type(v) in _PLAIN else _plain(v, arrays) for v in value]
    layout = _FIELDS.get(kind)
    if layout is None:
        layout = _FIELDS[kind] = _layout(kind) if is_dataclass(kind) else None
    if layout is not None:
        # A record is the list of its fields' values, in order (no names to write or read);
        # trailing fields left at a plain default are not sent: the record's own default applies.
        getter, defaults = layout
        values = getter(value)
        n = len(values)
        while n and defaults[n - 1] is not _NO_DEFAULT and type(values[n - 1]) in _DEFAULTABLE and values[n - 1] == defaults[n - 1]:
            n -= 1
        return [v if type(v) in _PLAIN else _plain(v, arrays) for v in values[:n]]
    if kind is dict:
        return {str(k): _plain(v, arrays) for k, v in value.items()}
    if isinstance(value, (bool, int, float, str)):  # subclasses (numpy scalars are not)
        return value
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        if value.dtype.kind in "OS":  # a string tensor: lengths, then every string's bytes
            items = [bytes(x) for x in value.ravel().tolist()]
            lengths = np.fromiter((len(x) for x in items), dtype="<i8", count=len(items))
            data = np.frombuffer(b"".join(items), dtype="|u1")
            arrays.append(("<i8", lengths))
            arrays.append(("|u1", data))
            return {"$s": [list(value.shape), len(arrays) - 2, len(arrays) - 1]}
        a = value if value.flags.c_contiguous else np.ascontiguousarray(value)
        if a.dtype.str not in DTYPES:
            raise TypeError(f"A reply cannot carry an array of dtype {a.dtype}.")
        arrays.append((a.dtype.str, a))
        return {"$a": len(arrays) - 1}
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"A reply cannot carry a {type(value).__name__}.")


class _Context:
    """What decoding one frame needs: the frame, its buffers' descriptors, the shared region, and
    what the arrays may add up to."""

    def __init__(self, frame: Any, start: int, descs: Any, region: Any, cap: int | None, borrow: bool = False) -> None:
        self.frame, self.start, self.descs, self.region, self.cap = frame, start, descs, region, cap
        self.borrow = borrow
        self.exported: Any = None
        self.used: set[int] = set()

    def array(self, ref: Any) -> Any:
        np = _numpy()
        if not (type(ref) is dict and len(ref) == 1):
            raise ProtocolError("An array field is not an array reference.")
        if "$s" in ref:
            shape, lengths_at, data_at = _check(ref["$s"], list, "a string array")
            shape = self._shape(shape)
            lengths = self._buffer(lengths_at, "<i8", lend=False)  # checked, then used: never lent
            data = self._buffer(data_at, "|u1", lend=False)
            count = _product(shape)
            if lengths.shape != (count,) or (count and (int(lengths.min()) < 0 or int(lengths.sum()) != data.size)):
                raise ProtocolError("A string array's lengths do not match its bytes.")
            out = np.empty(count, dtype=object)
            raw = data.tobytes()
            ends = np.cumsum(lengths).tolist()
            begin = 0
            for i, end in enumerate(ends):
                out[i] = raw[begin:end]
                begin = end
            return out.reshape(shape)
        if "$a" not in ref:
            raise ProtocolError("An array field is not an array reference.")
        return self._buffer(ref["$a"], None)

    def _shape(self, shape: Any) -> tuple[int, ...]:
        if type(shape) is not list or len(shape) > 32 or any(type(d) is not int or d < 0 for d in shape):
            raise ProtocolError("An array's shape is not a list of at most 32 sizes.")
        return tuple(shape)

    def _buffer(self, number: Any, want: str | None, lend: bool = True) -> Any:
        np = _numpy()
        if _DTYPE_OBJECTS is None:
            _load_dtypes()
        if type(number) is not int or not 0 <= number < len(self.descs) or number in self.used:
            raise ProtocolError("An array refers to a buffer that is not in the reply.")
        self.used.add(number)
        desc = self.descs[number]
        if type(desc) is not list or len(desc) != 4:
            raise ProtocolError("A buffer's descriptor is malformed.")
        name, shape, where, offset = desc
        dtype = _DTYPE_OBJECTS.get(name) if type(name) is str else None  # type: ignore[union-attr]
        if dtype is None or (want is not None and name != want):
            raise ProtocolError(f"A buffer has dtype {str(name)[:40]!r}, which a reply may not carry.")
        shape = self._shape(shape)
        nbytes = _product(shape) * dtype.itemsize
        if self.cap is not None and nbytes > self.cap:
            raise ProtocolError(f"A buffer of {nbytes} bytes is over the {self.cap}-byte cap on a run's outputs.")
        if type(offset) is not int or offset < 0:
            raise ProtocolError("A buffer's offset is not a size.")
        if where == "i":
            begin = self.start + offset
            if begin + nbytes > len(self.frame):
                raise ProtocolError("A buffer reaches past the end of the reply.")
            # A view of the frame (a bytearray, so the array is writable, as numpy's own unpickling gives).
            return np.ndarray(shape, dtype, buffer=self.frame, offset=begin) if nbytes else np.zeros(shape, dtype)
        if where == "s":
            if self.region is None or offset + nbytes > self.region.size:
                raise ProtocolError("A buffer points outside the shared memory region.")
            if not nbytes:
                return np.zeros(shape, dtype)
            if self.borrow and lend:
                # Through one memoryview, which every view holds (frombuffer keeps it as the base;
                # ndarray(buffer=) would keep the map itself, and no export): the map cannot be
                # closed, its memory unmapped under a live view, until every view is gone.
                if self.exported is None:
                    self.exported = memoryview(self.region.map)
                view = np.frombuffer(self.exported, dtype, _product(shape), offset).reshape(shape)
                view.flags.writeable = False  # (what tells it from a view of the frame: see owned)
                return view
            return np.ndarray(shape, dtype, buffer=self.region.map, offset=offset).copy()
        raise ProtocolError("A buffer is neither inline nor in the shared region.")


def owned(array: Any) -> Any:
    """``array``, copied when it is a borrowed view of the shared region (``decode_reply``'s
    ``borrow``); views of the frame are the caller's own already."""
    return array if array.flags.writeable else array.copy()


_DTYPE_OBJECTS: dict[str, Any] | None = None  # the whitelist's numpy dtypes (parsing "<f4" costs a µs)


def _load_dtypes() -> None:
    global _DTYPE_OBJECTS
    np = _numpy()
    _DTYPE_OBJECTS = {name: np.dtype(name) for name in DTYPES}


def _numpy() -> Any:
    # Imported on first use, not with this module (see the module's docstring).
    global _np
    if _np is None:
        import numpy

        _np = numpy
    return _np


_np: Any = None


def _product(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _check(value: Any, kind: type, what: str) -> Any:
    if type(value) is not kind:
        raise ProtocolError(f"{what[0].upper() + what[1:]} is not a {kind.__name__}.")
    return value


def decode_reply(frame: Any, region: Any = None, cap: int | None = None, borrow: bool = False) -> Any:
    """The reply record in ``frame`` (a bytearray), every field checked against its type.

    Arrays come back as fresh arrays (copied out of the region) or as views of ``frame``.
    ``borrow``: the region's arrays come back as read-only views of it instead, valid only until
    the region is next written (the next request to the same worker): for a caller that is done
    with them by then, and keeps what it holds longer with ``owned``. Raises
    ``ProtocolError`` for a frame that is malformed, names no registered reply, or whose arrays
    have a dtype outside the whitelist, lie outside the frame or the region, or add up past
    ``cap`` bytes as the server would hold them (see ``footprint``).
    """
    if len(frame) < _U32.size:
        raise ProtocolError("The reply is shorter than its header.")
    (size,) = _U32.unpack_from(frame, 0)
    start = _U32.size + size
    if size > HEADER_LIMIT or start > len(frame):
        raise ProtocolError("The reply's header is longer than the reply or its limit.")
    try:
        message = json.loads(bytes(memoryview(frame)[_U32.size:start]))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"The reply's header is not JSON ({type(exc).__name__}).") from None
    if type(message) is not dict or set(message) != {"t", "v", "a"} or type(message["a"]) is not list:
        raise ProtocolError("The reply's header is not a reply.")
    cls = REPLIES.get(message["t"]) if type(message["t"]) is str else None
    if cls is None:
        raise ProtocolError(f"The worker sent a reply of no known type ({str(message['t'])[:40]!r}).")
    ctx = _Context(frame, start, message["a"], region, cap, borrow)
    record = _decoder(cls)(message["v"], ctx)
    if cap is not None:
        held = (*getattr(record, "outputs", ()), *getattr(record, "fetched", ()))
        total = sum(_cost(o) for o in held if isinstance(o, Output))
        if total > cap:
            raise ProtocolError(f"The outputs take {total} bytes in the server, over the {cap}-byte cap.")
    return record


def _cost(o: Output) -> int:
    v = o.value
    if v.dtype.kind == "O":
        return footprint(STRINGS, v.size, sum(len(x) for x in v.ravel().tolist()), False)
    quantized = bool(o.scales) and any(s != 0.0 for s in o.scales)
    return footprint(v.dtype.str, v.size, v.nbytes, quantized)


# -- decoders built from the records' type hints, once per class ------------------------------------

_DECODERS: dict[Any, Callable[[Any, _Context], Any]] = {}


def _decoder(hint: Any) -> Callable[[Any, _Context], Any]:
    found = _DECODERS.get(hint)
    if found is None:
        found = _DECODERS[hint] = _build(hint)
    return found


def _build(hint: Any) -> Callable[[Any, _Context], Any]:
    if hint is Array:
        return lambda v, ctx: ctx.array(v)
    if hint is type(None):
        return _exact(type(None), "nothing")
    if hint is bool:
        return _exact(bool, "a truth value")
    if hint is int:
        return _exact(int, "a whole number")
    if hint is str:
        return _exact(str, "text")
    if hint is float:
        def number(v: Any, ctx: _Context) -> float:
            if type(v) not in (int, float):
                raise ProtocolError("A field that should be a number is not.")
            return float(v)
        return number
    if isinstance(hint, type) and hint.__name__ in REPLIES and REPLIES[hint.__name__] is hint:
        return _record(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_decoder(a) for a in args]

        def union(v: Any, ctx: _Context) -> Any:
            for option in options:
                try:
                    return option(v, ctx)
                except ProtocolError:
                    continue
            raise ProtocolError("A field has none of the types it may have.")
        return union
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            if args[0] in (int, str, float):
                want = args[0]
                allowed = (int, float) if want is float else (want,)

                def plain_sequence(v: Any, ctx: _Context) -> tuple:
                    if type(v) is list and not v:
                        return ()
                    if type(v) is not list or not all(type(x) in allowed for x in v):
                        raise ProtocolError("A field that should be a list of numbers or texts is not.")
                    return tuple(v) if want is not float else tuple(float(x) for x in v)
                return plain_sequence

            def sequence(v: Any, ctx: _Context) -> tuple:
                if type(v) is not list:
                    raise ProtocolError("A field that should be a list is not.")
                return tuple(item(x, ctx) for x in v)
            return sequence
        items = [_decoder(a) for a in args]

        def fixed(v: Any, ctx: _Context) -> tuple:
            if type(v) is not list or len(v) != len(items):
                raise ProtocolError("A field that should be a fixed list is not.")
            return tuple(d(x, ctx) for d, x in zip(items, v))
        return fixed
    if origin is dict:
        key_type, value = args[0], _decoder(args[1])
        if key_type not in (int, str):
            raise TypeError(f"A reply's dict keys must be int or str, not {key_type}.")

        def mapping(v: Any, ctx: _Context) -> dict:
            if type(v) is not dict:
                raise ProtocolError("A field that should be a mapping is not.")
            out = {}
            for k, x in v.items():
                if key_type is int:
                    if not (k.isascii() and k.lstrip("-").isdigit() and len(k) < 20):
                        raise ProtocolError("A mapping's key is not a whole number.")
                    k = int(k)
                out[k] = value(x, ctx)
            return out
        return mapping
    raise TypeError(f"A reply field cannot be of type {hint!r}.")


def _exact(kind: type, what: str) -> Callable[[Any, _Context], Any]:
    def check(v: Any, ctx: _Context) -> Any:
        if type(v) is not kind:
            raise ProtocolError(f"A field that should be {what} is not.")
        return v
    return check


def _record(cls: type) -> Callable[[Any, _Context], Any]:
    hints = typing.get_type_hints(cls, vars(sys.modules[__name__]))
    every = fields(cls)
    required = sum(1 for f in every if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    decoders = [_decoder(hints[f.name]) for f in every]

    def record(v: Any, ctx: _Context) -> Any:
        # The fields' values in order; the trailing ones may be left out (their defaults apply).
        if type(v) is not list or not required <= len(v) <= len(decoders):
            raise ProtocolError(f"A {cls.__name__} reply has the wrong fields.")
        return cls(*[decode(x, ctx) for decode, x in zip(decoders, v)])
    return record

