"""Start: open an example failure from the gallery, or upload a model and its data."""

from __future__ import annotations

import streamlit as st

from lite_debug.errors import LiteDebugError
from lite_debug.gallery import examples
from lite_debug.generate import GENERATE_MODES
from lite_debug.session import Workspace
from pages._ui import PAGES, frame, set_workspace, workspace

frame("start")

st.title("lite-debug")
st.markdown(
    "Find out why a TensorFlow Lite / LiteRT model refuses your data, fix it in a click, and run it "
    "safely. Open a real failure from the gallery, or bring your own model and data."
)

st.subheader("Gallery of real failures")
cols = st.columns(3)
for i, ex in enumerate(examples()):
    with cols[i % 3].container(border=True):
        st.markdown(f"**{ex.title}**")
        st.caption(ex.story)
        if st.button("Open", key=f"example-{ex.id}", icon=":material/open_in_new:"):
            set_workspace(Workspace.from_example(ex.id))
            st.switch_page(PAGES["diagnose"])

st.subheader("Your own model")
left, right = st.columns(2)
with left:
    # Once a model is open the uploader is emptied (by a new key): while a file sits in it,
    # Streamlit holds the upload and copies it on every rerun, which for a 100 MB model is two
    # copies more than the workspace's own.
    generation = st.session_state.get("model-upload-generation", 0)
    model_file = st.file_uploader(
        "Model (.tflite) or bug-report bundle (.zip)",
        type=["tflite", "zip", "lite"],
        key="model-upload" if generation == 0 else f"model-upload-{generation}",
    )
    if model_file is not None and st.session_state.get("model-upload-id") != model_file.file_id:
        # Only a new upload is read and inspected: reruns after a click reuse the workspace.
        st.session_state["model-upload-id"] = model_file.file_id
        try:
            with st.spinner(f"Reading {model_file.name}…"):
                # getbuffer(): a view of the upload, where getvalue() would copy it.
                opened = Workspace.open(model_file.name, model_file.getbuffer())
            set_workspace(opened)
            st.session_state.pop("model-error", None)
            if not opened.has_data:
                # Files still in the data uploader are for the new model too: load them again
                # (a bundle brings its own data, which wins).
                st.session_state.pop("data-upload-ids", None)
        except LiteDebugError as exc:
            st.session_state["model-error"] = str(exc)
        else:
            del model_file
            st.session_state["model-upload-generation"] = generation + 1
            st.rerun()  # the sidebar was drawn before this page: redraw it with the new model
    if st.session_state.get("model-error"):
        st.error(st.session_state["model-error"], icon=":material/error:")
    elif workspace() is not None:
        st.caption(f"Open: **{workspace().model_name}** ({workspace().spec.size:,} bytes). Upload another to replace it.")

ws = workspace()
with right:
    data_files = st.file_uploader(
        "Sample data: one file per input, or one .npz for all",
        type=["npy", "npz", "png", "jpg", "jpeg", "bmp", "csv", "json", "bin", "raw"],
        accept_multiple_files=True,
        key="data-upload",
        disabled=ws is None,
        help="Images load as they are (HWC, uint8); the diagnosis says what the model needs.",
    )
    ids = tuple(f.file_id for f in data_files or [])
    if ws is not None and data_files and st.session_state.get("data-upload-ids") != ids:
        st.session_state["data-upload-ids"] = ids
        try:
            ws.load_files([(f.name, f.getvalue()) for f in data_files])
            st.session_state.pop("data-error", None)
        except LiteDebugError as exc:
            st.session_state["data-error"] = str(exc)
        else:
            st.rerun()  # as above: the sidebar shows the diagnosis of the new data
    if st.session_state.get("data-error"):
        st.error(st.session_state["data-error"], icon=":material/error:")

if ws is not None:
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
                st.error(str(exc))
            else:
                st.rerun()
    if ws.has_data:
        st.success(f"Loaded {ws.model_name} with data from {ws.data_source}.", icon=":material/check:")
        c1, c2 = st.columns(2)
        c1.page_link(PAGES["diagnose"], label="Diagnose and fix", icon=":material/healing:")
        c2.page_link(PAGES["model"], label="Look at the model", icon=":material/schema:")
