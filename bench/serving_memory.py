"""Peak memory of the serving process: upload a model through the dashboard, generate an input, run it.

    python -m bench.serving_memory bench/models/dense_100m.tflite
    python -m bench.serving_memory bench/models/dense_100m.tflite --where   # and who allocated the peak

Runs in a fresh process of its own (``bench.figures.peak_memory`` starts it), so what it
measures is this one session and nothing the benchmark did before. The dashboard runs under
``AppTest``, which executes the pages in this process as the Streamlit server would. Prints
one JSON object on its last line of stdout: RSS before the model was read, the peak RSS after
each step, and the peak of the worker processes, which are separate processes and not part of
the serving process's figure.

The peak is the kernel's high-water mark of this process's RSS (``VmHWM``), reset just before
the model is read. ``ru_maxrss`` would not do: Linux carries the parent's high-water mark
across fork and exec into it, so a child of the benchmark would start at the benchmark's
own peak.

``--where`` also traces Python's allocations (slower; the RSS figures are then not the
benchmark's) and prints the biggest allocation sites live at the traced peak: where the
copies of the model are made.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _status(field: str, pid: int | str = "self") -> int:
    """A size field of /proc/<pid>/status (VmRSS, VmHWM), in bytes; 0 where it is missing."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _rss(pid: int | str = "self") -> int:
    """Resident set size now, in bytes."""
    return _status("VmRSS", pid)


def _peak(pid: int | str = "self") -> int:
    """The high-water mark of a process's RSS, in bytes (since the last ``_reset_peak``)."""
    return _status("VmHWM", pid) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _reset_peak(pid: int | str = "self") -> bool:
    """Set the high-water mark to the current RSS (Linux ≥ 4.0); False where that is not possible."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _children_peak(me: int | None = None) -> dict[int, int]:
    """VmHWM (peak RSS) of a process's live children (this one's by default): the worker processes."""
    me, found = me or os.getpid(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    found[int(entry.name)] = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return found


def _raised(at) -> str:
    """The page's exceptions with their stack traces (the app's config redacts the messages)."""
    return "\n".join(f"{e.message}\n" + "\n".join(e.stack_trace) for e in at.exception)


def measure(model_path: Path) -> dict:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()  # the Start page with no model: streamlit, pandas and lite_debug are all loaded now
    if at.exception:
        raise RuntimeError(f"The Start page raised: {_raised(at)}")
    steps: list[dict] = []

    def step(name: str, t0: float) -> None:
        steps.append({"step": name, "rss": _rss(), "peak": _peak(), "seconds": time.perf_counter() - t0})

    peak_startup = _peak()
    reset = _reset_peak()
    rss_before, peak_before = _rss(), _peak()
    t0 = time.perf_counter()
    data = model_path.read_bytes()
    size = len(data)
    step("read the file", t0)
    t0 = time.perf_counter()
    at.file_uploader(key="model-upload").set_value((model_path.name, data, "application/octet-stream"))
    del data  # the browser's copy, as it were: from here on only what the app keeps counts
    at.run()
    step("upload + open (Start page)", t0)
    ws = at.session_state["ws"]
    if ws is None or at.exception:
        raise RuntimeError(f"The upload did not open the model: {_raised(at) or at.error}")
    t0 = time.perf_counter()
    at.button(key="generate").click()
    at.run()
    step("generate an input", t0)
    t0 = time.perf_counter()
    at.switch_page("pages/run.py")
    at.run()
    at.button(key="run").click()
    at.run()
    step("run (Run page, button 'run')", t0)
    ws = at.session_state["ws"]
    if ws.result is None or not ws.result.ok or at.exception:
        raise RuntimeError(f"The run did not succeed: {ws.result and ws.result.detail} {_raised(at)}")
    workers = _children_peak()
    return {
        "model_bytes": size,
        "rss_before": rss_before,
        "peak_before": peak_before,
        "peak_startup": peak_startup,
        "peak_was_reset": reset,
        "peak": _peak(),
        "steps": steps,
        "worker_peaks": list(workers.values()),
        "invoke_ms": ws.result.invoke_ms,
    }


def measure_server(model_path: Path, browser, server) -> dict:
    """The same path through a real ``streamlit run app.py`` and Chromium: the upload goes over HTTP.

    ``server`` is ``(process, port)`` of a fresh server. What the AppTest figure cannot see is
    the upload itself: Tornado buffers the request body and parses the form out of it.
    """
    proc, port = server
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_text("Gallery of real failures").wait_for(timeout=60_000)
        steps: list[dict] = []

        def step(name: str, t0: float) -> None:
            steps.append({"step": name, "rss": _rss(proc.pid), "peak": _peak(proc.pid), "seconds": time.perf_counter() - t0})

        peak_startup = _peak(proc.pid)
        reset = _reset_peak(proc.pid)
        rss_before = _rss(proc.pid)
        t0 = time.perf_counter()
        uploader = page.get_by_test_id("stFileUploader").filter(has_text="Model (.tflite), or a bug-report archive")
        uploader.locator("input[type=file]").set_input_files(str(model_path))
        page.get_by_text(f"Open: {model_path.name}").wait_for(timeout=300_000)
        step("upload + open (Start page)", t0)
        t0 = time.perf_counter()
        page.get_by_role("button", name="Generate", exact=True).click()
        page.get_by_text("with data from").wait_for(timeout=120_000)
        step("generate an input", t0)
        t0 = time.perf_counter()
        page.get_by_test_id("stSidebarNav").get_by_text("Run and outputs").click()
        page.get_by_role("button", name="Run the model").click()
        page.get_by_test_id("stMetric").filter(has_text="Invoke").wait_for(timeout=300_000)
        step("run (Run page, button 'run')", t0)
        return {
            "model_bytes": model_path.stat().st_size,
            "rss_before": rss_before,
            "peak_startup": peak_startup,
            "peak_was_reset": reset,
            "peak": _peak(proc.pid),
            "steps": steps,
            "worker_peaks": list(_children_peak(proc.pid).values()),
        }
    finally:
        context.close()


class _PeakTracer:
    """Snapshots Python's live allocations whenever they pass their previous peak by 10 MB.

    tracemalloc keeps only the peak's size, not who allocated it; polling every half
    millisecond catches any block of model size, since copying 100 MB takes tens of ms.
    """

    def __init__(self) -> None:
        import threading
        import tracemalloc

        self.tracemalloc = tracemalloc
        self.snapshot = None
        self.size = 0
        self._stop = threading.Event()
        tracemalloc.start(40)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            current, _ = self.tracemalloc.get_traced_memory()
            if current > self.size + (10 << 20):
                self.size = current
                self.snapshot = self.tracemalloc.take_snapshot()
            time.sleep(0.0005)

    def report(self, top: int = 5) -> str:
        self._stop.set()
        self._thread.join()
        if self.snapshot is None:
            return "no allocation peak above 10 MB was seen"
        lines = [f"live Python allocations at the traced peak: {self.size / (1 << 20):,.0f} MB; the biggest sites:"]
        stats = self.snapshot.filter_traces([self.tracemalloc.Filter(False, __file__)]).statistics("traceback")
        for stat in stats[:top]:
            lines.append(f"\n{stat.size / (1 << 20):,.1f} MB in {stat.count} block(s), allocated at:")
            frames = [f for f in stat.traceback if "/threading.py" not in f.filename and "<frozen" not in f.filename]
            lines += [f"  {f.filename}:{f.lineno}" for f in frames[-12:]]
        return "\n".join(lines)


def main(argv: list[str]) -> None:
    where = "--where" in argv
    args = [a for a in argv if a != "--where"]
    tracer = _PeakTracer() if where else None
    out = measure(Path(args[0]).resolve())
    if tracer is not None:
        sys.stderr.write(tracer.report() + "\n")
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.stdout.flush()
    # Leave at once: the workers are ours and die with their socket, and streamlit's atexit
    # work (and any worker still exiting) is no part of the figure.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
