"""Shared memory between the dashboard's process and a worker, for large tensors.

Pickling a 3 MB image through the pipe costs more than the model's invoke; instead each
worker shares one file-backed memory block (in /dev/shm where there is one) with its parent.
The parent writes large inputs into it, the worker's ``set_tensor`` copies them from there,
and after ``invoke`` the worker writes large outputs back into the same block (the inputs have
been consumed by then). Requests are strictly one at a time, so nothing else needs locking.
In requests, arrays travel as descriptors ``("shm", offset, dtype, shape)``; in replies, as
``_protocol``'s buffer descriptors, which the server checks against the region's size before
it reads them; small ones stay inline.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from typing import Any, Sequence

import numpy as np

THRESHOLD = 16 << 10  # arrays smaller than this are cheaper to pickle
_ALIGN = 64


def _shm_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class Region:
    """A block of memory mapped by both processes; the parent creates it, the worker attaches."""

    def __init__(self, path: str, size: int, create: bool) -> None:
        self.path, self.size = path, size
        flags = os.O_RDWR
        fd = os.open(path, flags)
        try:
            if create:
                os.ftruncate(fd, size)
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    @classmethod
    def create(cls, size: int) -> "Region":
        fd, path = tempfile.mkstemp(prefix="lite-debug-", dir=_shm_dir())
        os.close(fd)
        return cls(path, size, create=True)

    def unlink(self) -> None:
        """Remove the name; both mappings stay valid until closed."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        self.unlink()
        try:
            self.map.close()
        except (BufferError, ValueError):
            pass

    def put(self, arrays: Sequence[np.ndarray]) -> list[Any] | None:
        """Write arrays one after another; their descriptors, or None when they do not fit."""
        descs = self.reserve(arrays)
        if descs is not None:
            for d, a in zip(descs, arrays):
                self.write(d, a)
        return descs

    def reserve(self, arrays: Sequence[np.ndarray]) -> list[Any] | None:
        """Descriptors for arrays laid out one after another, nothing written yet; None when
        they do not fit."""
        offset, out = 0, []
        for a in arrays:
            a = np.asarray(a)
            end = offset + a.nbytes
            if end > self.size:
                return None
            out.append(("shm", offset, a.dtype.str, tuple(a.shape)))
            offset = (end + _ALIGN - 1) // _ALIGN * _ALIGN
        return out

    def write(self, desc: tuple, array: np.ndarray, start: int = 0, stop: int | None = None) -> None:
        """Copy ``array[start:stop]`` (rows along the first axis) to its place in the region."""
        target = self.view(desc)
        if target.ndim == 0:
            target[...] = array
        else:
            np.copyto(target[start:stop], np.asarray(array)[start:stop])

    def view(self, desc: tuple) -> np.ndarray:
        _, offset, dtype, shape = desc
        # An ndarray over the map, built directly: frombuffer + np.prod + reshape take 4 µs,
        # which is paid on both sides of every run.
        return np.ndarray(shape, dtype, buffer=self.map, offset=offset)


def needed(arrays: Sequence[np.ndarray]) -> int:
    return sum((int(np.asarray(a).nbytes) + _ALIGN) for a in arrays)


def is_desc(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 4 and value[0] == "shm"
