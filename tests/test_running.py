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
from lite_debug.running import Limits, Worker, WorkerPool, run, worker_environment

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
        # A 40,000,000 × 4 float32 output: 640 MB, past the limit whatever the worker holds
        # already (20,000,000 rows fitted once numpy's BLAS stopped reserving a thread's buffers).
        big = Feed({"x": np.ones((1, 4), np.float32), "multiples": np.array([40_000_000, 1], np.int32)})
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


@pytest.mark.parametrize("given, expected", [
    (None, "glibc.malloc.hugetlb=1"),
    ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
    ("glibc.malloc.hugetlb=0", "glibc.malloc.hugetlb=0"),
])
def test_a_worker_asks_for_huge_pages_unless_told_otherwise(given, expected):
    """Workers start with glibc's malloc asking for transparent huge pages (a model's arena,
    faulted in 4 KB at a time, was most of a first invoke); a user's own tunables are kept, and
    a hugetlb setting of theirs wins."""
    base = {"PATH": "/usr/bin"} if given is None else {"PATH": "/usr/bin", "GLIBC_TUNABLES": given}
    env = worker_environment(base)
    assert env["GLIBC_TUNABLES"] == expected
    assert env["OPENBLAS_NUM_THREADS"] == "1" and env["PATH"] == "/usr/bin"
    assert worker_environment({"OPENBLAS_NUM_THREADS": "4"})["OPENBLAS_NUM_THREADS"] == "4"


def test_a_workers_arena_is_in_huge_pages_where_the_kernel_gives_them():
    """What the setting is for: the 10 MB a run of the real face detector touches come in 2 MB
    pages (the kernel's "madvise" mode, Linux's default, gives them only on request)."""
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not mode.exists() or "[never]" in mode.read_text() or os.environ.get("GLIBC_TUNABLES"):
        pytest.skip("no transparent huge pages here, or GLIBC_TUNABLES set by the user")
    face = ROOT / "tests" / "real_models" / "face_detection_short_range.tflite"
    data = face.read_bytes()
    spec = inspect_model(data)
    x = np.zeros(spec.inputs[0].shape, np.float32)
    from lite_debug.trace import trace

    pool = WorkerPool(size=1)
    try:
        assert trace(data, spec, Feed({spec.inputs[0].name: x}), pool=pool).ok
        w = pool.acquire(spec.sha256)
        try:
            rollup = Path(f"/proc/{w.pid}/smaps_rollup").read_text()
        finally:
            pool.release(w)
    finally:
        pool.close()
    huge = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("AnonHugePages:"))
    assert huge >= 4096, f"{huge} kB in huge pages"


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


# -- built with the converter (tests/converted.py) ---------------------------------------------------


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    from converted import build

    return build(tmp_path_factory.getbasetemp() / "converted")


def test_a_stateful_model_shows_no_session_what_another_gave_it(converted):
    # The model returns what the previous call gave it (a resource variable): a warm worker
    # would hand one session's input to the next session that opens the same model.
    data = converted["remember"]
    spec = inspect_model(data)
    (x,) = spec.inputs
    p = WorkerPool(size=1)
    try:
        secret = np.full((1, 4), 42.0, np.float32)
        first = p.run(data, spec, Feed({x.name: secret}), owner="alice")
        assert first.ok and not first.outputs[0].values.any()
        alice_pid = p.pids()[0]
        other = p.run(data, spec, Feed({x.name: np.zeros((1, 4), np.float32)}), owner="bob")
        assert other.ok and not other.outputs[0].values.any(), "bob saw alice's input"
        assert p.pids()[0] != alice_pid  # another owner: another process
        # The same session: every run starts afresh too, unless it asks to keep the state.
        again = p.run(data, spec, Feed({x.name: secret}), owner="bob")
        assert again.ok and not again.outputs[0].values.any()
        kept = [p.run(data, spec, Feed({x.name: np.full((1, 4), v, np.float32)}), owner="bob", keep_state=True)
                for v in (7.0, 8.0)]
        assert kept[1].outputs[0].values.tolist() == [[7.0] * 4]
    finally:
        p.close()


def test_a_batch_of_a_stateful_model_starts_every_sample_afresh_unless_told(converted):
    from lite_debug.batch import run_batch

    data = converted["remember"]
    spec = inspect_model(data)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)  # three samples of [1, 4]
    p = WorkerPool(size=1)
    try:
        fresh = run_batch(data, spec, {spec.inputs[0].name: x}, pool=p)
        assert fresh.status == "ok" and not next(iter(fresh.outputs.values())).any()
        kept = run_batch(data, spec, {spec.inputs[0].name: x}, pool=p, keep_state=True)
        (values,) = kept.outputs.values()
        assert values[1].tolist() == x[0].tolist() and values[2].tolist() == x[1].tolist()
    finally:
        p.close()


def test_outputs_larger_than_declared_are_capped_in_the_worker(converted):
    # Declared [1, 1] (the memory estimate passes), filled to [262144, 4] at run time: 1 MiB of
    # int8 and 4 MiB of dequantized float32 in the server, over a 4 MiB cap.
    data = converted["tile_int8"]
    spec = inspect_model(data)
    assert spec.outputs[0].shape == (1, 1) and spec.outputs[0].quantization.is_quantized
    x, multiples = spec.inputs if spec.inputs[0].dtype == "int8" else spec.inputs[::-1]
    w = Worker(Limits(output_bytes=4 << 20))
    try:
        big = Feed({x.name: np.ones((1, 4), np.int8), multiples.name: np.array([1 << 18, 1], np.int32)})
        r = w.run(data, spec, big)
        assert r.status == "skipped" and r.limit == "output" and not r.outputs
        assert "5 MiB in the server" in r.detail and "4 MiB a run may return" in r.detail
        assert "[262144, 4]" in r.detail and "LITE_DEBUG_OUTPUT_MB" in r.detail
        small = Feed({x.name: np.ones((1, 4), np.int8), multiples.name: np.array([1000, 1], np.int32)})
        r = w.run(data, spec, small)
        (out,) = r.outputs
        assert r.ok and out.raw.shape == (1000, 4) and out.values.dtype == np.float32
        q = out.quantization
        assert np.allclose(out.values, (out.raw.astype(np.float64) - q.zero_point[0]) * q.scale[0], rtol=1e-6)
    finally:
        w.close()


def test_limits_read_the_output_cap_from_the_environment():
    assert Limits.from_env({"LITE_DEBUG_OUTPUT_MB": "64"}).output_bytes == 64 << 20
    assert Limits.from_env({"LITE_DEBUG_OUTPUT_MB": "0"}).output_bytes is None
    assert Limits.from_env({}).output_bytes == 256 << 20


def test_the_server_holds_under_twice_the_capped_outputs(converted, tmp_path):
    # 25 MiB of int8 (with its float32 copy: 125 MiB, under a 128 MiB cap) run in a fresh process
    # whose peak memory is measured: float64 temporaries took 4x the output more.
    model = tmp_path / "tile.tflite"
    model.write_bytes(converted["tile_int8"])
    code = (
        "import numpy as np, sys\n"
        "from lite_debug.inspection import inspect_model\n"
        "from lite_debug.records import Feed\n"
        "from lite_debug.running import Limits, Worker\n"
        f"data = open({str(model)!r}, 'rb').read(); spec = inspect_model(data)\n"
        "x, m = spec.inputs if spec.inputs[0].dtype == 'int8' else spec.inputs[::-1]\n"
        "w = Worker(Limits(output_bytes=128 << 20))\n"
        "feed = Feed({x.name: np.ones((1, 4), np.int8), m.name: np.array([25 << 18, 1], np.int32)})\n"
        "assert w.run(data, spec, Feed({x.name: np.ones((1, 4), np.int8), m.name: np.array([1, 1], np.int32)})).ok\n"
        "def status(key):\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key)) << 10\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "before = status('VmRSS:')\n"
        "r = w.run(data, spec, feed)\n"
        "assert r.ok and r.outputs[0].raw.nbytes == 25 << 20, (r.status, r.detail)\n"
        "print(status('VmHWM:') - before)\n"
        "w.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    peak = int(done.stdout.split()[-1])
    assert peak < 2 * (128 << 20), f"the server took {peak >> 20} MiB for 125 MiB of outputs"


def test_outputs_of_every_kind_come_back_as_values(converted):
    data = converted["kinds"]
    spec = inspect_model(data)
    names = {t.dtype: t.name for t in spec.outputs}
    x = np.arange(16, dtype=np.float32).reshape(4, 4) - 5
    strings = np.array([b"ab", b"c\x00d"], dtype=object)
    inputs = {t.dtype: t.name for t in spec.inputs}
    r = run(data, {inputs["float32"]: x, inputs["string"]: strings}, spec=spec, pool=WorkerPool(size=1))
    assert r.ok, (r.status, r.detail)  # a string output crashed the worker (tensor() on a string)
    got = {o.name: o for o in r.outputs}
    assert got[names["string"]].raw.tolist() == [[b"ab"], [b"c\x00d"]]
    assert np.allclose(got[names["complex64"]].values, np.fft.rfft2(x), atol=1e-4)
    assert got[names["bool"]].values.tolist() == (x > 0).tolist()
    assert got[names["float32"]].shape == (4, 0)


def test_an_output_name_with_a_nul_byte_matches_the_model(converted):
    from lite_debug._schema import schema
    import flatbuffers

    fb = schema()
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(converted["kinds"], 0))
    sub = model.subgraphs[0]
    sub.tensors[sub.outputs[0]].name = b"first\x00second"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    data = bytes(builder.Output())
    spec = inspect_model(data)
    assert "first\x00second" in [t.name for t in spec.outputs]
    inputs = {t.dtype: t.name for t in spec.inputs}
    r = run(data, {inputs["float32"]: np.ones((4, 4), np.float32), inputs["string"]: np.array([b"a", b"b"], dtype=object)},
            spec=spec, pool=WorkerPool(size=1))
    assert r.ok and sorted(o.name for o in r.outputs) == sorted(t.name for t in spec.outputs)
    r.output("first\x00second")


def test_no_poll_after_a_reply_unless_more_requests_follow():
    # A person clicking: the worker sleeps at once after each reply. It polled 2-10 ms after
    # every one, a core's worth of CPU on a shared server for runs nobody was waiting on.
    # Only the CPU the worker's threads use between a reply and the next request counts, read
    # in nanoseconds (schedstat), so the runs' own work on a slow machine does not.
    data, spec = model("add_float.tflite")
    feed = Feed({"x": np.zeros((1, 4), np.float32)})
    w = Worker(Limits())

    def cpu_seconds() -> float:
        tasks = Path(f"/proc/{w.pid}/task")
        return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks.iterdir()) / 1e9

    def idle_cpu() -> float:
        idle = 0.0
        for _ in range(40):
            assert w.run(data, spec, feed).ok
            before = cpu_seconds()
            time.sleep(0.02)
            idle += cpu_seconds() - before
        return idle

    def polling_cpu() -> float:
        # Runs with and without the hint, one after the other so that a busy machine slows
        # both alike: what the hinted ones cost more is their poll.
        extra = 0.0
        for _ in range(40):
            for sign, hint in ((-1, False), (1, True)):
                before = cpu_seconds()
                assert w.run(data, spec, feed, expect_more=hint).ok
                time.sleep(0.01)
                extra += sign * (cpu_seconds() - before)
        return extra

    try:
        assert w.run(data, spec, feed).ok
        if not Path(f"/proc/{w.pid}/schedstat").exists():
            pytest.skip("this kernel has no /proc/<pid>/schedstat")
        idle = idle_cpu()
        assert idle < 0.01, f"the worker spent {idle * 1000:.1f} ms of CPU waiting between 40 tiny runs"
        # A loop that said so polls 2 ms a run: the measure sees it.
        polled = polling_cpu()
        assert polled >= 0.03, f"the hint cost {polled * 1000:.1f} ms more CPU over 40 runs"
    finally:
        w.close()


# -- the model check -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def check_pool():
    p = WorkerPool(size=2, limits=Limits(run_seconds=20, load_seconds=20))
    yield p
    p.close()


@pytest.mark.parametrize(
    "path, status, says",
    [
        ("lite_debug/examples/matrix_inverse_flex.tflite", "error", "Select TensorFlow op"),
        ("lite_debug/examples/matrix_determinant_custom.tflite", "error", "unresolved custom op: MatrixDeterminant"),
        ("lite_debug/examples/reshape_fixed_batch.tflite", "ok", None),
        ("tests/real_models/face_landmark_with_attention.tflite", "error", "unresolved custom op: Landmarks2TransformMatrix"),
        ("tests/real_models/selfie_segmentation.tflite", "ok", None),  # its custom op runs in XNNPACK
    ],
)
def test_a_model_check_loads_and_allocates_without_invoking(check_pool, path, status, says):
    data = (ROOT / path).read_bytes()
    spec = inspect_model(data)
    job = check_pool.start_check(data, spec, owner="s1")
    check = job.result(timeout=60)
    assert check.status == status, (check.status, check.message, check.detail)
    assert check.sha256 == spec.sha256
    if says:
        assert says in check.message and check.error_type == "RuntimeError"
        assert check.explanation is not None and check.explanation.recognised
    # Asked again (every rerun of a page): the same finished job, no worker needed.
    t0 = time.perf_counter()
    assert check_pool.start_check(data, spec, owner="s1") is job and job.done()
    assert check_pool.check_model(data, spec, owner="s2") is check
    assert time.perf_counter() - t0 < 0.5


def test_a_check_leaves_the_model_warm_for_its_session():
    data, spec = model("add_float.tflite")
    p = WorkerPool(size=1)
    try:
        assert p.check_model(data, spec, owner="s1", timeout=60).ok
        (pid,) = p.pids()
        assert run(data, [np.zeros((1, 4), np.float32)], spec=spec, pool=p, owner="s1").ok
        assert p.pids() == [pid]
    finally:
        p.close()


def test_a_model_too_big_to_check_is_skipped_with_the_figure():
    data, spec = model("big_tile.tflite")
    p = WorkerPool(size=1, limits=Limits(memory_bytes=450 << 20))
    try:
        check = p.check_model(data, spec, timeout=5)
        assert check.status == "skipped" and check.limit == "memory" and "305 MiB" in check.detail
        assert not p.pids()
    finally:
        p.close()


def test_a_reshape_that_would_write_past_its_output_is_refused_before_any_worker_runs_it():
    """The saved fuzz crasher whose RESHAPE turns float32 into uint16 corrupted the worker's heap:
    it aborted, or ran on with garbage outputs, as memory happened to lie. It is refused with a
    sentence before a worker starts; the same model with the output's type restored runs."""
    from crafted import pack_model, unpack_model

    data = (FIXTURES / "fuzz" / "93745a7c06a1153d.tflite").read_bytes()
    spec = inspect_model(data)
    w = Worker(Limits())
    try:
        r = w.run(data, spec, Feed({spec.inputs[0].name: np.zeros(spec.inputs[0].shape, np.float32)}))
        assert r.status == "skipped" and not w.alive
        assert "op 4 (RESHAPE)" in r.detail and "uint16" in r.detail and "float32" in r.detail
        assert "'StatefulPartitionedCall:0'" in r.detail and "2× the output's size" in r.detail
        assert w.check(data, spec).status == "skipped" and not w.alive
    finally:
        w.close()
    # The mutation undone (tensor 11 back to float32): the model runs.
    m = unpack_model(data)
    m.subgraphs[0].tensors[11].type = 0
    fixed = pack_model(m)
    fixed_spec = inspect_model(fixed)
    fresh = WorkerPool(size=1)
    try:
        ok = run(fixed, np.zeros(fixed_spec.inputs[0].shape, np.float32), spec=fixed_spec, pool=fresh)
    finally:
        fresh.close()
    assert ok.ok and ok.outputs[0].values.dtype == np.float32


def test_a_request_that_needs_a_model_before_any_is_loaded_gets_a_sentence():
    """A parent out of step (a request before the load) gets a failure naming the request, and
    the worker stays up."""
    from lite_debug import _protocol as P

    w = Worker(Limits())
    try:
        for request, stage in ((P.Run(), "run"), (P.Batch(n=1), "batch"), (P.Trace(), "trace"), (P.Prepare(), "prepare")):
            outcome, reply = w._request(request, 30, accept=(P.Failed,))
            assert outcome == "reply" and reply.stage == stage, (outcome, reply)
            assert reply.message == "No model is loaded in the worker."
        assert w.alive
    finally:
        w.close()
