"""Model: what the model expects and returns, its operators, its graph, its tensors, its metadata.

Every string that comes from the model or the user (file, tensor, operator and signature
names, metadata text) is shown as text: in data frames, ``st.text``, ``st.code`` or the
graph's own escaped labels, never in Markdown, where a name like ``:red[x]`` or ``<b>`` would
be read as markup.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lite_debug.records import XNNPACK_CUSTOM_OPS
from lite_debug.report import tensor_rows
from pages._ui import frame, require_workspace

frame("model")

# More operators than this and the centre is picked by number: a select box sends every
# option to the browser.
MAX_CHOICES = 3000
# A neighbourhood with more nodes than this is still drawn, with a word that it is large.
READABLE_NODES = 80
# Rows sent to the browser per table: a model of 100,000 tensors would send megabytes on each
# rerun. The filter reaches the rest.
MAX_ROWS = 5000

ws = require_workspace()
spec = ws.spec
graph = spec.graph
st.title("Model")
st.text(ws.model_name)

c1, c2, c3, c4 = st.columns(4)
c1.metric("Size", f"{spec.size / 1024:,.1f} KB")
c2.metric("Operators", graph.operator_count if graph else sum(o.count for o in spec.ops))
c3.metric("Tensors", graph.tensor_count if graph else spec.tensor_count)
c4.metric("Subgraphs", spec.subgraph_count)

if spec.problem:
    st.error(spec.problem, icon=":material/report:")
if graph is not None and graph.is_stateful:
    st.warning(
        "This model keeps state between runs (" + ", ".join(graph.stateful) + "): its outputs depend on the runs "
        "before them in the same interpreter, so the same data can give different outputs from one run to the next.",
        icon=":material/history:",
    )

flex = [o for o in spec.ops if o.kind == "flex"]
custom = [o for o in spec.ops if o.kind == "custom"]
if flex:
    st.error(
        f"{len(flex)} Select TensorFlow op(s): they run only in an interpreter linked with the Flex delegate, "
        "which ai-edge-litert lacks, so allocating this model fails. They are listed below.",
        icon=":material/block:",
    )
if custom:
    missing = [o for o in custom if o.name not in XNNPACK_CUSTOM_OPS]
    (st.warning if missing else st.info)(
        f"{len(custom)} custom op(s)"
        + (
            f", {len(missing)} of them unknown to this runtime: the interpreter needs a registration or a delegate "
            "that provides them, or allocating the model fails."
            if missing
            else ": MediaPipe ops that the default XNNPACK delegate implements, so the model runs here."
        )
        + " They are listed below.",
        icon=":material/extension:",
    )
if flex or custom:
    st.dataframe(
        pd.DataFrame([{"op": o.name, "kind": o.kind, "count": o.count, "what it needs": o.note} for o in (*flex, *custom)]),
        hide_index=True,
        width="stretch",
    )

subgraphs = graph.subgraphs if graph is not None else ()
if len(subgraphs) > 1:
    chosen = st.selectbox(
        "Subgraph",
        range(len(subgraphs)),
        format_func=lambda s: f"{s}: {subgraphs[s].name}" if subgraphs[s].name else str(s),
        key="model-subgraph",
        help="Subgraph 0 is the main graph; the others are called by its control-flow ops or signatures.",
    )
    sub = subgraphs[chosen]
else:
    sub = subgraphs[0] if subgraphs else None


tab_io, tab_ops, tab_graph, tab_tensors, tab_meta = st.tabs(["Inputs and outputs", "Operators", "Graph", "Tensors", "Metadata"])

# -- inputs and outputs ----------------------------------------------------------------------------

metadata = spec.metadata
with tab_io:
    st.subheader("Inputs")
    st.dataframe(pd.DataFrame(tensor_rows(spec.inputs)), hide_index=True, width="stretch")
    st.subheader("Outputs")
    st.dataframe(pd.DataFrame(tensor_rows(spec.outputs)), hide_index=True, width="stretch")
    if spec.signatures:
        st.subheader("Signatures")
        st.dataframe(
            pd.DataFrame(
                [
                    {"signature": sig.key, "side": side, **row}
                    for sig in spec.signatures
                    for side, tensors in (("input", sig.inputs), ("output", sig.outputs))
                    for row in tensor_rows(tensors)
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    st.subheader("Value range the inputs expect")
    evidence = False
    if graph is not None:
        from lite_debug.graph import input_normalization

        for n in input_normalization(ws.model_bytes, graph):
            st.info(f"Input {n.input_index}: " + n.describe(), icon=":material/functions:")
            evidence = True
    if metadata is not None and metadata.main is not None:
        for i, t in enumerate(metadata.main.inputs):
            sentence = t.describe_normalization()
            if sentence:
                st.info(f"Input {i}: " + sentence, icon=":material/description:")
                evidence = True
    if not evidence:
        st.caption(
            "Neither the graph (no arithmetic by constants right after an input) nor metadata says what range "
            "of values the inputs expect."
        )

# -- operators ---------------------------------------------------------------------------------------


def _pick_row() -> None:
    """A row picked in the operator table centres the graph view on that operator."""
    rows = st.session_state["op-table"]["selection"]["rows"]
    shown = st.session_state.get("op-table-rows", [])
    if rows and rows[0] < len(shown):
        st.session_state["graph-centre"] = "operator"
        st.session_state["graph-op"] = shown[rows[0]]


with tab_ops:
    st.subheader("Inventory")
    st.dataframe(
        pd.DataFrame([{"op": o.name, "kind": o.kind, "count": o.count, "version": o.version} for o in spec.ops]),
        hide_index=True,
        width="stretch",
    )
    if sub is not None:
        st.subheader(f"Operators of subgraph {sub.index}, in execution order")
        query = st.text_input(
            "Filter", key="op-filter", placeholder="op name or tensor name",
            help="Keeps the operators whose name, or the name of one of whose tensors, contains this text.",
        ).strip().lower()
        tensors = sub.tensors

        def names(ids) -> str:
            return ", ".join(tensors[t].name if t >= 0 else "(none)" for t in ids)

        rows, shown = [], []
        for o in sub.operators:
            ins, outs = names(o.inputs), names(o.outputs)
            if query and query not in o.name.lower() and query not in ins.lower() and query not in outs.lower():
                continue
            shown.append(o.index)
            rows.append(
                {
                    "#": o.index,
                    "op": o.name,
                    "kind": o.kind,
                    "inputs": ", ".join(map(str, o.inputs)),
                    "outputs": ", ".join(map(str, o.outputs)),
                    "output names": outs,
                    "options": o.options_text(),
                }
            )
        found = len(rows)
        rows, shown = rows[:MAX_ROWS], shown[:MAX_ROWS]
        st.session_state["op-table-rows"] = shown
        st.caption(
            f"{found:,} of {len(sub.operators):,} operators"
            + (f" (the first {MAX_ROWS:,} shown: filter to see others)" if found > MAX_ROWS else "")
            + ". Click a column to sort; pick a row to centre the graph on it."
        )
        st.dataframe(
            pd.DataFrame(rows, columns=["#", "op", "kind", "inputs", "outputs", "output names", "options"]),
            hide_index=True,
            width="stretch",
            key="op-table",
            on_select=_pick_row,
            selection_mode="single-row",
        )

# -- graph -------------------------------------------------------------------------------------------

with tab_graph:
    if sub is None or not len(sub.tensors):
        st.caption("The graph could not be read; the problem is above.")
    else:
        ops = sub.operators
        left, middle, right = st.columns([1, 3, 1])
        centre = left.radio("Centre on", ["operator", "tensor"], key="graph-centre", horizontal=True)
        hops = right.slider("Steps around it", 0, 4, 1, key="graph-hops")
        focus_op = focus_tensor = None
        if centre == "operator" and len(ops):
            start = sub.first_computing_operator()
            if len(ops) <= MAX_CHOICES:
                focus_op = middle.selectbox(
                    "Operator", range(len(ops)), index=start, format_func=lambda j: f"#{j} {ops[j].name}", key="graph-op"
                )
            else:
                focus_op = middle.number_input("Operator #", 0, len(ops) - 1, start, key="graph-op")
        else:
            if len(sub.tensors) <= MAX_CHOICES:
                focus_tensor = middle.selectbox(
                    "Tensor", range(len(sub.tensors)), format_func=lambda t: f"{t}: {sub.tensors[t].name}", key="graph-tensor"
                )
            else:
                focus_tensor = middle.number_input("Tensor #", 0, len(sub.tensors) - 1, 0, key="graph-tensor")
        fold = st.checkbox(
            "Count weights in their operator's box (constants, and DEQUANTIZE ops of constants)", value=True, key="graph-fold"
        )
        near_ops, near_tensors = (
            sub.neighbourhood(op=focus_op, hops=hops) if focus_op is not None else sub.neighbourhood(tensor=focus_tensor, hops=hops)
        )
        drawn = len(near_ops) + sum(1 for t in near_tensors if not (fold and sub.tensors[t].is_constant))
        if drawn > READABLE_NODES:
            st.info(f"{drawn} nodes in {hops} steps: fewer steps make the drawing easier to read.", icon=":material/zoom_out:")
        st.graphviz_chart(
            sub.dot(near_ops, near_tensors, focus_op=focus_op, focus_tensor=focus_tensor, fold_constants=fold)
        )
        st.caption("Operators are boxes (custom and Flex ops in red), tensors ellipses; names longer than 48 characters are cut.")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "tensor": t,
                        "name": sub.tensors[t].name,
                        "shape": sub.tensors[t].shape_text(signature=True),
                        "dtype": sub.tensors[t].dtype,
                        "constant": sub.tensors[t].is_constant,
                        "made by": "" if sub.tensors[t].producer is None else f"#{sub.tensors[t].producer} {ops[sub.tensors[t].producer].name}",
                        "read by": ", ".join(f"#{c}" for c in sub.tensors[t].consumers),
                    }
                    for t in near_tensors
                ]
            ),
            hide_index=True,
            width="stretch",
        )

# -- tensors -----------------------------------------------------------------------------------------

with tab_tensors:
    if sub is not None:
        query = st.text_input("Filter", key="tensor-filter", placeholder="tensor name").strip().lower()
        ops = sub.operators
        rows = [
            {
                "#": t.index,
                "name": t.name,
                "shape": t.shape_text(),
                "shape_signature": t.shape_text(signature=True),
                "dtype": t.dtype,
                "quantization": t.quantization.describe() if t.quantization.is_quantized else "",
                "constant": t.is_constant,
                "variable": t.is_variable,
                "made by": "" if t.producer is None else f"#{t.producer} {ops[t.producer].name}",
                "read by": ", ".join(f"#{c}" for c in t.consumers),
            }
            for t in sub.tensors
            if not query or query in t.name.lower()
        ]
        st.caption(
            f"{len(rows):,} of {len(sub.tensors):,} tensors"
            + (f" (the first {MAX_ROWS:,} shown: filter to see others)." if len(rows) > MAX_ROWS else ".")
        )
        st.dataframe(pd.DataFrame(rows[:MAX_ROWS]), hide_index=True, width="stretch", key="tensor-table")

# -- metadata ----------------------------------------------------------------------------------------


def _content(t) -> str:
    c = t.content
    if c is None or not c.kind:
        return ""
    if c.image is not None:
        size = f", default {c.image.default_size[0]}×{c.image.default_size[1]}" if c.image.default_size else ""
        return f"image ({c.image.color_space}{size})"
    if c.audio is not None:
        return f"audio ({c.audio.sample_rate} Hz, {c.audio.channels} channel(s))"
    if c.bounding_box is not None:
        b = c.bounding_box
        return f"bounding boxes ({b.type}, {b.coordinate_type}, index {list(b.index)})"
    return c.kind + (f" (values {c.value_range[0]}–{c.value_range[1]})" if c.value_range else "")


with tab_meta:
    if spec.description:
        st.markdown("Description in the flatbuffer")
        st.text(spec.description)
    if metadata is None:
        st.caption("The model carries no TFLite Support metadata (no TFLITE_METADATA buffer).")
    else:
        if metadata.problem:
            st.warning(metadata.problem, icon=":material/report:")
        st.subheader("TFLite Support metadata")
        about = {
            "name": metadata.name, "version": metadata.version, "author": metadata.author,
            "license": metadata.license, "min parser version": metadata.min_parser_version,
        }
        st.dataframe(
            pd.DataFrame([{"field": k, "value": v} for k, v in about.items() if v], columns=["field", "value"]),
            hide_index=True,
            width="stretch",
        )
        if metadata.description:
            st.markdown("Description in the metadata")
            st.text(metadata.description)
        for s, msub in enumerate(metadata.subgraphs):
            rows = []
            for side, tensors in (("input", msub.inputs), ("output", msub.outputs)):
                for i, t in enumerate(tensors):
                    norm = t.normalization
                    rows.append(
                        {
                            "side": side,
                            "#": i,
                            "name": t.name,
                            "description": t.description,
                            "content": _content(t),
                            "normalisation": f"mean {list(norm.mean)}, std {list(norm.std)}" if norm else "",
                            "range": f"{list(t.stats_min)} … {list(t.stats_max)}" if t.stats_min or t.stats_max else "",
                            "files": ", ".join(f.name for f in t.associated_files),
                        }
                    )
            if rows:
                st.markdown(f"Inputs and outputs of subgraph {s}")
                st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        files = metadata.files()
        if files:
            st.markdown("Associated files")
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "name": f.name,
                            "type": f.type,
                            "attached to": where,
                            "description": f.description,
                            "packed in the model": "" if f.packed_size is None else f"{f.packed_size:,} bytes",
                        }
                        for where, f in files
                    ]
                ),
                hide_index=True,
                width="stretch",
            )
    if spec.packed_files:
        st.markdown("Files packed in the model (the zip after the flatbuffer)")
        st.dataframe(pd.DataFrame([{"name": f.name, "bytes": f.size} for f in spec.packed_files]), hide_index=True, width="stretch")
    if spec.metadata_names:
        st.markdown("Metadata entries of the flatbuffer")
        st.dataframe(pd.DataFrame({"name": list(spec.metadata_names)}), hide_index=True, width="stretch")
    if ws.labels:
        with st.expander(f"Labels ({len(ws.labels)})"):
            st.text("\n".join(ws.labels[:1000]))
