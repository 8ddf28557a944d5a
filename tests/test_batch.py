"""Batches: every sample runs, outcomes and statistics are right, progress is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lite_debug.batch import batch_plan, fix_batch, run_batch, sample
from lite_debug.gallery import example
from lite_debug.inspection import inspect_model
from lite_debug.records import Feed
from lite_debug.running import Limits, WorkerPool, run

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=1, limits=Limits(run_seconds=30))
    yield p
    p.close()


def digits():
    ex = example("uint8-float-data")
    return ex.model_bytes, inspect_model(ex.model_bytes)


def test_batch_outputs_equal_running_each_sample_alone(pool):
    model, spec = digits()
    x = np.random.default_rng(0).integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
    seen = []
    result = run_batch(model, spec, [x], pool=pool, progress=lambda done, total: seen.append((done, total)))
    assert result.status == "ok" and result.count == 40 and result.ok_count == 40
    (name,) = result.outputs
    assert result.raw[name].shape == (40, 10) and result.raw[name].dtype == np.uint8
    for i in (0, 17, 39):
        alone = run(model, [x[i : i + 1]], spec=spec, pool=pool)
        assert np.array_equal(alone.outputs[0].raw[0], result.raw[name][i])
        assert np.allclose(alone.outputs[0].values[0], result.outputs[name][i])
    assert seen[-1] == (40, 40)
    (row,) = result.summary()
    assert row["samples"] == 40 and row["min"] <= row["mean"] <= row["max"]


def test_a_failing_sample_is_recorded_and_the_rest_run(pool):
    model = (FIXTURES / "gather_table.tflite").read_bytes()
    spec = inspect_model(model)
    ids = np.array([[0, 1, 2], [3, 4, 5], [7, 99, 1], [9, 9, 9]], np.int32)  # sample 2 is out of range
    result = run_batch(model, spec, {"ids": ids}, pool=pool)
    assert result.status == "partial" and result.count == 4
    assert list(result.errors) == [2] and "gather index out of bounds" in result.errors[2]
    assert result.statuses == ["ok", "ok", result.errors[2], "ok"]
    (name,) = result.outputs
    assert np.array_equal(result.outputs[name][3], np.tile(np.arange(36, 40, dtype=np.float32), (3, 1)))
    assert result.explanation is not None and result.explanation.recognised
    assert result.summary()[0]["samples"] == 3


def test_batches_of_two_inputs_and_of_a_signature_equal_single_runs(pool):
    rng = np.random.default_rng(1)
    ex = example("two-inputs-swapped")
    spec = inspect_model(ex.model_bytes)
    feats = rng.random((70, 10), dtype=np.float32)  # more than one block of 64 samples
    tokens = rng.integers(0, 100, (70, 20), dtype=np.int32)
    result = run_batch(ex.model_bytes, spec, {"features": feats, "tokens": tokens}, pool=pool)
    assert result.status == "ok" and result.ok_count == 70 and len(result.invoke_ms) == 70
    (name,) = result.outputs
    for i in (0, 63, 64, 69):
        alone = run(ex.model_bytes, {"features": feats[i : i + 1], "tokens": tokens[i : i + 1]}, spec=spec, pool=pool)
        assert np.array_equal(alone.outputs[0].raw[0], result.raw[name][i])

    ex = example("two-signatures-missing-batch")
    spec = inspect_model(ex.model_bytes)
    x = rng.random((5, 16), dtype=np.float32)
    result = run_batch(ex.model_bytes, spec, {"x": x}, signature="encode", pool=pool)
    assert result.status == "ok" and result.ok_count == 5
    for i in (0, 4):
        alone = run(ex.model_bytes, {"x": x[i : i + 1]}, spec=spec, signature="encode", pool=pool)
        assert np.allclose(alone.outputs[0].raw[0], result.raw["z"][i])


def test_a_batch_whose_first_or_every_sample_fails(pool):
    model = (FIXTURES / "gather_table.tflite").read_bytes()
    spec = inspect_model(model)
    ids = np.array([[99, 1, 2], [3, 4, 5], [6, 7, 8]], np.int32)
    result = run_batch(model, spec, {"ids": ids}, pool=pool)
    assert result.status == "partial" and list(result.errors) == [0] and result.ok_count == 2
    (name,) = result.outputs
    assert not result.raw[name][0].any() and result.raw[name].shape[0] == 3  # the failed rows are zeros
    assert np.array_equal(result.outputs[name][1][0], np.arange(12, 16, dtype=np.float32))

    result = run_batch(model, spec, {"ids": np.full((3, 3), 99, np.int32)}, pool=pool)
    assert result.status == "error" and len(result.errors) == 3 and result.ok_count == 0
    assert result.statuses == [result.errors[0]] * 3


def test_a_large_batch_sent_in_parts_runs_every_sample_and_leaves_the_pipe_clean(pool, monkeypatch):
    # From 128 samples with data in shared memory, the worker starts on its first block of 64
    # while the parent copies the rest in pieces that double, announcing each with ("more", rows).
    from lite_debug._protocol import Batch, More
    from lite_debug._wire import Channel
    from lite_debug.running import Worker

    parts, more = [], []
    request, send = Worker._request, Channel.send

    def spy(self, message, *args, **kwargs):
        if isinstance(message, Batch):
            parts.append((message.available, kwargs.get("after_send") is not None))
        return request(self, message, *args, **kwargs)

    def spy_send(self, message):
        if isinstance(message, More):
            more.append(message.rows)
        return send(self, message)

    monkeypatch.setattr(Worker, "_request", spy)
    monkeypatch.setattr(Channel, "send", spy_send)
    model = (FIXTURES / "gather_table.tflite").read_bytes()
    spec = inspect_model(model)
    ids = np.random.default_rng(2).integers(0, 10, (2000, 3)).astype(np.int32)  # 24 KB: shared memory
    ids[1999] = [0, 1, 2]
    ids[10] = [99, 0, 0]  # fails in the first part
    result = run_batch(model, spec, {"ids": ids}, pool=pool)
    assert parts == [(64, True)]
    assert more == [192, 448, 960, 2000]
    assert result.status == "partial" and list(result.errors) == [10] and result.ok_count == 1999
    (name,) = result.outputs
    assert np.array_equal(result.outputs[name][1999][2], np.arange(8, 12, dtype=np.float32))  # the last part's data
    for i in (0, 63, 64, 191, 192, 447, 448, 959, 960, 1500):  # either side of every piece's edge
        alone = run(model, {"ids": ids[i : i + 1]}, spec=spec, pool=pool)
        assert np.array_equal(alone.outputs[0].raw[0], result.raw[name][i])
    # The same worker serves the next request as usual: no stray message was left behind.
    again = run_batch(model, spec, {"ids": ids[:300]}, pool=pool)
    assert again.ok_count == 299 and np.array_equal(again.raw[name], result.raw[name][:300])


@pytest.mark.parametrize("row_seconds", [1e-9, 10.0], ids=["ends-after-the-poll", "ends-while-asleep"])
def test_a_batch_whose_length_was_mispredicted_still_returns(pool, row_seconds):
    from lite_debug._protocol import Batch

    # The parent sleeps until shortly before the end the last batch predicts, then polls: a
    # reply long after the poll or long before it must both be picked up.
    model = (FIXTURES / "gather_table.tflite").read_bytes()
    spec = inspect_model(model)
    ids = np.random.default_rng(4).integers(0, 10, (300, 3)).astype(np.int32)
    worker = pool.acquire(spec.sha256)
    try:
        worker.ensure_model(model, spec)
        worker._batch_row_seconds = row_seconds
        failed, reply = worker.run_batch(model, spec, Batch(n=300, chunk=1, arrays=[(spec.inputs[0].index, ids)]))
        assert failed is None and not reply.failed and len(reply.times) == 300
        assert 0 < worker._batch_row_seconds < 1.0  # measured afresh for the next batch
    finally:
        pool.release(worker)


def test_stacking_rows_by_their_bytes_gives_what_numpy_stacking_gives():
    from lite_debug._worker import _stacks

    rng = np.random.default_rng(3)
    columns = [
        [rng.random((1, 10), dtype=np.float32) for _ in range(50)],
        [np.array(i, np.int16) for i in range(50)],
        [rng.integers(0, 9, (2, 3), dtype=np.uint8) for _ in range(50)],
    ]
    failed = {0: "boom", 7: "boom"}  # failed chunks: zeros, whatever their columns hold
    columns[0][7] = columns[1][0] = None
    expected = [
        np.stack([np.zeros_like(col[1]) if k in failed else v for k, v in enumerate(col)]) for col in columns
    ]
    for fixed in ([True] * 3, [False] * 3):  # by bytes, and the general way for outputs whose shape may vary
        stacks = _stacks(columns, fixed, failed)
        for s, e in zip(stacks, expected):
            assert s.dtype == e.dtype and s.shape == e.shape and np.array_equal(s, e)
            assert s.flags.writeable
    assert _stacks([[None, None]], [True], {0: "x", 1: "y"}) == [] and _stacks([], [], {}) == []


def test_a_model_without_a_batch_axis_is_not_a_batch():
    model = (FIXTURES / "tile_by_input.tflite").read_bytes()
    spec = inspect_model(model)
    data = Feed({"x": np.ones((5, 1, 4), np.float32), "multiples": np.array([[2, 1]] * 5, np.int32)})
    assert batch_plan(spec, data) is None
    with pytest.raises(ValueError, match="not a batch"):
        run_batch(model, spec, data, pool=None)


def test_batch_plan_and_fix_batch():
    model, spec = digits()
    floats = np.random.default_rng(1).random((12, 28, 28, 1), dtype=np.float32)
    assert batch_plan(spec, [floats]) == (12, 1)
    assert batch_plan(spec, [floats[:1]]) is None  # one sample is not a batch
    assert batch_plan(spec, [floats[:, :, :20]]) is None
    outcome = fix_batch(spec, [floats])
    assert [f.kind for f in outcome.applied] == ["quantize"] and outcome.remaining == ()
    fixed = next(iter(outcome.feed.arrays.values()))
    assert fixed.shape == (12, 28, 28, 1) and fixed.dtype == np.uint8
    assert np.array_equal(fixed[3], np.clip(np.round(floats[3] * 255), 0, 255).astype(np.uint8))
    one = sample(outcome.feed, 3)
    assert next(iter(one.arrays.values())).shape == (1, 28, 28, 1)


def test_fix_batch_resizes_a_stack_of_photos():
    ex = example("image-size")
    spec = inspect_model(ex.model_bytes)
    photos = np.random.default_rng(2).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    outcome = fix_batch(spec, [photos])
    assert [f.kind for f in outcome.applied] == ["resize_image", "normalize"]
    assert batch_plan(spec, outcome.feed) == (3, 1)


def test_cli_batch_end_to_end(tmp_path):
    floats = np.random.default_rng(3).random((50, 28, 28, 1), dtype=np.float32)
    np.savez(tmp_path / "batch.npz", images=floats)
    model = ROOT / "lite_debug" / "examples" / "digit_classifier_uint8.tflite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "lite_debug", "check", str(model), str(tmp_path / "batch.npz"), "--batch", "--fix", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["batch"]["count"] == 50 and report["batch"]["ok"] == 50 and report["batch"]["failed"] == {}
    assert report["batch"]["outputs"][0]["samples"] == 50
    assert [f["kind"] for f in report["fixes_applied"]] == ["quantize"]
    # Without --fix, float data is not a batch the uint8 model can take: a sentence, exit 2.
    done = subprocess.run(
        [sys.executable, "-m", "lite_debug", "check", str(model), str(tmp_path / "batch.npz"), "--batch"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr


def test_cli_repeat_prints_min_median_p95():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "lite_debug", "check", str(FIXTURES / "add_float.tflite"), "--repeat", "20", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    timing = json.loads(done.stdout)["run"]["timing"]
    assert timing["repeat"] == 20
    t = timing["invoke_ms"]
    assert 0 <= t["min"] <= t["median"] <= t["p95"]
    done = subprocess.run(
        [sys.executable, "-m", "lite_debug", "check", str(FIXTURES / "add_float.tflite"), "--repeat", "5"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert "5 runs: invoke min" in done.stdout and "p95" in done.stdout
