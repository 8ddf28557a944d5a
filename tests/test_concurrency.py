"""Several dashboard sessions running models at once, sharing the server's one worker pool.

Eight AppTest sessions, each driven from its own thread, click "Run the model" together: six run
fixed gallery examples, one runs a loop that never ends (and times out), and one's worker is
killed with SIGSEGV mid-run, as a crash in a kernel would. The six must show the outputs the
same run gives outside the dashboard; the other two must say what happened; no session may see
another's failure; and a session opened afterwards must still run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from streamlit import config
from streamlit.runtime import Runtime
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner
from streamlit.runtime.scriptrunner.script_cache import ScriptCache
from streamlit.testing.v1 import AppTest

from lite_debug._schema import schema
from lite_debug.records import Feed
from lite_debug.errors import WorkerError
from lite_debug.inspection import inspect_model
from lite_debug.running import Limits, QueueStatus, WorkerPool, run
from lite_debug.session import Workspace
from ui_helpers import process_state, texts, worker_pids

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

WORKERS = 3
RUN_SECONDS = 3
GALLERY = ["image-size", "uint8-float-data", "int8-uint8-image", "two-inputs-swapped", "two-signatures-missing-batch",
           "segmentation-nchw"]


# -- the harness ------------------------------------------------------------------------------------


@pytest.fixture
def frame_and_runtime(monkeypatch):
    """AppTest runs that behave as sessions of one server do, even when several run at once.

    AppTest is made for one session at a time: each run sets process-wide state up and tears it
    down again, which overlapping runs trip over. A server sets that state up once for all its
    sessions, so here it is set up once for the whole test. Each pin below names what broke
    without it.
    """
    # Each run patches config.get_option to say "this is a test" while it lasts; overlapping
    # patches restore each other's originals out of order, and a session's selectboxes then
    # go unrecorded (KeyError in AppTest's widget lookup). Errors are shown in full, not redacted.
    real_get_option = config.get_option
    pinned = {"global.appTest": True, "client.showErrorDetails": "full"}
    monkeypatch.setattr(config, "get_option", lambda name: pinned[name] if name in pinned else real_get_option(name))

    # A pages/ folder beside app.py puts Streamlit in its older multipage mode, in which a page
    # runs without the frame. A server leaves that mode for good on the first st.navigation;
    # AppTest resets the class-wide flag before every run, so a run starting in one session
    # turned the mode back on in another, whose page then rendered nothing. The flag stays off
    # for PagesManager (as in test_app.py) and for the script runner, which reads it mid-run.
    original_init = PagesManager.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)

    class FrameMode:
        uses_pages_directory = False

    monkeypatch.setattr(script_runner, "PagesManager", FrameMode)

    # Each run installs a mock Runtime singleton and removes it when it ends, pulling it from
    # under the download buttons of sessions still running ("Runtime hasn't been created!").
    # The last one installed stays.
    last: list = []
    lock = threading.Lock()

    def instance(cls):
        with lock:
            if cls._instance is not None:
                last[:] = [cls._instance]
                return cls._instance
            if last:
                return last[0]
        raise RuntimeError("Runtime hasn't been created!")

    monkeypatch.setattr(Runtime, "instance", classmethod(instance))
    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: cls._instance is not None or bool(last)))

    # Each run compiles the pages afresh with a script cache of its own, and CPython 3.11's
    # compiler is not safe in several threads at once ("AST constructor recursion depth
    # mismatch"). A server compiles each page once, in one cache; so do these sessions.
    compiled: dict = {}
    compiling = threading.Lock()
    get_bytecode = ScriptCache.get_bytecode

    def shared_get_bytecode(self, script_path):
        with compiling:
            key = os.path.abspath(script_path)
            if key not in compiled:
                compiled[key] = get_bytecode(self, script_path)
            return compiled[key]

    monkeypatch.setattr(ScriptCache, "get_bytecode", shared_get_bytecode)


@pytest.fixture
def dashboard_pool(monkeypatch):
    """The dashboard's own pool (``pages._ui.pool``), made afresh from this test's environment."""
    from pages._ui import pool

    monkeypatch.setenv("LITE_DEBUG_WORKERS", str(WORKERS))
    monkeypatch.setenv("LITE_DEBUG_RUN_SECONDS", str(RUN_SECONDS))
    # Whatever pool an earlier test left in the cache was made from other settings.
    pool().close()
    pool.clear()
    shared = pool()
    assert shared.size == WORKERS and shared.limits.run_seconds == RUN_SECONDS
    yield shared
    shared.close()
    pool.clear()  # the next user makes one from the environment monkeypatch restores


def slow_loop(iterations: int, description: bytes | None = None) -> Workspace:
    data = (FIXTURES / "slow_loop.tflite").read_bytes()
    if description is not None:
        # The same model under another description, so its worker can be told apart from the
        # timeout session's (the pool hands workers out by model hash).
        fb = schema()
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
        model.description = description
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        data = bytes(builder.Output())
    ws = Workspace._for_model("slow_loop.tflite", data)
    ws.set_feed(Feed({"iterations": np.array(iterations, np.int32), "x": np.zeros(1, np.float32)}), source="test")
    return ws


def fixed(example_id: str) -> Workspace:
    ws = Workspace.from_example(example_id)
    ws.apply_all()
    return ws


class Session(threading.Thread):
    """One browser session: open the app with a workspace, go to the run page, wait, click run."""

    def __init__(self, name: str, ws: Workspace, start_line: threading.Barrier) -> None:
        super().__init__(name=name, daemon=True)
        self.ws, self.start_line = ws, start_line
        self.at: AppTest | None = None
        self.error: BaseException | None = None
        self.traceback = ""
        self.started = self.ended = 0.0

    def run(self) -> None:
        try:
            at = AppTest.from_file(str(APP), default_timeout=60)
            at.session_state["ws"] = self.ws
            at.run()
            at.switch_page("pages/run.py").run()
            self.at = at
            self.start_line.wait(timeout=60)
            self.started = time.monotonic()
            at.button(key="run").click().run()
            self.ended = time.monotonic()
        except BaseException as exc:  # reported by the test, in the main thread
            self.error = exc
            self.traceback = traceback.format_exc()
            self.start_line.abort()


def kill_when_running(model_sha: str, handed: dict, within: float = 30.0) -> threading.Thread:
    """SIGSEGV the worker that the pool handed out for ``model_sha``, once it has loaded it and runs."""
    done: dict = {}

    def kill() -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            w = handed.get(model_sha)
            if w is not None and w.model_sha == model_sha and w.pid in worker_pids():
                time.sleep(0.3)  # into the loop, well inside the run's 3 s
                os.kill(w.pid, signal.SIGSEGV)
                done["pid"] = w.pid
                return
            time.sleep(0.02)

    thread = threading.Thread(target=kill, daemon=True)
    thread.result = done  # type: ignore[attr-defined]
    thread.start()
    return thread


# -- the test -----------------------------------------------------------------------------------------


def test_eight_sessions_share_the_pool_through_a_crash_and_a_timeout(frame_and_runtime, dashboard_pool):
    t_start = time.monotonic()
    # Workers of other pools in this test process (the default pool of an earlier test) are not
    # the dashboard's: the bound below is on the processes this test's sessions make.
    others = worker_pids()
    workspaces = {ex_id: fixed(ex_id) for ex_id in GALLERY}
    # What each gallery run gives outside the dashboard, in a pool of its own.
    direct = WorkerPool(size=2)
    try:
        expected = {
            ex_id: run(ws.model_bytes, ws.feed, ws.signature, spec=ws.spec, pool=direct) for ex_id, ws in workspaces.items()
        }
    finally:
        direct.close()
    assert all(r.ok for r in expected.values())
    workspaces["timeout"] = slow_loop(10**9)
    workspaces["crash"] = slow_loop(10**9, description=b"the session whose worker crashes")
    crash_sha = workspaces["crash"].spec.sha256
    assert crash_sha != workspaces["timeout"].spec.sha256

    # Which worker the pool hands out for which model, so that only the crash session's is killed.
    handed: dict = {}
    acquire = dashboard_pool.acquire

    def recording_acquire(model_sha, timeout=None, **kwargs):
        worker = acquire(model_sha, timeout, **kwargs)
        handed[model_sha] = worker
        return worker

    dashboard_pool.acquire = recording_acquire  # the instance's, so every session's ws.run(pool()) goes through it
    # Start every worker first: a process starting up under load counts against the 3 s the
    # pool gives a model to load, and what is tested here is the sessions, not start-up time.
    add_float = (FIXTURES / "add_float.tflite").read_bytes()
    warm = [threading.Thread(target=run, args=(add_float, [np.zeros((1, 4), np.float32)]), kwargs={"pool": dashboard_pool})
            for _ in range(WORKERS)]
    for t in warm:
        t.start()
    for t in warm:
        t.join()

    # How many workers ever exist at once: the pool is bounded whatever the sessions do.
    most, seen, watching = [0], [], threading.Event()

    def watch() -> None:
        while not watching.is_set():
            pids = worker_pids() - others
            if len(pids) > most[0]:
                most[0] = len(pids)
                seen[:] = [process_state(p) for p in sorted(pids)]
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start_line = threading.Barrier(len(workspaces))
    sessions = {name: Session(name, ws, start_line) for name, ws in workspaces.items()}
    for s in sessions.values():
        s.start()
    killer = kill_when_running(crash_sha, handed)
    for s in sessions.values():
        s.join(timeout=120)
    killer.join(timeout=5)
    watching.set()
    watcher.join()

    for name, s in sessions.items():
        assert not s.is_alive(), f"session {name} did not finish"
    # One session's failure breaks the start line for all: name the ones that failed first.
    failed = {n: s.error for n, s in sessions.items() if s.error is not None}
    causes = {n: e for n, e in failed.items() if not isinstance(e, threading.BrokenBarrierError)} or failed
    assert not causes, "\n".join(f"session {n}: {e!r}\n{sessions[n].traceback}" for n, e in causes.items())
    for name, s in sessions.items():
        assert not s.at.exception, f"session {name}: {[e.value for e in s.at.exception]}"
    assert killer.result.get("pid"), "the crash session's worker was never seen running"
    assert 0 < most[0] <= WORKERS, f"{most[0]} worker processes at once: {seen}"

    # The timeout: one sentence that names the limit, and only that session saw it.
    at = sessions["timeout"].at
    assert at.session_state["ws"].result.status == "timeout"
    assert f"took longer than the {RUN_SECONDS} s limit" in texts(at.main.error)
    assert sessions["timeout"].ended - sessions["timeout"].started < RUN_SECONDS + 20
    # The runs overlapped: every session had clicked before the loop that never ends was stopped.
    assert max(s.started for s in sessions.values()) < sessions["timeout"].ended

    # The crash names its signal, and says that only that worker died.
    at = sessions["crash"].at
    r = at.session_state["ws"].result
    assert r.status == "crashed" and r.signal == "SIGSEGV"
    shown = texts(at.main.error)
    assert "crashed (SIGSEGV)" in shown and "only its worker process died" in shown

    # Every other session got the outputs the same run gives outside the dashboard.
    for ex_id in GALLERY:
        at = sessions[ex_id].at
        r = at.session_state["ws"].result
        assert r is not None and r.ok, f"{ex_id}: {r and r.status} {r and r.detail}"
        assert [o.name for o in r.outputs] == [o.name for o in expected[ex_id].outputs]
        for got, want in zip(r.outputs, expected[ex_id].outputs):
            assert got.raw.dtype == want.raw.dtype and np.array_equal(got.raw, want.raw), f"{ex_id}: {got.name} differs"
        metrics = {m.label: m.value for m in at.main.metric}
        assert metrics["Outputs"] == str(len(r.outputs)) and metrics["Invoke"].endswith(" ms")
        assert not at.main.error
        assert "Last run: **ok**" in texts(at.sidebar.markdown)

    # A session opened afterwards runs on the same pool as if nothing had happened.
    ws = Workspace.open("add_float.tflite", add_float)
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    ws.set_feed(Feed({"x": x}), source="test")
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["ws"] = ws
    at.run()
    at.switch_page("pages/run.py").run()
    at.button(key="run").click().run()
    assert not at.exception
    r = at.session_state["ws"].result
    assert r.ok and np.array_equal(r.outputs[0].values, x + 1)
    assert "Last run: **ok**" in texts(at.sidebar.markdown)
    assert len(worker_pids() - others) <= WORKERS
    assert time.monotonic() - t_start < 60


# -- fair queueing ----------------------------------------------------------------------------------


def test_a_tiny_run_waits_at_most_one_run_limit_while_five_sessions_loop(tmp_path):
    # Five sessions loop a model that never ends (each run times out after 3 s) on two workers;
    # a sixth session's 1 ms run must get a worker as soon as one frees, not after their turns.
    endless = (FIXTURES / "slow_loop.tflite").read_bytes()
    endless_spec = inspect_model(endless)
    tiny = (FIXTURES / "add_float.tflite").read_bytes()
    tiny_spec = inspect_model(tiny)
    pool = WorkerPool(size=2, limits=Limits(run_seconds=3, load_seconds=30))
    stop = threading.Event()
    loops: list[str] = []

    def loop(owner: str) -> None:
        feed = Feed({"iterations": np.array(10**9, np.int32), "x": np.zeros(1, np.float32)})
        while not stop.is_set():
            r = pool.run(endless, endless_spec, feed, owner=owner)
            assert r.status == "timeout", r.detail
            loops.append(owner)

    threads = [threading.Thread(target=loop, args=(f"looper-{i}",), daemon=True) for i in range(5)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 90
        while len(set(loops)) < 5 and time.monotonic() < deadline:  # every looper has had a worker once
            time.sleep(0.1)
        assert len(set(loops)) == 5
        seen: list[QueueStatus] = []
        t0 = time.monotonic()
        worker = pool.acquire(tiny_spec.sha256, owner="tiny", on_wait=seen.append)
        waited = time.monotonic() - t0
        pool.release(worker)
        # First in line from the start, ahead of the three loopers waiting: it waits for one run of
        # another session, which is its 3 s limit plus the start of a fresh worker (each looper's
        # run needs one, since a timeout kills the last). In arrival order it waited for two.
        assert seen and seen[0].place == 1 and seen[0].running == 2 and seen[0].waiting == 4
        assert waited < 3 + 5.0, f"the tiny run waited {waited:.1f} s for a worker"
        assert 0 < seen[0].longest_wait_seconds <= 3 + 30  # a run's limit and a load's, at most
        r = pool.run(tiny, tiny_spec, Feed({"x": np.ones((1, 4), np.float32)}), owner="tiny")
        assert r.ok and r.outputs[0].values.tolist() == [[2.0] * 4]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        pool.close()


def test_a_session_has_one_run_going_and_one_waiting():
    tiny = (FIXTURES / "add_float.tflite").read_bytes()
    sha = inspect_model(tiny).sha256
    pool = WorkerPool(size=1)
    try:
        held = pool.acquire(sha, owner="a")
        waiting = threading.Thread(target=lambda: pool.release(pool.acquire(sha, owner="a")), daemon=True)
        waiting.start()
        deadline = time.monotonic() + 10
        while pool.queue_status("a") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        status = pool.queue_status("a")
        assert status is not None and status.place == 1 and status.waiting == 1
        with pytest.raises(WorkerError, match="already waiting for a worker"):
            pool.acquire(sha, owner="a")
        # Another session queues behind it as usual; none of this started a process.
        other = threading.Thread(target=lambda: pool.release(pool.acquire(sha, owner="b")), daemon=True)
        other.start()
        pool.release(held)
        waiting.join(10), other.join(10)
        assert not waiting.is_alive() and not other.is_alive()
    finally:
        pool.close()


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    from converted import build

    return build(tmp_path_factory.getbasetemp() / "converted")


def test_a_long_batch_gives_its_worker_up_to_a_waiting_session(converted):
    from lite_debug.batch import run_batch

    slow = converted["slow_sample"]  # tens of ms a sample on a slow machine, a few on a fast one
    spec = inspect_model(slow)
    tiny = (FIXTURES / "add_float.tflite").read_bytes()
    tiny_spec = inspect_model(tiny)
    pool = WorkerPool(size=1, limits=Limits(run_seconds=4, load_seconds=30))
    # Enough samples for the batch to need the worker three times its 4 s on this machine.
    probe = np.zeros((20, 1), np.float32)
    timed = run_batch(slow, spec, {spec.inputs[0].name: probe}, pool=pool, owner="batch")
    per_sample = float(np.median(timed.invoke_ms)) / 1000
    n = int(min(20000, max(300, 12 / max(per_sample, 1e-4))))
    x = np.random.default_rng(0).random((n, 1), dtype=np.float32)
    out: dict = {}
    requests: list = []
    real = pool.acquire

    def counting(*args, **kwargs):
        requests.append(kwargs.get("owner"))
        return real(*args, **kwargs)

    pool.acquire = counting
    try:
        batch = threading.Thread(target=lambda: out.setdefault("batch", run_batch(slow, spec, {spec.inputs[0].name: x}, pool=pool, owner="batch")))
        batch.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        r = pool.run(tiny, tiny_spec, Feed({"x": np.ones((1, 4), np.float32)}), owner="tiny")
        waited = time.monotonic() - t0
        batch.join(120)
        result = out["batch"]
        assert r.ok
        # The batch had the worker for its 4 s, then stopped after the block in progress.
        assert waited < 4 + 6, f"the tiny run waited {waited:.1f} s behind a batch"
        assert requests.count("batch") >= 2  # it queued again for the rest
        assert result.status == "ok" and result.ok_count == n and len(result.invoke_ms) == n
        (values,) = result.outputs.values()
        for i in (0, n // 2, n - 1):
            alone = pool.run(slow, spec, Feed({spec.inputs[0].name: x[i : i + 1]}))
            assert np.array_equal(alone.outputs[0].raw[0], values[i])
    finally:
        pool.close()
