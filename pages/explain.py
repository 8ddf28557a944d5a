"""Explain an error: paste an interpreter message or a traceback from a bug report."""

from __future__ import annotations

import streamlit as st

from lite_debug.explain import explain
from pages._ui import frame, md

frame("explain")

st.title("Explain an error")
st.markdown("Paste the error, or the whole traceback from a bug report. Nothing is run.")
text = st.text_area(
    "Error message or traceback",
    height=200,
    key="explain-text",
    placeholder="ValueError: Cannot set tensor: Dimension mismatch. Got 256 but expected 224 for dimension 1 of input 0.",
)
if st.button("Explain", key="explain", type="primary") or text:
    if not text.strip():
        st.warning("Paste a message first.")
        st.stop()
    e = explain(text)
    # The explanation names what the message names (ops, tensors, files): all of it is pasted
    # text, so it is shown as text, never as Markdown.
    if e.recognised:
        st.success(f"**{md(e.title)}**", icon=":material/lightbulb:")
    else:
        st.warning(f"**{md(e.title)}**", icon=":material/help:")
    st.markdown(f"**Cause.** {md(e.cause)}\n\n**Fix.** {md(e.fix)}")
    if e.facts:
        st.caption("Recognised: " + md(", ".join(f"{k} = {v}" for k, v in e.facts.items())))
    with st.expander("The message as read"):
        st.code(e.message, language="text", wrap_lines=True)
