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


# -- a reader for whole passes over a file ------------------------------------------------------

_VTABLE_PAD = (0,) * 32
_INTS: dict[int, struct.Struct] = {}


def unpacker(count: int, fmt: str):
    """``struct.Struct(f"<{count}{fmt}").unpack_from``, cached for the counts that recur."""
    key = (count, fmt)
    s = _INTS.get(key)
    if s is None:
        s = struct.Struct(f"<{count}{fmt}")
        if len(_INTS) < 4096:
            _INTS[key] = s
    return s.unpack_from


class Budget:
    """What a pass over a file may read in all, in bytes: twice the file, and 64 KiB more.

    Every vector, string and table a pass reads is charged. Each object of a well-formed file
    lies at its own place, so reading each once costs at most the file's size; only a file
    whose fields point at the same bytes again and again (a crafted one) can spend more, and
    ``charge`` stops it there instead of letting the work grow with the square of its size.
    """

    def __init__(self, size: int, what: str) -> None:
        self.limit = 2 * size + 65536
        self.spent = 0
        self.what = what

    def over(self) -> str:
        return (
            f"{self.what} refers to the same bytes again and again (more than {self.limit:,} bytes "
            "read for its size); no converter or metadata writer does that, so the file is crafted or corrupt, "
            "and lite-debug stops reading it."
        )


def aliased(owner: str, what: str, n: int, distinct: int):
    """The ``ModelLoadError`` for a list whose entries name the same table more than once."""
    from .errors import ModelLoadError

    return ModelLoadError(
        f"{owner}'s {what} has {n:,} entries naming only {distinct:,} distinct table{'s' if distinct != 1 else ''}; "
        "a converter writes each entry once, so the file is crafted or corrupt, and lite-debug does not read it further."
    )


class Reader(Flat):
    """``Flat`` for passes over every table of a kind (all tensors, all operators, metadata).

    Adds what such a pass needs to stay bounded by the file's size: vtables decoded once and
    cached, vectors of tables whose entries must each name a table of their own
    (``tables``), and a ``Budget`` charged for every vector and string read.
    """

    def __init__(self, buf, what: str = "The model") -> None:
        super().__init__(buf)
        self.budget = Budget(self.size, what)
        self._vtables: dict[int, tuple[int, ...]] = {}

    def charge(self, nbytes: int) -> None:
        b = self.budget
        b.spent += nbytes
        if b.spent > b.limit:
            from .errors import ModelLoadError

            raise ModelLoadError(b.over())

    def slots(self, table: int) -> tuple[int, ...]:
        """The field offsets of ``table`` (0: absent), indexed by ``(slot - 4) // 2``, at least 32 long."""
        buf = self.buf
        if table < 0 or table + 4 > self.size:
            raise ValueError(f"offset {table} is outside the {self.size}-byte buffer")
        vt = table - _I32(buf, table)[0]
        got = self._vtables.get(vt)
        if got is None:
            if vt < 0:
                raise ValueError(f"offset {vt} is outside the {self.size}-byte buffer")
            n = max(0, (_U16(buf, vt)[0] - 4) // 2)
            got = unpacker(n, "H")(buf, vt + 4) + _VTABLE_PAD
            self._vtables[vt] = got
            self.charge(4 + 2 * n)
        return got

    def u32_at(self, pos: int) -> int:
        return _U32(self.buf, pos)[0]

    def target(self, table: int, offset: int) -> int:
        """Where the offset field at ``table + offset`` points (0 when ``offset`` is 0)."""
        if not offset:
            return 0
        p = table + offset
        return p + _U32(self.buf, p)[0]

    def tables(self, start: int, n: int, what: str) -> list[int]:
        """Positions of the ``n`` tables of a vector of tables at ``start``.

        ``what`` names the list in the error (``"operator list of subgraph 0"``). Raises
        ``ModelLoadError`` when two entries name the same table: a converter writes each tensor,
        operator or subgraph once, and a file that lists one table a million times would
        otherwise cost a million reads of it.
        """
        if not n:
            return []
        self.charge(4 * n + 4)
        self._at(start, 4 * n)
        offs = unpacker(n, "I")(self.buf, start)
        positions = [p + o for p, o in zip(range(start, start + 4 * n, 4), offs)]
        distinct = len(set(positions))
        if distinct != n:
            raise aliased(self.budget.what, what, n, distinct)
        if max(positions) + 4 > self.size:
            raise ValueError(f"a table of the {what} lies outside the {self.size}-byte buffer")
        return positions

    def vec(self, table: int, offset: int, fmt: str, width: int) -> tuple:
        """The scalar vector at field ``offset`` of ``table`` (``()`` when absent), charged."""
        if not offset:
            return ()
        p = table + offset
        v = p + _U32(self.buf, p)[0]
        n = _U32(self.buf, v)[0]
        if not n:
            return ()
        self.charge(4 + n * width)
        return unpacker(n, fmt)(self.buf, v + 4)

    def text(self, table: int, offset: int) -> str:
        """The string at field ``offset`` of ``table`` (``""`` when absent), charged."""
        if not offset:
            return ""
        p = table + offset
        s = p + _U32(self.buf, p)[0]
        n = _U32(self.buf, s)[0]
        if s + 4 + n > self.size:
            raise ValueError(f"a string at {s} runs past the end of the {self.size}-byte buffer")
        self.charge(4 + n)
        return str(self.buf[s + 4 : s + 4 + n], "utf-8", "replace")
