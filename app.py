"""lite-debug's dashboard: the frame. Navigation and the sidebar every page shares.

    streamlit run app.py
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages._ui import (
    FRAME_FLAG,
    PAGES,
    collect_check,
    keep_case,
    keeper,
    md,
    open_case_from_address,
    set_workspace,
    warm_up,
    workspace,
    write_cookie,
)

st.set_page_config(page_title="lite-debug", layout="wide")

page = st.navigation(
    [
        st.Page(PAGES["start"], title="Start", icon=":material/home:", default=True),
        st.Page(PAGES["model"], title="Model", icon=":material/schema:"),
        st.Page(PAGES["diagnose"], title="Diagnose and fix", icon=":material/healing:"),
        st.Page(PAGES["run"], title="Run and outputs", icon=":material/play_arrow:"),
        st.Page(PAGES["layers"], title="Layers", icon=":material/layers:"),
        st.Page(PAGES["compare"], title="Compare", icon=":material/compare_arrows:"),
        st.Page(PAGES["explain"], title="Explain an error", icon=":material/help:"),
        st.Page(PAGES["export"], title="Export", icon=":material/download:"),
    ]
)

st.session_state[FRAME_FLAG] = True
if "_deep_link" in st.session_state:  # a page that first ran without the frame (see pages/_ui.py)
    st.switch_page(st.session_state.pop("_deep_link"), query_params=st.query_params.to_dict())

# A reload, or an address shared by a teammate: the case it names (?case=). What changed since
# the last run (a callback's fix, the last page's run) is kept before this page draws.
open_case_from_address()
keep_case()
checking = collect_check()

@st.fragment(run_every=0.5)
def _await_check() -> None:
    """While the model is being loaded in a worker: a line that says so, polled twice a second.
    When the check finds the model does not load, the whole page is drawn again with that error;
    when it loads, nothing on the page changes, so nothing is redrawn (a redraw while the user
    picks a data file would lose the file)."""
    if collect_check():
        st.caption(":material/hourglass_top: Loading the model in a worker to check it…")
        return
    current = workspace()
    if current is not None and current.check is not None and not current.check.ok:
        st.rerun(scope="app")


with st.sidebar:
    ws = workspace()
    if ws is None:
        st.caption("No model loaded. Start with an example from the gallery.")
    else:
        st.markdown(f"**{md(ws.model_name)}**  \n{ws.spec.size:,} bytes · {len(ws.inputs)} input(s) · {len(ws.outputs)} output(s)")
        if ws.spec.signatures:
            main_graph = "main graph (index API)"
            keys = [main_graph] + [s.key for s in ws.spec.signatures]
            chosen = st.selectbox(
                "Signature",
                keys,
                index=keys.index(ws.signature) if ws.signature in keys else 0,
                key="sidebar-signature",
                format_func=lambda key: key,  # shown as text: a selectbox does not render Markdown
                help="The main graph is what set_tensor / invoke run; a signature runs through get_signature_runner.",
            )
            ws.set_signature(None if chosen == main_graph else chosen)
        last_failed = ws.result is not None and not ws.result.ok and not ws.result_stale
        if ws.has_data:
            errors, warnings = len(ws.errors), len(ws.mismatches) - len(ws.errors)
            st.markdown(f"Data: {md(ws.data_source or 'given')}")
            if errors and ws.only_the_batch_left:
                st.info(
                    f"A batch of {ws.batch[0]} samples: run them one by one on the Run page"
                    + (f"; {warnings} warning(s)" if warnings else ""),
                    icon=":material/stacks:",
                )
            elif errors:
                st.error(f"{errors} error(s), {warnings} warning(s)", icon=":material/error:")
            elif last_failed:
                # The inputs fit, but the run says otherwise: never "fits" beside a failure.
                st.error(f"The last run failed ({ws.result.status})", icon=":material/error:")
            elif warnings:
                st.warning(f"{warnings} warning(s)", icon=":material/warning:")
            else:
                st.success("The data fits the model's inputs", icon=":material/check_circle:")
        else:
            st.caption("No data yet: upload some or generate an input on the Start page.")
        if checking:
            _await_check()
        elif ws.check is not None and not ws.check.ok:
            said = next((m for m in ws.mismatches if m.input_index < 0 and m.kind in ("unsupported_op", "delegate", "prepare", "load")), None)
            if said is not None and said.severity == "warning":
                # Only the declared shape of a resizable input fails to allocate: no "does not load".
                st.caption(":material/warning: allocate_tensors() fails at the model's declared input shape, a "
                           "placeholder: see the diagnosis.")
            elif ws.check.status == "skipped":
                st.caption(":material/block: The model is not run here: see the diagnosis.")
            else:
                st.caption(":material/block: The model does not load in this runtime: see the diagnosis.")
        if ws.result is not None:
            st.markdown(f"Last run: **{ws.result.status}**" + (" (data changed since)" if ws.result_stale else ""))
        row = st.container(horizontal=True)
        if row.button("Close", key="sidebar-close", icon=":material/close:", help="Close the model (its case stays on the server)"):
            set_workspace(None)
            st.rerun()
        if ws.case_id and row.button("Delete", key="sidebar-delete-case", icon=":material/delete:",
                                    help="Delete this case from the server; its address stops working"):
            keeper().delete(ws.case_id)
            st.session_state["recent-cases"] = [c for c in st.session_state.get("recent-cases", []) if c != ws.case_id]
            st.session_state["_cookie"] = ".".join(st.session_state["recent-cases"])
            set_workspace(None)
            st.rerun()

try:
    page.run()
    keep_case()  # what this page changed (when it did not rerun)
finally:
    with st.sidebar:
        write_cookie()
    # A local favicon: a material icon or an emoji would be fetched from the internet. Set
    # after the page: Streamlit imports numpy and Pillow to serve an image, which would
    # otherwise hold up the first page of a fresh server by a tenth of a second or more.
    st.set_page_config(page_icon=str(Path(__file__).parent / "assets" / "favicon.png"))
    warm_up()
