"""Count a zip's entries from its end records before ``zipfile`` reads its central directory.

``zipfile.ZipFile`` reads the whole central directory into memory and builds a ``ZipInfo`` for
every entry before anyone can look at the count: a 207 MB zip listing 4 million entries took
123 s and 2.2 GB to open (issue 15 item 5). ``check_directory`` reads the end-of-central-directory
record (and the ZIP64 one) the way ``zipfile`` finds them, refuses a declared count over the
limit at once, and then walks at most ``limit + 1`` records of the directory itself, because
``zipfile`` trusts the directory's byte size, not the declared count: a record that lies about
the count is caught by the walk, in time proportional to the limit.

Shared by the archive reader, the bundle reader and the packed-file reader of ``inspection``;
each turns these exceptions into its own sentence.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

__all__ = ["Directory", "DamagedDirectory", "TooManyEntries", "ViewReader", "check_directory", "find_directory"]

_EOCD = b"PK\x05\x06"
_EOCD_STRUCT = struct.Struct("<4s4H2LH")  # signature, disks, entries here, entries, size, offset, comment
_LOCATOR = b"PK\x06\x07"
_LOCATOR_STRUCT = struct.Struct("<4sLQL")  # signature, disk of the ZIP64 record, its offset, disks
_EOCD64 = b"PK\x06\x06"
_EOCD64_STRUCT = struct.Struct("<4sQ2H2L4Q")  # signature, size, versions, disks, entries here, entries, size, offset
_CENTRAL = b"PK\x01\x02"
_CENTRAL_SIZE = 46
_MAX_COMMENT = 1 << 16


class TooManyEntries(Exception):
    """The directory holds more entries than the limit: ``count`` as declared, or ``limit + 1`` counted."""

    def __init__(self, count: int, limit: int, declared: bool) -> None:
        super().__init__(f"{count} entries, more than {limit}")
        self.count, self.limit, self.declared = count, limit, declared


class DamagedDirectory(Exception):
    """The end records or the central directory are missing, truncated or inconsistent."""


@dataclass(frozen=True)
class Directory:
    """Where ``zipfile`` will read the central directory, and the entry count the end record declares."""

    declared: int
    start: int
    size: int
    zip64: bool
    end: int  # offset of the end-of-central-directory record


def find_directory(data: bytes | memoryview) -> Directory | None:
    """The central directory as ``zipfile._EndRecData`` locates it, or None when no end record exists.

    Mirrors zipfile on purpose: the record checked must be the one zipfile then reads. Looks at
    the last 64 KiB + 22 bytes and at most one ZIP64 record; never copies more. Raises
    ``DamagedDirectory`` for a zip that spans several disks (zipfile refuses those too).
    """
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    size = len(view)
    n = _EOCD_STRUCT.size
    if size < n:
        return None
    tail = bytes(view[size - n :])
    if tail[:4] == _EOCD and tail[-2:] == b"\0\0":
        end = size - n
    else:
        start = max(size - _MAX_COMMENT - n, 0)
        found = bytes(view[start:]).rfind(_EOCD)
        if found < 0 or start + found + n > size:
            return None
        end = start + found
    _, _, _, here, total, cd_size, cd_offset, _ = _EOCD_STRUCT.unpack_from(view, end)
    declared, zip64 = max(here, total), False
    loc = end - _LOCATOR_STRUCT.size
    if loc >= 0:
        sig, disk, _, disks = _LOCATOR_STRUCT.unpack_from(view, loc)
        if sig == _LOCATOR:
            if disk != 0 or disks > 1:
                raise DamagedDirectory("it spans several disks")
            rec = loc - _EOCD64_STRUCT.size
            if rec >= 0:
                fields = _EOCD64_STRUCT.unpack_from(view, rec)
                if fields[0] == _EOCD64:
                    declared, cd_size, zip64 = max(fields[6], fields[7]), fields[8], True
    # zipfile reads the directory from just before the end records, whatever offset they give
    # (a zip may sit behind other bytes, such as a flatbuffer that packs it).
    start = end - cd_size - ((_EOCD64_STRUCT.size + _LOCATOR_STRUCT.size) if zip64 else 0)
    return Directory(declared=declared, start=start, size=cd_size, zip64=zip64, end=end)


def check_directory(data: bytes | memoryview, limit: int) -> list[bytes] | None:
    """Check the entry count before any zipfile parsing; return the raw entry names, or None.

    None means ``data`` has no end-of-central-directory record. Raises ``TooManyEntries`` when
    the end record declares more than ``limit`` entries, or when the directory holds more
    records than that (counting stops at ``limit + 1``), and ``DamagedDirectory`` when the
    directory is not where the end record says or a record is cut short. Reads at most
    ``limit + 1`` records; names are returned as stored (bytes), NUL bytes included, since
    zipfile cuts a name at its first NUL.
    """
    directory = find_directory(data)
    if directory is None:
        return None
    if directory.declared > limit:
        raise TooManyEntries(directory.declared, limit, declared=True)
    if directory.start < 0:
        raise DamagedDirectory("its central directory would start before the file does")
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    stop = directory.start + directory.size
    pos, names = directory.start, []
    while pos < stop:
        if len(names) == limit:
            raise TooManyEntries(limit + 1, limit, declared=False)
        if pos + _CENTRAL_SIZE > len(view):
            raise DamagedDirectory("its central directory is cut short")
        if bytes(view[pos : pos + 4]) != _CENTRAL:
            raise DamagedDirectory("its central directory holds a record that is not a file entry")
        name_len, extra_len, comment_len = struct.unpack_from("<3H", view, pos + 28)
        names.append(bytes(view[pos + _CENTRAL_SIZE : pos + _CENTRAL_SIZE + name_len]))
        pos += _CENTRAL_SIZE + name_len + extra_len + comment_len
    return names


class ViewReader(io.RawIOBase):
    """A read-only, seekable file over a buffer, for zipfile: io.BytesIO would copy a memoryview."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: len(self.view)}[whence]
        if base + offset < 0:
            raise OSError("seek before the start of the file")  # what zipfile expects of a real file
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        chunk = self.view[self.pos : self.pos + len(buffer)]
        n = len(chunk)
        memoryview(buffer).cast("B")[:n] = chunk
        self.pos += n
        return n
