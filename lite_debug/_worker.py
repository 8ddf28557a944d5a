"""The code that runs inside a worker process.

Only this module imports the interpreter. It runs in a fresh process (``python -m lite_debug._worker FD``,
started by ``running.Worker``), so that a segfault, an abort or a runaway allocation in native code ends this process
and nothing else. The parent (``running.Worker``) talks to it over a pipe, one request at a
time, and measures nothing it cannot measure from outside.

Requests and replies are the records of ``_protocol``; the loop below hands each request to the
handler registered for its type (``@handles``) and sends back what the handler returns, encoded
by ``_protocol.encode_reply`` (never pickled: the parent does not unpickle what this process says).
"""

from __future__ import annotations

import array
import dataclasses
import functools
import math
import time
from typing import Any, Callable

from . import _protocol as P

# numpy is imported in the functions that use it, after the interpreter has loaded. Imported
# first, it moves the heap: a saved fuzz crasher (tests/fixtures/fuzz/93745a7c06a1153d) then
# corrupts memory without glibc noticing, and "runs" with garbage outputs instead of aborting.

try:
    import resource
except ImportError:  # pragma: no cover - not on POSIX
    resource = None  # type: ignore[assignment]


# After the reply to a request marked ``soon`` (a benchmark, --repeat), the next request follows
# at once: poll for it at least this long before sleeping (see Channel.recv_frame), and up to
# SPIN_AFTER_REPLY_MAX when the last few requests came that late: a caller that does other work
# between runs (the benchmark runs its in-process baseline twice, 2.1 ms) would otherwise find
# the worker just asleep, and pay its wake-up (50 µs here) on every other run. Without the hint
# (a person clicking) the worker sleeps at once: on a shared server a poll is CPU taken from others.
SPIN_AFTER_REPLY = 0.002
SPIN_AFTER_REPLY_MAX = 0.010
MESSAGE_LIMIT = 4000  # characters of one error message sent back (a batch may send one per sample)


def _next_spin(recent_idle: list[float]) -> float:
    """How long to poll for the next request, given how long the last few took to come
    (0 for those that came later than the maximum)."""
    return max(SPIN_AFTER_REPLY, min(SPIN_AFTER_REPLY_MAX, 1.25 * max(recent_idle, default=0.0)))


def _apply_limits(memory_bytes: int | None) -> None:
    if resource is None:
        return
    # A crash writes no core file: it would hold the user's data, and dumping a large process
    # keeps it alive (and its slot in the pool taken) for seconds.
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _cpu_budget(cpu_seconds: int | None) -> None:
    """Allow ``cpu_seconds`` more CPU time from now on (SIGXCPU past it).

    RLIMIT_CPU counts over the process's life, and a warm worker serves many runs, so the soft
    limit is moved before each run to what has been used plus the budget of one run.
    """
    global _cpu_soft, _cpu_hard
    if resource is None or not cpu_seconds:
        return
    if _cpu_hard is None:
        _, _cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    # The limit counts whole seconds, so from one ~1 ms run to the next it rarely moves:
    # one system call to read the time used, and a second only when the limit changes.
    soft = int(time.process_time()) + 1 + int(cpu_seconds)
    if _cpu_hard != resource.RLIM_INFINITY:
        soft = min(soft, _cpu_hard)
    if soft != _cpu_soft:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, _cpu_hard))
        _cpu_soft = soft


_cpu_soft: int | None = None  # the soft CPU limit this process last set
_cpu_hard: int | None = None


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter as module
    except ImportError:  # pragma: no cover - fallback where ai-edge-litert cannot be installed
        import tensorflow as tf

        module = tf.lite  # type: ignore[assignment]
        module.OpResolverType = tf.lite.experimental.OpResolverType  # type: ignore[attr-defined]
    return module


def _resolver(lite: Any, no_default_delegates: bool, reference_kernels: bool) -> Any:
    """The op resolver an interpreter is built with: the reference kernels (BUILTIN_REF, which
    never take a delegate), the builtin kernels without the default delegate, or the default (None)."""
    if reference_kernels:
        return lite.OpResolverType.BUILTIN_REF
    if no_default_delegates:
        return lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return None


def _message(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + " […]"


# -- reading outputs ----------------------------------------------------------------------------------

_NUMERIC = "biufc"


class _OutputSlot:
    """How to read one output of an interpreter, worked out once per interpreter.

    Numeric tensors are read through ``tensor()`` (a view, copied once into shared memory or the
    reply); strings through ``get_tensor`` (``tensor()`` on a string tensor reads its offsets
    table as numbers, and crashed the worker); an empty tensor (a 0 in its shape) becomes an
    empty array (the runtime refuses to read one); anything else (resource, variant) has no
    values, and says so.
    """

    def __init__(self, interpreter: Any, detail: dict, subgraph: int = 0, name: str | None = None) -> None:
        import numpy as np

        self.index = int(detail["index"])
        self.name = detail["name"] if name is None else name
        self.quant = _quant(detail)
        self.subgraph = subgraph
        # The interpreter, never its wrapper: holding the wrapper makes ``invoke`` think a view of
        # its memory is alive, and refuse to run.
        self.interpreter = interpreter
        try:
            self.dtype = np.dtype(detail["dtype"])
        except TypeError:
            self.dtype = None
        kind = self.dtype.kind if self.dtype is not None else "?"
        self.view = interpreter.tensor(self.index) if kind in _NUMERIC and subgraph == 0 else None
        self.strings = kind == "S"
        # The server keeps a float32 copy of a quantized integer output (see _protocol.footprint).
        self.dequantized = kind in "iu" and any(s != 0.0 for s in self.quant[0])
        self.readable = kind in _NUMERIC or self.strings
        signature = detail.get("shape_signature")
        if signature is None:
            signature = detail.get("shape", ())
        # Same shape in every run (no -1), and never empty: the batch loop may read it raw.
        self.fixed = all(int(d) >= 0 for d in signature)
        self.plain = kind in _NUMERIC and self.fixed and all(int(d) > 0 for d in detail.get("shape", ()))

    def read(self) -> Any:
        """The output's value (a view for numeric tensors of the main graph: copy before the next
        invoke), or a sentence when it has none."""
        import numpy as np

        if not self.readable:
            return f"Output {self.name!r} is a {self.dtype or 'non-numeric'} tensor, which has no values to show."
        try:
            if self.view is not None:
                value = self.view()
                # An output of shape () comes back as a numpy scalar, which no reply may carry.
                return value if type(value) is np.ndarray else np.asarray(value)
            wrapper = getattr(self.interpreter, "_interpreter", None)
            if wrapper is not None:
                return wrapper.GetTensor(self.index, self.subgraph)
            return self.interpreter.get_tensor(self.index)
        except ValueError:
            shape = self._shape()
            if shape is not None and 0 in shape:
                return np.zeros(shape, self.dtype if not self.strings else object)
            raise

    def _shape(self) -> tuple[int, ...] | None:
        size = getattr(getattr(self.interpreter, "_interpreter", None), "TensorSize", None)
        if size is None:
            return None
        return tuple(int(d) for d in size(self.index, self.subgraph))


def _quant(detail: dict) -> tuple[tuple[float, ...], tuple[int, ...], int]:
    q = detail.get("quantization_parameters") or {}
    scales = tuple(float(s) for s in q.get("scales", []))
    zero_points = tuple(int(z) for z in q.get("zero_points", []))
    return scales, zero_points, int(q.get("quantized_dimension", 0))


_cached: list[Any] = [None, None]  # the interpreter the slots below belong to, and its slots


def _slots(interpreter: Any) -> list[_OutputSlot]:
    """The main graph's output slots, worked out once per interpreter (``get_output_details``
    builds fresh dicts on every call: 70 µs with cold caches). One interpreter's at a time, kept
    here rather than on the interpreter: the slots refer to it, and a cycle would keep a rebuilt
    interpreter's memory until the garbage collector came by."""
    if _cached[0] is not interpreter:
        _cached[:] = [interpreter, [_OutputSlot(interpreter, d) for d in interpreter.get_output_details()]]
    return _cached[1]


def _collect(slots: list[_OutputSlot], cap: int | None, invoke_ms: float) -> tuple[list[P.Output], list[str]] | P.TooLarge:
    """Read every output, or a ``TooLarge`` when what they would cost the server passes ``cap``.

    The real sizes are checked here, after the invoke: a model's declared output shapes can lie.
    """
    values, notes = [], []
    for slot in slots:
        value = slot.read()
        if isinstance(value, str):
            notes.append(value)
        else:
            values.append((slot, value))
    if cap is not None:
        total = sum(_cost(s, v) for s, v in values)
        if total > cap:
            sizes = tuple(P.OutputSize(name=s.name, dtype=_dtype_name(v), shape=tuple(int(d) for d in v.shape), nbytes=_cost(s, v))
                          for s, v in values)
            return P.TooLarge(outputs=sizes, total=total, cap=cap, invoke_ms=invoke_ms)
    outputs = [
        P.Output(index=s.index, name=s.name, value=v, scales=s.quant[0], zero_points=s.quant[1], quantized_dimension=s.quant[2])
        for s, v in values
    ]
    return outputs, notes


def _dtype_name(v: Any) -> str:
    return "string" if v.dtype.kind in "OS" else str(v.dtype)


def _cost(slot: _OutputSlot, v: Any) -> int:
    if slot.strings or v.dtype.kind in "OS":
        return P.footprint(P.STRINGS, v.size, sum(len(x) for x in v.ravel().tolist()), False)
    return v.nbytes + 4 * v.size if slot.dequantized else v.nbytes


# -- one loaded model ----------------------------------------------------------------------------------


class _Session:
    """One loaded model and the interpreter built from it, rebuilt after any failure.

    ``stateful``: the model keeps state between invokes that resetting variable tensors does not
    clear (resource variables, hash tables, random ops' seeds): its interpreter is rebuilt before
    a run that does not keep state, once it has run.
    """

    def __init__(self, model_bytes: bytes, stateful: bool = True, variables: bool = True) -> None:
        self.model_bytes = model_bytes
        self.stateful = stateful
        self.variables = variables
        self.lite = _interpreter_module()
        self.interpreter: Any = None
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.original: dict[int, tuple[int, ...]] = {}
        self.allocated = False
        self.dirty = False  # it has run since it was built
        self.tracer: _Tracer | None = None  # the marked copy a trace runs (built on the first trace)
        # (interpreter, invoke ms) of the last plain run of the main graph from a fresh state,
        # whose outputs its interpreter still holds: a trace of the same data compares with it.
        self.last_plain: tuple[Any, float] | None = None

    def build(self, no_default_delegates: bool = False, reference_kernels: bool = False) -> Any:
        kwargs: dict[str, Any] = {"model_content": self.model_bytes}
        resolver = _resolver(self.lite, no_default_delegates, reference_kernels)
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver
        return self.lite.Interpreter(**kwargs)

    def ensure(self) -> Any:
        if self.interpreter is None:
            self.interpreter = self.build()
            self.shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in self.interpreter.get_input_details()}
            self.original = dict(self.shapes)
            self.allocated = False
            self.dirty = False
        return self.interpreter

    def fresh(self, keep_state: bool) -> Any:
        """The interpreter, with nothing left of earlier runs unless ``keep_state``."""
        if not keep_state and self.stateful and self.dirty:
            self.interpreter = None
        return self.ensure()

    def run(self, request: P.Run) -> tuple[list, float]:
        """Invoke once; (output slots, invoke ms)."""
        if request.no_default_delegates or request.reference_kernels:
            interpreter = self.build(no_default_delegates=True, reference_kernels=request.reference_kernels)
            shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in interpreter.get_input_details()}
            slots, invoke_ms, _ = _invoke(interpreter, request, shapes, dict(shapes), allocated=False)
            return slots, invoke_ms
        interpreter = self.fresh(request.keep_state)
        self.last_plain = None
        slots, invoke_ms, self.shapes = _invoke(interpreter, request, self.shapes, self.original, self.allocated, self.variables)
        self.allocated = True
        self.dirty = True
        if request.signature is None and not request.keep_state and not self.stateful:
            self.last_plain = (interpreter, invoke_ms)
        return slots, invoke_ms

    def batch(self, request: P.Batch, conn: Any, cpu_seconds: int | None) -> tuple:
        """Run ``request.n`` samples, ``request.chunk`` at a time; stack each output over the chunks.

        One request for the whole batch, so a batch costs what a raw loop costs; a progress
        message goes back at most every 0.1 s. A failing sample is recorded and the rest go on
        (its rows of the stacks are zeros).

        The parent may send only the first samples' data with the request and the rest in
        ``More(rows)`` messages while this loop starts on them; the message, a system call
        on each side, also orders the memory the data was written to. A ``Stop`` between two
        blocks of samples ends the batch there.
        """
        n = int(request.n)
        self.last_plain = None  # the batch invokes the interpreter: the last run's outputs go
        state = {"available": int(request.available if request.available is not None else n), "stop": False}

        def take(message: Any) -> None:
            if isinstance(message, P.More):
                state["available"] = int(message.rows)
            elif isinstance(message, P.Stop):
                state["stop"] = True
            else:
                raise RuntimeError(f"Expected the rest of the batch, got {type(message).__name__}.")

        def wait_for(rows: int) -> None:
            while state["available"] < rows:
                take(conn.recv(spin=SPIN_AFTER_REPLY))  # the next piece is being copied now

        def stopped() -> bool:
            while conn.pending():
                take(conn.recv())
            return bool(state["stop"])

        try:
            return self._batch(request, conn, cpu_seconds, wait_for, stopped)
        finally:
            wait_for(n)  # never leave that message in the pipe, where it would read as a request

    def _prepare(self, signature: str | None, fresh: bool = False, keep_state: bool = True) -> Any:
        """The interpreter, allocated at the model's own input shapes (rebuilt first when
        ``fresh``, or when it holds state and ``keep_state`` is false)."""
        if fresh:
            self.interpreter = None
        interpreter = self.fresh(keep_state)
        if signature is None and (self.shapes != self.original or not self.allocated):
            for index, shape in self.original.items():
                if self.shapes.get(index) != shape:
                    interpreter.resize_tensor_input(index, list(shape))
            interpreter.allocate_tensors()
            self.shapes, self.allocated = dict(self.original), True
        return interpreter

    def _batch(self, request: P.Batch, conn: Any, cpu_seconds: int | None, wait_for: Any, stopped: Any) -> tuple:
        import numpy as np

        n, chunk, signature = int(request.n), int(request.chunk), request.signature
        arrays = request.arrays
        n_chunks = (n + chunk - 1) // chunk
        failed: dict[int, str] = {}
        times = [0.0] * n_chunks
        slots: list[_OutputSlot] = []
        columns: list[list[Any]] = []  # per output: its value for each chunk
        # A model that holds state starts every sample afresh, unless the caller keeps it.
        reset_each = (self.stateful or self.variables) and not request.keep_state
        prepare = functools.partial(self._prepare, signature, keep_state=request.keep_state)
        interpreter = prepare()
        self.dirty = True
        if signature is None:
            slots = _slots(interpreter)
            columns = [[None] * n_chunks for _ in slots]
        cap = request.output_cap
        _cpu_budget(cpu_seconds)
        perf = time.perf_counter
        last = time.monotonic()
        k = 0
        while k < n_chunks:
            # Between blocks: the clock, progress, CPU budget, a Stop. The first block is one chunk,
            # so that the output cap is checked before the worker stacks anything; the next ones
            # end on multiples of 64, where the parent's first piece of data ends.
            block_end = min(n_chunks, (k // 64 + 1) * 64 if k else 1)
            wait_for(min(n, block_end * chunk))
            if signature is not None or reset_each:
                for k in range(k, block_end):
                    if reset_each and k and self.stateful:
                        interpreter = prepare(fresh=True)
                        if signature is None:
                            slots = _slots(interpreter)
                    if reset_each and self.variables and signature is None:
                        _reset_variables(interpreter)
                    start = k * chunk
                    try:
                        if signature is not None:
                            runner = _Runner(interpreter, signature)
                            times[k] = runner.run({name: arr[start : start + chunk] for name, arr in arrays},
                                                  reset_variables=reset_each and self.variables)
                            values = [s.read() for s in runner.slots]
                        else:
                            for index, x in arrays:
                                interpreter.set_tensor(index, x[start : start + chunk])
                            t0 = perf()
                            interpreter.invoke()
                            times[k] = perf() - t0
                            self.dirty = True
                            values = [s.read() for s in slots]
                            runner = None
                        if not slots and runner is not None:
                            slots = runner.slots
                            columns = [[None] * n_chunks for _ in slots]
                        for column, value in zip(columns, values):
                            column[k] = np.array(value) if not isinstance(value, str) else value
                    except Exception as exc:
                        failed[k] = f"{type(exc).__name__}: {_message(exc)}"
                        interpreter = prepare(fresh=True)
                        if signature is None:
                            slots = _slots(interpreter)
            else:
                k = self._index_block(interpreter, arrays, slots, chunk, k, block_end, columns, times, failed)
                if k < block_end:  # sample k failed: its interpreter is rebuilt, then on with the next
                    interpreter = prepare(fresh=True)
                    slots = _slots(interpreter)
                    k += 1
                    continue
            k = block_end
            if cap is not None and k and len(failed) < k:
                # What the stacks will cost the server, from the first chunk that ran: stop at
                # once rather than run a batch whose outputs cannot be sent.
                first = next(j for j in range(k) if j not in failed)
                per_chunk = [(s, c[first]) for s, c in zip(slots, columns) if not isinstance(c[first], str)]
                cost = sum(_cost(s, v) for s, v in per_chunk) * n_chunks
                if cost > cap:
                    sizes = tuple(
                        P.OutputSize(name=s.name, dtype=_dtype_name(v), shape=(n_chunks, *map(int, v.shape)), nbytes=_cost(s, v) * n_chunks)
                        for s, v in per_chunk
                    )
                    return P.TooLarge(outputs=sizes, total=cost, cap=cap, invoke_ms=sum(times) * 1000.0)
            now = time.monotonic()
            if k < n_chunks and stopped():
                break
            if now - last >= 0.1 and k < n_chunks:
                # A sign of life for the parent's clock, and a fresh CPU budget for what follows.
                _send(conn, P.Progress(done=min(k * chunk, n), total=n))
                _cpu_budget(cpu_seconds)
                last = now
        done = min(k, n_chunks)
        kept = [j for j in range(len(slots)) if all(not isinstance(columns[j][c], str) for c in range(done) if c not in failed)]
        notes = tuple(dict.fromkeys(columns[j][c] for j in range(len(slots)) if j not in kept for c in range(done)
                                    if c not in failed and isinstance(columns[j][c], str)))
        stacks = _stacks([columns[j][:done] for j in kept], [slots[j].fixed for j in kept], failed)
        outputs = tuple(
            P.Output(index=slots[j].index, name=slots[j].name, value=stack, scales=slots[j].quant[0],
                     zero_points=slots[j].quant[1], quantized_dimension=slots[j].quant[2])
            for j, stack in zip(kept, stacks)
        )
        # 8 bytes a time as one float64 buffer, not a list of numbers in the header.
        seconds = np.frombuffer(array.array("d", times[:done]).tobytes(), dtype="<f8")
        return P.BatchDone(outputs=outputs, failed=failed, times=seconds, done=done, notes=notes)

    @staticmethod
    def _index_block(interpreter, arrays, slots, chunk, k, end, columns, times, failed) -> int:
        """Run chunks ``k`` to ``end`` with set_tensor/invoke/get_tensor; where it stopped.

        The tightest loop here: it calls the runtime's wrapper directly where it can, since
        ``Interpreter.invoke`` first checks in Python that no numpy view of the interpreter's
        memory is alive, and this loop holds none (``GetTensor`` returns copies).
        """
        wrapper = getattr(interpreter, "_interpreter", None)
        if wrapper is not None and hasattr(wrapper, "Invoke") and hasattr(wrapper, "SetTensor") and hasattr(wrapper, "GetTensor"):
            set_tensor, invoke = wrapper.SetTensor, wrapper.Invoke
            get = wrapper.GetTensor
            subgraph = (0,)
        else:  # the tf.lite fallback, or a wrapper that changed
            set_tensor, invoke, get, subgraph = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor, ()
        perf = time.perf_counter
        # Strings, empty tensors and tensors with no values go through their slot's own reading.
        plain = all(s.plain for s in slots)
        outs = [s.index for s in slots]
        try:
            if plain and len(arrays) == 1 and len(outs) == 1:
                ((in_index, x),), (out_index,), (column,) = arrays, outs, columns
                for k in range(k, end):
                    start = k * chunk
                    set_tensor(in_index, x[start : start + chunk])
                    t0 = perf()
                    invoke()
                    times[k] = perf() - t0
                    column[k] = get(out_index, *subgraph)
            else:
                import numpy as np

                for k in range(k, end):
                    start = k * chunk
                    for index, x in arrays:
                        set_tensor(index, x[start : start + chunk])
                    t0 = perf()
                    invoke()
                    times[k] = perf() - t0
                    if plain:
                        for column, index in zip(columns, outs):
                            column[k] = get(index, *subgraph)
                    else:
                        for column, slot in zip(columns, slots):
                            value = slot.read()
                            column[k] = value if isinstance(value, str) else np.array(value)
        except Exception as exc:
            failed[k] = f"{type(exc).__name__}: {_message(exc)}"
            return k
        return end


class _Runner:
    """A signature's inputs, outputs and invoke, through the runtime's wrapper: its own
    ``SignatureRunner`` reads every output with ``get_tensor``, which refuses empty tensors."""

    _cached: list[Any] = [None, None, None]  # interpreter, signature, (inputs, subgraph, slots)

    def __init__(self, interpreter: Any, signature: str) -> None:
        cached = _Runner._cached
        if cached[0] is not interpreter or cached[1] != signature:
            # The runtime's runner holds the wrapper: read what it knows, and let it go.
            runner = interpreter.get_signature_runner(signature)
            details = runner.get_output_details()
            sub = runner._subgraph_index
            found = (dict(runner._inputs), sub, [_OutputSlot(interpreter, details[name], sub, name=name) for name in details])
            del runner
            cached[:] = [interpreter, signature, found]
        self.interpreter = interpreter
        self.inputs, self.subgraph, self.slots = cached[2]

    def run(self, arrays: dict, reset_variables: bool = False) -> float:
        """Set the inputs (after resetting variable tensors, if asked) and invoke; the invoke's
        seconds. The outputs are read from ``slots``."""
        import numpy as np

        inputs, sub = self.inputs, self.subgraph
        if len(arrays) != len(inputs):
            raise ValueError(f"Invalid number of inputs provided for running a SignatureDef, expected {len(inputs)} vs provided {len(arrays)}")
        wrapper = self.interpreter._interpreter
        for name, value in arrays.items():
            if name not in inputs:
                raise ValueError(f"Invalid Input name ({name}) for SignatureDef")
            wrapper.ResizeInputTensor(inputs[name], np.array(value.shape, dtype=np.int32), False, sub)
        wrapper.AllocateTensors(sub)
        if reset_variables and hasattr(wrapper, "ResetVariableTensors"):
            wrapper.ResetVariableTensors()
        for name, value in arrays.items():
            wrapper.SetTensor(inputs[name], value, sub)
        t0 = time.perf_counter()
        wrapper.Invoke(sub)
        return time.perf_counter() - t0


def _stacks(columns: list[list], fixed: list[bool], failed: Any = ()) -> list:
    """Each output stacked over the chunks, ``[chunks, *shape]``; a failed chunk's rows are zeros.

    ``columns[j][k]``: output ``j`` of chunk ``k``, or anything for a chunk in ``failed``.
    ``fixed[j]``: output ``j`` has the same shape in every chunk (no -1 in its signature).
    """
    import numpy as np

    if not columns or all(k in failed for k in range(len(columns[0]))):  # no chunk ran: nothing to stack
        return []
    stacks = []
    for j, rows in enumerate(columns):
        first = rows[next(k for k in range(len(rows)) if k not in failed)]
        if failed:
            rows = list(rows)
            for k in failed:
                if k < len(rows):
                    rows[k] = np.zeros_like(first)
        if fixed[j] and first.flags.c_contiguous and not first.dtype.hasobject:
            # Rows of one shape and dtype, each a fresh contiguous copy: joining their bytes
            # is four times faster than concatenate (which converts each row first), and the
            # bytearray makes a writable array.
            joined = bytearray().join(rows)
            if len(joined) == len(rows) * first.nbytes:
                stacks.append(np.frombuffer(joined, first.dtype).reshape((len(rows),) + first.shape))
                continue
        if first.ndim and all(r.shape == first.shape for r in rows):
            # concatenate is three times faster than stack for many small arrays, and gives
            # the same bytes: fold the chunks' axis back out with a reshape.
            stacks.append(np.concatenate(rows).reshape((len(rows),) + first.shape))
        else:
            stacks.append(np.stack(rows))
    return stacks


def _invoke(
    interpreter: Any, request: P.Run, shapes: dict, original: dict, allocated: bool, variables: bool = True, read: bool = True
):
    """Resize and allocate if needed, set the inputs, invoke; (output slots, invoke ms, shapes).
    ``read=False``: no output slots are worked out (None instead), for an interpreter whose
    outputs are read another way (a trace's)."""
    if request.signature is not None:
        runner = _Runner(interpreter, request.signature)
        seconds = runner.run(dict(request.arrays), reset_variables=variables and not request.keep_state)
        return (runner.slots if read else None), seconds * 1000.0, shapes
    resize = request.resize
    if resize:
        wanted = dict(original)
        wanted.update({int(k): tuple(v) for k, v in resize.items()})
    else:
        wanted = original
    if not allocated or wanted != shapes:
        for index, shape in wanted.items():
            if shapes.get(index) != shape:
                interpreter.resize_tensor_input(index, list(shape))
        shapes = wanted
        interpreter.allocate_tensors()
    if not request.keep_state:
        # Variable tensors (an LSTM's state) keep the last run's values: back to their defaults.
        # (No name may hold the wrapper across invoke(), which would take it for a live view.)
        if variables:
            _reset_variables(interpreter)
        if len(request.arrays) < len(shapes):
            _clear_missing(interpreter, request.arrays)
    for index, value in request.arrays:
        interpreter.set_tensor(index, value)
    t0 = time.perf_counter()
    interpreter.invoke()
    invoke_ms = (time.perf_counter() - t0) * 1000.0
    # Views of the outputs, copied straight into shared memory or the reply (and no view
    # outlives this request). Names, indices and quantization do not change for an
    # interpreter's life, so they are read once.
    return (_slots(interpreter) if read else None), invoke_ms, shapes


def _reset_variables(interpreter: Any) -> None:
    if getattr(interpreter, "_interpreter", None) is not None and hasattr(interpreter._interpreter, "ResetVariableTensors"):
        interpreter._interpreter.ResetVariableTensors()


def _clear_missing(interpreter: Any, arrays: list) -> None:
    """Zero the numeric inputs a run gives no data for: they would hold the last run's."""
    import numpy as np

    given = {index for index, _ in arrays}
    for d in interpreter.get_input_details():
        if d["index"] not in given and np.dtype(d["dtype"]).kind in _NUMERIC:
            interpreter.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))


# -- tracing: every op's output of one run ---------------------------------------------------------

# Tensors whose values a delegate keeps to itself are undefined after an invoke, and
# experimental_preserve_all_tensors changes outputs in some runtimes. A tensor that is an output
# of the subgraph, though, must be written out whoever computes it: so a trace runs a copy of
# the model whose every op output is also an output of the subgraph (what Polygraphy's "mark
# all" does), and keeps the default delegate.

_OUTPUTS_SLOT = 8  # SubGraph.outputs in the schema (tensors 4, inputs 6, outputs 8)
_SUBGRAPHS_SLOT = 8  # Model.subgraphs


def mark_outputs(model: bytes | memoryview, subgraph: int, tensors: Any) -> bytes:
    """A copy of ``model`` whose subgraph ``subgraph`` lists, as its outputs, its own outputs
    and then each tensor of ``tensors`` not among them.

    The new list goes after the model's last byte and the subgraph's ``outputs`` field is
    pointed at it: nothing else moves, so buffers stored past the flatbuffer (large models) and
    what follows it in the file (a metadata zip) keep their offsets, and the copy costs one
    pass over the bytes. Raises ``ValueError`` when the model has no such subgraph, or a
    subgraph without an outputs list to point elsewhere.
    """
    import struct

    from ._flat import Flat

    flat = Flat(model)
    start, count = flat.vector(flat.root(), _SUBGRAPHS_SLOT)
    table = flat.element(start, count, subgraph)
    field_at = flat.field(table, _OUTPUTS_SLOT)
    if not field_at:
        raise ValueError(f"Subgraph {subgraph} has no list of outputs to extend.")
    current = flat.scalars(table, _OUTPUTS_SLOT, "i", 4)
    have = set(current)
    extra = [int(t) for t in dict.fromkeys(tensors) if int(t) >= 0 and int(t) not in have]
    outputs = [*current, *extra]
    size = len(model)
    pad = -size % 4
    at = size + pad
    out = bytearray(at + 4 + 4 * len(outputs))
    out[:size] = model
    struct.pack_into(f"<I{len(outputs)}i", out, at, len(outputs), *outputs)
    struct.pack_into("<I", out, field_at, at - field_at)
    return bytes(out)


def _tracer_key(request: P.Trace) -> tuple:
    """What a kept traced interpreter was built for: another key needs another one."""
    return (request.subgraph, tuple(request.mark), bool(request.no_default_delegates), bool(request.reference_kernels))


class _Tracer:
    """The marked copy of a session's model and its interpreter, kept for the next trace of the
    same subgraph and tensors."""

    def __init__(self, session: "_Session", request: P.Trace) -> None:
        t0 = time.perf_counter()
        self.key = _tracer_key(request)
        data = mark_outputs(session.model_bytes, request.subgraph, request.mark)
        kwargs: dict[str, Any] = {"model_content": data}
        resolver = _resolver(session.lite, request.no_default_delegates, request.reference_kernels)
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver
        self.interpreter = session.lite.Interpreter(**kwargs)
        del data  # the interpreter holds the bytes it needs
        self.shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in self.interpreter.get_input_details()}
        self.original = dict(self.shapes)
        self.allocated = False
        self.dirty = False
        self.build_ms = (time.perf_counter() - t0) * 1000.0
        self.constants: dict[int, tuple[list[float], tuple[int, ...]]] = {}  # weights' rows: the same every run

    def run(self, request: P.Run, stateful: bool, variables: bool) -> float:
        """Invoke on the request's inputs (from a fresh state); the invoke's ms."""
        interpreter = self.interpreter
        _, ms, self.shapes = _invoke(interpreter, request, self.shapes, self.original, self.allocated, variables, read=False)
        self.allocated = True
        self.dirty = True
        return ms

    def reader(self, subgraph: int) -> Callable[[int], Any]:
        """Reads one numeric tensor of ``subgraph`` after the invoke: a view for the main
        graph's (copy before the next invoke), a copy otherwise; ``ValueError`` when it has no
        data. Never for strings: ``tensor()`` reads a string tensor's offsets as numbers."""
        if subgraph == 0:
            wrapper = self.interpreter._interpreter  # what Interpreter.tensor(i)() calls, one frame less
            return self._or_empty(lambda i: wrapper.tensor(wrapper, i), subgraph)
        return self.copier(subgraph)

    def copier(self, subgraph: int) -> Callable[[int], Any]:
        """Reads a copy of one tensor of ``subgraph``, of any type (strings as bytes objects);
        ``ValueError`` when it has no data."""
        wrapper = self.interpreter._interpreter
        return self._or_empty(lambda i: wrapper.GetTensor(i, subgraph), subgraph)

    def _or_empty(self, get: Callable[[int], Any], subgraph: int) -> Callable[[int], Any]:
        """``get``, with an empty tensor (a 0 in its shape, which the runtime refuses to read)
        read as an empty array of its type."""
        import numpy as np

        wrapper = self.interpreter._interpreter

        def read(i: int) -> Any:
            try:
                value = get(i)
                # A tensor of shape () comes back as a numpy scalar, which is no array (and no
                # reply may carry one): as a 0-d array.
                return value if type(value) is np.ndarray else np.asarray(value)
            except ValueError:
                shape = tuple(int(d) for d in wrapper.TensorSize(i, subgraph))
                if 0 not in shape:
                    raise
                detail = self.interpreter._get_tensor_details(i, subgraph)
                return np.zeros(shape, detail["dtype"] if np.dtype(detail["dtype"]).kind != "S" else object)

        return read


_CHUNK = 1 << 16  # elements per BLAS call: float32 partial sums stay short, and are added in float64
_ones: list[Any] = []


def _sumsq(f: Any) -> float:
    """The sum of squares of a 1-D float32 array through BLAS, a chunk at a time, added in float64."""
    import numpy as np

    n = f.size
    if n <= _CHUNK:
        return float(np.dot(f, f))
    return math.fsum(float(np.dot(f[i:i + _CHUNK], f[i:i + _CHUNK])) for i in range(0, n, _CHUNK))


def _sum(f: Any) -> float:
    """The sum of a 1-D float32 array: a dot product with ones, twice as fast as ``sum`` here."""
    import numpy as np

    if not _ones:
        _ones.append(np.ones(_CHUNK, np.float32))
    ones = _ones[0]
    n = f.size
    if n <= _CHUNK:
        return float(np.dot(f, ones[:n]))
    return math.fsum(float(np.dot(f[i:i + _CHUNK], ones[: min(_CHUNK, n - i)])) for i in range(0, n, _CHUNK))


def _mean_std(f: Any) -> tuple[float, float]:
    """Mean and standard deviation of a 1-D array of finite values: from the sum and the sum of
    squares (two BLAS passes), and again from the deviations when the mean dwarfs the spread
    (where E[x²] - E[x]² cancels)."""
    import numpy as np

    n = f.size
    if f.dtype != np.float32:
        f = f.astype(np.float64)
        mean = float(f.sum()) / n
        d = f - mean
        return mean, math.sqrt(float(np.dot(d, d)) / n)
    mean = _sum(f) / n
    square = _sumsq(f) / n
    var = square - mean * mean
    if var < 0.1 * square:
        d = f - np.float32(mean)
        shift = _sum(d) / n
        mean += shift
        var = max(_sumsq(d) / n - shift * shift, 0.0)
    return mean, math.sqrt(max(var, 0.0))


_ONE_PASS: list[Any] = []


def _one_pass() -> Any:
    """The compiled one-pass statistics (``lite_debug/_fast.c``: five or more numpy passes over
    each tensor in one), or None where the optional module is not built. Imported on first use,
    as numpy is (see the top of this module)."""
    if not _ONE_PASS:
        try:
            from . import _fast
        except ImportError:
            _fast = None  # type: ignore[assignment]
        _ONE_PASS.append(_fast)
    return _ONE_PASS[0]


def _float32_row(f: Any) -> list[float] | None:
    """``tensor_stats`` of a 1-D float32 array whose values are all finite (the usual tensor),
    in one pass where ``_fast`` is built, else with as few numpy calls as will do; None when it
    holds NaN or Inf (the sum, or min and max, say so)."""
    import numpy as np

    fast = _one_pass()
    n = f.size
    if fast is not None:
        try:
            lo, hi, total, square, zeros = fast.f32(f)
        except (TypeError, BufferError, ValueError):
            pass  # not a plain C-contiguous float32 buffer: numpy below
        else:
            if not (math.isfinite(total) and math.isfinite(square)):
                return None  # a NaN or an infinity among the values
            mean = total / n
            var = square / n - mean * mean
            if var >= 0.1 * square / n:
                return [float(n), lo, hi, mean, math.sqrt(var), 0.0, 0.0, float(zeros), 0.0, 0.0]
            mean, std = _mean_std(f)  # the mean dwarfs the spread: from the deviations
            return [float(n), lo, hi, mean, std, 0.0, 0.0, float(zeros), 0.0, 0.0]
    lo, hi = float(f.min()), float(f.max())
    if not (-math.inf < lo and hi < math.inf):  # NaN fails both comparisons
        return None
    # count_nonzero of the comparison: on float32 it is 4× faster than counting the non-zeros.
    zeros = float(np.count_nonzero(f == 0)) if lo <= 0.0 <= hi else 0.0
    if n <= _CHUNK:
        if not _ones:
            _ones.append(np.ones(_CHUNK, np.float32))
        total, square = float(np.dot(f, _ones[0][:n])), float(np.dot(f, f))
        mean = total / n
        var = square / n - mean * mean
        if var >= 0.1 * square / n:
            return [float(n), lo, hi, mean, math.sqrt(var), 0.0, 0.0, zeros, 0.0, 0.0]
    mean, std = _mean_std(f)
    return [float(n), lo, hi, mean, std, 0.0, 0.0, zeros, 0.0, 0.0]


def _int8_row(a: Any, quant: tuple | None, row: list[float]) -> list[float] | None:
    """``tensor_stats`` of a 1-D int8 or uint8 array (raw, or quantized with one scale) in one
    pass, filling ``row``; None where ``_fast`` is not built or refuses it."""
    fast = _one_pass()
    if fast is None:
        return None
    quantized = quant is not None and len(quant[0]) == 1
    z = int(quant[1][0]) if quantized and quant[1] else 0  # type: ignore[index]
    try:
        lo, hi, total, square, at_min, at_max, at_zero = fast.i8(a, z)
    except (TypeError, BufferError, ValueError, OverflowError):
        return None
    n = a.size
    mean = total / n
    std = math.sqrt(max(n * square - total * total, 0) / (n * n))  # exact in integers
    row[7] = float(at_zero)
    if not quantized:
        row[1:5] = [float(lo), float(hi), mean, std]
        return row
    s = float(quant[0][0])  # type: ignore[index]
    row[8], row[9] = float(at_min), float(at_max)
    ends = sorted((s * (lo - z), s * (hi - z)))
    row[1:5] = [ends[0], ends[1], s * (mean - z), abs(s) * std]
    return row


def tensor_stats(a: Any, quant: tuple | None = None) -> list[float]:
    """One row of ``P.STAT_COLUMNS`` for the values ``a``; ``quant`` (scales, zero points,
    quantized dimension) puts min, max, mean and std of an integer tensor in real units and
    counts its values at the ends of its integer range."""
    import numpy as np

    if quant is None and a.dtype == np.float32 and a.size:
        row = _float32_row(a.reshape(-1))
        if row is not None:
            return row
    nan = float("nan")
    n = int(a.size)
    row = [float(n), nan, nan, nan, nan, 0.0, 0.0, 0.0, 0.0, 0.0]
    if not n:
        return row
    shape = a.shape
    a = a.reshape(-1)
    kind = a.dtype.kind
    if kind == "b":
        a, kind = a.view(np.uint8), "u"
    if kind in "iu":
        if a.itemsize == 1 and (quant is None or len(quant[0]) <= 1):
            done = _int8_row(a, quant, row)
            if done is not None:
                return done
        lo, hi = a.min(), a.max()
        if quant is not None and quant[0]:
            scales, zero_points, axis = quant
            info = np.iinfo(a.dtype)
            row[8] = float(np.count_nonzero(a == info.min)) if lo == info.min else 0.0
            row[9] = float(np.count_nonzero(a == info.max)) if hi == info.max else 0.0
            if len(scales) == 1:
                s, z = float(scales[0]), int(zero_points[0]) if zero_points else 0
                row[7] = float(np.count_nonzero(a == z))
                mean, std = _mean_std(a.astype(np.float32))
                ends = sorted((s * (int(lo) - z), s * (int(hi) - z)))
                row[1:5] = [ends[0], ends[1], s * (mean - z), abs(s) * std]
                return row
            if not (0 <= axis < len(shape) and shape[axis] == len(scales) and len(zero_points) in (0, 1, len(scales))):
                quant = None  # parameters that do not fit the tensor (a crafted model): raw values
                row[1:5] = [float(lo), float(hi), *_mean_std(a.astype(np.float64))]
                row[7] = float(n - np.count_nonzero(a))
                return row
            # Per-channel parameters: dequantized along their dimension.
            values = a.reshape(shape).astype(np.float32)
            along = [1] * len(shape)
            along[axis] = -1
            zps = np.broadcast_to(np.asarray(zero_points or [0], np.float32), (len(scales),)).reshape(along)
            values = (values - zps) * np.asarray(scales, np.float32).reshape(along)
            row[7] = float(np.count_nonzero(values == 0))
            flat = values.reshape(-1)
            mean, std = _mean_std(flat)
            row[1:5] = [float(flat.min()), float(flat.max()), mean, std]
            return row
        row[7] = float(n - np.count_nonzero(a))
        mean, std = _mean_std(a.astype(np.float64))
        row[1:5] = [float(lo), float(hi), mean, std]
        return row
    if kind != "f":
        raise TypeError(f"no statistics for a {a.dtype} tensor")
    if a.dtype != np.float32 and a.dtype != np.float64:
        a = a.astype(np.float32)
    lo, hi = a.min(), a.max()
    # min and max are NaN when any value is, and infinite when any value is: in the usual case
    # (both finite) nothing else needs counting.
    if not (math.isfinite(lo) and math.isfinite(hi)):
        finite = np.isfinite(a)
        nans = int(np.count_nonzero(np.isnan(a)))
        row[5] = float(nans)
        a = a[finite]
        row[6] = float(n - a.size - nans)
        if not a.size:
            return row
        lo, hi = a.min(), a.max()
    # No zero lies outside [lo, hi]; inside, a comparison counts -0.0 too (and is faster than
    # count_nonzero on floats).
    row[7] = float(np.count_nonzero(a == 0)) if lo <= 0 <= hi else 0.0
    mean, std = _mean_std(a)
    row[1:5] = [float(lo), float(hi), mean, std]
    return row


def _compare(a: Any, b: Any) -> tuple[bool, float]:
    """Whether two outputs hold the same values (NaN where NaN), and their largest difference
    (infinite when their shapes, or where they hold NaN, differ)."""
    import numpy as np

    if a.shape != b.shape:
        return False, float("inf")
    if a.dtype.kind in "OS" or b.dtype.kind in "OS":
        same = bool(np.array_equal(a, b))
        return same, 0.0 if same else float("inf")
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        same = bool(np.array_equal(a, b, equal_nan=True))
        if same:
            return True, 0.0
        x, y = a.astype(np.float64), b.astype(np.float64)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            return False, float("inf")
        d = np.abs(x - y)
        d = d[~np.isnan(d)]
        return False, float(d.max()) if d.size else 0.0
    same = bool(np.array_equal(a, b))
    return same, 0.0 if same else float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _trace(state: "_State", request: P.Trace) -> Any:
    """The ``Trace`` request (see it): the plain run (as ``Run`` answers it when it fails), then
    the traced run, statistics and fetched values."""
    import numpy as np

    session = state.session
    assert session is not None
    run = P.Run(arrays=request.arrays, signature=request.signature, resize=request.resize,
                no_default_delegates=request.no_default_delegates, reference_kernels=request.reference_kernels)
    reused = _same_as_last_run(session, request)
    if reused is not None:
        # The worker's last plain run had these very inputs, and its interpreter still holds
        # what it gave: that is the plain run to compare with.
        outputs, notes = _collect(_slots(session.interpreter), None, reused)  # type: ignore[misc]
        invoke_ms = reused
        build_ms, trace_ms = _traced_run(session, request, run)
    else:
        # The plain run goes on the helper thread while this one builds (on the first trace)
        # and runs the marked copy: each invoke lets go of the GIL, so the two interpreters
        # run on two cores, and the trace waits for the longer run instead of for both.
        plain_done = _beside(lambda: _run(state, run))
        try:
            build_ms, trace_ms = _traced_run(session, request, run)
        except Exception:
            plain = plain_done()
            if not isinstance(plain, P.RunDone):
                session.tracer = None
                return plain  # the plain run's own failure says more than the copy's
            raise
        plain = plain_done()
        if not isinstance(plain, P.RunDone):
            return plain
        outputs, notes, invoke_ms = list(plain.outputs), list(plain.notes), plain.invoke_ms
    tracer = session.tracer
    assert tracer is not None
    read, copy = tracer.reader(request.subgraph), tracer.copier(request.subgraph)
    equal, differences = [], []
    for out in outputs:
        try:
            same, diff = _compare(np.asarray(out.value), np.asarray(copy(out.index)))
        except ValueError:
            same, diff = False, float("inf")
        equal.append(same)
        differences.append(diff)
    t0 = time.perf_counter()
    tensors = [int(t) for t in request.tensors]
    weights = request.weights
    values_of = _values_of(read, request.quantized, weights)
    stats, status, ranks, dims = _statistics(tracer, tensors, values_of, weights)
    stats_ms = (time.perf_counter() - t0) * 1000.0
    fetched = []
    # Numbers are read as views (the reply is written out, into the shared region or the frame,
    # before the next request): a copy fewer of every fetched value. Strings, and another
    # subgraph's tensors, are read as copies (see _Tracer.reader).
    kind_of = tracer.interpreter._interpreter.TensorType
    for t in request.fetch:
        t = int(t)
        numeric = request.subgraph == 0 and np.dtype(kind_of(weights.get(t, t), 0)).kind in _NUMERIC
        try:
            value, quant = values_of(t, read if numeric else copy)
        except ValueError:
            notes.append(f"Tensor {t} has no values to send.")
            continue
        scales, zero_points, axis = quant or ((), (), 0)
        fetched.append(P.Output(index=t, name="", value=value, scales=tuple(scales), zero_points=tuple(zero_points),
                                quantized_dimension=int(axis)))
    cap = request.output_cap
    if cap is not None:
        sizes = [(o.name or str(o.index), o.value, o.scales) for o in (*outputs, *fetched)]
        held = sum(_held(v, q) for _, v, q in sizes) + stats.nbytes + status.nbytes + ranks.nbytes + 8 * len(dims)
        if held > cap:
            return P.TooLarge(
                outputs=tuple(P.OutputSize(name=n, dtype=_dtype_name(v), shape=tuple(int(d) for d in v.shape), nbytes=_held(v, q))
                              for n, v, q in sizes),
                total=held, cap=cap, invoke_ms=invoke_ms,
            )
    return P.Traced(
        stats=stats, status=status, ranks=ranks, shapes=np.asarray(dims, np.int64),
        outputs=tuple(outputs), equal=tuple(equal), differences=tuple(differences), fetched=tuple(fetched),
        invoke_ms=invoke_ms, trace_ms=trace_ms, stats_ms=stats_ms, build_ms=build_ms, notes=tuple(notes),
        reused=reused is not None,
    )


def _values_of(read: Callable[[int], Any], quantized: dict, weights: dict) -> Callable[..., tuple[Any, tuple | None]]:
    """What reads a tensor's values (with ``read``, or the reader given) and the parameters that
    give them real units; a tensor of ``weights`` is read from the constant it dequantizes."""
    import numpy as np

    def values_of(t: int, get: Callable[[int], Any] = read) -> tuple[Any, tuple | None]:
        source = weights.get(t)
        if source is None:
            return get(t), quantized.get(t)
        value = get(source)
        return (value.astype(np.float32, copy=False) if value.dtype.kind == "f" else value), quantized.get(source)

    return values_of


def _statistics(tracer: _Tracer, tensors: list[int], values_of: Callable[[int], tuple[Any, tuple | None]],
                weights: dict) -> tuple[Any, Any, Any, list[int]]:
    """Each tensor of ``tensors`` reduced to its row of ``STAT_COLUMNS``: (rows, status, ranks,
    dimensions), as ``Traced`` has them. The rows of ``weights`` (constants: the same every run)
    are kept in ``tracer.constants`` and read from there after."""
    import numpy as np

    nan_row = [math.nan] * len(P.STAT_COLUMNS)
    rows: list[list[float]] = []
    status = [0] * len(tensors)
    ranks = [-1] * len(tensors)
    dims: list[int] = []
    constants = tracer.constants
    # Plain float32 tensors (most of a float model's) go to the compiled loop in one call, after
    # this loop: a call per tensor cost more than its pass over the values.
    fast = _one_pass()
    batch_rows: list[int] = []
    batch: list[Any] = []
    float32 = np.dtype(np.float32)
    for row, t in enumerate(tensors):
        known = constants.get(t) if t in weights else None
        if known is not None:
            values, shape = known
            rows.append(values)
            ranks[row] = len(shape)
            dims.extend(shape)
            continue
        try:
            value, quant = values_of(t)
        except ValueError:
            status[row] = 2
            rows.append(nan_row)
            continue
        ranks[row] = value.ndim
        dims.extend(value.shape)
        if fast is not None and quant is None and value.dtype == float32:
            batch_rows.append(row)
            batch.append(value)
            rows.append(nan_row)  # filled in below
            continue
        # One thread: split over two, the statistics took 1.6x as long on two free cores (the
        # threads trade the GIL on every small tensor's numpy calls), and no less on one.
        try:
            values = tensor_stats(value, quant)
        except TypeError:
            status[row] = 1
            values = nan_row
        else:
            if t in weights:
                constants[t] = (values, tuple(int(d) for d in value.shape))
        rows.append(values)
    if batch:
        for row, done, value in zip(batch_rows, _f32_rows(fast, batch), batch):
            rows[row] = done = done if done is not None else tensor_stats(value)  # NaN, Inf, a large mean: numpy
            t = tensors[row]
            if t in weights:
                constants[t] = (done, tuple(int(d) for d in value.shape))
        batch = []
    value = None  # no view may outlive the request
    stats = np.array(rows, np.float64).reshape(len(tensors), len(P.STAT_COLUMNS))
    status, ranks = np.array(status, np.int8), np.array(ranks, np.int32)
    return stats, status, ranks, dims


_SPLIT_ROWS = 1 << 16  # values in a batch past which its passes are shared with the helper thread


def _f32_rows(fast: Any, arrays: list) -> list:
    """``fast.f32_rows(arrays)``, the passes of the batch's later half (by values) on the helper
    thread: each call lets go of the GIL for all of its passes, so the halves run on two cores."""
    sizes = [a.size for a in arrays]
    total = sum(sizes)
    if total < _SPLIT_ROWS or len(arrays) < 2:
        return fast.f32_rows(arrays)
    half, k = 0, 0
    while k < len(arrays) - 1 and half + sizes[k] <= total // 2:
        half += sizes[k]
        k += 1
    k = max(k, 1)
    later = _beside(lambda: fast.f32_rows(arrays[k:]))
    return [*fast.f32_rows(arrays[:k]), *later()]


def _kept_tracer(session: "_Session", request: P.Trace | P.Prepare) -> tuple[_Tracer, float]:
    """The session's marked copy for ``request``, built now unless the one kept fits it (same
    subgraph, marks and kernels; unrun, for a model that keeps state); (it, ms building it, 0
    when it was kept)."""
    tracer = session.tracer
    if tracer is not None and tracer.key == _tracer_key(request) and not (tracer.dirty and session.stateful):
        return tracer, 0.0
    session.tracer = None
    tracer = session.tracer = _Tracer(session, request)
    return tracer, tracer.build_ms


def _traced_run(session: "_Session", request: P.Trace, run: P.Run) -> tuple[float, float]:
    """Invoke the marked copy on ``run``'s inputs; (ms building it, 0 when it was kept; invoke ms).
    The copy is kept with the session: built on the first trace (or a ``Prepare``), reused after."""
    tracer, build_ms = _kept_tracer(session, request)
    return build_ms, tracer.run(run, session.stateful, session.variables)


def _prepare(session: "_Session", request: P.Prepare) -> P.Prepared:
    """The ``Prepare`` request (see it): what a worker's first trace would otherwise do first."""
    import numpy as np

    t0 = time.perf_counter()
    tracer, _ = _kept_tracer(session, request)
    interpreter = tracer.interpreter
    if not tracer.allocated:
        interpreter.allocate_tensors()  # where the default delegate packs the weights
        tracer.allocated = True
    build_ms = (time.perf_counter() - t0) * 1000.0
    weights = {int(k): int(v) for k, v in request.weights.items()}
    missing = [t for t in weights if t not in tracer.constants]
    if missing:
        _statistics(tracer, missing, _values_of(tracer.reader(request.subgraph), request.quantized, weights), weights)
    warm_ms = 0.0
    inputs = interpreter.get_input_details()
    numeric = all(np.dtype(d["dtype"]).kind in _NUMERIC for d in inputs)
    fixed = all(-1 not in d["shape_signature"] for d in inputs)
    if not tracer.dirty and not session.stateful and request.subgraph == 0 and numeric and fixed:
        # On zeros: the values do not matter, only that the arena is touched and the delegate
        # has planned its operators (zeros, not what the allocation left: an index read from
        # uninitialised memory could send a kernel that trusts it anywhere). Not at a resizable
        # input's declared shape, a placeholder: the trace resizes to the data's, and allocates
        # anew, and the placeholder may be too small for the model to run at all.
        _clear_missing(interpreter, [])
        t1 = time.perf_counter()
        interpreter.invoke()
        tracer.dirty = True
        warm_ms = (time.perf_counter() - t1) * 1000.0
    return P.Prepared(build_ms=build_ms, warm_ms=warm_ms)


class _Helper:
    """The worker's one helper thread (started with the worker): runs a call beside the main thread."""

    def __init__(self) -> None:
        import queue
        import threading

        self.jobs: Any = queue.SimpleQueue()
        self.queue = queue.SimpleQueue
        threading.Thread(target=self._loop, name="lite-debug-helper", daemon=True).start()

    def _loop(self) -> None:
        while True:
            call, done = self.jobs.get()
            try:
                done.put((True, call()))
            except BaseException as exc:  # handed to the caller, who raises it
                done.put((False, exc))
            del call, done


_HELPER: list[_Helper] = []


def _beside(call: Callable[[], Any]) -> Callable[[], Any]:
    """Start ``call`` on the helper thread; returns what waits for its result (and raises its
    exception). Where no thread can start (a tight memory limit), ``call`` runs here, now."""
    if not _HELPER:
        try:
            _HELPER.append(_Helper())
        except RuntimeError:  # "can't start new thread"
            value = call()
            return lambda: value
    helper = _HELPER[0]
    done = helper.queue()
    helper.jobs.put((call, done))

    def result() -> Any:
        ok, value = done.get()
        if ok:
            return value
        raise value

    return result


def _same_as_last_run(session: "_Session", request: P.Trace) -> float | None:
    """The invoke ms of the session's last plain run when it ran the main graph on exactly the
    request's inputs (every input given, same shapes, dtypes and values) and nothing has invoked
    its interpreter since; None otherwise."""
    import numpy as np

    last = session.last_plain
    interpreter = session.interpreter
    if (last is None or last[0] is not interpreter or request.signature is not None or request.no_default_delegates
            or request.reference_kernels or len(request.arrays) != len(session.original)):
        return None
    for index, value in request.arrays:
        if not isinstance(index, int):
            return None
        try:
            current = interpreter.tensor(index)()
        except ValueError:
            return None
        value = np.asarray(value)
        if current.shape != value.shape or current.dtype != value.dtype or not np.array_equal(current, value):
            return None
    return last[1]


def _held(v: Any, scales: tuple) -> int:
    """What one array costs the server (see ``_protocol.footprint``)."""
    if v.dtype.kind in "OS":
        return P.footprint(P.STRINGS, v.size, sum(len(x) for x in v.ravel().tolist()), False)
    return P.footprint(v.dtype.str, v.size, v.nbytes, any(s != 0.0 for s in scales))


# -- the loop and its handlers ------------------------------------------------------------------------


class _State:
    """What the loop keeps between requests."""

    def __init__(self, conn: Any, memory_bytes: int | None, cpu_seconds: int | None) -> None:
        self.conn = conn
        self.memory_bytes = memory_bytes
        self.cpu_seconds = cpu_seconds
        self.session: _Session | None = None
        self.region: Any = None

    def attach(self, request: Any) -> None:
        """Map the parent's shared region when the request names a new one, and resolve descriptors."""
        from . import _shm

        if request.region:
            path, size = request.region
            if self.region is not None:
                self.region.map.close()
            self.region = _shm.Region(path, size, create=False)
        if self.region is not None:
            request.arrays = [(k, self.region.view(v) if _shm.is_desc(v) else v) for k, v in request.arrays]


HANDLERS: dict[type, Callable[[_State, Any], Any]] = {}


def handles(kind: type) -> Callable[[Callable[[_State, Any], Any]], Callable[[_State, Any], Any]]:
    """Register the handler of one request type: it returns the reply record, or None for none."""

    def register(handler: Callable[[_State, Any], Any]) -> Callable[[_State, Any], Any]:
        HANDLERS[kind] = handler
        return handler

    return register


def _is_xnnpack_failure(message: str) -> bool:
    return "XNNPack" in message or "XNNPACK" in message or "TfLiteXNNPackDelegate" in message


@handles(P.Load)
def _load(state: _State, request: P.Load) -> Any:
    _cpu_budget(state.cpu_seconds)
    state.session = None
    try:
        data = request.model
        if request.path is not None:
            with open(request.path, "rb") as fh:
                data = fh.read()
        session = _Session(data or b"", stateful=request.stateful, variables=request.variables)
        interpreter = session.ensure()
        if request.allocate:
            interpreter.allocate_tensors()
            session.allocated = True
        state.session = session
        return P.Loaded()
    except Exception as exc:  # the interpreter's own errors go back as data
        message = _message(exc)
        kernel = None
        if request.allocate and _is_xnnpack_failure(message) and data:
            try:  # the kernel's own message, which the delegate hid
                _Session(data).build(no_default_delegates=True).allocate_tensors()
                kernel = ""
            except Exception as inner:
                kernel = _message(inner)
        return P.Failed(error_type=type(exc).__name__, message=message, stage="load", kernel_message=kernel)


def _no_model(stage: str) -> P.Failed:
    """The reply to a request that needs a model when none is loaded (a parent out of step)."""
    return P.Failed(error_type="RuntimeError", message="No model is loaded in the worker.", stage=stage)


@handles(P.Run)
def _run(state: _State, request: P.Run) -> Any:
    session = state.session
    if session is None:
        return _no_model("run")
    _cpu_budget(state.cpu_seconds)
    try:
        state.attach(request)
        slots, invoke_ms = session.run(request)
        collected = _collect(slots, request.output_cap, invoke_ms)
        if isinstance(collected, P.TooLarge):
            return collected
        outputs, notes = collected
        return P.RunDone(outputs=tuple(outputs), invoke_ms=invoke_ms, notes=tuple(notes))
    except Exception as exc:
        session.interpreter = None  # its state is unknown after a failure: rebuild next time
        message = _message(exc)
        kernel_message = None
        if _is_xnnpack_failure(message) and request.signature is None:
            # The default XNNPACK delegate hides the kernel's own message: run once more
            # without it, which names the failing check (or shows it is a workaround).
            try:
                session.run(dataclasses.replace(request, no_default_delegates=True))
                kernel_message = ""
            except Exception as inner:
                kernel_message = _message(inner)
        return P.Failed(error_type=type(exc).__name__, message=message, stage="run", kernel_message=kernel_message)


@handles(P.Batch)
def _batch(state: _State, request: P.Batch) -> Any:
    session = state.session
    if session is None:
        return _no_model("batch")
    try:
        state.attach(request)
        return session.batch(request, state.conn, state.cpu_seconds)  # the inputs are done with by then
    except Exception as exc:
        session.interpreter = None
        return P.Failed(error_type=type(exc).__name__, message=_message(exc), stage="batch")


@handles(P.Trace)
def _trace_handler(state: _State, request: P.Trace) -> Any:
    session = state.session
    if session is None:
        return _no_model("trace")
    _cpu_budget(state.cpu_seconds)
    try:
        state.attach(request)
        return _trace(state, request)
    except Exception as exc:
        # Both interpreters' states are unknown after a failure: rebuild them next time.
        session.interpreter = None
        session.tracer = None
        return P.Failed(error_type=type(exc).__name__, message=_message(exc), stage="trace")


@handles(P.Prepare)
def _prepare_handler(state: _State, request: P.Prepare) -> Any:
    session = state.session
    if session is None:
        return _no_model("prepare")
    _cpu_budget(state.cpu_seconds)
    try:
        return _prepare(session, request)
    except Exception as exc:
        session.tracer = None  # a trace builds it afresh, and says what fails then
        return P.Failed(error_type=type(exc).__name__, message=_message(exc), stage="prepare")


@handles(P.More)
@handles(P.Stop)
def _late(state: _State, request: Any) -> None:
    """A Stop (or More) that came after its batch had ended: nothing to do, nothing to say."""
    return None


def _send(conn: Any, record: Any, region: Any = None) -> None:
    try:
        parts, need = P.encode_reply(record, region)
    except (TypeError, ValueError) as exc:
        # A value no reply may carry is a bug here, not the model's: say so as a failure rather
        # than die with a traceback the parent would show as the runtime's last words.
        record = P.Failed(error_type=type(exc).__name__, stage="protocol", message=(
            f"The worker could not send its reply ({exc}). This is a bug in lite-debug; please report it with a bundle."
        ))
        parts, need = P.encode_reply(record, None)
    if need and hasattr(record, "need"):
        # The outputs did not fit the region: all inline this time, and the parent grows it.
        parts, _ = P.encode_reply(dataclasses.replace(record, need=need), None)
    conn.send_parts(parts)


def main(conn: Any, memory_bytes: int | None = None, cpu_seconds: int | None = None) -> None:
    """Serve requests on ``conn`` until it closes or an ``Exit`` request arrives."""
    _apply_limits(memory_bytes)
    state = _State(conn, memory_bytes, cpu_seconds)
    # What a first trace would otherwise wait for (2-3 ms here), done while nothing waits: the
    # helper thread (its modules and start) and the compiled statistics (loading the module).
    _beside(lambda: None)
    _one_pass()
    spin = 0.0  # none before the first request: the worker may wait a long time for it
    recent_idle = [0.0] * 4  # how long the last four requests took to come after the one before
    served = 0
    while True:
        try:
            waiting_since = time.perf_counter()
            request = conn.recv(spin=spin)
            idle = time.perf_counter() - waiting_since
            recent_idle[served % 4] = idle if idle <= SPIN_AFTER_REPLY_MAX else 0.0
            served += 1
        except (EOFError, OSError):
            return
        if isinstance(request, P.Exit):
            return
        handler = HANDLERS.get(type(request))
        if handler is None:
            reply: Any = P.Failed(error_type="ValueError", message=f"Unknown request {type(request).__name__}.", stage="protocol")
        else:
            reply = handler(state, request)
        if reply is not None:
            try:
                _send(conn, reply, state.region)
            except (EOFError, OSError):
                return
        spin = _next_spin(recent_idle) if getattr(request, "soon", False) else 0.0
        # The reply may hold views of the interpreter's outputs: none may outlive the request.
        reply = request = None


def _cli(argv: list[str]) -> None:
    import argparse
    import socket

    from ._wire import Channel

    parser = argparse.ArgumentParser(description="lite-debug worker; started by lite_debug.running, not by hand.")
    parser.add_argument("fd", type=int)
    parser.add_argument("--memory", type=int, default=None)
    parser.add_argument("--cpu", type=int, default=None)
    ns = parser.parse_args(argv)
    main(Channel(socket.socket(fileno=ns.fd)), ns.memory, ns.cpu)


if __name__ == "__main__":
    import sys

    _cli(sys.argv[1:])
