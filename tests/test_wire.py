"""The worker protocol: what a worker taken over by a model can send the server, and what happens.

A stand-in worker (a small script speaking the wire format) answers the model load properly,
then answers the run with a crafted frame: a pickle that would run code, a frame that stops
midway, a length header of 2**62, a buffer outside the shared region, an object dtype. Each must
end in a result (``protocol`` or ``timeout``) within the run's limit, with the worker killed and
nothing run in the server.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lite_debug import _protocol as P
from lite_debug._wire import Channel, Stalled
from lite_debug.inspection import inspect_model
from lite_debug.records import Feed
from lite_debug.running import Limits, Worker, WorkerPool, _Process

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"

STAND_IN = r'''
import os, pickle, socket, struct, sys, time
sys.path.insert(0, sys.argv[3])
from lite_debug import _protocol as P
from lite_debug._wire import Channel

conn = Channel(socket.socket(fileno=int(sys.argv[1])))
attack = sys.argv[2]
marker = sys.argv[4]


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {marker}",))


def frame(body):
    conn.sock.sendall(struct.pack("<Q", len(body)) + body)


def raw_reply(header, *buffers):
    head = json.dumps(header).encode()
    body = struct.pack("<I", len(head)) + head + b"".join(buffers)
    frame(body)


import json
while True:
    request = conn.recv()
    if isinstance(request, P.Load):
        parts, _ = P.encode_reply(P.Loaded())
        conn.send_parts(parts)
        continue
    if isinstance(request, P.Exit):
        break
    if attack == "pickle":
        frame(pickle.dumps(("ok", Evil())))
    elif attack == "truncated":
        conn.sock.sendall(struct.pack("<Q", 1000) + b"x" * 10)
        time.sleep(120)
    elif attack == "huge":
        conn.sock.sendall(struct.pack("<Q", 1 << 62))
        time.sleep(120)
    elif attack == "outside":
        size = request.region[1] if request.region else 1 << 20
        out = [0, "y", {"$a": 0}]  # Output(index, name, value)
        raw_reply({"t": "RunDone", "v": [[out], 1.0], "a": [["<f4", [1024], "s", size - 64]]})
    elif attack == "object":
        out = [0, "y", {"$a": 0}]
        raw_reply({"t": "RunDone", "v": [[out], 1.0], "a": [["|O8", [2], "i", 0]]}, b"\0" * 16)
    elif attack == "unknown":
        raw_reply({"t": "Shell", "v": ["rm -rf /"], "a": []})
    elif attack == "wrong-field":
        raw_reply({"t": "RunDone", "v": ["all of them", 1.0], "a": []})
    elif attack == "over-cap":
        n = (2 << 20) // 4
        out = [0, "y", {"$a": 0}]
        raw_reply({"t": "RunDone", "v": [[out], 1.0], "a": [["<f4", [n], "i", 0]]}, b"\0" * (4 * n))
    elif attack == "progress-in-a-run":
        parts, _ = P.encode_reply(P.Progress(done=1, total=2))
        conn.send_parts(parts)
        time.sleep(120)
'''


class StandIn(Worker):
    """A Worker whose process is the stand-in above, playing ``attack`` on the first run."""

    def __init__(self, attack: str, marker: Path, limits: Limits) -> None:
        super().__init__(limits)
        self.attack, self.marker = attack, marker

    def start(self) -> None:
        parent, child = socket.socketpair()
        proc = subprocess.Popen(
            [sys.executable, "-c", STAND_IN, str(child.fileno()), self.attack, str(ROOT), str(self.marker)],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        child.close()
        self._proc = _Process(proc)
        self._conn = Channel(parent)
        self.model_sha, self._loaded = None, False
        self._close_region()


def add_float():
    data = (FIXTURES / "add_float.tflite").read_bytes()
    return data, inspect_model(data)


@pytest.mark.parametrize(
    "attack, status, says",
    [
        ("pickle", "protocol", "header"),  # a pickle is not a frame: nothing is unpickled
        ("huge", "protocol", "over the"),  # 2**62 bytes announced: refused before allocating
        ("outside", "protocol", "outside the shared memory region"),
        ("object", "protocol", "'|O8'"),  # an object dtype is never rebuilt
        ("unknown", "protocol", "no known type"),
        ("wrong-field", "protocol", "should be a list"),
        ("over-cap", "protocol", "cap"),  # a worker that ignores the output cap
        ("progress-in-a-run", "protocol", "answered with Progress"),
        ("truncated", "timeout", "2 s limit"),  # stops mid-frame: the deadline still holds
    ],
)
def test_a_worker_that_breaks_the_protocol_costs_one_run(tmp_path, attack, status, says):
    data, spec = add_float()
    marker = tmp_path / "ran"
    worker = StandIn(attack, marker, Limits(run_seconds=2, load_seconds=20, output_bytes=1 << 20))
    try:
        # A 64 KB input goes through shared memory, so the stand-in has a region to point past.
        feed = Feed({"x": np.ones((1, 4), np.float32)})
        if attack == "outside":
            worker._want = 1 << 20
        t0 = time.monotonic()
        r = worker.run(data, spec, feed)
        seconds = time.monotonic() - t0
        assert r.status == status, (r.status, r.detail)
        assert says in r.detail
        assert seconds < 2 + 5, f"the caller was held {seconds:.1f} s"
        assert worker.pid is None  # killed: a worker that broke the protocol is never used again
        assert not marker.exists()  # nothing the worker sent ran in this process
    finally:
        worker.close()


def test_a_protocol_failure_reads_as_a_sentence_and_the_pool_goes_on(tmp_path):
    data, spec = add_float()
    pool = WorkerPool(size=1, limits=Limits(run_seconds=5))
    try:
        w = pool.acquire(spec.sha256)
        pool.release(w)
        bad = StandIn("object", tmp_path / "ran", pool.limits)
        pool._idle.clear()
        pool._idle[id(bad)] = bad
        r = pool.run(data, spec, Feed({"x": np.ones((1, 4), np.float32)}))
        assert r.status == "protocol" and r.detail.endswith("report it with its bundle.")
        assert "may have taken the worker over" in r.detail
        pool._idle.clear()
        pool._count = 0
        again = pool.run(data, spec, Feed({"x": np.ones((1, 4), np.float32)}))
        assert again.ok and again.outputs[0].values.tolist() == [[2.0] * 4]
    finally:
        pool.close()
        w.close()


# -- the codec ----------------------------------------------------------------------------------------


def _frame(record, region=None):
    parts, need = P.encode_reply(record, region)
    return bytearray(b"".join(p.tobytes() if isinstance(p, np.ndarray) else bytes(p) for p in parts)), need


@pytest.mark.parametrize(
    "value",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.arange(12, dtype=np.int8).reshape(3, 4)[:, ::2],  # not contiguous
        np.array(7, np.int64),  # 0-d
        np.zeros((0, 5), np.float16),
        np.zeros((4, 0), np.float32),
        np.array([1 + 2j], np.complex64),
        np.array([True, False]),
        np.array([[b"ab"], [b"c\x00d\x00"]], dtype=object),  # strings, NULs and all
        np.array([b"", b"x"], dtype=object),
    ],
    ids=lambda v: f"{v.dtype}{list(v.shape)}",
)
def test_arrays_come_back_whole_and_writable(value):
    record = P.RunDone(outputs=(P.Output(index=3, name="out\x00put", value=value, scales=(0.5,), zero_points=(-1,)),), invoke_ms=1.5)
    frame, _ = _frame(record)
    got = P.decode_reply(frame, None, cap=1 << 20)
    (out,) = got.outputs
    assert out.name == "out\x00put" and out.index == 3 and out.scales == (0.5,) and out.zero_points == (-1,)
    assert type(out.value) is np.ndarray and out.value.shape == value.shape and out.value.dtype == value.dtype
    assert out.value.tolist() == value.tolist()
    assert out.value.flags.writeable or out.value.size == 0


def test_large_arrays_travel_through_the_region_and_are_copied_out():
    from lite_debug._shm import Region

    region = Region.create(1 << 20)
    try:
        big = np.arange(50_000, dtype=np.float32)
        frame, need = _frame(P.RunDone(outputs=(P.Output(index=0, name="y", value=big),), invoke_ms=0.0), region)
        assert need == 0 and len(frame) < 4096  # the buffer is not in the frame
        got = P.decode_reply(frame, region, cap=1 << 20).outputs[0].value
        region.map[:4] = b"\xff" * 4  # the next run reuses the region: the output must not change
        assert np.array_equal(got, big)
        # With no room in the region, the buffer comes inline and ``need`` says how much to grow.
        frame, need = _frame(P.RunDone(outputs=(P.Output(index=0, name="y", value=np.zeros(1 << 19, np.float32)),), invoke_ms=0.0), region)
        assert need >= 2 << 20
    finally:
        region.close()


def test_borrowed_arrays_are_read_only_views_that_keep_the_region_mapped():
    """``borrow``: the region's arrays are read in place (the next write there shows through),
    read-only, and no close unmaps the region under them; ``owned`` copies them, and only them."""
    from lite_debug._shm import Region

    region = Region.create(1 << 20)
    big, small = np.arange(50_000, dtype=np.float32), np.arange(4, dtype=np.float32)
    outputs = (P.Output(index=0, name="y", value=big), P.Output(index=1, name="z", value=small))
    frame, need = _frame(P.RunDone(outputs=outputs, invoke_ms=0.0), region)
    assert need == 0
    got = P.decode_reply(frame, region, cap=1 << 20, borrow=True).outputs
    lent, inline = got[0].value, got[1].value
    assert np.array_equal(lent, big) and not lent.flags.writeable and inline.flags.writeable
    kept = P.owned(lent)
    assert P.owned(inline) is inline and kept.flags.writeable
    with pytest.raises(ValueError):
        lent[0] = 1.0
    region.map[:4] = np.float32(-1.0).tobytes()  # the worker's next reply, written in place
    assert lent[0] == -1.0 and kept[0] == 0.0
    region.close()  # a pool closing: the memory stays mapped while a view of it lives
    assert lent[0] == -1.0 and np.array_equal(lent[1:], big[1:])
    del lent, got
    region.close()  # the last view gone, the map closes
    assert region.map.closed


def test_batch_replies_keep_their_chunk_numbers_and_times():
    times = np.array([0.001, 0.002], dtype="<f8")
    frame, _ = _frame(P.BatchDone(outputs=(), failed={1: "boom", 10: "again"}, times=times, done=2))
    got = P.decode_reply(frame, None, cap=None)
    assert got.failed == {1: "boom", 10: "again"} and got.times.tolist() == times.tolist() and got.done == 2


@pytest.mark.parametrize(
    "header, why",
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a reply"),
        (json.dumps({"t": "Loaded", "v": [5], "a": []}).encode(), "none of the types"),
        (json.dumps({"t": "Loaded", "v": [None, 1], "a": []}).encode(), "wrong fields"),
        (json.dumps({"t": "Loaded", "v": {"kernel_message": None}, "a": []}).encode(), "wrong fields"),
        (json.dumps({"t": "Progress", "v": [True, 1], "a": []}).encode(), "whole number"),
        (json.dumps({"t": "BatchDone", "v": [[], {"x": "a"}, {"$a": 0}, 0], "a": [["<f8", [0], "i", 0]]}).encode(),
         "key is not a whole number"),
        (json.dumps({"t": "BatchDone", "v": [[], {}, {"$a": 0}, 0], "a": [["<f8", [-1], "i", 0]]}).encode(), "shape"),
        (json.dumps({"t": "BatchDone", "v": [[], {}, {"$a": 0}, 0], "a": [["<f8", [10], "i", 0]]}).encode(), "past the end"),
        (json.dumps({"t": "BatchDone", "v": [[], {}, {"$a": 0}, 0], "a": [[">f8", [1], "i", 0]]}).encode(), "may not carry"),
        (json.dumps({"t": "BatchDone", "v": [[], {}, {"$a": 0}, 0], "a": [["<f8", [0], "i", 0], ["<f8", [0], "i", 0]]}).encode(),
         None),  # an unused buffer is harmless
        (json.dumps({"t": "RunDone", "v": [[[0, "y", {"$a": 0}], [1, "z", {"$a": 0}]], 1.0], "a": [["<f4", [1], "i", 0]]}).encode(),
         "not in the reply"),  # two outputs sharing one buffer
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # nesting deep enough to exhaust the recursion
    ],
)
def test_malformed_frames_are_refused(header, why):
    frame = bytearray(struct.pack("<I", len(header)) + header + b"\0" * 64)  # room for small buffers
    if why is None:
        P.decode_reply(frame, None, cap=1 << 20)
        return
    with pytest.raises(P.ProtocolError, match=why):
        P.decode_reply(frame, None, cap=1 << 20)


def test_a_frame_that_stops_midway_times_out_at_its_deadline():
    a, b = socket.socketpair()
    reader = Channel(b)
    a.sendall(struct.pack("<Q", 100) + b"x" * 10)
    t0 = time.monotonic()
    with pytest.raises(Stalled):
        reader.recv_frame(time.monotonic() + 0.3)
    assert time.monotonic() - t0 < 2
    a.close(), b.close()


def test_a_frame_longer_than_its_cap_is_refused_before_it_is_read():
    a, b = socket.socketpair()
    a.sendall(struct.pack("<Q", 1 << 62))
    with pytest.raises(P.ProtocolError, match="over the"):
        Channel(b).recv_frame(time.monotonic() + 5, max_size=1 << 20)
    a.close(), b.close()
