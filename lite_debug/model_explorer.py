"""A trace as node data for Google's Model Explorer: each layer's value coloured on the graph.

Model Explorer (google-ai-edge/model-explorer) overlays "node data" on a model's graph: a JSON
file ``{graph_id: {"results": {key: {"value": v}}, "gradient": [...]}}``. Its rules, as its
TFLite flatbuffer adapter and its web app apply them:

- A graph id names a subgraph: the subgraph's name; else the key of the first signature that
  runs it (when that key is not empty); else ``"main"`` for subgraph 0 and ``"subgraph_<i>"``
  for the others.
- Node ids are operator indices (``"0"``, ``"1"``, …); ``GraphInputs``, constants and
  ``GraphOutputs`` get the ids after them. Each node lists the name of every tensor it outputs
  (``tensor_name``: the graph's inputs are the outputs of ``GraphInputs``).
- A result's key is looked up among those tensor names first (the last node that outputs a
  tensor of that name wins), and is taken as a node id otherwise. Keys here are output tensor
  names; a tensor whose name is empty or shared with another tensor of the subgraph (the key
  would land on the wrong node) is keyed by its op's node id instead, unless that id is itself
  some tensor's name, and is otherwise left out.
- ``value`` is a number; JSON has no NaN or Infinity, so a tensor without a finite value is
  left out, and one that holds NaN or Inf gets an explicit red ``bgColor`` (which takes
  precedence over the gradient). ``gradient`` stops run from 0 (the smallest value) to 1 (the
  largest), each with a ``#rrggbb`` colour; 0 and 1 are always given.

``node_data(trace, spec)`` builds the mapping, ``dumps`` writes it as strict JSON.
``comparison_node_data(comparison, spec, side)`` does the same for a comparison
(``lite_debug.compare``): each matched tensor's error (SNR by default) keyed by the reference's
or the candidate's tensor names, coloured from red (far from the reference) to green.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Callable, Mapping

from .records import ModelSpec
from .trace import TensorStats, TraceResult, TracedTensor

__all__ = [
    "COMPARE_METRICS", "ERROR_GRADIENT", "GRADIENT", "NONFINITE_COLOR", "SNR_CAP_DB", "STATISTICS",
    "comparison_node_data", "dumps", "graph_id", "node_data",
]

# Viridis, from dark blue (the smallest value) to yellow (the largest): readable in both themes.
GRADIENT = (
    {"stop": 0.0, "bgColor": "#440154"},
    {"stop": 0.25, "bgColor": "#3b528b"},
    {"stop": 0.5, "bgColor": "#21918c"},
    {"stop": 0.75, "bgColor": "#5ec962"},
    {"stop": 1.0, "bgColor": "#fde725"},
)
NONFINITE_COLOR = "#d62728"  # a tensor that holds NaN or Inf, whatever the statistic shown

# The statistic each node is coloured by: name -> what it reads from a tensor's statistics.
STATISTICS: Mapping[str, Callable[[TensorStats], float | None]] = {
    "max_abs": lambda s: s.max_abs,
    "min": lambda s: s.min,
    "max": lambda s: s.max,
    "mean": lambda s: s.mean,
    "std": lambda s: s.std,
    "zeros": lambda s: s.zeros,
    "nan": lambda s: float(s.nan),
    "inf": lambda s: float(s.inf),
    "saturated": lambda s: s.saturated,
}


def graph_id(spec: ModelSpec, subgraph: int) -> str:
    """The id Model Explorer gives subgraph ``subgraph`` of the model (see the module's rules)."""
    graph = spec.graph
    if graph is not None and 0 <= subgraph < len(graph.subgraphs) and graph.subgraphs[subgraph].name:
        return graph.subgraphs[subgraph].name
    for sig in spec.signatures:
        if sig.subgraph_index == subgraph:
            if sig.key:
                return sig.key
            break
    return "main" if subgraph == 0 else f"subgraph_{subgraph}"


def _keys(trace: TraceResult, spec: ModelSpec) -> dict[int, str]:
    """tensor index -> the key its result goes under, for every traced tensor that can have one."""
    graph = spec.graph
    assert graph is not None
    sub = graph.subgraphs[trace.subgraph]
    names = Counter(t.name for t in sub.tensors)
    keys: dict[int, str] = {}
    for t in trace.tensors:
        if t.name and names[t.name] == 1:
            keys[t.index] = t.name
        elif t.op_index is not None and names[str(t.op_index)] == 0:
            keys[t.index] = str(t.op_index)
    return keys


def node_data(trace: TraceResult, spec: ModelSpec, statistic: str = "max_abs") -> dict[str, Any]:
    """The trace as Model Explorer node data, each tensor's ``statistic`` (one of ``STATISTICS``)
    as its value, keyed by output tensor name (see the module's rules).

    Raises ``ValueError`` for an unknown statistic or a trace that traced nothing.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"Model Explorer can colour by one of {', '.join(STATISTICS)}, not {statistic!r}.")
    if not trace.tensors or spec.graph is None:
        raise ValueError("The trace holds no tensors (the run failed), so there is nothing to colour the graph with.")
    read = STATISTICS[statistic]
    keys = _keys(trace, spec)
    results: dict[str, dict[str, Any]] = {}
    for t in trace.tensors:
        key = keys.get(t.index)
        if key is None or t.stats is None:
            continue
        entry = _result(t, read)
        if entry is not None:
            results[key] = entry
    return {graph_id(spec, trace.subgraph): {"results": results, "gradient": [dict(g) for g in GRADIENT]}}


def _result(t: TracedTensor, read: Callable[[TensorStats], float | None]) -> dict[str, Any] | None:
    s = t.stats
    assert s is not None
    value = read(s)
    bad = bool(s.nan or s.inf)
    if value is None or not math.isfinite(value):
        if not bad:
            return None
        value = 0.0  # no finite value to show: the colour says why
    entry: dict[str, Any] = {"value": float(value)}
    if bad:
        entry["bgColor"] = NONFINITE_COLOR
    return entry


# Red (far from the reference) through yellow to green (close to it), for metrics where a larger
# value is better (SNR, cosine); ``ERROR_GRADIENT[::-1]`` stops for those where smaller is.
ERROR_GRADIENT = (
    {"stop": 0.0, "bgColor": "#d62728"},
    {"stop": 0.5, "bgColor": "#f2c14e"},
    {"stop": 1.0, "bgColor": "#2ca02c"},
)
# What a comparison's nodes can be coloured by, and whether a larger value is closer to the reference.
COMPARE_METRICS: Mapping[str, bool] = {"snr_db": True, "cosine": True, "max_abs": False, "mean_abs": False, "max_rel": False}
SNR_CAP_DB = 100.0  # an SNR shown on the graph is cut to ±this: equal values have an infinite SNR, JSON none


def _unique_keys(sub, tensors: Any) -> dict[int, str]:
    """tensor index -> its result key: its name when unique in the subgraph, else its op's node
    id when no tensor is named that (see the module's rules)."""
    names = Counter(t.name for t in sub.tensors)
    keys: dict[int, str] = {}
    for index in tensors:
        t = sub.tensors[index]
        if t.name and names[t.name] == 1:
            keys[index] = t.name
        elif t.producer is not None and names[str(t.producer)] == 0:
            keys[index] = str(t.producer)
    return keys


def comparison_node_data(comparison: Any, spec: ModelSpec, side: str = "reference", metric: str = "snr_db") -> dict[str, Any]:
    """A comparison (``compare.Comparison`` of two ``.tflite`` models) as Model Explorer node
    data for the ``side`` model (``"reference"`` or ``"candidate"``, whose ``spec`` this is):
    each compared tensor's ``metric`` (one of ``COMPARE_METRICS``), keyed by that model's
    tensor names. SNRs are cut to ±``SNR_CAP_DB``; a tensor with values finite on one side only
    is red. Raises ``ValueError`` for an unknown metric or side, or a comparison with no layers.
    """
    if metric not in COMPARE_METRICS:
        raise ValueError(f"Model Explorer can colour a comparison by one of {', '.join(COMPARE_METRICS)}, not {metric!r}.")
    if side not in ("reference", "candidate"):
        raise ValueError(f"A comparison has a reference and a candidate side, not {side!r}.")
    if not comparison.tensors or spec.graph is None:
        raise ValueError("The comparison holds no layers (the runs failed, or only outputs were compared), so there is "
                         "nothing to colour the graph with.")
    sub_index = comparison.reference_subgraph if side == "reference" else comparison.candidate_subgraph
    sub = spec.graph.subgraphs[sub_index]
    index_of = (lambda t: t.reference_index) if side == "reference" else (lambda t: t.candidate_index)
    rows = [(index_of(t), t) for t in comparison.tensors if index_of(t) is not None and t.metrics is not None]
    keys = _unique_keys(sub, [i for i, _ in rows])
    results: dict[str, dict[str, Any]] = {}
    for index, t in rows:
        key = keys.get(index)
        if key is None:
            continue
        value = float(getattr(t.metrics, metric))
        if metric == "snr_db":
            value = max(-SNR_CAP_DB, min(SNR_CAP_DB, value))
        entry: dict[str, Any] = {"value": value if math.isfinite(value) else 0.0}
        if t.metrics.nonfinite or not math.isfinite(value):
            entry["bgColor"] = NONFINITE_COLOR
        results[key] = entry
    stops = ERROR_GRADIENT if COMPARE_METRICS[metric] else tuple(
        {"stop": g["stop"], "bgColor": c["bgColor"]} for g, c in zip(ERROR_GRADIENT, ERROR_GRADIENT[::-1]))
    return {graph_id(spec, sub_index): {"results": results, "gradient": [dict(g) for g in stops]}}


def dumps(data: Mapping[str, Any], indent: int | None = 2) -> str:
    """Node data as strict JSON (no NaN or Infinity, which Model Explorer's parser refuses)."""
    return json.dumps(data, indent=indent, allow_nan=False, ensure_ascii=False)
