"""What every page shares: the session's workspace, the worker pool, and how errors are shown.

Not a page (st.navigation lists the pages in app.py); pages import it.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:  # the engine (and numpy) load after the first page is drawn: see warm_up()
    from lite_debug.cases import CaseKeeper
    from lite_debug.running import WorkerPool
    from lite_debug.session import Workspace

PAGES = {
    "start": "pages/start.py",
    "model": "pages/model.py",
    "diagnose": "pages/diagnose.py",
    "run": "pages/run.py",
    "layers": "pages/layers.py",
    "compare": "pages/compare.py",
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
        st.switch_page("app.py", query_params=st.query_params.to_dict())  # keep ?case=


def workspace() -> Workspace | None:
    return st.session_state.get("ws")


def owner() -> str:
    """This browser session's key for the worker pool: workers (and a stateful model's
    variables) never pass from one owner to another without a reset."""
    import secrets

    return st.session_state.setdefault("_owner", secrets.token_hex(8))


def set_workspace(ws: Workspace | None) -> None:
    st.session_state["ws"] = ws
    st.session_state.pop("check-job", None)
    if ws is None:
        st.session_state.pop("data-files", None)  # closed: the next model starts with no data
    elif ws.check is None:
        # Load and allocate the model in a worker, in the background: an op the runtime lacks
        # shows in the diagnosis before anyone runs it; the first run then finds it warm.
        st.session_state["check-job"] = pool().prewarm(ws.model_bytes, ws.spec, owner=owner())


def collect_check() -> bool:
    """Give the workspace its model check when the background check has finished; True when
    one is still running (the frame then polls for it)."""
    ws, job = workspace(), st.session_state.get("check-job")
    if ws is None or job is None or ws.check is not None:
        return False
    if not job.done():
        return True
    ws.check = job.result()
    st.session_state.pop("check-job", None)
    return False


def require_workspace() -> Workspace:
    """The session's workspace, or a pointer to the Start page (and the page stops there)."""
    ws = workspace()
    if ws is None:
        st.info("No model is loaded yet. Open an example or upload a model on the Start page.")
        st.page_link(PAGES["start"], label="Go to Start", icon=":material/home:")
        st.stop()
    return ws


def require_data(ws: Workspace) -> None:
    """A pointer to the Start page when ``ws`` has no data to run (and the page stops there)."""
    if not ws.has_data:
        st.warning("There is no data to run. Generate an input or upload data on the Start page.")
        st.page_link(PAGES["start"], label="Go to Start", icon=":material/home:")
        st.stop()


def errors_left(ws: Workspace, then: str) -> str:
    """The warning for errors left in the diagnosis before a run, a trace or a comparison:
    errors in the data make the interpreter refuse it (``then`` says what to do); an error in
    the model itself (it does not load, or is not run here) is no matter of the data."""
    n = len(ws.errors)
    of_model = sum(1 for e in ws.errors if e.input_index < 0)
    if of_model == n:
        return f"{n} error(s) remain in the diagnosis, about the model itself: it will probably not run, whatever the data."
    about = f", {of_model} of them about the model itself" if of_model else ""
    return f"{n} error(s) remain in the diagnosis{about}, so the interpreter will probably refuse the data; {then}"


@st.cache_resource
def keeper() -> CaseKeeper:
    """The case store of this server (LITE_DEBUG_DATA_DIR) and what saves workspaces into it."""
    from lite_debug.cases import CaseKeeper
    from lite_debug.store import open_store

    return CaseKeeper(open_store())


_COOKIE = "lite_debug_cases"
# A case id's shape (lite_debug.store.is_case_id), checked here without importing the engine:
# this runs on every browser's first page, and the engine's first import (numpy, the explainer)
# costs a third of a second there. tests/test_cases.py checks that the two agree.
_CASE_ID = re.compile(r"[A-Za-z0-9_-]{24}")
_RECENT = 12  # as lite_debug.cases


def _parse_cookie(value: object) -> list[str]:
    """Case ids from the browser's cookie (dot-separated); anything else is dropped (as
    lite_debug.cases.parse_cookie)."""
    if not isinstance(value, str):
        return []
    return [c for c in value.split(".") if _CASE_ID.fullmatch(c)][-_RECENT:]


def keep_case() -> None:
    """Keep the session's workspace as a case when it changed, and its id in the address.

    Called by the frame before and after every page. A new id goes into the address at once;
    the case is saved in the background. The browser remembers its recent case ids in a cookie.
    """
    ws = workspace()
    if ws is None:
        if "case" in st.query_params and st.session_state.get("_case_loaded"):
            del st.query_params["case"]  # the model was closed: the address no longer names it
        return
    new = keeper().keep(ws)
    if new is not None:
        from lite_debug.cases import CaseKeeper

        recent = CaseKeeper.remember(st.session_state.get("recent-cases", []), new)
        st.session_state["recent-cases"] = recent
        st.session_state["_cookie"] = ".".join(recent)
    if ws.case_id and st.query_params.get("case") != ws.case_id:
        st.query_params["case"] = ws.case_id
    st.session_state["_case_loaded"] = True


def write_cookie() -> None:
    """Send the browser its list of recent case ids, when it changed (ids are [A-Za-z0-9_-]: no
    user text reaches the script)."""
    value = st.session_state.pop("_cookie", None)
    if value is not None and all(c.isalnum() or c in "-_." for c in value):
        st.html(
            f"<script>document.cookie = '{_COOKIE}={value}; path=/; max-age=2592000; SameSite=Lax';</script>",
            unsafe_allow_javascript=True, width="content",
        )


def open_case_from_address() -> None:
    """Once per browser session: the case the address names, and the browser's recent cases."""
    if st.session_state.get("_case_tried"):
        return
    st.session_state["_case_tried"] = True
    try:
        cookie = st.context.cookies.get(_COOKIE)
    except Exception:  # noqa: BLE001 - no browser behind this session (AppTest)
        cookie = None
    st.session_state.setdefault("recent-cases", _parse_cookie(cookie))
    case_id = st.query_params.get("case")
    if not case_id or workspace() is not None:
        return
    from lite_debug.errors import LiteDebugError

    try:
        ws = keeper().load(case_id)
    except LiteDebugError as exc:
        st.session_state["case-error"] = str(exc)
        del st.query_params["case"]
        return
    set_workspace(ws)


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

    threading.Thread(target=load_and_freeze, name="lite-debug-warm-up", daemon=True).start()


def load_and_freeze() -> None:
    """Import the engine and plotly, then take every object that exists out of the garbage
    collector's sight (``gc.freeze``).

    Streamlit collects garbage after every script run (``runner.postScriptGC``), holding the
    GIL: with these imports a full collection walked 125,000 objects and took 120 ms, in which
    the server sent nothing, so each click's last messages reached the browser that much later
    (a repeated run's plot, 0.26-0.34 s after the click, came at 0.13-0.21 s with them frozen).
    What exists now is modules, classes and plotly's validators, which live as long as the
    server; an object frozen here that later becomes a garbage cycle is never collected, which
    is why this runs once, after the first page, before anyone's model is likely to be open.
    """
    import gc

    import lite_debug.session  # noqa: F401  (numpy, the engine, the worker pool's module)
    from lite_debug.figures import warm  # plotly and its template, ~1 s: or the first plot waits for it

    warm()
    gc.collect()  # what is garbage already goes first
    gc.freeze()


_MARK = {"error": ("red", ":material/error:"), "warning": ("orange", ":material/warning:")}

# Every ASCII punctuation character Markdown (and Streamlit's additions: :color[…], :icon:,
# $math$) could act on, escaped with a backslash, which CommonMark allows for all of them.
_MD_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'^%@,;/?])")
# GFM links bare URLs and e-mail addresses in plain text even when their characters were
# escaped (it works on the text after parsing): a word joiner, which shows as nothing, keeps
# "http://", "www." and "@" from reading as a link.
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto|xmpp|www)(\\[:.])")
_WORD_JOINER = "\u2060"


def md(text: object) -> str:
    """``text`` (a name, a message, pasted text: anything from a file or a user) made safe to
    put into Markdown: it shows as the same characters and never as a link, an image, HTML,
    math, an icon or formatting. Line breaks are kept; other control characters (a NUL in a
    tensor name) are written out, as the command line writes them."""
    import unicodedata

    text = "".join(
        ch if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")
        else ch.encode("unicode_escape").decode("ascii")
        for ch in str(text)
    )
    escaped = _MD_PUNCTUATION.sub(r"\\\1", text)
    escaped = _AUTOLINK.sub(lambda m: m.group(1) + _WORD_JOINER + m.group(2), escaped)
    return escaped.replace("\\@", "\\@" + _WORD_JOINER).replace("\n", "  \n")


def _escape(text: object) -> str:
    return md(text)


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
