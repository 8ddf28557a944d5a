"""Read what a model expects — inputs, outputs, signatures, operators — without running it.

``inspect_model`` parses the flatbuffer with the pure-Python schema module, so a hostile or
corrupt file costs at most an exception here; the interpreter itself only ever runs in a worker
process (see ``running``). The result is the same information ``get_input_details()`` and
``get_output_details()`` give, as typed records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import zipfile
import zlib

from ._flat import Flat
from ._schema import NUMPY_NAMES, builtin_op_names, schema, tensor_type_names
from .errors import ModelLoadError
from .records import ModelDetails, ModelSpec, OpInfo, PackedFile, Quantization, SignatureSpec, TensorSpec

__all__ = ["as_buffer", "inspect_model", "model_sha256", "packed_file"]

_IDENTIFIER = b"TFL3"
# What zipfile and zlib raise on a damaged packed archive (NotImplementedError: an unknown zip
# version; RuntimeError: an encrypted member; zlib.error: a corrupt deflate stream).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError, RuntimeError)
_CUSTOM = 32
# Error types that the generated flatbuffer accessors raise on out-of-range offsets.
_CORRUPT = (IndexError, struct.error, ValueError, TypeError, AttributeError, OverflowError, UnicodeDecodeError)


def model_sha256(model_bytes: bytes) -> str:
    return hashlib.sha256(model_bytes).hexdigest()


def as_buffer(model_bytes: bytes | bytearray | memoryview) -> bytes | memoryview:
    """The bytes as they are, or a flat byte view of another buffer: never a copy."""
    if isinstance(model_bytes, bytes):
        return model_bytes
    view = memoryview(model_bytes)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def inspect_model(model_bytes: bytes | memoryview, *, name: str = "the model") -> ModelSpec:
    """Describe a ``.tflite`` model from its bytes (or any buffer, such as an upload's view).

    Reads the flatbuffer in place (no copy of ``model_bytes``). Raises ``ModelLoadError`` with
    one sentence when the bytes are empty, truncated, or not a TFLite model.
    """
    data = as_buffer(model_bytes)
    _check_header(data, name)
    try:
        return _inspect(data)
    except ModelLoadError:
        raise
    except _CORRUPT as exc:
        raise ModelLoadError(
            f"{_cap(name)} starts like a TFLite model but its flatbuffer is corrupt or truncated "
            f"({type(exc).__name__} while reading it); download or convert it again."
        ) from None


def packed_file(model_bytes: bytes | memoryview, member: str, *, max_bytes: int = 16 << 20) -> bytes:
    """Return one file packed into the model's trailing zip (such as ``labels.txt``).

    Raises ``KeyError`` when the model packs no such file, ``ModelLoadError`` when it is too big.
    """
    archive = _zip(as_buffer(model_bytes))
    if archive is None:
        raise KeyError(member)
    with archive:
        info = archive.getinfo(member)
        if info.file_size > max_bytes:
            raise ModelLoadError(f"The packed file {member!r} is {info.file_size} bytes, over the {max_bytes}-byte limit.")
        try:
            with archive.open(info) as fh:
                return fh.read(max_bytes + 1)[:max_bytes]
        except _ZIP_ERRORS as exc:
            raise ModelLoadError(f"The packed file {member!r} cannot be read ({exc}).") from None


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _check_header(data: bytes | memoryview, name: str) -> None:
    size = len(data)
    if not size:
        raise ModelLoadError(f"{_cap(name)} is empty (0 bytes); check that the upload or download finished.")
    data = bytes(data[:64])  # what the checks below look at: a copy of 64 bytes at most
    if data.startswith(b"version https://git-lfs"):
        raise ModelLoadError(
            f"{_cap(name)} is a Git LFS pointer, not the model; run `git lfs pull` to fetch the real file."
        )
    if len(data) < 8 or data[4:8] != _IDENTIFIER:
        head = data[:64].lstrip().lower()
        if head.startswith((b"<!doctype", b"<html")):
            what = "an HTML page (probably a download page saved instead of the model)"
        elif data[:2] == b"PK":
            what = "a zip archive (if it is a lite-debug bundle, open it as a bundle)"
        elif data[:8] == b"\x89HDF\r\n\x1a\n":
            what = "a Keras/HDF5 file; convert it with tf.lite.TFLiteConverter first"
        elif size < 8:
            what = f"only {size} bytes long"
        else:
            what = "not a TFLite flatbuffer (bytes 4–8 are not 'TFL3')"
        raise ModelLoadError(f"{_cap(name)} is {what}; upload a .tflite file.")
    (root,) = struct.unpack_from("<I", data, 0)
    if root >= size - 4:
        raise ModelLoadError(f"{_cap(name)} is truncated: its root table points past the end of the file.")


def _vector_len(n: int, data: bytes, what: str) -> int:
    # Each element costs at least 4 bytes, so a length beyond that is a corrupt offset; refusing
    # it here keeps a crafted file from making us loop over billions of phantom entries.
    if n < 0 or n * 4 > len(data):
        raise ModelLoadError(f"The model claims {n} {what}, more than its size allows; the file is corrupt.")
    return n


# Field slots in the schema's vtables (schema_py_generated: Tensor.Shape reads Offset(4), …).
_T_SHAPE, _T_SIGNATURE, _Q_SCALE, _Q_ZERO_POINT = 4, 18, 8, 10
_SG_INPUTS, _SG_OUTPUTS = 6, 8


_NO_QUANTIZATION = Quantization()


# Slots of the fields read at once (see _flat.py): Model, SubGraph, Tensor, QuantizationParameters,
# SignatureDef, TensorMap.
_M_VERSION, _M_SUBGRAPHS, _M_DESCRIPTION, _M_SIGNATURES = 4, 8, 10, 18
_SG_TENSORS = 4
_T_TYPE, _T_NAME, _T_QUANT = 6, 10, 12
_Q_DIMENSION = 16
_SD_INPUTS, _SD_OUTPUTS, _SD_KEY, _SD_SUBGRAPH = 4, 6, 8, 12
_TM_NAME, _TM_INDEX = 4, 6


def _tensor(flat: Flat, tensors: tuple[int, int], index: int, cache: dict) -> TensorSpec:
    key = (tensors[0], index)
    if key in cache:
        return cache[key]
    if not 0 <= index < tensors[1]:
        raise ModelLoadError(f"The model refers to tensor {index}, but its graph has {tensors[1]}; the file is corrupt.")
    t = flat.element(tensors[0], tensors[1], index)
    shape = flat.scalars(t, _T_SHAPE, "i", 4)
    sig = flat.scalars(t, _T_SIGNATURE, "i", 4) or shape
    type_code = flat.i8(t, _T_TYPE)
    type_name = tensor_type_names().get(type_code, f"TYPE_{type_code}")
    quant = _NO_QUANTIZATION
    q = flat.table(t, _T_QUANT)
    if q:
        scale = flat.scalars(q, _Q_SCALE, "f", 4)
        if scale:
            zp = flat.scalars(q, _Q_ZERO_POINT, "q", 8) or (0,) * len(scale)
            quant = Quantization(scale=scale, zero_point=zp, quantized_dimension=flat.i32(q, _Q_DIMENSION))
    name = flat.string(t, _T_NAME).decode("utf-8", "replace")
    spec = TensorSpec(
        index=index,
        name=name,
        shape=shape,
        shape_signature=sig,
        dtype=NUMPY_NAMES.get(type_name, type_name.lower()),
        quantization=quant,
        tensor_name=name,
    )
    cache[key] = spec
    return spec


def _inspect(data: bytes | memoryview) -> ModelSpec:
    flat = Flat(data)
    root = flat.root()
    subgraphs = flat.vector(root, _M_SUBGRAPHS)
    n_sub = _vector_len(subgraphs[1], data, "subgraphs")
    if n_sub == 0:
        raise ModelLoadError("The model has no subgraph, so there is nothing to run; convert it again.")
    main = flat.element(*subgraphs, 0)
    tensors = flat.vector(main, _SG_TENSORS)
    _vector_len(tensors[1], data, "tensors")
    seen: dict = {}  # a signature's tensors are mostly the graph's inputs and outputs again
    inputs = tuple(_tensor(flat, tensors, i, seen) for i in flat.scalars(main, _SG_INPUTS, "i", 4))
    outputs = tuple(_tensor(flat, tensors, i, seen) for i in flat.scalars(main, _SG_OUTPUTS, "i", 4))

    signatures = []
    defs = flat.vector(root, _M_SIGNATURES)
    for s in range(_vector_len(defs[1], data, "signatures")):
        sd = flat.element(*defs, s)
        sub_index = flat.u32(sd, _SD_SUBGRAPH)
        if not 0 <= sub_index < n_sub:
            raise ModelLoadError(f"A signature points to subgraph {sub_index}, which the model lacks; the file is corrupt.")
        sub_tensors = flat.vector(flat.element(*subgraphs, sub_index), _SG_TENSORS)

        def side(slot: int) -> tuple[TensorSpec, ...]:
            start, n = flat.vector(sd, slot)
            _vector_len(n, data, "signature tensors")
            maps = [flat.element(start, n, j) for j in range(n)]
            return tuple(
                dataclasses.replace(
                    _tensor(flat, sub_tensors, flat.u32(m, _TM_INDEX), seen),
                    name=flat.string(m, _TM_NAME).decode("utf-8", "replace"),
                )
                for m in maps
            )

        key = flat.string(sd, _SD_KEY).decode("utf-8", "replace")
        signatures.append(SignatureSpec(key=key, subgraph_index=sub_index, inputs=side(_SD_INPUTS), outputs=side(_SD_OUTPUTS)))

    def details() -> ModelDetails:
        model = schema().Model.GetRootAs(data, 0)
        return _details(model, n_sub, data)

    return ModelSpec(
        size=len(data),
        schema_version=flat.u32(root, _M_VERSION),
        description=flat.string(root, _M_DESCRIPTION).decode("utf-8", "replace"),
        inputs=inputs,
        outputs=outputs,
        signatures=tuple(signatures),
        subgraph_count=n_sub,
        tensor_count=tensors[1],
        details=details,
    )


def _details(model, n_sub: int, data: bytes) -> ModelDetails:
    """The parts of a spec that take a pass over the whole model; read on first use."""
    try:
        metadata = tuple(
            (model.Metadata(i).Name() or b"").decode("utf-8", "replace")
            for i in range(_vector_len(model.MetadataLength(), data, "metadata entries"))
        )
        return ModelDetails(
            ops=_op_inventory(model, n_sub, data),
            packed_files=_packed_files(data),
            metadata_names=metadata,
            activation_bytes=_activation_bytes(model, n_sub, data),
            sha256=model_sha256(data),
        )
    except ModelLoadError as exc:
        return ModelDetails(sha256=model_sha256(data), problem=str(exc))
    except _CORRUPT as exc:
        return ModelDetails(
            sha256=model_sha256(data),
            problem=f"Parts of the model past its inputs and outputs are corrupt ({type(exc).__name__} while reading them).",
        )


_ITEMSIZE = {
    "FLOAT32": 4, "FLOAT16": 2, "FLOAT64": 8, "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8, "UINT8": 1,
    "UINT16": 2, "UINT32": 4, "UINT64": 8, "BOOL": 1, "COMPLEX64": 8, "COMPLEX128": 16, "BFLOAT16": 2,
}


def _activation_bytes(model, n_sub: int, data: bytes) -> int:
    """An upper bound of the memory ``allocate_tensors`` asks for: every non-constant tensor.

    The interpreter's arena reuses memory between tensors that are not alive at once, so the
    real figure is lower; a crafted model that declares a gigantic tensor shows up here before
    anything is allocated. Dynamic dimensions count as 1, as the interpreter allocates them.
    """
    types = tensor_type_names()
    n_buffers = model.BuffersLength()
    total = 0
    for s in range(n_sub):
        sub = model.Subgraphs(s)
        for i in range(_vector_len(sub.TensorsLength(), data, "tensors")):
            t = sub.Tensors(i)
            b = int(t.Buffer())
            if 0 < b < n_buffers:
                buf = model.Buffers(b)
                if buf.DataLength() or buf.Size():
                    continue  # a constant: its bytes are in the model already
            count = 1
            for d in (t.ShapeAsNumpy() if t.ShapeLength() else ()):
                count *= max(1, int(d))
            total += count * _ITEMSIZE.get(types.get(t.Type(), ""), 4)
    return total


def _op_inventory(model, n_sub: int, data: bytes) -> tuple[OpInfo, ...]:
    names = builtin_op_names()
    codes = []
    for i in range(_vector_len(model.OperatorCodesLength(), data, "operator codes")):
        oc = model.OperatorCodes(i)
        # Schema v3a moved builtin codes past 127 into a new field and left the old one at its
        # maximum as a placeholder: the larger of the two is the real code.
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code == _CUSTOM:
            custom = (oc.CustomCode() or b"").decode("utf-8", "replace")
            kind = "flex" if custom.startswith("Flex") else "custom"
            codes.append((custom or "CUSTOM", kind, int(oc.Version())))
        else:
            codes.append((names.get(code, f"BUILTIN_{code}"), "builtin", int(oc.Version())))
    counts: dict[int, int] = {}
    for s in range(n_sub):
        sub = model.Subgraphs(s)
        for j in range(_vector_len(sub.OperatorsLength(), data, "operators")):
            idx = int(sub.Operators(j).OpcodeIndex())
            counts[idx] = counts.get(idx, 0) + 1
    ops = []
    for idx, count in counts.items():
        if not 0 <= idx < len(codes):
            raise ModelLoadError(f"An operator uses opcode {idx}, which the model does not define; the file is corrupt.")
        name, kind, version = codes[idx]
        ops.append(OpInfo(name=name, kind=kind, count=count, version=version))
    # Unusual ops first (what stops the model), then by how often they occur.
    order = {"flex": 0, "custom": 1, "builtin": 2}
    return tuple(sorted(ops, key=lambda o: (order[o.kind], -o.count, o.name)))


class _Reader(io.RawIOBase):
    """A read-only file over a buffer, for zipfile: io.BytesIO would copy a memoryview."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.view = memoryview(data)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: len(self.view)}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        chunk = self.view[self.pos : self.pos + len(buffer)]
        n = len(chunk)
        memoryview(buffer).cast("B")[:n] = chunk
        self.pos += n
        return n


def _zip(data: bytes | memoryview, max_files: int = 1000) -> zipfile.ZipFile | None:
    # TFLite Support packs associated files (labels, vocabularies) as a zip appended to the
    # flatbuffer; the end-of-central-directory record then sits in the last 64 KiB. zipfile
    # parses the whole central directory before anything can count it (a packed zip of 3
    # million entries took 40 s and 1.8 GB), so the count is read from the end records first;
    # a packed zip of more than `max_files` files is treated like a damaged one: as none, so
    # that the rest of the model (operators, memory estimate) is still described.
    from ._zipdir import DamagedDirectory, TooManyEntries, check_directory

    try:
        if check_directory(data, max_files) is None:
            return None
    except (TooManyEntries, DamagedDirectory):
        return None
    try:
        return zipfile.ZipFile(_Reader(data))
    except _ZIP_ERRORS:
        return None


def _packed_files(data: bytes) -> tuple[PackedFile, ...]:
    archive = _zip(data)
    if archive is None:
        return ()
    with archive:
        return tuple(PackedFile(name=i.filename, size=i.file_size) for i in archive.infolist()[:1000] if not i.is_dir())
