"""The trace's figures: its time against a plain run on the 164-op face detector, what the
serving process holds for it, and the worker's memory for a trace of the 100 MB model.

A trace here is everything ``lite_debug.trace.trace`` does for a caller with the model loaded:
the plain run it compares with, the traced run of the marked copy, the statistics of every
tensor in the worker, and the reply. The marked copy is built on a worker's first trace, or
before it when the dashboard's check of a newly opened model prepares it, and kept: a worker's
first trace is two rows of its own, prepared and not.

The worker runs the plain run on its helper thread beside the traced one. The worker is pinned
to one CPU and the benchmark to the other (see ``figures._paired_placed``); the helper thread
goes on the benchmark's CPU, which is idle while it waits for the reply, as the scheduler
places it on two cores unpinned.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np

from .models import ensure_models
from .report import Row

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "tests" / "real_models" / "face_detection_short_range.tflite"
MB = 1 << 20


def _face():
    from lite_debug import Feed, inspect_model

    model = FACE.read_bytes()
    spec = inspect_model(model)
    inp = spec.inputs[0]
    x = np.random.default_rng(0).uniform(-1, 1, inp.shape).astype(np.float32)
    return model, spec, Feed({inp.name: x})


def _missing(figure: str, target: str) -> list[Row]:
    return [Row(figure, None, None, "ms", None, target, None,
                note="the real face detector is not fetched: python scripts/fetch_real_models.py")]


def trace_speed(reps: int, quick: bool) -> list[Row]:
    """A trace of the 164-op face detector vs a plain run of it, both through a warm worker: of
    data the worker has just run (the dashboard: Run, then Layers), and of new data (the
    command line, whose trace runs the model plainly first)."""
    from .figures import _median, _paired_placed, _placement_note, _repeat_placed  # (figures imports this module)

    figure = "trace vs plain run, 164-op face detector, model loaded"
    if not FACE.exists():
        return _missing(figure, "≤ 3.00×")
    from lite_debug import Feed, WorkerPool
    from lite_debug.trace import AHEAD_BYTES, trace

    AHEAD_MB = AHEAD_BYTES >> 20

    model, spec, feed = _face()
    # Data the worker has not just run: two new feeds taken in turn, so that no trace follows a
    # plain run (or a trace) of its own data.
    others = [Feed({k: -v for k, v in feed.arrays.items()}), Feed({k: v * 0.5 for k, v in feed.arrays.items()})]
    turn = [0]

    def other_data():
        turn[0] += 1
        return others[turn[0] % 2]

    calls = 30 if quick else 80
    side: dict = {}
    first: list[float] = []
    first_base: list[float] = []
    ready: list[float] = []
    ready_base: list[float] = []
    parts: dict[str, list[float]] = {"invoke": [], "trace": [], "stats": [], "reused": []}

    def traced(data) -> None:
        r = trace(model, spec, data() if callable(data) else data, pool=side["pool"])
        if not r.ok:
            raise RuntimeError(f"The trace failed: {r.run.status} {r.run.detail}")
        if side["timed"]:
            parts["invoke"].append(r.run.invoke_ms)
            parts["trace"].append(r.trace_ms)
            parts["stats"].append(r.stats_ms)
            parts["reused"].append(float(r.plain_reused))

    def plain() -> None:
        r = side["pool"].run(model, spec, feed)
        if not r.ok:
            raise RuntimeError(f"The run failed: {r.status} {r.detail}")

    def first_ready() -> None:
        """A worker's first trace after the model was opened as the dashboard opens it: its
        check in the background also prepares the marked copy (``trace.preparation``)."""
        side["pool"], side["timed"] = WorkerPool(size=1), False
        try:
            job = side["pool"].start_check(model, spec, prepare_trace=True)
            if job.result(timeout=120).status != "ok":
                raise RuntimeError("The face detector's check failed.")
            job.join(timeout=120)
            for _ in range(3):
                plain()
            t0 = time.perf_counter()
            traced(other_data)
            ready.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            plain()
            ready_base.append(time.perf_counter() - t0)
        finally:
            side["pool"].close()

    def repetition(data) -> tuple[float, float, list[float]]:
        if data is feed:
            first_ready()
        side["pool"], side["timed"] = WorkerPool(size=1), False
        try:
            for _ in range(3):
                plain()  # the model loads; the plain runs warm up
            if data is feed:
                t0 = time.perf_counter()
                traced(other_data)  # the first trace: the marked copy is made and built
                first.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                plain()
                first_base.append(time.perf_counter() - t0)
            for _ in range(3):
                traced(data)
            side["timed"] = True
            return _paired_placed(lambda: traced(data), plain, calls, side["pool"].pids, every=max(2, calls // 8),
                                  helper_beside=True)
        finally:
            side["pool"].close()

    rows = []
    for data, what, where in ((feed, "data just run", "as the dashboard does after a run"),
                              (other_data, "new data", "as lite-debug trace does: its plain run included")):
        for k in parts:
            parts[k].clear()
        o, b, per_place = _repeat_placed(reps, lambda: repetition(data))
        om, bm = _median(o) * 1000, _median(b) * 1000
        inv, tr, st = (_median(parts[k]) for k in ("invoke", "trace", "stats"))
        reused = sum(parts["reused"]) / max(1, len(parts["reused"]))
        rows.append(Row(
            figure=f"{figure}, {what}",
            ours=om, baseline=bm, unit="ms", ratio=om / bm, target="≤ 3.00×", passed=om / bm <= 3.0,
            note=(
                f"{len(spec.graph.main.operators)} ops, {calls} calls × {reps}, {where}; inside a trace (medians): "
                f"plain invoke {inv:.2f} ms ({reused:.0%} reused from the run just before), traced invoke {tr:.2f} ms, "
                f"statistics of every tensor {st:.2f} ms; the marked copy kept from the first trace"
                + _placement_note(per_place)
            ),
            details={"ours_ms_per_rep": [t * 1000 for t in o], "baseline_ms_per_rep": [t * 1000 for t in b],
                     "plain_invoke_ms": inv, "traced_invoke_ms": tr, "stats_ms": st, "plain_reused": reused,
                     "ratio_per_placement": per_place},
        ))
    rm, rb = _median(ready) * 1000, _median(ready_base) * 1000
    rows.append(Row(
        figure="a worker's first trace, model opened as the dashboard opens it, 164-op face detector",
        ours=rm, baseline=rb, unit="ms", ratio=rm / rb, target="≤ 3.00×", passed=rm / rb <= 3.0,
        note=("the check that runs in the background when a model opens also built the marked copy, the weights' "
              "statistics and one invoke of it on zeros (for models whose copy costs at most "
              f"{AHEAD_MB} MiB); then three plain runs, then the trace of new data; one per repetition × {reps}, "
              "the worker not pinned"),
        details={"first_trace_ms": [t * 1000 for t in ready], "plain_run_ms": [t * 1000 for t in ready_base]},
    ))
    fm, fb = _median(first) * 1000, _median(first_base) * 1000
    rows.append(Row(
        figure="a worker's first trace, nothing prepared (the rewrite and build of the marked copy included), 164-op face detector",
        ours=fm, baseline=fb, unit="ms", ratio=fm / fb, target="≤ 3.00×", passed=fm / fb <= 3.0,
        note=("a trace through the Python API in a worker that has not checked the model (lite-debug trace checks "
              f"first), or of a model whose marked copy costs more than {AHEAD_MB} MiB; the plain run beside it: building the marked copy's interpreter (the "
              "XNNPACK delegate packs the weights again), its first invoke (its arena faulted in) and the weights' "
              f"statistics (kept after) dominate; one per repetition × {reps}, the worker not pinned"),
        details={"first_trace_ms": [t * 1000 for t in first], "plain_run_ms": [t * 1000 for t in first_base]},
    ))
    rows.append(_server_memory(model, spec, feed))
    return rows


def _server_memory(model: bytes, spec, feed) -> Row:
    """What the serving process allocates for a trace (tracemalloc's peak), against the bytes
    of the tensors the trace describes."""
    from lite_debug import WorkerPool
    from lite_debug.trace import trace

    pool = WorkerPool(size=1)
    try:
        trace(model, spec, feed, pool=pool)  # load and build: the figure is a trace's own
        tracemalloc.start()
        r = trace(model, spec, feed, pool=pool)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        pool.close()
    tensors = sum(int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize for t in r.tensors if t.stats is not None)
    outputs = sum(o.raw.nbytes + (o.values.nbytes if o.values is not o.raw else 0) for o in r.run.outputs)
    kb = peak / 1024
    return Row(
        figure="serving process's peak allocation for one trace (statistics, not tensors), 164-op face detector",
        ours=round(kb, 1), baseline=round(tensors / 1024, 1), unit="KB", ratio=peak / tensors,
        target="kilobytes, ≪ the tensors", passed=peak < 2 * MB and peak < 0.2 * tensors,
        note=(f"{len(r.tensors)} tensors of {tensors / MB:.1f} MB in all stay in the worker; the peak includes the "
              f"model's two outputs ({outputs / 1024:.0f} KB, as a plain run returns them) and the request"),
        details={"peak_bytes": peak, "tensor_bytes": tensors, "output_bytes": outputs},
    )


def _vm(pid: int) -> dict[str, int]:
    """VmPeak (address space, what RLIMIT_AS limits) and VmHWM (peak resident), in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmPeak", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def trace_memory(reps: int, quick: bool) -> list[Row]:
    """A trace of the 100 MB model under the worker's default memory limit: the worker's peak
    address space (what the limit counts), against a plain run's in a worker of its own."""
    from lite_debug import Feed, WorkerPool, inspect_model
    from lite_debug.running import Limits
    from lite_debug.trace import trace

    from .figures import _median

    model = ensure_models(["dense_100m"])["dense_100m"].read_bytes()
    spec = inspect_model(model)
    inp = spec.inputs[0]
    feed = Feed({inp.name: np.random.default_rng(0).random(inp.shape, dtype=np.float32)})
    limits = Limits()

    def peak(traced: bool) -> dict[str, int]:
        pool = WorkerPool(size=1, limits=limits)
        try:
            if traced:
                r = trace(model, spec, feed, pool=pool)
                if not r.ok:
                    raise RuntimeError(f"The trace of the 100 MB model failed: {r.run.status} {r.run.detail}")
            else:
                r = pool.run(model, spec, feed)
                if not r.ok:
                    raise RuntimeError(f"The run of the 100 MB model failed: {r.status} {r.detail}")
            (pid,) = pool.pids()
            return _vm(pid)
        finally:
            pool.close()

    runs = [(peak(True), peak(False)) for _ in range(max(1, min(reps, 3)))]
    t = _median([a["VmPeak"] for a, _ in runs]) / MB
    p = _median([b["VmPeak"] for _, b in runs]) / MB
    rss_t = _median([a["VmHWM"] for a, _ in runs]) / MB
    rss_p = _median([b["VmHWM"] for _, b in runs]) / MB
    cap = limits.memory_bytes / MB
    return [
        Row(
            figure="worker's peak address space, trace of the 100 MB model (plain run as baseline)",
            ours=t, baseline=p, unit="MB", ratio=t / cap, target=f"within the {cap / 1024:.0f} GiB limit",
            passed=t < cap,
            note=(f"{len(model) / MB:.0f} MB model; ratio is of the limit; peak resident {rss_t:.0f} MB traced, "
                  f"{rss_p:.0f} MB plain: the marked copy of the model and its interpreter come on top of the plain one"),
            details={"trace_vm_peak_mb": t, "plain_vm_peak_mb": p, "trace_rss_peak_mb": rss_t, "plain_rss_peak_mb": rss_p,
                     "limit_mb": cap},
        )
    ]
