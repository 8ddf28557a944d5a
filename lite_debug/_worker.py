"""The code that runs inside a worker process.

Only this module imports the interpreter. It runs in a fresh process (``python -m lite_debug._worker FD``,
started by ``running.Worker``), so that a segfault, an abort or a runaway allocation in native code ends this process
and nothing else. The parent (``running.Worker``) talks to it over a pipe, one request at a
time, and measures nothing it cannot measure from outside.

Requests and replies are plain tuples of builtins and numpy arrays:

- ``("load", model_bytes)`` or ``("load_file", path)`` → ``("ok", None)`` or ``("error", type, message, stage)``
- ``("run", plan)`` → ``("ok", outputs, invoke_ms, note)`` or ``("error", type, message, stage, kernel_message)``;
  ``kernel_message`` is the message of a second try without the default delegates, ``""``
  when that try succeeded, ``None`` when none was made.
- ``("batch", plan)`` → ``("progress", done, n)``… then ``("ok", outputs, failed, times, need)``, ``failed``
  mapping a failed chunk's number to its message and ``times`` the invoke seconds as float64 bytes,
  or ``("error", type, message, stage, None)``;
- ``("exit",)`` → the process ends.
"""

from __future__ import annotations

import array
import functools
import time
from typing import Any

# numpy is imported in the functions that use it, after the interpreter has loaded. Imported
# first, it moves the heap: a saved fuzz crasher (tests/fixtures/fuzz/93745a7c06a1153d) then
# corrupts memory without glibc noticing, and "runs" with garbage outputs instead of aborting.

try:
    import resource
except ImportError:  # pragma: no cover - not on POSIX
    resource = None  # type: ignore[assignment]


# After a reply, the next request of a caller that runs in a loop (a benchmark, --repeat)
# follows soon: poll for it at least this long before sleeping (see Channel.recv), and up to
# SPIN_AFTER_REPLY_MAX when the last few requests came that late: a caller that does other
# work between runs (the benchmark runs its in-process baseline twice, 2.1 ms) would otherwise
# find the worker just asleep, and pay its wake-up (50 µs here) on every other run. Pauses
# longer than the maximum (a person clicking) count as none: the poll stays short.
SPIN_AFTER_REPLY = 0.002
SPIN_AFTER_REPLY_MAX = 0.010


def _next_spin(recent_idle: list[float]) -> float:
    """How long to poll for the next request, given how long the last few took to come
    (0 for those that came later than the maximum)."""
    return max(SPIN_AFTER_REPLY, min(SPIN_AFTER_REPLY_MAX, 1.25 * max(recent_idle, default=0.0)))


def _apply_limits(memory_bytes: int | None) -> None:
    if resource is not None and memory_bytes:
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


class _Session:
    """One loaded model and the interpreter built from it, rebuilt after any failure."""

    def __init__(self, model_bytes: bytes) -> None:
        self.model_bytes = model_bytes
        self.lite = _interpreter_module()
        self.interpreter: Any = None
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.allocated = False

    def build(self, no_default_delegates: bool = False) -> Any:
        kwargs: dict[str, Any] = {"model_content": self.model_bytes}
        if no_default_delegates:
            kwargs["experimental_op_resolver_type"] = self.lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = self.lite.Interpreter(**kwargs)
        return interpreter

    def ensure(self) -> Any:
        if self.interpreter is None:
            self.interpreter = self.build()
            self.shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in self.interpreter.get_input_details()}
            self.original = dict(self.shapes)
            self.allocated = False
        return self.interpreter

    def run(self, plan: dict[str, Any], no_default_delegates: bool = False) -> tuple[list, float]:
        if no_default_delegates:
            interpreter = self.build(no_default_delegates=True)
            shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in interpreter.get_input_details()}
            return _invoke(interpreter, plan, shapes, dict(shapes), allocated=False)[:2]
        interpreter = self.ensure()
        outputs, invoke_ms, self.shapes = _invoke(interpreter, plan, self.shapes, self.original, self.allocated)
        self.allocated = True
        return outputs, invoke_ms


    def batch(self, plan: dict[str, Any], conn: Any, cpu_seconds: int | None) -> tuple[list, dict[int, str], Any]:
        """Run ``plan["n"]`` samples, ``plan["chunk"]`` at a time; stack each output over the chunks.

        One request for the whole batch, so a batch costs what a raw loop costs; a progress
        message goes back at most every 0.1 s. A failing sample is recorded and the rest go on
        (its rows of the stacks are zeros).

        The parent may send only the first samples' data with the request and the rest in a
        ``("more", rows)`` message while this loop starts on them; the message, a system call
        on each side, also orders the memory the data was written to.
        """
        n = int(plan["n"])
        available = int(plan.get("available", n))

        def wait_for(rows: int) -> None:
            nonlocal available
            while available < rows:
                message = conn.recv(spin=SPIN_AFTER_REPLY)  # the next piece is being copied now
                if message[0] != "more":
                    raise RuntimeError(f"Expected the rest of the batch, got {message[0]!r}.")
                available = int(message[1])

        try:
            return self._batch(plan, conn, cpu_seconds, wait_for)
        finally:
            wait_for(n)  # never leave that message in the pipe, where it would read as a request

    def _prepare(self, signature: str | None) -> Any:
        """The interpreter, allocated at the model's own input shapes."""
        interpreter = self.ensure()
        if signature is None and (self.shapes != self.original or not self.allocated):
            for index, shape in self.original.items():
                if self.shapes.get(index) != shape:
                    interpreter.resize_tensor_input(index, list(shape))
            interpreter.allocate_tensors()
            self.shapes, self.allocated = dict(self.original), True
        return interpreter

    def _batch(self, plan: dict[str, Any], conn: Any, cpu_seconds: int | None, wait_for: Any) -> tuple[list, dict[int, str], Any]:
        n, chunk, signature = int(plan["n"]), int(plan["chunk"]), plan.get("signature")
        arrays = plan["arrays"]
        n_chunks = (n + chunk - 1) // chunk
        failed: dict[int, str] = {}
        times = [0.0] * n_chunks
        names: list[tuple[str, int, tuple, bool]] = []  # name, index, quantization, fixed shape
        columns: list[list[Any]] = []  # per output: its value for each chunk
        prepare = functools.partial(self._prepare, signature)
        interpreter = prepare()
        if signature is None:
            names = _output_names(interpreter)
            columns = [[None] * n_chunks for _ in names]
        _cpu_budget(cpu_seconds)
        perf = time.perf_counter
        last = time.monotonic()
        k = 0
        while k < n_chunks:
            block_end = min(n_chunks, k + 64)  # between blocks: the clock, progress, CPU budget
            wait_for(min(n, block_end * chunk))
            if signature is not None:
                runner = interpreter.get_signature_runner(signature)
                for k in range(k, block_end):
                    start = k * chunk
                    try:
                        t0 = perf()
                        result = runner(**{name: arr[start : start + chunk] for name, arr in arrays})
                        times[k] = perf() - t0
                        if not names:
                            details = runner.get_output_details()
                            names = [_output_name(details[name], name) for name in result]
                            columns = [[None] * n_chunks for _ in names]
                        for column, value in zip(columns, result.values()):
                            column[k] = value
                    except Exception as exc:
                        failed[k] = f"{type(exc).__name__}: {exc}"
                        self.interpreter = None
                        interpreter = prepare()
                        runner = interpreter.get_signature_runner(signature)
            else:
                k = self._index_block(interpreter, arrays, names, chunk, k, block_end, columns, times, failed)
                if k < block_end:  # sample k failed: its interpreter is rebuilt, then on with the next
                    self.interpreter = None
                    interpreter = prepare()
                    k += 1
                    continue
            k = block_end
            now = time.monotonic()
            if now - last >= 0.1 and k < n_chunks:
                # A sign of life for the parent's clock, and a fresh CPU budget for what follows.
                conn.send(("progress", min(k * chunk, n), n))
                _cpu_budget(cpu_seconds)
                last = now
        stacks = _stacks(columns, [fixed for *_, fixed in names], failed)
        outputs = [(name, index, stack, quant) for (name, index, quant, _), stack in zip(names, stacks)]
        # 8 bytes a time on the pipe, not a pickled float; bytes, since an array.array pickles
        # through a reconstructor looked up at each call, 40 µs more with cold caches.
        return outputs, failed, array.array("d", times).tobytes()

    @staticmethod
    def _index_block(interpreter, arrays, names, chunk, k, end, columns, times, failed) -> int:
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
        outs = [index for _, index, *_ in names]
        try:
            if len(arrays) == 1 and len(outs) == 1:
                ((in_index, x),), (out_index,), (column,) = arrays, outs, columns
                for k in range(k, end):
                    start = k * chunk
                    set_tensor(in_index, x[start : start + chunk])
                    t0 = perf()
                    invoke()
                    times[k] = perf() - t0
                    column[k] = get(out_index, *subgraph)
            else:
                for k in range(k, end):
                    start = k * chunk
                    for index, x in arrays:
                        set_tensor(index, x[start : start + chunk])
                    t0 = perf()
                    invoke()
                    times[k] = perf() - t0
                    for column, index in zip(columns, outs):
                        column[k] = get(index, *subgraph)
        except Exception as exc:
            failed[k] = f"{type(exc).__name__}: {exc}"
            return k
        return end


def _output_name(detail: dict, name: str | None = None) -> tuple[str, int, tuple, bool]:
    """(name, index, quantization, whether every run gives this output the same shape)."""
    signature = detail.get("shape_signature")
    fixed = signature is None or all(int(d) >= 0 for d in signature)
    return (detail["name"] if name is None else name), detail["index"], _quant(detail), fixed


def _output_names(interpreter: Any) -> list[tuple[str, int, tuple, bool]]:
    """``_output_name`` of each output, read once per interpreter (``get_output_details`` builds
    fresh dicts on every call: 70 µs with cold caches, the moment a batch starts)."""
    names = getattr(interpreter, "_lite_debug_names", None)
    if names is None:
        names = interpreter._lite_debug_names = [_output_name(d) for d in interpreter.get_output_details()]
    return names


def _stacks(columns: list[list], fixed: list[bool], failed: Any = ()) -> list:
    """Each output stacked over the chunks, ``[chunks, *shape]``; a failed chunk's rows are zeros.

    ``columns[j][k]``: output ``j`` of chunk ``k``, or anything for a chunk in ``failed``.
    ``fixed[j]``: output ``j`` has the same shape in every chunk (no -1 in its signature).
    """
    import numpy as np

    if not columns or len(failed) == len(columns[0]):  # no chunk ran: nothing to stack
        return []
    stacks = []
    for j, rows in enumerate(columns):
        first = rows[next(k for k in range(len(rows)) if k not in failed)]
        if failed:
            rows = list(rows)
            for k in failed:
                rows[k] = np.zeros_like(first)
        if fixed[j] and first.flags.c_contiguous and not first.dtype.hasobject:
            # Rows of one shape and dtype, each a fresh contiguous copy: joining their bytes
            # is four times faster than concatenate (which converts each row first), and the
            # bytearray makes a writable array.
            joined = bytearray().join(rows)
            if len(joined) == len(rows) * first.nbytes:
                stacks.append(np.frombuffer(joined, first.dtype).reshape((len(rows),) + first.shape))
                continue
        if first.ndim:
            # concatenate is three times faster than stack for many small arrays, and gives
            # the same bytes: fold the chunks' axis back out with a reshape.
            stacks.append(np.concatenate(rows).reshape((len(rows),) + first.shape))
        else:
            stacks.append(np.stack(rows))
    return stacks


def _invoke(interpreter: Any, plan: dict[str, Any], shapes: dict, original: dict, allocated: bool):
    signature = plan.get("signature")
    if signature is not None:
        runner = interpreter.get_signature_runner(signature)
        t0 = time.perf_counter()
        result = runner(**dict(plan["arrays"]))
        invoke_ms = (time.perf_counter() - t0) * 1000.0
        details = runner.get_output_details()
        outputs = [(name, details[name]["index"], value, _quant(details[name])) for name, value in result.items()]
        return outputs, invoke_ms, shapes
    resize = plan.get("resize")
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
    for index, value in plan["arrays"]:
        interpreter.set_tensor(index, value)
    t0 = time.perf_counter()
    interpreter.invoke()
    invoke_ms = (time.perf_counter() - t0) * 1000.0
    # tensor() gives a function that returns a view of the output: _share_outputs copies it
    # straight into shared memory (or copies it once), and no view outlives this request.
    # Names, indices and quantization do not change for an interpreter's life, so they are
    # read once (get_output_details builds fresh dicts and arrays on every call).
    cached = getattr(interpreter, "_lite_debug_outputs", None)
    if cached is None:
        cached = [(name, index, interpreter.tensor(index), quant) for name, index, quant, _ in _output_names(interpreter)]
        interpreter._lite_debug_outputs = cached
    outputs = list(cached)
    return outputs, invoke_ms, shapes


def _quant(detail: dict) -> tuple[list[float], list[int], int]:
    q = detail.get("quantization_parameters") or {}
    scales = [float(s) for s in q.get("scales", [])]
    zero_points = [int(z) for z in q.get("zero_points", [])]
    return scales, zero_points, int(q.get("quantized_dimension", 0))


def _attach(plan: dict[str, Any], region: Any) -> Any:
    """Map the parent's shared region when the plan names a new one, and resolve descriptors."""
    from . import _shm

    if plan.get("region"):
        path, size = plan["region"]
        if region is not None:
            region.map.close()
        region = _shm.Region(path, size, create=False)
    if region is not None:
        plan["arrays"] = [(k, region.view(v) if _shm.is_desc(v) else v) for k, v in plan["arrays"]]
    return region


def _share_outputs(outputs: list, region: Any) -> tuple[list, int]:
    """Write large outputs into the region; the bytes it would need if they do not all fit.

    An output is an array or a ``tensor()`` function (a view of the interpreter's memory).
    """
    import numpy as np

    from . import _shm

    values = [o[2]() if callable(o[2]) else o[2] for o in outputs]
    large = [i for i, v in enumerate(values) if v.nbytes >= _shm.THRESHOLD]
    descs = region.put([values[i] for i in large]) if large and region is not None else None
    need = _shm.needed([values[i] for i in large]) if large and descs is None else 0
    shared = dict(zip(large, descs or []))
    result = [
        (name, index, shared[i] if i in shared else (np.array(v) if callable(raw) else v), quant)
        for i, ((name, index, raw, quant), v) in enumerate(zip(outputs, values))
    ]
    del values  # views into the interpreter must not outlive the request
    return result, need


def _is_xnnpack_failure(message: str) -> bool:
    return "XNNPack" in message or "XNNPACK" in message or "TfLiteXNNPackDelegate" in message


def main(conn: Any, memory_bytes: int | None = None, cpu_seconds: int | None = None) -> None:
    """Serve requests on ``conn`` until it closes or an ``exit`` request arrives."""
    _apply_limits(memory_bytes)
    session: _Session | None = None
    region: Any = None
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
            spin = _next_spin(recent_idle)
        except (EOFError, OSError):
            return
        op = request[0]
        if op == "exit":
            return
        if op in ("load", "load_file"):
            _cpu_budget(cpu_seconds)
            try:
                if op == "load_file":
                    with open(request[1], "rb") as fh:
                        session = _Session(fh.read())
                else:
                    session = _Session(request[1])
                session.ensure()
                conn.send(("ok", None))
            except Exception as exc:  # the interpreter's own errors go back as data
                session = None
                conn.send(("error", type(exc).__name__, str(exc), "load"))
            continue
        if op == "run":
            if session is None:
                conn.send(("error", "RuntimeError", "No model is loaded in the worker.", "run", None))
                continue
            plan = request[1]
            _cpu_budget(cpu_seconds)
            try:
                region = _attach(plan, region)
                outputs, invoke_ms = session.run(plan, no_default_delegates=bool(plan.get("no_default_delegates")))
                outputs, need = _share_outputs(outputs, region)
                conn.send(("ok", outputs, invoke_ms, "", need))
            except Exception as exc:
                session.interpreter = None  # its state is unknown after a failure: rebuild next time
                message = str(exc)
                kernel_message = None
                if _is_xnnpack_failure(message) and plan.get("signature") is None:
                    # The default XNNPACK delegate hides the kernel's own message: run once more
                    # without it, which names the failing check (or shows it is a workaround).
                    try:
                        session.run(plan, no_default_delegates=True)
                        kernel_message = ""
                    except Exception as inner:
                        kernel_message = str(inner)
                conn.send(("error", type(exc).__name__, message, "run", kernel_message))
            continue
        if op == "batch":
            if session is None:
                conn.send(("error", "RuntimeError", "No model is loaded in the worker.", "batch", None))
                continue
            try:
                plan = request[1]
                region = _attach(plan, region)
                outputs, failed, times = session.batch(plan, conn, cpu_seconds)
                outputs, need = _share_outputs(outputs, region)  # the inputs are done with by now
                conn.send(("ok", outputs, failed, times, need))
            except Exception as exc:
                session.interpreter = None
                conn.send(("error", type(exc).__name__, str(exc), "batch", None))
            continue
        conn.send(("error", "ValueError", f"Unknown request {op!r}.", "protocol", None))


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

