"""Run and outputs: run the model in a worker process, explain a failure, plot the outputs."""

from __future__ import annotations

import io
import re

import streamlit as st

from lite_debug.errors import LiteDebugError
from lite_debug.figures import window_figures
from pages._ui import PAGES, errors_left, frame, md, owner, pool, require_data, require_workspace

frame("run")


ws = require_workspace()
st.title("Run and outputs")

require_data(ws)
# A batch the model can take sample by sample has one "error" left, its number of samples:
# that is no reason to warn before running every sample.
only_the_batch = ws.only_the_batch_left
if ws.errors and not only_the_batch:
    st.warning(
        errors_left(ws, "run anyway to see what it says, or fix them first."),
        icon=":material/warning:",
    )
    st.page_link(PAGES["diagnose"], label="Diagnose and fix", icon=":material/healing:")

requested = st.session_state.pop("run-requested", False)  # "Run it" on the diagnose page, or a wait


def _waiting(q) -> str:
    """What a user waiting for a worker is told: their place, and how long it may take."""
    return (
        f"Waiting for a worker: you are number {q.place} in line ({q.running} run(s) going, {q.waiting} waiting); "
        f"at most about {q.longest_wait_seconds:.0f} s."
    )


if ws.spec.is_stateful:
    st.info(
        "This model keeps state between runs (variables it reads and assigns). Each run starts from a fresh state "
        "unless you keep it; no other session ever sees it.",
        icon=":material/memory:",
    )
    st.toggle("Keep the model's state from one run to the next", key="keep-state")

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
            result = ws.run_batch(
                pool(), progress=lambda done, total: bar.progress(done / total, text=f"{done} of {total} samples"),
                owner=owner(), on_wait=lambda q: bar.progress(0.0, text=_waiting(q)),
            )
            bar.progress(1.0, text=f"{result.count} samples: {result.status}")
        b = ws.batch_result
        if b is not None:
            c1, c2, c3 = st.columns(3)
            c1.metric("Samples run", b.ok_count)
            c2.metric("Failed", b.count - b.ok_count)
            c3.metric("Total time", f"{b.total_ms:.0f} ms")
            if b.outputs:
                st.dataframe(b.summary(), hide_index=True, width="stretch")
                # A recording cut into windows: each output's class scores, window by window.
                for out_name, fig in window_figures(ws.feed, b.outputs, labels=ws.labels):
                    st.plotly_chart(fig, width="stretch", key=f"windows-{out_name}")
            if b.errors:
                st.error(f"{len(b.errors)} run(s) failed, the first at sample {next(iter(b.errors))}: "
                         + md(b.explanation.cause if b.explanation else next(iter(b.errors.values()))))
            elif not b.outputs:
                st.error(md(b.detail or f"The batch did not run ({b.status})."))
            st.caption("Open any sample on the Diagnose page to look at it alone.")
            st.page_link(PAGES["diagnose"], label="Open a sample", icon=":material/filter_1:")

if only_the_batch:
    n, chunk = ws.batch
    st.caption(f"“Run the model” gives the interpreter all {n} samples at once, as the data is; the model takes {chunk}.")


class _Busy(Exception):
    """Every worker is taken: the run waits in the page, where the wait can be shown."""


def _defer(_status) -> None:
    raise _Busy


def run_now() -> None:
    """Run the model before the page is drawn (a button callback), so the sidebar, drawn first,
    already tells of this run and the page needs no second rerun to show it. When the run
    would wait for a worker, it waits in the page instead, which says where it is in line."""
    try:
        ws.run(pool(), owner=owner(), on_wait=_defer, keep_state=bool(st.session_state.get("keep-state")))
    except _Busy:
        st.session_state["run-requested"] = True
    except LiteDebugError as exc:
        st.session_state["run-error"] = str(exc)


st.button("Run the model", key="run", type="primary", icon=":material/play_arrow:", on_click=run_now)
if "run-error" in st.session_state:
    st.error(md(st.session_state.pop("run-error")))
if requested:
    with st.status("Running in a worker process…", expanded=False) as status:
        try:
            result = ws.run(pool(), owner=owner(), on_wait=lambda q: status.update(label=_waiting(q)),
                            keep_state=bool(st.session_state.get("keep-state")))
            state = "complete" if result.ok else "error"
            status.update(label=f"Run finished: {result.status}", state=state)
        except LiteDebugError as exc:
            status.update(label="Could not run", state="error")
            st.error(md(str(exc)))
        else:
            st.rerun()  # the sidebar was drawn before this run: redraw it with the run's status

r = ws.result
if r is None:
    st.caption("Not run yet.")
    # What a run takes and gives, as metrics like the run's own: the browser loads the code it
    # draws metrics with now, not after the click, where it waited behind the first output's
    # figure (the run's numbers showed 0.7 s after the click instead of 0.25 s).
    c1, c2, _ = st.columns(3)
    c1.metric("Inputs", len(ws.inputs))
    c2.metric("Outputs", len(ws.outputs))
    # What the model will be given, when it is a picture. Drawn with plotly, like the outputs:
    # the browser loads its chart code now, while the page waits for the click, not after it.
    first_input = next((t for t in ws.inputs if t.rank == 4), None)
    if first_input is not None:
        from lite_debug.figures import input_figure

        fig = input_figure(ws.feed.arrays.get(first_input.name), title=f"The input {first_input.name}")
        if fig is not None:
            left, _ = st.columns([1, 1])
            left.plotly_chart(fig, width="stretch", key="input-preview", config={"displaylogo": False})
    st.stop()
if ws.result_stale:
    st.caption("The data has changed since this run; run again to see the new outputs.")

if ws.reported is not None and ws.reproduced is not None:
    st.info(f"**Reported in {md(ws.reported.path)}:** {md(ws.reported.explanation.title)}. "
            f"**Reproduced here:** {md(ws.reproduced)}.", icon=":material/bug_report:")
if r.status == "error":
    e = r.explanation
    st.error(f"**{md(e.title) if e else 'The interpreter refused the run'}**", icon=":material/error:")
    if e is not None:
        st.markdown(f"**Cause.** {md(e.cause)}\n\n**Fix.** {md(e.fix)}")
    if r.kernel_message:
        st.info("Run again without the default XNNPACK delegate, the kernel says: " + md(r.kernel_message.strip()))
    elif r.detail and "XNNPACK" in r.detail:
        st.info(md(r.detail))
    with st.expander("The interpreter's own message"):
        st.code(f"{r.error_type}: {r.error_message}", language="text", wrap_lines=True)
    st.stop()
if r.status in ("crashed", "timeout", "skipped", "protocol"):
    st.error(md(r.detail or f"The run ended: {r.status}."), icon=":material/dangerous:")
    if r.error_message:
        with st.expander("What the worker printed before it ended"):
            st.code(r.error_message, language="text", wrap_lines=True)
    st.stop()

c1, c2, c3 = st.columns(3)
c1.metric("Invoke", f"{r.invoke_ms:.3g} ms" if r.invoke_ms is not None else "—")
c2.metric("Round trip", f"{r.total_ms:.3g} ms" if r.total_ms is not None else "—")
c3.metric("Outputs", len(r.outputs))
if r.detail:
    st.caption(md(r.detail))

# -- the outputs: one view each, chosen by what the output is ---------------------------------------

as_text = md  # every string from the model file goes through pages/_ui.md


def npy_bytes(values) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, values, allow_pickle=False)
    return buf.getvalue()


def file_stem(name: str, position: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "output"
    return f"{position}-{stem}"[:80]


def batch_of(ws) -> int | None:
    """The number of samples the data holds on its first axis, when it is more than one."""
    arrays = list(ws.feed.arrays.values())
    inputs = ws.inputs
    if not arrays or not inputs:
        return None
    x = arrays[0]
    n = int(x.shape[0]) if getattr(x, "ndim", 0) == inputs[0].rank and x.ndim >= 1 else 0
    return n if n > 1 else None


def views_of(ws, r, choices: dict[int, str]):
    """The views of this run, kept per run and per choice of kinds (a rerun costs nothing)."""
    from lite_debug.views import interpret

    key = tuple(sorted(choices.items()))
    cached = st.session_state.get("_run_views")
    if cached and cached[0] is r and cached[1] == key:  # the run itself, not its id(), which comes back
        return cached[2]
    from lite_debug.views import hints_from_metadata

    views = interpret(r.outputs, ws.spec, signature=ws.signature, labels=ws.labels, input_image=ws.input_preview,
                      batch=batch_of(ws), choose=choices, metadata=hints_from_metadata(ws.spec, ws.model_bytes))
    st.session_state["_run_views"] = (r, key, views)
    return views


VALUES = "values"
MAX_TABLE_ROWS, MAX_TABLE_COLUMNS = 200, 64


def values_table(out, view, index) -> None:
    """A table of the values of one slice (at most 200×64), as text where they are not real numbers."""
    import numpy as np

    from lite_debug.figures import array_slice

    values = np.asarray(out.values)
    if values.size == 0:
        st.caption(f"No values: the shape {list(values.shape)} has a zero in it.")
        return
    s = array_slice(values, index) if values.ndim > 2 else values.reshape(1, -1) if values.ndim <= 1 else values
    s = np.atleast_2d(s)
    shown = s[:MAX_TABLE_ROWS, :MAX_TABLE_COLUMNS]
    if shown.dtype.kind not in "biuf":  # complex, strings, bytes: pyarrow takes none of them as numbers
        shown = np.vectorize(lambda x: repr(x) if isinstance(x, bytes) else str(x), otypes=[object])(shown).astype(str)
    cut = shown.shape != s.shape
    st.dataframe(shown, height=min(36 + 35 * shown.shape[0], 300), width="stretch")
    if cut:
        st.caption(f"The first {shown.shape[0]} rows and {shown.shape[1]} columns of {s.shape[0]}×{s.shape[1]}; download the .npy for all.")


def slice_picker(out, position: int) -> tuple[int, ...]:
    """Number inputs for the leading axes of an array of more than two axes (size-1 axes skipped)."""
    shape = [d for d in out.values.shape]
    while len(shape) > 2 and shape[0] == 1:
        shape.pop(0)
    lead = shape[:-2]
    if not lead:
        return ()
    cols = st.columns(min(len(lead), 4))
    picks = []
    for axis, size in enumerate(lead):
        picks.append(
            cols[axis % len(cols)].number_input(
                f"Index on axis {axis} (0–{size - 1})", 0, max(size - 1, 0), 0, key=f"slice-{position}-{axis}"
            )
        )
    return tuple(int(p) for p in picks)


def rows_table(rows: list[dict]) -> None:
    """A few rows as a Markdown table (no data frame to load for ten rows); every cell as text."""
    if not rows:
        return
    columns = list(rows[0])
    lines = ["| " + " | ".join(as_text(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(as_text(row.get(c, "")) for c in columns) + " |")
    st.markdown("\n".join(lines))


def details(view) -> None:
    """What a figure cannot say: rows of detections and anchors, the number of a scalar."""
    data = view.data
    if view.kind == "scalar":
        st.metric("Value", f"{data['value']:.6g}")
    elif view.kind == "anchor_scores" and data.get("top"):
        rows_table([{k: (", ".join(f"{x:.3g}" for x in v) if isinstance(v, list) else f"{v:.4g}" if isinstance(v, float) else v)
                     for k, v in row.items()} for row in data["top"]])
    elif view.kind == "anchor_boxes" and data.get("top"):
        rows_table([{"anchor": row["anchor"], "values": ", ".join(f"{x:.3g}" for x in row["values"])} for row in data["top"]])
    elif view.kind == "detections" and data.get("rows"):
        rows_table([{"label": row["label"], "score": f"{row['score']:.3f}",
                     "box [ymin, xmin, ymax, xmax]": ", ".join(f"{x:.3g}" for x in row["box"])} for row in data["rows"]])


def cached_figure(view, index: tuple[int, ...]):
    """The view's figure, built once per run, reading and slice: a rerun for another output's
    selector, or a download, does not build it again."""
    from lite_debug.figures import figure_for

    figs = st.session_state.setdefault("_run_figures", {})
    # The run itself is kept as the key, not its id(): a freed result's id comes back.
    if figs.get("_run") is not ws.result:
        figs.clear()
        figs["_run"] = ws.result
    key = (view.position, view.kind, index)
    if key not in figs:
        figs[key] = figure_for(view, index=index)
    return figs[key]


def draw(view, out, choice: str) -> None:
    """The chosen view of one output: its figure (built here, behind a "drawing" line) or its values."""
    index: tuple[int, ...] = ()
    if choice == VALUES or view.kind == "array":
        index = slice_picker(out, view.position)
    if choice != VALUES:
        placeholder = st.empty()
        placeholder.caption("Drawing…")
        fig = cached_figure(view, index)
        if fig is None:
            placeholder.empty()
        else:
            placeholder.plotly_chart(fig, width="stretch", key=f"fig-{view.position}-{view.kind}", config={"displaylogo": False})
    if choice == VALUES or view.kind in ("array", "empty", "unreadable"):
        values_table(out, view, index)
        st.download_button(
            "Download as .npy", npy_bytes(out.values) if out.values.dtype.kind != "O" else b"",
            file_name=f"{file_stem(out.name, view.position)}.npy", key=f"download-{view.position}",
            disabled=out.values.dtype.kind == "O", on_click="ignore", icon=":material/download:",
        )


def recorded_difference(name: str) -> str:
    """For a re-opened bundle: this output beside the one it recorded (largest difference)."""
    rec = ws.recorded
    if rec is None or rec.run is None or ws.result is None or ws.result_stale:
        return ""
    cached = st.session_state.get("_recorded_cmp")
    if not cached or cached[0] is not ws.result:
        from lite_debug.casefile import compare_outputs

        cached = (ws.result, compare_outputs(rec, ws.result))
        st.session_state["_recorded_cmp"] = cached
    cmp = cached[1].get(name)
    if cmp is None:
        return "Not in the bundle's recorded run."
    if cmp.get("max_abs") is None:
        return f"The bundle recorded it as {cmp.get('recorded_shape')}; it cannot be compared with this run's."
    return "Recorded in the bundle: " + ("the same values." if cmp.get("equal") else f"largest difference {cmp['max_abs']:.6g}.")


@st.fragment
def show_output(position: int) -> None:
    from lite_debug.views import KINDS

    ws_ = require_workspace()
    r_ = ws_.result
    if r_ is None or position >= len(r_.outputs):
        return
    out = r_.outputs[position]
    choices = st.session_state.setdefault("_run_choices", {})
    if choices.get("_run", {}).get(position) is not r_:  # a new run: back to the guess
        choices.pop(position, None)
        choices.setdefault("_run", {})[position] = r_
        st.session_state.pop(f"view-{position}", None)
    # The reading picked in the selector (kept by its key) is applied before the view is built,
    # so a click costs one rerun of this fragment and no second one.
    picked = st.session_state.get(f"view-{position}")
    if picked and picked != VALUES:
        choices[position] = picked
    view = views_of(ws_, r_, {k: v for k, v in choices.items() if k != "_run"})[position]
    with st.container(border=True):
        quant = f" (dequantized with {out.quantization.describe()})" if out.quantization.is_quantized else ""
        st.markdown(f"#### {as_text(out.name) or f'Output {position}'}")
        st.caption(f"Output {position} · {as_text(out.dtype)} {list(out.shape)}{quant}")
        recorded = recorded_difference(out.name)
        if recorded:
            st.caption(recorded)
        # Side by side on a wide screen (the figure, then what it assumed and its rows); one
        # above the other on a phone, where Streamlit stacks columns.
        left, right = st.columns([1, 1], gap="medium")
        with right:
            st.markdown(as_text(view.assumption))
            # In one fixed order, whichever is chosen: the select box keeps its place and value.
            options = [k for k in KINDS if k in view.alternatives]
            options += [VALUES] if view.kind not in ("array", "empty", "unreadable") else []
            if len(options) > 1:
                # A select box: its code is in the browser already (the Start page has one), and it
                # fits a phone's width however many readings there are.
                picked = st.selectbox(
                    "Read as", options, index=options.index(view.kind), key=f"view-{position}",
                    format_func=lambda k: "values (table)" if k == VALUES else KINDS.get(k, k),
                )
            picked = picked if picked in options else view.kind
            if picked != VALUES:
                details(view)
        with left:
            draw(view, out, picked)


for position in range(len(r.outputs)):
    show_output(position)
