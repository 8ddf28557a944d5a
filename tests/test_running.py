"""The worker: outputs come back right, and crashes, timeouts and errors cost one run only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lite_debug.diagnosis import fix_all
from lite_debug.gallery import example
from lite_debug.inspection import inspect_model
from lite_debug.quantization import quantize
from lite_debug.records import Feed
from lite_debug.running import Limits, Worker, WorkerPool, run

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=2, limits=Limits(run_seconds=20, load_seconds=20))
    yield p
    p.close()


def model(name):
    data = (FIXTURES / name).read_bytes()
    return data, inspect_model(data)


def test_outputs_match_the_model(pool):
    data, spec = model("add_float.tflite")
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    r = run(data, [x], spec=spec, pool=pool)
    assert r.ok, r.error_message
    (out,) = r.outputs
    assert np.array_equal(out.values, x + 1) and r.invoke_ms is not None and r.invoke_ms >= 0


def test_the_interpreter_never_loads_in_the_calling_process():
    # In a fresh process, since other tests here import the interpreter on purpose.
    code = (
        "import sys, numpy as np\n"
        "from lite_debug.running import run\n"
        f"data = open({str(FIXTURES / 'add_float.tflite')!r}, 'rb').read()\n"
        "r = run(data, [np.zeros((1, 4), np.float32)])\n"
        "assert r.ok, r.error_message\n"
        "loaded = [m for m in sys.modules if 'interpreter' in m and ('litert' in m or 'lite' in m)]\n"
        "assert not loaded, loaded\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_worker_stays_warm_for_the_same_model(pool):
    data, spec = model("add_float.tflite")
    w = pool.acquire(spec.sha256)
    try:
        w.run(data, spec, Feed({"x": np.zeros((1, 4), np.float32)}))
        pid = w.pid
        w.run(data, spec, Feed({"x": np.ones((1, 4), np.float32)}))
        assert w.pid == pid and w.model_sha == spec.sha256
    finally:
        pool.release(w)


def test_interpreter_error_comes_back_explained(pool):
    ex = example("image-size")
    spec = inspect_model(ex.model_bytes)
    bad = np.zeros((1, 256, 256, 3), np.float32)
    r = run(ex.model_bytes, [bad], spec=spec, pool=pool)
    assert r.status == "error" and r.error_type == "ValueError"
    assert "Dimension mismatch" in r.error_message
    assert r.explanation is not None and r.explanation.recognised
    # The same worker then serves a good run.
    good = run(ex.model_bytes, ex.good_inputs(), spec=spec, pool=pool)
    assert good.ok


def test_quantized_run_equals_quantizing_by_hand(pool):
    ex = example("uint8-float-data")
    spec = inspect_model(ex.model_bytes)
    x = ex.broken_inputs()
    out = fix_all(spec, x)
    (t,) = spec.inputs
    by_hand = quantize(next(iter(x.values())) if isinstance(x, dict) else x[0], t.quantization, "uint8")
    fixed = out.feed.arrays[t.name]
    assert fixed.dtype == np.uint8 and np.array_equal(fixed, by_hand)
    r1 = run(ex.model_bytes, out.feed, spec=spec, pool=pool)
    r2 = run(ex.model_bytes, [by_hand], spec=spec, pool=pool)
    assert r1.ok and r2.ok
    o1, o2 = r1.outputs[0], r2.outputs[0]
    assert np.array_equal(o1.raw, o2.raw)
    # Outputs come back raw (uint8) and dequantized with the output's own scale and zero point.
    scale, zp = o1.quantization.scale[0], o1.quantization.zero_point[0]
    assert o1.raw.dtype == np.uint8
    assert np.allclose(o1.values, (o1.raw.astype(np.float32) - zp) * scale)


def test_signature_run(pool):
    ex = example("two-signatures-missing-batch")
    spec = inspect_model(ex.model_bytes)
    out = fix_all(spec, ex.broken_inputs(), ex.signature)
    r = run(ex.model_bytes, out.feed, ex.signature, spec=spec, pool=pool)
    assert r.ok, r.error_message
    assert [o.name for o in r.outputs] == [t.name for t in spec.signature(ex.signature).outputs]


def test_dynamic_input_is_resized_by_the_feed(pool):
    ex = example("two-inputs-swapped")
    spec = inspect_model(ex.model_bytes)
    feats, toks = np.ones((3, 10), np.float32), np.ones((3, 20), np.int32)
    feed = Feed({"features": feats, "tokens": toks}, resize={"features": (3, 10), "tokens": (3, 20)})
    r = run(ex.model_bytes, feed, spec=spec, pool=pool)
    assert r.ok and r.outputs[0].shape == (3, 1)
    # Back to the allocated shape on the next run in the same worker.
    r = run(ex.model_bytes, ex.good_inputs(), spec=spec, pool=pool)
    assert r.ok and r.outputs[0].shape == (1, 1)


def test_xnnpack_failure_reruns_without_default_delegates(pool):
    ex = example("reshape-breaks-on-resize")
    spec = inspect_model(ex.model_bytes)
    out = fix_all(spec, ex.broken_inputs())
    r = run(ex.model_bytes, out.feed, spec=spec, pool=pool)
    assert r.status == "error"
    assert "XNNPack" in r.error_message
    assert "num_input_elements != num_output_elements (24 != 12)" in r.kernel_message
    assert r.explanation is not None and r.explanation.facts.get("op") == "RESHAPE"


def test_flex_model_fails_with_its_op_named(pool):
    ex = example("select-tf-op")
    spec = inspect_model(ex.model_bytes)
    assert [o.name for o in spec.flex_ops] == ["FlexMatrixInverse"]
    r = run(ex.model_bytes, ex.good_inputs(), spec=spec, pool=pool)
    assert r.status == "error" and "FlexMatrixInverse" in r.error_message
    assert r.explanation.kind != "unknown"


def test_timeout_kills_the_worker_and_the_next_run_works():
    data, spec = model("slow_loop.tflite")
    p = WorkerPool(size=1, limits=Limits(run_seconds=1.5, load_seconds=20))
    try:
        t0 = time.monotonic()
        r = run(data, [np.array(10**9, np.int32), np.zeros(1, np.float32)], spec=spec, pool=p)
        assert r.status == "timeout" and "1.5 s" in r.detail
        assert time.monotonic() - t0 < 15
        r = run(data, [np.array(10, np.int32), np.zeros(1, np.float32)], spec=spec, pool=p)
        assert r.ok and r.outputs[0].values[0] == pytest.approx(10 * 1e-7, rel=1e-3)
    finally:
        p.close()


def test_a_crash_in_the_worker_is_reported_with_its_signal():
    data, spec = model("slow_loop.tflite")
    worker = Worker(Limits(run_seconds=30, load_seconds=20))
    try:
        worker.start()
        pid = worker.pid
        # Native code dying mid-run looks like this from outside: the process ends by a signal.
        threading.Timer(1.0, lambda: os.kill(pid, signal.SIGSEGV)).start()
        r = worker.run(data, spec, Feed({"iterations": np.array(10**9, np.int32), "x": np.zeros(1, np.float32)}))
        assert r.status == "crashed" and r.signal == "SIGSEGV"
        assert "only its worker process died" in r.detail
        r = worker.run(data, spec, Feed({"iterations": np.array(3, np.int32), "x": np.zeros(1, np.float32)}))
        assert r.ok and worker.pid != pid
    finally:
        worker.close()


def test_pool_never_exceeds_its_size():
    data, spec = model("add_float.tflite")
    p = WorkerPool(size=2)
    results, pids = [], set()

    def one(i):
        w = p.acquire(spec.sha256)
        try:
            results.append(w.run(data, spec, Feed({"x": np.full((1, 4), i, np.float32)})))
            pids.add(w.pid)
        finally:
            p.release(w)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.close()
    assert len(results) == 6 and all(r.ok for r in results)
    assert len(pids) <= 2


def test_a_model_too_big_for_the_memory_limit_is_refused_before_it_runs():
    data, spec = model("big_tile.tflite")
    assert spec.activation_bytes > 300 << 20  # a 1 KB file that asks for a 320 MB tensor
    w = Worker(Limits(memory_bytes=450 << 20))
    try:
        r = w.run(data, spec, Feed({"x": np.ones((1, 4), np.float32)}))
        assert r.status == "skipped" and r.limit == "memory"
        assert "305 MiB" in r.detail and "450 MiB memory limit" in r.detail
        assert w.pid is None  # refused before any worker was started
    finally:
        w.close()
    r = run(data, [np.ones((1, 4), np.float32)], spec=spec, pool=WorkerPool(size=1, limits=Limits(memory_bytes=4 << 30)))
    assert r.ok and r.outputs[0].shape == (4,)  # (float32 sums stop growing at 2**24)


def test_memory_that_shows_only_at_run_time_hits_the_address_space_limit():
    data, spec = model("tile_by_input.tflite")
    w = Worker(Limits(memory_bytes=450 << 20))
    try:
        big = Feed({"x": np.ones((1, 4), np.float32), "multiples": np.array([20_000_000, 1], np.int32)})
        r = w.run(data, spec, big)
        assert r.status in ("error", "crashed") and r.limit == "memory"
        assert "450 MiB memory limit" in r.detail
        small = Feed({"x": np.ones((1, 4), np.float32), "multiples": np.array([3, 1], np.int32)})
        r = w.run(data, spec, small)
        assert r.ok and r.outputs[0].values.tolist() == [3.0] * 4
    finally:
        w.close()


def test_cpu_limit_is_per_run_in_a_warm_worker():
    data, spec = model("slow_loop.tflite")
    w = Worker(Limits(cpu_seconds=2, run_seconds=30))
    try:
        for _ in range(3):  # quick runs add up, but each gets the whole budget
            r = w.run(data, spec, Feed({"iterations": np.array(10, np.int32), "x": np.zeros(1, np.float32)}))
            assert r.ok
        r = w.run(data, spec, Feed({"iterations": np.array(10**9, np.int32), "x": np.zeros(1, np.float32)}))
        assert r.status == "crashed" and r.signal == "SIGXCPU" and r.limit == "cpu"
        assert "2 s of CPU time" in r.detail
    finally:
        w.close()


def test_limits_from_the_environment():
    limits = Limits.from_env({"LITE_DEBUG_RUN_SECONDS": "5", "LITE_DEBUG_MEMORY_GB": "0.5", "LITE_DEBUG_CPU_SECONDS": "0"})
    assert limits.run_seconds == 5 and limits.memory_bytes == 512 << 20 and limits.cpu_seconds is None
    with pytest.raises(ValueError, match="not a number"):
        Limits.from_env({"LITE_DEBUG_MEMORY_GB": "lots"})


def test_prewarm_loads_the_model_so_the_first_run_finds_it():
    data, spec = model("add_float.tflite")
    p = WorkerPool(size=1)
    try:
        p.prewarm(data, spec).join(30)
        w = p.acquire(spec.sha256, timeout=0)
        assert w.model_sha == spec.sha256 and w.alive  # loaded before anyone asked to run
        p.release(w)
        assert run(data, [np.zeros((1, 4), np.float32)], spec=spec, pool=p).ok
        # With the only worker busy, prewarming gives up at once instead of waiting.
        busy = p.acquire(spec.sha256)
        t = p.prewarm(data, spec)
        t.join(5)
        assert not t.is_alive()
        p.release(busy)
    finally:
        p.close()


def test_a_worker_never_runs_a_second_model_in_the_same_process():
    # A model may corrupt the worker's heap and still come back "ok"; another user's model must
    # then not run in that process. Switching models replaces the process.
    a, spec_a = model("add_float.tflite")
    ex = example("uint8-float-data")
    b, spec_b = ex.model_bytes, inspect_model(ex.model_bytes)
    w = Worker(Limits())
    try:
        assert w.run(a, spec_a, Feed({"x": np.zeros((1, 4), np.float32)})).ok
        first = w.pid
        assert w.run(a, spec_a, Feed({"x": np.ones((1, 4), np.float32)})).ok
        assert w.pid == first  # the same model stays warm
        from lite_debug.binding import bind

        assert w.run(b, spec_b, bind(spec_b, ex.good_inputs())).ok
        assert w.pid != first
    finally:
        w.close()


@pytest.mark.parametrize(
    "fixture, says",
    [
        ("53d784cdc5a87e44", "the model runs, so the crash is in the delegate"),  # softmax scale NaN
        ("fa07070010042e41", "refuses the model instead"),  # softmax zero point -129
        ("a32cc219b20b1e09", "crashes too"),  # an output typed RESOURCE
    ],
)
def test_a_crash_is_tried_again_without_the_default_delegate(fixture, says):
    from lite_debug.generate import generate_feed

    data = (FIXTURES / "fuzz" / f"{fixture}.tflite").read_bytes()
    spec = inspect_model(data)
    w = Worker(Limits(run_seconds=20, load_seconds=20))
    try:
        r = w.run(data, spec, generate_feed(spec))
        assert r.status == "crashed" and r.signal in ("SIGSEGV", "SIGABRT")
        assert says in r.detail
        if "refuses" in says:
            assert "zero_point" in (r.kernel_message or "")
    finally:
        w.close()


# -- the pipe ----------------------------------------------------------------------------------


def _channels():
    import socket

    from lite_debug._wire import Channel

    a, b = socket.socketpair()
    return Channel(a), Channel(b)


def test_a_polling_receive_gets_a_message_that_arrives_while_it_polls():
    a, b = _channels()
    timer = threading.Timer(0.01, lambda: a.send(("ok", np.arange(3))))
    timer.start()
    got = b.recv(timeout=5, spin=1.0)
    assert got[0] == "ok" and got[1].tolist() == [0, 1, 2]
    a.close(), b.close()


def test_a_polling_receive_falls_back_to_waiting_then_honours_the_timeout():
    a, b = _channels()
    timer = threading.Timer(0.05, lambda: a.send("late"))
    timer.start()
    assert b.recv(timeout=5, spin=0.001) == "late"  # polled 1 ms, then slept until it came
    with pytest.raises(TimeoutError):
        b.recv(timeout=0.05, spin=0.001)
    # The socket is back to blocking: a message split across two sends is read whole.
    a.send(b"x" * 200_000)
    assert b.recv(timeout=5, spin=0.001) == b"x" * 200_000
    a.close()
    with pytest.raises(EOFError):
        b.recv(timeout=5, spin=0.5)  # the other end closed while we polled
    b.close()


@pytest.mark.parametrize(
    "value",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.arange(12, dtype=np.int8).reshape(3, 4)[:, ::2],  # not contiguous
        np.frombuffer(b"\x01\x02\x03\x04", np.uint8),  # read-only
        np.array(7, np.int64),  # 0-d
        np.zeros((0, 5), np.float16),
        np.array([1 + 2j], np.complex64),
        np.array([True, False]),
        np.array(["a", "bc"]),
        np.array([(1, 2.5)], dtype=[("a", "<i4"), ("b", "<f8")]),  # structured: numpy's own pickling
        np.array([{"k": 1}, None], dtype=object),
        np.arange(4, dtype=">i4"),  # big-endian
    ],
    ids=lambda v: f"{v.dtype}{list(v.shape)}",
)
def test_arrays_cross_the_pipe_whole_and_writable(value):
    a, b = _channels()
    a.send(("ok", [("out", 3, value)]))
    got = b.recv(timeout=5)[1][0][2]
    assert type(got) is np.ndarray and got.dtype == value.dtype and got.shape == value.shape
    assert got.tolist() == value.tolist()
    assert got.flags.writeable  # as numpy's own pickling gives: a caller may change its outputs
    a.close(), b.close()


def test_a_small_array_costs_a_fraction_of_numpys_pickle():
    """The reason arrays are pickled as raw buffers: fewer bytes, and no numpy objects to rebuild."""
    import pickle

    from lite_debug._wire import _dumps

    out = np.zeros((1, 10), np.float32)
    ours, numpys = _dumps(("ok", out)), pickle.dumps(("ok", out), protocol=pickle.HIGHEST_PROTOCOL)
    assert b"numpy" in numpys and b"numpy" not in ours  # no dtype object to rebuild
    assert len(ours) < len(numpys)


def test_the_worker_polls_after_a_reply_as_long_as_requests_lately_took_to_come():
    from lite_debug._worker import SPIN_AFTER_REPLY, SPIN_AFTER_REPLY_MAX, _next_spin

    assert _next_spin([0.0] * 4) == SPIN_AFTER_REPLY  # sparse use: a short poll, then sleep
    assert _next_spin([0.00005] * 4) == SPIN_AFTER_REPLY  # a tight loop: the short poll covers it
    # A caller that works 2.1 ms between runs, every other time: poll past that.
    assert _next_spin([0.00005, 0.0021, 0.00005, 0.0021]) > 0.0021
    assert _next_spin([0.0099] * 4) == SPIN_AFTER_REPLY_MAX  # never longer than the maximum
