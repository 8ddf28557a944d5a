"""Run a model on data in a worker process, never in the calling one.

A segfault, an abort or a runaway allocation in the interpreter's native code must cost one
run, not the dashboard that every user shares. So the interpreter only ever lives in a
process started with the ``spawn`` method (``lite_debug._worker``); this module sends it the
model once, then the data for each run, and turns whatever happens into a ``RunResult``:
``ok``, ``error`` (with its explanation), ``crashed`` (naming the signal) or ``timeout``.

Workers stay warm: a pool keeps each one's loaded model, so rerunning the same model costs one
round trip. The pool is bounded, so many sessions cannot start many processes.
"""

from __future__ import annotations

import atexit
import os
import re
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import _shm
from ._wire import Channel
from .binding import bind
from .errors import WorkerError
from .inspection import inspect_model
from .quantization import dequantize
from .records import Feed, ModelSpec, OutputTensor, Quantization, RunResult

__all__ = ["Limits", "Worker", "WorkerPool", "default_pool", "run"]


@dataclass(frozen=True)
class Limits:
    """What one worker may spend. ``None`` means no limit of that kind."""

    run_seconds: float = 30.0
    load_seconds: float = 30.0
    memory_bytes: int | None = 4 << 30
    cpu_seconds: int | None = 120

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Limits":
        """Limits from ``LITE_DEBUG_RUN_SECONDS``, ``LITE_DEBUG_MEMORY_GB`` and ``LITE_DEBUG_CPU_SECONDS``.

        ``0`` turns a limit off. Raises ``ValueError`` with a sentence for a value that is not a number.
        """
        env = os.environ if environ is None else environ
        try:
            seconds = float(env.get("LITE_DEBUG_RUN_SECONDS", cls.run_seconds))
            memory = float(env.get("LITE_DEBUG_MEMORY_GB", cls.memory_bytes / (1 << 30)))
            cpu = int(float(env.get("LITE_DEBUG_CPU_SECONDS", cls.cpu_seconds)))
        except ValueError as exc:
            raise ValueError(f"A LITE_DEBUG_* limit is not a number ({exc}).") from None
        return cls(
            run_seconds=seconds if seconds > 0 else 10**9,
            # Loading includes starting a worker's Python: never less than the default.
            load_seconds=max(seconds, cls.load_seconds) if seconds > 0 else 10**9,
            memory_bytes=int(memory * (1 << 30)) if memory > 0 else None,
            cpu_seconds=cpu if cpu > 0 else None,
        )

    def describe(self) -> str:
        parts = [f"{self.run_seconds:g} s per run"]
        if self.memory_bytes:
            parts.append(f"{self.memory_bytes / (1 << 30):g} GiB of memory")
        if self.cpu_seconds:
            parts.append(f"{self.cpu_seconds} s of CPU per run")
        return ", ".join(parts)


# A reply is polled for (not slept on) only when the last round trip was this short: for
# longer runs the wake-up is a small share and a poll would hold a core for nothing.
SPIN_FOR_REPLIES_UP_TO = 0.003
# A batch whose duration the last one predicts is slept on until this long before its
# expected end (at most a quarter of it), then polled for until this long after: the wake-up
# is paid while the worker is still busy, and the poll holds a core for 4 ms at most.
POLL_AROUND_EXPECTED_END = 0.002
_FILE_TRANSFER = 4 << 20  # models larger than this go to the worker through a temporary file


class _Process:
    """The few ``multiprocessing.Process`` methods this module uses, over ``subprocess.Popen``."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen
        self.pid = popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown"
    if exitcode < 0:
        try:
            return _signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class Worker:
    """One worker process holding one model; restarted after it crashes or times out.

    Not thread-safe by itself: the pool hands a worker to one caller at a time.
    """

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self._proc: Any = None
        self._conn: Any = None
        self.model_sha: str | None = None
        self._loaded = False
        self._last_round_trip = 0.0  # seconds; how long to poll for the next reply
        self._batch_row_seconds = 0.0  # the last batch's time per row, to predict the next one's

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        # A fresh interpreter started by path, like multiprocessing's "spawn", but without
        # re-importing the caller's __main__: scripts and notebooks with no main guard work.
        parent_sock, child_sock = socket.socketpair()
        args = [sys.executable, "-m", "lite_debug._worker", str(child_sock.fileno())]
        if self.limits.memory_bytes:
            args += ["--memory", str(self.limits.memory_bytes)]
        if self.limits.cpu_seconds:
            args += ["--cpu", str(self.limits.cpu_seconds)]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # The runtime logs to stderr ("Created TensorFlow Lite XNNPACK delegate…"); keep that out
        # of the user's terminal, but keep it, since an abort explains itself there.
        self._close_stderr()
        self._stderr = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                args,
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                env=env,
                close_fds=True,
            )
        except OSError as exc:
            raise WorkerError(f"Could not start a worker process to run the model: {exc}.") from None
        finally:
            child_sock.close()
        self._proc = _Process(proc)
        self._conn = Channel(parent_sock)
        self.model_sha = None
        self._loaded = False
        self._close_region()

    def close(self) -> None:
        """Ask the worker to exit, and kill it if it does not."""
        if self._proc is None:
            return
        try:
            self._conn.send(("exit",))
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=1.0)
        self._kill()  # kills it only if it did not exit; closes the pipe, log and shared memory

    def _close_region(self) -> None:
        region = getattr(self, "_region", None)
        if region is not None:
            region.close()
        self._region = None
        self._region_sent = False

    def _share(self, plan: dict[str, Any], rows: int | None = None) -> Callable[[int, int], None] | None:
        """Move the plan's large arrays into the shared region (created or grown as needed).

        With ``rows``, only each array's first ``rows`` rows are copied now, and what copies
        rows ``start:stop`` later is returned: a batch's copy then overlaps the worker's run.
        """
        large = [i for i, (_, a) in enumerate(plan["arrays"]) if a.nbytes >= _shm.THRESHOLD]
        want = max(_shm.needed([plan["arrays"][i][1] for i in large]), getattr(self, "_want", 0))
        if not want:
            return None
        region = getattr(self, "_region", None)
        if region is None or region.size < want:
            self._close_region()
            size = 1 << max(20, (want - 1).bit_length())
            try:
                region = self._region = _shm.Region.create(size)
            except OSError:
                return None  # no shared memory here: the arrays go through the pipe
        values = [plan["arrays"][i][1] for i in large]
        descs = region.reserve(values) if large else []
        if descs is None:
            return None
        for d, a in zip(descs, values):
            region.write(d, a, 0, rows)
        arrays = list(plan["arrays"])
        for i, d in zip(large, descs):
            arrays[i] = (arrays[i][0], d)
        plan["arrays"] = arrays
        if not self._region_sent:
            plan["region"] = (region.path, region.size)
        if rows is None or not descs:
            return None

        def copy_rows(start: int, stop: int) -> None:
            for d, a in zip(descs, values):
                region.write(d, a, start, stop)

        return copy_rows

    def _unshare(self, outputs: list, need: int) -> list:
        """Copy outputs that came back through the region out of it (it is reused next run)."""
        if need:
            self._want = need  # grow the region next time so the outputs fit
        region = getattr(self, "_region", None)
        if region is None:
            return outputs
        if not self._region_sent:
            self._region_sent = True
            region.unlink()  # both processes have it mapped: the name is no longer needed
        return [
            (name, index, region.view(value).copy() if _shm.is_desc(value) else value, quant)
            for name, index, value, quant in outputs
        ]

    def _close_stderr(self) -> None:
        fh = getattr(self, "_stderr", None)
        if fh is not None and not fh.closed:
            fh.close()

    def stderr_tail(self, limit: int = 2000) -> str:
        """The last lines the worker wrote to stderr (the runtime's own log and abort messages)."""
        fh = getattr(self, "_stderr", None)
        if fh is None or fh.closed:
            return ""
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - limit))
        return fh.read().decode("utf-8", "replace").strip()

    def _kill(self) -> None:
        self.last_stderr = self.stderr_tail()
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        if self._proc is not None:
            self._proc.join(timeout=2.0)
        if self._conn is not None:
            self._conn.close()
        self._close_stderr()
        self._close_region()
        self._proc, self._conn, self.model_sha = None, None, None

    def _crashed(self) -> tuple[str, str]:
        """The worker died: collect how, then clean up after it."""
        self._proc.join(timeout=2.0)
        code = self._proc.exitcode
        self._kill()
        return "crashed", _signal_name(code)

    def _request(
        self,
        message: tuple,
        seconds: float | None,
        progress: Any = None,
        after_send: Callable[[], None] | None = None,
        expect: float | None = None,
    ) -> tuple[str, Any]:
        """Send one request; return ("reply", reply), ("crashed", signal) or ("timeout", None).

        ``("progress", done, total)`` messages go to ``progress`` and restart the clock: for a
        batch, the time limit is on the wait between two signs of life. ``expect``: how long
        the reply should take from the end of ``after_send``, when that is known.
        """
        if not self.alive:
            self.start()
        try:
            self._conn.send(message)
        except OSError:  # BrokenPipeError included: the worker is gone
            return self._crashed()
        if after_send is not None:
            try:
                after_send()
            except OSError:
                pass  # the worker is gone: the wait below finds out how
        deadline = None if seconds is None else time.monotonic() + seconds
        # Poll for a reply that is due soon (as long as the last round trip, give or take)
        # rather than sleep and pay a wake-up: only for short requests, never for long ones.
        # For a longer one of known length, sleep first and poll around its expected end.
        last = self._last_round_trip
        if expect is not None and expect > 0:
            poll_from = expect - min(POLL_AROUND_EXPECTED_END, expect / 4)
            poll_for = expect + POLL_AROUND_EXPECTED_END - poll_from
        else:
            poll_from, poll_for = 0.0, (1.5 * last if 0 < last <= SPIN_FOR_REPLIES_UP_TO else 0.0)
        started = time.perf_counter()
        while True:
            wait = 0.5 if deadline is None else max(0.001, min(0.5, deadline - time.monotonic()))
            spin = 0.0
            if poll_for > 0:
                ahead = started + poll_from - time.perf_counter()
                if ahead > 0:
                    wait = min(wait, ahead)  # sleep until it is time to poll
                else:
                    spin, poll_for = poll_for, 0.0
            try:
                reply = self._conn.recv(wait, spin=spin)
                self._last_round_trip = time.perf_counter() - started
                if reply[0] == "progress":
                    if progress is not None:
                        progress(reply[1], reply[2])
                    if seconds is not None:
                        deadline = time.monotonic() + seconds
                    continue
                return "reply", reply
            except TimeoutError:
                pass
            except (EOFError, OSError):
                return self._crashed()
            if not self._proc.is_alive():
                return self._crashed()
            if deadline is not None and time.monotonic() >= deadline:
                self._kill()
                return "timeout", None

    def run(self, model_bytes: bytes, spec: ModelSpec, feed: Feed, signature: str | None = None) -> RunResult:
        """Run ``feed`` through the model, loading it first if this worker holds another.

        A model whose tensors would not fit the memory limit is refused before it is sent
        (``status="skipped"``, ``limit="memory"``), with the figure.
        """
        t0 = time.perf_counter()
        refused = _memory_refusal(spec, feed, self.limits)
        if refused is not None:
            return refused
        failed = self.ensure_model(model_bytes, spec)
        if failed is not None:
            return failed
        plan = _plan(spec, feed, signature)
        self._share(plan)
        outcome, reply = self._request(("run", plan), self.limits.run_seconds)
        failed = _failure(outcome, reply, self.limits.run_seconds, stage="running the model")
        if failed is not None:
            failed = self._finish(failed, t0)
            if failed.status == "crashed" and signature is None and failed.limit is None:
                failed = self._probe_without_delegates(model_bytes, spec, feed, failed)
            return failed
        if reply[0] != "ok":
            return _error_result(reply[1], reply[2], reply[4], t0, stage="run", limits=self.limits)
        _, outputs, invoke_ms, note, need = reply
        outputs = self._unshare(outputs, need)
        return RunResult(
            status="ok",
            outputs=tuple(_output(*o) for o in outputs),
            invoke_ms=invoke_ms,
            total_ms=(time.perf_counter() - t0) * 1000.0,
            detail=note,
        )


    def _probe_without_delegates(self, model_bytes: bytes, spec: ModelSpec, feed: Feed, crash: RunResult) -> RunResult:
        """After a crash, run once more in a fresh worker without the default XNNPACK delegate.

        The delegate trusts what the builtin kernels would check, so a corrupt model can crash
        it where the kernels refuse it cleanly or run it: saying which tells the user where the
        fault is, and gives them a workaround.
        """
        if self.ensure_model(model_bytes, spec) is not None:
            return crash
        plan = _plan(spec, feed, None)
        plan["no_default_delegates"] = True
        self._share(plan)
        # A quick look, not a second full wait: twice what the crashed run took, 3 s at least.
        seconds = min(self.limits.run_seconds, max(3.0, 2 * (crash.total_ms or 0) / 1000.0))
        outcome, reply = self._request(("run", plan), seconds)
        if outcome == "crashed":
            note, kernel = "Without the default XNNPACK delegate it crashes too: the fault is in the interpreter itself.", None
        elif outcome != "reply":
            return crash
        elif reply[0] == "ok":
            self._unshare(reply[1], reply[4])
            note, kernel = (
                "Without the default XNNPACK delegate the model runs, so the crash is in the delegate: build the "
                "interpreter with experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES "
                "to work around it, and report it with a bundle.",
                "",
            )
        else:
            note, kernel = f"Without the default XNNPACK delegate the interpreter refuses the model instead: {reply[2]}", reply[2]
        return replace(crash, detail=f"{crash.detail} {note}", kernel_message=kernel or None)

    def ensure_model(self, model_bytes: bytes, spec: ModelSpec) -> RunResult | None:
        """Load the model unless this worker holds it already; a failure comes back as a result.

        A worker that held another model is replaced by a fresh process first: a model can
        corrupt the heap without crashing, and the next user's innocent model must not pay for it
        (the fuzzer saw exactly that). A warm worker is only ever reused for the same model.
        """
        if self.model_sha == spec.sha256 and self.alive:
            return None
        if self._proc is not None and self._loaded:
            self.close()
        t0 = time.perf_counter()
        path = None
        if len(model_bytes) > _FILE_TRANSFER:
            # Pickling a large model through the pipe would hold a second copy of it in this
            # process while it is sent; a file costs page cache, not the server's memory.
            fd, path = tempfile.mkstemp(prefix="lite-debug-model-", suffix=".tflite")
            with os.fdopen(fd, "wb") as fh:
                fh.write(model_bytes)
        try:
            request = ("load_file", path) if path else ("load", bytes(model_bytes))
            outcome, reply = self._request(request, self.limits.load_seconds)
            self._loaded = True  # even a model that failed to load has run code in this process
        finally:
            if path:
                os.unlink(path)
        failed = _failure(outcome, reply, self.limits.load_seconds, stage="loading the model")
        if failed is not None:
            return self._finish(failed, t0)
        if reply[0] != "ok":
            self.model_sha = None
            return _error_result(reply[1], reply[2], None, t0, stage="load", limits=self.limits)
        self.model_sha = spec.sha256
        self._batch_row_seconds = 0.0
        return None

    def run_batch(self, model_bytes: bytes, spec: ModelSpec, plan: dict[str, Any], progress: Any = None) -> tuple[RunResult | None, Any]:
        """Send one batch request; (failure, None) or (None, (outputs, failed, times)): ``failed``
        maps a failed chunk's number to its message, ``times`` holds each chunk's invoke in ms."""
        t0 = time.perf_counter()
        failed = self.ensure_model(model_bytes, spec)
        if failed is not None:
            return failed, None
        n, chunk = int(plan["n"]), int(plan["chunk"])
        n_chunks = (n + chunk - 1) // chunk
        # The worker starts on its first block of samples (64 runs) as soon as they are copied
        # in; the rest follow in pieces that double in size, each announced with ("more", rows),
        # so the copy keeps ahead of the worker at the cost of a few messages.
        first = 64 * chunk if n_chunks >= 128 else None
        copy_rows = self._share(plan, rows=first)
        if copy_rows is not None:
            plan["available"] = first

        def send_the_rest() -> None:
            done, piece = first, first
            while done < n:
                piece *= 2
                end = done + piece if n - (done + piece) >= 2 * piece else n  # no small last piece
                copy_rows(done, end)
                self._conn.send(("more", end))
                done = end

        outcome, reply = self._request(
            ("batch", plan),
            self.limits.run_seconds,
            progress,
            after_send=send_the_rest if copy_rows is not None else None,
            expect=self._batch_row_seconds * n or None,
        )
        failed = _failure(outcome, reply, self.limits.run_seconds, stage="running the batch")
        if failed is not None:
            return self._finish(failed, t0), None
        if reply[0] != "ok":
            return _error_result(reply[1], reply[2], None, t0, stage="run", limits=self.limits), None
        _, outputs, failed_chunks, seconds, need = reply
        self._batch_row_seconds = self._last_round_trip / n
        times = tuple((np.frombuffer(seconds, dtype=np.float64) * 1000.0).tolist())
        return None, (self._unshare(outputs, need), failed_chunks, times)

    def _finish(self, failed: RunResult, t0: float) -> RunResult:
        log = getattr(self, "last_stderr", "") if failed.status == "crashed" else ""
        failed = replace(failed, error_message=log[-1000:] or None, total_ms=(time.perf_counter() - t0) * 1000.0)
        if failed.status == "timeout":
            return replace(failed, limit="time")
        if failed.status == "crashed":
            if failed.signal == "SIGXCPU" and self.limits.cpu_seconds:
                return replace(
                    failed,
                    limit="cpu",
                    detail=(
                        f"The run used more than its {self.limits.cpu_seconds} s of CPU time, so the worker was "
                        "stopped; only that worker died. Raise LITE_DEBUG_CPU_SECONDS if the model is just slow."
                    ),
                )
            if self.limits.memory_bytes and ("bad_alloc" in log or "MemoryError" in log or "Cannot allocate" in log):
                return replace(
                    failed,
                    limit="memory",
                    detail=(
                        f"The run ran out of memory under the worker's {_gib(self.limits.memory_bytes)} limit and "
                        "the worker died; only that worker was lost. Raise LITE_DEBUG_MEMORY_GB if the machine "
                        "has the memory and you trust the model."
                    ),
                )
        return failed


def _failure(outcome: str, reply: Any, seconds: float, stage: str) -> RunResult | None:
    if outcome == "crashed":
        return RunResult(
            status="crashed",
            signal=reply,
            detail=(
                f"The interpreter crashed ({reply}) while {stage}; only its worker process died, and a new one "
                "will serve the next run. A model that crashes the runtime is worth a bug report with its bundle."
            ),
        )
    if outcome == "timeout":
        return RunResult(
            status="timeout",
            detail=(
                f"{stage[0].upper() + stage[1:]} took longer than the {seconds:g} s limit, so the worker was stopped; "
                "raise the limit if the model is just slow, or suspect a loop that never ends."
            ),
        )
    return None


def _gib(n: int) -> str:
    if n >= 1 << 70:  # a crafted model can declare sizes no float holds
        return "more than a zebibyte"
    return f"{n / (1 << 30):.2f} GiB" if n >= (1 << 30) else f"{n / (1 << 20):.0f} MiB"


def _memory_refusal(spec: ModelSpec, feed: Feed, limits: Limits) -> RunResult | None:
    if not limits.memory_bytes:
        return None
    data = sum(int(np.asarray(a).nbytes) for a in feed.arrays.values())
    need = spec.activation_bytes + spec.size + 2 * data
    # The worker itself takes about 200 MiB of address space before any model is loaded.
    room = limits.memory_bytes - (200 << 20)
    if need <= room:
        return None
    return RunResult(
        status="skipped",
        limit="memory",
        detail=(
            f"Not run: the model's tensors and the data need about {_gib(need)}, more than the "
            f"{_gib(max(room, 0))} a worker may use under its {_gib(limits.memory_bytes)} memory limit. Raise "
            "LITE_DEBUG_MEMORY_GB (or --memory-limit) if the machine has the memory and you trust the model."
        ),
    )


# A failure whose only text is the generic node line: the kernel gave no reason, which is
# what a failed allocation under the worker's address-space limit looks like.
_BARE_NODE_FAILURE = re.compile(r"^\s*(?:Node number \d+ \([^)]*\) failed to (?:invoke|prepare)\.\s*)*$")


def _error_result(
    error_type: str, message: str, kernel_message: str | None, t0: float, stage: str, limits: Limits | None = None
) -> RunResult:
    from .explain import explain

    # The kernel's own message (from the run without XNNPACK) names the real cause when there is one.
    explanation = explain(kernel_message or message)
    detail = ""
    if kernel_message:
        explanation = replace(explanation, facts={**dict(explanation.facts), "default_delegate_message": message})
    elif kernel_message == "":
        detail = "Without the default XNNPACK delegate the model runs: the failure is in the delegate, not the model."
    limit = None
    if limits is not None and limits.memory_bytes and (
        error_type == "MemoryError" or "alloc" in message.lower() or _BARE_NODE_FAILURE.match(message)
    ):
        # Under RLIMIT_AS an allocation that fails comes back as an empty RuntimeError or a
        # MemoryError: most likely the limit, not the model.
        limit = "memory"
        detail = (
            f"The interpreter failed without giving a reason, as it does when an allocation fails: most likely "
            f"the worker's "
            f"{_gib(limits.memory_bytes)} memory limit. Raise LITE_DEBUG_MEMORY_GB (or --memory-limit) if the "
            "machine has the memory and you trust the model."
        )
    return RunResult(
        status="error",
        error_type=error_type,
        error_message=message,
        explanation=explanation,
        kernel_message=kernel_message or None,
        total_ms=(time.perf_counter() - t0) * 1000.0,
        detail=detail or f"The interpreter raised {error_type} while {'loading' if stage == 'load' else 'running'} the model.",
        limit=limit,
    )


def _output(name: str, index: int, raw: np.ndarray, quant: tuple) -> OutputTensor:
    scales, zero_points, qdim = quant
    q = Quantization(scale=tuple(scales), zero_point=tuple(zero_points), quantized_dimension=qdim)
    return OutputTensor(name=name, index=index, raw=raw, values=dequantize(raw, q), quantization=q)


def _plan(spec: ModelSpec, feed: Feed, signature: str | None) -> dict[str, Any]:
    inputs, _ = spec.io(signature)
    if signature is not None:
        arrays = [(t.name, np.asarray(feed.arrays[t.name])) for t in inputs if t.name in feed.arrays]
        return {"signature": signature, "arrays": arrays}
    by_name = {t.name: t for t in inputs}
    arrays = [(by_name[k].index, np.asarray(v)) for k, v in feed.arrays.items() if k in by_name]
    resize = {by_name[k].index: tuple(int(d) for d in v) for k, v in feed.resize.items() if k in by_name}
    return {"signature": None, "arrays": arrays, "resize": resize}


class WorkerPool:
    """A bounded set of warm workers shared by every caller in this process.

    ``acquire`` prefers an idle worker that already holds the model, then the least recently
    used idle one, and waits when all are busy, so at most ``size`` processes ever exist.
    """

    def __init__(self, size: int = 2, limits: Limits = Limits()) -> None:
        self.size = max(1, int(size))
        self.limits = limits
        self._idle: OrderedDict[int, Worker] = OrderedDict()
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False

    def acquire(self, model_sha: str | None, timeout: float | None = None) -> Worker:
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                for key, w in self._idle.items():
                    if w.model_sha == model_sha and model_sha is not None:
                        return self._idle.pop(key)
                if self._count < self.size:
                    self._count += 1
                    return Worker(self.limits)
                if self._idle:
                    return self._idle.popitem(last=False)[1]
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WorkerError(f"All {self.size} workers are busy; try the run again in a moment.")
                self._cond.wait(remaining)

    def release(self, worker: Worker) -> None:
        with self._cond:
            if self._closed:
                worker.close()
                self._count -= 1
            else:
                self._idle[id(worker)] = worker
            self._cond.notify()

    def run(self, model_bytes: bytes, spec: ModelSpec, feed: Feed, signature: str | None = None) -> RunResult:
        worker = self.acquire(spec.sha256)
        try:
            return worker.run(model_bytes, spec, feed, signature)
        finally:
            self.release(worker)

    def pids(self) -> list[int]:
        """Process ids of the idle workers (for tools that watch or place them, like the benchmark)."""
        with self._cond:
            return [w.pid for w in self._idle.values() if w.alive and w.pid is not None]

    def prewarm(self, model_bytes: bytes, spec: ModelSpec) -> threading.Thread | None:
        """Load the model into an idle worker in the background, so the first run is warm.

        Does nothing when every worker is busy or the model would be refused; never blocks the
        caller. Returns the thread (tests join it).
        """
        if _memory_refusal(spec, Feed({}), self.limits) is not None:
            return None

        def load() -> None:
            try:
                worker = self.acquire(spec.sha256, timeout=0)
            except WorkerError:
                return
            try:
                worker.ensure_model(model_bytes, spec)
            finally:
                self.release(worker)

        thread = threading.Thread(target=load, name="lite-debug-prewarm", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = list(self._idle.values())
            self._idle.clear()
            self._count -= len(idle)
        for w in idle:
            w.close()


_default: WorkerPool | None = None
_default_lock = threading.Lock()


def default_pool() -> WorkerPool:
    """The process-wide pool that ``run`` uses unless given another."""
    global _default
    with _default_lock:
        if _default is None:
            _default = WorkerPool()
            atexit.register(_default.close)
        return _default


def run(
    model_bytes: bytes,
    inputs: Feed | Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray,
    signature: str | None = None,
    *,
    spec: ModelSpec | None = None,
    pool: WorkerPool | None = None,
) -> RunResult:
    """Run the model on ``inputs`` in a worker process and return what happened.

    ``inputs`` is bound to the model's inputs as ``diagnose`` binds it; nothing is fixed here, so
    data the interpreter refuses comes back as ``status="error"`` with its explanation. Raises
    ``ModelLoadError`` when the bytes are not a model and ``WorkerError`` when no worker can start.
    """
    spec = spec or inspect_model(model_bytes)
    feed = bind(spec, inputs, signature)
    return (pool or default_pool()).run(model_bytes, spec, feed, signature)
