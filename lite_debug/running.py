"""Run a model on data in a worker process, never in the calling one.

A segfault, an abort or a runaway allocation in the interpreter's native code must cost one
run, not the dashboard that every user shares. So the interpreter only ever lives in a
process started with the ``spawn`` method (``lite_debug._worker``); this module sends it the
model once, then the data for each run, and turns whatever happens into a ``RunResult``:
``ok``, ``error`` (with its explanation), ``crashed`` (naming the signal), ``timeout``,
``skipped`` (a limit refused it) or ``protocol`` (the worker's reply broke the protocol).

What a worker says is read as data, never unpickled (``_protocol``), with the run's deadline
and the cap on what a run may return. Workers stay warm: a pool keeps each one's loaded model,
so rerunning the same model costs one round trip, but a process only ever serves one model and
one owner (a session): another model or another owner gets a fresh process, so nothing one
session ran is visible to another. Before every run, unless the caller keeps state, variable
tensors are reset and a model that keeps other state (resource variables, hash tables, random
ops) gets a fresh interpreter. The pool is bounded, so many sessions cannot start many
processes, and queues fairly: the session that has used the workers least goes first.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import os
import re
import signal as _signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from . import _protocol as P
from . import _shm
from ._wire import Channel, Stalled
from .binding import bind
from .errors import WorkerError
from .inspection import inspect_model
from .quantization import dequantize
from .records import Feed, ModelCheck, ModelSpec, OutputTensor, Quantization, RunResult

__all__ = ["CheckJob", "Limits", "QueueStatus", "TensorFlowWorker", "Worker", "WorkerPool", "default_pool", "run"]


@dataclass(frozen=True)
class Limits:
    """What one worker may spend. ``None`` means no limit of that kind.

    ``output_bytes``: what one run's outputs may cost the server, counted as it holds them (the
    raw arrays, plus a float32 copy of each quantized integer output); a run past it comes back
    ``skipped`` with ``limit="output"`` and the figure, and its outputs stay in the worker.
    """

    run_seconds: float = 30.0
    load_seconds: float = 30.0
    memory_bytes: int | None = 4 << 30
    cpu_seconds: int | None = 120
    output_bytes: int | None = 256 << 20

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Limits":
        """Limits from ``LITE_DEBUG_RUN_SECONDS``, ``LITE_DEBUG_MEMORY_GB``, ``LITE_DEBUG_CPU_SECONDS``
        and ``LITE_DEBUG_OUTPUT_MB``.

        ``0`` turns a limit off. Raises ``ValueError`` with a sentence for a value that is not a number.
        """
        env = os.environ if environ is None else environ
        try:
            seconds = float(env.get("LITE_DEBUG_RUN_SECONDS", cls.run_seconds))
            memory = float(env.get("LITE_DEBUG_MEMORY_GB", cls.memory_bytes / (1 << 30)))
            cpu = int(float(env.get("LITE_DEBUG_CPU_SECONDS", cls.cpu_seconds)))
            output = float(env.get("LITE_DEBUG_OUTPUT_MB", cls.output_bytes / (1 << 20)))
        except ValueError as exc:
            raise ValueError(f"A LITE_DEBUG_* limit is not a number ({exc}).") from None
        return cls(
            run_seconds=seconds if seconds > 0 else 10**9,
            # Loading includes starting a worker's Python: never less than the default.
            load_seconds=max(seconds, cls.load_seconds) if seconds > 0 else 10**9,
            memory_bytes=int(memory * (1 << 30)) if memory > 0 else None,
            cpu_seconds=cpu if cpu > 0 else None,
            output_bytes=int(output * (1 << 20)) if output > 0 else None,
        )

    def describe(self) -> str:
        parts = [f"{self.run_seconds:g} s per run"]
        if self.memory_bytes:
            parts.append(f"{self.memory_bytes / (1 << 30):g} GiB of memory")
        if self.cpu_seconds:
            parts.append(f"{self.cpu_seconds} s of CPU per run")
        if self.output_bytes:
            parts.append(f"{_gib(self.output_bytes)} of outputs per run")
        return ", ".join(parts)


# A reply is polled for (not slept on) only for a request marked ``soon`` (a benchmark,
# --repeat) and when the last round trip was this short: for longer runs the wake-up is a small
# share, and a person clicking does not notice 0.1 ms, while a poll holds a core others share.
SPIN_FOR_REPLIES_UP_TO = 0.003
# A batch whose duration the last one predicts is slept on until this long before its
# expected end (at most a quarter of it), then polled for until this long after: the wake-up
# is paid while the worker is still busy, and the poll holds a core for 4 ms at most.
POLL_AROUND_EXPECTED_END = 0.002
_FILE_TRANSFER = 4 << 20  # models larger than this go to the worker through a temporary file
_HEADER_ROOM = P.HEADER_LIMIT + (1 << 20)  # a frame's header and padding, beyond its arrays

# Builtin ops that keep state in the interpreter between invokes, where resetting variable
# tensors does not reach it: resource variables, hash tables, and random ops' generators.
STATEFUL_OPS = frozenset({
    "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "HASHTABLE", "HASHTABLE_FIND",
    "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "RANDOM_UNIFORM", "RANDOM_STANDARD_NORMAL", "MULTINOMIAL",
})

_NOBODY = object()  # the owner of a process that has not loaded anything yet


def keeps_state(model_bytes: bytes | memoryview, spec: ModelSpec) -> tuple[bool, bool]:
    """(state beyond variable tensors, variable tensors): what a run must reset to start afresh.

    Read from the model's own op list (every subgraph's) and tensors; a model whose ops cannot
    be read counts as stateful. Custom and Flex ops need none: this runtime cannot run those it
    has no registration for, and the XNNPACK ones it has keep nothing.
    """
    if spec.problem:
        return True, True
    return any(op.name in STATEFUL_OPS for op in spec.ops), _has_variable_tensors(model_bytes)


def _has_variable_tensors(data: bytes | memoryview) -> bool:
    """Whether any tensor of any subgraph is marked ``is_variable`` (an LSTM's state, …)."""
    from ._flat import Flat

    try:
        flat = Flat(data)
        start, n_sub = flat.vector(flat.root(), 8)  # Model.subgraphs
        for s in range(min(n_sub, 1 << 16)):
            tensors = flat.vector(flat.element(start, n_sub, s), 4)  # SubGraph.tensors
            for i in range(min(tensors[1], 1 << 24)):
                if flat.i8(flat.element(*tensors, i), 14):  # Tensor.is_variable
                    return True
    except (ValueError, struct.error):
        return True
    return False


KILL_WAIT_SECONDS = 15.0  # how long to wait for a killed worker to go (only a stuck kernel takes long)


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


def worker_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment a worker process starts with: ``base`` (the server's), with this package
    on the path and the settings below, each unless ``base`` sets it."""
    env = dict(base)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # numpy's OpenBLAS starts a thread per core that spins for tens of ms after each call
    # (60 ms of CPU after a worker's first runs, measured): one thread, since a worker's BLAS
    # calls are small.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    # glibc gives memory freed at the top of the heap back to the system, and serves blocks
    # of 128 KB or more by mmap: each run's arrays then fault their pages in anew, and a
    # page fault is dear in a VM (a trace's 6.5 MB of copies took 6 ms, 0.8 ms without
    # trimming). Keep up to 256 MB freed, and take blocks under 32 MB from the heap. The
    # memory limit counts the same address space either way.
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(256 << 20))
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(32 << 20))
    # And ask for transparent huge pages for that memory (the kernel's default "madvise"
    # mode gives them only on request): a model's arena faulted in 4 KB at a time is most of
    # a first invoke here. The marked copy a trace runs keeps every op output, 10 MB for the
    # face detector: its first invoke took 10 ms in 4 KB pages, 3.5 ms in 2 MB ones.
    # (No glibc.malloc.arena_max=1: the worker's helper thread has a malloc arena of its own, 64 MB
    # of address space the memory limit counts, but one arena for both threads moved the heap
    # enough that a saved fuzz crasher, tests/fixtures/fuzz/93745a7c06a1153d, ran with garbage
    # outputs instead of aborting, in one start out of eight.)
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:
        env["GLIBC_TUNABLES"] = f"{tunables}:glibc.malloc.hugetlb=1" if tunables else "glibc.malloc.hugetlb=1"
    return env


class Worker:
    """One worker process holding one model for one owner; restarted after it crashes, times out
    or breaks the protocol, and replaced by a fresh one for another model or another owner.

    Not thread-safe by itself: the pool hands a worker to one caller at a time.
    """

    module = "lite_debug._worker"  # what the process runs (``python -m``)

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self._proc: Any = None
        self._conn: Any = None
        self.model_sha: str | None = None
        self.owner: Any = _NOBODY  # whose data this process has seen (the last caller's owner key)
        self._loaded = False
        self._last_round_trip = 0.0  # seconds; how long to poll for the next reply
        self._batch_row_seconds = 0.0  # the last batch's time per row, to predict the next one's
        self._region: Any = None
        self._region_sent = False
        self._want = 0
        self.should_yield: Callable[[], bool] | None = None  # set by a pool: a batch then stops early

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
        args = [sys.executable, "-m", self.module, str(child_sock.fileno())]
        if self.limits.memory_bytes:
            args += ["--memory", str(self.limits.memory_bytes)]
        if self.limits.cpu_seconds:
            args += ["--cpu", str(self.limits.cpu_seconds)]
        env = worker_environment(os.environ)
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
        self.owner = _NOBODY
        self._loaded = False
        self._close_region()

    def close(self) -> None:
        """Ask the worker to exit, and kill it if it does not."""
        if self._proc is None:
            return
        try:
            self._conn.send(P.Exit())
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=1.0)
        self._kill()  # kills it only if it did not exit; closes the pipe, log and shared memory

    def _close_region(self) -> None:
        if self._region is not None:
            self._region.close()
        self._region = None
        self._region_sent = False

    def _share(self, request: P.Run | P.Batch, rows: int | None = None) -> Callable[[int, int], None] | None:
        """Move the request's large arrays into the shared region (created or grown as needed).

        With ``rows``, only each array's first ``rows`` rows are copied now, and what copies
        rows ``start:stop`` later is returned: a batch's copy then overlaps the worker's run.
        """
        large = [i for i, (_, a) in enumerate(request.arrays) if a.nbytes >= _shm.THRESHOLD]
        want = max(_shm.needed([request.arrays[i][1] for i in large]), self._want)
        if not want:
            return None
        region = self._region
        if region is None or region.size < want:
            self._close_region()
            size = 1 << max(20, (want - 1).bit_length())
            try:
                region = self._region = _shm.Region.create(size)
            except OSError:
                return None  # no shared memory here: the arrays go through the pipe
        values = [request.arrays[i][1] for i in large]
        descs = region.reserve(values) if large else []
        if descs is None:
            return None
        for d, a in zip(descs, values):
            region.write(d, a, 0, rows)
        arrays = list(request.arrays)
        for i, d in zip(large, descs):
            arrays[i] = (arrays[i][0], d)
        request.arrays = arrays
        if not self._region_sent:
            request.region = (region.path, region.size)
        if rows is None or not descs:
            return None

        def copy_rows(start: int, stop: int) -> None:
            for d, a in zip(descs, values):
                region.write(d, a, start, stop)

        return copy_rows

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
            # SIGKILL cannot be caught: wait until the process is reaped, so that a replacement
            # never runs beside it and the pool's bound on processes holds even under load.
            self._proc.join(timeout=KILL_WAIT_SECONDS)
        if self._conn is not None:
            self._conn.close()
        self._close_stderr()
        self._close_region()
        self._proc, self._conn, self.model_sha, self.owner = None, None, None, _NOBODY

    def _crashed(self) -> tuple[str, str]:
        """The worker died: collect how, then clean up after it."""
        self._proc.join(timeout=2.0)
        code = self._proc.exitcode
        self._kill()
        return "crashed", _signal_name(code)

    def _max_frame(self) -> int | None:
        """The longest reply frame this worker may send: the output cap plus a header, or, with
        no cap, what fits the worker's memory limit."""
        cap = self.limits.output_bytes or self.limits.memory_bytes
        return None if cap is None else cap + _HEADER_ROOM

    def _request(
        self,
        message: P.Request,
        seconds: float | None,
        accept: tuple[type, ...],
        progress: Any = None,
        after_send: Callable[[], None] | None = None,
        expect: float | None = None,
        borrow: bool = False,
    ) -> tuple[str, Any]:
        """Send one request; return ("reply", record), ("crashed", signal), ("timeout", None),
        ("protocol", sentence) or ("unsendable", sentence): the worker could not encode its reply.

        Every receive has the deadline: the reply, or the rest of a reply that has started, must
        come within ``seconds``. ``Progress`` replies go to ``progress`` and restart the clock:
        for a batch, the time limit is on the wait between two signs of life. A reply that is
        malformed, over the output cap, or not of a type in ``accept`` kills the worker.
        ``expect``: how long the reply should take from the end of ``after_send``, when known.
        ``borrow``: decode with ``_protocol.decode_reply``'s ``borrow``.
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
        # rather than sleep and pay a wake-up: only for short requests of a caller that said
        # more follow. For a longer one of known length, sleep first and poll around its end.
        last = self._last_round_trip
        if expect is not None and expect > 0:
            poll_from = expect - min(POLL_AROUND_EXPECTED_END, expect / 4)
            poll_for = expect + POLL_AROUND_EXPECTED_END - poll_from
        else:
            poll_from = 0.0
            poll_for = 1.5 * last if message.soon and 0 < last <= SPIN_FOR_REPLIES_UP_TO else 0.0
        started = time.perf_counter()
        cap = self.limits.output_bytes
        stop_sent = False
        while True:
            now = time.monotonic()
            start_by = now + 0.5 if deadline is None else min(now + 0.5, max(deadline, now + 0.001))
            spin = 0.0
            if poll_for > 0:
                ahead = started + poll_from - time.perf_counter()
                if ahead > 0:
                    start_by = min(start_by, now + ahead)  # sleep until it is time to poll
                else:
                    spin, poll_for = poll_for, 0.0
            try:
                frame = self._conn.recv_frame(deadline, spin=spin, max_size=self._max_frame(), start_by=start_by)
                reply = P.decode_reply(frame, self._region, cap, borrow)
            except Stalled:
                self._kill()
                return "timeout", None
            except TimeoutError:
                pass
            except (EOFError, OSError):
                return self._crashed()
            except (P.ProtocolError, MemoryError, OverflowError) as exc:
                return self._protocol_failure(exc)
            else:
                self._last_round_trip = time.perf_counter() - started
                if message_region(message) and not self._region_sent and self._region is not None:
                    self._region_sent = True
                    self._region.unlink()  # both processes have it mapped: the name is no longer needed
                if isinstance(reply, P.Progress) and progress is not None:
                    progress(reply.done, reply.total)
                    if seconds is not None:
                        deadline = time.monotonic() + seconds
                    if not stop_sent and self.should_yield is not None and self.should_yield():
                        stop_sent = self._stop()
                    continue
                if not isinstance(reply, accept):
                    return self._protocol_failure(P.ProtocolError(f"The worker answered with {type(reply).__name__}."))
                if isinstance(reply, P.Failed) and reply.stage == "protocol":
                    return "unsendable", reply.message  # its own bug, not the model's (see _worker._send)
                need = getattr(reply, "need", 0)
                if need:
                    self._want = need  # grow the region next time so the outputs fit
                return "reply", reply
            if not self._proc.is_alive():
                return self._crashed()
            if deadline is not None and time.monotonic() >= deadline:
                self._kill()
                return "timeout", None
            if progress is not None and not stop_sent and self.should_yield is not None and self.should_yield():
                stop_sent = self._stop()

    def _stop(self) -> bool:
        try:
            self._conn.send(P.Stop())
        except OSError:
            pass
        return True

    def _protocol_failure(self, exc: BaseException) -> tuple[str, str]:
        """A reply broke the protocol: the worker cannot be trusted any more, so it is killed."""
        self._kill()
        text = str(exc) if isinstance(exc, P.ProtocolError) else "a reply too large to hold in memory"
        return "protocol", text

    def run(
        self,
        model_bytes: bytes,
        spec: ModelSpec,
        feed: Feed,
        signature: str | None = None,
        *,
        owner: Hashable = None,
        keep_state: bool = False,
        expect_more: bool = False,
    ) -> RunResult:
        """Run ``feed`` through the model, loading it first if this worker holds another model or
        served another owner (in a fresh process, then).

        ``keep_state``: leave the interpreter's state (variables…) as the last run left it;
        by default each run starts afresh. ``expect_more``: another run follows at once (a
        loop, a benchmark): both sides then poll for the next message instead of sleeping.

        A model whose tensors would not fit the memory limit is refused before it is sent
        (``status="skipped"``, ``limit="memory"``), with the figure; outputs past the output
        cap are not sent back (``skipped``, ``limit="output"``).
        """
        t0 = time.perf_counter()
        refused = _memory_refusal(spec, feed, self.limits)
        if refused is not None:
            return refused
        failed = self.ensure_model(model_bytes, spec, owner=owner)
        if failed is not None:
            return failed
        request = _run_request(spec, feed, signature, keep_state=keep_state, soon=expect_more, cap=self.limits.output_bytes)
        self._share(request)
        outcome, reply = self._request(request, self.limits.run_seconds, accept=(P.RunDone, P.TooLarge, P.Failed))
        failed = _failure(outcome, reply, self.limits.run_seconds, stage="running the model")
        if failed is not None:
            failed = self._finish(failed, t0)
            if failed.status == "crashed" and signature is None and failed.limit is None:
                failed = self._probe_without_delegates(model_bytes, spec, feed, failed, owner)
            return failed
        if isinstance(reply, P.Failed):
            return _error_result(reply.error_type, reply.message, reply.kernel_message, t0, stage="run", limits=self.limits)
        if isinstance(reply, P.TooLarge):
            return _too_large(reply, t0)
        names = _output_names(spec, signature)
        return RunResult(
            status="ok",
            outputs=tuple(_output(o, names) for o in reply.outputs),
            invoke_ms=reply.invoke_ms,
            total_ms=(time.perf_counter() - t0) * 1000.0,
            detail=" ".join(reply.notes),
        )

    def trace(
        self,
        model_bytes: bytes,
        spec: ModelSpec,
        feed: Feed,
        signature: str | None = None,
        *,
        owner: Hashable = None,
        subgraph: int = 0,
        tensors: Sequence[int] = (),
        mark: Sequence[int] = (),
        quantized: Mapping[int, tuple] | None = None,
        weights: Mapping[int, int] | None = None,
        fetch: Sequence[int] = (),
        no_default_delegates: bool = False,
        reference_kernels: bool = False,
        borrow: bool = False,
    ) -> tuple[RunResult, P.Traced | None]:
        """Run ``feed`` once plainly and once with every tensor of ``mark`` made an output of
        ``subgraph``; reduce each tensor of ``tensors`` to statistics in the worker (those in
        ``weights`` read from the constant they dequantize) and send back the values of those in
        ``fetch`` (see ``_protocol.Trace``). ``reference_kernels``: both runs with the reference
        kernels (``BUILTIN_REF``), no delegate. Loads the model first as ``run`` does.

        Returns (the plain run's result, the worker's ``Traced`` reply), or (a failure, None):
        a run that fails, crashes or times out, a trace refused by the memory limit (it holds
        every tensor at once) or whose plain outputs and fetched values pass the output cap.

        ``borrow``: the fetched values come back as read-only views of this worker's shared
        region, not copies, valid only until its next request: for a caller that holds the
        worker and is done with them by then (a comparison, which compares each pair at once).
        The rest of the reply is copied as usual.
        """
        t0 = time.perf_counter()
        refused = _memory_refusal(spec, feed, self.limits, traced=True)
        if refused is not None:
            return refused, None
        failed = self.ensure_model(model_bytes, spec, owner=owner)
        if failed is not None:
            return failed, None
        base = _run_request(spec, feed, signature)
        request = P.Trace(
            arrays=base.arrays, signature=base.signature, resize=base.resize, no_default_delegates=no_default_delegates,
            subgraph=int(subgraph), tensors=[int(t) for t in tensors], mark=[int(t) for t in mark],
            quantized={int(k): v for k, v in (quantized or {}).items()},
            weights={int(k): int(v) for k, v in (weights or {}).items()}, fetch=[int(t) for t in fetch],
            output_cap=self.limits.output_bytes, reference_kernels=reference_kernels,
        )
        self._share(request)  # type: ignore[arg-type]
        # Building the traced copy is a load, and the trace runs the model twice.
        seconds = self.limits.run_seconds + self.limits.load_seconds
        outcome, reply = self._request(request, seconds, accept=(P.Traced, P.TooLarge, P.Failed), borrow=borrow)
        failed = _failure(outcome, reply, seconds, stage="tracing the model")
        if failed is not None:
            return self._finish(failed, t0), None
        if isinstance(reply, P.Failed):
            result = _error_result(reply.error_type, reply.message, reply.kernel_message, t0, stage="run", limits=self.limits)
            if reply.stage == "trace":
                result = replace(result, detail=(
                    "The model ran, but the copy of it that marks every op output as an output of the subgraph "
                    f"failed ({reply.error_type}), so no layer could be traced."
                ))
            return result, None
        if isinstance(reply, P.TooLarge):
            return _too_large(reply, t0), None
        n = len(request.tensors)
        known = set(request.fetch)
        if not (
            reply.stats.shape == (n, len(P.STAT_COLUMNS)) and reply.stats.dtype == np.float64
            and reply.status.shape == (n,) and reply.ranks.shape == (n,)
            and int(reply.ranks[reply.ranks > 0].sum()) == reply.shapes.size
            and len(reply.equal) == len(reply.differences) == len(reply.outputs)
            and all(o.index in known for o in reply.fetched)
        ):
            self._protocol_failure(P.ProtocolError("the trace's reply does not add up"))
            failed = _failure("protocol", "the trace's reply does not add up", seconds, stage="tracing the model")
            return self._finish(failed, t0), None
        if borrow:
            reply = replace(reply, outputs=tuple(replace(o, value=P.owned(o.value)) for o in reply.outputs),
                            stats=P.owned(reply.stats), status=P.owned(reply.status), ranks=P.owned(reply.ranks),
                            shapes=P.owned(reply.shapes))
        names = _output_names(spec, signature)
        result = RunResult(
            status="ok",
            outputs=tuple(_output(o, names) for o in reply.outputs),
            invoke_ms=reply.invoke_ms,
            total_ms=(time.perf_counter() - t0) * 1000.0,
            detail=" ".join(reply.notes),
        )
        return result, reply

    def prepare_trace(self, model_bytes: bytes, spec: ModelSpec, owner: Hashable = None, **fields: Any) -> P.Prepared | None:
        """Get this worker ready for a trace with ``fields`` (those of ``_protocol.Prepare``),
        loading the model first as ``run`` does: the worker's first trace then costs what every
        later one does. None when that failed, crashed or timed out: a trace then tries again
        and says what happens."""
        refused = _memory_refusal(spec, Feed({}), self.limits, traced=True)
        if refused is not None or self.ensure_model(model_bytes, spec, owner=owner) is not None:
            return None
        outcome, reply = self._request(P.Prepare(**fields), self.limits.load_seconds, accept=(P.Prepared, P.Failed))
        return reply if outcome == "reply" and isinstance(reply, P.Prepared) else None

    def _probe_without_delegates(self, model_bytes: bytes, spec: ModelSpec, feed: Feed, crash: RunResult, owner: Hashable) -> RunResult:
        """After a crash, run once more in a fresh worker without the default XNNPACK delegate.

        The delegate trusts what the builtin kernels would check, so a corrupt model can crash
        it where the kernels refuse it cleanly or run it: saying which tells the user where the
        fault is, and gives them a workaround.
        """
        if self.ensure_model(model_bytes, spec, owner=owner) is not None:
            return crash
        request = _run_request(spec, feed, None, cap=self.limits.output_bytes)
        request.no_default_delegates = True
        self._share(request)
        # A quick look, not a second full wait: twice what the crashed run took, 3 s at least.
        seconds = min(self.limits.run_seconds, max(3.0, 2 * (crash.total_ms or 0) / 1000.0))
        outcome, reply = self._request(request, seconds, accept=(P.RunDone, P.TooLarge, P.Failed))
        if outcome == "crashed":
            note, kernel = "Without the default XNNPACK delegate it crashes too: the fault is in the interpreter itself.", None
        elif outcome != "reply":
            return crash
        elif not isinstance(reply, P.Failed):
            note, kernel = (
                "Without the default XNNPACK delegate the model runs, so the crash is in the delegate: build the "
                "interpreter with experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES "
                "to work around it, and report it with a bundle.",
                "",
            )
        else:
            note, kernel = f"Without the default XNNPACK delegate the interpreter refuses the model instead: {reply.message}", reply.message
        return replace(crash, detail=f"{crash.detail} {note}", kernel_message=kernel or None)

    def ensure_model(self, model_bytes: bytes, spec: ModelSpec, owner: Hashable = None, *, allocate: bool = False) -> RunResult | None:
        """Load the model unless this worker holds it already for this owner; a failure comes
        back as a result. ``allocate``: also allocate its tensors (the model check), even when
        the model is loaded already.

        A worker that held another model, or served another owner, is replaced by a fresh
        process first: a model can corrupt the heap without crashing, and the next user's
        innocent model must not pay for it (the fuzzer saw exactly that); and a process keeps
        what it ran (variables, freed memory) where another owner's model could read it.
        """
        same = self.model_sha == spec.sha256 and self.owner == owner and self.alive
        if same and not allocate:
            return None
        refused = _overflow_refusal(spec)
        if refused is not None:
            return refused
        if self._proc is not None and self._loaded and not same:
            self.close()
        t0 = time.perf_counter()
        path = None
        if len(model_bytes) > _FILE_TRANSFER:
            # Pickling a large model through the pipe would hold a second copy of it in this
            # process while it is sent; a file costs page cache, not the server's memory.
            fd, path = tempfile.mkstemp(prefix="lite-debug-model-", suffix=".tflite")
            with os.fdopen(fd, "wb") as fh:
                fh.write(model_bytes)
        stateful, variables = keeps_state(model_bytes, spec)
        try:
            request = P.Load(
                model=None if path else bytes(model_bytes), path=path, stateful=stateful, variables=variables, allocate=allocate
            )
            outcome, reply = self._request(request, self.limits.load_seconds, accept=(P.Loaded, P.Failed))
            # Even a model that failed to load has run code in this process, on this owner's behalf.
            self._loaded = True
            if self._proc is not None:
                self.owner = owner
        finally:
            if path:
                os.unlink(path)
        failed = _failure(outcome, reply, self.limits.load_seconds, stage="loading the model")
        if failed is not None:
            return self._finish(failed, t0)
        if isinstance(reply, P.Failed):
            self.model_sha = None
            return _error_result(reply.error_type, reply.message, reply.kernel_message, t0, stage="load", limits=self.limits)
        self.model_sha = spec.sha256
        self._batch_row_seconds = 0.0
        return None

    def check(self, model_bytes: bytes, spec: ModelSpec, owner: Hashable = None) -> ModelCheck:
        """Load the model and allocate its tensors (no invoke): ``ModelCheck`` says how that went."""
        refused = _memory_refusal(spec, Feed({}), self.limits)
        failed = refused or self.ensure_model(model_bytes, spec, owner=owner, allocate=True)
        return _check_result(failed, spec)

    def run_batch(
        self,
        model_bytes: bytes,
        spec: ModelSpec,
        request: P.Batch,
        progress: Any = None,
        *,
        owner: Hashable = None,
    ) -> tuple[RunResult | None, P.BatchDone | None]:
        """Send one batch request; (failure, None) or (None, ``BatchDone``). A batch whose
        outputs pass the output cap comes back as a ``skipped`` failure with the figure."""
        t0 = time.perf_counter()
        failed = self.ensure_model(model_bytes, spec, owner=owner)
        if failed is not None:
            return failed, None
        request.output_cap = self.limits.output_bytes
        n, chunk = int(request.n), int(request.chunk)
        n_chunks = (n + chunk - 1) // chunk
        # The worker starts on its first block of samples (64 runs) as soon as they are copied
        # in; the rest follow in pieces that double in size, each announced with More(rows), so
        # the copy keeps ahead of the worker at the cost of a few messages.
        first = 64 * chunk if n_chunks >= 128 else None
        copy_rows = self._share(request, rows=first)
        if copy_rows is not None:
            request.available = first

        def send_the_rest() -> None:
            done, piece = first, first
            while done < n:
                piece *= 2
                end = done + piece if n - (done + piece) >= 2 * piece else n  # no small last piece
                copy_rows(done, end)
                self._conn.send(P.More(rows=end))
                done = end

        outcome, reply = self._request(
            request,
            self.limits.run_seconds,
            accept=(P.BatchDone, P.TooLarge, P.Failed),
            progress=progress or (lambda done, total: None),
            after_send=send_the_rest if copy_rows is not None else None,
            expect=self._batch_row_seconds * n or None,
        )
        failed = _failure(outcome, reply, self.limits.run_seconds, stage="running the batch")
        if failed is not None:
            return self._finish(failed, t0), None
        if isinstance(reply, P.Failed):
            return _error_result(reply.error_type, reply.message, None, t0, stage="run", limits=self.limits), None
        if isinstance(reply, P.TooLarge):
            return _too_large(reply, t0), None
        if not (
            0 < reply.done <= n_chunks
            and len(reply.times) == reply.done
            and all(0 <= k < reply.done for k in reply.failed)
            and all(o.value.ndim and o.value.shape[0] == reply.done for o in reply.outputs)
        ):
            self._protocol_failure(P.ProtocolError("the batch's reply does not add up"))
            failed = _failure("protocol", "the batch's reply does not add up", self.limits.run_seconds, stage="running the batch")
            return self._finish(failed, t0), None
        self._batch_row_seconds = self._last_round_trip / (reply.done * chunk)
        return None, reply

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


# TensorFlow's import in a fresh process takes 5-20 s on a shared machine: not counted against the
# load limit of the model itself.
TENSORFLOW_IMPORT_SECONDS = 60.0


class TensorFlowWorker(Worker):
    """A worker process that runs a Keras or SavedModel model with TensorFlow
    (``lite_debug._tf_worker``), under the same limits as every worker: TensorFlow is imported
    there and never in this process. One model per process; not pooled: start one, load, run,
    close.
    """

    module = "lite_debug._tf_worker"

    def load_reference(self, data: bytes, kind: str, signature: str | None = None) -> tuple[RunResult | None, Any]:
        """Load the model (``kind``: ``"keras"``, ``"h5"`` or ``"saved_model"``, a zip of its folder).
        Returns (None, ``ReferenceLoaded``) or (a failure, None)."""
        t0 = time.perf_counter()
        path = None
        if len(data) > _FILE_TRANSFER:
            fd, path = tempfile.mkstemp(prefix="lite-debug-reference-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        try:
            request = P.LoadReference(model=None if path else bytes(data), path=path, kind=kind, signature=signature)
            seconds = self.limits.load_seconds + TENSORFLOW_IMPORT_SECONDS
            outcome, reply = self._request(request, seconds, accept=(P.ReferenceLoaded, P.Failed))
        finally:
            if path:
                os.unlink(path)
        failed = _failure(outcome, reply, seconds, stage="loading the reference model with TensorFlow")
        if failed is not None:
            return self._finish(failed, t0), None
        if isinstance(reply, P.Failed):
            return RunResult(
                status="error", error_type=reply.error_type, error_message=reply.message,
                total_ms=(time.perf_counter() - t0) * 1000.0,
                detail=f"TensorFlow could not load the reference model ({reply.error_type}): {reply.message}",
            ), None
        self._loaded = True
        return None, reply

    def run_reference(self, arrays: Sequence[tuple[str, np.ndarray]], names: Sequence[str]) -> RunResult:
        """Call the loaded reference on ``arrays`` (input name, array); its outputs come back
        named ``names`` (in the order ``ReferenceLoaded.outputs`` lists them) and numbered by position."""
        t0 = time.perf_counter()
        request = P.RunReference(arrays=[(str(k), np.asarray(v)) for k, v in arrays], output_cap=self.limits.output_bytes)
        outcome, reply = self._request(request, self.limits.run_seconds, accept=(P.RunDone, P.TooLarge, P.Failed))
        failed = _failure(outcome, reply, self.limits.run_seconds, stage="running the reference model with TensorFlow")
        if failed is not None:
            return self._finish(failed, t0)
        if isinstance(reply, P.TooLarge):
            return _too_large(reply, t0)
        if isinstance(reply, P.Failed):
            return RunResult(
                status="error", error_type=reply.error_type, error_message=reply.message,
                total_ms=(time.perf_counter() - t0) * 1000.0,
                detail=f"The reference model raised {reply.error_type} in TensorFlow: {reply.message}",
            )
        by_position = {i: n for i, n in enumerate(names)}
        return RunResult(
            status="ok", outputs=tuple(_output(o, by_position) for o in reply.outputs), invoke_ms=reply.invoke_ms,
            total_ms=(time.perf_counter() - t0) * 1000.0, detail=" ".join(reply.notes),
        )


def message_region(message: Any) -> bool:
    """Whether a request named a shared region for the worker to map."""
    return bool(getattr(message, "region", None))


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
    if outcome == "unsendable":
        return RunResult(status="protocol", detail=f"Nothing came back from {stage}: {reply}")
    if outcome == "protocol":
        return RunResult(
            status="protocol",
            detail=(
                f"The worker's reply while {stage} broke the protocol ({reply}), so the worker was stopped: the "
                "model's native code may have taken the worker over. Nothing it sent was used; only that worker "
                "was lost. Do not trust this model, and report it with its bundle."
            ),
        )
    return None


def _too_large(reply: P.TooLarge, t0: float) -> RunResult:
    """A run whose outputs pass the output cap: the figure, and each output's size."""
    each = "; ".join(f"{o.name!r} {o.dtype} {list(o.shape)}: {_gib(o.nbytes)}" for o in reply.outputs[:8])
    more = f"; and {len(reply.outputs) - 8} more" if len(reply.outputs) > 8 else ""
    return RunResult(
        status="skipped",
        limit="output",
        invoke_ms=reply.invoke_ms or None,
        total_ms=(time.perf_counter() - t0) * 1000.0,
        detail=(
            f"The model ran, but its outputs would take {_gib(reply.total)} in the server (with the float32 copy "
            f"of quantized outputs), more than the {_gib(reply.cap)} a run may return, so they were not sent back "
            f"({each}{more}). A model's declared output shapes can be far smaller than what it produces. Raise "
            "LITE_DEBUG_OUTPUT_MB if the machine has the memory and you trust the model."
        ),
    )


def _gib(n: int) -> str:
    if n >= 1 << 70:  # a crafted model can declare sizes no float holds
        return "more than a zebibyte"
    return f"{n / (1 << 30):.2f} GiB" if n >= (1 << 30) else f"{n / (1 << 20):.0f} MiB"


def _memory_refusal(spec: ModelSpec, feed: Feed, limits: Limits, traced: bool = False) -> RunResult | None:
    """A ``skipped`` result when the model and data would not fit the worker's memory limit.
    ``traced``: a trace, which also holds a marked copy of the model and every tensor at once."""
    if not limits.memory_bytes:
        return None
    data = sum(int(np.asarray(a).nbytes) for a in feed.arrays.values())
    need = (2 if traced else 1) * (spec.activation_bytes + spec.size) + 2 * data
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


def _overflow_refusal(spec: ModelSpec) -> RunResult | None:
    """A ``skipped`` result for a model whose RESHAPE would write past the end of its output.

    The runtime's RESHAPE copies its input's bytes into its output without comparing their
    types, so a damaged file whose reshape turns float32 into uint16 has it write twice the
    output's size: the worker's heap is corrupted, and it aborts, or runs on with garbage, as the
    memory happens to lie (a saved fuzz crasher, ``tests/fixtures/fuzz/93745a7c06a1153d``, did
    each). Refused before it is sent: a sentence, not a crash or a plausible wrong answer."""
    graph = spec.graph
    if graph is None:
        return None
    for sub in graph.subgraphs:
        tensors = sub.tensors
        for op in sub.operators:
            if op.name != "RESHAPE" or not op.inputs or not op.outputs:
                continue
            i, o = op.inputs[0], op.outputs[0]
            if not (0 <= i < len(tensors) and 0 <= o < len(tensors)):
                continue
            source, target = tensors[i], tensors[o]
            try:
                wide, narrow = np.dtype(source.dtype).itemsize, np.dtype(target.dtype).itemsize
            except TypeError:
                continue  # strings, resources, int4: no fixed width numpy knows
            if narrow >= wide or np.dtype(source.dtype).kind in "OSU":
                continue
            where = f"op {op.index}" + (f" of subgraph {sub.index}" if sub.index else "")
            return RunResult(
                status="skipped",
                detail=(
                    f"Not run: {where} (RESHAPE) makes tensor {target.index} {target.name!r}, of type {target.dtype} "
                    f"({narrow} bytes a value), from tensor {source.index} {source.name!r}, of type {source.dtype} "
                    f"({wide} bytes). The runtime's RESHAPE copies its input's bytes without comparing the types, so "
                    f"it would write {wide // narrow}× the output's size and corrupt the worker's memory (a crash, or "
                    "outputs of garbage). The file is damaged or mis-converted: a reshape's input and output have "
                    "the same type."
                ),
            )
    return None


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


def _output_names(spec: ModelSpec, signature: str | None) -> dict[int, str]:
    """Output names by tensor index, as this process read them from the model: the runtime's
    own names stop at a NUL byte, and would no longer match the model's."""
    try:
        _, outputs = spec.io(signature)
    except KeyError:
        return {}
    return {t.index: t.name for t in outputs}


def _output(o: P.Output, names: Mapping[int, str]) -> OutputTensor:
    q = Quantization(scale=o.scales, zero_point=o.zero_points, quantized_dimension=o.quantized_dimension)
    raw = o.value
    try:
        values = dequantize(raw, q)
    except ValueError:  # parameters that do not fit the tensor (a crafted model): shown raw
        values, q = raw, Quantization()
    return OutputTensor(name=names.get(o.index, o.name), index=o.index, raw=raw, values=values, quantization=q)


def _run_request(
    spec: ModelSpec, feed: Feed, signature: str | None, *, keep_state: bool = False, soon: bool = False, cap: int | None = None
) -> P.Run:
    inputs, _ = spec.io(signature)
    if signature is not None:
        arrays = [(t.name, np.asarray(feed.arrays[t.name])) for t in inputs if t.name in feed.arrays]
        return P.Run(arrays=arrays, signature=signature, keep_state=keep_state, output_cap=cap, soon=soon)
    by_name = {t.name: t for t in inputs}
    arrays = [(by_name[k].index, np.asarray(v)) for k, v in feed.arrays.items() if k in by_name]
    resize = {by_name[k].index: tuple(int(d) for d in v) for k, v in feed.resize.items() if k in by_name}
    return P.Run(arrays=arrays, resize=resize, keep_state=keep_state, output_cap=cap, soon=soon)


def _check_result(failed: RunResult | None, spec: ModelSpec) -> ModelCheck:
    if failed is None:
        return ModelCheck(status="ok", sha256=spec.sha256)
    if failed.status == "error":
        return ModelCheck(
            status="error",
            error_type=failed.error_type,
            message=failed.error_message,
            explanation=failed.explanation,
            kernel_message=failed.kernel_message,
            limit=failed.limit,
            detail=failed.detail,
            sha256=spec.sha256,
        )
    return ModelCheck(
        status=failed.status,  # type: ignore[arg-type]
        signal=failed.signal,
        limit=failed.limit,
        detail=failed.detail,
        message=failed.error_message,
        sha256=spec.sha256,
    )


# -- the pool -----------------------------------------------------------------------------------------

USAGE_HALF_LIFE = 60.0  # seconds: how fast a session's use of the workers is forgotten


@dataclass(frozen=True)
class QueueStatus:
    """Where a caller waiting for a worker stands.

    ``place``: 1 for the next to get a worker. ``longest_wait_seconds``: how long the wait can
    still take if every run ahead and every run in progress used its whole time limit (and the
    load limit of a model to load), unless a session that has used the workers less arrives
    meanwhile (it goes first). ``waited_seconds``: so far.
    """

    place: int
    waiting: int
    running: int
    waited_seconds: float
    longest_wait_seconds: float


class _Ticket:
    __slots__ = ("owner", "background", "arrival", "seq")

    def __init__(self, owner: Hashable, background: bool, seq: int) -> None:
        self.owner, self.background, self.arrival, self.seq = owner, background, time.monotonic(), seq


class CheckJob:
    """A model check running in the background: ``done()``, ``result(timeout)``, ``join(timeout)``."""

    def __init__(self, thread: threading.Thread | None = None, result: ModelCheck | None = None) -> None:
        self._thread, self._result = thread, result
        self._event = threading.Event()
        if result is not None:
            self._event.set()

    def _finish(self, result: ModelCheck) -> None:
        self._result = result
        self._event.set()

    def done(self) -> bool:
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> ModelCheck:
        """The check's outcome; ``TimeoutError`` if it has not finished within ``timeout`` seconds."""
        if not self._event.wait(timeout):
            raise TimeoutError("The model check has not finished yet.")
        assert self._result is not None
        return self._result

    def join(self, timeout: float | None = None) -> None:
        self._event.wait(timeout)

    def is_alive(self) -> bool:
        return not self.done()


class WorkerPool:
    """A bounded set of warm workers shared by every caller in this process.

    Callers name an ``owner`` (an opaque key: a session's id; ``None`` for a caller that has no
    sessions, counted as one owner). A worker is handed to a waiting caller in this order:
    first the session that has used the workers least lately (busy seconds, halved every
    minute), then the one that came first; a session has at most one run going and one
    waiting, so a few tabs cannot hold every worker, and a tiny run waits at most for the
    runs in progress to end (each within its limits; a batch gives its worker up between two
    blocks of samples once it has had it for the run limit while others wait). A worker that
    holds the caller's model for the same owner is preferred; any other is restarted fresh.
    At most ``size`` processes ever exist.
    """

    def __init__(self, size: int = 2, limits: Limits = Limits()) -> None:
        self.size = max(1, int(size))
        self.limits = limits
        self._idle: OrderedDict[int, Worker] = OrderedDict()
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False
        self._waiting: list[_Ticket] = []
        self._running: dict[int, tuple[Hashable, bool, float]] = {}  # id(worker) -> owner, background, since
        self._usage: dict[Hashable, tuple[float, float]] = {}  # owner -> (busy seconds, as of when)
        self._seq = itertools.count()
        self._checks: OrderedDict[str, CheckJob] = OrderedDict()
        self._warmed: OrderedDict[tuple, None] = OrderedDict()  # (owner, model) pairs prewarmed once

    # -- queueing ---------------------------------------------------------------------------------

    def _used(self, owner: Hashable, now: float) -> float:
        value, when = self._usage.get(owner, (0.0, now))
        return value * 0.5 ** ((now - when) / USAGE_HALF_LIFE)

    def _order(self, now: float) -> list[_Ticket]:
        """The waiting tickets in the order they will be served."""
        return sorted(self._waiting, key=lambda t: (t.background, self._used(t.owner, now), t.arrival, t.seq))

    def _eligible(self, ticket: _Ticket) -> bool:
        if ticket.owner is None or ticket.background:
            return True
        return not any(o == ticket.owner and not bg for o, bg, _ in self._running.values())

    def _next(self, now: float) -> _Ticket | None:
        return next((t for t in self._order(now) if self._eligible(t)), None)

    def _status(self, ticket: _Ticket, now: float) -> QueueStatus:
        order = [t for t in self._order(now) if not t.background or t is ticket]
        place = order.index(ticket) + 1 if ticket in order else 1
        per_run = self.limits.run_seconds + self.limits.load_seconds
        frees = [max(now, since + per_run) for _, bg, since in self._running.values() if not bg]
        frees += [now] * max(0, self.size - len(frees))
        heapq.heapify(frees)
        for _ in range(place - 1):
            heapq.heappush(frees, heapq.heappop(frees) + per_run)
        return QueueStatus(
            place=place,
            waiting=len(order),
            running=len(self._running),
            waited_seconds=now - ticket.arrival,
            longest_wait_seconds=max(0.0, frees[0] - now),
        )

    def queue_status(self, owner: Hashable) -> QueueStatus | None:
        """Where ``owner``'s waiting run stands, or None when it has none waiting (for a page that
        polls from another thread; ``acquire``'s ``on_wait`` is called with the same)."""
        with self._cond:
            now = time.monotonic()
            ticket = next((t for t in self._waiting if t.owner == owner and not t.background), None)
            return None if ticket is None else self._status(ticket, now)

    def acquire(
        self,
        model_sha: str | None,
        timeout: float | None = None,
        *,
        owner: Hashable = None,
        on_wait: Callable[[QueueStatus], None] | None = None,
        background: bool = False,
    ) -> Worker:
        """A worker for ``owner``, waiting in the fair queue when all are busy.

        ``on_wait(status)`` is called from this thread (without the pool's lock) when the caller
        has to wait, then whenever its place changes and at least every second. ``background``:
        a model check or a prewarm, served after every waiting run and not counted in a
        session's one waiting run. Raises ``WorkerError`` when ``timeout`` passes (``0``: only a
        worker free now), when this owner already has a run waiting, or when the pool is closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._closed:
                raise WorkerError("The worker pool has been closed; start the run again.")
            if not background and owner is not None and any(t.owner == owner and not t.background for t in self._waiting):
                raise WorkerError(
                    "A run of this session is already waiting for a worker; it starts as soon as one is free, "
                    "so wait for it rather than start another."
                )
            ticket = _Ticket(owner, background, next(self._seq))
            self._waiting.append(ticket)
        told: QueueStatus | None = None
        told_at = 0.0
        try:
            while True:
                with self._cond:
                    if self._closed:
                        raise WorkerError("The worker pool has been closed; start the run again.")
                    now = time.monotonic()
                    if self._next(now) is ticket and (self._idle or self._count < self.size):
                        self._waiting.remove(ticket)
                        worker = self._take(model_sha, owner)
                        self._running[id(worker)] = (owner, background, now)
                        worker.should_yield = self._yield_check(worker)
                        self._cond.notify_all()
                        return worker
                    remaining = None if deadline is None else deadline - now
                    if remaining is not None and remaining <= 0:
                        raise WorkerError(f"All {self.size} workers are busy; try the run again in a moment.")
                    status = self._status(ticket, now) if on_wait is not None else None
                    if status is None or (told is not None and status.place == told.place and now - told_at < 1.0):
                        self._cond.wait(min(1.0, remaining) if remaining is not None else 1.0)
                        continue
                # Outside the lock: the callback may draw a page.
                told, told_at = status, now
                on_wait(status)
        finally:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                    self._cond.notify_all()

    def _take(self, model_sha: str | None, owner: Hashable) -> Worker:
        for key, w in self._idle.items():
            if model_sha is not None and w.model_sha == model_sha and w.owner == owner:
                return self._idle.pop(key)
        if self._count < self.size:
            self._count += 1
            return Worker(self.limits)
        return self._idle.popitem(last=False)[1]  # the least recently used: restarted for this caller

    def _yield_check(self, worker: Worker) -> Callable[[], bool]:
        """Whether a batch on ``worker`` should stop early: it has had its worker for the run limit
        while a run of another owner waits."""
        def should_yield() -> bool:
            with self._cond:
                held = self._running.get(id(worker))
                if held is None:
                    return False
                owner, _, since = held
                if time.monotonic() - since < self.limits.run_seconds:
                    return False
                return any(not t.background and (t.owner != owner or owner is None) for t in self._waiting)
        return should_yield

    def release(self, worker: Worker) -> None:
        with self._cond:
            held = self._running.pop(id(worker), None)
            worker.should_yield = None
            if held is not None:
                owner, _, since = held
                now = time.monotonic()
                self._usage[owner] = (self._used(owner, now) + (now - since), now)
                if len(self._usage) > 4096:  # forget the sessions that have used least
                    for key in sorted(self._usage, key=lambda k: self._usage[k][0])[:1024]:
                        del self._usage[key]
            if self._closed:
                worker.close()
                self._count -= 1
            else:
                self._idle[id(worker)] = worker
            self._cond.notify_all()

    # -- running ----------------------------------------------------------------------------------

    def run(
        self,
        model_bytes: bytes,
        spec: ModelSpec,
        feed: Feed,
        signature: str | None = None,
        *,
        owner: Hashable = None,
        keep_state: bool = False,
        expect_more: bool = False,
        on_wait: Callable[[QueueStatus], None] | None = None,
    ) -> RunResult:
        """Run ``feed`` in a worker for ``owner`` (see ``Worker.run`` and ``acquire``)."""
        worker = self.acquire(spec.sha256, owner=owner, on_wait=on_wait)
        try:
            return worker.run(model_bytes, spec, feed, signature, owner=owner, keep_state=keep_state, expect_more=expect_more)
        finally:
            self.release(worker)

    def trace(
        self,
        model_bytes: bytes,
        spec: ModelSpec,
        feed: Feed,
        signature: str | None = None,
        *,
        owner: Hashable = None,
        on_wait: Callable[[QueueStatus], None] | None = None,
        **options: Any,
    ) -> tuple[RunResult, P.Traced | None]:
        """``Worker.trace`` in a worker for ``owner`` (see ``acquire``); ``options`` go to it."""
        worker = self.acquire(spec.sha256, owner=owner, on_wait=on_wait)
        try:
            return worker.trace(model_bytes, spec, feed, signature, owner=owner, **options)
        finally:
            self.release(worker)

    def pids(self) -> list[int]:
        """Process ids of the idle workers (for tools that watch or place them, like the benchmark)."""
        with self._cond:
            return [w.pid for w in self._idle.values() if w.alive and w.pid is not None]

    # -- checking a model -------------------------------------------------------------------------

    def check_model(
        self, model_bytes: bytes, spec: ModelSpec, *, owner: Hashable = None, timeout: float | None = None,
        prepare_trace: bool = False,
    ) -> ModelCheck:
        """Whether the model loads and allocates its tensors in a worker (no invoke), waiting for it.

        Cached per model (SHA-256): asking again costs nothing. Raises ``TimeoutError`` when the
        check has not finished within ``timeout`` seconds (it goes on in the background).
        """
        return self.start_check(model_bytes, spec, owner=owner, prepare_trace=prepare_trace).result(timeout)

    def start_check(
        self, model_bytes: bytes, spec: ModelSpec, *, owner: Hashable = None, prepare_trace: bool = False
    ) -> CheckJob:
        """``check_model`` in the background: poll the job's ``done()``, then read ``result()``.

        The check runs in a worker for ``owner``, which then holds the model loaded, so the
        owner's first run finds it warm; it waits behind every waiting run. A model already
        checked returns its finished job at once (and, the first time a new owner asks, loads
        the model for it in the background if the pool has a slot no process holds yet).
        ``prepare_trace``: that worker also builds what a trace of the model's main graph builds
        first (``trace.preparation``; small models only), before the job ends.
        """
        sha = spec.sha256
        with self._cond:
            job = self._checks.get(sha)
            if job is not None:
                self._checks.move_to_end(sha)
        if job is not None:
            if job.done():
                self._warm(model_bytes, spec, owner, prepare_trace)
            return job
        refused = _memory_refusal(spec, Feed({}), self.limits)
        if refused is not None:
            job = CheckJob(result=_check_result(refused, spec))
        else:
            job = CheckJob()

            def check() -> None:
                try:
                    worker = self.acquire(sha, owner=owner, background=True)
                except WorkerError as exc:
                    job._finish(ModelCheck(status="skipped", detail=str(exc), sha256=sha))
                    with self._cond:
                        if self._checks.get(sha) is job:
                            del self._checks[sha]  # not a result about the model: ask again next time
                    return
                try:
                    checked = worker.check(model_bytes, spec, owner=owner)
                    if checked.status == "ok" and prepare_trace:
                        # Before the job ends, so that a run asked for when the check shows finds
                        # this worker free (a few ms more: the marked copy is about a load).
                        _prepare_for_trace(worker, model_bytes, spec, owner)
                    job._finish(checked)
                except Exception as exc:  # the job must end whatever happens (a worker that cannot start)
                    job._finish(ModelCheck(status="skipped", detail=f"The check could not run: {exc}", sha256=sha))
                    with self._cond:
                        if self._checks.get(sha) is job:
                            del self._checks[sha]
                finally:
                    self.release(worker)

            job._thread = threading.Thread(target=check, name="lite-debug-check", daemon=True)
        with self._cond:
            self._checks[sha] = job
            while len(self._checks) > 256:
                self._checks.popitem(last=False)
        if job._thread is not None:
            job._thread.start()
        return job

    def prewarm(self, model_bytes: bytes, spec: ModelSpec, *, owner: Hashable = None, prepare_trace: bool = True) -> CheckJob:
        """Check the model in the background (``start_check``), which also loads it into a worker
        for ``owner``, so the first run is warm, and (``prepare_trace``) readies that worker for
        the first trace. Never blocks the caller."""
        return self.start_check(model_bytes, spec, owner=owner, prepare_trace=prepare_trace)

    def _warm(self, model_bytes: bytes, spec: ModelSpec, owner: Hashable, prepare_trace: bool) -> None:
        """Load a checked model for ``owner`` in the background, once, and only into a worker slot
        no process holds yet: sessions asking on every rerun must not take each other's warm
        workers in turn (each taking would start a process)."""
        with self._cond:
            key = (owner, spec.sha256)
            if key in self._warmed or self._count >= self.size:
                return
            self._warmed[key] = None
            while len(self._warmed) > 1024:
                self._warmed.popitem(last=False)
        if _memory_refusal(spec, Feed({}), self.limits) is not None:
            return

        def load() -> None:
            try:
                worker = self.acquire(spec.sha256, timeout=0, owner=owner, background=True)
            except WorkerError:
                return
            try:
                if worker.ensure_model(model_bytes, spec, owner=owner) is None and prepare_trace:
                    _prepare_for_trace(worker, model_bytes, spec, owner)
            finally:
                self.release(worker)

        threading.Thread(target=load, name="lite-debug-prewarm", daemon=True).start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = list(self._idle.values())
            self._idle.clear()
            self._count -= len(idle)
            self._cond.notify_all()
        for w in idle:
            w.close()


def _prepare_for_trace(worker: Worker, model_bytes: bytes, spec: ModelSpec, owner: Hashable) -> None:
    """After a background check or load: the marked copy a trace of the model's main graph
    would build first, built now while nobody waits (see ``trace.preparation``)."""
    from .trace import preparation

    try:
        fields = preparation(spec)
        if fields is not None:
            worker.prepare_trace(model_bytes, spec, owner=owner, **fields)
    except Exception:  # best effort: a trace builds it anyway, and says what fails
        pass


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
    owner: Hashable = None,
    keep_state: bool = False,
) -> RunResult:
    """Run the model on ``inputs`` in a worker process and return what happened.

    ``inputs`` is bound to the model's inputs as ``diagnose`` binds it; nothing is fixed here, so
    data the interpreter refuses comes back as ``status="error"`` with its explanation. Each run
    starts from a fresh state unless ``keep_state``. Raises ``ModelLoadError`` when the bytes are
    not a model and ``WorkerError`` when no worker can start.
    """
    spec = spec or inspect_model(model_bytes)
    feed = bind(spec, inputs, signature)
    return (pool or default_pool()).run(model_bytes, spec, feed, signature, owner=owner, keep_state=keep_state)
