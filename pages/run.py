"""Run and outputs: run the model in a worker process, explain a failure, plot the outputs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import streamlit as st

from lite_debug.errors import LiteDebugError
from lite_debug.figures import figures_for_output, window_figures
from lite_debug.report import preview_image
from pages._ui import PAGES, frame, pool, require_workspace

frame("run")

ws = require_workspace()
st.title("Run and outputs")

if not ws.has_data:
    st.warning("There is no data to run. Generate an input or upload data on the Start page.")
    st.page_link(PAGES["start"], label="Go to Start", icon=":material/home:")
    st.stop()
# A batch the model can take sample by sample has one "error" left, its number of samples:
# that is no reason to warn before running every sample.
only_the_batch = ws.only_the_batch_left
if ws.errors and not only_the_batch:
    st.warning(
        f"{len(ws.errors)} error(s) remain in the diagnosis, so the interpreter will probably refuse the data. "
        "Run anyway to see what it says, or fix them first.",
        icon=":material/warning:",
    )
    st.page_link(PAGES["diagnose"], label="Diagnose and fix", icon=":material/healing:")

requested = st.session_state.pop("run-requested", False)  # "Run it" on the diagnose page
if ws.batch_ready:
    n, chunk = ws.batch
    with st.container(border=True):
        st.markdown(f":material/stacks: **The data is a batch of {n} samples.** Run every one, {chunk} at a time, in one worker request.")
        # "Run it" for data that is only a batch (a recording cut into windows) means every sample.
        if st.button(f"Run all {n} samples", key="run-batch", type="primary", icon=":material/fast_forward:") or (
            requested and only_the_batch
        ):
            requested = False
            bar = st.progress(0.0, text=f"0 of {n} samples")
            result = ws.run_batch(pool(), progress=lambda done, total: bar.progress(done / total, text=f"{done} of {total} samples"))
            bar.progress(1.0, text=f"{result.count} samples: {result.status}")
        b = ws.batch_result
        if b is not None:
            c1, c2, c3 = st.columns(3)
            c1.metric("Samples run", b.ok_count)
            c2.metric("Failed", b.count - b.ok_count)
            c3.metric("Total time", f"{b.total_ms:.0f} ms")
            if b.outputs:
                st.dataframe(pd.DataFrame(b.summary()), hide_index=True, width="stretch")
                # A recording cut into windows: each output's class scores, window by window.
                for out_name, fig in window_figures(ws.feed, b.outputs, labels=ws.labels):
                    st.plotly_chart(fig, width="stretch", key=f"windows-{out_name}")
            if b.errors:
                st.error(f"{len(b.errors)} run(s) failed, the first at sample {next(iter(b.errors))}: "
                         + (b.explanation.cause if b.explanation else next(iter(b.errors.values()))))
            elif not b.outputs:
                st.error(b.detail or f"The batch did not run ({b.status}).")
            st.caption("Open any sample on the Diagnose page to look at it alone.")
            st.page_link(PAGES["diagnose"], label="Open a sample", icon=":material/filter_1:")

if only_the_batch:
    n, chunk = ws.batch
    st.caption(f"“Run the model” gives the interpreter all {n} samples at once, as the data is; the model takes {chunk}.")
if st.button("Run the model", key="run", type="primary", icon=":material/play_arrow:") or requested:
    with st.status("Running in a worker process…", expanded=False) as status:
        try:
            result = ws.run(pool())
            state = "complete" if result.ok else "error"
            status.update(label=f"Run finished: {result.status}", state=state)
        except LiteDebugError as exc:
            status.update(label="Could not run", state="error")
            st.error(str(exc))
        else:
            st.rerun()  # the sidebar was drawn before this run: redraw it with the run's status

r = ws.result
if r is None:
    st.caption("Not run yet.")
    st.stop()
if ws.result_stale:
    st.caption("The data has changed since this run; run again to see the new outputs.")

if r.status == "error":
    e = r.explanation
    st.error(f"**{e.title if e else 'The interpreter refused the run'}**", icon=":material/error:")
    if e is not None:
        st.markdown(f"**Cause.** {e.cause}\n\n**Fix.** {e.fix}")
    if r.kernel_message:
        st.info(f"Run again without the default XNNPACK delegate, the kernel says: `{r.kernel_message.strip()}`")
    elif r.detail and "XNNPACK" in r.detail:
        st.info(r.detail)
    with st.expander("The interpreter's own message"):
        st.code(f"{r.error_type}: {r.error_message}", language="text", wrap_lines=True)
    st.stop()
if r.status in ("crashed", "timeout", "skipped"):
    st.error(r.detail, icon=":material/dangerous:")
    if r.error_message:
        with st.expander("What the worker printed before it ended"):
            st.code(r.error_message, language="text", wrap_lines=True)
    st.stop()

c1, c2, c3 = st.columns(3)
c1.metric("Invoke", f"{r.invoke_ms:.3g} ms" if r.invoke_ms is not None else "—")
c2.metric("Round trip", f"{r.total_ms:.3g} ms" if r.total_ms is not None else "—")
c3.metric("Outputs", len(r.outputs))
if r.detail:
    st.caption(r.detail)

first_image = next((preview_image(ws.feed.arrays.get(t.name)) for t in ws.inputs if t.rank == 4), None)
for out in r.outputs:
    with st.container(border=True):
        st.markdown(
            f"#### `{out.name}` — {out.dtype} {list(out.shape)}"
            + (f" (dequantized with {out.quantization.describe()})" if out.quantization.is_quantized else "")
        )
        figs = figures_for_output(out, labels=ws.labels, input_image=first_image)
        if figs:
            tabs = st.tabs([name for name, _ in figs] + ["Values"])
            for tab, (name, fig) in zip(tabs, figs):
                tab.plotly_chart(fig, width="stretch", key=f"fig-{out.name}-{name}")
            values_tab = tabs[-1]
        else:
            values_tab = st.container()
        with values_tab:
            v = np.asarray(out.values)
            table = v.reshape(-1, v.shape[-1]) if v.ndim >= 2 else v.reshape(1, -1)
            st.dataframe(pd.DataFrame(table[:1000, :1000]), width="stretch", height=240)
            buf = io.BytesIO()
            np.save(buf, out.values, allow_pickle=False)
            st.download_button(
                "Download as .npy",
                buf.getvalue(),
                file_name=f"{out.name.replace('/', '_').replace(':', '_')}.npy",
                key=f"download-{out.name}",
            )
