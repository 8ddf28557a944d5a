"""Crafted TFLite files for the graph, metadata and hardening tests.

Two ways of making a model no converter would write:

- ``chain_model(n)`` builds a valid model with the schema's object API: one input, then ``n``
  ADD operators each adding its own constant, so ``2 n + 1`` tensors. The interpreter loads it.
- byte surgery on a finished file (``alias_vector``, ``share_vector``): a new vector appended at
  the end of the file and a field re-pointed at it. A flatbuffer offset is unsigned and points
  forward, so anything appended after the tables can be reached from every one of them.

Nothing here reads the files back with lite-debug: the tests do that.
"""

from __future__ import annotations

import io
import struct
import zipfile

import flatbuffers
import numpy as np

from lite_debug._flat import Flat
from lite_debug._schema import schema

__all__ = [
    "add_metadata",
    "alias_vector",
    "chain_model",
    "field_position",
    "operator_table",
    "pack_model",
    "raw_table",
    "share_vector",
    "tensor_table",
    "unpack_model",
    "vector_of",
]


def unpack_model(data: bytes):
    fb = schema()
    return fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))


def pack_model(model) -> bytes:
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tensor(fb, name: str, shape, buffer: int = 0, dtype: int = 0):
    t = fb.TensorT()
    t.name, t.shape, t.buffer, t.type = name.encode(), list(shape), buffer, dtype
    return t


def chain_model(n_ops: int, width: int = 4) -> bytes:
    """A valid model: ``x`` [1, width] float32, then ``n_ops`` ADDs of a constant each."""
    fb = schema()
    model = fb.ModelT()
    model.version = 3
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.ADD
    code.version = 1
    model.operatorCodes = [code]
    empty = fb.BufferT()
    model.buffers = [empty, fb.BufferT()]
    sub = fb.SubGraphT()
    sub.tensors = [_tensor(fb, "x", (1, width), 1)]
    sub.operators = []
    for i in range(n_ops):
        buf = fb.BufferT()
        buf.data = np.full(width, 0.5, np.float32).view(np.uint8)
        model.buffers.append(buf)
        sub.tensors.append(_tensor(fb, f"c{i}", (width,), len(model.buffers) - 1))
        model.buffers.append(fb.BufferT())
        sub.tensors.append(_tensor(fb, f"y{i}", (1, width), len(model.buffers) - 1))
        op = fb.OperatorT()
        op.opcodeIndex = 0
        prev = 0 if i == 0 else len(sub.tensors) - 3
        op.inputs, op.outputs = [prev, len(sub.tensors) - 2], [len(sub.tensors) - 1]
        op.builtinOptionsType = fb.BuiltinOptions.AddOptions
        op.builtinOptions = fb.AddOptionsT()
        sub.operators.append(op)
    sub.inputs = [0]
    sub.outputs = [len(sub.tensors) - 1]
    sub.name = b"main"
    model.subgraphs = [sub]
    model.description = b"chain"
    return pack_model(model)


def field_position(data: bytes, path: list[tuple[str, int, int]]) -> int:
    """Where the offset field at the end of ``path`` sits: each step is (kind, slot, index).

    ``("table", slot, 0)`` follows a table field; ``("vector", slot, i)`` takes element ``i`` of
    a vector of tables; the last step names the field itself (its index is ignored).
    """
    flat = Flat(data)
    table = flat.root()
    for kind, slot, index in path[:-1]:
        if kind == "table":
            table = flat.table(table, slot)
        else:
            table = flat.element(*flat.vector(table, slot), index)
    pos = flat.field(table, path[-1][1])
    if not pos:
        raise ValueError(f"the field at {path} is absent")
    return pos


def _pad(data: bytearray, align: int = 16) -> None:
    data.extend(b"\0" * (-len(data) % align))


def raw_table(fields: list[tuple[int, str, object]]) -> callable:
    """A table written by hand: ``fields`` are (slot, kind, value), kind one of ``i8``, ``u32``,
    ``i32``, ``ints`` (a vector of int32) or ``str``. Returns ``lay(at) -> (bytes, table offset)``
    that lays the vtable, the table and its vectors out from position ``at`` (4-aligned).
    """

    def lay(at: int) -> tuple[bytes, int]:
        n_slots = max((slot - 4) // 2 + 1 for slot, _, _ in fields) if fields else 0
        vt_size = 4 + 2 * n_slots
        vt_padded = vt_size + (-vt_size % 4)
        obj_size = 4 + 4 * len(fields)
        table = at + vt_padded
        tail = bytearray()
        inline = bytearray(struct.pack("<i", table - at))  # soffset: table - vtable
        slots = [0] * n_slots
        tail_at = table + obj_size
        for i, (slot, kind, value) in enumerate(fields):
            field_at = table + 4 + 4 * i
            slots[(slot - 4) // 2] = 4 + 4 * i
            if kind == "i8":
                inline += struct.pack("<bxxx", value)
            elif kind == "u32":
                inline += struct.pack("<I", value)
            elif kind == "i32":
                inline += struct.pack("<i", value)
            else:
                target = tail_at + len(tail)
                inline += struct.pack("<I", target - field_at)
                if kind == "ints":
                    tail += struct.pack(f"<I{len(value)}i", len(value), *value)
                else:
                    raw = value.encode()
                    tail += struct.pack("<I", len(raw)) + raw + b"\0"
                    tail += b"\0" * (-len(tail) % 4)
        vtable = struct.pack(f"<HH{n_slots}H", vt_size, obj_size, *slots) + b"\0" * (vt_padded - vt_size)
        return vtable + bytes(inline) + bytes(tail), vt_padded

    return lay


def tensor_table(name: str, shape=(1, 4), buffer: int = 0, dtype: int = 0):
    """A minimal Tensor table (shape, type, buffer, name) for ``alias_vector``."""
    return raw_table([(4, "ints", list(shape)), (6, "i8", dtype), (8, "u32", buffer), (10, "str", name)])


def operator_table(opcode: int, inputs, outputs):
    """A minimal Operator table (opcode index, inputs, outputs) for ``alias_vector``."""
    return raw_table([(4, "u32", opcode), (6, "ints", list(inputs)), (8, "ints", list(outputs))])


def alias_vector(data: bytes, field: int, copies: int, table) -> bytes:
    """Re-point the vector-of-tables field at ``field`` to ``copies`` entries naming one new table.

    ``table`` is a ``raw_table`` layout; it is appended after the new vector, since an entry's
    unsigned offset can only point forward.
    """
    out = bytearray(data)
    _pad(out)
    vec = len(out)
    table_bytes, table_offset = table(vec + 4 + 4 * copies)
    target = vec + 4 + 4 * copies + table_offset
    out += struct.pack("<I", copies)
    # entry i sits at vec + 4 + 4 i and holds the distance to the table
    entries = target - (vec + 4 + 4 * np.arange(copies, dtype=np.int64))
    out += entries.astype("<u4").tobytes()
    out += table_bytes
    struct.pack_into("<I", out, field, vec - field)
    return bytes(out)


def vector_of(data: bytes, field: int, values: np.ndarray) -> bytes:
    """Re-point the scalar-vector field at ``field`` to a new vector of ``values`` (e.g. ``<i4``)."""
    return share_vector(data, [field], values)


def share_vector(data: bytes, fields: list[int], values: np.ndarray) -> bytes:
    """Append one vector of ``values`` and point every field in ``fields`` at it."""
    out = bytearray(data)
    _pad(out)
    vec = len(out)
    values = np.ascontiguousarray(values)
    out += struct.pack("<I", len(values)) + values.tobytes()
    for f in fields:
        struct.pack_into("<I", out, f, vec - f)
    return bytes(out)


def add_metadata(model_bytes: bytes, metadata: bytes, files: dict[str, bytes] | None = None, name: str = "TFLITE_METADATA") -> bytes:
    """Attach ``metadata`` as the model's metadata buffer ``name``, and pack ``files`` in a trailing zip.

    What TFLite Support's metadata writer does: a new buffer holding the metadata flatbuffer, a
    ``Metadata`` entry naming it, the model packed again, then the associated files as a zip
    archive appended to the flatbuffer.
    """
    fb = schema()
    model = unpack_model(model_bytes)
    buf = fb.BufferT()
    buf.data = np.frombuffer(metadata, np.uint8)
    model.buffers.append(buf)
    entry = fb.MetadataT()
    entry.name, entry.buffer = name.encode(), len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != name.encode()] + [entry]
    out = pack_model(model)
    if files:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
            for member, content in files.items():
                zf.writestr(zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0)), content)
        out += archive.getvalue()
    return out


# -- flatbuffers written by hand (the metadata tests) ----------------------------------------------


def write_table(builder: flatbuffers.Builder, fields: list[tuple[int, str, object]]) -> int:
    """Write one table with ``flatbuffers.Builder``: ``fields`` are (field index, kind, value).

    Kinds: ``str``, ``i8``, ``u8``, ``i32``, ``u32``, ``f32`` scalars; ``table`` (value: its
    fields), ``tables`` (a list of those), ``strings``, ``floats``, ``u32s``, ``bytes``
    vectors. Children are written first, as flatbuffers requires.
    """
    offsets = {}
    for i, kind, value in fields:
        if kind == "str":
            offsets[i] = builder.CreateString(value)
        elif kind == "table":
            offsets[i] = write_table(builder, value)
        elif kind in ("tables", "strings"):
            children = [write_table(builder, v) if kind == "tables" else builder.CreateString(v) for v in value]
            builder.StartVector(4, len(children), 4)
            for c in reversed(children):
                builder.PrependUOffsetTRelative(c)
            offsets[i] = builder.EndVector()
        elif kind in ("floats", "u32s"):
            builder.StartVector(4, len(value), 4)
            for v in reversed(value):
                (builder.PrependFloat32 if kind == "floats" else builder.PrependUint32)(v)
            offsets[i] = builder.EndVector()
        elif kind == "bytes":
            offsets[i] = builder.CreateByteVector(value)
    builder.StartObject(max((i for i, _, _ in fields), default=-1) + 1)
    for i, kind, value in fields:
        if i in offsets:
            builder.PrependUOffsetTRelativeSlot(i, offsets[i], 0)
        else:
            {
                "i8": builder.PrependInt8Slot, "u8": builder.PrependUint8Slot, "i32": builder.PrependInt32Slot,
                "u32": builder.PrependUint32Slot, "f32": builder.PrependFloat32Slot,
            }[kind](i, value, 0)
    return builder.EndObject()


def flatbuffer(root: list[tuple[int, str, object]], identifier: bytes = b"M001") -> bytes:
    """A whole flatbuffer whose root table is ``root`` (see ``write_table``)."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(write_table(builder, root), file_identifier=identifier)
    return bytes(builder.Output())
