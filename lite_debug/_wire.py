"""The pipe between the dashboard's process and a worker: length-prefixed frames on a socket.

Requests (server -> worker) are pickles: the worker trusts the process that started it, and
arrays in them are pickled as their raw bytes (dtype, shape, buffer) rather than through numpy's
``__reduce__`` (13 µs for a small array over the two sides against 4 µs). Replies (worker ->
server) are frames that ``_protocol`` encodes and checks; the server never unpickles anything a
worker sends, never reads a frame longer than its cap, and never waits past its deadline for the
rest of one (``recv_frame``).

``multiprocessing.connection.Connection.poll`` builds a selector on every call, which is a
measurable share of a 1 ms run; a socket with a timeout waits in the kernel instead.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import socket
import struct
import sys
import time
from typing import Any, Sequence

from ._protocol import ProtocolError

_HEADER = struct.Struct("<Q")
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def _array(dtype: str, shape: tuple, buffer: Any) -> Any:
    """Rebuild an array pickled by ``_reduce_array``: writable, as numpy's own pickling gives."""
    import numpy as np

    if isinstance(buffer, bytes):  # a read-only array's buffer comes back as bytes
        buffer = bytearray(buffer)
    return np.ndarray(shape, dtype, buffer=buffer)


def _reduce_array(a: Any) -> Any:
    import numpy as np

    if a.dtype.hasobject or a.dtype.names is not None or a.dtype.subdtype is not None:
        return a.__reduce_ex__(pickle.HIGHEST_PROTOCOL)  # numpy's way, which handles these
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    # Protocol 5 writes the buffer in-band once, and a writable one loads as a bytearray.
    return _array, (a.dtype.str, a.shape, pickle.PickleBuffer(a))


_pickler: Any = None


def _dumps(obj: Any) -> bytes:
    """``pickle.dumps``, with plain ndarrays as raw buffers once numpy is imported (before
    that, no message can hold one, and this module does not import numpy for nothing)."""
    global _pickler
    if _pickler is None:
        np = sys.modules.get("numpy")
        if np is None:
            return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

        class _Pickler(pickle.Pickler):
            dispatch_table = {**copyreg.dispatch_table, np.ndarray: _reduce_array}

        _pickler = _Pickler
    buf = io.BytesIO()
    _pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


class Stalled(TimeoutError):
    """A frame started but its rest did not come by the deadline."""


class Channel:
    """Send and receive frames over a connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._timeout: float | None = -1.0  # unknown: set on first use

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj: Any) -> None:
        """Send one pickled object (a request); raises ``OSError`` (``BrokenPipeError``) when the
        other end is gone."""
        self.send_parts([_dumps(obj)])

    def send_parts(self, parts: Sequence[Any]) -> None:
        """Send one frame made of ``parts`` (bytes-like), without joining large ones in memory."""
        size = sum(memoryview(p).nbytes for p in parts)
        self._set_timeout(None)
        if size < 65536:
            self.sock.sendall(b"".join([_HEADER.pack(size), *parts]))
            return
        self.sock.sendall(_HEADER.pack(size))
        for p in parts:
            self.sock.sendall(p)

    def recv(self, timeout: float | None = None, spin: float = 0.0) -> Any:
        """Receive one pickled object. Only for the worker's side: a worker's replies are read
        with ``recv_frame`` and decoded by ``_protocol``, never unpickled. ``TimeoutError``
        when none starts within ``timeout`` seconds, ``EOFError`` when the other end has closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return pickle.loads(self.recv_frame(deadline, spin=spin, whole_by_deadline=False))

    def recv_frame(
        self,
        deadline: float | None = None,
        spin: float = 0.0,
        max_size: int | None = None,
        whole_by_deadline: bool = True,
        start_by: float | None = None,
    ) -> bytearray:
        """Receive one frame's bytes.

        ``TimeoutError`` when no frame has started by ``start_by`` (default: ``deadline``, both
        ``time.monotonic()`` times); ``Stalled`` (a ``TimeoutError``) when, with
        ``whole_by_deadline``, a frame that started has not been read whole by ``deadline``: a
        sender that stops in the middle of a frame does not hold the caller past it.
        ``ProtocolError`` when the frame announces more than ``max_size`` bytes (nothing is
        allocated for it). ``EOFError`` when the other end has closed.

        ``spin``: poll for up to that many seconds before sleeping in the kernel. Waking a
        process that sleeps costs tens to hundreds of microseconds (more on a virtual machine
        whose idle CPU has halted), which is a third of a 1 ms run's round trip; a short poll
        for an answer that is due anyway avoids it. Each poll is a system call, so the GIL is
        released between them.
        """
        first = self._poll(spin) if spin > 0 else b""
        if not first:
            wait_until = deadline if start_by is None else start_by
            self._set_timeout(None if wait_until is None else max(0.0, wait_until - time.monotonic()))
            try:
                first = self.sock.recv(_HEADER.size)
            except socket.timeout:
                raise TimeoutError from None
        if not first:
            raise EOFError("the other end closed the channel")
        until = deadline if whole_by_deadline else None
        header = first + self._exactly(_HEADER.size - len(first), until) if len(first) < _HEADER.size else first
        (size,) = _HEADER.unpack(header)
        if max_size is not None and size > max_size:
            raise ProtocolError(f"A frame announces {size} bytes, over the {max_size}-byte limit.")
        return self._exactly(size, until)

    def _poll(self, seconds: float) -> bytes:
        """The start of a message if one arrives within ``seconds``, else b"" (nothing read)."""
        # MSG_DONTWAIT makes each try non-blocking by itself, on a socket left blocking:
        # switching the socket's mode is a system call each way.
        flags = _DONTWAIT
        self._set_timeout(None if flags else 0.0)
        until = time.perf_counter() + seconds
        recv, size, perf = self.sock.recv, _HEADER.size, time.perf_counter
        try:
            while True:
                try:
                    first = recv(size, flags)
                except BlockingIOError:
                    if perf() >= until:
                        return b""
                    continue
                if not first:
                    raise EOFError("the other end closed the channel")
                return first
        finally:
            self._set_timeout(None)

    def pending(self) -> bool:
        """Whether a frame has started to arrive (nothing is read)."""
        self._set_timeout(None)
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK | _DONTWAIT))
        except BlockingIOError:
            return False

    def _exactly(self, n: int, deadline: float | None = None) -> bytearray:
        buf = bytearray(n)
        if n == 0:
            return buf
        view = memoryview(buf)
        got = 0
        if _DONTWAIT:
            # Most frames are there already: one non-blocking read, no timeout set up for it.
            self._set_timeout(None)
            try:
                got = self.sock.recv_into(view, n, _DONTWAIT)
            except BlockingIOError:
                got = -1
            if got == 0:
                raise EOFError("the other end closed the channel in the middle of a message")
            got = max(got, 0)
        while got < n:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Stalled("the rest of the frame did not come in time")
                self._set_timeout(remaining)
            else:
                self._set_timeout(None)
            try:
                k = self.sock.recv_into(view[got:], n - got)
            except socket.timeout:
                raise Stalled("the rest of the frame did not come in time") from None
            if k == 0:
                raise EOFError("the other end closed the channel in the middle of a message")
            got += k
        return buf

    def _set_timeout(self, timeout: float | None) -> None:
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def close(self) -> None:
        self.sock.close()
