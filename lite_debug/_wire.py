"""The pipe between the dashboard's process and a worker: length-prefixed pickles on a socket.

``multiprocessing.connection.Connection.poll`` builds a selector on every call, which is a
measurable share of a 1 ms run; a socket with a timeout waits in the kernel instead. Only our
own processes are on either end (a socketpair made by the parent), so unpickling is safe.

Arrays are pickled as their raw bytes (dtype, shape, buffer): numpy's own pickling goes
through ``__reduce__`` and a reconstruct call, 13 µs for a small output on the two sides
against 4 µs, and a 1 ms run returns at least one.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import socket
import struct
import sys
import time
from typing import Any

_HEADER = struct.Struct("<Q")


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


class Channel:
    """Send and receive whole Python objects over a connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._timeout: float | None = -1.0  # unknown: set on first use

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj: Any) -> None:
        """Send one object; raises ``OSError`` (``BrokenPipeError``) when the other end is gone."""
        data = _dumps(obj)
        self._set_timeout(None)
        self.sock.sendall(_HEADER.pack(len(data)) + data if len(data) < 65536 else _HEADER.pack(len(data)))
        if len(data) >= 65536:
            self.sock.sendall(data)

    def recv(self, timeout: float | None = None, spin: float = 0.0) -> Any:
        """Receive one object. ``TimeoutError`` when none starts within ``timeout`` seconds,
        ``EOFError`` when the other end has closed.

        ``spin``: poll for up to that many seconds before sleeping in the kernel. Waking a
        process that sleeps costs tens to hundreds of microseconds (more on a virtual machine
        whose idle CPU has halted), which is a third of a 1 ms run's round trip; a short poll
        for an answer that is due anyway avoids it. Each poll is a system call, so the GIL is
        released between them.
        """
        first = self._poll(spin) if spin > 0 else b""
        if not first:
            self._set_timeout(timeout)
            try:
                first = self.sock.recv(_HEADER.size)
            except socket.timeout:
                raise TimeoutError from None
        if not first:
            raise EOFError("the other end closed the channel")
        self._set_timeout(None)  # a message has started: read the rest of it
        header = first + self._exactly(_HEADER.size - len(first)) if len(first) < _HEADER.size else first
        (size,) = _HEADER.unpack(header)
        return pickle.loads(self._exactly(size))

    def _poll(self, seconds: float) -> bytes:
        """The start of a message if one arrives within ``seconds``, else b"" (nothing read)."""
        # MSG_DONTWAIT makes each try non-blocking by itself, on a socket left blocking:
        # switching the socket's mode is a system call each way.
        flags = getattr(socket, "MSG_DONTWAIT", 0)
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

    def _exactly(self, n: int) -> bytes | bytearray:
        if n == 0:
            return b""
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
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
