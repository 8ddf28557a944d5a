"""A minimal reader for the few flatbuffer fields inspection needs at once.

The generated accessors read one field through several Python calls each; the inputs and
outputs of a model take a few hundred of them, which is most of what inspecting costs. This
reads the same fields with one ``struct`` call each. Offsets are checked against the buffer, so
a corrupt file raises ``ValueError`` or ``struct.error`` (never reads outside it). Field slots
are those of the schema (``schema_py_generated``: ``Tensor.Shape`` reads ``Offset(4)``, …).
"""

from __future__ import annotations

import struct

_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U16 = struct.Struct("<H").unpack_from
_I8 = struct.Struct("<b").unpack_from


class Flat:
    """Tables of one buffer, addressed by their position."""

    def __init__(self, buf) -> None:
        self.buf = buf
        self.size = len(buf)

    def _at(self, pos: int, width: int) -> int:
        if pos < 0 or pos + width > self.size:
            raise ValueError(f"offset {pos} is outside the {self.size}-byte buffer")
        return pos

    def root(self) -> int:
        return self._at(_U32(self.buf, 0)[0], 4)

    def field(self, table: int, slot: int) -> int:
        """Where a field of ``table`` is, or 0 when it is absent (its default applies)."""
        # The hottest call of inspection (about 20 per model): the bounds checks of ``_at``
        # are written out here rather than called.
        buf, size = self.buf, self.size
        if table < 0 or table + 4 > size:
            raise ValueError(f"offset {table} is outside the {size}-byte buffer")
        vtable = table - _I32(buf, table)[0]
        if vtable < 0 or vtable + 4 > size:
            raise ValueError(f"offset {vtable} is outside the {size}-byte buffer")
        if slot >= _U16(buf, vtable)[0]:
            return 0
        off = _U16(buf, vtable + slot)[0]  # past the end (a lying vtable size): struct.error
        return table + off if off else 0

    def u32(self, table: int, slot: int, default: int = 0) -> int:
        p = self.field(table, slot)
        return _U32(self.buf, self._at(p, 4))[0] if p else default

    def i8(self, table: int, slot: int, default: int = 0) -> int:
        p = self.field(table, slot)
        return _I8(self.buf, self._at(p, 1))[0] if p else default

    def i32(self, table: int, slot: int, default: int = 0) -> int:
        p = self.field(table, slot)
        return _I32(self.buf, self._at(p, 4))[0] if p else default

    def table(self, table: int, slot: int) -> int:
        p = self.field(table, slot)
        return self._at(p + _U32(self.buf, self._at(p, 4))[0], 4) if p else 0

    def vector(self, table: int, slot: int) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent."""
        p = self.field(table, slot)
        if not p:
            return 0, 0
        v = self._at(p + _U32(self.buf, self._at(p, 4))[0], 4)
        return v + 4, _U32(self.buf, v)[0]

    def scalars(self, table: int, slot: int, fmt: str, width: int) -> tuple:
        start, n = self.vector(table, slot)
        if not n:
            return ()
        self._at(start, n * width)
        return struct.unpack_from(f"<{n}{fmt}", self.buf, start)

    def element(self, start: int, n: int, i: int) -> int:
        """The table at index ``i`` of a vector of tables."""
        if not 0 <= i < n:
            raise ValueError(f"index {i} is outside a vector of {n}")
        p = self._at(start + 4 * i, 4)
        return self._at(p + _U32(self.buf, p)[0], 4)

    def string(self, table: int, slot: int) -> bytes:
        p = self.field(table, slot)
        if not p:
            return b""
        s = self._at(p + _U32(self.buf, self._at(p, 4))[0], 4)
        n = _U32(self.buf, s)[0]
        return bytes(self.buf[self._at(s + 4, n) : s + 4 + n])
