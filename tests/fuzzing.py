"""Deterministic mutators that make broken and hostile inputs for lite-debug's fuzz tests.

Every mutant comes from one integer seed: ``model_mutant(seed)``, ``data_mutant(seed)`` and
``bundle_mutant(seed)`` build the same bytes from the same seed (with this version of this file),
so the seed in a failure message is the whole reproduction::

    from fuzzing import model_mutant
    m = model_mutant(2000123)      # m.data is the .tflite, m.label() says what was changed

Families and the seed ranges ``seeds()`` hands out:

- ``model-bytes`` (1_000_000 +): bit flips, byte overwrites, truncation, insertion, deletion,
  splicing two models, at positions biased away from weight data (flips in weights are valid
  models, and teach us nothing), and a damaged zip of associated files appended to the model;
- ``model-schema`` (2_000_000 +): one to three edits through the flatbuffer object API
  (tensor types, shapes, buffers, operator codes and indices, subgraph inputs and outputs,
  quantization, buffers, signature defs), re-packed with ``flatbuffers.Builder``;
- ``data`` (3_000_000 +): ``.npy`` header edits, ``.npz`` archives, corrupt PNG/JPEG/BMP, odd
  CSV and JSON, raw bytes with odd dtypes and shapes;
- ``bundle`` (4_000_000 +): bundles with odd member names, missing members, corrupt manifests,
  bomb-like members, and damaged zip structure.

The seed models (``SEED_MODELS``) are the gallery's and the test fixtures; a seed means the same
mutant for as long as those files and this module stay as they are. Nothing here runs a model.
"""

from __future__ import annotations

import io
import json
import math
import random
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import flatbuffers
import numpy as np
from PIL import Image

from lite_debug._schema import schema
from lite_debug.bundle import BundleLimits, write_bundle
from lite_debug.records import Feed, OutputTensor, RunResult

__all__ = [
    "FAMILIES",
    "Mutant",
    "bundle_mutant",
    "data_mutant",
    "model_mutant",
    "model_seeds",
    "pack_model",
    "seeds",
    "unpack_model",
]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = ROOT / "lite_debug" / "examples"

FAMILIES = {"model-bytes": 1_000_000, "model-schema": 2_000_000, "data": 3_000_000, "bundle": 4_000_000}


@dataclass(frozen=True, eq=False)
class Mutant:
    """One fuzz input: its bytes, and how they were made (enough to reproduce and to report)."""

    seed: int
    family: str
    kind: str  # the mutator, e.g. "tensor.type" or "npy.shape"
    description: str  # what it changed, e.g. "subgraph 0 tensor 3: type 0 -> 19"
    source: str  # the seed file
    data: bytes
    name: str  # the file name a user would upload (its extension picks the loader)
    options: Mapping[str, Any] = field(default_factory=dict)  # extra keyword arguments for the reader

    def label(self) -> str:
        return f"seed {self.seed} ({self.family}/{self.kind} of {self.source}: {self.description})"


def seeds(family: str, count: int, offset: int = 0) -> list[int]:
    """``count`` seeds of one family; ``offset`` explores other mutants of the same family."""
    base = FAMILIES[family] + offset
    return list(range(base, base + count))


def family_of(seed: int) -> str:
    for name, base in sorted(FAMILIES.items(), key=lambda kv: -kv[1]):
        if seed >= base:
            return name
    raise ValueError(f"seed {seed} belongs to no family")


def mutant(seed: int) -> Mutant:
    """The mutant of any family, by seed."""
    return {"model-bytes": model_mutant, "model-schema": model_mutant, "data": data_mutant, "bundle": bundle_mutant}[
        family_of(seed)
    ](seed)


# -- seed models ------------------------------------------------------------------------------


# Named, not globbed: a seed picks its model by position in this list, so a fixture added to
# the repository must not change what every seed means. Add new models at the end.
SEED_MODELS = (
    "add_float.tflite",
    "autoencoder_two_signatures.tflite",
    "big_tile.tflite",
    "digit_classifier_uint8.tflite",
    "gather_table.tflite",
    "image_classifier.tflite",
    "matrix_determinant_custom.tflite",
    "matrix_inverse_flex.tflite",
    "reshape_fixed_batch.tflite",
    "segmenter.tflite",
    "slow_loop.tflite",
    "tile_by_input.tflite",
    "tiny_classifier_int8.tflite",
    "two_inputs.tflite",
)


@lru_cache(maxsize=1)
def model_seeds() -> tuple[tuple[str, bytes], ...]:
    """The seed models by name: the gallery's and the test fixtures (not the saved fuzz crashers)."""
    found = []
    for name in SEED_MODELS:
        path = EXAMPLES / name if (EXAMPLES / name).exists() else FIXTURES / name
        found.append((name, path.read_bytes()))
    return tuple(found)


def unpack_model(data: bytes):
    fb = schema()
    return fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))


def pack_model(model) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@lru_cache(maxsize=None)
def _weight_ranges(name: str) -> tuple[tuple[int, int], ...]:
    """Byte ranges of the model's constant buffers, which byte mutations mostly avoid."""
    data = dict(model_seeds())[name]
    model = schema().Model.GetRootAs(data, 0)
    ranges = []
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        n = buf.DataLength()
        if n >= 64:
            o = flatbuffers.number_types.UOffsetTFlags.py_type(buf._tab.Offset(4))
            start = buf._tab.Vector(o)
            ranges.append((start, start + n))
    return tuple(ranges)


# -- model bytes ------------------------------------------------------------------------------

_INTERESTING_BYTES = (
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"\x01\x00\x00\x00",
    b"\x00\x00\x01\x00",
)


def _position(rng: random.Random, source: str, size: int) -> int:
    weights = _weight_ranges(source)
    for _ in range(20):
        pos = rng.randrange(size)
        if rng.random() < 0.1 or not any(a <= pos < b for a, b in weights):
            return pos
    return rng.randrange(size)


def _bytes_mutation(rng: random.Random, source: str, data: bytes) -> tuple[str, bytes, str]:
    kind = rng.choice(["bitflip", "overwrite", "truncate", "insert", "delete", "splice", "packed_zip"])
    out = bytearray(data)
    if kind == "packed_zip":
        packed, what = _packed_zip(rng)
        return kind, data + packed, what
    if kind == "bitflip":
        flips = sorted({_position(rng, source, len(out)) * 8 + rng.randrange(8) for _ in range(rng.randint(1, 8))})
        for bit in flips:
            out[bit // 8] ^= 1 << (bit % 8)
        return kind, bytes(out), f"flipped bits {flips}"
    if kind == "overwrite":
        what = []
        for _ in range(rng.randint(1, 4)):
            pos = _position(rng, source, len(out))
            value = rng.choice(_INTERESTING_BYTES + (bytes(rng.randrange(256) for _ in range(4)),))
            out[pos : pos + len(value)] = value
            what.append(f"{value.hex()}@{pos}")
        return kind, bytes(out[: len(data)]), "overwrote " + ", ".join(what)
    if kind == "truncate":
        cut = rng.randrange(1, len(out))
        return kind, bytes(out[:cut]), f"kept the first {cut} of {len(data)} bytes"
    if kind == "insert":
        pos = _position(rng, source, len(out))
        junk = bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 4, 8, 37])))
        return kind, bytes(out[:pos] + junk + out[pos:]), f"inserted {junk.hex()} at {pos}"
    if kind == "delete":
        pos = _position(rng, source, len(out))
        n = rng.choice([1, 2, 4, 8, 64])
        return kind, bytes(out[:pos] + out[pos + n :]), f"deleted {n} bytes at {pos}"
    other_name, other = rng.choice(model_seeds())
    a, b = rng.randrange(8, len(data)), rng.randrange(8, len(other))
    return kind, data[:a] + other[b:], f"first {a} bytes, then {other_name} from byte {b}"


def _packed_zip(rng: random.Random) -> tuple[bytes, str]:
    """A damaged zip of associated files, as TFLite Support appends to a model (labels, vocabularies)."""
    members = [("labels.txt", b"cat\ndog\n"), ("vocab.txt", b"a b c\n" * 20)]
    good = bytearray(_zip(members))
    what = rng.choice(["bitflip", "truncate", "version", "encrypted", "method", "count", "none"])
    if what == "bitflip":
        for _ in range(rng.randint(1, 6)):
            good[rng.randrange(len(good))] ^= 1 << rng.randrange(8)
    elif what == "truncate":
        good = good[: rng.randrange(4, len(good))]
    elif what == "version":
        i = good.find(b"PK\x01\x02")
        good[i + 6] = rng.choice([21, 63, 64, 148, 255])  # version needed to extract
    elif what in ("encrypted", "method"):
        good = bytearray(_patch_zip(bytes(good), rng, what))
    elif what == "count":
        i = good.find(b"PK\x05\x06")
        struct.pack_into("<HH", good, i + 8, 65535, 65535)  # entries on this disk, in all
    return bytes(good), f"appended a zip of labels.txt and vocab.txt ({what})"


# -- model schema -----------------------------------------------------------------------------

_TENSOR_TYPES = list(range(0, 23)) + [23, 24, 50, 100, 127, -1, -128]
_DIMS = [0, -1, -2, -7, 1, 3, 65536, 2**30, 2**31 - 1, -(2**31)]
_SCALES = [math.nan, 0.0, math.inf, -math.inf, -1.0, 3.4e38, 1e-45, 1e-30]
_ZERO_POINTS = [300, -129, 256, 2**31, -(2**40), 2**63 - 1, -(2**63)]
_CUSTOM_NAMES = [
    b"",
    b"FlexMatrixInverse",
    b"NoSuchOp",
    b"\xff\xfe",
    b"x" * 1000,
    b"TFLite_Detection_PostProcess",
    b"Convolution2DTransposeBias",
    b"MaxPoolingWithArgmax2D",
    b"MaxUnpooling2D",
]


def _int32_index(rng: random.Random, n: int, valid: list[int]) -> int:
    choices = [-1, -2, n, n + 1, n + 1000, 2**31 - 1, -(2**31)]
    if valid:
        choices.append(rng.choice(valid))
    return rng.choice(choices)


def _uint32_index(rng: random.Random, n: int) -> int:
    choices = [n, n + 1, n + 1000, 2**32 - 1, 2**31]
    if n:
        choices.append(rng.randrange(n))
    return rng.choice(choices)


def _pick_tensor(rng: random.Random, m) -> tuple[int, int, Any] | None:
    subs = [s for s, g in enumerate(m.subgraphs or []) if g.tensors]
    if not subs:
        return None
    s = rng.choice(subs)
    g = m.subgraphs[s]
    # Inputs and outputs half the time: those are what inspection, diagnosis and feeding read.
    io_ = [int(i) for i in list(g.inputs if g.inputs is not None else []) + list(g.outputs if g.outputs is not None else [])]
    io_ = [i for i in io_ if 0 <= i < len(g.tensors)]
    t = rng.choice(io_) if io_ and rng.random() < 0.5 else rng.randrange(len(g.tensors))
    return s, t, g.tensors[t]


def _as_list(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _edit_dims(rng: random.Random, dims: list[int]) -> list[int]:
    op = rng.choice(["set", "set", "append", "drop", "empty", "many"])
    if op == "set" and dims:
        dims[rng.randrange(len(dims))] = rng.choice(_DIMS)
    elif op == "append" or (op == "set" and not dims):
        dims.insert(rng.randint(0, len(dims)), rng.choice(_DIMS))
    elif op == "drop" and dims:
        del dims[rng.randrange(len(dims))]
    elif op == "many":
        dims = dims + [rng.choice([1, 2, -1])] * rng.choice([3, 8, 40])
    else:
        dims = []
    return dims


def _m_tensor_type(rng, m):
    picked = _pick_tensor(rng, m)
    if picked is None:
        return None
    s, i, t = picked
    old, t.type = t.type, rng.choice(_TENSOR_TYPES)
    return f"subgraph {s} tensor {i}: type {old} -> {t.type}"


def _m_tensor_shape(rng, m):
    picked = _pick_tensor(rng, m)
    if picked is None:
        return None
    s, i, t = picked
    old = _as_list(t.shape)
    t.shape = _edit_dims(rng, list(old))
    return f"subgraph {s} tensor {i}: shape {old} -> {t.shape}"


def _m_tensor_signature(rng, m):
    picked = _pick_tensor(rng, m)
    if picked is None:
        return None
    s, i, t = picked
    old = _as_list(t.shapeSignature if t.shapeSignature is not None else t.shape)
    t.shapeSignature = _edit_dims(rng, list(old))
    return f"subgraph {s} tensor {i}: shapeSignature {old} -> {t.shapeSignature}"


def _m_tensor_buffer(rng, m):
    picked = _pick_tensor(rng, m)
    if picked is None:
        return None
    s, i, t = picked
    n = len(m.buffers or [])
    old, t.buffer = t.buffer, rng.choice([0, _uint32_index(rng, n), rng.randrange(max(n, 1))])
    return f"subgraph {s} tensor {i}: buffer {old} -> {t.buffer} (of {n})"


def _pick_operator(rng, m):
    subs = [s for s, g in enumerate(m.subgraphs or []) if g.operators]
    if not subs:
        return None
    s = rng.choice(subs)
    j = rng.randrange(len(m.subgraphs[s].operators))
    return s, j, m.subgraphs[s].operators[j]


def _m_operator_opcode(rng, m):
    picked = _pick_operator(rng, m)
    if picked is None:
        return None
    s, j, op = picked
    n = len(m.operatorCodes or [])
    old, op.opcodeIndex = op.opcodeIndex, _uint32_index(rng, n)
    return f"subgraph {s} operator {j}: opcodeIndex {old} -> {op.opcodeIndex} (of {n})"


def _edit_indices(rng, values, n: int) -> tuple[list[int], str]:
    vals = _as_list(values)
    op = rng.choice(["set", "set", "duplicate", "drop", "add"])
    if op == "set" and vals:
        k = rng.randrange(len(vals))
        vals[k] = _int32_index(rng, n, list(range(n)))
    elif op == "duplicate" and vals:
        vals.insert(rng.randint(0, len(vals)), rng.choice(vals))
    elif op == "drop" and vals:
        del vals[rng.randrange(len(vals))]
    else:
        op = "add"
        vals.append(_int32_index(rng, n, list(range(n))))
    return vals, op


def _m_operator_io(rng, m):
    picked = _pick_operator(rng, m)
    if picked is None:
        return None
    s, j, op = picked
    which = rng.choice(["inputs", "outputs"])
    old = _as_list(getattr(op, which))
    new, how = _edit_indices(rng, old, len(m.subgraphs[s].tensors or []))
    setattr(op, which, new)
    return f"subgraph {s} operator {j}: {which} {old} -> {new} ({how})"


def _m_subgraph_io(rng, m):
    if not m.subgraphs:
        return None
    s = rng.randrange(len(m.subgraphs))
    g = m.subgraphs[s]
    which = rng.choice(["inputs", "outputs"])
    old = _as_list(getattr(g, which))
    new, how = _edit_indices(rng, old, len(g.tensors or []))
    setattr(g, which, new)
    return f"subgraph {s}: {which} {old} -> {new} ({how})"


def _m_quantization(rng, m):
    picked = _pick_tensor(rng, m)
    if picked is None:
        return None
    s, i, t = picked
    fb = schema()
    q = t.quantization if t.quantization is not None else fb.QuantizationParametersT()
    t.quantization = q
    scale = [float(v) for v in (q.scale if q.scale is not None else [])] or [0.5]
    zp = _as_list(q.zeroPoint) or [0]
    rank = len(_as_list(t.shape))
    what = rng.choice(["scale", "zero_point", "per_channel", "dimension", "zero_point_only"])
    if what == "scale":
        scale[rng.randrange(len(scale))] = rng.choice(_SCALES)
        q.scale, q.zeroPoint = scale, zp if len(zp) == len(scale) else [0] * len(scale)
        return f"subgraph {s} tensor {i}: scale -> {q.scale}"
    if what == "zero_point":
        zp = zp if len(zp) == len(scale) else [0] * len(scale)
        zp[rng.randrange(len(zp))] = rng.choice(_ZERO_POINTS)
        q.scale, q.zeroPoint = scale, zp
        return f"subgraph {s} tensor {i}: zeroPoint -> {q.zeroPoint}"
    if what == "per_channel":
        k = rng.choice([2, 3, 7, max(1, rank) + 1, 1000])
        q.scale = [rng.choice([0.1, 0.5, 1.0, 2.0]) for _ in range(k)]
        q.zeroPoint = [0] * rng.choice([k, k - 1, k + 1, 0])
        q.quantizedDimension = rng.randrange(max(rank, 1))
        return f"subgraph {s} tensor {i}: {k} scales, {len(q.zeroPoint)} zero points on dimension {q.quantizedDimension}"
    if what == "dimension":
        q.scale, q.zeroPoint = scale * 2, [0, 0]
        q.quantizedDimension = rng.choice([-1, rank, rank + 5, 2**31 - 1, -(2**31)])
        return f"subgraph {s} tensor {i}: per-channel quantizedDimension {q.quantizedDimension} of rank {rank}"
    q.scale, q.zeroPoint = None, [rng.choice(_ZERO_POINTS)]
    return f"subgraph {s} tensor {i}: zero point {q.zeroPoint} without a scale"


def _m_opcode(rng, m):
    if not m.operatorCodes:
        return None
    k = rng.randrange(len(m.operatorCodes))
    oc = m.operatorCodes[k]
    before = (oc.builtinCode, oc.deprecatedBuiltinCode, oc.version, oc.customCode)
    what = rng.choice(["builtin", "deprecated", "version", "custom", "builtin_valid"])
    if what == "builtin":
        oc.builtinCode = rng.choice([-1, 32, 210, 500, 2**31 - 1, -(2**31)])
    elif what == "builtin_valid":
        # Another real op with this op's inputs: kernels then see tensors they were not made for.
        oc.builtinCode = rng.choice([c for c in range(0, 160) if c != 32])
        oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
    elif what == "deprecated":
        oc.deprecatedBuiltinCode = rng.choice([-1, -128, 0, 32, 127, rng.randrange(128)])
    elif what == "version":
        oc.version = rng.choice([0, -1, 2, 7, 100, 2**31 - 1])
    else:
        oc.builtinCode, oc.deprecatedBuiltinCode = 32, 32
        oc.customCode = rng.choice(_CUSTOM_NAMES)
        # Give the operators that use it custom options to parse: garbage or none.
        for g in m.subgraphs or []:
            for op in g.operators or []:
                if op.opcodeIndex == k:
                    op.customOptions = rng.choice([None, [], [rng.randrange(256) for _ in range(rng.choice([1, 3, 16, 64]))]])
    after = (oc.builtinCode, oc.deprecatedBuiltinCode, oc.version, oc.customCode)
    return f"operator code {k} ({what}): {before} -> {after}"


def _m_buffer(rng, m):
    full = [b for b, buf in enumerate(m.buffers or []) if buf.data is not None and len(buf.data)]
    if not full:
        return None
    b = rng.choice(full)
    buf = m.buffers[b]
    n = len(buf.data)
    what = rng.choice(["truncate", "truncate", "extend", "offset"])
    if what == "truncate":
        keep = rng.choice([0, 1, n // 2, n - 1])
        buf.data = np.asarray(buf.data[:keep], dtype=np.uint8)
        return f"buffer {b}: data {n} -> {keep} bytes"
    if what == "extend":
        buf.data = np.concatenate([np.asarray(buf.data, np.uint8), np.full(rng.choice([1, 7, 4096]), 0xFF, np.uint8)])
        return f"buffer {b}: data {n} -> {len(buf.data)} bytes"
    # An "external" buffer: offset and size that point outside the file (large-model format).
    buf.data = None
    buf.offset, buf.size = rng.choice([(1, n), (2**40, n), (16, 2**40), (2**64 - 1, 1)])
    return f"buffer {b}: data moved to offset {buf.offset}, size {buf.size}"


def _m_signature(rng, m):
    fb = schema()
    if not m.signatureDefs:
        sd = fb.SignatureDefT()
        sd.signatureKey = b"fuzz"
        tm = fb.TensorMapT()
        tm.name, tm.tensorIndex = b"x", 0
        sd.inputs, sd.outputs = [tm], []
        m.signatureDefs = [sd]
        made = "added signature 'fuzz'; "
    else:
        made = ""
    k = rng.randrange(len(m.signatureDefs))
    sd = m.signatureDefs[k]
    n_sub = len(m.subgraphs or [])
    what = rng.choice(["input", "output", "subgraph", "duplicate_name"])
    if what == "subgraph":
        sd.subgraphIndex = _uint32_index(rng, n_sub)
        return made + f"signature {k}: subgraphIndex -> {sd.subgraphIndex} (of {n_sub})"
    maps = list(sd.inputs or []) if what != "output" else list(sd.outputs or [])
    if not maps:
        return None
    tm = rng.choice(maps)
    if what == "duplicate_name":
        for other in maps:
            other.name = tm.name
        return made + f"signature {k}: every {('input' if what != 'output' else 'output')} named {tm.name!r}"
    g = m.subgraphs[sd.subgraphIndex] if sd.subgraphIndex < n_sub else None
    n = len(g.tensors or []) if g is not None else 0
    tm.tensorIndex = _uint32_index(rng, n)
    return made + f"signature {k}: {what} {tm.name!r} tensorIndex -> {tm.tensorIndex} (of {n})"


def _m_operators(rng, m):
    picked = _pick_operator(rng, m)
    if picked is None:
        return None
    s, j, op = picked
    ops = m.subgraphs[s].operators
    what = rng.choice(["drop", "duplicate", "swap", "options_type"])
    if what == "drop":
        del ops[j]
    elif what == "duplicate":
        ops.insert(rng.randint(0, len(ops)), ops[j])
    elif what == "swap" and len(ops) > 1:
        k = rng.randrange(len(ops))
        ops[j], ops[k] = ops[k], ops[j]
        return f"subgraph {s}: swapped operators {j} and {k}"
    else:
        what = "options_type"
        op.builtinOptionsType, op.builtinOptions = rng.randrange(1, 130), None
        return f"subgraph {s} operator {j}: builtinOptionsType -> {op.builtinOptionsType} with no options"
    return f"subgraph {s}: {what} operator {j}"


_SCHEMA_MUTATIONS: dict[str, Callable] = {
    "tensor.type": _m_tensor_type,
    "tensor.shape": _m_tensor_shape,
    "tensor.shapeSignature": _m_tensor_signature,
    "tensor.buffer": _m_tensor_buffer,
    "operator.opcodeIndex": _m_operator_opcode,
    "operator.io": _m_operator_io,
    "subgraph.io": _m_subgraph_io,
    "quantization": _m_quantization,
    "operator_code": _m_opcode,
    "buffer": _m_buffer,
    "signature_def": _m_signature,
    "operators": _m_operators,
}


def _schema_mutation(rng: random.Random, data: bytes) -> tuple[str, bytes, str]:
    for _ in range(20):
        m = unpack_model(data)
        kinds, what = [], []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            kind = rng.choice(sorted(_SCHEMA_MUTATIONS))
            done = _SCHEMA_MUTATIONS[kind](rng, m)
            if done is not None:
                kinds.append(kind)
                what.append(done)
        if not kinds:
            continue
        try:
            return "+".join(kinds), pack_model(m), "; ".join(what)
        except (struct.error, OverflowError, TypeError, ValueError):
            continue  # a value the field cannot hold: draw another mutation
    raise RuntimeError("no schema mutation applied in 20 tries")  # pragma: no cover


def model_mutant(seed: int) -> Mutant:
    """A broken model: bytes-level for ``model-bytes`` seeds, schema-level for ``model-schema``."""
    family = family_of(seed)
    rng = random.Random(seed)
    source, data = rng.choice(model_seeds())
    if family == "model-bytes":
        kind, out, what = _bytes_mutation(rng, source, data)
    elif family == "model-schema":
        kind, out, what = _schema_mutation(rng, data)
    else:
        raise ValueError(f"seed {seed} is a {family} seed, not a model one")
    return Mutant(seed=seed, family=family, kind=kind, description=what, source=source, data=out, name=f"fuzz-{seed}.tflite")


# -- data files -------------------------------------------------------------------------------


def _npy_file(descr: str, fortran: str, shape: str, body: bytes, version: tuple[int, int] = (1, 0), extra: str = "") -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, {extra}}}"
    size_bytes = 2 if version[0] == 1 else 4
    pad = -(6 + 2 + size_bytes + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin-1")
    head = b"\x93NUMPY" + bytes(version) + (struct.pack("<H", len(text)) if size_bytes == 2 else struct.pack("<I", len(text)))
    return head + text + body


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _seed_arrays(rng: random.Random) -> np.ndarray:
    choices = [
        lambda: np.arange(4, dtype=np.float32).reshape(1, 4),
        lambda: np.full((2, 3, 3), 7, np.uint8),
        lambda: np.array(3, np.int64),
        lambda: np.array([True, False, True]),
        lambda: np.ones((1, 2), np.float16),
        lambda: np.ones((1, 2), np.complex64),
        lambda: np.arange(6, dtype=">f4").reshape(3, 2),
        lambda: np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        lambda: np.zeros((0, 3), np.float32),
        lambda: np.array([np.nan, np.inf, -np.inf], np.float32),
    ]
    return rng.choice(choices)()


def _mutate_npy(rng: random.Random) -> tuple[str, bytes, str]:
    a = _seed_arrays(rng)
    descr = repr(np.lib.format.dtype_to_descr(a.dtype))
    fortran = "True" if a.flags.f_contiguous and not a.flags.c_contiguous else "False"
    shape = repr(tuple(a.shape))
    body = a.tobytes(order="F" if fortran == "True" else "C")
    what = rng.choice(["shape", "descr", "fortran_order", "header_len", "version", "truncate", "keys", "body", "bitflip"])
    if what == "shape":
        shape = rng.choice(
            ["(2**40,)", "(1099511627776,)", "(-1, 4)", "(0,)", "()", repr((1,) * 40), "(1, 4", "'abc'", "(1.5,)",
             "(10**30,)", "(1, 2147483648, 2147483648)", "[1, 4]", "(4, 1)", "(1, 5)", "(None,)"]
        )
        return what, _npy_file(descr, fortran, shape, body), f"shape -> {shape} for {a.dtype} {a.shape}"
    if what == "descr":
        descr = rng.choice(
            ["'|O'", "'<f16'", "'|V8'", "'<U4'", "[('a', '<f4')]", "'<M8[s]'", "'<m8[D]'", "'|S3'", "'<c8'", "'>f4'",
             "'<q9'", "'float32'", "'|b1'", "('<f4', (2,))", "'<f2'", "'O'", "\"__import__('os').system('true')\"", "5"]
        )
        return what, _npy_file(descr, fortran, shape, body), f"descr -> {descr} for shape {a.shape}"
    if what == "fortran_order":
        fortran = rng.choice(["True", "1", "'yes'", "None", "not True"])
        return what, _npy_file(descr, fortran, shape, body), f"fortran_order -> {fortran} for {a.dtype} {a.shape}"
    if what == "header_len":
        good = bytearray(_npy_file(descr, fortran, shape, body))
        value = rng.choice([0, 1, 10, len(good), 65535, struct.unpack_from("<H", good, 8)[0] + rng.choice([-1, 1, 16])])
        struct.pack_into("<H", good, 8, max(0, min(value, 65535)))
        return what, bytes(good), f"header length field -> {value}"
    if what == "version":
        version = rng.choice([(2, 0), (3, 0), (9, 9), (0, 0), (1, 1)])
        return what, _npy_file(descr, fortran, shape, body, version=version), f"format version {version}"
    if what == "keys":
        extra = rng.choice(["'extra': 1, ", "'shape': (9, 9), ", "'descr': '|O', "])
        return what, _npy_file(descr, fortran, shape, body, extra=extra), f"extra header keys {extra!r}"
    good = _npy_bytes(a)
    if what == "truncate":
        cut = rng.randrange(0, len(good))
        return what, good[:cut], f"kept {cut} of {len(good)} bytes of {a.dtype} {a.shape}"
    if what == "body":
        extra = bytes(rng.randrange(256) for _ in range(rng.choice([1, 7, 64])))
        return what, good + extra, f"{len(extra)} junk bytes after the data of {a.dtype} {a.shape}"
    out = bytearray(good)
    for _ in range(rng.randint(1, 6)):
        out[rng.randrange(min(len(out), 128))] ^= 1 << rng.randrange(8)
    return what, bytes(out), f"flipped bits in the header of {a.dtype} {a.shape}"


def _zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        with zipfile.ZipFile(buf, "w", compression=compression) as zf:
            for name, data in members:
                zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data, compress_type=compression)
    return buf.getvalue()


def _patch_zip(data: bytes, rng: random.Random, what: str) -> bytes:
    """Flags and methods zipfile writes correctly, set wrong in both headers."""
    out = bytearray(data)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = out.find(sig)
        while i >= 0:
            if what == "encrypted":
                out[i + flag_at] |= 1
            else:
                struct.pack_into("<H", out, i + method_at, rng.choice([1, 6, 99, 0xFFFF]))
            i = out.find(sig, i + 4)
    return bytes(out)


def _mutate_npz(rng: random.Random) -> tuple[str, bytes, str]:
    arrays = [("x.npy", _npy_bytes(_seed_arrays(rng))), ("y.npy", _npy_bytes(_seed_arrays(rng)))]
    what = rng.choice(["name", "member", "duplicate", "many", "not_npy", "compression", "encrypted", "method",
                       "truncate", "bitflip", "empty", "nested", "big_member"])
    if what == "name":
        name = rng.choice(["x", "../x.npy", "/abs.npy", "a/b.npy", ".npy", "x.NPY", "ünï.npy", "x" * 300 + ".npy", "dir/"])
        arrays[0] = (name, arrays[0][1])
        return what, _zip(arrays), f"member named {name!r}"
    if what == "member":
        kind, data, desc = _mutate_npy(rng)
        arrays[1] = ("y.npy", data)
        return f"member.{kind}", _zip(arrays), f"member y.npy: {desc}"
    if what == "duplicate":
        return what, _zip(arrays + [("x.npy", _npy_bytes(np.zeros(3, np.uint8)))]), "x.npy twice"
    if what == "many":
        n = rng.choice([255, 257, 300])
        return what, _zip([(f"a{i}.npy", arrays[0][1]) for i in range(n)], zipfile.ZIP_STORED), f"{n} members"
    if what == "not_npy":
        arrays[0] = ("x.npy", rng.choice([b"hello", b"\x80\x04\x95", b"PK\x03\x04junk", b"", b"\x93NUMPY"]))
        return what, _zip(arrays), f"x.npy holds {arrays[0][1][:12]!r}"
    if what == "compression":
        method = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
        return what, _zip(arrays, method), f"compression method {method}"
    if what in ("encrypted", "method"):
        return what, _patch_zip(_zip(arrays), rng, what), f"{what} flag patched into every header"
    if what == "nested":
        return what, _zip([("inner.npz", _zip(arrays)), arrays[0]]), "an .npz inside the .npz"
    if what == "empty":
        return what, _zip([]), "no members"
    if what == "big_member":
        # A member declaring 64 MiB of zeros: small compressed, large once read.
        data = _npy_bytes(np.zeros((1, 16 << 20), np.float32))
        return what, _zip([("x.npy", data)]), "one 64 MiB member of zeros"
    good = _zip(arrays)
    if what == "truncate":
        cut = rng.randrange(4, len(good))
        return what, good[:cut], f"kept {cut} of {len(good)} bytes"
    out = bytearray(good)
    for _ in range(rng.randint(1, 6)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return what, bytes(out), "flipped bits"


@lru_cache(maxsize=None)
def _image_seeds() -> tuple[tuple[str, bytes], ...]:
    made = []
    rgb = np.zeros((6, 5, 3), np.uint8)
    rgb[..., 0] = np.arange(5) * 50
    for mode, fmt, ext in [("L", "PNG", "png"), ("RGB", "PNG", "png"), ("RGBA", "PNG", "png"), ("P", "PNG", "png"),
                           ("I;16", "PNG", "png"), ("1", "PNG", "png"), ("LA", "PNG", "png"), ("L", "JPEG", "jpg"),
                           ("RGB", "JPEG", "jpg"), ("CMYK", "JPEG", "jpg"), ("RGB", "BMP", "bmp")]:
        img = Image.fromarray(rgb, "RGB").convert(mode)
        buf = io.BytesIO()
        kwargs: dict[str, Any] = {}
        if fmt == "JPEG" and mode == "RGB":
            exif = Image.Exif()
            exif[0x0112] = 6  # orientation: rotated, so the loader transposes it
            kwargs["exif"] = exif
        img.save(buf, fmt, **kwargs)
        made.append((f"{mode.replace(';', '')}.{ext}", buf.getvalue()))
    for p in sorted(EXAMPLES.glob("*.png")):
        if p.stat().st_size < 16_000:
            made.append((p.name, p.read_bytes()))
    return tuple(made)


def _mutate_image(rng: random.Random) -> tuple[str, bytes, str, str]:
    name, data = rng.choice(_image_seeds())
    out = bytearray(data)
    what = rng.choice(["bitflip", "truncate", "overwrite", "dimensions", "wrong_extension", "chunk"])
    if what == "bitflip":
        for _ in range(rng.randint(1, 10)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return what, bytes(out), f"flipped bits in {name}", name
    if what == "truncate":
        cut = rng.randrange(1, len(out))
        return what, bytes(out[:cut]), f"kept {cut} of {len(data)} bytes of {name}", name
    if what == "overwrite":
        pos = rng.randrange(len(out))
        value = rng.choice(_INTERESTING_BYTES)
        out[pos : pos + len(value)] = value
        return what, bytes(out[: len(data)]), f"wrote {value.hex()} at {pos} of {name}", name
    if what == "dimensions":
        w, h = rng.choice([(0, 0), (0x7FFFFFFF, 1), (65535, 65535), (100000, 100000), (1, 0x7FFFFFFF), (7, 9)])
        if data.startswith(b"\x89PNG"):
            struct.pack_into(">II", out, 16, w, h)  # IHDR width and height (the CRC is left stale)
        elif data.startswith(b"\xff\xd8"):
            i = max(out.find(b"\xff\xc0"), out.find(b"\xff\xc2"))
            if i >= 0:
                struct.pack_into(">HH", out, i + 5, min(h, 65535), min(w, 65535))
        elif data.startswith(b"BM"):
            struct.pack_into("<ii", out, 18, w, -h if rng.random() < 0.5 else h)
        return what, bytes(out), f"{name} declares {w}×{h}", name
    if what == "wrong_extension":
        other = rng.choice(["x.jpg", "x.png", "x.csv", "x.npy", "x.json", "x"])
        return what, data, f"{name} uploaded as {other}", other
    # A chunk of junk after the header (PNG) or before the end (others).
    junk = struct.pack(">I", 8) + b"zzZz" + bytes(8) + b"\x00\x00\x00\x00"
    return what, bytes(out[:33] + junk + out[33:]), f"a junk chunk inside {name}", name


_CELLS = ["1", "-2.5", "nan", "inf", "-inf", "1e400", "1e-400", str(2**70), str(-(2**63) - 1), "0x10", "", " ", "abc",
          '"1"', '"', "1_000", "१२", "٣", "infinity", "+1", "--1", "1.", ".5", "True", "\x00", "1e5", "NaN", "-0",
          "3.4e38", "1,5"]


def _mutate_csv(rng: random.Random) -> tuple[str, bytes, str]:
    sep = rng.choice([",", ";", "\t", " ", ",,", "|"])
    eol = rng.choice(["\n", "\r\n", "\r", "\n\n"])
    rows = rng.choice([0, 1, 2, 5, 40])
    width = rng.choice([1, 3, 8])
    lines = []
    for _ in range(rows):
        n = width if rng.random() < 0.8 else rng.randint(0, width + 2)
        lines.append(sep.join(rng.choice(_CELLS) if rng.random() < 0.3 else str(rng.randint(-9, 9)) for _ in range(n)))
    text = eol.join(lines)
    if rng.random() < 0.2:
        text = "\ufeff" + text
    if rng.random() < 0.1:
        text = "# a comment\n" + text
    encoding = rng.choice(["utf-8"] * 6 + ["latin-1", "utf-16"])
    data = text.encode(encoding, "replace")
    if rng.random() < 0.1:
        data += bytes([0xFF, 0xFE, 0x80])
    return "csv", data, f"{rows} rows × ~{width} separated by {sep!r}, lines ending {eol!r}, {encoding}"


def _json_value(rng: random.Random, depth: int) -> Any:
    r = rng.random()
    if depth > 4 or r < 0.35:
        return rng.choice([0, 1, -3, 2.5, 2**70, -(2**70), 1e300, True, False, None, "x", "", 1e-300, 10**30])
    if r < 0.8:
        n = rng.choice([0, 1, 2, 3, 4])
        if rng.random() < 0.6:  # regular: same shape everywhere
            item = _json_value(rng, depth + 1)
            return [item for _ in range(n)]
        return [_json_value(rng, depth + 1) for _ in range(n)]
    return {rng.choice(["x", "", "../x", "k" * 200, "ü", "0"]): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _mutate_json(rng: random.Random) -> tuple[str, bytes, str]:
    what = rng.choice(["random", "random", "tokens", "deep", "text"])
    if what == "random":
        value = _json_value(rng, 0)
        return what, json.dumps(value).encode(), json.dumps(value)[:80]
    if what == "tokens":
        token = rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 5000, "0.1e-99999"])
        text = rng.choice([f"[{token}, 1]", f'{{"x": [[{token}]]}}', f"[[1, 2], [{token}, 3]]"])
        return what, text.encode(), text[:80]
    if what == "deep":
        n = rng.choice([100, 1000, 5000, 100000])
        opener = rng.choice(["[", '{"a":'])
        closer = "]" if opener == "[" else "}"
        text = opener * n + "1" + closer * n
        return what, text.encode(), f"{n} levels of {opener}"
    text = rng.choice(['[1, 2,]', "{'x': [1]}", '\ufeff[1, 2]', '[1, 2', '{"x": [1], "x": [2, 3]}', '"just a string"',
                       "null", "[]", "{}", '{"x": []}', '[[1, 2], [3]]', '[[], []]', '[1, "2"]', '{"a": {"b": [1]}}'])
    encoding = rng.choice(["utf-8", "utf-8", "utf-16", "utf-32"])
    return what, text.encode(encoding), f"{text!r} in {encoding}"


def _mutate_raw(rng: random.Random) -> tuple[bytes, dict[str, Any], str]:
    data = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 15, 16, 64])))
    dtype = rng.choice(["float32", "uint8", "int64", "object", "U4", "V3", "nonsense", "float16", "complex64", "bool",
                        "M8", ">i2", None])
    shape = rng.choice([(4,), (1, 4), (-1,), (0,), (2**40,), (), (2, -2), (1,) * 40, (16,), None])
    return data, {"dtype": dtype, "shape": shape}, f"{len(data)} bytes as dtype {dtype!r} shape {shape}"


def data_mutant(seed: int) -> Mutant:
    """A broken sample-data file, with the name (extension) it is uploaded under."""
    if family_of(seed) != "data":
        raise ValueError(f"seed {seed} is not a data seed")
    rng = random.Random(seed)
    fmt = rng.choice(["npy", "npy", "npz", "npz", "image", "image", "csv", "json", "raw", "gallery"])
    options: dict[str, Any] = {}
    if fmt == "npy":
        kind, data, what = _mutate_npy(rng)
        name, source = "data.npy", "synthetic array"
    elif fmt == "npz":
        kind, data, what = _mutate_npz(rng)
        name, source = "data.npz", "synthetic arrays"
    elif fmt == "image":
        kind, data, what, name = _mutate_image(rng)
        source = "image"
    elif fmt == "csv":
        kind, data, what = _mutate_csv(rng)
        name, source = rng.choice(["data.csv", "data.tsv", "data.txt"]), "synthetic text"
    elif fmt == "json":
        kind, data, what = _mutate_json(rng)
        name, source = "data.json", "synthetic JSON"
    elif fmt == "raw":
        kind = "raw"
        data, options, what = _mutate_raw(rng)
        name, source = rng.choice(["data.bin", "data.raw", "data"]), "random bytes"
    else:
        files = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".npy", ".npz", ".png") and p.stat().st_size < 200_000)
        p = rng.choice(files)
        out = bytearray(p.read_bytes())
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(min(len(out), 4096))] ^= 1 << rng.randrange(8)
        kind, data, what, name, source = "bitflip", bytes(out), "flipped bits near the start", p.name, p.name
    return Mutant(seed=seed, family="data", kind=f"{fmt}.{kind}", description=what, source=source, data=data, name=name,
                  options=options)


# -- bundles ----------------------------------------------------------------------------------


def _seed_bundle(rng: random.Random) -> tuple[str, list[tuple[str, bytes]]]:
    name, model = rng.choice([s for s in model_seeds() if len(s[1]) < 40_000])
    feed = Feed({"x": np.arange(4, dtype=np.float32).reshape(1, 4), "y": np.array(3, np.int32)})
    out = np.ones((1, 4), np.float32)
    result = RunResult(status="ok", outputs=(OutputTensor(name="out", index=1, raw=out, values=out),), invoke_ms=0.1)
    data = write_bundle(model, feed, result=result, model_name=name)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    # The creation time and this machine's versions would make the same seed give other bytes.
    fixed = {"manifest.json": lambda d: json.dumps({**json.loads(d), "created": "2024-01-01T00:00:00+00:00"}, indent=2),
             "versions.json": lambda d: json.dumps({"python": "3.11", "numpy": "2.0"}, indent=2)}
    return name, [(n, fixed[n](d).encode() if n in fixed else d) for n, d in members]


_ODD_VALUES: list[Any] = [None, 5, -1, "str", [], {}, [1, 2], {"a": "b"}, "../model.tflite", "/etc/passwd",
                          "model.tflite\x00", True, 1.5, "x" * 10_000, ["model.tflite"]]


def _mutate_manifest(rng: random.Random, text: bytes) -> tuple[bytes, str]:
    manifest = json.loads(text)
    what = rng.choice(["field", "field", "inputs", "resize", "raw"])
    if what == "field":
        key = rng.choice(["format", "version", "model", "model_name", "signature", "inputs", "resize", "outputs",
                          "fixes_applied", "created"])
        value = rng.choice(_ODD_VALUES)
        if rng.random() < 0.2:
            del manifest[key]
            return json.dumps(manifest).encode(), f"manifest without {key!r}"
        manifest[key] = value
        return json.dumps(manifest).encode(), f"manifest {key!r} -> {json.dumps(value)[:40]}"
    if what == "inputs":
        value = rng.choice(_ODD_VALUES + ["model.tflite", "manifest.json", "inputs/9.npy", "diagnosis.json"])
        manifest["inputs"] = {rng.choice(["x", "", "ü" * 50]): value}
        return json.dumps(manifest).encode(), f"manifest inputs -> {json.dumps(manifest['inputs'])[:60]}"
    if what == "resize":
        value = rng.choice(["[2, 4]", "[-1]", "[]", "5", '"abc"', "[1e400]", "[NaN]", "[2.5]", f"[{2**70}]", "[[1]]",
                            "null", '{"a": 1}'])
        text = json.dumps({**manifest, "resize": "@@"}).replace('"@@"', '{"x": ' + value + "}")
        return text.encode(), f"manifest resize -> {{'x': {value}}}"
    raw = rng.choice([b"", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 100000 + b"]" * 100000, b'{"format": "lite-debug-bundle"}',
                      json.dumps(manifest).encode("utf-16")])
    return raw, f"manifest.json is {raw[:20]!r}{'…' if len(raw) > 20 else ''} ({len(raw)} bytes)"


def bundle_mutant(seed: int) -> Mutant:
    """A broken bug-report bundle; ``options["limits"]`` holds the limits to read it under."""
    if family_of(seed) != "bundle":
        raise ValueError(f"seed {seed} is not a bundle seed")
    rng = random.Random(seed)
    source, members = _seed_bundle(rng)
    # Small limits, so that a bomb costs megabytes here rather than the gigabyte the defaults allow.
    limits = BundleLimits(max_members=32, max_total_bytes=8 << 20, max_member_bytes=2 << 20)
    what = rng.choice(["name", "missing", "manifest", "manifest", "json_member", "bomb", "many", "duplicate",
                       "input", "truncate", "bitflip", "encrypted", "method"])
    compression = zipfile.ZIP_DEFLATED
    if what == "name":
        odd = rng.choice(["../evil", "/abs/path", "a\\b", "ünï", "inputs/../../x", "x" * 300, "nested.zip", "inputs/",
                          "a//b", "./model.tflite", "C:/x", "inputs/0.npy/", "new\nline", ".hidden"])
        if rng.random() < 0.5:
            k = rng.randrange(len(members))
            desc = f"member {members[k][0]!r} renamed {odd!r}"
            members[k] = (odd, members[k][1])
        else:
            members.append((odd, b"junk"))
            desc = f"extra member {odd!r}"
    elif what == "missing":
        k = rng.randrange(len(members))
        desc = f"without {members[k][0]!r}"
        del members[k]
    elif what in ("manifest", "json_member"):
        target = "manifest.json" if what == "manifest" else rng.choice(["diagnosis.json", "run.json", "versions.json"])
        k = next(i for i, (n, _) in enumerate(members) if n == target)
        if what == "manifest":
            data, desc = _mutate_manifest(rng, members[k][1])
        else:
            data = rng.choice([b"{", b"5", b'"x"', b"[1, 2]", b'[{"a": 1}, 3]', b"[" * 50000 + b"]" * 50000, b"\xff"])
            desc = f"{target} is {data[:20]!r}"
        members[k] = (target, data)
    elif what == "bomb":
        target = rng.choice(["model.tflite", "inputs/0.npy", "diagnosis.json", "versions.json"])
        size = rng.choice([3 << 20, 9 << 20])
        k = next(i for i, (n, _) in enumerate(members) if n == target)
        members[k] = (target, bytes(size))
        desc = f"{target} is {size >> 20} MiB of zeros (limits: 2 MiB a member, 8 MiB in all)"
    elif what == "many":
        n = rng.choice([33, 100])
        members += [(f"extra/{i}.txt", b"x") for i in range(n)]
        desc = f"{n} extra members (limit 32)"
    elif what == "duplicate":
        target = rng.choice(["manifest.json", "model.tflite", "inputs/0.npy"])
        members.append((target, rng.choice([b"", b"{}", b"junk", bytes(100)])))
        desc = f"{target} twice, the second one junk"
    elif what == "input":
        k = next(i for i, (n, _) in enumerate(members) if n == "inputs/0.npy")
        kind, data, inner = _mutate_npy(rng)
        members[k] = ("inputs/0.npy", data)
        desc = f"inputs/0.npy: {inner}"
    else:
        desc = ""
    data = _zip(members, compression)
    if what == "truncate":
        cut = rng.randrange(4, len(data))
        data, desc = data[:cut], f"kept {cut} of {len(data)} bytes"
    elif what == "bitflip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        data, desc = bytes(out), "flipped bits"
    elif what in ("encrypted", "method"):
        data, desc = _patch_zip(data, rng, what), f"{what} patched into every header"
    return Mutant(seed=seed, family="bundle", kind=what, description=desc, source=source, data=data, name=f"fuzz-{seed}.zip",
                  options={"limits": limits})
