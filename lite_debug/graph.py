"""The model's graph as typed records, read from the flatbuffer without the interpreter.

``read_graph(model_bytes)`` reads every subgraph: its operators in execution order (the order
the interpreter runs them: the flatbuffer's), with their op name or custom code, input and
output tensor ids and the builtin options that matter; its tensors with name, shape, shape
signature, dtype, quantization, whether they are constant or variable, the operator that
produces each and the operators that consume it. ``ModelSpec.graph`` reads it on first use.

The pass is columnar: each field of every tensor (or operator) is read with one numpy gather,
checked against the file's bounds and charged against twice the file's size (see
``_flat.Budget``), and a list of tensors, operators or subgraphs whose entries point at the
same table is refused rather than read again and again. ``Tensor`` and ``Operator`` records are
built from those columns when first asked for, so the inventory, the memory estimate and the
statefulness of a model with 100,000 tensors cost no 100,000 records. A graph keeps a
reference to the model's bytes (never a copy) to decode names on demand.

``input_normalization`` follows each input through the arithmetic that models often start
with (``x / 127.5 - 1``, ``x * (1/255)``, …) and says what range of data that maps from.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterator, Literal, Mapping, TypeVar

from ._flat import _U16, _VTABLE_PAD, Reader, aliased, unpacker
from ._schema import NUMPY_NAMES, builtin_op_names, tensor_type_names
from .errors import ModelLoadError
from .records import OpInfo, Quantization

__all__ = [
    "Graph",
    "InputNormalization",
    "Operator",
    "Records",
    "Subgraph",
    "Tensor",
    "constant_values",
    "input_normalization",
    "read_graph",
]

_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I8 = struct.Struct("<b").unpack_from
_U8 = struct.Struct("<B").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_F32 = struct.Struct("<f").unpack_from

_CUSTOM = 32
_NO_QUANTIZATION = Quantization()
_ITEMSIZE = {
    "float32": 4, "float16": 2, "float64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1,
    "uint16": 2, "uint32": 4, "uint64": 8, "bool": 1, "complex64": 8, "complex128": 16, "bfloat16": 2,
}
# Ops that read or write a resource variable: the interpreter keeps its value between invokes.
_VARIABLE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")
_RESOURCE = 13  # TensorType.RESOURCE

T = TypeVar("T")


@dataclass(frozen=True)
class Tensor:
    """One tensor of a subgraph.

    ``producer`` is the index of the operator that writes it (None for inputs, constants and
    variables); ``consumers`` those that read it, in execution order. ``buffer`` is the index
    of its buffer in the model; ``is_constant`` when that buffer holds data (its values are in
    the file). ``is_variable`` is the schema's flag for state kept between invokes.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    quantization: Quantization
    buffer: int
    is_constant: bool
    is_variable: bool
    producer: int | None
    consumers: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Bytes of its data at its declared shape (dynamic dimensions counted as 1)."""
        count = 1
        for d in self.shape:
            count *= max(1, d)
        return count * _ITEMSIZE.get(self.dtype, 4)

    def shape_text(self, signature: bool = False) -> str:
        dims = self.shape_signature if signature else self.shape
        return "[" + ", ".join("?" if d == -1 else str(d) for d in dims) + "]"


@dataclass(frozen=True)
class Operator:
    """One operator, at its place in the execution order of its subgraph.

    ``name`` is the builtin op's name (``CONV_2D``) or the custom code (``FlexMatrixInverse``,
    ``TransformLandmarks``); ``kind`` says which. ``inputs`` holds -1 where an optional input is
    left out. ``options`` holds the builtin options that change what the op computes (strides,
    padding, fused activation, axis, new shape, …) by their schema names; others are left out.
    """

    index: int
    name: str
    kind: Literal["builtin", "custom", "flex"]
    version: int
    opcode_index: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)

    def options_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.options.items())


class Records(Sequence[T]):
    """A read-only sequence of records built on first access (one by one, or all at once).

    Behaves as a tuple: ``len``, indexing, slicing, iteration, ``==`` against a tuple.
    Building a record twice (two threads at once) gives equal records, so no lock is taken.
    """

    __slots__ = ("_n", "_one", "_all", "_cache", "_complete")

    def __init__(self, n: int, one: Callable[[int], T], every: Callable[[], list[T]]) -> None:
        self._n = n
        self._one = one
        self._all = every
        self._cache: list[T | None] = [None] * n
        self._complete = False

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(self._n)))
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"index {i} is outside a list of {self._n}")
        got = self._cache[i]
        if got is None:
            got = self._cache[i] = self._one(i)
        return got

    def __iter__(self) -> Iterator[T]:
        if not self._complete:
            self._cache = list(self._all())
            self._complete = True
        return iter(self._cache)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Records, tuple, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"<{self._n} records>"


@dataclass(frozen=True)
class Subgraph:
    """A subgraph: its tensors, its operators in execution order, its inputs and outputs.

    ``tensors`` and ``operators`` are sequences of records (``Records`` when read from a file:
    each record is built on first access).
    """

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    tensors: Sequence[Tensor]
    operators: Sequence[Operator]
    _columns: Any = field(default=None, compare=False, repr=False, hash=False)

    def neighbourhood(
        self, *, op: int | None = None, tensor: int | None = None, hops: int = 1
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Operators within ``hops`` steps of ``op`` (or of ``tensor``), and all their tensors.

        A step goes from an operator through one of its tensors to the operator that produces
        it or to another that consumes it. The operators of a tensor are one step from it.
        Returns (operator indices, tensor indices), each sorted. Raises ``IndexError`` for an
        operator or tensor the subgraph lacks.
        """
        tensors: set[int] = set()
        if op is not None:
            if not 0 <= op < len(self.operators):
                raise IndexError(f"Subgraph {self.index} has no operator {op}.")
            frontier = {op}
        elif tensor is not None:
            if not 0 <= tensor < len(self.tensors):
                raise IndexError(f"Subgraph {self.index} has no tensor {tensor}.")
            t = self.tensors[tensor]
            tensors.add(tensor)
            frontier = set(t.consumers) | ({t.producer} if t.producer is not None else set())
            hops -= 1
        else:
            raise ValueError("neighbourhood() needs an operator or a tensor to centre on.")
        ops = set(frontier)
        for _ in range(max(0, hops)):
            new = {t for j in frontier for t in (*self.operators[j].inputs, *self.operators[j].outputs) if t >= 0}
            new -= tensors
            tensors |= new
            nxt: set[int] = set()
            for t in new:
                tt = self.tensors[t]
                nxt.update(tt.consumers)
                if tt.producer is not None:
                    nxt.add(tt.producer)
            frontier = nxt - ops
            ops |= frontier
        for j in ops:
            tensors.update(t for t in (*self.operators[j].inputs, *self.operators[j].outputs) if t >= 0)
        return tuple(sorted(ops)), tuple(sorted(tensors))

    def first_computing_operator(self) -> int:
        """The first operator that is not a DEQUANTIZE of weights: where a drawing starts well."""
        for o in self.operators:
            if not (o.name == "DEQUANTIZE" and o.outputs and all(self.is_weight(t) for t in o.outputs)):
                return o.index
        return 0

    def is_weight(self, t: int) -> bool:
        """Whether tensor ``t`` is a constant, or a DEQUANTIZE of one (float16 or int8 weights)."""
        tensor = self.tensors[t]
        if tensor.is_constant:
            return True
        if tensor.producer is None:
            return False
        op = self.operators[tensor.producer]
        return op.name == "DEQUANTIZE" and bool(op.inputs) and op.inputs[0] >= 0 and self.tensors[op.inputs[0]].is_constant

    def dot(self, ops: tuple[int, ...], tensors: tuple[int, ...], *, focus_op: int | None = None,
            focus_tensor: int | None = None, fold_constants: bool = True) -> str:
        """A Graphviz (DOT) drawing of the given operators and tensors, top to bottom.

        Names from the model are escaped and cut to 48 characters: the drawing is text, never
        markup. With ``fold_constants``, weights (constants, and DEQUANTIZE ops of constants
        with their outputs) are counted in the box of the operator that reads them rather
        than drawn.
        """
        hidden: set[int] = set()
        hidden_ops: set[int] = set()
        if fold_constants:
            keep = {focus_tensor, *(self.operators[focus_op].outputs if focus_op is not None else ())}
            hidden = {t for t in tensors if t not in keep and self.is_weight(t)}
            hidden_ops = {
                j for j in ops
                if j != focus_op and self.operators[j].name == "DEQUANTIZE"
                and all(t in hidden for t in self.operators[j].outputs)
            }
        shown = set(tensors) - hidden
        lines = [
            "digraph G {",
            '  rankdir=TB; bgcolor="transparent";',
            '  node [fontname="Helvetica", fontsize=10, fontcolor="#000000"];',
            '  edge [color="#888888", arrowsize=0.6];',
        ]
        for j in ops:
            if j in hidden_ops:
                continue
            o = self.operators[j]
            weights = sum(1 for t in o.inputs if t >= 0 and t in hidden)
            label = [f"#{j} {_cut(o.name)}"]
            if weights:
                label.append(f"{weights} weight tensor{'s' if weights > 1 else ''}")
            style = 'style="filled,bold", fillcolor="#ffd54f"' if j == focus_op else 'style=filled, fillcolor="#e3f2fd"'
            if o.kind != "builtin" and j != focus_op:
                style = 'style=filled, fillcolor="#ffcdd2"'
            lines.append(f'  op{j} [shape=box, {style}, label="{_dot_label(*label)}"];')
        for t in tensors:
            if t not in shown:
                continue
            tt = self.tensors[t]
            role = " (input)" if t in self.inputs else " (output)" if t in self.outputs else ""
            label = [_cut(tt.name) or f"tensor {t}", f"{tt.shape_text(signature=True)} {tt.dtype}{role}"]
            style = 'style="filled,bold", fillcolor="#ffd54f"' if t == focus_tensor else 'style=filled, fillcolor="#f5f5f5"'
            lines.append(f'  t{t} [shape=ellipse, {style}, label="{_dot_label(*label)}"];')
        for j in ops:
            if j in hidden_ops:
                continue
            o = self.operators[j]
            for t in o.inputs:
                if t >= 0 and t in shown:
                    lines.append(f"  t{t} -> op{j};")
            for t in o.outputs:
                if t in shown:
                    lines.append(f"  op{j} -> t{t};")
        lines.append("}")
        return "\n".join(lines)


def _cut(name: str, width: int = 48) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _dot_label(*lines: str) -> str:
    """Lines of text as the inside of a DOT string: quotes and backslashes escaped, control
    characters shown as ``\\xNN``, lines joined by DOT's line break."""
    out = []
    for line in lines:
        line = line.replace("\\", "\\\\").replace('"', '\\"')
        out.append("".join(c if c.isprintable() else f"\\\\x{ord(c):02x}" for c in line))
    return "\\n".join(out)


@dataclass(frozen=True)
class Graph:
    """Every subgraph of a model, and what the model needs from a runtime to run them."""

    subgraphs: tuple[Subgraph, ...]

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    @property
    def ops(self) -> tuple[OpInfo, ...]:
        """The operator inventory: each opcode once with how often it runs, unusual ops first."""
        counts: dict[int, list] = {}
        for sub in self.subgraphs:
            for idx, (name, kind, version, n) in _opcode_counts(sub).items():
                entry = counts.setdefault(idx, [name, kind, version, 0])
                entry[3] += n
        ops = [OpInfo(name=n, kind=k, count=c, version=v) for n, k, v, c in counts.values()]
        order = {"flex": 0, "custom": 1, "builtin": 2}
        return tuple(sorted(ops, key=lambda o: (order[o.kind], -o.count, o.name)))

    @property
    def operator_count(self) -> int:
        return sum(len(s.operators) for s in self.subgraphs)

    @property
    def tensor_count(self) -> int:
        return sum(len(s.tensors) for s in self.subgraphs)

    @property
    def stateful(self) -> tuple[str, ...]:
        """Why the model keeps state between invokes: variable ops, resource or variable tensors.

        Empty for a model whose outputs depend only on its inputs.
        """
        reasons = []
        by_name: dict[str, int] = {}
        for sub in self.subgraphs:
            for name, _, _, n in _opcode_counts(sub).values():
                by_name[name] = by_name.get(name, 0) + n
        for name in _VARIABLE_OPS:
            n = by_name.get(name, 0)
            if n:
                reasons.append(f"{n} {name} operator{'s' if n > 1 else ''}")
        resources = variables = 0
        for sub in self.subgraphs:
            cols = sub._columns
            if cols is not None:
                resources += cols.resource_count()
                variables += cols.variable_count()
            else:
                resources += sum(1 for t in sub.tensors if t.dtype == "resource")
                variables += sum(1 for t in sub.tensors if t.is_variable)
        if resources:
            reasons.append(f"{resources} resource tensor{'s' if resources > 1 else ''}")
        if variables:
            reasons.append(f"{variables} variable tensor{'s' if variables > 1 else ''}")
        return tuple(reasons)

    @property
    def is_stateful(self) -> bool:
        return bool(self.stateful)

    def activation_bytes(self) -> int:
        """An upper bound of the memory ``allocate_tensors`` asks for: every non-constant tensor.

        The interpreter's arena reuses memory between tensors that are not alive at once, so the
        real figure is lower; a crafted model that declares a gigantic tensor shows up here before
        anything is allocated. Dynamic dimensions count as 1, as the interpreter allocates them.
        """
        total = 0
        for sub in self.subgraphs:
            if sub._columns is not None:
                total += sub._columns.activation_bytes()
            else:
                total += sum(t.nbytes for t in sub.tensors if not t.is_constant)
        return total


def _opcode_counts(sub: Subgraph) -> dict[int, tuple[str, str, int, int]]:
    """opcode index -> (name, kind, version, how many operators of the subgraph use it)."""
    if sub._columns is not None:
        return sub._columns.opcode_counts()
    out: dict[int, tuple[str, str, int, int]] = {}
    for o in sub.operators:
        prev = out.get(o.opcode_index)
        out[o.opcode_index] = (o.name, o.kind, o.version, (prev[3] if prev else 0) + 1)
    return out


# -- reading -----------------------------------------------------------------------------------

# Field indices ((slot - 4) // 2) of the schema's tables: Tensor.Shape reads Offset(4) -> 0, …
_M_CODES, _M_SUBGRAPHS, _M_BUFFERS = 1, 2, 4
_OC_DEPRECATED, _OC_CUSTOM, _OC_VERSION, _OC_BUILTIN = 0, 1, 2, 3
_SG_TENSORS, _SG_INPUTS, _SG_OUTPUTS, _SG_OPERATORS, _SG_NAME = 0, 1, 2, 3, 4
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_NAME, _T_QUANT, _T_VARIABLE, _T_SIGNATURE = 0, 1, 2, 3, 4, 5, 7
_Q_SCALE, _Q_ZERO_POINT, _Q_DIMENSION = 2, 3, 6
_O_OPCODE, _O_INPUTS, _O_OUTPUTS, _O_OPTIONS_TYPE, _O_OPTIONS = 0, 1, 2, 3, 4
_B_DATA, _B_OFFSET, _B_SIZE = 0, 1, 2


def _types(code: int) -> str:
    return tensor_type_names().get(code, f"TYPE_{code}")


_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_MIRROR = {0: "REFLECT", 1: "SYMMETRIC"}


# BuiltinOptions name -> its fields that matter: (name, field index, kind, default). Kinds:
# i8/i32/f32/bool scalars, "pad"/"act"/"mirror"/"type" enums, "ints" a vector, "str" a string.
_OPTION_FIELDS: dict[str, tuple[tuple[str, int, str, Any], ...]] = {
    "Conv2DOptions": (("padding", 0, "pad", 0), ("stride_w", 1, "i32", 0), ("stride_h", 2, "i32", 0),
                      ("fused_activation_function", 3, "act", 0), ("dilation_w_factor", 4, "i32", 1),
                      ("dilation_h_factor", 5, "i32", 1)),
    "DepthwiseConv2DOptions": (("padding", 0, "pad", 0), ("stride_w", 1, "i32", 0), ("stride_h", 2, "i32", 0),
                               ("depth_multiplier", 3, "i32", 0), ("fused_activation_function", 4, "act", 0),
                               ("dilation_w_factor", 5, "i32", 1), ("dilation_h_factor", 6, "i32", 1)),
    "Conv3DOptions": (("padding", 0, "pad", 0), ("stride_d", 1, "i32", 0), ("stride_w", 2, "i32", 0),
                      ("stride_h", 3, "i32", 0), ("fused_activation_function", 4, "act", 0)),
    "Pool2DOptions": (("padding", 0, "pad", 0), ("stride_w", 1, "i32", 0), ("stride_h", 2, "i32", 0),
                      ("filter_width", 3, "i32", 0), ("filter_height", 4, "i32", 0),
                      ("fused_activation_function", 5, "act", 0)),
    "TransposeConvOptions": (("padding", 0, "pad", 0), ("stride_w", 1, "i32", 0), ("stride_h", 2, "i32", 0),
                             ("fused_activation_function", 3, "act", 0)),
    "FullyConnectedOptions": (("fused_activation_function", 0, "act", 0), ("keep_num_dims", 2, "bool", False)),
    "AddOptions": (("fused_activation_function", 0, "act", 0),),
    "SubOptions": (("fused_activation_function", 0, "act", 0),),
    "MulOptions": (("fused_activation_function", 0, "act", 0),),
    "DivOptions": (("fused_activation_function", 0, "act", 0),),
    "L2NormOptions": (("fused_activation_function", 0, "act", 0),),
    "ConcatenationOptions": (("axis", 0, "i32", 0), ("fused_activation_function", 1, "act", 0)),
    "ReshapeOptions": (("new_shape", 0, "ints", ()),),
    "SqueezeOptions": (("squeeze_dims", 0, "ints", ()),),
    "SoftmaxOptions": (("beta", 0, "f32", 0.0),),
    "LeakyReluOptions": (("alpha", 0, "f32", 0.0),),
    "ResizeBilinearOptions": (("align_corners", 2, "bool", False), ("half_pixel_centers", 3, "bool", False)),
    "ResizeNearestNeighborOptions": (("align_corners", 0, "bool", False), ("half_pixel_centers", 1, "bool", False)),
    "StridedSliceOptions": (("begin_mask", 0, "i32", 0), ("end_mask", 1, "i32", 0), ("ellipsis_mask", 2, "i32", 0),
                            ("new_axis_mask", 3, "i32", 0), ("shrink_axis_mask", 4, "i32", 0)),
    "ReducerOptions": (("keep_dims", 0, "bool", False),),
    "SplitOptions": (("num_splits", 0, "i32", 0),),
    "SplitVOptions": (("num_splits", 0, "i32", 0),),
    "PackOptions": (("values_count", 0, "i32", 0), ("axis", 1, "i32", 0)),
    "UnpackOptions": (("num", 0, "i32", 0), ("axis", 1, "i32", 0)),
    "GatherOptions": (("axis", 0, "i32", 0), ("batch_dims", 1, "i32", 0)),
    "DepthToSpaceOptions": (("block_size", 0, "i32", 0),),
    "SpaceToDepthOptions": (("block_size", 0, "i32", 0),),
    "CastOptions": (("in_data_type", 0, "type", 0), ("out_data_type", 1, "type", 0)),
    "ArgMaxOptions": (("output_type", 0, "type", 0),),
    "ArgMinOptions": (("output_type", 0, "type", 0),),
    "BatchMatMulOptions": (("adj_x", 0, "bool", False), ("adj_y", 1, "bool", False)),
    "MirrorPadOptions": (("mode", 0, "mirror", 0),),
    "GeluOptions": (("approximate", 0, "bool", False),),
    "FakeQuantOptions": (("min", 0, "f32", 0.0), ("max", 1, "f32", 0.0), ("num_bits", 2, "i32", 0),
                         ("narrow_range", 3, "bool", False)),
    "VarHandleOptions": (("container", 0, "str", ""), ("shared_name", 1, "str", "")),
    "CallOnceOptions": (("init_subgraph_index", 0, "i32", 0),),
    "WhileOptions": (("cond_subgraph_index", 0, "i32", 0), ("body_subgraph_index", 1, "i32", 0)),
    "IfOptions": (("then_subgraph_index", 0, "i32", 0), ("else_subgraph_index", 1, "i32", 0)),
    "UnidirectionalSequenceLSTMOptions": (("fused_activation_function", 0, "act", 0), ("cell_clip", 1, "f32", 0.0),
                                          ("proj_clip", 2, "f32", 0.0), ("time_major", 3, "bool", False)),
    "LSTMOptions": (("fused_activation_function", 0, "act", 0), ("cell_clip", 1, "f32", 0.0),
                    ("proj_clip", 2, "f32", 0.0)),
}


def _decode(kind: str, value: Any) -> Any:
    if kind == "pad":
        return _PADDING.get(value, value)
    if kind == "act":
        return _ACTIVATION.get(value, value)
    if kind == "mirror":
        return _MIRROR.get(value, value)
    if kind == "type":
        name = _types(value)
        return NUMPY_NAMES.get(name) or name.lower()
    return value


def _option_specs() -> dict[int, tuple]:
    """BuiltinOptions code -> (its fields, the options when every field has its default)."""
    from ._schema import schema

    codes = schema().BuiltinOptions
    return {
        getattr(codes, name): (fields, MappingProxyType({n: _decode(k, d) for n, _, k, d in fields}))
        for name, fields in _OPTION_FIELDS.items()
        if hasattr(codes, name)
    }


_OPTIONS_BY_CODE: dict[int, tuple] | None = None
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_SCALARS = {"i32": _I32, "f32": _F32, "bool": _U8, "pad": _I8, "act": _I8, "mirror": _I8, "type": _I8}


def _options(r: Reader, table: int, spec: tuple) -> Mapping[str, Any]:
    fields, defaults = spec
    sl = r.slots(table)
    if not any(sl[i] for _, i, _, _ in fields):
        return defaults  # the converter leaves out every field at its default
    buf = r.buf
    out: dict[str, Any] = {}
    for name, i, kind, default in fields:
        o = sl[i]
        if not o:
            out[name] = defaults[name]
        elif kind == "ints":
            out[name] = r.vec(table, o, "i", 4)
        elif kind == "str":
            out[name] = r.text(table, o)
        elif kind == "bool":
            out[name] = _U8(buf, table + o)[0] != 0
        else:
            out[name] = _decode(kind, _SCALARS[kind](buf, table + o)[0])
    return MappingProxyType(out)


def read_graph(model_bytes: bytes | bytearray | memoryview) -> Graph:
    """Read every subgraph of a ``.tflite`` model: operators, tensors, who produces and consumes what.

    Reads the flatbuffer in place (copies only names and small vectors into the records). Work
    is bounded by the file's size. Raises ``ModelLoadError`` with one sentence when the bytes
    are not a TFLite model, or when its graph is corrupt, truncated or crafted to repeat itself.
    """
    from .inspection import _CORRUPT, _check_header, as_buffer

    data = as_buffer(model_bytes)
    _check_header(data, "the model")
    try:
        return _read(Reader(data))
    except ModelLoadError:
        raise
    except _CORRUPT as exc:
        raise ModelLoadError(
            f"The model's graph is corrupt or truncated ({type(exc).__name__} while reading it); "
            "download or convert it again."
        ) from None


def _opcodes(r: Reader, root: int) -> list[tuple[str, str, int]]:
    names = builtin_op_names()
    sl = r.slots(root)
    p = r.target(root, sl[_M_CODES])
    if not p:
        return []
    out = []
    for oc in r.tables(p + 4, _U32(r.buf, p)[0], "operator-code list"):
        s = r.slots(oc)
        buf = r.buf
        # Schema v3a moved builtin codes past 127 into a new field and left the old one at its
        # maximum as a placeholder: the larger of the two is the real code.
        dep = _I8(buf, oc + s[_OC_DEPRECATED])[0] if s[_OC_DEPRECATED] else 0
        code = max(dep, _I32(buf, oc + s[_OC_BUILTIN])[0] if s[_OC_BUILTIN] else 0)
        version = _I32(buf, oc + s[_OC_VERSION])[0] if s[_OC_VERSION] else 1
        if code == _CUSTOM:
            custom = r.text(oc, s[_OC_CUSTOM])
            out.append((custom or "CUSTOM", "flex" if custom.startswith("Flex") else "custom", version))
        else:
            out.append((names.get(code, f"BUILTIN_{code}"), "builtin", version))
    return out


class _Columns:
    """Reads one field of many tables at once with numpy: the columnar half of the graph pass.

    A model with 100,000 tensors costs 100,000 iterations of any per-tensor Python loop; here
    a field of every tensor is one fancy-indexing call. Positions are checked against the
    buffer before each gather (``ValueError`` outside it), so a corrupt file cannot read past
    its end. Arrays are views of the model's bytes; gathers copy only the values they pick.
    """

    def __init__(self, r: Reader) -> None:
        import numpy as np

        self.np = np
        self.r = r
        self.size = r.size
        self.u8 = np.frombuffer(r.buf, np.uint8)
        self.words = np.frombuffer(r.buf, "<u4", count=r.size // 4)
        self.none = np.zeros(0, np.int64)

    def check(self, pos, width) -> None:
        """Raise ``ValueError`` unless ``pos + width`` (arrays or numbers) lies within the buffer."""
        if len(pos) and (int(pos.min()) < 0 or int((pos + width).max()) > self.size):
            raise ValueError(f"a field lies outside the {self.size}-byte buffer")

    def u32(self, pos):
        """Unsigned 32-bit values at byte positions ``pos`` (an int64 array), as int64."""
        np = self.np
        self.check(pos, 4)
        if not (pos & 3).any():  # the usual case: a flatbuffer aligns its 4-byte fields
            return self.words[pos >> 2].astype(np.int64)
        idx = pos[:, None] + np.arange(4)
        return self.u8[idx].copy().view("<u4").ravel().astype(np.int64)

    def i32(self, pos):
        v = self.u32(pos)
        return (v ^ 0x80000000) - 0x80000000

    def tables(self, start: int, n: int, what: str):
        """Positions of the ``n`` tables of a vector at ``start``; entries naming one table twice
        are refused (``ModelLoadError``), as in ``Reader.tables``."""
        np = self.np
        if not n:
            return self.none
        self.r.charge(4 * n + 4)
        slots = start + 4 * np.arange(n, dtype=np.int64)
        pos = slots + self.u32(slots)
        distinct = len(np.unique(pos))
        if distinct != n:
            raise aliased(self.r.budget.what, what, n, distinct)
        self.check(pos, 4)
        return pos

    def fields(self, pos, width: int):
        """The field offsets of the tables at ``pos``: an (n, width) array, 0 where absent."""
        np = self.np
        if not len(pos):
            return np.zeros((0, width), np.int64)
        vt = pos - self.i32(pos)
        uniq, inverse = np.unique(vt, return_inverse=True)
        rows = np.zeros((len(uniq), width), np.int64)
        r = self.r
        for row, v in enumerate(uniq.tolist()):
            if v < 0:
                raise ValueError(f"offset {v} is outside the {self.size}-byte buffer")
            got = r._vtables.get(v)
            if got is None:
                n = max(0, (_U16(r.buf, v)[0] - 4) // 2)
                got = r._vtables[v] = unpacker(n, "H")(r.buf, v + 4) + _VTABLE_PAD
                r.charge(4 + 2 * n)
            rows[row] = got[:width]
        return rows[inverse.ravel()]

    def targets(self, pos, offsets):
        """Where the offset fields at ``pos + offsets`` point (rows with a 0 offset: -1)."""
        np = self.np
        out = np.full(len(pos), -1, np.int64)
        have = offsets != 0
        if have.any():
            p = pos[have] + offsets[have]
            out[have] = p + self.u32(p)
        return out

    def scalars(self, pos, offsets, kind: str, default: int):
        """A scalar field (``u8``, ``i8``, ``i32``, ``u32``) of each table, ``default`` where absent."""
        np = self.np
        out = np.full(len(pos), default, np.int64)
        have = offsets != 0
        if have.any():
            p = pos[have] + offsets[have]
            if kind == "u32":
                out[have] = self.u32(p)
            elif kind == "i32":
                out[have] = self.i32(p)
            else:
                self.check(p, 1)
                v = self.u8[p].astype(np.int64)
                out[have] = (v ^ 0x80) - 0x80 if kind == "i8" else v
        return out

    def vectors(self, places, width: int):
        """(start of the data, element count) of the vectors or strings whose length prefixes
        sit at ``places`` (-1: absent, count 0), checked to lie within the buffer and charged."""
        np = self.np
        have = places >= 0
        lengths = np.zeros(len(places), np.int64)
        if have.any():
            lengths[have] = self.u32(places[have])
            self.check(places[have] + 4, width * lengths[have])
        self.r.charge(width * int(lengths.sum()) + 4 * int(have.sum()))
        return np.where(have, places + 4, 0), lengths

    def ints(self, starts, lengths):
        """The int32 values of the vectors (``starts``, ``lengths``) end to end, and where each starts."""
        np = self.np
        first = np.cumsum(lengths) - lengths
        total = int(lengths.sum())
        if not total:
            return np.zeros(0, np.int64), first
        pos = np.repeat(starts - 4 * first, lengths) + 4 * np.arange(total, dtype=np.int64)
        return self.i32(pos), first


class _SubgraphColumns:
    """A subgraph's tensors and operators as columns, and the records built from them."""

    def __init__(self, cols: _Columns, s_index: int, codes: list, buffers) -> None:
        self.buf = cols.r.buf
        self.np = cols.np
        self.s_index = s_index
        self.codes = codes
        self._buffers = buffers
        self._quants: dict[tuple, Quantization] = {}

    # -- summaries without records

    def opcode_counts(self) -> dict[int, tuple[str, str, int, int]]:
        counts = self.np.bincount(self.opcode, minlength=0) if len(self.opcode) else []
        return {i: (*self.codes[i], int(n)) for i, n in enumerate(counts) if n}

    def resource_count(self) -> int:
        return int((self.types == _RESOURCE).sum())

    def variable_count(self) -> int:
        return int(self.variable.sum())

    def activation_bytes(self) -> int:
        """Bytes of every non-constant tensor at its declared shape (see ``Graph.activation_bytes``)."""
        np = self.np
        keep = ~self.constant
        if not keep.any():
            return 0
        itemsize = np.array([_ITEMSIZE.get(self.dtypes.get(int(c), ""), 4) for c in range(-128, 128)], np.int64)
        dims = np.maximum(self.shape_vals, 1)
        lengths = self.shape_len
        # log2 of each tensor's element count: exact products for those below 2**56, Python's
        # integers for the rest (only crafted files declare such tensors)
        logs = np.zeros(len(lengths))
        nonempty = lengths > 0
        if len(dims):
            logs[nonempty] = np.add.reduceat(np.log2(dims.astype(np.float64)), self.shape_first[nonempty])
        counts = np.ones(len(lengths), np.int64)
        small = nonempty & (logs < 56)
        if small.any():
            counts[small] = np.multiply.reduceat(dims.astype(np.int64), self.shape_first[nonempty])[small[nonempty]]
        sizes = itemsize[(self.types + 128) & 255]
        total = int((counts * sizes)[keep & (logs < 56)].sum(dtype=object))
        for i in np.nonzero(keep & (logs >= 56))[0].tolist():
            a, k = int(self.shape_first[i]), int(self.shape_len[i])
            total += math.prod(max(1, int(d)) for d in self.shape_vals[a : a + k].tolist()) * int(sizes[i])
        return total

    # -- records

    def _quantization(self, i: int) -> Quantization:
        k = int(self.scale_len[i])
        if not k:
            return _NO_QUANTIZATION
        scale = unpacker(k, "f")(self.buf, int(self.scale_at[i]))
        z = int(self.zp_len[i])
        zp = unpacker(z, "q")(self.buf, int(self.zp_at[i])) if z else (0,) * k
        key = (scale, zp, int(self.quant_dim[i]))
        got = self._quants.get(key)
        if got is None:
            got = self._quants[key] = Quantization(scale=scale, zero_point=zp, quantized_dimension=key[2])
        return got

    def _name(self, at: int, n: int) -> str:
        return str(self.buf[at : at + n], "utf-8", "replace") if n else ""

    def tensor(self, i: int) -> Tensor:
        a, k = int(self.shape_first[i]), int(self.shape_len[i])
        shape = tuple(self.shape_vals[a : a + k].tolist())
        a, k = int(self.sig_first[i]), int(self.sig_len[i])
        sig = tuple(self.sig_vals[a : a + k].tolist()) if k else shape
        a, b = int(self.cons_bounds[i]), int(self.cons_bounds[i + 1])
        code = int(self.types[i])
        producer = int(self.producer[i])
        return Tensor(
            i,
            self._name(int(self.name_at[i]), int(self.name_len[i])),
            shape,
            sig,
            self.dtypes.get(code) or f"type_{code}",
            self._quantization(i),
            int(self.buffer[i]),
            bool(self.constant[i]),
            bool(self.variable[i]),
            None if producer < 0 else producer,
            tuple(self.cons_ops[a:b].tolist()),
        )

    def all_tensors(self) -> list[Tensor]:
        shape_vals, sig_vals = self.shape_vals.tolist(), self.sig_vals.tolist()
        cons_ops, bounds = self.cons_ops.tolist(), self.cons_bounds.tolist()
        dtypes, name, quant = self.dtypes, self._name, self._quantization
        quantized = set(self.np.nonzero(self.scale_len)[0].tolist())
        out = []
        for i, (na, nl, sa, sl, ga, gl, code, b, c, v, p) in enumerate(
            zip(
                self.name_at.tolist(), self.name_len.tolist(), self.shape_first.tolist(), self.shape_len.tolist(),
                self.sig_first.tolist(), self.sig_len.tolist(), self.types.tolist(), self.buffer.tolist(),
                self.constant.tolist(), self.variable.tolist(), self.producer.tolist(),
            )
        ):
            shape = tuple(shape_vals[sa : sa + sl])
            out.append(
                Tensor(
                    i, name(na, nl), shape, tuple(sig_vals[ga : ga + gl]) if gl else shape,
                    dtypes.get(code) or f"type_{code}", quant(i) if i in quantized else _NO_QUANTIZATION,
                    b, c, v, None if p < 0 else p, tuple(cons_ops[bounds[i] : bounds[i + 1]]),
                )
            )
        return out

    def operator(self, j: int) -> Operator:
        c = int(self.opcode[j])
        a, k = int(self.in_first[j]), int(self.in_len[j])
        ins = tuple(self.in_vals[a : a + k].tolist())
        a, k = int(self.out_first[j]), int(self.out_len[j])
        outs = tuple(self.out_vals[a : a + k].tolist())
        name, kind, version = self.codes[c]
        return Operator(j, name, kind, version, c, ins, outs, self.options[j])

    def all_operators(self) -> list[Operator]:
        in_vals, out_vals = self.in_vals.tolist(), self.out_vals.tolist()
        codes = self.codes
        return [
            Operator(j, *codes[c], c, tuple(in_vals[a : a + k]), tuple(out_vals[b : b + m]), opt)
            for j, (c, a, k, b, m, opt) in enumerate(
                zip(
                    self.opcode.tolist(), self.in_first.tolist(), self.in_len.tolist(),
                    self.out_first.tolist(), self.out_len.tolist(), self.options,
                )
            )
        ]


def _read(r: Reader) -> Graph:
    global _OPTIONS_BY_CODE
    if _OPTIONS_BY_CODE is None:
        _OPTIONS_BY_CODE = _option_specs()
    buf = r.buf
    root = r.root()
    codes = _opcodes(r, root)
    cols = _Columns(r)
    np = cols.np
    p = r.target(root, r.slots(root)[_M_BUFFERS])
    n_b = _U32(buf, p)[0] if p else 0
    if n_b:
        # Entries of the buffer list may name one table more than once (one empty buffer for
        # every tensor without data is a fair way to write a model), so they are not refused:
        # each is read at most once per tensor, which the tensor list bounds.
        r.charge(4 * n_b + 4)
        slots = p + 4 + 4 * np.arange(n_b, dtype=np.int64)
        buffers = slots + cols.u32(slots)
    else:
        buffers = cols.none
    p = r.target(root, r.slots(root)[_M_SUBGRAPHS])
    positions = cols.tables(p + 4, _U32(buf, p)[0], "subgraph list").tolist() if p else []
    if not positions:
        raise ModelLoadError("The model has no subgraph, so there is nothing to run; convert it again.")
    return Graph(subgraphs=tuple(_subgraph(cols, i, sg, codes, buffers) for i, sg in enumerate(positions)))


def _subgraph(cols: _Columns, s_index: int, sg: int, codes: list, buffers) -> Subgraph:
    np = cols.np
    r = cols.r
    buf = r.buf
    sl = r.slots(sg)
    c = _SubgraphColumns(cols, s_index, codes, buffers)
    tp = r.target(sg, sl[_SG_TENSORS])
    tpos = cols.tables(tp + 4, _U32(buf, tp)[0], f"tensor list of subgraph {s_index}") if tp else cols.none
    n_t = len(tpos)
    op_p = r.target(sg, sl[_SG_OPERATORS])
    opos = cols.tables(op_p + 4, _U32(buf, op_p)[0], f"operator list of subgraph {s_index}") if op_p else cols.none
    n_o = len(opos)

    # -- operators: opcode, inputs, outputs, options
    of = cols.fields(opos, 5)
    c.opcode = cols.scalars(opos, of[:, _O_OPCODE], "u32", 0)
    if n_o and int(c.opcode.max()) >= len(codes):
        bad = int(c.opcode.max())
        raise ModelLoadError(f"An operator uses opcode {bad}, which the model does not define; the file is corrupt.")
    starts, c.in_len = cols.vectors(cols.targets(opos, of[:, _O_INPUTS]), 4)
    c.in_vals, c.in_first = cols.ints(starts, c.in_len)
    starts, c.out_len = cols.vectors(cols.targets(opos, of[:, _O_OUTPUTS]), 4)
    c.out_vals, c.out_first = cols.ints(starts, c.out_len)
    if len(c.in_vals) and (int(c.in_vals.min()) < -1 or int(c.in_vals.max()) >= n_t):
        bad = int(c.in_vals.max()) if int(c.in_vals.max()) >= n_t else int(c.in_vals.min())
        raise ModelLoadError(f"An operator of subgraph {s_index} reads tensor {bad}, but the subgraph has {n_t}; the file is corrupt.")
    if len(c.out_vals) and (int(c.out_vals.min()) < 0 or int(c.out_vals.max()) >= n_t):
        bad = int(c.out_vals.max()) if int(c.out_vals.max()) >= n_t else int(c.out_vals.min())
        raise ModelLoadError(f"An operator of subgraph {s_index} writes tensor {bad}, but the subgraph has {n_t}; the file is corrupt.")
    c.options = _all_options(cols, opos, of)

    # -- who produces and who consumes each tensor
    op_ids = np.arange(n_o, dtype=np.int64)
    c.producer = np.full(n_t, -1, np.int64)
    c.producer[c.out_vals] = np.repeat(op_ids, c.out_len)  # with two writers (corrupt), the last wins
    readers = np.repeat(op_ids, c.in_len)
    used = c.in_vals >= 0
    # (tensor, operator) pairs, each once, sorted by tensor then by execution order
    pairs = np.unique(c.in_vals[used] * max(n_o, 1) + readers[used])
    t_of, c.cons_ops = np.divmod(pairs, max(n_o, 1))
    c.cons_bounds = np.searchsorted(t_of, np.arange(n_t + 1))

    # -- tensors
    tf = cols.fields(tpos, 8)
    starts, c.shape_len = cols.vectors(cols.targets(tpos, tf[:, _T_SHAPE]), 4)
    c.shape_vals, c.shape_first = cols.ints(starts, c.shape_len)
    starts, c.sig_len = cols.vectors(cols.targets(tpos, tf[:, _T_SIGNATURE]), 4)
    c.sig_vals, c.sig_first = cols.ints(starts, c.sig_len)
    c.types = cols.scalars(tpos, tf[:, _T_TYPE], "i8", 0)
    c.buffer = cols.scalars(tpos, tf[:, _T_BUFFER], "u32", 0)
    c.name_at, c.name_len = cols.vectors(cols.targets(tpos, tf[:, _T_NAME]), 1)
    c.variable = cols.scalars(tpos, tf[:, _T_VARIABLE], "u8", 0) != 0
    _quantization_columns(cols, c, tpos, tf)
    c.constant = _constant(cols, buffers, c.buffer)
    c.dtypes = {code: NUMPY_NAMES.get(name) or name.lower() for code, name in tensor_type_names().items()}
    r.charge(16 * n_t + 16 * n_o)

    ins = r.vec(sg, sl[_SG_INPUTS], "i", 4)
    outs = r.vec(sg, sl[_SG_OUTPUTS], "i", 4)
    for t in (*ins, *outs):
        if not 0 <= t < n_t:
            raise ModelLoadError(
                f"Subgraph {s_index} names tensor {t} as an input or output, but has {n_t}; the file is corrupt."
            )
    return Subgraph(
        index=s_index,
        name=r.text(sg, sl[_SG_NAME]),
        inputs=ins,
        outputs=outs,
        tensors=Records(n_t, c.tensor, c.all_tensors),
        operators=Records(n_o, c.operator, c.all_operators),
        _columns=c,
    )


def _all_options(cols: _Columns, opos, of) -> list[Mapping[str, Any]]:
    """The builtin options of every operator; only tables with a field set are read one by one."""
    np = cols.np
    out: list[Mapping[str, Any]] = [_EMPTY] * len(opos)
    specs = _OPTIONS_BY_CODE or {}
    kinds = cols.scalars(opos, of[:, _O_OPTIONS_TYPE], "u8", 0)
    tables = cols.targets(opos, of[:, _O_OPTIONS])
    for code in np.unique(kinds[tables >= 0]).tolist():
        spec = specs.get(code)
        if spec is None:
            continue
        fields, defaults = spec
        which = np.nonzero((kinds == code) & (tables >= 0))[0]
        width = max(i for _, i, _, _ in fields) + 1
        set_fields = cols.fields(tables[which], width)[:, [i for _, i, _, _ in fields]].any(axis=1)
        for j in which[~set_fields].tolist():
            out[j] = defaults  # the converter leaves out every field at its default
        for j in which[set_fields].tolist():
            out[j] = _options(cols.r, int(tables[j]), spec)
    return out


def _quantization_columns(cols: _Columns, c: _SubgraphColumns, tpos, tf) -> None:
    """Where each tensor's scales and zero points are (checked and charged), and its dimension."""
    np = cols.np
    n = len(tpos)
    c.scale_at = np.zeros(n, np.int64)
    c.scale_len = np.zeros(n, np.int64)
    c.zp_at = np.zeros(n, np.int64)
    c.zp_len = np.zeros(n, np.int64)
    c.quant_dim = np.zeros(n, np.int64)
    q = cols.targets(tpos, tf[:, _T_QUANT])
    which = np.nonzero(q >= 0)[0]
    if not which.size:
        return
    qpos = q[which]
    qf = cols.fields(qpos, 7)
    c.scale_at[which], c.scale_len[which] = cols.vectors(cols.targets(qpos, qf[:, _Q_SCALE]), 4)
    c.zp_at[which], c.zp_len[which] = cols.vectors(cols.targets(qpos, qf[:, _Q_ZERO_POINT]), 8)
    c.quant_dim[which] = cols.scalars(qpos, qf[:, _Q_DIMENSION], "i32", 0)


def _constant(cols: _Columns, buffers, ids):
    """Whether each tensor's buffer holds data: its data vector is not empty, or it names bytes
    after the flatbuffer (``offset``/``size``, for models past 2 GB). Buffer 0 is the schema's
    empty sentinel."""
    np = cols.np
    out = np.zeros(len(ids), bool)
    valid = (ids > 0) & (ids < len(buffers))
    if not valid.any():
        return out
    uniq, inverse = np.unique(ids[valid], return_inverse=True)
    pos = buffers[uniq]
    cols.check(pos, 4)
    bf = cols.fields(pos, 3)
    data = cols.targets(pos, bf[:, _B_DATA])
    has = np.zeros(len(uniq), bool)
    present = data >= 0
    if present.any():
        has[present] = cols.u32(data[present]) > 0
    sized = ~has & (bf[:, _B_SIZE] != 0)
    if sized.any():
        p = pos[sized] + bf[sized, _B_SIZE]
        has[sized] = (cols.u32(p) != 0) | (cols.u32(p + 4) != 0)
    out[valid] = has[inverse.ravel()]
    return out


# -- normalization at the graph's start ----------------------------------------------------------

# Ops that keep real values as they are (a cast, a change of representation).
_PASS_THROUGH = ("QUANTIZE", "DEQUANTIZE", "CAST")
_ARITHMETIC = ("ADD", "SUB", "MUL", "DIV")
# The data ranges an input usually comes in, the first that maps onto a normalised range wins.
_USUAL_RANGES = ((0.0, 255.0), (0.0, 1.0), (-1.0, 1.0))
_MAX_CHAIN = 6
_MAX_CONSTANT = 4096


@dataclass(frozen=True)
class InputNormalization:
    """The arithmetic a model applies to one input before anything else: ``y = scale * x + offset``.

    ``scale`` and ``offset`` hold one value, or one per channel (the last dimension). ``ops``
    names the operators of the chain, ``output`` the tensor where it ends. ``expects`` is the
    usual data range ((0, 255), (0, 1) or (-1, 1)) that the chain maps onto [0, 1] or
    [-1, 1] (or else onto a standardised range around 0, as a mean/std normalisation does),
    and ``maps_to`` where it lands; both None when no usual range fits. Evidence, not proof,
    of the range the model was trained on.
    """

    @property
    def standardises(self) -> bool:
        """Whether the chain maps ``expects`` onto a mean/std range rather than [0, 1] or [-1, 1]."""
        return self.maps_to is not None and self.maps_to not in ((0.0, 1.0), (-1.0, 1.0))

    input_index: int
    tensor: int
    ops: tuple[str, ...]
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    output: int
    expects: tuple[float, float] | None
    maps_to: tuple[float, float] | None

    def apply(self, lo: float, hi: float) -> tuple[float, float]:
        """Where the chain sends the data range [lo, hi] (the widest over the channels)."""
        ends = [a * x + b for a, b in zip(self.scale, self.offset) for x in (lo, hi)]
        return min(ends), max(ends)

    def describe(self) -> str:
        chain = " → ".join(self.ops)
        if len(self.scale) == 1:
            how = f"y = {self.scale[0]:.6g}·x {'+' if self.offset[0] >= 0 else '−'} {abs(self.offset[0]):.6g}"
        else:
            how = f"y = scale·x + offset per channel (scales {', '.join(f'{a:.4g}' for a in self.scale)})"
        if self.expects is None:
            return f"The model starts with {chain} on this input ({how}); it does not map a usual data range onto [0, 1] or [−1, 1]."
        lo, hi = self.expects
        a, b = self.maps_to
        onto = f"about [{a:.3g}, {b:.3g}] (a mean/std standardisation)" if self.standardises else f"[{a:g}, {b:g}]"
        return (
            f"The model starts with {chain} on this input ({how}): it maps data in [{lo:g}, {hi:g}] "
            f"onto {onto}, so it probably expects data in [{lo:g}, {hi:g}] (a guess from the graph)."
        )


def constant_values(model_bytes: bytes | memoryview, tensor: Tensor, *, max_elements: int = _MAX_CONSTANT) -> tuple[float, ...] | None:
    """The real values of a constant tensor (dequantized), or None when it is not a small
    constant of a numeric type. Reads at most ``max_elements`` values; copies only those."""
    from .inspection import as_buffer

    if not tensor.is_constant:
        return None
    count = 1
    for d in tensor.shape:
        count *= max(0, d)
    if not 0 < count <= max_elements:
        return None
    fmt = {"float32": "f", "float16": "e", "float64": "d", "int8": "b", "uint8": "B", "int16": "h", "int32": "i", "int64": "q"}.get(tensor.dtype)
    if fmt is None:
        return None
    data = as_buffer(model_bytes)
    r = Reader(data)
    try:
        root = r.root()
        p = r.target(root, r.slots(root)[_M_BUFFERS])
        pos = r.element(p + 4, _U32(data, p)[0], tensor.buffer)
        s = r.slots(pos)
        width = struct.calcsize(fmt)
        if s[_B_DATA]:
            v = r.target(pos, s[_B_DATA])
            start, n = v + 4, _U32(data, v)[0]
        elif s[_B_OFFSET] and s[_B_SIZE]:
            start, n = _U64(data, pos + s[_B_OFFSET])[0], _U64(data, pos + s[_B_SIZE])[0]
        else:
            return None
        if n < count * width or start + count * width > len(data):
            return None
        values = struct.unpack_from(f"<{count}{fmt}", data, start)
    except (ValueError, struct.error, IndexError):
        return None
    q = tensor.quantization
    if q.is_quantized and fmt not in "efd":
        if q.per_channel:
            return None
        return tuple(q.scale[0] * (v - (q.zero_point[0] if q.zero_point else 0)) for v in values)
    return tuple(float(v) for v in values)


def input_normalization(model_bytes: bytes | memoryview, graph: Graph | None = None) -> tuple[InputNormalization, ...]:
    """For each input of the main subgraph that starts with arithmetic by constants, that arithmetic.

    Follows the chain from each input while the tensor feeds exactly one operator and that
    operator is ADD, SUB, MUL or DIV with a constant (a scalar or one value per channel) or a
    QUANTIZE, DEQUANTIZE or CAST (which keep real values), up to six operators. ``x`` is the
    input's real value (for a quantized input, ``scale * (q - zero_point)``). Inputs with no
    such chain are left out. Reads at most a few constants of 4,096 values. Raises
    ``ModelLoadError`` when the graph cannot be read.
    """
    graph = graph or read_graph(model_bytes)
    sub = graph.main
    found = []
    for position, t_index in enumerate(sub.inputs):
        chain = _follow(model_bytes, sub, t_index)
        if chain is None:
            continue
        ops, scale, offset, end = chain
        result = InputNormalization(position, t_index, ops, scale, offset, end, None, None)
        found.append(_judge(result))
    return tuple(found)


def _judge(n: InputNormalization) -> InputNormalization:
    """Fill in ``expects``: the first usual data range that the chain maps exactly onto [0, 1]
    or [-1, 1], else the first it maps onto a standardised range (within [-4, 4], around 0,
    at least 2 wide: a mean/std normalisation such as ImageNet's)."""
    from dataclasses import replace

    standardised = None
    for lo, hi in _USUAL_RANGES:
        a, b = n.apply(lo, hi)
        for target in ((0.0, 1.0), (-1.0, 1.0)):
            if math.isclose(a, target[0], abs_tol=1e-3) and math.isclose(b, target[1], abs_tol=1e-3):
                return replace(n, expects=(lo, hi), maps_to=target)
        if standardised is None and -4.0 <= a < 0.0 < b <= 4.0 and b - a >= 2.0:
            standardised = replace(n, expects=(lo, hi), maps_to=(round(a, 4), round(b, 4)))
    return standardised or n


def _constant_operand(model_bytes, sub: Subgraph, t: int) -> tuple[float, ...] | None:
    """The values of operand ``t``: a constant, or a DEQUANTIZE of one (float16 weights)."""
    tensor = sub.tensors[t]
    if not tensor.is_constant and tensor.producer is not None:
        op = sub.operators[tensor.producer]
        if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] >= 0:
            tensor = sub.tensors[op.inputs[0]]
    return constant_values(model_bytes, tensor)


def _follow(model_bytes, sub: Subgraph, start: int):
    shape = sub.tensors[start].shape
    # per-channel constants match the last dimension; a long one (audio, tokens) is no channel axis
    channels = shape[-1] if shape and 0 < shape[-1] <= 64 else 1
    scale = [1.0] * channels
    offset = [0.0] * channels
    ops: list[str] = []
    current = start
    for _ in range(_MAX_CHAIN):
        consumers = sub.tensors[current].consumers
        if len(consumers) != 1:
            break
        op = sub.operators[consumers[0]]
        if len(op.outputs) != 1:
            break
        if op.name in _PASS_THROUGH:
            ops.append(op.name)
            current = op.outputs[0]
            continue
        if op.name not in _ARITHMETIC or len(op.inputs) != 2 or op.options.get("fused_activation_function", "NONE") != "NONE":
            break
        x_first = op.inputs[0] == current
        other = op.inputs[1] if x_first else op.inputs[0]
        if other < 0 or other == current:
            break
        values = _constant_operand(model_bytes, sub, other)
        if not values or len(values) not in (1, len(scale)):
            break
        c = values * len(scale) if len(values) == 1 else values
        if op.name == "ADD":
            offset = [b + v for b, v in zip(offset, c)]
        elif op.name == "SUB" and x_first:
            offset = [b - v for b, v in zip(offset, c)]
        elif op.name == "SUB":
            scale, offset = [-a for a in scale], [v - b for b, v in zip(offset, c)]
        elif op.name == "MUL":
            scale, offset = [a * v for a, v in zip(scale, c)], [b * v for b, v in zip(offset, c)]
        elif op.name == "DIV" and x_first and all(v != 0 for v in c):
            scale, offset = [a / v for a, v in zip(scale, c)], [b / v for b, v in zip(offset, c)]
        else:
            break
        ops.append(op.name)
        current = op.outputs[0]
    if not any(o in _ARITHMETIC for o in ops):
        return None
    # The ops after the last arithmetic one (a trailing QUANTIZE) are not part of the chain.
    while ops and ops[-1] not in _ARITHMETIC:
        ops.pop()
        current = sub.operators[sub.tensors[current].producer].inputs[0]
    if len(set(scale)) == 1 and len(set(offset)) == 1:
        scale, offset = scale[:1], offset[:1]
    return tuple(ops), tuple(scale), tuple(offset), current
