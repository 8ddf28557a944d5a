"""Layers: one run with every op's output captured, each tensor's statistics in execution order,
the findings (the first NaN, the first Inf, saturated and dead tensors), and any tensor's values
with its place in the graph.

Every name from the model is shown as text: in data frames, ``st.text``, escaped Markdown
(``md``), the graph's escaped labels, or the figures' escaped hover text.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import numpy as np
import pandas as pd
import streamlit as st

from lite_debug.errors import LiteDebugError
from lite_debug.layer_figures import channels, ranges_by_depth, shares_by_depth, tensor_figures
from lite_debug.trace import TraceResult, feed_key, trace
from pages._ui import PAGES, errors_left, frame, md, owner, pool, require_data, require_workspace

frame("layers")

# Rows sent to the browser: a model of 100,000 tensors would send megabytes on every rerun.
MAX_ROWS = 5000
# Rows coloured by their finding: a styled frame costs far more than a plain one.
MAX_STYLED = 2000
KEPT_TRACES = 3  # traces kept per session (each is kilobytes: statistics, not tensors)
KEPT_VALUES = 4  # tensors' fetched values kept per session

ws = require_workspace()
st.title("Layers")
st.caption(
    "One run of the model with every op's output captured (the model is copied with every op output made an output "
    "of the graph, so the interpreter and its delegate must write each one out), reduced in the worker to statistics "
    "per tensor. Pick a row to see that tensor's values and its place in the graph."
)

require_data(ws)
if ws.only_the_batch_left:
    n, chunk = ws.batch
    st.info(
        f"The data is a batch of {n} samples; a trace follows one run of the model as it takes it ({chunk} at a "
        "time). Open one sample on the Diagnose page, then trace it here.",
        icon=":material/stacks:",
    )
    st.page_link(PAGES["diagnose"], label="Open a sample", icon=":material/filter_1:")
    st.stop()
if ws.errors:
    st.warning(
        errors_left(ws, "fix them first to trace the layers."),
        icon=":material/warning:",
    )
    st.page_link(PAGES["diagnose"], label="Diagnose and fix", icon=":material/healing:")

no_delegates = st.toggle(
    "Without the default XNNPACK delegate", key="layers-no-delegates",
    help="Trace with the builtin kernels alone, as the reference for what the delegate computes.",
)
key = (ws.spec.sha256, ws.signature, feed_key(ws.feed), no_delegates)
traces: OrderedDict = st.session_state.setdefault("layer-traces", OrderedDict())
values: OrderedDict = st.session_state.setdefault("layer-values", OrderedDict())


def _keep(store: OrderedDict, k, v, limit: int) -> None:
    store[k] = v
    store.move_to_end(k)
    while len(store) > limit:
        store.popitem(last=False)


def _fetch(index: int):
    """A tensor's values (an ``OutputTensor``), traced again with it fetched; None with a sentence shown."""
    with st.spinner("Fetching the tensor's values from a worker…"):
        try:
            got = trace(ws.model_bytes, ws.spec, ws.feed, ws.signature, pool=pool(), owner=owner(),
                        no_default_delegates=no_delegates, fetch=(index,))
        except (LiteDebugError, ValueError, KeyError) as exc:
            st.error(str(exc))
            return None
    if index in got.values:
        return got.values[index]
    st.error(md(got.run.detail or f"The run {got.run.status}; no values came back."))
    return None


def _run_trace() -> TraceResult | None:
    """Trace in a worker of the pool, with a status box that says where it stands."""
    with st.status("Tracing in a worker process…", expanded=False) as box:
        def waiting(q) -> None:
            box.update(label=f"Waiting for a worker: place {q.place} of {q.waiting}…")

        try:
            result = trace(ws.model_bytes, ws.spec, ws.feed, ws.signature, pool=pool(), owner=owner(),
                           no_default_delegates=no_delegates, on_wait=waiting)
        except (LiteDebugError, ValueError, KeyError) as exc:
            box.update(label="Could not trace", state="error")
            st.error(str(exc))
            return None
        box.update(label=f"Traced: {len(result.tensors)} tensors" if result.ok else f"The run {result.run.status}",
                   state="complete" if result.ok else "error")
    return result


result: TraceResult | None = traces.get(key)
# Opening the page traces the data once (before the button, whose label then says what a click
# does); with errors left in the diagnosis, only a click does.
if result is None and not ws.errors:
    result = _run_trace()
    if result is not None:
        _keep(traces, key, result, KEPT_TRACES)
if st.button("Trace again" if result is not None else "Trace the layers", key="layers-trace", type="primary",
             icon=":material/layers:"):
    result = _run_trace()
    if result is None:
        st.stop()
    _keep(traces, key, result, KEPT_TRACES)

if result is None:
    st.stop()
r = result.run
if not result.ok:
    if r.status == "error":
        e = r.explanation
        st.error(f"**{md(e.title) if e else 'The interpreter refused the run'}**", icon=":material/error:")
        if e is not None:
            st.markdown(f"**Cause.** {md(e.cause)}\n\n**Fix.** {md(e.fix)}")
        if r.detail:
            st.caption(md(r.detail))
        with st.expander("The interpreter's own message"):
            st.code(f"{r.error_type}: {r.error_message}", language="text", wrap_lines=True)
    else:
        st.error(md(r.detail or f"The run ended: {r.status}."), icon=":material/dangerous:")
    st.stop()

graph = ws.spec.graph
sub = graph.subgraphs[result.subgraph]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Tensors traced", f"{sum(1 for t in result.tensors if t.stats is not None):,} of {len(result.tensors):,}")
c2.metric("Findings", len(result.findings))
c3.metric("Traced invoke", f"{result.trace_ms:.3g} ms", help=f"The plain run's invoke took {r.invoke_ms:.3g} ms; the "
          f"statistics {result.stats_ms:.3g} ms" + (f"; building the traced copy {result.build_ms:.3g} ms." if result.build_ms else "."))
c4.metric("Outputs as in the plain run", "yes" if result.outputs_equal else "no")
if result.outputs_equal:
    st.caption(":material/check_circle: The traced run's outputs equal the plain run's: marking every op output "
               "changed nothing the model computes.")
for note in result.notes:
    st.caption(md(note))

for f in result.findings:
    (st.error if f.kind in ("nan", "inf", "mismatch") else st.warning)(
        md(f.message), icon=":material/error:" if f.kind in ("nan", "inf") else ":material/warning:"
    )
if not result.findings:
    st.success("No NaN, no Inf, no saturated or dead tensor in this run.", icon=":material/check_circle:")

tab_range, tab_shares = st.tabs(["Range by layer", "Zeros and saturation by layer"])
tab_range.plotly_chart(ranges_by_depth(result.tensors), width="stretch", key="layers-ranges")
tab_shares.plotly_chart(shares_by_depth(result.tensors), width="stretch", key="layers-shares")

# -- the table -------------------------------------------------------------------------------------

marks: dict[int, list[str]] = {}
for f in result.findings:
    if f.tensor_index is not None:
        marks.setdefault(f.tensor_index, []).append(f.kind)
left, right = st.columns([3, 1])
query = left.text_input("Filter", key="layers-filter", placeholder="tensor or op name").strip().lower()
only_findings = right.checkbox("Only tensors with a finding", key="layers-only-findings", value=False)
shown = [
    t for t in result.tensors
    if (not query or query in t.name.lower() or query in t.op.lower()) and (not only_findings or t.index in marks)
]
NAN = float("nan")
rows = []
for t in shown[:MAX_ROWS]:
    s = t.stats
    rows.append({
        "#": t.position,
        "finding": ", ".join(marks.get(t.index, ())) or (t.note and "no values"),
        "tensor": t.name,
        "op": t.op if t.op_index is None else f"#{t.op_index} {t.op}",
        "shape": "[" + ", ".join(map(str, t.shape)) + "]",
        "dtype": t.dtype,
        "min": s.min if s and s.min is not None else NAN,
        "max": s.max if s and s.max is not None else NAN,
        "mean": s.mean if s and s.mean is not None else NAN,
        "std": s.std if s and s.std is not None else NAN,
        "NaN": s.nan if s else NAN,
        "Inf": s.inf if s else NAN,
        "zeros %": 100 * s.zeros if s else NAN,
        "saturated %": 100 * s.saturated if s and s.saturated is not None else NAN,
    })
st.caption(
    f"{len(shown):,} of {len(result.tensors):,} tensors"
    + (f" (the first {MAX_ROWS:,} shown: filter to see others)" if len(shown) > MAX_ROWS else "")
    + ". Rows with a finding are coloured; pick a row to see the tensor's values and its place in the graph."
)
frame_ = pd.DataFrame(rows, columns=["#", "finding", "tensor", "op", "shape", "dtype", "min", "max", "mean", "std", "NaN",
                                      "Inf", "zeros %", "saturated %"])
table = frame_
if marks and len(rows) <= MAX_STYLED:
    def colour(row: pd.Series) -> list[str]:
        kind = row["finding"]
        if kind and any(k in kind for k in ("nan", "inf")):
            return ["background-color: rgba(214, 39, 40, 0.25)"] * len(row)
        if kind and kind != "no values":
            return ["background-color: rgba(245, 133, 24, 0.25)"] * len(row)
        return [""] * len(row)

    def number(v) -> str:
        return "" if v != v else f"{v:.4g}"  # NaN: no value

    numbers = ["min", "max", "mean", "std", "NaN", "Inf", "zeros %", "saturated %"]
    table = frame_.style.apply(colour, axis=1).format(number, subset=numbers)
st.session_state["layers-table-rows"] = [t.index for t in shown[:MAX_ROWS]]
picked = st.dataframe(
    table, hide_index=True, width="stretch", height=380, key="layers-table", on_select="rerun",
    selection_mode="single-row",
    column_config={
        "tensor": st.column_config.TextColumn(width="medium"),
        **{c: st.column_config.NumberColumn(format="%.4g") for c in ("min", "max", "mean", "std", "zeros %", "saturated %")},
    },
)

selected_rows = picked.selection.rows if picked is not None else []
index: int | None = None
if selected_rows and selected_rows[0] < len(st.session_state["layers-table-rows"]):
    index = st.session_state["layers-table-rows"][selected_rows[0]]
elif result.first_nan is not None:
    index = result.first_nan.tensor_index
elif result.first_inf is not None:
    index = result.first_inf.tensor_index

# -- one tensor --------------------------------------------------------------------------------------

if index is not None:
    t = result.tensor(index)
    with st.container(border=True):
        st.markdown(f"#### Tensor {t.position}: {md(t.name)}")
        st.caption(f"{md(t.op if t.op_index is None else f'made by op #{t.op_index} {t.op}')} · {t.dtype} "
                   f"[{', '.join(map(str, t.shape))}]"
                   + (f" · {md(t.quantization.describe())}" if t.quantization.is_quantized else ""))
        for f in result.findings_of(index):
            st.caption(md(f.message))
        tab_values, tab_graph = st.tabs(["Values", "Place in the graph"])
        with tab_values:
            vkey = (key, index)
            fetched = values.get(vkey)
            if fetched is None and t.stats is not None:
                fetched = _fetch(index)
                if fetched is not None:
                    _keep(values, vkey, fetched, KEPT_VALUES)
            if fetched is None:
                st.caption(md(t.note or "No values to show for this tensor."))
            else:
                count = channels(fetched.values.shape)
                channel = st.slider("Channel", 0, count - 1, 0, key=f"layers-channel-{index}") if count > 1 else 0
                figs = tensor_figures(fetched.values, fetched.name, channel=channel)
                if not figs:
                    st.text(f"Its one value: {fetched.values.reshape(-1)[0]}" if fetched.values.size else "It is empty.")
                tabs = st.tabs([name for name, _ in figs]) if figs else []
                for tab, (name, fig) in zip(tabs, figs):
                    tab.plotly_chart(fig, width="stretch", key=f"layers-fig-{index}-{name}")
                buf = io.BytesIO()
                np.save(buf, fetched.values, allow_pickle=False)
                st.download_button("Download the values as .npy", buf.getvalue(), file_name=f"tensor_{index}.npy",
                                   key=f"layers-download-{index}", icon=":material/download:")
        with tab_graph:
            hops = st.slider("Steps around it", 0, 3, 1, key="layers-hops")
            near_ops, near_tensors = sub.neighbourhood(tensor=index, hops=max(hops, 1))
            st.graphviz_chart(sub.dot(near_ops, near_tensors, focus_tensor=index))
            st.caption("The tensor is highlighted; operators are boxes, tensors ellipses, weights counted in their "
                       "operator's box.")

# -- Model Explorer --------------------------------------------------------------------------------

with st.expander("Open the trace in Google's Model Explorer"):
    from lite_debug.model_explorer import STATISTICS, dumps, node_data

    statistic = st.selectbox("Colour each node by", list(STATISTICS), key="layers-me-statistic",
                             help="max_abs: the largest magnitude of the tensor's values.")
    st.download_button(
        "Download node data (.json)", dumps(node_data(result, ws.spec, statistic)).encode("utf-8"),
        file_name="trace_node_data.json", mime="application/json", key="layers-me-download", icon=":material/download:",
    )
    st.caption("In Model Explorer, open the model, then add this file as node data: each layer is coloured by the "
               "statistic chosen, and tensors holding NaN or Inf are red.")
