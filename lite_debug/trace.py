"""Every intermediate tensor of one run: statistics per tensor, findings, values on demand.

``trace(model_bytes, spec, feed)`` runs the model once plainly and once through a copy of it in
which every op's output is also an output of the subgraph (Polygraphy's "mark all"): the
interpreter, and the default XNNPACK delegate with it, must then write out every intermediate
tensor, where a delegated partition otherwise keeps them to itself and
``experimental_preserve_all_tensors`` is known to change outputs in some runtimes. Both runs
happen in a worker process; there each tensor is reduced to a row of statistics (min, max,
mean, std, NaN and Inf counts, zeros, and for a quantized tensor the values at the ends of its
integer range), so this process holds kilobytes, not the tensors. The traced run's outputs are
compared with the plain run's: ``TraceResult.outputs_equal`` says whether the marking changed
them. ``fetch=`` brings chosen tensors' full values back (under the worker's output cap).

Findings are read from the rows: the first tensor in execution order that holds NaN (and the
op that made it), the first that holds Inf, quantized tensors with more than ``saturation`` of
their values at an end of their integer range that is not a clamp of their op, and tensors
that are all zeros after an activation (dead).

Only the subgraph that runs is traced (the main graph, or a signature's): the tensors inside
control-flow bodies (WHILE, IF) are not outputs of it, and a note says so.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Hashable, Literal, Mapping, Sequence

from .records import Feed, ModelSpec, OutputTensor, Quantization, RunResult

__all__ = [
    "DEAD_AFTER",
    "SATURATION",
    "Finding",
    "TensorStats",
    "TraceResult",
    "TracedTensor",
    "feed_key",
    "trace",
]

SATURATION = 0.01  # a quantized tensor with more than this share of values at a bound is saturated

# Ops after which a tensor of zeros means no unit fired: the ReLU family, as an op or fused.
DEAD_AFTER = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"})
# What an op's own output range ends at, by design (values there are not a quantizer's clipping).
_OP_CLAMPS: Mapping[str, tuple[float, ...]] = {
    "RELU": (0.0,), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0), "RELU_0_TO_1": (0.0, 1.0),
    "LOGISTIC": (0.0, 1.0), "TANH": (-1.0, 1.0), "SOFTMAX": (0.0, 1.0), "HARD_SWISH": (0.0,),
}
# Dtypes whose values a worker reduces (the others, strings and resources, have none to reduce).
_NUMERIC = frozenset({
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "complex64", "complex128",
})
_INTEGERS = frozenset({"int8", "uint8", "int16", "uint16", "int32", "int64"})
_TOLERANCE = 1e-5  # relative: traced outputs this close to the plain run's count as the same values


@dataclass(frozen=True)
class TensorStats:
    """What one tensor held in the run.

    ``min``, ``max``, ``mean`` and ``std`` are of its finite values (None when it has none), in
    real units for a quantized tensor. ``nan`` and ``inf`` count elements; ``zeros`` is the
    share of elements that are exactly zero. For a quantized tensor, ``at_qmin`` and
    ``at_qmax`` are the shares at the ends of its integer range and ``saturated`` the share at
    an end that is neither 0.0 nor a clamp of the op that made it (None for other tensors).
    """

    count: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nan: int
    inf: int
    zeros: float
    saturated: float | None = None
    at_qmin: float | None = None
    at_qmax: float | None = None

    @property
    def max_abs(self) -> float | None:
        if self.min is None or self.max is None:
            return None
        return max(abs(self.min), abs(self.max))

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": _finite(self.min), "max": _finite(self.max), "mean": _finite(self.mean), "std": _finite(self.std),
            "nan": self.nan, "inf": self.inf, "zeros": self.zeros, "saturated": self.saturated,
        }


@dataclass(frozen=True)
class TracedTensor:
    """One tensor of the traced subgraph, at its place in execution order.

    ``position``: 0 for the first input, then the outputs of each op in the order the ops run.
    ``op_index`` and ``op``: the operator that made it (None and ``"input"`` for an input).
    ``shape``: its shape in this run (the declared one when the worker could not read it).
    ``stats``: None when it holds no numbers (``note`` says why).
    """

    position: int
    index: int
    name: str
    op_index: int | None
    op: str
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization
    stats: TensorStats | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "op_index": self.op_index,
            "op": self.op,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "stats": self.stats.to_dict() if self.stats is not None else None,
            **({"note": self.note} if self.note else {}),
        }


FindingKind = Literal["nan", "inf", "saturated", "dead", "mismatch"]


@dataclass(frozen=True)
class Finding:
    """Something the trace shows, as a sentence with its tensor and the op that made it.
    ``kind``: ``nan`` and ``inf`` (the first tensor that holds one), ``saturated``, ``dead``,
    ``mismatch`` (the traced run's outputs differ from the plain run's)."""

    kind: FindingKind
    tensor: str
    tensor_index: int | None
    op: str
    op_index: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tensor": self.tensor, "tensor_index": self.tensor_index, "op": self.op,
                "op_index": self.op_index, "message": self.message}


@dataclass(frozen=True)
class TraceResult:
    """One traced run.

    ``run``: the plain run (its outputs, or why it failed: then nothing was traced). ``tensors``:
    every tensor of the subgraph that ran, inputs first, then each op's outputs in execution
    order. ``outputs_equal``: whether the traced run's outputs equal the plain run's (within a
    relative 1e-5; ``differences`` holds each output's largest difference); None when nothing
    was traced. ``values``: the full values of the tensors asked for with ``fetch``, by tensor
    index. Times in milliseconds: the traced invoke, the statistics, and building the traced
    copy (0 when the worker had it from an earlier trace). ``plain_reused``: the plain run is the
    worker's run of the same data just before (whose outputs its interpreter still held), not a
    new one.
    """

    run: RunResult
    subgraph: int = 0
    tensors: tuple[TracedTensor, ...] = ()
    findings: tuple[Finding, ...] = ()
    outputs_equal: bool | None = None
    differences: Mapping[str, float] = field(default_factory=dict)
    values: Mapping[int, OutputTensor] = field(default_factory=dict)
    trace_ms: float | None = None
    stats_ms: float | None = None
    build_ms: float | None = None
    notes: tuple[str, ...] = ()
    plain_reused: bool = False

    @property
    def ok(self) -> bool:
        """The run succeeded and was traced."""
        return self.run.ok and self.outputs_equal is not None

    @property
    def first_nan(self) -> Finding | None:
        return next((f for f in self.findings if f.kind == "nan"), None)

    @property
    def first_inf(self) -> Finding | None:
        return next((f for f in self.findings if f.kind == "inf"), None)

    def tensor(self, index: int) -> TracedTensor:
        """The traced tensor with this tensor index; ``KeyError`` when it was not traced."""
        for t in self.tensors:
            if t.index == index:
                return t
        raise KeyError(f"Tensor {index} is not among the traced tensors.")

    def findings_of(self, index: int) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.tensor_index == index)

    def to_dict(self) -> dict[str, Any]:
        """The trace as JSON-ready data (every float finite or None): ``tensors``, ``first_nan``,
        ``first_inf``, ``findings``, whether the traced outputs equal the plain run's, timings."""
        def where(f: Finding | None) -> dict[str, Any] | None:
            return None if f is None else {"tensor": f.tensor, "tensor_index": f.tensor_index, "op": f.op, "op_index": f.op_index}

        return {
            "subgraph": self.subgraph,
            "traced_outputs_equal": self.outputs_equal,
            "output_differences": {k: _finite(v, "inf") for k, v in self.differences.items()},
            "timing_ms": {"trace": self.trace_ms, "stats": self.stats_ms, "build": self.build_ms},
            "plain_run_reused": self.plain_reused,
            "tensors": [t.to_dict() for t in self.tensors],
            "first_nan": where(self.first_nan),
            "first_inf": where(self.first_inf),
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }


def _finite(value: float | None, infinite: Any = None) -> Any:
    if value is None or math.isnan(value):
        return None
    return value if math.isfinite(value) else infinite


def feed_key(feed: Feed) -> str:
    """A digest of the data (names, dtypes, shapes, bytes and resizes): equal feeds, equal keys.
    What a page caches a trace under."""
    h = hashlib.blake2b(digest_size=16)
    import numpy as np

    for name in sorted(feed.arrays):
        a = np.asarray(feed.arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode("utf-8", "surrogatepass"))
        if a.dtype.kind in "OS":
            h.update(repr(a.tolist()).encode("utf-8", "surrogatepass"))
        else:
            h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    h.update(repr(sorted(feed.resize.items())).encode())
    return h.hexdigest()


# -- the trace -------------------------------------------------------------------------------------


def trace(
    model_bytes: bytes | memoryview,
    spec: ModelSpec,
    feed: Feed,
    signature: str | None = None,
    *,
    pool: Any = None,
    owner: Hashable = None,
    no_default_delegates: bool = False,
    fetch: Sequence[int | str] = (),
    saturation: float = SATURATION,
    on_wait: Any = None,
    reference_kernels: bool = False,
) -> TraceResult:
    """Run ``feed`` (already bound to the model, as ``diagnose`` binds it) once plainly and once
    with every op's output captured, in a worker of ``pool`` (the default pool) for ``owner``.

    ``fetch``: tensors (indices or names) whose full values come back in ``values``.
    ``no_default_delegates``: both runs without the default XNNPACK delegate (the builtin
    kernels alone); ``reference_kernels``: both runs with the reference kernels (``BUILTIN_REF``,
    naive and slow, the runtime's definition of each op). ``saturation``: the share of a quantized tensor's values at an end of its
    range past which it counts as saturated. A run that fails comes back as the result's
    ``run`` with nothing traced. Raises ``KeyError`` for a fetched name the subgraph lacks,
    ``ValueError`` when the model's graph cannot be read, ``WorkerError`` when no worker can start.
    """
    from .running import default_pool

    graph = spec.graph
    if graph is None or not graph.subgraphs:
        raise ValueError(f"The model's graph cannot be read, so it cannot be traced: {spec.problem or 'no subgraphs'}")
    sub_index = spec.signature(signature).subgraph_index if signature is not None else 0
    plan = _plan(spec, sub_index)
    wanted = _resolve(plan.sub, fetch)
    result, reply = (pool or default_pool()).trace(
        model_bytes, spec, feed, signature, owner=owner, on_wait=on_wait, subgraph=sub_index, tensors=plan.numeric,
        mark=plan.mark, quantized=plan.quantized, weights=plan.weights, fetch=wanted,
        no_default_delegates=no_default_delegates, **({"reference_kernels": True} if reference_kernels else {}),
    )
    notes = _notes(graph, sub_index)
    if reply is None:
        return TraceResult(run=result, subgraph=sub_index, notes=notes)
    return _build(plan, result, reply, saturation, notes)


# A worker that loads a model in the background (the dashboard's check when a model opens)
# also builds the marked copy a trace needs, when it costs at most this much memory: the
# model's size plus every tensor of a run at once. A bigger model builds it on its first trace.
AHEAD_BYTES = 64 << 20


def preparation(spec: ModelSpec) -> dict[str, Any] | None:
    """The fields of the ``Prepare`` that readies a worker for ``trace`` of the model's main
    graph with the default kernels (what ``trace`` would send); None when the marked copy
    would cost more than ``AHEAD_BYTES``, or the graph cannot be read."""
    graph = spec.graph
    if graph is None or not graph.subgraphs or spec.activation_bytes + spec.size > AHEAD_BYTES:
        return None
    plan = _plan(spec, 0)
    return {"subgraph": 0, "mark": plan.mark, "quantized": plan.quantized, "weights": plan.weights}


@dataclass(frozen=True)
class _Row:
    """What a traced tensor's record takes from the graph, worked out once per model."""

    position: int
    index: int
    name: str
    op_index: int | None
    op: str
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization
    row: int | None  # its row among the worker's statistics; None: no numbers to reduce
    quantized: bool
    bounds: tuple[bool, bool]  # whether values at the low and high end count as saturation
    activation: bool  # its op ends in a ReLU (a tensor of zeros there is dead)
    template: dict  # its TracedTensor's fields, stats and note to fill (see _build)


@dataclass(frozen=True)
class _Plan:
    """What a trace of one subgraph asks the worker for, and how its rows read: the same for
    every trace of the model, so worked out once (a page traces again on every click)."""

    sub: Any
    rows: tuple[_Row, ...]
    numeric: list[int]
    mark: list[int]
    quantized: dict[int, tuple]
    weights: dict[int, int]


_PLANS: "OrderedDict[tuple[str, int], _Plan]" = OrderedDict()
_PLANS_KEPT = 8


def _plan(spec: ModelSpec, sub_index: int) -> _Plan:
    key = (spec.sha256, sub_index)
    found = _PLANS.get(key)
    if found is not None:
        _PLANS.move_to_end(key)
        return found
    sub = spec.graph.subgraphs[sub_index]  # type: ignore[union-attr]
    tensors, ops = list(sub.tensors), list(sub.operators)
    order = _execution_order(sub)
    numeric = [t for t, _ in order if tensors[t].dtype in _NUMERIC]
    # A DEQUANTIZE of constant weights is folded by the delegate into the op that reads them,
    # and its output never written, marked or not: such tensors are read from their constant.
    weights = {t: ops[op].inputs[0] for t, op in order if op is not None and sub.is_weight(t)}
    mark = [t for t, op in order if op is not None and tensors[t].dtype in _NUMERIC and t not in weights]
    quantized = {
        t: (tuple(q.scale), tuple(q.zero_point), int(q.quantized_dimension))
        for t in (*numeric, *weights.values())
        for q in (tensors[t].quantization,)
        if q.is_quantized and tensors[t].dtype in _INTEGERS
    }
    row_of = {t: r for r, t in enumerate(numeric)}
    rows = []
    for position, (t, op_index) in enumerate(order):
        tensor = tensors[t]
        op = ops[op_index] if op_index is not None else None
        is_quantized = tensor.quantization.is_quantized and tensor.dtype in _INTEGERS
        name, op_name, shape = tensor.name, op.name if op is not None else "input", tuple(tensor.shape)
        row = row_of.get(t)
        rows.append(_Row(
            position=position, index=t, name=name, op_index=op_index, op=op_name, shape=shape, dtype=tensor.dtype,
            quantization=tensor.quantization, row=row, quantized=is_quantized,
            bounds=_counted_bounds(tensor, op) if is_quantized else (False, False), activation=_is_activation(op),
            template=dict(
                position=position, index=t, name=name, op_index=op_index, op=op_name, shape=shape, dtype=tensor.dtype,
                quantization=tensor.quantization, stats=None,
                note=f"A {tensor.dtype} tensor holds no numbers to reduce." if row is None else "",
            ),
        ))
    plan = _Plan(sub=sub, rows=tuple(rows), numeric=numeric, mark=mark, quantized=quantized, weights=weights)
    _PLANS[key] = plan
    while len(_PLANS) > _PLANS_KEPT:
        _PLANS.popitem(last=False)
    return plan


def _execution_order(sub) -> list[tuple[int, int | None]]:
    """(tensor, the op that made it or None) for the subgraph's inputs, then each op's outputs
    in the order the ops run; each tensor once."""
    seen: set[int] = set()
    out: list[tuple[int, int | None]] = []
    n = len(sub.tensors)
    for t in sub.inputs:
        if 0 <= t < n and t not in seen and not sub.tensors[t].is_constant:
            seen.add(t)
            out.append((t, None))
    for op in sub.operators:
        for t in op.outputs:
            if 0 <= t < n and t not in seen:
                seen.add(t)
                out.append((t, op.index))
    return out


def _resolve(sub, fetch: Sequence[int | str]) -> list[int]:
    found = []
    for item in fetch:
        if isinstance(item, str):
            index = next((t.index for t in sub.tensors if t.name == item), None)
            if index is None:
                raise KeyError(f"The traced subgraph has no tensor named {item!r}.")
            found.append(index)
        else:
            if not 0 <= int(item) < len(sub.tensors):
                raise KeyError(f"The traced subgraph has no tensor {item}.")
            found.append(int(item))
    return found


def _notes(graph, sub_index: int) -> tuple[str, ...]:
    others = len(graph.subgraphs) - 1
    if not others:
        return ()
    return (
        f"Only subgraph {sub_index} was traced; the model's {others} other subgraph(s) (control-flow bodies, other "
        "signatures) run inside it or not at all, and their tensors are not outputs of it.",
    )


# A trace's records are built without the generated __init__ (which sets each field through
# object.__setattr__): a new object whose __dict__ is the dict of all its fields, three times as
# fast, for the two records of each of a trace's hundreds of tensors. Only for classes with no
# __post_init__.
_new, _set = object.__new__, object.__setattr__


def _build(plan: _Plan, result: RunResult, reply, saturation: float, notes: tuple[str, ...]) -> TraceResult:
    from .running import _output

    stats, status, ranks = reply.stats.tolist(), reply.status.tolist(), reply.ranks.tolist()
    dims = reply.shapes.tolist()
    shapes: list[tuple[int, ...] | None] = []
    at = 0
    for rank in ranks:
        if rank < 0:
            shapes.append(None)
        else:
            shapes.append(tuple(dims[at:at + rank]))
            at += rank
    traced: list[TracedTensor] = []
    new, set_ = _new, _set
    for p in plan.rows:
        fields = p.template.copy()
        row = p.row
        if row is None:
            pass  # the template's note says why
        elif status[row] == 1:
            fields["note"] = f"No statistics for a {p.dtype} tensor."
        elif status[row] == 2:
            fields["note"] = "The runtime gave no values for this tensor."
        else:
            fields["shape"] = shapes[row] or p.shape
            count, lo, hi, mean, std, nans, infs, zeros, at_qmin, at_qmax = stats[row]
            share = 1.0 / count if count else 0.0
            if p.quantized:
                lo_share, hi_share = at_qmin * share, at_qmax * share
                saturated = (lo_share if p.bounds[0] else 0.0) + (hi_share if p.bounds[1] else 0.0)
            else:
                lo_share = hi_share = saturated = None
            st = new(TensorStats)
            set_(st, "__dict__", {
                "count": int(count), "min": None if lo != lo else lo, "max": None if hi != hi else hi,
                "mean": None if mean != mean else mean, "std": None if std != std else std, "nan": int(nans),
                "inf": int(infs), "zeros": zeros * share, "saturated": saturated, "at_qmin": lo_share,
                "at_qmax": hi_share,
            })
            fields["stats"] = st
        record = new(TracedTensor)
        set_(record, "__dict__", fields)
        traced.append(record)
    names = [o.name for o in result.outputs]
    differences = {name: float(d) for name, d in zip(names, reply.differences)}
    equal = all(
        same or (math.isfinite(differences[o.name]) and differences[o.name] <= _TOLERANCE * max(1.0, _largest(o.values)))
        for o, same in zip(result.outputs, reply.equal)
    )
    sub = plan.sub
    values = {}
    for o in reply.fetched:
        named = replace(o, name=sub.tensors[o.index].name) if not o.name else o
        values[o.index] = _output(named, {})
    activation = {p.index for p in plan.rows if p.activation}
    findings = _findings(traced, activation, saturation)
    if not equal:
        worst = max(differences, key=lambda k: differences[k], default="")
        findings.insert(0, Finding(
            kind="mismatch", tensor=worst, tensor_index=None, op="", op_index=None,
            message=(
                f"The traced run's outputs differ from the plain run's (output {worst!r} by up to "
                f"{differences.get(worst, float('nan')):.3g}): marking every op output changed what the runtime "
                "computed, so the statistics describe the traced run, not exactly the plain one. Trace again "
                "without the default delegate to see the builtin kernels' values."
            ),
        ))
    return TraceResult(
        run=result, subgraph=sub.index, tensors=tuple(traced), findings=tuple(findings), outputs_equal=equal,
        differences=differences, values=values, trace_ms=reply.trace_ms, stats_ms=reply.stats_ms,
        build_ms=reply.build_ms, plain_reused=reply.reused,
        notes=notes + tuple(n for n in reply.notes if n not in result.detail),
    )


def _largest(values: Any) -> float:
    """The largest finite magnitude in an output (0 for none, or for values that are not numbers)."""
    import numpy as np

    v = np.asarray(values)
    if not v.size or v.dtype.kind not in "fiu":
        return 0.0
    finite = np.abs(v[np.isfinite(v)]) if v.dtype.kind == "f" else np.abs(v)
    return float(finite.max()) if finite.size else 0.0


def _clamps(op) -> tuple[float, ...]:
    """The values an op's output ends at by design: its activation's, fused or its own."""
    if op is None:
        return ()
    fused = op.options.get("fused_activation_function") if op.options else None
    return _OP_CLAMPS.get(op.name, ()) + (_OP_CLAMPS.get(str(fused), ()) if fused else ())


def _counted_bounds(tensor, op) -> tuple[bool, bool]:
    """Whether values at the low and at the high end of a quantized tensor's integer range
    count as saturation: not when that end stands for 0.0 (zeros sit there by right) or for a
    clamp of the op that made the tensor (a ReLU6's 6.0)."""
    import numpy as np

    q = tensor.quantization
    if q.per_channel:
        return True, True
    info = np.iinfo(np.dtype(tensor.dtype))
    scale = float(q.scale[0])
    zero = int(q.zero_point[0]) if q.zero_point else 0
    clamps = (0.0, *_clamps(op))

    def counts(bound: int) -> bool:
        real = scale * (bound - zero)
        return not any(abs(real - c) <= abs(scale) / 2 for c in clamps)

    return counts(int(info.min)), counts(int(info.max))


def _is_activation(op) -> bool:
    if op is None:
        return False
    fused = op.options.get("fused_activation_function") if op.options else None
    return op.name in DEAD_AFTER or str(fused) in DEAD_AFTER


def _findings(traced: Sequence[TracedTensor], activation: set[int], saturation: float) -> list[Finding]:
    """The first NaN, the first Inf, saturated and dead tensors (all zeros after a ReLU: the
    tensors in ``activation``), in execution order."""
    found: list[Finding] = []

    def made_by(t: TracedTensor) -> str:
        return "an input of the model" if t.op_index is None else f"made by op #{t.op_index} {t.op}"

    def finding(kind: FindingKind, t: TracedTensor, message: str) -> Finding:
        return Finding(kind=kind, tensor=t.name, tensor_index=t.index, op=t.op, op_index=t.op_index, message=message)

    first_nan = next((t for t in traced if t.stats is not None and t.stats.nan), None)
    if first_nan is not None:
        s = first_nan.stats
        found.append(finding("nan", first_nan, (
            f"Tensor {first_nan.name!r} ({made_by(first_nan)}) is the first, in execution order, that holds NaN: "
            f"{s.nan:,} of {s.count:,} values. Every op that reads it may carry the NaN on; look at this op's "
            "inputs (a log or square root of a negative number, 0/0, an overflow) for the cause."
        )))
    first_inf = next((t for t in traced if t.stats is not None and t.stats.inf), None)
    if first_inf is not None:
        s = first_inf.stats
        found.append(finding("inf", first_inf, (
            f"Tensor {first_inf.name!r} ({made_by(first_inf)}) is the first, in execution order, that holds an "
            f"infinite value: {s.inf:,} of {s.count:,}. A division by zero, an exp or a product that overflowed "
            "its type makes one."
        )))
    for t in traced:
        s = t.stats
        if s is None:
            continue
        if s.saturated is not None and s.saturated > saturation:
            found.append(finding("saturated", t, (
                f"Quantized tensor {t.name!r} ({made_by(t)}) is saturated: {s.saturated:.1%} of its values sit at an "
                f"end of its {t.dtype} range ({t.quantization.describe()}), where larger values were cut off. The "
                "data reaches beyond the range the model was calibrated on, or this layer's range is too narrow."
            )))
        if s.count and s.zeros == 1.0 and t.index in activation:
            found.append(finding("dead", t, (
                f"Tensor {t.name!r} ({made_by(t)}) is all zeros after its activation: no unit fired on this data, "
                "so nothing after it depends on the input through it. The data may be far from what the model "
                "expects (its range, its scale), or these units are dead."
            )))
    return found
