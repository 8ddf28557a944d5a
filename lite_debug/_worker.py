"""The code that runs inside a worker process.

Only this module imports the interpreter. It runs in a fresh process (``python -m lite_debug._worker FD``,
started by ``running.Worker``), so that a segfault, an abort or a runaway allocation in native code ends this process
and nothing else. The parent (``running.Worker``) talks to it over a pipe, one request at a
time, and measures nothing it cannot measure from outside.

Requests and replies are plain tuples of builtins and numpy arrays:

- ``("load", model_bytes)`` → ``("ok", None)`` or ``("error", type, message, stage)``
- ``("run", plan)`` → ``("ok", outputs, invoke_ms, note)`` or ``("error", type, message, stage, kernel_message)``;
  ``kernel_message`` is the message of a second try without the default delegates, ``""``
  when that try succeeded, ``None`` when none was made.
- ``("exit",)`` → the process ends.
"""

from __future__ import annotations

import time
from typing import Any


try:
    import resource
except ImportError:  # pragma: no cover - not on POSIX
    resource = None  # type: ignore[assignment]


def _apply_limits(memory_bytes: int | None) -> None:
    if resource is not None and memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _cpu_budget(cpu_seconds: int | None) -> None:
    """Allow ``cpu_seconds`` more CPU time from now on (SIGXCPU past it).

    RLIMIT_CPU counts over the process's life, and a warm worker serves many runs, so the soft
    limit is moved before each run to what has been used plus the budget of one run.
    """
    if resource is None or not cpu_seconds:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + int(cpu_seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


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


def _invoke(interpreter: Any, plan: dict[str, Any], shapes: dict, original: dict, allocated: bool):
    signature = plan.get("signature")
    if signature is not None:
        runner = interpreter.get_signature_runner(signature)
        t0 = time.perf_counter()
        result = runner(**plan["arrays"])
        invoke_ms = (time.perf_counter() - t0) * 1000.0
        details = runner.get_output_details()
        outputs = [(name, details[name]["index"], value, _quant(details[name])) for name, value in result.items()]
        return outputs, invoke_ms, shapes
    wanted = dict(original)
    wanted.update({int(k): tuple(v) for k, v in plan.get("resize", {}).items()})
    if wanted != shapes or not allocated:
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
    outputs = [
        (d["name"], d["index"], interpreter.get_tensor(d["index"]), _quant(d)) for d in interpreter.get_output_details()
    ]
    return outputs, invoke_ms, shapes


def _quant(detail: dict) -> tuple[list[float], list[int], int]:
    q = detail.get("quantization_parameters") or {}
    scales = [float(s) for s in q.get("scales", [])]
    zero_points = [int(z) for z in q.get("zero_points", [])]
    return scales, zero_points, int(q.get("quantized_dimension", 0))


def _is_xnnpack_failure(message: str) -> bool:
    return "XNNPack" in message or "XNNPACK" in message or "TfLiteXNNPackDelegate" in message


def main(conn: Any, memory_bytes: int | None = None, cpu_seconds: int | None = None) -> None:
    """Serve requests on ``conn`` until it closes or an ``exit`` request arrives."""
    _apply_limits(memory_bytes)
    session: _Session | None = None
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        op = request[0]
        if op == "exit":
            return
        if op == "load":
            _cpu_budget(cpu_seconds)
            try:
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
                outputs, invoke_ms = session.run(plan)
                conn.send(("ok", outputs, invoke_ms, ""))
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
        conn.send(("error", "ValueError", f"Unknown request {op!r}.", "protocol", None))


def _cli(argv: list[str]) -> None:
    import argparse
    from multiprocessing.connection import Connection

    parser = argparse.ArgumentParser(description="lite-debug worker; started by lite_debug.running, not by hand.")
    parser.add_argument("fd", type=int)
    parser.add_argument("--memory", type=int, default=None)
    parser.add_argument("--cpu", type=int, default=None)
    ns = parser.parse_args(argv)
    main(Connection(ns.fd), ns.memory, ns.cpu)


if __name__ == "__main__":
    import sys

    _cli(sys.argv[1:])

