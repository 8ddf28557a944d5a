"""The pipe between the dashboard's process and a worker: length-prefixed pickles on a socket.

``multiprocessing.connection.Connection.poll`` builds a selector on every call, which is a
measurable share of a 1 ms run; a socket with a timeout waits in the kernel instead. Only our
own processes are on either end (a socketpair made by the parent), so unpickling is safe.
"""

from __future__ import annotations

import pickle
import socket
import struct
import time
from typing import Any

_HEADER = struct.Struct("<Q")


class Channel:
    """Send and receive whole Python objects over a connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._timeout: float | None = -1.0  # unknown: set on first use

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj: Any) -> None:
        """Send one object; raises ``OSError`` (``BrokenPipeError``) when the other end is gone."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
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
        self._set_timeout(0.0)
        until = time.perf_counter() + seconds
        try:
            while True:
                try:
                    first = self.sock.recv(_HEADER.size)
                except BlockingIOError:
                    if time.perf_counter() >= until:
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
