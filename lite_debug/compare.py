"""A candidate model against a reference, output by output and layer by layer.

The candidate is always a ``.tflite`` model run on the user's data (``Model``). The reference
is one of:

- another ``.tflite`` model (``Model``: the float model against its quantized conversion, an old
  conversion against a new one), compared layer by layer;
- the same model with the reference kernels (``Model(..., kernels="reference")``: the runtime's
  ``BUILTIN_REF`` op resolver, which takes no delegate), "does the delegate change my outputs?",
  layer by layer;
- expected outputs (``Expected``: arrays from a ``.npy``/``.npz``), outputs only;
- the Keras or SavedModel model the candidate came from (``reference.KerasModel``), run with
  TensorFlow in a worker of its own, outputs only.

**Values.** Both ``.tflite`` models are traced (``trace.trace``: every op's output captured in a
marked copy of the model, in a worker) with the matched tensors' values fetched, two workers in
parallel when the pool has a second one free. What one trace may send back is bounded by the
worker's output cap; the matched tensors are fetched in passes of at most ``PASS_BYTES`` each
(and of the cap, less the outputs), so this process holds one pass of each model at a time and
drops each layer's values once compared. A tensor that alone passes the cap is left out, and
its row says so.

**Matching** (``match``): tensors of the same name (unique in its subgraph, the same number of
elements) first; the rest by the graph's structure: each model's ops in execution order, leaving
out QUANTIZE and DEQUANTIZE (a quantized conversion inserts them) and DEQUANTIZEs of weights,
with a standalone ReLU folded into the op before it as the converter fuses it, are aligned by
op type, fused activation and output shapes (longest common subsequences), and an aligned pair's
outputs are matched. What matched how is in ``matched_by`` (``"name"`` or ``"structure"``);
what could not be matched is listed with the reason. Quantized tensors are dequantized first.

**Metrics** (``metrics``): max and mean absolute error, max relative error, cosine similarity,
SNR in dB (the reference's power over the error's), and the smallest ``atol`` and ``rtol``
that would pass (each given the other, as ``numpy.isclose`` reads them: Polygraphy's "minimum
required tolerance"). A tensor is within ``Tolerance`` when its SNR and cosine reach their
minimums and, when ``atol`` or ``rtol`` is given, every element is within them. The **first
divergent** tensor is the first matched one, in the reference's execution order, that is not;
its SNR is compared with that of the nearest matched tensors it is computed from, which says
whether the error appears at that op or was carried in.
"""

from __future__ import annotations

import difflib
import math
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Hashable, Literal, Mapping, Sequence

import numpy as np

from .records import Feed, ModelSpec, RunResult

try:  # the compiled one-pass metrics of a float32 pair (lite_debug/_fast.c); optional
    from . import _fast
except ImportError:  # pragma: no cover - an install without a C compiler
    _fast = None  # type: ignore[assignment]

__all__ = [
    "ACTIVATIONS",
    "Comparison",
    "Divergence",
    "Expected",
    "Match",
    "Matching",
    "Metrics",
    "Model",
    "PASS_BYTES",
    "SampleSpread",
    "Side",
    "TensorComparison",
    "Tolerance",
    "Unmatched",
    "compare",
    "compare_samples",
    "feed_for",
    "match",
    "metrics",
]

PASS_BYTES = 64 << 20  # values of one model fetched in one trace, at most: what this process holds at once
ORIGIN_DROP_DB = 6.0  # an op that loses this much SNR (the error's share of power ×4) makes the error itself
OUTLIER_RATIO = 10.0  # a channel whose range is this many times the median channel's is an outlier
_CHUNK = 1 << 16  # elements compared at a time: float32 sums this long stay within 1e-6 or so

# Ops a quantized conversion inserts, whose outputs are another tensor's values requantized.
_REQUANTIZE = frozenset({"QUANTIZE", "DEQUANTIZE"})
# Standalone activations the converter fuses into the op before them (its fused_activation_function).
ACTIVATIONS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "TANH", "SIGN_BIT"})
_NUMERIC = frozenset({
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool",
})
_ITEMSIZE = {"float16": 2, "float32": 4, "float64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1,
             "uint16": 2, "uint32": 4, "uint64": 8, "bool": 1}

MatchedBy = Literal["name", "structure"]


# -- tolerance and metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """When a candidate's tensor counts as the reference's.

    Within tolerance: no element finite on one side and not on the other (NaN where NaN), an SNR
    of at least ``min_snr`` dB, a cosine similarity of at least ``min_cosine``, and, when
    ``atol`` or ``rtol`` is given, every element within ``atol + rtol * |reference|`` (as
    ``numpy.isclose``; the one not given counts as 0).
    """

    atol: float | None = None
    rtol: float | None = None
    min_snr: float = 20.0
    min_cosine: float = 0.99

    def __post_init__(self) -> None:
        for name in ("atol", "rtol"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"The tolerance's {name} must be a finite number of at least 0, not {v!r}.")
        if math.isnan(self.min_snr) or math.isnan(self.min_cosine):
            raise ValueError("The tolerance's minimum SNR and cosine must be numbers, not NaN.")

    @property
    def elementwise(self) -> bool:
        return self.atol is not None or self.rtol is not None

    def failed(self, m: Metrics) -> tuple[str, float] | None:
        """The first criterion ``m`` fails, as (metric, its value), or None when within. ``m``
        comes from ``metrics(..., tolerance=self)`` (its needed atol depends on the rtol)."""
        if m.nonfinite:
            return "nonfinite", float(m.nonfinite)
        if m.snr_db < self.min_snr:
            return "snr_db", m.snr_db
        if m.cosine < self.min_cosine:
            return "cosine", m.cosine
        # The atol this rtol needs (or, when only rtol is given, the rtol that atol 0 needs): the
        # metrics must have been computed with this tolerance's rtol (or atol), as ``compare`` does.
        if self.atol is not None and m.atol_needed > self.atol:
            return "atol_needed", m.atol_needed
        if self.atol is None and self.rtol is not None and m.rtol_needed > self.rtol:
            return "rtol_needed", m.rtol_needed
        return None

    def describe(self) -> str:
        parts = [f"SNR ≥ {self.min_snr:g} dB", f"cosine ≥ {self.min_cosine:g}"]
        if self.elementwise:
            parts.append(f"|candidate − reference| ≤ {self.atol or 0:g} + {self.rtol or 0:g}·|reference| everywhere")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "min_snr": _json_number(self.min_snr),
                "min_cosine": self.min_cosine}


@dataclass(frozen=True)
class Metrics:
    """How far a candidate's values are from the reference's (both in real units).

    Over the ``count`` elements finite on both sides: ``max_abs`` and ``mean_abs`` of the
    difference, ``max_rel`` (the difference over ``|reference|``; infinite where the reference is
    0 and the candidate is not), ``cosine`` similarity (1 when both are all zeros, 0 when only
    one is), ``snr_db`` (10·log10 of the reference's power over the difference's: infinite when
    they are equal). ``atol_needed`` and ``rtol_needed``: the smallest ``atol`` (with the
    tolerance's ``rtol``, else 0) and the smallest ``rtol`` (with its ``atol``, else 0) under
    which every element is close. ``nonfinite``: elements finite on one side only, or NaN on one
    side only, or infinities of opposite signs. ``outside``: elements not within the
    tolerance's ``atol``/``rtol``. ``spread``: the reference's largest channel RMS (last axis)
    over the median channel's, for a tensor of rank 2 or more (1.0 otherwise).
    """

    count: int
    max_abs: float
    mean_abs: float
    max_rel: float
    cosine: float
    snr_db: float
    atol_needed: float
    rtol_needed: float
    nonfinite: int = 0
    outside: int = 0
    spread: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_abs": _json_number(self.max_abs), "mean_abs": _json_number(self.mean_abs),
            "max_rel": _json_number(self.max_rel), "cosine": _json_number(self.cosine),
            "snr_db": _json_number(self.snr_db), "atol_needed": _json_number(self.atol_needed),
            "rtol_needed": _json_number(self.rtol_needed),
        }


def _json_number(v: float | None) -> Any:
    """A float for strict JSON: infinities as the strings "inf" and "-inf", NaN as None."""
    if v is None or math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def metrics(reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance = Tolerance()) -> Metrics:
    """Compare two arrays of the same number of elements (shapes are not checked beyond that),
    ``_CHUNK`` elements at a time: float32 data in float32 with BLAS dot products, each chunk's
    sums added in float64 (about 1e-6 relative), anything else in float64. Raises
    ``ValueError`` when the sizes differ."""
    r_all = np.asarray(reference).reshape(-1)
    c_all = np.asarray(candidate).reshape(-1)
    if r_all.size != c_all.size:
        raise ValueError(f"The reference has {r_all.size} values and the candidate {c_all.size}; they cannot be compared.")
    atol, rtol = float(tolerance.atol or 0.0), float(tolerance.rtol or 0.0)
    if (_fast is not None and r_all.dtype == np.float32 and c_all.dtype == np.float32 and r_all.size
            and r_all.flags.c_contiguous and c_all.flags.c_contiguous):
        # One pass in C, the same float32 arithmetic as the chunks below: 8-10x faster. With a
        # NaN or an infinity on either side (its sums of squares say so), the chunks below.
        part = _fast.pair_f32(r_all, c_all, atol, rtol)
        if math.isfinite(part[6]) and math.isfinite(part[8]):
            out, max_abs, sum_abs, max_rel, atol_needed, rtol_needed, sig, noise, cand, cross = part
            return _metrics(r_all.size, 0, out, max_abs, sum_abs, max_rel, atol_needed, rtol_needed, sig, noise, cand,
                            cross, reference)
    count = nonfinite = outside = 0
    max_abs = max_rel = atol_needed = rtol_needed = 0.0
    sum_abs = sig = noise = cand = cross = 0.0
    for start in range(0, r_all.size, _CHUNK):
        r, c = r_all[start:start + _CHUNK], c_all[start:start + _CHUNK]
        part = _chunk_sums(r, c, atol, rtol)
        if part is None:  # NaN or Inf in this chunk: compare the finite values, count the rest
            r, c = r.astype(np.float64), c.astype(np.float64)
            finite = np.isfinite(r) & np.isfinite(c)
            same = (r == c) | (np.isnan(r) & np.isnan(c))  # NaN where NaN, an infinity where the same one
            nonfinite += int(np.count_nonzero(~finite & ~same))
            part = _chunk_sums(r[finite], c[finite], atol, rtol)
            assert part is not None
        n, out, mx, sa, mr, an, rn, sg, ns, cd, cr = part
        count += n
        outside += out
        max_abs, max_rel = max(max_abs, mx), max(max_rel, mr)
        atol_needed, rtol_needed = max(atol_needed, an), max(rtol_needed, rn)
        sum_abs += sa
        sig += sg
        noise += ns
        cand += cd
        cross += cr
    return _metrics(count, nonfinite, outside, max_abs, sum_abs, max_rel, atol_needed, rtol_needed, sig, noise, cand,
                    cross, reference)


def _metrics(count: int, nonfinite: int, outside: int, max_abs: float, sum_abs: float, max_rel: float,
             atol_needed: float, rtol_needed: float, sig: float, noise: float, cand: float, cross: float,
             reference: Any) -> Metrics:
    """``Metrics`` from a pair's sums."""
    if sig == 0.0 and cand == 0.0:
        cosine = 1.0
    elif sig == 0.0 or cand == 0.0:
        cosine = 0.0
    else:
        cosine = max(-1.0, min(1.0, cross / math.sqrt(sig * cand)))
    snr = math.inf if noise == 0.0 else (-math.inf if sig == 0.0 else 10.0 * math.log10(sig / noise))
    return Metrics(
        count=count, max_abs=max_abs, mean_abs=sum_abs / count if count else 0.0, max_rel=max_rel, cosine=cosine,
        snr_db=snr, atol_needed=atol_needed, rtol_needed=rtol_needed, nonfinite=nonfinite, outside=outside,
        spread=_spread(np.asarray(reference)),
    )


def _chunk_sums(r: np.ndarray, c: np.ndarray, atol: float, rtol: float) -> tuple | None:
    """One chunk's (count, outside, max_abs, sum_abs, max_rel, atol_needed, rtol_needed, and the
    sums of r², (c−r)², c², r·c), with as few numpy calls and temporaries as will do (a
    comparison makes hundreds); None when the chunk holds NaN or Inf, which its sums of squares
    say (a float32 squared never overflows float64, nor a chunk of them in float32 beyond 1e38,
    where the caller's float64 path takes over)."""
    dtype = np.float32 if r.dtype == np.float32 and c.dtype == np.float32 else np.float64
    r = r.astype(dtype, copy=False)
    c = c.astype(dtype, copy=False)
    sig, cand = float(np.dot(r, r)), float(np.dot(c, c))
    if not (math.isfinite(sig) and math.isfinite(cand)):
        return None
    n = r.size
    d = np.subtract(c, r)
    noise, cross = float(np.dot(d, d)), float(np.dot(r, c))
    ad = np.abs(d, out=d)
    max_abs = float(ad.max()) if n else 0.0
    outside = 0
    if max_abs == 0.0:
        sum_abs = max_rel = rtol_needed = atol_needed = 0.0
    else:
        sum_abs = _total(ad)
        ar = np.abs(r)
        # No boolean indexing: after a ReLU half the reference is 0, and masking those out took
        # ten times as long as the rest of the chunk. Where the reference is 0, the quotient is
        # inf (a difference there: no relative error fits) or NaN (none), which fmax skips.
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.divide(ad, ar)
            max_rel = float(np.fmax.reduce(rel))
            if max_rel != max_rel:  # all NaN: no difference where the reference is not 0 either
                max_rel = 0.0
            if rtol == 0.0 and atol == 0.0:
                atol_needed, rtol_needed = max_abs, max_rel
                outside = int(np.count_nonzero(ad > 0.0))
            else:
                scaled = ar * rtol
                atol_needed = max(float((ad - scaled).max()), 0.0)
                excess = np.subtract(ad, atol, out=rel)
                over = excess > 0.0
                if not over.any():
                    rtol_needed = 0.0
                else:
                    # excess / |r| where over (inf where r is 0), 0 elsewhere
                    rtol_needed = float(np.divide(excess, ar, out=np.zeros_like(excess), where=over).max())
                outside = int(np.count_nonzero(ad > scaled + atol))
    return n, outside, max_abs, sum_abs, max_rel, atol_needed, rtol_needed, sig, noise, cand, cross


_ONES: dict[Any, np.ndarray] = {}


def _total(a: np.ndarray) -> float:
    """The sum of a 1-D chunk (of at most ``_CHUNK`` values) as one BLAS dot product with ones:
    float32 partial sums, like the chunk's other sums, and a fifth of what numpy's sum in float64
    takes."""
    ones = _ONES.get(a.dtype)
    if ones is None:
        ones = _ONES[a.dtype] = np.ones(_CHUNK, a.dtype)
    return float(np.dot(a, ones[: a.size]))


def _spread(values: np.ndarray) -> float:
    """The largest channel's RMS over the median channel's (channels: the last axis), for a
    tensor of rank 2 or more with 4 channels or more; 1.0 otherwise. RMS rather than range:
    one BLAS call (a reduction across a short last axis costs ten times more)."""
    v = values
    while v.ndim > 2 and v.shape[0] == 1:
        v = v[0]
    if v.ndim < 2 or v.shape[-1] < 4 or v.dtype.kind != "f":
        return 1.0
    rows = v.reshape(-1, v.shape[-1])
    if _fast is not None and rows.dtype == np.float32 and rows.flags.c_contiguous:
        energy = _fast.channels_f32(rows, rows.shape[1])
    else:
        squares = np.square(rows, dtype=np.float32 if rows.dtype == np.float32 else np.float64)
        energy = (np.ones(rows.shape[0], squares.dtype) @ squares).tolist()
    if not math.isfinite(sum(energy)):  # (sums of squares, none negative: finite together, or not)
        return 1.0
    energy.sort()
    median, top = energy[len(energy) // 2], energy[-1]
    if median <= 0.0:
        return math.inf if top > 0.0 else 1.0
    return math.sqrt(top / median)


# -- matching ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """A reference tensor and the candidate tensor that holds the same values."""

    reference: int
    candidate: int
    matched_by: MatchedBy


@dataclass(frozen=True)
class Unmatched:
    """A tensor of one model with no counterpart in the other, and why."""

    model: Literal["reference", "candidate"]
    index: int
    name: str
    op: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "index": self.index, "name": self.name, "op": self.op, "why": self.why}


@dataclass(frozen=True)
class Matching:
    """What ``match`` found: pairs in the reference's execution order, and the rest."""

    pairs: tuple[Match, ...]
    unmatched: tuple[Unmatched, ...]
    reference_subgraph: int = 0
    candidate_subgraph: int = 0

    def counts(self) -> dict[str, int]:
        by = Counter(p.matched_by for p in self.pairs)
        return {"name": by["name"], "structure": by["structure"],
                "unmatched_reference": sum(1 for u in self.unmatched if u.model == "reference"),
                "unmatched_candidate": sum(1 for u in self.unmatched if u.model == "candidate")}


@dataclass(frozen=True)
class _Node:
    """One op for the alignment: its signature and the tensors it outputs (after fusing)."""

    op: int
    signature: tuple
    outputs: tuple[int, ...]


def _subgraph_of(spec: ModelSpec, signature: str | None) -> int:
    return spec.signature(signature).subgraph_index if signature is not None else 0


def _comparable(spec: ModelSpec, sub_index: int) -> tuple[Any, list[tuple[int, int | None]], set[int]]:
    """(subgraph, [(tensor, op or None)] in execution order for the numeric tensors a trace
    captures, weights): inputs, then each op's outputs, leaving out weights (DEQUANTIZE of constants)."""
    from .trace import _execution_order

    sub = spec.graph.subgraphs[sub_index]  # type: ignore[union-attr]
    order = _execution_order(sub)
    weights = {t for t, op in order if op is not None and sub.is_weight(t)}
    rows = [(t, op) for t, op in order if t not in weights and sub.tensors[t].dtype in _NUMERIC]
    return sub, rows, weights


def _size(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n


def _nodes(sub, weights: set[int]) -> tuple[list[_Node], set[int]]:
    """The ops to align, in execution order, and the tensors folded inside a fused pair (an op's
    output that only a standalone activation reads)."""
    ops = sub.operators
    folded: dict[int, int] = {}  # op -> the activation op folded into it
    inside: set[int] = set()
    for op in ops:
        if op.name in _REQUANTIZE or len(op.outputs) != 1 or op.outputs[0] < 0:
            continue
        t = sub.tensors[op.outputs[0]]
        if len(t.consumers) == 1 and t.index not in sub.outputs:
            nxt = ops[t.consumers[0]]
            fused = str((op.options or {}).get("fused_activation_function", "NONE"))
            if nxt.name in ACTIVATIONS and fused in ("NONE", "None") and nxt.inputs and nxt.inputs[0] == t.index:
                folded[op.index] = nxt.index
                inside.add(t.index)
    absorbed = set(folded.values())
    nodes = []
    for op in ops:
        if op.index in absorbed or op.name in _REQUANTIZE:
            continue
        if any(t in weights for t in op.outputs if t >= 0):
            continue
        act = folded.get(op.index)
        if act is not None:
            outputs = tuple(t for t in ops[act].outputs if t >= 0)
            activation = ops[act].name
        else:
            outputs = tuple(t for t in op.outputs if t >= 0)
            fused = str((op.options or {}).get("fused_activation_function", "NONE"))
            activation = "" if fused in ("NONE", "None") else fused
        shapes = tuple(tuple(int(d) for d in sub.tensors[t].shape) for t in outputs)
        nodes.append(_Node(op=op.index, signature=(op.name, activation, shapes), outputs=outputs))
    return nodes, inside


_MATCHES: "OrderedDict[tuple, Matching]" = OrderedDict()
_MATCHES_KEPT = 8


def match(
    reference: ModelSpec,
    candidate: ModelSpec,
    reference_signature: str | None = None,
    candidate_signature: str | None = None,
) -> Matching:
    """Pair the tensors of ``reference``'s subgraph (the main graph, or the signature's) with
    ``candidate``'s: by name, then by structure (see the module's docstring). A model against
    itself pairs every tensor with itself. Kept for the last few pairs of models (a page compares
    again on every click). Raises ``ValueError`` when a graph cannot be read."""
    key = (reference.sha256, candidate.sha256, reference_signature, candidate_signature)
    found = _MATCHES.get(key)
    if found is not None:
        _MATCHES.move_to_end(key)
        return found
    found = _match(reference, candidate, reference_signature, candidate_signature)
    _MATCHES[key] = found
    while len(_MATCHES) > _MATCHES_KEPT:
        _MATCHES.popitem(last=False)
    return found


def _match(reference: ModelSpec, candidate: ModelSpec, reference_signature: str | None,
           candidate_signature: str | None) -> Matching:
    for spec in (reference, candidate):
        if spec.graph is None or not spec.graph.subgraphs:
            raise ValueError(f"The model's graph cannot be read, so its layers cannot be compared: {spec.problem or 'no subgraphs'}")
    ri, ci = _subgraph_of(reference, reference_signature), _subgraph_of(candidate, candidate_signature)
    rsub, rrows, rweights = _comparable(reference, ri)
    csub, crows, cweights = _comparable(candidate, ci)
    if reference.sha256 == candidate.sha256 and ri == ci:
        pairs = tuple(Match(t, t, "name") for t, _ in rrows)
        return Matching(pairs=pairs, unmatched=(), reference_subgraph=ri, candidate_subgraph=ci)
    r_ok = {t for t, _ in rrows}
    c_ok = {t for t, _ in crows}
    by_ref: dict[int, tuple[int, MatchedBy]] = {}
    taken: set[int] = set()

    def size_of(sub, t: int) -> int:
        return _size(sub.tensors[t].shape)

    # 1. Names: unique in each subgraph, the same number of elements.
    rnames = Counter(t.name for t in rsub.tensors)
    cnames = Counter(t.name for t in csub.tensors)
    c_by_name = {csub.tensors[t].name: t for t in c_ok if csub.tensors[t].name and cnames[csub.tensors[t].name] == 1}
    for t, _ in rrows:
        name = rsub.tensors[t].name
        if not name or rnames[name] != 1:
            continue
        other = c_by_name.get(name)
        if other is not None and size_of(rsub, t) == size_of(csub, other):
            by_ref[t] = (other, "name")
            taken.add(other)
    # 2. Graph inputs left: in order, where their sizes agree.
    rin = [t for t in rsub.inputs if t in r_ok and t not in by_ref]
    cin = [t for t in csub.inputs if t in c_ok and t not in taken]
    for t, other in zip(rin, cin):
        if size_of(rsub, t) == size_of(csub, other):
            by_ref[t] = (other, "structure")
            taken.add(other)
    # 3. Structure: the ops aligned by signature, longest common subsequences first.
    rnodes, rinside = _nodes(rsub, rweights)
    cnodes, cinside = _nodes(csub, cweights)
    matcher = difflib.SequenceMatcher(None, [n.signature for n in rnodes], [n.signature for n in cnodes], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            rn, cn = rnodes[block.a + k], cnodes[block.b + k]
            for t, other in zip(rn.outputs, cn.outputs):
                if t in by_ref or other in taken or t not in r_ok or other not in c_ok:
                    continue
                if size_of(rsub, t) == size_of(csub, other):
                    by_ref[t] = (other, "structure")
                    taken.add(other)
    pairs = tuple(Match(t, by_ref[t][0], by_ref[t][1]) for t, _ in rrows if t in by_ref)
    matched_c = {p.candidate: p.reference for p in pairs}
    matched_r = {p.reference: p.candidate for p in pairs}
    unmatched = [
        _why_unmatched("reference", rsub, t, op, rinside, matched_r, csub) for t, op in rrows if t not in matched_r
    ] + [_why_unmatched("candidate", csub, t, op, cinside, matched_c, rsub) for t, op in crows if t not in matched_c]
    return Matching(pairs=pairs, unmatched=tuple(unmatched), reference_subgraph=ri, candidate_subgraph=ci)


def _why_unmatched(model: Literal["reference", "candidate"], sub, t: int, op_index: int | None, inside: set[int],
                   matched: Mapping[int, int], other_sub) -> Unmatched:
    tensor = sub.tensors[t]
    op = sub.operators[op_index] if op_index is not None else None
    op_name = op.name if op is not None else "input"
    other = "candidate" if model == "reference" else "reference"

    def via(index: int) -> str:
        return f"{sub.tensors[index].name!r}"

    if op is not None and op.name in _REQUANTIZE:
        src = op.inputs[0] if op.inputs else -1
        same = f", the same values as {via(src)}" + (" (matched)" if src in matched else "") if src >= 0 else ""
        why = f"made by a {op.name} op, which matching skips{same}"
    elif any(sub.operators[c].name in _REQUANTIZE and any(o in matched for o in sub.operators[c].outputs) for c in tensor.consumers):
        c = next(c for c in tensor.consumers if sub.operators[c].name in _REQUANTIZE and any(o in matched for o in sub.operators[c].outputs))
        out = next(o for o in sub.operators[c].outputs if o in matched)
        why = f"its values are compared through {via(out)}, which a {sub.operators[c].name} makes from it"
    elif t in inside:
        why = "the output of an op whose activation is a separate op here and fused in the other model: the activation's output is compared"
    else:
        why = f"no tensor of the {other} model has its name, and no op at its place in the graph has the same type and output shape"
    return Unmatched(model=model, index=t, name=tensor.name, op=op_name if op is None or op_index is None else f"#{op_index} {op_name}", why=why)


# -- what is compared ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Model:
    """A ``.tflite`` model and the data it runs on (bound to its inputs, as ``diagnose`` binds it).

    ``kernels``: ``"default"`` (the runtime's default, with its XNNPACK delegate) or
    ``"reference"`` (the reference kernels, ``BUILTIN_REF``, no delegate).
    """

    name: str
    model_bytes: bytes | memoryview
    spec: ModelSpec
    feed: Feed
    signature: str | None = None
    kernels: Literal["default", "reference"] = "default"

    @property
    def kind(self) -> str:
        return "reference_kernels" if self.kernels == "reference" else "tflite"

    def describe(self) -> str:
        if self.kernels == "reference":
            return f"{self.name} with the reference kernels (BUILTIN_REF, no delegate)"
        return f"{self.name} with the runtime's default kernels and delegate"


@dataclass(frozen=True, eq=False)
class Expected:
    """Expected outputs: arrays keyed by output name (a ``.npz``), or in output order (a ``.npy``
    holds one; ``.npz`` keys ``arr_0``, ``arr_1``… are positions)."""

    name: str
    arrays: Mapping[str, np.ndarray] | Sequence[np.ndarray]

    kind = "expected"

    def describe(self) -> str:
        return f"the expected outputs in {self.name}"


@dataclass(frozen=True)
class Side:
    """One side of a comparison: what it is, and its run (None for expected outputs)."""

    kind: str  # "tflite", "reference_kernels", "expected", "keras", "saved_model"
    name: str
    description: str
    run: RunResult | None = None

    @property
    def ok(self) -> bool:
        return self.run is None or self.run.ok

    def to_dict(self) -> dict[str, Any]:
        from .report import run_to_dict

        out: dict[str, Any] = {"kind": self.kind, "file": self.name, "description": self.description}
        if self.run is not None:
            r = run_to_dict(self.run)
            out["run"] = {k: v for k, v in r.items() if k != "outputs"}
        return out


@dataclass(frozen=True)
class TensorComparison:
    """A matched pair of tensors (or outputs) and how far apart they are.

    ``position``: the reference tensor's place in its execution order (its depth; an output's
    position among the outputs for an outputs-only comparison). ``metrics`` is None when the
    values could not be compared, and ``note`` says why. ``within``: within the tolerance.
    """

    reference: str
    candidate: str
    matched_by: MatchedBy
    position: int
    reference_index: int | None = None
    candidate_index: int | None = None
    op: str = ""
    shape: tuple[int, ...] = ()
    metrics: Metrics | None = None
    within: bool | None = None
    failed: tuple[str, float] | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        m = self.metrics.to_dict() if self.metrics is not None else dict.fromkeys(
            ("max_abs", "mean_abs", "max_rel", "cosine", "snr_db", "atol_needed", "rtol_needed"))
        out = {"reference": self.reference, "candidate": self.candidate, "matched_by": self.matched_by, **m,
               "within_tolerance": self.within, "position": self.position, "reference_index": self.reference_index,
               "candidate_index": self.candidate_index, "op": self.op, "shape": list(self.shape)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Divergence:
    """The first tensor, in the reference's execution order, past the tolerance.

    ``metric`` and ``value``: the criterion it fails first. ``origin``: ``"introduced"`` when its
    SNR is at least ``ORIGIN_DROP_DB`` below that of the nearest matched tensors it is computed
    from (``previous``, the worst of them), or it reads only the model's inputs; ``"carried"``
    when those already held nearly as much error; ``"unknown"`` when none of them was compared.
    ``largest_drop``: the tensor where the SNR falls most from its inputs', and by how much.
    """

    reference: str
    candidate: str
    metric: str
    value: float
    position: int
    op: str
    origin: Literal["introduced", "carried", "unknown"]
    previous: str | None
    previous_snr_db: float | None
    message: str
    largest_drop: tuple[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "candidate": self.candidate, "metric": self.metric,
            "value": _json_number(self.value), "position": self.position, "op": self.op, "origin": self.origin,
            "previous": self.previous, "previous_snr_db": _json_number(self.previous_snr_db), "message": self.message,
            "largest_drop": None if self.largest_drop is None else
            {"reference": self.largest_drop[0], "snr_drop_db": _json_number(self.largest_drop[1])},
        }


@dataclass(frozen=True)
class SampleSpread:
    """Per-sample figures of each output over a batch: ``per_sample[k][output]`` is sample k's
    ``Metrics`` (None where a run failed); ``within[k]`` whether every output of sample k was
    within the tolerance."""

    outputs: tuple[str, ...]
    per_sample: tuple[Mapping[str, Metrics | None], ...]
    within: tuple[bool, ...]

    def distribution(self, output: str, metric: str = "snr_db") -> dict[str, float | None]:
        """min, median, p95 (of the worst side: the lowest for SNR and cosine, else the highest) and max."""
        values = sorted(getattr(s[output], metric) for s in self.per_sample if s.get(output) is not None)
        if not values:
            return {"min": None, "median": None, "p05": None, "p95": None, "max": None}

        def pct(q: float) -> float:
            return values[min(len(values) - 1, max(0, int(round(q * (len(values) - 1)))))]

        return {"min": values[0], "p05": pct(0.05), "median": pct(0.5), "p95": pct(0.95), "max": values[-1]}

    def to_dict(self) -> dict[str, Any]:
        keys = ("snr_db", "cosine", "max_abs", "mean_abs", "max_rel")
        return {
            "count": len(self.per_sample),
            "within_tolerance": sum(self.within),
            "per_sample": [{o: (m.to_dict() if m is not None else None) for o, m in s.items()} for s in self.per_sample],
            "distribution": {o: {k: {q: _json_number(v) for q, v in self.distribution(o, k).items()} for k in keys}
                             for o in self.outputs},
        }


@dataclass(frozen=True)
class Comparison:
    """A comparison: each output and, for two ``.tflite`` models, each matched tensor.

    ``ok``: both sides ran and every output is within the tolerance. ``tensors`` in the
    reference's execution order; ``unmatched`` the tensors of either model with no counterpart;
    ``passes``: how many traces of each model fetched the values. ``samples``: per-sample
    figures over a batch (``compare_samples``).
    """

    reference: Side
    candidate: Side
    tolerance: Tolerance
    outputs: tuple[TensorComparison, ...] = ()
    tensors: tuple[TensorComparison, ...] = ()
    unmatched: tuple[Unmatched, ...] = ()
    first_divergent: Divergence | None = None
    notes: tuple[str, ...] = ()
    passes: int = 0
    layers: bool = False
    samples: SampleSpread | None = None
    reference_subgraph: int = 0
    candidate_subgraph: int = 0
    # Output values for the side-by-side view: (name, reference values, candidate values), small ones only.
    output_values: tuple[tuple[str, np.ndarray, np.ndarray], ...] = field(default=(), repr=False)

    @property
    def ran(self) -> bool:
        return self.reference.ok and self.candidate.ok and bool(self.outputs)

    @property
    def ok(self) -> bool:
        if not self.ran or not all(o.within for o in self.outputs):
            return False
        return self.samples is None or all(self.samples.within)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: ``reference``, ``candidate``, ``outputs``, ``tensors``,
        ``first_divergent``, ``tolerance``, and what matched how and what did not."""
        return {
            "reference": self.reference.to_dict(),
            "candidate": self.candidate.to_dict(),
            "outputs": [o.to_dict() for o in self.outputs],
            "tensors": [t.to_dict() for t in self.tensors],
            "first_divergent": self.first_divergent.to_dict() if self.first_divergent is not None else None,
            "tolerance": self.tolerance.to_dict(),
            "within_tolerance": self.ok,
            "layers": self.layers,
            "matched": dict(Counter(t.matched_by for t in self.tensors)) if self.layers else {},
            "unmatched": [u.to_dict() for u in self.unmatched],
            "passes": self.passes,
            "samples": self.samples.to_dict() if self.samples is not None else None,
            "notes": list(self.notes),
        }


# -- comparing ---------------------------------------------------------------------------------------

OUTPUT_VALUES_KEPT = 4 << 20  # bytes of output values kept for the side-by-side view (each side)


def compare(
    reference: Model | Expected | Any,
    candidate: Model,
    *,
    tolerance: Tolerance = Tolerance(),
    pool: Any = None,
    owner: Hashable = None,
    layers: bool = True,
    on_wait: Callable[[Any], None] | None = None,
    limits: Any = None,
) -> Comparison:
    """Run ``candidate`` and ``reference`` on their data and compare them (see the module).

    ``reference``: a ``Model`` (another ``.tflite``, or the same with ``kernels="reference"``),
    ``Expected`` outputs, or a ``reference.KerasModel`` (run with TensorFlow in a worker of its
    own under ``limits``, the pool's by default). ``layers``: for two ``.tflite`` models, compare
    every matched tensor too (otherwise outputs only). Runs in workers of ``pool`` (the default
    pool) for ``owner``. A run that fails comes back in its side's ``run``, with nothing
    compared. Raises ``ValueError`` when a graph cannot be read, ``WorkerError`` when no worker
    can start.
    """
    from .running import default_pool

    pool = pool or default_pool()
    if isinstance(reference, Model):
        if layers:
            return _kernels_note(reference, _compare_layers(reference, candidate, tolerance, pool, owner, on_wait))
        runs = _parallel_runs(pool, owner, on_wait, [reference, candidate])
        return _kernels_note(reference, _outputs_only(_side(reference, runs[0]), _side(candidate, runs[1]), runs[0], runs[1],
                                                      _model_outputs(reference), _model_outputs(candidate), tolerance))
    if isinstance(reference, Expected):
        run = pool.run(candidate.model_bytes, candidate.spec, candidate.feed, candidate.signature, owner=owner,
                       on_wait=on_wait)
        return _against_expected(reference, candidate, run, tolerance)
    from .reference import KerasModel, run_reference

    if isinstance(reference, KerasModel):
        return run_reference(reference, candidate, tolerance=tolerance, pool=pool, owner=owner, on_wait=on_wait,
                             limits=limits)
    raise TypeError(f"A reference is a Model, Expected outputs or a KerasModel, not {type(reference).__name__}.")


def _kernels_note(reference: Model, result: Comparison) -> Comparison:
    """When the reference kernels cannot run a model that the default ones can (a custom op only
    the default delegate provides, as in MediaPipe's models), say what to compare with instead."""
    r = result.reference.run
    if reference.kernels != "reference" or r is None or r.ok or not result.candidate.ok:
        return result
    if "unresolved custom op" not in (r.error_message or "").lower():
        return result
    note = ("The reference kernels cannot run this model: it uses a custom op that only the runtime's default delegate "
            "provides, so this mode cannot tell whether the delegate changes the outputs. Compare it with another "
            "reference instead: the float .tflite it was converted from, expected outputs, or its Keras model.")
    return replace(result, notes=(note,) + tuple(result.notes))


def _side(model: Model, run: RunResult | None) -> Side:
    return Side(kind=model.kind, name=model.name, description=model.describe(), run=run)


def _model_outputs(model: Model) -> list[tuple[str, int, tuple[str, ...]]]:
    """(name, tensor index, names it may go by) of each output, in order."""
    from .binding import normalise_name

    _, outs = model.spec.io(model.signature)
    by_index: dict[int, set[str]] = {}
    for sig in model.spec.signatures:  # a signature's output names ("output_0") are names too
        try:
            _, sig_outs = model.spec.io(sig.key)
        except KeyError:
            continue
        for o in sig_outs:
            by_index.setdefault(o.index, set()).add(normalise_name(o.name))
    return [(o.name, o.index, tuple(sorted({normalise_name(o.name), normalise_name(o.tensor_name or o.name)}
                                           | by_index.get(o.index, set())))) for o in outs]


class _OnWorker:
    """A pool-like object whose ``trace`` runs on one worker already acquired (``trace.trace``
    asks its ``pool`` for ``trace`` only)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def trace(self, model_bytes, spec, feed, signature=None, *, owner=None, on_wait=None, **options):
        return self.worker.trace(model_bytes, spec, feed, signature, owner=owner, **options)

    def run(self, model_bytes, spec, feed, signature=None, *, owner=None, on_wait=None, **options):
        return self.worker.run(model_bytes, spec, feed, signature, owner=owner, **options)


class _Workers:
    """One worker per model for the time of a comparison: the first through the pool's queue,
    the second only when the pool has one free now and nobody waits for it (taken as a
    background job, which goes after every waiting run). Without a second, each model's calls
    go through the pool one after the other."""

    def __init__(self, pool: Any, owner: Hashable, on_wait: Any, shas: Sequence[str]) -> None:
        self.pool, self.owner, self.on_wait = pool, owner, on_wait
        self.held: list[Any] = []
        self.runners: list[Any] = []
        acquire = getattr(pool, "acquire", None)
        if acquire is None:  # not a WorkerPool: its own calls, in turn
            self.runners = [pool] * len(shas)
            return
        from .errors import WorkerError

        first = acquire(shas[0], owner=owner, on_wait=on_wait)
        self.held.append(first)
        second = None
        if len(shas) > 1 and getattr(pool, "size", 1) > 1:
            try:
                second = acquire(shas[1], timeout=0, owner=owner, background=True)
            except WorkerError:
                second = None
        if second is not None:
            self.held.append(second)
            self.runners = [_OnWorker(first), _OnWorker(second)]
        else:
            # One worker: it would be restarted for each model in turn. The pool keeps each
            # model's warm worker instead, one call at a time.
            pool.release(first)
            self.held = []
            self.runners = [pool] * len(shas)

    @property
    def parallel(self) -> bool:
        return len(self.held) > 1

    def close(self) -> None:
        for w in self.held:
            self.pool.release(w)
        self.held = []

    def both(self, calls: Sequence[Callable[[Any], Any]]) -> list[Any]:
        """Each call with its model's runner: in parallel threads when there are two workers."""
        if not self.parallel:
            return [call(runner) for call, runner in zip(calls, self.runners)]
        results: list[Any] = [None] * len(calls)
        errors: list[BaseException | None] = [None] * len(calls)

        def work(i: int) -> None:
            try:
                results[i] = calls[i](self.runners[i])
            except BaseException as exc:  # re-raised in the caller's thread
                errors[i] = exc

        threads = [threading.Thread(target=work, args=(i,), name=f"lite-debug-compare-{i}", daemon=True)
                   for i in range(1, len(calls))]
        for t in threads:
            t.start()
        work(0)
        for t in threads:
            t.join()
        for exc in errors:
            if exc is not None:
                raise exc
        return results


def _parallel_runs(pool: Any, owner: Hashable, on_wait: Any, models: Sequence[Model]) -> list[RunResult]:
    """A plain run of each model (through a trace with nothing fetched when its kernels are the reference ones)."""
    workers = _Workers(pool, owner, on_wait, [m.spec.sha256 for m in models])
    try:
        def call(m: Model) -> Callable[[Any], RunResult]:
            if m.kernels == "reference":
                return lambda runner: _fetch(m, runner, owner, _subgraph_of(m.spec, m.signature), []).run
            return lambda runner: runner.run(m.model_bytes, m.spec, m.feed, m.signature, owner=owner)

        return workers.both([call(m) for m in models])
    finally:
        workers.close()


def _pair_outputs(ref: Sequence[tuple[str, Any, tuple[str, ...]]], cand: Sequence[tuple[str, Any, tuple[str, ...]]],
                  ref_sizes: Sequence[int], cand_sizes: Sequence[int]) -> tuple[list[tuple[int, int, MatchedBy]], list[str]]:
    """Outputs paired by name (any of the names each may go by), then the rest in order where
    their sizes agree; (pairs of positions, a sentence for each output left without a pair)."""
    pairs: list[tuple[int, int, MatchedBy]] = []
    used_r: set[int] = set()
    used_c: set[int] = set()
    for i, (_, _, rn) in enumerate(ref):
        for j, (_, _, cn) in enumerate(cand):
            if j not in used_c and set(rn) & set(cn) and ref_sizes[i] == cand_sizes[j]:
                pairs.append((i, j, "name"))
                used_r.add(i)
                used_c.add(j)
                break
    rest_r = [i for i in range(len(ref)) if i not in used_r]
    rest_c = [j for j in range(len(cand)) if j not in used_c]
    for i, j in zip(rest_r, rest_c):
        if ref_sizes[i] == cand_sizes[j]:
            pairs.append((i, j, "structure"))
            used_r.add(i)
            used_c.add(j)
    notes = [f"The reference's output {ref[i][0]!r} has no counterpart among the candidate's outputs (by name, or in order with "
             "the same number of values)." for i in range(len(ref)) if i not in used_r]
    notes += [f"The candidate's output {cand[j][0]!r} has no counterpart among the reference's outputs (by name, or in order "
              "with the same number of values)." for j in range(len(cand)) if j not in used_c]
    return sorted(pairs), notes


def _compare_pair(ref_name: str, cand_name: str, by: MatchedBy, position: int, r: np.ndarray, c: np.ndarray,
                  tolerance: Tolerance, **extra: Any) -> TensorComparison:
    try:
        m = metrics(r, c, tolerance)
    except ValueError as exc:
        return TensorComparison(reference=ref_name, candidate=cand_name, matched_by=by, position=position,
                                shape=tuple(np.shape(r)), note=str(exc), **extra)
    failed = tolerance.failed(m)
    return TensorComparison(reference=ref_name, candidate=cand_name, matched_by=by, position=position,
                            shape=tuple(int(d) for d in np.shape(r)), metrics=m, within=failed is None, failed=failed,
                            **extra)


def _kept_values(name: str, r: np.ndarray, c: np.ndarray) -> tuple[str, np.ndarray, np.ndarray] | None:
    if r.nbytes > OUTPUT_VALUES_KEPT or c.nbytes > OUTPUT_VALUES_KEPT:
        return None
    return name, np.asarray(r), np.asarray(c)


def _outputs_only(ref_side: Side, cand_side: Side, ref_run: RunResult | None, cand_run: RunResult,
                  ref_outs: Sequence[tuple[str, Any, tuple[str, ...]]], cand_outs: Sequence[tuple[str, Any, tuple[str, ...]]],
                  tolerance: Tolerance, ref_values: Sequence[np.ndarray] | None = None, notes: Sequence[str] = ()) -> Comparison:
    """Compare the outputs of two runs (or of a run and given values): pairs by name, then in order."""
    if not ref_side.ok or not cand_side.ok:
        return Comparison(reference=ref_side, candidate=cand_side, tolerance=tolerance, notes=tuple(notes))
    if ref_values is None:
        assert ref_run is not None
        by_index = {o.index: o for o in ref_run.outputs}
        ref_arrays = [by_index[idx].values if idx in by_index else None for _, idx, _ in ref_outs]
    else:
        ref_arrays = list(ref_values)
    cand_by_index = {o.index: o for o in cand_run.outputs}
    cand_arrays = [cand_by_index[idx].values if idx in cand_by_index else None for _, idx, _ in cand_outs]
    ref_keep = [(o, a) for o, a in zip(ref_outs, ref_arrays) if a is not None]
    cand_keep = [(o, a) for o, a in zip(cand_outs, cand_arrays) if a is not None]
    pairs, unpaired = _pair_outputs([o for o, _ in ref_keep], [o for o, _ in cand_keep],
                                    [int(np.size(a)) for _, a in ref_keep], [int(np.size(a)) for _, a in cand_keep])
    outputs, shown = [], []
    for i, j, by in pairs:
        (rname, ridx, _), r = ref_keep[i]
        (cname, cidx, _), c = cand_keep[j]
        outputs.append(_compare_pair(rname, cname, by, i, r, c, tolerance,
                                     reference_index=ridx if isinstance(ridx, int) else None,
                                     candidate_index=cidx if isinstance(cidx, int) else None))
        kept = _kept_values(rname, r, c)
        if kept is not None:
            shown.append(kept)
    return Comparison(reference=ref_side, candidate=cand_side, tolerance=tolerance, outputs=tuple(outputs),
                      notes=tuple(notes) + tuple(unpaired), output_values=tuple(shown))


def _against_expected(expected: Expected, candidate: Model, run: RunResult, tolerance: Tolerance) -> Comparison:
    from .binding import normalise_name

    arrays = expected.arrays
    if isinstance(arrays, Mapping):
        items = list(arrays.items())
        positional = all(k == f"arr_{i}" for i, (k, _) in enumerate(items))
        ref_outs = [(k, None, () if positional else (normalise_name(k),)) for k, _ in items]
        values = [np.asarray(v) for _, v in items]
    else:
        values = [np.asarray(v) for v in arrays]
        ref_outs = [(f"{expected.name}[{i}]" if len(values) > 1 else expected.name, None, ()) for i in range(len(values))]
    side = Side(kind="expected", name=expected.name, description=expected.describe())
    notes = []
    for v in values:
        if v.dtype.kind not in "biuf":
            raise ValueError(f"The expected outputs in {expected.name} hold {v.dtype} values, not numbers.")
    if run.ok and len(values) != len(run.outputs):
        notes.append(f"{expected.name} holds {len(values)} array(s) and the model has {len(run.outputs)} output(s): "
                     "only those that pair up are compared.")
    return _outputs_only(side, _side(candidate, run), None, run, ref_outs, _model_outputs(candidate), tolerance,
                         ref_values=values, notes=notes)


# -- layer by layer --------------------------------------------------------------------------------------


def _cost(sub, t: int) -> int:
    """What a fetched tensor costs this process, by its declared shape (``_protocol.footprint``):
    the raw array, plus a float32 copy when it is a quantized integer tensor."""
    tensor = sub.tensors[t]
    count = _size(tensor.shape)
    raw = count * _ITEMSIZE.get(tensor.dtype, 4)
    return raw + 4 * count if tensor.quantization.is_quantized and tensor.dtype[:3] in ("int", "uin") else raw


def _passes(pairs: Sequence[Match], rsub, csub, budget_r: int, budget_c: int) -> tuple[list[list[Match]], list[tuple[Match, str]]]:
    """The pairs in groups whose values fit each model's budget, in order; and the pairs left out
    (a tensor that alone passes its model's budget), with why."""
    groups: list[list[Match]] = []
    left: list[tuple[Match, str]] = []
    cur: list[Match] = []
    used_r = used_c = 0
    for p in pairs:
        cr, cc = _cost(rsub, p.reference), _cost(csub, p.candidate)
        if cr > budget_r or cc > budget_c:
            big, budget = (cr, budget_r) if cr > budget_r else (cc, budget_c)
            left.append((p, f"its values take {big / (1 << 20):.1f} MiB, more than the {budget / (1 << 20):.1f} MiB one "
                            "trace may send back (the worker's output cap, less the outputs); raise LITE_DEBUG_OUTPUT_MB "
                            "to compare it"))
            continue
        if cur and (used_r + cr > budget_r or used_c + cc > budget_c):
            groups.append(cur)
            cur, used_r, used_c = [], 0, 0
        cur.append(p)
        used_r += cr
        used_c += cc
    if cur:
        groups.append(cur)
    return groups, left


_LAYOUTS: "OrderedDict[tuple, tuple]" = OrderedDict()


def _layout_of(matching: Matching, reference: ModelSpec, rsub, csub, budget_r: int, budget_c: int) -> tuple:
    """(``_passes``'s groups and pairs left out, each reference tensor's place in execution
    order) for one matching and budgets: the same for every comparison of the two models, so
    worked out once (a page compares again on every click). The groups are not to be changed."""
    key = (id(matching), budget_r, budget_c)
    found = _LAYOUTS.get(key)
    if found is not None and found[0] is matching:
        _LAYOUTS.move_to_end(key)
        return found[1]
    groups, left = _passes(matching.pairs, rsub, csub, budget_r, budget_c)
    position = {t: i for i, (t, _) in enumerate(_comparable(reference, matching.reference_subgraph)[1])}
    value = (tuple(tuple(g) for g in groups), tuple(left), position)
    _LAYOUTS[key] = (matching, value)  # the matching itself is kept: its id() cannot come back meanwhile
    while len(_LAYOUTS) > _MATCHES_KEPT:
        _LAYOUTS.popitem(last=False)
    return value


def _budget(pool: Any, model: Model, sub) -> int:
    limits = getattr(pool, "limits", None)
    cap = getattr(limits, "output_bytes", None)
    outputs = sum(_cost(sub, t) for t in sub.outputs if 0 <= t < len(sub.tensors))
    room = PASS_BYTES if cap is None else min(PASS_BYTES, cap - outputs - (1 << 20))
    return max(room, 0)


@dataclass(frozen=True, eq=False)
class _Fetched:
    """One traced run of a model with tensors' values fetched: the plain run, the values by tensor
    index (as the worker sent them, ``_protocol.Output``: see ``_layer_metrics``), and whether
    the traced run's outputs equal the plain run's."""

    run: RunResult
    values: dict
    outputs_equal: bool | None

    @property
    def ok(self) -> bool:
        return self.run.ok and self.outputs_equal is not None


def _fetch(model: Model, runner: Any, owner: Hashable, sub_index: int, fetch: Sequence[int],
           borrow: bool = False) -> _Fetched:
    """``trace.trace`` without its statistics: a comparison needs the fetched values, not a row of
    figures for every tensor (which took as long as the traced run itself). ``borrow``: the
    values are views of the worker's shared region (``Worker.trace``), only for a runner that is
    one worker held for this model alone."""
    from .trace import _TOLERANCE, _largest, _plan

    plan = _plan(model.spec, sub_index)
    options: dict[str, Any] = {"reference_kernels": True} if model.kernels == "reference" else {}
    if borrow:
        options["borrow"] = True
    result, reply = runner.trace(
        model.model_bytes, model.spec, model.feed, model.signature, owner=owner, subgraph=sub_index, tensors=[],
        mark=plan.mark, quantized=plan.quantized, weights=plan.weights, fetch=list(fetch), **options,
    )
    if reply is None:
        return _Fetched(run=result, values={}, outputs_equal=None)
    equal = all(same or (math.isfinite(d) and d <= _TOLERANCE * max(1.0, _largest(o.values)))
                for o, same, d in zip(result.outputs, reply.equal, reply.differences))
    return _Fetched(run=result, values={o.index: o for o in reply.fetched}, outputs_equal=equal)


_BYTES = (np.dtype(np.int8), np.dtype(np.uint8))
_FLOAT32 = np.dtype(np.float32)


def _layer_metrics(r: Any, c: Any, tolerance: Tolerance) -> Metrics:
    """``metrics`` of two fetched tensors (``_protocol.Output``) in real units. A candidate
    quantized per tensor in 8 bits against a float32 reference (a quantized model against its
    float original, the usual comparison) goes through the one-pass kernel from its integers,
    dequantized a block at a time as ``dequantize`` does: a dequantized copy of every layer
    took longer than comparing it. Raises ``ValueError`` as ``metrics`` does."""
    from .running import _output

    reference = r.value if not r.scales else _output(r, {}).values
    raw = c.value
    # (The kernel takes any C-contiguous array as its flat buffer: no reshape.)
    if (_fast is not None and len(c.scales) == 1 and len(c.zero_points) <= 1 and raw.dtype in _BYTES
            and reference.dtype == _FLOAT32 and reference.size == raw.size and reference.size
            and raw.flags.c_contiguous and reference.flags.c_contiguous):
        scale, zero_point = float(c.scales[0]), int(c.zero_points[0]) if c.zero_points else 0
        if scale != 0.0 and math.isfinite(scale) and -(1 << 31) <= zero_point < (1 << 31):
            tol = tolerance
            part = _fast.pair_f32(reference, raw, float(tol.atol or 0.0), float(tol.rtol or 0.0), scale, zero_point)
            if math.isfinite(part[6]) and math.isfinite(part[8]):
                out, max_abs, sum_abs, max_rel, atol_needed, rtol_needed, sig, noise, cand, cross = part
                return _metrics(reference.size, 0, out, max_abs, sum_abs, max_rel, atol_needed, rtol_needed, sig,
                                noise, cand, cross, reference)
    return metrics(reference, _output(c, {}).values, tolerance)


def _compare_layers(reference: Model, candidate: Model, tolerance: Tolerance, pool: Any, owner: Hashable,
                    on_wait: Any) -> Comparison:
    matching = match(reference.spec, candidate.spec, reference.signature, candidate.signature)
    rsub = reference.spec.graph.subgraphs[matching.reference_subgraph]  # type: ignore[union-attr]
    csub = candidate.spec.graph.subgraphs[matching.candidate_subgraph]  # type: ignore[union-attr]
    groups, left_out, position = _layout_of(matching, reference.spec, rsub, csub, _budget(pool, reference, rsub),
                                            _budget(pool, candidate, csub))
    left_out = list(left_out)
    results: dict[int, TensorComparison] = {}
    notes: list[str] = []
    runs: list[RunResult | None] = [None, None]
    passes = 0
    workers = _Workers(pool, owner, on_wait, [reference.spec.sha256, candidate.spec.sha256])

    # With a worker held for each model, a pass's values are read in place in the workers'
    # shared regions (8 MB of copies and fresh pages fewer for two 100-op models): each pair is
    # compared and dropped before the next pass's requests write there again. Through the pool,
    # one worker may serve both models in turn, and its values are copied.
    borrow = workers.parallel

    def traced(model: Model, sub_index: int, fetch: list[int]) -> Callable[[Any], _Fetched]:
        return lambda runner: _fetch(model, runner, owner, sub_index, fetch, borrow)

    def op_of(sub, t: int) -> str:
        p = sub.tensors[t].producer
        return "input" if p is None else f"#{p} {sub.operators[p].name}"

    def row(p: Match, **extra: Any) -> TensorComparison:
        return TensorComparison(reference=rsub.tensors[p.reference].name, candidate=csub.tensors[p.candidate].name,
                                matched_by=p.matched_by, position=position.get(p.reference, -1),
                                reference_index=p.reference, candidate_index=p.candidate, op=op_of(rsub, p.reference),
                                shape=tuple(int(d) for d in rsub.tensors[p.reference].shape), **extra)

    try:
        queue: list[list[Match]] = list(groups) or [[]]
        while queue:
            group = queue.pop(0)
            got = workers.both([traced(reference, matching.reference_subgraph, [p.reference for p in group]),
                                traced(candidate, matching.candidate_subgraph, [p.candidate for p in group])])
            passes += 1
            rt, ct = got
            if runs[0] is None or not runs[0].ok:
                runs[0] = rt.run
            if runs[1] is None or not runs[1].ok:
                runs[1] = ct.run
            too_large = [t for t in (rt, ct) if t.run.status == "skipped" and t.run.limit == "output"]
            if too_large and group:
                # Declared shapes can be smaller than what a run makes: halve the pass and try again.
                if len(group) > 1:
                    half = len(group) // 2
                    queue[:0] = [group[:half], group[half:]]
                    passes -= 1
                    continue
                left_out.append((group[0], "its values pass the worker's output cap in this run (its declared shape "
                                           "is smaller than what the run made); raise LITE_DEBUG_OUTPUT_MB to compare it"))
                continue
            if not (rt.ok and ct.ok):
                break
            for label, t in (("reference", rt), ("candidate", ct)):
                if t.outputs_equal is False:
                    notes.append(f"The {label}'s traced run gave other outputs than its plain run: the layers compared are "
                                 "the traced run's.")
            rvals, cvals = dict(rt.values), dict(ct.values)
            del got, rt, ct  # each layer's values are dropped once compared
            for p in group:
                r, c = rvals.pop(p.reference, None), cvals.pop(p.candidate, None)
                if r is None or c is None:
                    results[p.reference] = row(p, note="The runtime gave no values for this tensor.")
                    continue
                try:
                    found = _layer_metrics(r, c, tolerance)
                except ValueError as exc:
                    results[p.reference] = row(p, note=str(exc))
                else:
                    failed = tolerance.failed(found)
                    results[p.reference] = row(p, metrics=found, within=failed is None, failed=failed)
                del r, c
    finally:
        workers.close()
    for p, why in left_out:
        results[p.reference] = row(p, note=f"Left out: {why}.")
    ref_run = runs[0] or RunResult(status="skipped", detail="The reference did not run.")
    cand_run = runs[1] or RunResult(status="skipped", detail="The candidate did not run.")
    ref_side, cand_side = _side(reference, ref_run), _side(candidate, cand_run)
    outputs_cmp = _outputs_only(ref_side, cand_side, ref_run, cand_run, _model_outputs(reference),
                                _model_outputs(candidate), tolerance) if ref_run.ok and cand_run.ok else None
    tensors = tuple(results[p.reference] for p in matching.pairs if p.reference in results)
    first = _first_divergent(tensors, rsub, tolerance) if ref_run.ok and cand_run.ok else None
    counts = matching.counts()
    notes.insert(0, f"Matched {counts['name']} tensor(s) by name and {counts['structure']} by structure; "
                    f"{counts['unmatched_reference']} of the reference's and {counts['unmatched_candidate']} of the "
                    "candidate's have no counterpart.")
    if left_out:
        notes.append(f"{len(left_out)} matched tensor(s) were left out: their values pass what one trace may send back.")
    return Comparison(
        reference=ref_side, candidate=cand_side, tolerance=tolerance,
        outputs=outputs_cmp.outputs if outputs_cmp is not None else (),
        tensors=tensors if ref_run.ok and cand_run.ok else (), unmatched=matching.unmatched, first_divergent=first,
        notes=tuple(notes) + (outputs_cmp.notes if outputs_cmp is not None else ()), passes=passes, layers=True,
        reference_subgraph=matching.reference_subgraph, candidate_subgraph=matching.candidate_subgraph,
        output_values=outputs_cmp.output_values if outputs_cmp is not None else (),
    )


def _upstream(sub, t: int, compared: Mapping[int, TensorComparison]) -> list[int]:
    """The nearest compared tensors that ``t`` is computed from (through ops whose outputs were
    not compared), leaving out weights; the model's inputs count as compared with no error."""
    seen: set[int] = set()
    found: list[int] = []
    producer = sub.tensors[t].producer
    stack = list(sub.operators[producer].inputs) if producer is not None else []
    while stack:
        x = stack.pop()
        if x < 0 or x in seen:
            continue
        seen.add(x)
        tensor = sub.tensors[x]
        if tensor.is_constant or sub.is_weight(x):
            continue
        if x in compared and compared[x].metrics is not None:
            found.append(x)
            continue
        if tensor.producer is None:
            found.append(x)  # a model input that was not compared: taken as exact
            continue
        stack.extend(sub.operators[tensor.producer].inputs)
    return found


def _first_divergent(tensors: Sequence[TensorComparison], rsub, tolerance: Tolerance) -> Divergence | None:
    by_index = {t.reference_index: t for t in tensors if t.reference_index is not None}
    drops: list[tuple[float, TensorComparison]] = []

    def previous(t: TensorComparison) -> tuple[TensorComparison | None, float | None, bool]:
        """(the worst compared input, its SNR, whether the inputs are known)."""
        assert t.reference_index is not None
        ups = _upstream(rsub, t.reference_index, by_index)
        if not ups:
            return None, None, True
        worst, worst_snr = None, math.inf
        for u in ups:
            cmp = by_index.get(u)
            snr = cmp.metrics.snr_db if cmp is not None and cmp.metrics is not None else math.inf
            if worst is None or snr < worst_snr:
                worst, worst_snr = cmp, snr
        return worst, worst_snr, True

    for t in tensors:
        if t.metrics is None or t.reference_index is None:
            continue
        prev, prev_snr, _ = previous(t)
        # From an exact input the drop is unbounded: only finite ones rank where the error grows most.
        if prev_snr is not None and math.isfinite(prev_snr) and math.isfinite(t.metrics.snr_db) and prev_snr > t.metrics.snr_db:
            drops.append((prev_snr - t.metrics.snr_db, t))
    largest = max(drops, key=lambda d: d[0], default=None)
    first = next((t for t in tensors if t.within is False), None)
    if first is None:
        return None
    assert first.failed is not None and first.metrics is not None
    prev, prev_snr, _ = previous(first)
    snr = first.metrics.snr_db
    if prev is None and prev_snr is None:
        origin: Literal["introduced", "carried", "unknown"] = "introduced"
        where = "It reads only the model's inputs and weights, so the error is made here."
    elif prev is None:
        origin = "introduced"
        where = "Its inputs are the model's own inputs, so the error is made here."
    elif prev_snr is not None and not math.isfinite(prev_snr):
        origin = "introduced"
        where = f"Its input {prev.reference!r} is the same in both models, so the error is made at this op."
    elif prev_snr is not None and prev_snr - snr >= ORIGIN_DROP_DB:
        origin = "introduced"
        where = (f"Its input {prev.reference!r} had an SNR of {_db(prev_snr)}, so the error appears at this op "
                 f"({prev_snr - snr:.1f} dB lost here).")
    else:
        origin = "carried"
        where = (f"Its input {prev.reference!r} already had an SNR of {_db(prev_snr)}: the error was carried in and grew "
                 "over the layers before, and crosses the tolerance here.")
        if largest is not None:
            where += f" The SNR falls most at {largest[1].reference!r} ({largest[0]:.1f} dB)."
    metric, value = first.failed
    parts = [f"SNR {_db(snr)}" + (f" (below {tolerance.min_snr:g} dB)" if metric == "snr_db" else ""),
             f"cosine {first.metrics.cosine:.4g}" + (f" (below {tolerance.min_cosine:g})" if metric == "cosine" else "")]
    if metric == "nonfinite":
        parts.insert(0, f"{int(value)} value(s) NaN or infinite on one side only")
    elif metric in ("atol_needed", "rtol_needed"):
        parts.append(f"it would need {metric[:4]} {value:.3g}")
    message = (f"Tensor {first.reference!r} ({first.op}) is the first, in the reference's execution order, whose candidate "
               f"values leave the tolerance: {', '.join(parts)}. {where}")
    hint = _outlier_hint(prev, rsub)
    if hint:
        message += " " + hint
    return Divergence(
        reference=first.reference, candidate=first.candidate, metric=metric, value=value, position=first.position,
        op=first.op, origin=origin, previous=prev.reference if prev is not None else None, previous_snr_db=prev_snr,
        message=message, largest_drop=(largest[1].reference, largest[0]) if largest is not None else None,
    )


def _outlier_hint(prev: TensorComparison | None, rsub) -> str:
    """A sentence when the divergent op's input has an outlier channel: a tensor quantized with
    one scale then gives the other channels few levels, and the loss shows where they are mixed."""
    if prev is None or prev.metrics is None or prev.metrics.spread < OUTLIER_RATIO:
        return ""
    return (f"The reference's {prev.reference!r} has an outlier channel: its largest channel's values are "
            f"{prev.metrics.spread:.0f}× the median channel's (RMS). Quantized with one scale for the whole tensor, the "
            "other channels keep only a few integer levels each; the loss shows once an op mixes them (per-channel "
            "activation ranges, cross-layer equalization or a float layer there would avoid it).")


def _db(v: float | None) -> str:
    if v is None:
        return "—"
    if math.isinf(v):
        return "∞ dB" if v > 0 else "−∞ dB"
    return f"{v:.1f} dB"


def feed_for(spec: ModelSpec, data: Feed, source: ModelSpec, source_signature: str | None = None,
             signature: str | None = None, *, fix: bool = False, preferences: Mapping[str, str] | None = None,
             model_bytes: bytes | memoryview | None = None) -> Feed:
    """The data given for ``source`` (its inputs' arrays, as given) bound to ``spec``'s inputs in
    order (a reference's input names may differ), and, with ``fix``, fixed for ``spec`` as
    ``fix_all`` fixes it with the user's ``preferences``. Raises ``ValueError`` when the arrays
    cannot be bound."""
    from .binding import bind
    from .choices import choices as find_choices, pending_fixes
    from .diagnosis import fix_all

    inputs, _ = source.io(source_signature)
    arrays = [data.arrays[t.name] for t in inputs if t.name in data.arrays]
    feed = bind(spec, arrays, signature)
    if not fix:
        return feed
    found = find_choices(spec, feed, signature, dict(preferences or {}), model_bytes=model_bytes)
    return fix_all(spec, feed, signature, choices=found, extra=pending_fixes(found, ())).feed


# -- a batch of samples ----------------------------------------------------------------------------------


def compare_samples(
    reference: Model | Expected | Any,
    candidate: Model,
    samples: Sequence[tuple[Feed, Feed | None]] | Sequence[Feed],
    *,
    tolerance: Tolerance = Tolerance(),
    pool: Any = None,
    owner: Hashable = None,
    layers: bool = True,
    on_wait: Callable[[Any], None] | None = None,
    limits: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> Comparison:
    """Compare over several samples: the first layer by layer (as ``compare``), every one by its
    outputs; the result's ``samples`` holds each sample's output metrics and their distribution,
    and its ``ok`` needs every sample within the tolerance.

    ``samples``: per sample, the candidate's feed and the reference's (a ``Model`` reference;
    None or a lone feed: the candidate's). For ``Expected`` references the arrays hold one row
    per sample on a first axis of their own.
    """
    from dataclasses import replace as _replace

    feeds = [(s, None) if isinstance(s, Feed) else s for s in samples]
    if not feeds:
        raise ValueError("There are no samples to compare.")
    from .reference import KerasModel, run_reference

    if isinstance(reference, KerasModel):  # one TensorFlow worker for every sample
        return run_reference(reference, candidate, tolerance=tolerance, pool=pool, owner=owner, on_wait=on_wait,
                             limits=limits, samples=[c for c, _ in feeds], progress=progress)

    def pick(k: int) -> tuple[Any, Model]:
        cand_feed, ref_feed = feeds[k]
        cand = _replace(candidate, feed=cand_feed)
        if isinstance(reference, Model):
            ref = _replace(reference, feed=ref_feed if ref_feed is not None else cand_feed)
        elif isinstance(reference, Expected):
            arrays = reference.arrays
            if isinstance(arrays, Mapping):
                rows: Any = {key: np.asarray(v)[k] for key, v in arrays.items()}
            else:
                rows = [np.asarray(v)[k] for v in arrays]
            ref = Expected(name=reference.name, arrays=rows)
        else:
            ref = reference
        return ref, cand

    first = compare(*pick(0), tolerance=tolerance, pool=pool, owner=owner, layers=layers, on_wait=on_wait, limits=limits)
    per: list[Mapping[str, Metrics | None]] = []
    within: list[bool] = []
    names = tuple(o.reference for o in first.outputs)

    def record(c: Comparison) -> None:
        per.append({o.reference: o.metrics for o in c.outputs})
        within.append(c.ran and all(o.within for o in c.outputs))

    record(first)
    if progress is not None:
        progress(1, len(feeds))
    for k in range(1, len(feeds)):
        ref, cand = pick(k)
        record(compare(ref, cand, tolerance=tolerance, pool=pool, owner=owner, layers=False, on_wait=on_wait, limits=limits))
        if progress is not None:
            progress(k + 1, len(feeds))
    spread = SampleSpread(outputs=names, per_sample=tuple(per), within=tuple(within))
    return _replace(first, samples=spread)
