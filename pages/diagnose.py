"""Diagnose and fix: the data beside what each input expects, the choices the fixes make, and a
button for every fix."""

from __future__ import annotations

import streamlit as st

from lite_debug.audio_diagnosis import audio_view
from lite_debug.errors import LiteDebugError
from lite_debug.gallery import example
from lite_debug.report import comparison_rows, preview_image
from pages._ui import PAGES, comparison_table, frame, md, pool, require_workspace

frame("diagnose")

ws = require_workspace()


# Every button acts in a callback, which runs before the page: one run shows the result, where
# acting in the page and calling st.rerun() would run it twice.
def act(action, *args) -> None:
    try:
        action(*args)
    except (LiteDebugError, ValueError) as exc:
        st.session_state["fix-error"] = str(exc)


def apply_all() -> None:
    applied = ws.apply_all()
    st.toast(f"Applied {len(applied)} fix(es).")


def run_now() -> None:
    st.session_state["run-requested"] = True


def choose(key: str, widget: str) -> None:
    act(ws.choose, key, st.session_state[widget])


def audio_section(pos: int, name: str, view) -> None:
    """A recording bound to an input: its facts, as given and as the model will receive it, the
    waveform, the spectrogram and a player, window by window once it is cut into windows."""
    from lite_debug.figures import spectrogram, waveform

    st.markdown(":material/graphic_eq: **The recording**")
    given = ws.original.facts.get(name)
    if given is not None and given != view.info:
        st.caption("As given: " + md(given.describe()))
        st.caption("As the model will receive it: " + md(view.info.describe()))
    else:
        st.caption("As given, unchanged so far: " + md(view.info.describe()))
    n = len(view.windows)
    i = 0
    if n > 1:
        i = st.slider(f"Window (of {n})", 0, n - 1, 0, key=f"audio-window-{pos}",
                      help="Each window is one run of the model; the player and the spectrogram show this one.")
        st.caption(f"Window {i} starts at {view.starts[i]:.3g} s and lasts {view.info.frames / view.rate:.3g} s.")
    wave_tab, spec_tab = st.tabs(["Waveform", "Spectrogram"])
    wave_tab.plotly_chart(
        waveform(view.windows, view.rate, starts=view.starts,
                 title="Waveform" + (f", {n} windows" if n > 1 else "") + " (mixed to mono for drawing)" * (view.info.channels > 1)),
        width="stretch", key=f"audio-wave-{pos}",
    )
    spec_tab.plotly_chart(
        spectrogram(view.windows[i], view.rate, title="Spectrogram" + (f" of window {i}" if n > 1 else "")),
        width="stretch", key=f"audio-spec-{pos}", theme=None,  # Streamlit's theme would swap the dB colour scale for its own
    )
    st.audio(view.windows[i], sample_rate=view.rate)


st.title("Diagnose and fix")
if ws.example_id:
    ex = example(ws.example_id)
    st.info(f"**{ex.title}.** {ex.story}", icon=":material/menu_book:")
if ws.recorded is not None:
    rec = ws.recorded
    with st.container(border=True):
        status = rec.run.status if rec.run is not None else "not run"
        st.markdown(f":material/inventory_2: **Opened from {md(ws.container or 'a bundle')}:** "
                    f"{len(rec.errors)} error(s) before any fix; {len(ws.steps)} fix(es) replayed; recorded run: {md(status)}.")
        for note in rec.notes:
            st.caption(md(note))
        for m in rec.errors:
            st.caption(f"Before any fix — **{m.kind}**: {md(m.message)}")
        if rec.run is not None and rec.run.explanation is not None:
            st.caption("Recorded failure: " + md(rec.run.explanation.title))
        if ws.result is not None and not ws.result_stale and rec.run is not None:
            from lite_debug.casefile import compare_outputs, compare_versions

            for name, cmp in compare_outputs(rec, ws.result).items():
                diff = "not in this run" if cmp.get("max_abs") is None else f"largest difference {cmp['max_abs']:.6g}"
                st.caption(f"{md(name)}: recorded vs re-run: {diff}")
            for d in compare_versions(rec.versions):
                st.caption(md(d.sentence))
if ws.reported is not None:
    rep = ws.reported
    with st.container(border=True):
        st.markdown(f":material/bug_report: **Reported in {md(rep.path)}:** {md(rep.explanation.title)}")
        st.code(rep.text, language="text", wrap_lines=True)
        if ws.reproduced is not None:
            st.markdown(f"**Reproduced here:** {md(ws.reproduced)}"
                        + (f" — {md(ws.result.explanation.title)}" if ws.reproduced == "a different error" and ws.result.explanation else ""))
        else:
            st.caption("Run the model to see whether lite-debug reproduces it.")
for m in ws.mismatches:
    if m.input_index < 0 and m.severity == "error":  # the model itself: it does not load here
        st.error(f"**{m.kind}** — {md(m.message)}", icon=":material/block:")
        with st.expander("The interpreter's message"):
            st.code(m.got, language="text", wrap_lines=True)
if not ws.has_data:
    st.warning("There is no data for this model yet: upload some or generate an input on the Start page.")
    st.page_link(PAGES["start"], label="Go to Start", icon=":material/home:")
    st.stop()

mismatches = ws.mismatches
errors = [m for m in mismatches if m.severity == "error"]
warnings = [m for m in mismatches if m.severity == "warning"]

top = st.columns([1, 1, 1.4, 0.8])
top[0].metric("Errors", len(errors), help="The interpreter will refuse the data.")
top[1].metric("Warnings", len(warnings), help="It will run, but the result is likely wrong.")
top[2].button(
    "Apply all fixes", key="fix-all", type="primary", disabled=not any(m.fixes for m in errors + warnings),
    icon=":material/auto_fix_high:", on_click=act, args=(apply_all,),
)
top[3].button("Undo", key="undo", disabled=not ws.can_undo, icon=":material/undo:", on_click=act, args=(ws.undo,))

if st.session_state.get("fix-error"):
    st.error(md(st.session_state.pop("fix-error")))

if not errors:
    if any(m.input_index < 0 and m.kind in ("prepare", "delegate") for m in warnings):
        # The model check failed only at the declared shape of a resizable input (a placeholder).
        st.info("The data fits the model's inputs; whether the model prepares at the data's shape shows when it runs "
                "(see the warning below).", icon=":material/info:")
    elif warnings:
        st.info("The interpreter will accept the data, but look at the warnings below first.", icon=":material/info:")
    else:
        st.success("The data fits the model's inputs: the interpreter will accept it as it is.", icon=":material/check_circle:")
run_label = "Run it" if not errors else "Run it anyway"
if st.button(run_label, key="run-now", type="primary" if not errors else "secondary", icon=":material/play_arrow:", on_click=run_now):
    st.switch_page(PAGES["run"])
if errors and not ws.only_the_batch_left:
    st.caption("The run is expected to fail: " + md(errors[0].message))

# The choices the fixes make where the data cannot say: shown with the one taken and why.
choices = ws.choices
if choices:
    with st.container(border=True):
        st.markdown(":material/tune: **Choices the fixes make.** The data alone cannot settle these; each says why its option was taken.")
        for c in choices:
            widget = f"choice-{c.key}"
            keys = [k for k, _ in c.options]
            st.session_state[widget] = c.chosen
            left, right = st.columns([1.2, 2])
            left.selectbox(
                f"{c.topic.capitalize()} of {md(c.input)}", keys, key=widget,
                format_func=lambda k, c=c: c.label_of(k), on_change=choose, args=(c.key, widget),
            )
            badge = ":orange-badge[a guess]" if c.guess else ":green-badge[from the model]" if c.source != "preference" else ":blue-badge[your pick]"
            right.markdown(f"{badge} {md(c.reason)}")
        if any(c.topic in ("value range", "resize method") for c in choices):
            go = st.button("Try each candidate on the model", key="sweep", icon=":material/science:",
                           help="Runs the model once per value range × resize filter and scores each run's outputs.")
            if go:
                bar = st.progress(0.0, text="Running the candidates…")
                try:
                    ws.run_sweep(pool(), progress=lambda done, total: bar.progress(done / max(total, 1), text=f"{done} of {total} candidates"))
                except LiteDebugError as exc:
                    st.error(md(str(exc)))
                bar.empty()
            if ws.sweep:
                st.caption(
                    "Each candidate fixed as “Apply all fixes” would with those picks, then run once. The score is how "
                    "confident the outputs look (a classifier's top probability, a detector's highest score): evidence, "
                    "not a verdict."
                )
                for i, cand in enumerate(ws.sweep):
                    row = st.columns([2.2, 0.7, 3, 0.9])
                    row[0].markdown(("**" if cand.best else "") + md(cand.label) + ("**" if cand.best else ""))
                    row[1].markdown("—" if cand.score.value is None else f"{cand.score.value:.3f}")
                    what = cand.score.summary if cand.result is not None and cand.result.ok else (cand.problem or cand.result.detail if cand.result else cand.problem)
                    row[2].caption(md(what))
                    row[3].button("Use", key=f"sweep-use-{i}", on_click=act, args=(ws.choose_all, dict(cand.picks)))

batch = ws.batch
if batch is not None:
    n, chunk = batch
    with st.container(border=True):
        st.markdown(
            f":material/stacks: **The data holds {n} samples**, stacked on a first axis of their own. The model takes "
            f"{chunk} at a time: fix them all the way the first one needs, run them all on the run page, or open one "
            "sample here."
        )
        c1, c2, c3 = st.columns([1.4, 1, 1])
        c1.button(
            f"Fix all {n} samples", key="fix-batch", disabled=ws.batch_ready and (not errors or ws.only_the_batch_left),
            icon=":material/auto_fix_high:", on_click=act, args=(ws.fix_batch,),
        )
        c2.number_input("Sample", min_value=0, max_value=n - 1, value=0, step=1, key="batch-sample")
        c3.button(
            "Open this sample", key="open-sample", icon=":material/filter_1:",
            on_click=lambda: act(ws.open_sample, int(st.session_state["batch-sample"])),
        )

for m in mismatches:
    if m.input_index < 0 and m.severity == "warning":
        st.warning(md(m.message), icon=":material/warning:")

for pos, tensor in enumerate(ws.inputs):
    x = ws.feed.arrays.get(tensor.name)
    mine = [m for m in mismatches if m.input_name == tensor.name and m.input_index >= 0]
    flag = (
        ":red[:material/error:]" if any(m.severity == "error" for m in mine)
        else ":orange[:material/warning:]" if mine else ":green[:material/check_circle:]"
    )
    with st.container(border=True):
        st.markdown(f"#### {flag} Input {pos}: {md(tensor.name)}")
        left, right = st.columns([3, 2])
        with left:
            st.markdown(comparison_table(comparison_rows(tensor, x, mismatches)))
            for mi, m in enumerate(mine):
                box = st.error if m.severity == "error" else st.warning
                box(f"**{m.kind}** — {md(m.message)}", icon=":material/error:" if m.severity == "error" else ":material/warning:")
                if m.fixes:
                    # A wrapping row, not columns: in a third of the column "Resize to 224×224 (crop)"
                    # was cut to "Resize to 224×224…", the same as its two neighbours.
                    buttons = st.container(horizontal=True)
                    for fi, fix in enumerate(m.fixes):
                        buttons.button(md(fix.label), key=f"fix-{pos}-{mi}-{fi}", help=fix.code, on_click=act, args=(ws.apply, fix))
        with right:
            img = preview_image(x) if tensor.rank >= 3 else None
            if img is not None:
                settled = not any(m.severity == "error" for m in mine)
                caption = "As the model will receive it (first sample)" if settled else "The data as it is now (first sample)"
                st.image(img, caption=caption, width="stretch")
            elif x is not None:
                st.caption(f"{x.dtype} {list(x.shape)}")
                info = ws.feed.facts.get(tensor.name)
                if info is not None:
                    st.caption(":material/graphic_eq: " + md(info.describe()))
        view = audio_view(ws.feed, tensor.name)
        if view is not None:
            audio_section(pos, tensor.name, view)

if ws.steps:
    st.subheader("What the fixes do, in Python")
    st.code(ws.code(), language="python")
