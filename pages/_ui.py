"""What every page shares: the session's workspace, the worker pool, and how errors are shown.

Not a page (st.navigation lists the pages in app.py); pages import it.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:  # the engine (and numpy) load after the first page is drawn: see warm_up()
    from lite_debug.running import WorkerPool
    from lite_debug.session import Workspace

PAGES = {
    "start": "pages/start.py",
    "model": "pages/model.py",
    "diagnose": "pages/diagnose.py",
    "run": "pages/run.py",
    "explain": "pages/explain.py",
    "export": "pages/export.py",
}


FRAME_FLAG = "_frame_ran"


def frame(page: str) -> None:
    """Send a page that runs without app.py through the frame first.

    A ``pages/`` folder beside the entry point puts a fresh Streamlit server in its older
    multipage mode until the first ``st.navigation`` call, so a deep link (``/run``) as the
    very first request runs the page alone: no sidebar, no navigation. The page then asks
    for app.py, which sets up navigation and comes back to it.
    """
    if not st.session_state.get(FRAME_FLAG):
        st.session_state["_deep_link"] = PAGES[page]
        st.switch_page("app.py")


def workspace() -> Workspace | None:
    return st.session_state.get("ws")


def set_workspace(ws: Workspace | None) -> None:
    st.session_state["ws"] = ws
    if ws is None:
        st.session_state.pop("data-files", None)  # closed: the next model starts with no data
    else:
        pool().prewarm(ws.model_bytes, ws.spec)  # the first run then finds the model loaded


def require_workspace() -> Workspace:
    """The session's workspace, or a pointer to the Start page (and the page stops there)."""
    ws = workspace()
    if ws is None:
        st.info("No model is loaded yet. Open an example or upload a model on the Start page.")
        st.page_link(PAGES["start"], label="Go to Start", icon=":material/home:")
        st.stop()
    return ws


@st.cache_resource
def pool() -> WorkerPool:
    """One bounded pool of worker processes for every session of this server."""
    from lite_debug.running import Limits, WorkerPool

    return WorkerPool(size=int(os.environ.get("LITE_DEBUG_WORKERS", "2")), limits=Limits.from_env())


_warmed = threading.Event()


def warm_up() -> None:
    """Import the engine in the background once the first page is drawn (once per server).

    The gallery needs none of it, and numpy with the engine take a good part of a cold start;
    the first click then finds them loaded.
    """
    if _warmed.is_set():
        return
    _warmed.set()

    def load() -> None:
        import lite_debug.session  # noqa: F401  (numpy, the engine, the worker pool's module)
        from lite_debug.figures import warm  # plotly and its template, ~1 s: or the first plot waits for it

        warm()

    threading.Thread(target=load, name="lite-debug-warm-up", daemon=True).start()


_MARK = {"error": ("red", ":material/error:"), "warning": ("orange", ":material/warning:")}


def _escape(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("[", "\\[").replace("]", "\\]").replace("*", "\\*")


def comparison_table(rows: list[dict]) -> str:
    """Rows from ``report.comparison_rows`` as a Markdown table, mismatched cells highlighted.

    Markdown rather than a styled data frame: it reads the same in light and dark themes and
    costs a fraction of a pandas Styler on every rerun.
    """
    lines = ["| | model expects | data has |", "|---|---|---|"]
    for row in rows:
        label, expected, got = _escape(row[""]), _escape(row["model expects"]), _escape(row["data has"])
        mark = _MARK.get(row["severity"])
        if mark:
            color, icon = mark
            label = f":{color}[{icon}] {label}"
            expected = f":{color}-background[:{color}[**{expected}**]]"
            got = f":{color}-background[:{color}[**{got}**]]"
        lines.append(f"| {label} | {expected} | {got} |")
    return "\n".join(lines)
