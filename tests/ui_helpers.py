"""What the dashboard tests share: AppTest on the frame, uploads as bytes, the worker pool.

Not a test module: ``test_app.py`` and ``test_browser.py`` import it.
"""

from __future__ import annotations

import re

import io
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAGE_FILES = ["start", "model", "diagnose", "run", "explain", "export"]


def keep_the_frame(monkeypatch) -> None:
    """Make every AppTest run go through app.py, as a live server does.

    A ``pages/`` folder beside the entry point switches Streamlit to its older multipage mode,
    in which a page other than the default one is executed on its own, without the frame
    (no sidebar). A server leaves that mode for good on the first ``st.navigation`` call;
    ``AppTest.run`` resets the flag before every run, so here it is pinned off instead.
    """
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def app(ws=None, page: str | None = None, timeout: float = 30) -> AppTest:
    """The frame, run once; with ``ws`` seeded as the session's workspace and ``page`` opened."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if ws is not None:
        at.session_state["ws"] = ws
    at.run()
    if page is not None:
        at.switch_page(f"pages/{page}.py").run()
    return at


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=array.dtype == object)
    return buf.getvalue()


def upload(name: str, data: bytes) -> tuple[str, bytes, str]:
    return (name, data, "application/octet-stream")


def shown(markdown: str) -> str:
    """What a reader sees of Markdown that pages._ui.md escaped: the backslashes before
    punctuation and the invisible word joiners taken out (AppTest gives the Markdown source)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(markdown)).replace("\u2060", "").replace("  \n", "\n")


def texts(elements) -> str:
    """The text of a list of AppTest elements as a reader sees it, joined: assertions read like "X in shown"."""
    return "\n".join(shown(e.value) for e in elements)


def reset_pool() -> None:
    """Close the dashboard's worker pool and forget it; the next run makes one from the env."""
    from pages._ui import pool

    pool().close()
    pool.clear()


def worker_pids() -> set[int]:
    """The worker processes (``python -m lite_debug._worker``) that are children of this process."""
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        # The command name in field 2 may hold spaces or parentheses: split after the last ')'.
        ppid = stat.rsplit(")", 1)[1].split()[1]
        if ppid == me and b"lite_debug._worker" in cmdline:
            found.add(int(entry.name))
    return found


def process_state(pid: int) -> str:
    """A process's pid and state letter (R, S, D, Z…), for a failure message."""
    try:
        return f"{pid}:{Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]}"
    except OSError:
        return f"{pid}:gone"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def segfault_new_worker(before: set[int], busy_cpu: float = 1.0, within: float = 30.0) -> threading.Thread:
    """Start a thread that sends SIGSEGV to the next new worker once it is busy running.

    "Busy" is ``busy_cpu`` seconds of CPU: more than starting Python and loading a small model
    take, so the signal lands in the middle of the run, as a crash in a kernel would.
    """
    result: dict[str, int] = {}

    def kill() -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            new = worker_pids() - before
            for pid in new:
                try:
                    if cpu_seconds(pid) >= busy_cpu:
                        os.kill(pid, signal.SIGSEGV)
                        result["pid"] = pid
                        return
                except (OSError, IndexError):
                    pass
            time.sleep(0.05)

    thread = threading.Thread(target=kill, daemon=True)
    thread.result = result  # type: ignore[attr-defined]
    thread.start()
    return thread
