"""Start: open an example failure from the gallery, or upload a model and its data."""

from __future__ import annotations

import streamlit as st

from lite_debug.errors import LiteDebugError
from lite_debug.gallery import examples
from pages._ui import PAGES, frame, keeper, md, set_workspace, workspace

# The engine is imported where it is first needed, not here: the gallery is drawn without it
# (app.py imports it in the background once the page is up).

frame("start")

st.title("lite-debug")
st.markdown(
    "Find out why a TensorFlow Lite / LiteRT model refuses your data, fix it in a click, and run it "
    "safely. Open a real failure from the gallery, or bring your own model and data."
)

if st.session_state.get("case-error"):
    st.error(md(st.session_state.pop("case-error")), icon=":material/error:")


def _open_case(case_id: str) -> None:
    from lite_debug.errors import LiteDebugError

    try:
        set_workspace(keeper().load(case_id))
        st.query_params["case"] = case_id
    except LiteDebugError as exc:
        st.session_state["case-error"] = str(exc)


def _delete_case(case_id: str) -> None:
    keeper().delete(case_id)
    st.session_state["recent-cases"] = [c for c in st.session_state.get("recent-cases", []) if c != case_id]
    st.session_state["_cookie"] = ".".join(st.session_state["recent-cases"])
    ws_now = workspace()
    if ws_now is not None and ws_now.case_id == case_id:
        set_workspace(None)


st.subheader("Gallery of real failures")
cols = st.columns(3)
for i, ex in enumerate(examples()):
    with cols[i % 3].container(border=True):
        st.markdown(f"**{ex.title}**")
        st.caption(ex.story)
        if st.button("Open", key=f"example-{ex.id}", icon=":material/open_in_new:"):
            from lite_debug.session import Workspace

            set_workspace(Workspace.from_example(ex.id))
            st.session_state.pop("data-files", None)  # the example brings its own data
            st.switch_page(PAGES["diagnose"])

st.subheader("Your own model")


# Both uploaders are read in their on_change callbacks and then emptied (by a new key). Streamlit
# returns a widget's value to the script as a deep copy, on every rerun while a file sits in the
# uploader: for a 100 MB model that is a 100 MB copy per click. A callback reads the upload
# through session_state, which hands over Streamlit's own bytes, and the workspace keeps those.


def _uploader_key(kind: str) -> str:
    generation = st.session_state.get(f"{kind}-upload-generation", 0)
    return f"{kind}-upload" if generation == 0 else f"{kind}-upload-{generation}"


def _empty_uploader(kind: str) -> None:
    st.session_state[f"{kind}-upload-generation"] = st.session_state.get(f"{kind}-upload-generation", 0) + 1


def _load_data(ws, files: list[tuple[str, bytes]]) -> None:
    try:
        ws.load_files(files)
        st.session_state.pop("data-error", None)
    except LiteDebugError as exc:
        st.session_state["data-error"] = str(exc)


def _open_model() -> None:
    upload = st.session_state.get(_uploader_key("model"))
    if upload is None:
        return
    _empty_uploader("model")
    # getvalue() is the upload's own bytes object (BytesIO shares it until written to);
    # getbuffer() would unshare it, copying the whole model.
    _open(upload.name, upload.getvalue())


def _open(name: str, data: bytes, member: str | None = None) -> None:
    from lite_debug.opening import ChooseModel
    from lite_debug.session import Workspace

    st.session_state.pop("choose-model", None)
    try:
        with st.spinner(f"Reading {md(name)}…"):
            opened = Workspace.open(name, data, member)
    except ChooseModel as exc:
        # Several models in one archive: ask which (the archive's bytes wait in the session).
        st.session_state["choose-model"] = (name, data, exc.paths, exc.archive.describe())
        st.session_state.pop("model-error", None)
        return
    except LiteDebugError as exc:
        st.session_state["model-error"] = str(exc)
        return
    st.session_state.pop("model-error", None)
    st.session_state.pop("data-error", None)
    set_workspace(opened)
    if opened.data_problem:
        st.session_state["data-error"] = opened.data_problem
    if not opened.has_data and st.session_state.get("data-files"):
        # The data uploaded before is for the new model too: load it again (a bundle or an
        # archive brings its own data, which wins).
        _load_data(opened, st.session_state["data-files"])


def _open_chosen() -> None:
    name, data, _, _ = st.session_state["choose-model"]
    _open(name, data, st.session_state["choose-model-path"])


def _open_data() -> None:
    uploads = st.session_state.get(_uploader_key("data")) or []
    ws = workspace()
    if not uploads or ws is None:
        return
    _empty_uploader("data")
    files = [(f.name, f.getvalue()) for f in uploads]
    with st.spinner(f"Reading {md(', '.join(name for name, _ in files))}…"):
        _load_data(ws, files)
    if "data-error" not in st.session_state:
        st.session_state["data-files"] = files


left, right = st.columns(2)
with left:
    # No type filter: a file the uploader refused by its extension left the previous error on
    # screen and said nothing of its own; every file reaches the engine, which says what it is.
    st.file_uploader(
        "Model (.tflite), or a bug-report archive (.zip, .tar.gz) or bundle",
        key=_uploader_key("model"),
        on_change=_open_model,
    )
    if st.session_state.get("choose-model"):
        name, _, paths, summary = st.session_state["choose-model"]
        st.info(md(summary) + " Which model should open?", icon=":material/folder_zip:")
        st.selectbox("Model in the archive", paths, key="choose-model-path", format_func=lambda p: p)
        st.button("Open this model", key="choose-model-open", on_click=_open_chosen, type="primary")
    elif st.session_state.get("model-error"):
        st.error(md(st.session_state["model-error"]), icon=":material/error:")
    elif workspace() is not None:
        ws_open = workspace()
        st.caption(f"Open: **{md(ws_open.model_name)}** ({ws_open.spec.size:,} bytes). Upload another to replace it.")
        if ws_open.archive_summary:
            st.caption(md(ws_open.archive_summary))

ws = workspace()
with right:
    st.file_uploader(
        "Sample data: one file per input, or one .npz for all",
        accept_multiple_files=True,
        key=_uploader_key("data"),
        on_change=_open_data,
        disabled=ws is None,
        help="Images load as they are (HWC, uint8); the diagnosis says what the model needs.",
    )
    if st.session_state.get("data-error"):
        st.error(md(st.session_state["data-error"]), icon=":material/error:")
    elif ws is not None and ws.has_data:
        st.caption(f"Data: **{md(ws.data_source)}**. Upload other files to replace it.")

if ws is not None:
    from lite_debug.generate import GENERATE_MODES

    with st.expander("Generate an input instead", expanded=not ws.has_data):
        mode = st.selectbox("Values", GENERATE_MODES, key="generate-mode")
        low, high = 0.0, 1.0
        if mode == "uniform":
            c1, c2 = st.columns(2)
            low = c1.number_input("low", value=0.0, key="generate-low")
            high = c2.number_input("high", value=1.0, key="generate-high")
        if st.button("Generate", key="generate"):
            try:
                ws.generate(mode, low, high)
            except LiteDebugError as exc:
                st.error(md(str(exc)))
            else:
                st.rerun()
    if ws.has_data:
        st.success(f"Loaded {md(ws.model_name)} with data from {md(ws.data_source)}.", icon=":material/check:")
        c1, c2 = st.columns(2)
        c1.page_link(PAGES["diagnose"], label="Diagnose and fix", icon=":material/healing:")
        c2.page_link(PAGES["model"], label="Look at the model", icon=":material/schema:")

# Below the uploaders, so that a case kept when a model opens does not move them under the user's
# next upload (a file set on an uploader that moves is lost).
recent_ids = st.session_state.get("recent-cases", [])
if recent_ids:
    store = keeper().store
    if store.warning:
        st.warning(md(store.warning), icon=":material/database:")
    summaries = keeper().recent(recent_ids)
    if summaries:
        with st.expander(f"Your recent cases ({len(summaries)})", expanded=False, icon=":material/history:"):
            st.caption("Kept on this server; each has its own address (share it with a teammate on the same server).")
            for summary in reversed(summaries):
                row = st.columns([4, 2, 1, 1])
                row[0].markdown(md(summary.title or summary.id))
                from datetime import datetime

                row[1].caption(datetime.fromtimestamp(summary.created).strftime("%Y-%m-%d %H:%M"))
                row[2].button("Open", key=f"case-open-{summary.id}", on_click=_open_case, args=(summary.id,))
                row[3].button("Delete", key=f"case-delete-{summary.id}", on_click=_delete_case, args=(summary.id,))
