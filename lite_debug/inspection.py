"""Read what a model expects — inputs, outputs, signatures, operators — without running it.

``inspect_model`` reads the flatbuffer in pure Python (``_flat``: one ``struct`` call per
field, every offset checked), so a hostile or corrupt file costs at most an exception here;
the interpreter itself only ever runs in a worker process (see ``running``). The result is
the same information ``get_input_details()`` and ``get_output_details()`` give, as typed
records. What takes a pass over the whole file (the graph, the operator inventory, the memory
estimate, the metadata, the hash) is read on first use, by ``graph`` and ``metadata``. Work is
bounded by the file's size: lists whose entries name one table twice are refused, and what is
read is charged against twice the file's size (``_flat.Budget``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zipfile
import zlib
from typing import TYPE_CHECKING

from ._flat import Budget, Flat, Reader, unpacker
from ._schema import NUMPY_NAMES, tensor_type_names
from .errors import ModelLoadError
from .records import ModelDetails, ModelSpec, PackedFile, Quantization, SignatureSpec, TensorSpec

if TYPE_CHECKING:
    from .metadata import ModelMetadata

__all__ = ["as_buffer", "inspect_model", "model_sha256", "packed_file"]

_U32 = struct.Struct("<I").unpack_from
_IDENTIFIER = b"TFL3"
# What zipfile and zlib raise on a damaged packed archive (NotImplementedError: an unknown zip
# version; RuntimeError: an encrypted member; zlib.error: a corrupt deflate stream).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError, RuntimeError)
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
# Field indices ((slot - 4) // 2) for ``Reader.slots``: Model.Metadata, Metadata.Name.
_M_METADATA, _MD_NAME = 6, 0
_SG_TENSORS = 4
_T_TYPE, _T_NAME, _T_QUANT = 6, 10, 12
_Q_DIMENSION = 16
_SD_INPUTS, _SD_OUTPUTS, _SD_KEY, _SD_SUBGRAPH = 4, 6, 8, 12
_TM_NAME, _TM_INDEX = 4, 6


class _Seen(Budget):
    """The tensors read so far, by (tensor list, index) and by table, and what reading cost."""

    def __init__(self, size: int) -> None:
        self.limit = 2 * size + 65536  # as Budget, written out: this is on every inspection's path
        self.spent = 0
        self.what = "The model"
        self.specs: dict[tuple[int, int], TensorSpec] = {}
        self.tables: dict[int, int] = {}

    def charge(self, nbytes: int) -> None:
        self.spent += nbytes
        if self.spent > self.limit:
            raise ModelLoadError(self.over())


def _tensor(flat: Flat, tensors: tuple[int, int], index: int, seen: _Seen) -> TensorSpec:
    key = (tensors[0], index)
    spec = seen.specs.get(key)
    if spec is not None:
        return spec
    if not 0 <= index < tensors[1]:
        raise ModelLoadError(f"The model refers to tensor {index}, but its graph has {tensors[1]}; the file is corrupt.")
    t = flat.element(tensors[0], tensors[1], index)
    if t in seen.tables:
        # Two entries of a tensor list name one table: no converter writes that, and a
        # crafted file could otherwise make a million inputs out of one tensor.
        raise ModelLoadError(
            f"The model's tensors {seen.tables[t]} and {index} are one and the same table; its tensor list "
            "repeats entries, which no converter writes, so the file is crafted or corrupt."
        )
    seen.tables[t] = index
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
    # what this tensor cost to read: see _flat.Budget
    seen.spent += 16 + 4 * (len(shape) + len(sig)) + 12 * len(quant.scale) + len(name)
    if seen.spent > seen.limit:
        raise ModelLoadError(seen.over())
    spec = TensorSpec(
        index=index,
        name=name,
        shape=shape,
        shape_signature=sig,
        dtype=NUMPY_NAMES.get(type_name, type_name.lower()),
        quantization=quant,
        tensor_name=name,
    )
    seen.specs[key] = spec
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
    seen = _Seen(len(data))  # a signature's tensors are mostly the graph's inputs and outputs again
    inputs = tuple(_tensor(flat, tensors, i, seen) for i in flat.scalars(main, _SG_INPUTS, "i", 4))
    outputs = tuple(_tensor(flat, tensors, i, seen) for i in flat.scalars(main, _SG_OUTPUTS, "i", 4))

    signatures = []
    defs = flat.vector(root, _M_SIGNATURES)
    tables: set[int] = set()  # signature defs and tensor maps met so far: each must be its own table

    def distinct(start: int, n: int, what: str) -> tuple[int, ...] | list[int]:
        if n <= 1:  # the usual signature and tensor map: one table, nothing it could repeat
            return (flat._at(start + _U32(data, flat._at(start, 4))[0], 4),) if n else ()
        # One struct call for the whole list: a crafted list of a million entries costs no
        # million calls before it is refused. Entries must name tables of their own, across
        # lists too (two signatures sharing one long list of tensors would read it twice).
        flat._at(start, 4 * n)
        offsets = unpacker(n, "I")(data, start)
        positions = [p + o for p, o in zip(range(start, start + 4 * n, 4), offsets)]
        before = len(tables)
        tables.update(positions)
        if len(tables) - before != n:
            raise ModelLoadError(
                f"The model's {what} point at the same table more than once, which no converter writes; "
                "the file is crafted or corrupt."
            )
        seen.charge(8 * n)
        if max(positions) + 4 > len(data):
            raise ValueError(f"a {what} table lies outside the {len(data)}-byte buffer")
        return positions

    n_defs = _vector_len(defs[1], data, "signatures")
    for sd in distinct(defs[0], n_defs, "signatures"):
        sub_index = flat.u32(sd, _SD_SUBGRAPH)
        if not 0 <= sub_index < n_sub:
            raise ModelLoadError(f"A signature points to subgraph {sub_index}, which the model lacks; the file is corrupt.")
        sub_tensors = flat.vector(flat.element(*subgraphs, sub_index), _SG_TENSORS)

        def side(slot: int) -> tuple[TensorSpec, ...]:
            start, n = flat.vector(sd, slot)
            _vector_len(n, data, "signature tensors")
            maps = distinct(start, n, "signature tensors")
            out = []
            for m in maps:
                name = flat.string(m, _TM_NAME).decode("utf-8", "replace")
                seen.spent += len(name)
                if seen.spent > seen.limit:
                    raise ModelLoadError(seen.over())
                out.append(dataclasses.replace(_tensor(flat, sub_tensors, flat.u32(m, _TM_INDEX), seen), name=name))
            return tuple(out)

        key = flat.string(sd, _SD_KEY).decode("utf-8", "replace")
        seen.charge(len(key))
        signatures.append(SignatureSpec(key=key, subgraph_index=sub_index, inputs=side(_SD_INPUTS), outputs=side(_SD_OUTPUTS)))

    return ModelSpec(
        size=len(data),
        schema_version=flat.u32(root, _M_VERSION),
        description=flat.string(root, _M_DESCRIPTION).decode("utf-8", "replace"),
        inputs=inputs,
        outputs=outputs,
        signatures=tuple(signatures),
        subgraph_count=n_sub,
        tensor_count=tensors[1],
        details=_LazyDetails(data),
    )


class _LazyDetails:
    """A spec's details, read on first use: called, everything that takes a pass over the model;
    ``sha256()`` and ``metadata()`` alone, for what needs only one of them (a diagnosis reads the
    metadata, a run the hash; neither should pay for the other or for the graph)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data

    def __call__(self) -> ModelDetails:
        return _details(self.data)

    def sha256(self) -> str:
        return model_sha256(self.data)

    def metadata(self) -> ModelMetadata | None:
        from .metadata import read_metadata

        return read_metadata(self.data)


def _details(data: bytes | memoryview) -> ModelDetails:
    """The parts of a spec that take a pass over the whole model; read on first use.

    The graph comes first and the rest does not depend on it: a model whose graph is corrupt or
    crafted still shows its packed files and metadata, with ``problem`` saying what is wrong.
    """
    from .graph import _read
    from .metadata import read_metadata

    problem = ""
    graph = None
    try:
        graph = _read(Reader(data))
    except ModelLoadError as exc:
        problem = str(exc)
    except _CORRUPT as exc:
        problem = f"Parts of the model past its inputs and outputs are corrupt ({type(exc).__name__} while reading them)."
    try:
        names = _metadata_names(data)
    except ModelLoadError as exc:
        names, problem = (), problem or str(exc)
    except _CORRUPT as exc:
        names = ()
        problem = problem or f"The model's list of metadata is corrupt ({type(exc).__name__} while reading it)."
    return ModelDetails(
        ops=graph.ops if graph else (),
        packed_files=_packed_files(data),
        metadata_names=names,
        activation_bytes=graph.activation_bytes() if graph else 0,
        problem=problem,
        graph=graph,
        metadata=read_metadata(data),
    )


def _metadata_names(data: bytes | memoryview) -> tuple[str, ...]:
    r = Reader(data)
    root = r.root()
    p = r.target(root, r.slots(root)[_M_METADATA])
    if not p:
        return ()
    return tuple(r.text(m, r.slots(m)[_MD_NAME]) for m in r.tables(p + 4, r.u32_at(p), "metadata list"))


def _zip(data: bytes | memoryview, max_files: int = 1000) -> zipfile.ZipFile | None:
    # TFLite Support packs associated files (labels, vocabularies) as a zip appended to the
    # flatbuffer; the end-of-central-directory record then sits in the last 64 KiB. zipfile
    # parses the whole central directory before anything can count it (a packed zip of 3
    # million entries took 40 s and 1.8 GB), so the count is read from the end records first;
    # a packed zip of more than `max_files` files is treated like a damaged one: as none, so
    # that the rest of the model (operators, memory estimate) is still described.
    from ._zipdir import DamagedDirectory, TooManyEntries, ViewReader, check_directory

    try:
        if check_directory(data, max_files) is None:
            return None
    except (TooManyEntries, DamagedDirectory):
        return None
    try:
        return zipfile.ZipFile(ViewReader(data))
    except _ZIP_ERRORS:
        return None


def _packed_files(data: bytes) -> tuple[PackedFile, ...]:
    archive = _zip(data)
    if archive is None:
        return ()
    with archive:
        return tuple(PackedFile(name=i.filename, size=i.file_size) for i in archive.infolist()[:1000] if not i.is_dir())
