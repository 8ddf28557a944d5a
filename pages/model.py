"""Model: what the model expects and returns, its signatures, operators and packed files."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lite_debug.report import tensor_rows
from pages._ui import frame, require_workspace

frame("model")

ws = require_workspace()
spec = ws.spec
st.title(f"Model: {ws.model_name}")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Size", f"{spec.size / 1024:,.1f} KB")
c2.metric("Operators", sum(o.count for o in spec.ops))
c3.metric("Tensors", spec.tensor_count)
c4.metric("Subgraphs", spec.subgraph_count)

for op in spec.flex_ops:
    st.error(op.note, icon=":material/block:")
for op in spec.custom_ops:
    (st.info if "XNNPACK delegate implements" in op.note else st.warning)(op.note, icon=":material/extension:")

st.subheader("Inputs")
st.dataframe(pd.DataFrame(tensor_rows(spec.inputs)), hide_index=True, width="stretch")
st.subheader("Outputs")
st.dataframe(pd.DataFrame(tensor_rows(spec.outputs)), hide_index=True, width="stretch")

if spec.signatures:
    st.subheader("Signatures")
    for sig in spec.signatures:
        with st.expander(f"{sig.key}: {len(sig.inputs)} input(s), {len(sig.outputs)} output(s)"):
            st.markdown("Inputs (by signature name)")
            st.dataframe(pd.DataFrame(tensor_rows(sig.inputs)), hide_index=True, width="stretch")
            st.markdown("Outputs")
            st.dataframe(pd.DataFrame(tensor_rows(sig.outputs)), hide_index=True, width="stretch")

st.subheader("Operators")
st.dataframe(
    pd.DataFrame([{"op": o.name, "kind": o.kind, "count": o.count, "version": o.version} for o in spec.ops]),
    hide_index=True,
    width="stretch",
)

if spec.packed_files or spec.metadata_names:
    st.subheader("Metadata and packed files")
    if spec.metadata_names:
        st.markdown("Metadata entries: " + ", ".join(f"`{n}`" for n in spec.metadata_names))
    for f in spec.packed_files:
        st.markdown(f"- `{f.name}` ({f.size:,} bytes)")
    if ws.labels:
        with st.expander(f"Labels ({len(ws.labels)})"):
            st.text("\n".join(ws.labels[:1000]))
if spec.description:
    st.caption(f"Description: {spec.description}")
