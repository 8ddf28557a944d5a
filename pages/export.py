"""Export: a script that reproduces the fixed run, and a bundle to attach to a bug report."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from lite_debug.errors import LiteDebugError
from pages._ui import frame, md, require_workspace

frame("export")

ws = require_workspace()
st.title("Export")

st.subheader("A script that reproduces the run")
st.markdown(
    f"Runs as is with `numpy` and `ai-edge-litert`: it loads {md(Path(ws.model_name).name)} from its own folder "
    "(or `--model PATH`), applies the fixes to your data as you gave it (or to other data: `--data PATH`), runs "
    "the model and saves `outputs.npz` (or `--out PATH`). Data up to 256 KB is embedded; larger data goes in an "
    "`inputs.npz` beside it."
)
try:
    script = ws.script() if ws.has_data else None
except (LiteDebugError, ValueError) as exc:
    script = None
    st.error(md(str(exc)))
if script is not None:
    c1, c2, c3 = st.columns(3)
    c1.download_button("Download reproduce.py", script.text, file_name="reproduce.py", key="download-script", type="primary")
    # Callables: the model and the bundle are built when the button is clicked, not on every run.
    c2.download_button("Download the model", lambda: bytes(ws.model_bytes), file_name=Path(ws.model_name).name, key="download-model")
    if script.inputs_npz is not None:
        c3.download_button("Download inputs.npz (the script reads it)", script.inputs_npz, file_name="inputs.npz", key="download-inputs")
    with st.expander("Show the script", expanded=False):
        st.code(script.display, language="python")  # embedded data elided to one line each
elif not ws.has_data:
    st.info("Load some data first: the script replays the fixes on it.")

st.subheader("A bug-report bundle")
st.markdown(
    "One `.zip` with the model, your data as you gave it, the diagnosis before any fix, each fix applied (with its "
    "line of Python), the last run's status and outputs, the error a bug report gave (if any), `reproduce.py` and "
    "the versions of Python, numpy and the runtime. Opened again (Start page, or `lite-debug check bundle.zip`), it "
    "shows the original failure, the fixes as a history that can be undone, and the recorded outputs beside a re-run."
)
st.download_button(
    "Download bundle.zip",
    ws.bundle,
    file_name=f"{Path(ws.model_name).stem}-bundle.zip",
    key="download-bundle",
    mime="application/zip",
)
