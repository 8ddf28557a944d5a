"""Hostile archives built by hand, small enough to build in a test.

A central-directory bomb needs no 207 MB file: what matters is what the end records declare
and how many records the directory really holds, and every directory record may point at the
same tiny local file, as the real bombs do.
"""

from __future__ import annotations

import zipfile

import io
import struct
import tarfile
import zlib

_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR = struct.Struct("<4sLQL")


def central_directory_bomb(records: int, *, declared: int | None = None, zip64: bool = False, prefix: bytes = b"") -> bytes:
    """A zip of one empty local file and ``records`` directory records all pointing at it.

    ``declared`` is the entry count the end record(s) give (``records`` by default); with
    ``zip64`` the count goes into a ZIP64 end record and the classic one says 0xFFFF.
    ``prefix`` goes before the zip (a flatbuffer, for a model that packs it): offsets stay
    relative to the zip, as TFLite Support writes them.
    """
    name = b"a"
    crc = zlib.crc32(b"")
    local = _LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 0, crc, 0, 0, len(name), 0) + name
    record = _CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, 0, 0, len(name), 0, 0, 0, 0, 0, 0) + name
    directory = record * records
    count = records if declared is None else declared
    cd_offset = len(local)
    tail = b""
    if zip64 or count > 0xFFFF:
        eocd64_offset = cd_offset + len(directory)
        tail += _EOCD64.pack(b"PK\x06\x06", _EOCD64.size - 12, 45, 45, 0, 0, count, count, len(directory), cd_offset)
        tail += _LOCATOR.pack(b"PK\x06\x07", 0, eocd64_offset, 1)
        tail += _EOCD.pack(b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        tail += _EOCD.pack(b"PK\x05\x06", 0, 0, count, count, len(directory), cd_offset, 0)
    return prefix + local + directory + tail


def many_member_tar(members: int, *, compress: bool = True) -> bytes:
    """A tar of ``members`` empty files, gzip-compressed by default.

    Compressed as concatenated gzip members, each the same block of 2048 headers compressed
    once, so that two million members cost a few megabytes and no time to build.
    """
    header = tarfile.TarInfo("f").tobuf(format=tarfile.USTAR_FORMAT)
    end = b"\0" * 1024
    if not compress:
        return header * members + end
    per = 2048
    block = zlib.compress(header * per, 1, wbits=31)
    rest = members % per
    return block * (members // per) + zlib.compress(header * rest + end, 1, wbits=31)


def gzip_bomb(size: int, *, members: int = 1) -> bytes:
    """A gzip of ``size`` zero bytes in ``members`` concatenated gzip members (one, the classic bomb)."""
    per = size // members
    d = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = io.BytesIO()
    block = b"\0" * (1 << 20)
    left = per
    while left > 0:
        n = min(left, len(block))
        out.write(d.compress(block[:n]))
        left -= n
    out.write(d.flush())
    return out.getvalue() * members


def count_directory_parses(monkeypatch) -> list:
    """The zipfile objects that parse a central directory from now on (for tests that a bomb is
    refused before zipfile reads its directory: the list stays empty)."""
    parsed = []
    original = zipfile.ZipFile._RealGetContents

    def counting(self):
        parsed.append(self)
        return original(self)

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", counting)
    return parsed
