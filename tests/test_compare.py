"""Comparing a model with a reference: the metrics against hand computations, matching by name and
by structure, the first divergent layer of an int8 conversion made to lose precision at a known
layer, the reference kernels on a real model, expected outputs from a file, a Keras model and a
zipped SavedModel against their conversions, the output cap, Model Explorer files, and the
command's exit codes and JSON keys (a contract).

The models are built with TensorFlow's converter in a subprocess (once per session): a small
float Keras CNN whose second conv has an outlier channel (its weights ×100, and the next conv's
weights that read it ÷100: the float function is unchanged, since ReLU(100·z) = 100·ReLU(z)),
its float and full-int8 conversions (a representative dataset), a conversion of the same weights
with every layer renamed, and the model exported as a SavedModel, zipped, with its conversion.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lite_debug import inspect_model
from lite_debug.binding import bind
from lite_debug.compare import (
    Comparison, Expected, Model, Tolerance, compare, compare_samples, match, metrics,
)
from lite_debug.errors import BundleError
from lite_debug.records import Feed
from lite_debug.running import Limits, WorkerPool
from lite_debug.trace import trace
from test_browser import browser, server  # noqa: F401  (fixtures for the page's browser test)

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "real_models"
FACE = REAL / "face_detection_short_range.tflite"
PHOTO = REAL / "grace_hopper.jpg"

RECIPES = textwrap.dedent(
    '''
    import os
    import sys
    import zipfile
    from pathlib import Path

    import keras
    import numpy as np
    import tensorflow as tf

    out = Path(sys.argv[1])
    rng = np.random.default_rng(0)


    def make(names):
        inp = keras.Input((16, 16, 3), name=names[0])
        a = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name=names[1])(inp)
        b = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name=names[2])(a)
        c = keras.layers.Conv2D(8, 1, padding="same", name=names[3])(b)
        d = keras.layers.GlobalAveragePooling2D(name=names[4])(c)
        return keras.Model(inp, keras.layers.Dense(4, name=names[5])(d))


    keras.utils.set_random_seed(0)
    model = make(["x", "conv_a", "conv_outlier", "conv_mix", "pool", "head"])
    k, b = model.get_layer("conv_outlier").get_weights()
    k[..., 5] *= 100.0
    b[5] *= 100.0
    model.get_layer("conv_outlier").set_weights([k, b])
    k2, b2 = model.get_layer("conv_mix").get_weights()
    k2[:, :, 5, :] /= 100.0
    model.get_layer("conv_mix").set_weights([k2, b2])
    model.save(out / "outlier.keras")


    def convert(converter, quantize=False):
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: (
                [rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)] for _ in range(32))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


    (out / "float.tflite").write_bytes(convert(tf.lite.TFLiteConverter.from_keras_model(model)))
    (out / "int8.tflite").write_bytes(convert(tf.lite.TFLiteConverter.from_keras_model(model), quantize=True))
    renamed = make(["inp", "c1", "c2", "c3", "gap", "dense_out"])
    renamed.set_weights(model.get_weights())
    (out / "renamed.tflite").write_bytes(convert(tf.lite.TFLiteConverter.from_keras_model(renamed)))
    model.export(str(out / "saved"), verbose=False)
    (out / "saved.tflite").write_bytes(convert(tf.lite.TFLiteConverter.from_saved_model(str(out / "saved"))))
    with zipfile.ZipFile(out / "saved_model.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for root, _, files in os.walk(out / "saved"):
            for f in files:
                full = Path(root) / f
                z.write(full, "saved/" + str(full.relative_to(out / "saved")))
    '''
)
NAMES = ("float.tflite", "int8.tflite", "renamed.tflite", "saved.tflite", "outlier.keras", "saved_model.zip")


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("compare-models")
    done = subprocess.run(
        [sys.executable, "-c", RECIPES, str(directory)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
    )
    if done.returncode != 0:
        raise RuntimeError(f"Building the test models failed:\n{done.stderr[-3000:]}")
    assert all((directory / n).exists() for n in NAMES)
    np.save(directory / "x.npy", sample())
    return directory


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=2)
    yield p
    p.close()


def sample(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)


def model(directory: Path, name: str, x: np.ndarray | None = None, **kw) -> Model:
    data = (directory / name).read_bytes()
    spec = inspect_model(data)
    return Model(name=name, model_bytes=data, spec=spec, feed=bind(spec, sample() if x is None else x), **kw)


def need_real() -> None:
    if not FACE.exists() or not PHOTO.exists():
        msg = "real models missing: run `python scripts/fetch_real_models.py` (needs the package index)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def cli(*args, timeout=300) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "lite_debug", "compare", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return done.returncode, done.stdout, done.stderr


def hand_snr_cosine(r: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    r, c = r.astype(np.float64).ravel(), c.astype(np.float64).ravel()
    snr = 10 * math.log10(np.sum(r ** 2) / np.sum((c - r) ** 2))
    cosine = float(np.dot(r, c) / (np.linalg.norm(r) * np.linalg.norm(c)))
    return snr, cosine


# -- the metrics ---------------------------------------------------------------------------------------


def test_metrics_match_a_hand_computation():
    r = np.array([1.0, 2.0, 3.0, 4.0])
    c = np.array([1.1, 2.0, 2.9, 4.0])
    m = metrics(r, c)
    assert m.count == 4 and m.max_abs == pytest.approx(0.1) and m.mean_abs == pytest.approx(0.05)
    assert m.max_rel == pytest.approx(0.1)  # 0.1 / 1.0 at the first element
    assert m.snr_db == pytest.approx(10 * math.log10(30.0 / 0.02))
    assert m.cosine == pytest.approx(float(np.dot(r, c) / (np.linalg.norm(r) * np.linalg.norm(c))))
    assert m.atol_needed == pytest.approx(0.1) and m.rtol_needed == pytest.approx(0.1)


@pytest.mark.parametrize("size", [1, 3, 4097, 70_000])
@pytest.mark.parametrize("tol", [Tolerance(), Tolerance(atol=1e-3), Tolerance(rtol=1e-2), Tolerance(atol=1e-4, rtol=1e-3)],
                         ids=["none", "atol", "rtol", "both"])
def test_the_one_pass_metrics_equal_numpys(size, tol, monkeypatch):
    """The compiled pass over a float32 pair (lite_debug/_fast.c) gives what the numpy chunks
    give: the same float32 arithmetic, so the same maxima and counts, and sums to float32's
    precision. After a ReLU (zeros in the reference, some shared, some not), and with NaN and
    infinities, where it hands over to the chunks."""
    from lite_debug import compare as C

    if C._fast is None:
        pytest.skip("lite_debug._fast is not built here (no C compiler at install)")
    rng = np.random.default_rng(size)
    r = np.maximum(rng.standard_normal((size, 1)), 0.0).astype(np.float32)
    c = (r * (1 + rng.uniform(-0.02, 0.02, r.shape)) + rng.standard_normal(r.shape) * 1e-3).astype(np.float32)
    c[r == 0] *= rng.random(int((r == 0).sum())) < 0.5  # half the zeros shared
    cases = [(r, c)]
    if size > 3:
        bad = c.copy()
        bad[size // 2, 0] = np.nan
        cases += [(r, bad), (np.where(np.arange(size)[:, None] == 2, np.float32(np.inf), r), c)]
    for a, b in cases:
        fast = C.metrics(a, b, tol)
        monkeypatch.setattr(C, "_fast", None)
        slow = C.metrics(a, b, tol)
        monkeypatch.undo()
        for k in ("count", "nonfinite", "outside", "max_abs", "max_rel", "atol_needed", "rtol_needed"):
            assert getattr(fast, k) == getattr(slow, k), k
        for k in ("mean_abs", "cosine", "snr_db", "spread"):
            assert getattr(fast, k) == pytest.approx(getattr(slow, k), rel=1e-5, abs=1e-12), k
    # The reference's channel spread (largest channel RMS over the median's), through the
    # compiled sums of squares per channel and through numpy.
    x = (rng.standard_normal((1, max(size // 8, 1), 8)) * np.arange(1, 9)).astype(np.float32)
    fast = C._spread(x)
    monkeypatch.setattr(C, "_fast", None)
    assert fast == pytest.approx(C._spread(x), rel=1e-5) and fast > 1.0


@pytest.mark.parametrize("dtype, zero_point", [(np.int8, -3), (np.uint8, 128)])
def test_a_quantized_layer_compares_from_its_integers_as_from_its_dequantized_values(dtype, zero_point, monkeypatch):
    """A comparison's layers: a candidate quantized per tensor goes through the one-pass kernel
    from its integers (no dequantized copy), with the numbers that dequantizing first gives."""
    from lite_debug import _protocol as P
    from lite_debug import compare as C
    from lite_debug.quantization import dequantize
    from lite_debug.records import Quantization

    if C._fast is None:
        pytest.skip("lite_debug._fast is not built here (no C compiler at install)")
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    raw = rng.integers(info.min, info.max + 1, (1, 40, 40, 8)).astype(dtype)
    real = dequantize(raw, Quantization(scale=(0.02,), zero_point=(zero_point,)))
    ref = (real + rng.standard_normal(real.shape).astype(np.float32) * 0.01).astype(np.float32)
    r = P.Output(index=1, name="", value=ref)
    c = P.Output(index=2, name="", value=raw, scales=(0.02,), zero_points=(zero_point,))
    for tol in (Tolerance(), Tolerance(atol=0.01, rtol=0.01)):
        fast = C._layer_metrics(r, c, tol)
        assert fast == C.metrics(ref, real, tol)
        monkeypatch.setattr(C, "_fast", None)
        slow = C._layer_metrics(r, c, tol)
        monkeypatch.undo()
        for k in ("count", "outside", "max_abs", "max_rel", "atol_needed", "rtol_needed"):
            assert getattr(fast, k) == getattr(slow, k), k
        for k in ("mean_abs", "cosine", "snr_db", "spread"):
            assert getattr(fast, k) == pytest.approx(getattr(slow, k), rel=1e-5), k
    # A NaN in the reference: the kernel's sums say so, and the numpy path counts it.
    ref[0, 0, 0, 0] = np.nan
    assert C._layer_metrics(P.Output(index=1, name="", value=ref), c, Tolerance()).nonfinite == 1


def test_the_needed_tolerances_are_the_smallest_that_pass():
    rng = np.random.default_rng(3)
    r = rng.standard_normal(1000)
    c = r + rng.standard_normal(1000) * 0.01
    for tol in (Tolerance(rtol=1e-3), Tolerance(atol=1e-3), Tolerance()):
        m = metrics(r, c, tol)
        rtol, atol = tol.rtol or 0.0, tol.atol or 0.0
        assert np.isclose(c, r, rtol=rtol, atol=m.atol_needed * (1 + 1e-9) + 1e-15).all()
        assert not np.isclose(c, r, rtol=rtol, atol=m.atol_needed * 0.99).all()
        assert np.isclose(c, r, atol=atol, rtol=m.rtol_needed * (1 + 1e-9)).all()
        assert not np.isclose(c, r, atol=atol, rtol=m.rtol_needed * 0.99).all()


def test_zeros_nan_and_infinities():
    z = np.zeros(8)
    same = metrics(z, z)
    assert same.snr_db == math.inf and same.cosine == 1.0 and same.max_rel == 0.0
    lost = metrics(z, np.ones(8))
    assert lost.snr_db == -math.inf and lost.cosine == 0.0 and lost.max_rel == math.inf
    nan_where_nan = metrics(np.array([1.0, np.nan, np.inf]), np.array([1.0, np.nan, np.inf]))
    assert nan_where_nan.nonfinite == 0 and nan_where_nan.count == 1 and Tolerance().failed(nan_where_nan) is None
    nan_alone = metrics(np.array([1.0, 2.0]), np.array([1.0, np.nan]))
    assert nan_alone.nonfinite == 1 and Tolerance().failed(nan_alone) == ("nonfinite", 1.0)
    with pytest.raises(ValueError, match="4 values and the candidate 3"):
        metrics(np.zeros(4), np.zeros(3))


def test_relative_error_after_a_relu_skips_the_zeros_both_share(recwarn):
    # Half a ReLU's output is 0: where the candidate is 0 too there is no relative error, and
    # where it is not, no relative tolerance can pass. No warning of a division by zero.
    rng = np.random.default_rng(5)
    r = np.maximum(rng.standard_normal(70_000), 0.0).astype(np.float32)  # two chunks
    c = (r * (1 + rng.uniform(-0.02, 0.02, r.size))).astype(np.float32)
    nz = r != 0
    m = metrics(r, c)
    expected = float(np.max(np.abs(c[nz] - r[nz]) / np.abs(r[nz])))
    assert m.max_rel == pytest.approx(expected, rel=1e-6) and m.rtol_needed == m.max_rel
    assert m.outside == int(np.count_nonzero(c != r))
    assert m.mean_abs == pytest.approx(float(np.abs(c.astype(np.float64) - r).mean()), rel=1e-5)
    with_atol = metrics(r, c, Tolerance(atol=1e-4))
    over = np.abs(c - r) > 1e-4
    assert with_atol.rtol_needed == pytest.approx(float(np.max((np.abs(c - r)[over] - 1e-4) / np.abs(r[over]))), rel=1e-5)
    c[np.flatnonzero(~nz)[0]] = 0.5  # a difference where the reference is 0
    assert metrics(r, c).max_rel == math.inf and metrics(r, c, Tolerance(atol=1e-4)).rtol_needed == math.inf
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_large_arrays_are_compared_in_chunks_exactly():
    rng = np.random.default_rng(0)
    r = rng.standard_normal(2_500_000).astype(np.float32)
    c = (r + rng.standard_normal(r.size).astype(np.float32) * 0.05).astype(np.float32)
    m = metrics(r, c)
    snr, cosine = hand_snr_cosine(r, c)
    assert m.snr_db == pytest.approx(snr, rel=1e-5) and m.cosine == pytest.approx(cosine, rel=1e-6)
    assert m.max_abs == pytest.approx(float(np.abs(c.astype(np.float64) - r).max()))


def test_a_tolerance_says_which_criterion_fails_first():
    m = metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.3]))
    assert Tolerance().failed(m) is None  # SNR 26 dB, cosine 0.999
    assert Tolerance(min_snr=30).failed(m)[0] == "snr_db"
    assert Tolerance(min_cosine=0.9999).failed(m)[0] == "cosine"
    assert Tolerance(atol=0.1).failed(m) == ("atol_needed", pytest.approx(0.3))
    assert Tolerance(rtol=0.05).failed(m) == ("rtol_needed", pytest.approx(0.1))
    assert Tolerance(atol=0.3 + 1e-9).failed(m) is None
    with pytest.raises(ValueError):
        Tolerance(atol=-1.0)


# -- matching ------------------------------------------------------------------------------------------


def test_a_quantized_conversion_matches_by_name_and_skips_quantize_ops(models):
    f, q = inspect_model((models / "float.tflite").read_bytes()), inspect_model((models / "int8.tflite").read_bytes())
    m = match(f, q)
    assert {p.matched_by for p in m.pairs} == {"name"} and len(m.pairs) == 6
    assert not [u for u in m.unmatched if u.model == "reference"]
    why = {u.op.split()[-1]: u.why for u in m.unmatched}
    assert "QUANTIZE op, which matching skips" in why["QUANTIZE"]
    assert "compared through" in why["FULLY_CONNECTED"] and "DEQUANTIZE" in why["FULLY_CONNECTED"]


def test_renamed_layers_match_by_structure(models):
    f, r = inspect_model((models / "float.tflite").read_bytes()), inspect_model((models / "renamed.tflite").read_bytes())
    m = match(f, r)
    by = {f.graph.main.tensors[p.reference].name: (r.graph.main.tensors[p.candidate].name, p.matched_by) for p in m.pairs}
    assert len(m.pairs) == 6 and not m.unmatched
    conv = next(k for k in by if "conv_mix" in k)
    c3 = r.graph.main.tensors[r.graph.main.operators[2].outputs[0]].name  # the third conv's output
    assert "/c3_1/" in c3 and by[conv] == (c3, "structure")
    assert sum(1 for _, how in by.values() if how == "structure") >= 4


def test_a_model_matches_itself_tensor_for_tensor(models):
    f = inspect_model((models / "int8.tflite").read_bytes())
    m = match(f, f)
    assert all(p.reference == p.candidate for p in m.pairs) and not m.unmatched and len(m.pairs) == 8  # the input, 7 ops


# -- two models, layer by layer ---------------------------------------------------------------------------


def test_the_outlier_channel_layer_is_the_first_divergent_and_its_figures_are_right(models, pool):
    x = sample()
    ref, cand = model(models, "float.tflite", x), model(models, "int8.tflite", x)
    c = compare(ref, cand, pool=pool)
    assert c.ran and not c.ok and c.layers and c.passes == 1
    first = c.first_divergent
    assert first is not None and "conv_mix" in first.reference and first.metric == "snr_db"
    # The outlier tensor itself keeps its SNR (its power is the outlier channel's), the mix loses it.
    rows = {t.reference: t for t in c.tensors}
    outlier = next(t for name, t in rows.items() if "conv_outlier" in name)
    assert outlier.within and outlier.metrics.spread > 50
    assert first.origin == "introduced" and first.previous == outlier.reference
    assert "outlier channel" in first.message
    # By hand: the two tensors fetched with the trace, SNR and cosine with numpy.
    mix = rows[first.reference]
    r = trace(ref.model_bytes, ref.spec, ref.feed, pool=pool, fetch=[mix.reference_index]).values[mix.reference_index]
    q = trace(cand.model_bytes, cand.spec, cand.feed, pool=pool, fetch=[mix.candidate_index]).values[mix.candidate_index]
    assert q.raw.dtype == np.int8  # dequantized for the comparison
    snr, cosine = hand_snr_cosine(r.values, q.values)
    # The comparison sums in float32 (a chunk at a time); float64 by hand agrees to float32's precision.
    assert first.value == pytest.approx(snr, rel=1e-6) and mix.metrics.snr_db == pytest.approx(snr, rel=1e-6)
    assert mix.metrics.cosine == pytest.approx(cosine, rel=1e-6)
    assert snr < 20 and outlier.metrics.snr_db > 25
    # The output diverges too: the comparison is not ok.
    (out,) = c.outputs
    assert out.within is False and out.matched_by == "name"


def test_a_model_against_itself_has_nothing_divergent(models, pool):
    c = compare(model(models, "int8.tflite"), model(models, "int8.tflite"), pool=pool)
    assert c.ok and c.first_divergent is None and not c.unmatched
    assert all(t.metrics.snr_db == math.inf and t.within for t in c.tensors) and len(c.tensors) == 8


def test_renamed_layers_compare_equal_by_structure(models, pool):
    c = compare(model(models, "float.tflite"), model(models, "renamed.tflite"), pool=pool)
    assert c.ok and c.first_divergent is None
    assert sum(1 for t in c.tensors if t.matched_by == "structure") >= 4
    assert all(t.metrics is not None and t.metrics.max_abs < 1e-5 for t in c.tensors)


def test_passes_stay_under_the_output_cap_and_give_the_same_figures(models, pool):
    x = sample()
    whole = compare(model(models, "float.tflite", x), model(models, "int8.tflite", x), pool=pool)
    assert whole.passes == 1
    # Room for two or three of the 8-10 KiB feature maps a trace, beyond the outputs and a MiB of slack.
    small = WorkerPool(size=2, limits=Limits(output_bytes=(1 << 20) + 24_000))
    try:
        split = compare(model(models, "float.tflite", x), model(models, "int8.tflite", x), pool=small)
    finally:
        small.close()
    assert split.passes >= 2 and len(split.tensors) == len(whole.tensors)
    for a, b in zip(whole.tensors, split.tensors):
        assert a.reference == b.reference and a.metrics.snr_db == b.metrics.snr_db
    # A cap that no feature map fits: those are left out, and their rows say why.
    tiny = WorkerPool(size=2, limits=Limits(output_bytes=(1 << 20) + 4_000))
    try:
        part = compare(model(models, "float.tflite", x), model(models, "int8.tflite", x), pool=tiny)
    finally:
        tiny.close()
    left = [t for t in part.tensors if t.metrics is None]
    assert left and all("Left out" in t.note and "output cap" in t.note for t in left)
    assert any("left out" in n for n in part.notes)
    assert all(t.metrics is not None for t in part.tensors if t.shape == (1, 8) or t.shape == (1, 4))


def test_a_failed_run_is_a_side_not_a_comparison(models, pool):
    bad = model(models, "int8.tflite", np.zeros((1, 8, 8, 3), np.float32))
    c = compare(model(models, "float.tflite"), bad, pool=pool)
    assert not c.ran and not c.ok and c.candidate.run.status == "error" and not c.tensors


# -- the reference kernels on a real model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def face():
    need_real()
    from lite_debug.diagnosis import fix_all
    from lite_debug.loading import load_data

    data = FACE.read_bytes()
    spec = inspect_model(data)
    (photo,) = load_data(PHOTO.name, PHOTO.read_bytes())
    return data, spec, fix_all(spec, bind(spec, photo)).feed


def test_the_delegate_against_the_reference_kernels_on_a_real_model(face, pool):
    data, spec, feed = face
    ref = Model("face.tflite", data, spec, feed, kernels="reference")
    cand = Model("face.tflite", data, spec, feed)
    c = compare(ref, cand, pool=pool)
    assert c.ok and c.reference.kind == "reference_kernels" and "BUILTIN_REF" in c.reference.description
    assert len(c.tensors) == 91 and {t.matched_by for t in c.tensors} == {"name"}
    assert all(o.metrics.snr_db > 60 and o.metrics.cosine > 0.9999 for o in c.outputs)
    # Not the same arithmetic: the reference kernels give other float values than XNNPACK.
    assert any(t.metrics.max_abs > 0 for t in c.tensors)


def test_values_read_in_place_in_the_workers_give_the_figures_of_copies_pass_after_pass(face):
    """With a worker for each model, a pass's values are read in the workers' shared regions
    (the face detector's feature maps are hundreds of KB each: none goes inline), and the next
    pass writes there again: split into passes, and through one worker (copies), the figures
    are the same."""
    data, spec, feed = face
    pair = (Model("face.tflite", data, spec, feed, kernels="reference"), Model("face.tflite", data, spec, feed))
    other = Feed({k: np.zeros_like(v) for k, v in feed.arrays.items()})
    others = (Model("face.tflite", data, spec, other, kernels="reference"), Model("face.tflite", data, spec, other))
    results = []
    for size, limits in ((2, Limits()), (2, Limits(output_bytes=3 << 20)), (1, Limits())):
        p = WorkerPool(size=size, limits=limits)
        try:
            compare(*others, pool=p)  # (a worker's first large reply comes inline, and its region grows)
            results.append(compare(*pair, pool=p))
            # What the comparison keeps (its runs' outputs) is its own: other data through the
            # same workers leaves it as it was.
            compare(*others, pool=p)
        finally:
            p.close()
    whole, split, copied = results
    assert whole.passes == 1 and split.passes >= 3 and copied.passes == 1
    assert len(whole.tensors) == len(split.tensors) == len(copied.tensors) == 91
    assert any(t.metrics.max_abs > 0 for t in whole.tensors)
    for a, b, c in zip(whole.tensors, split.tensors, copied.tensors):
        assert a.reference == b.reference == c.reference
        assert a.metrics == b.metrics == c.metrics, a.reference
    for a, b, c in zip(whole.outputs, split.outputs, copied.outputs):
        assert a.metrics == b.metrics == c.metrics, a.reference
    for a, b in zip(whole.output_values, copied.output_values):
        assert a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    for side in ("reference", "candidate"):
        for a, b in zip(getattr(whole, side).run.outputs, getattr(copied, side).run.outputs):
            assert a.name == b.name and np.array_equal(a.values, b.values) and np.array_equal(a.raw, b.raw)


# -- expected outputs -----------------------------------------------------------------------------------------


def test_expected_outputs_from_a_file(models, pool, tmp_path):
    cand = model(models, "float.tflite")
    run = pool.run(cand.model_bytes, cand.spec, cand.feed)
    (y,) = [o.values for o in run.outputs]
    c = compare(Expected("y.npy", [y]), cand, pool=pool)
    assert c.ok and c.outputs[0].metrics.snr_db == math.inf and c.reference.kind == "expected"
    noisy = y + np.float32(0.5) * np.abs(y).max()
    c = compare(Expected("y.npz", {"arr_0": noisy}), cand, pool=pool)
    assert not c.ok and c.outputs[0].within is False
    # A name the model's signature gives the output pairs by name.
    c = compare(Expected("y.npz", {"output_0": y}), cand, pool=pool)
    assert c.ok and c.outputs[0].matched_by == "name"


def test_expected_outputs_over_a_batch_give_per_sample_figures(models, pool):
    cand = model(models, "float.tflite")
    xs = [sample(s) for s in range(4)]
    ys = [pool.run(cand.model_bytes, cand.spec, bind(cand.spec, x)).outputs[0].values for x in xs]
    stack = np.stack(ys)
    stack[2] += 1.0  # one sample off
    c = compare_samples(Expected("y.npy", [stack]), cand, [bind(cand.spec, x) for x in xs], pool=pool)
    assert c.samples is not None and c.samples.within == (True, True, False, True) and not c.ok
    d = c.samples.distribution(c.samples.outputs[0], "snr_db")
    assert d["max"] == math.inf and d["min"] < 20


# -- Keras and SavedModel references ----------------------------------------------------------------------------


def test_a_keras_model_against_its_conversions(models, pool):
    from lite_debug.reference import open_reference

    keras = open_reference("outlier.keras", (models / "outlier.keras").read_bytes())
    assert keras.kind == "keras"
    c = compare(keras, model(models, "float.tflite"), pool=pool)
    assert c.ok and c.reference.kind == "keras" and "TensorFlow" in c.reference.description
    assert c.outputs[0].metrics.snr_db > 80 and not c.layers
    c = compare(keras, model(models, "int8.tflite"), pool=pool)
    assert c.ran and not c.ok and c.outputs[0].metrics.snr_db < 20


def test_a_zipped_saved_model_against_its_conversion(models, pool):
    from lite_debug.reference import open_reference

    saved = open_reference("saved_model.zip", (models / "saved_model.zip").read_bytes())
    assert saved.kind == "saved_model"
    c = compare(saved, model(models, "saved.tflite"), pool=pool)
    assert c.ok and c.outputs[0].matched_by == "name" and c.outputs[0].reference == "output_0"


def test_tensorflow_is_imported_in_the_worker_only(models):
    script = textwrap.dedent(f'''
        import sys, json
        from lite_debug import inspect_model
        from lite_debug.binding import bind
        from lite_debug.compare import Model, compare
        from lite_debug.reference import open_reference
        import numpy as np
        data = open({str(models / "float.tflite")!r}, "rb").read()
        spec = inspect_model(data)
        keras = open_reference("m.keras", open({str(models / "outlier.keras")!r}, "rb").read())
        c = compare(keras, Model("m", data, spec, bind(spec, np.zeros((1, 16, 16, 3), np.float32))))
        print(json.dumps({{"ok": c.ok, "tf": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}}))
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"ok": True, "tf": False, "keras": False}


def test_a_keras_model_with_a_lambda_layer_is_refused_before_keras_loads_it(models, pool, tmp_path):
    """A Lambda layer holds bytecode (or names a function): the worker refuses the file before
    load_model reads it (reference_safety), and compare raises ModelLoadError with the sentence."""
    from lite_debug.errors import ModelLoadError
    from lite_debug.reference import open_reference

    script = textwrap.dedent(f'''
        import keras
        inp = keras.Input((16, 16, 3))
        out = keras.layers.Lambda(lambda t: t * 2.0)(inp)
        keras.Model(inp, keras.layers.GlobalAveragePooling2D()(out)).save({str(tmp_path / "lambda.keras")!r})
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    ref = open_reference("lambda.keras", (tmp_path / "lambda.keras").read_bytes())
    with pytest.raises(ModelLoadError, match=r"^The Keras model was not loaded: its config holds a Lambda layer"):
        compare(ref, model(models, "float.tflite"), pool=pool)


def test_reference_files_are_told_by_content(models):
    from lite_debug.errors import ModelLoadError
    from lite_debug.reference import open_reference, reference_kind

    assert reference_kind((models / "outlier.keras").read_bytes()) == "keras"
    assert reference_kind((models / "saved_model.zip").read_bytes()) == "saved_model"
    assert reference_kind(b"\x89HDF\r\n\x1a\n" + b"\0" * 100) == "h5"
    assert reference_kind((models / "float.tflite").read_bytes()) is None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(ModelLoadError, match="neither a Keras model"):
        open_reference("notes.zip", buf.getvalue())


def test_a_saved_model_archive_is_read_with_the_archive_checks():
    from lite_debug.archive import read_files

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("m/saved_model.pb", b"pb")
        z.writestr("m/variables/variables.index", b"ix")
        z.writestr("__MACOSX/m/._saved_model.pb", b"junk")
    files = {f.path: f.data for f in read_files("m.zip", buf.getvalue())}
    assert files == {"m/saved_model.pb": b"pb", "m/variables/variables.index": b"ix"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("m/../../escape.pb", b"x")
    with pytest.raises(BundleError, match=r"climbs out"):
        read_files("evil.zip", buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("m/link")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(BundleError, match="symbolic link"):
        read_files("link.zip", buf.getvalue())


# -- Model Explorer ------------------------------------------------------------------------------------------


def test_model_explorer_files_are_keyed_by_each_models_names(models, pool):
    from lite_debug.model_explorer import SNR_CAP_DB, comparison_node_data, dumps

    ref, cand = model(models, "float.tflite"), model(models, "renamed.tflite")
    c = compare(ref, model(models, "int8.tflite"), pool=pool)
    data = comparison_node_data(c, ref.spec, "reference")
    (graph,) = data
    results = data[graph]["results"]
    assert graph == "serving_default" or graph == "main"
    assert set(results) == {t.reference for t in c.tensors}
    assert results["serving_default_x:0"]["value"] == SNR_CAP_DB  # equal inputs: an infinite SNR, cut
    mix = c.first_divergent.reference
    assert results[mix]["value"] == pytest.approx(c.first_divergent.value)
    assert data[graph]["gradient"][0]["bgColor"] == "#d62728"  # low SNR red
    json.loads(dumps(data))
    c2 = compare(ref, cand, pool=pool)
    on_candidate = comparison_node_data(c2, cand.spec, "candidate", "max_abs")
    keys = set(next(iter(on_candidate.values()))["results"])
    assert keys == {t.candidate for t in c2.tensors} and any("/c3_1/" in k for k in keys)
    with pytest.raises(ValueError):
        comparison_node_data(c2, cand.spec, "candidate", "median")


# -- the command --------------------------------------------------------------------------------------------

KEYS = {"reference", "candidate", "outputs", "tensors", "first_divergent", "tolerance"}
TENSOR_KEYS = {"reference", "candidate", "matched_by", "max_abs", "mean_abs", "max_rel", "cosine", "snr_db",
               "atol_needed", "rtol_needed"}


def test_cli_two_models_json_and_exit_1_at_the_outlier(models, tmp_path):
    code, out, err = cli(models / "float.tflite", models / "int8.tflite", models / "x.npy", "--json",
                         "--model-explorer", tmp_path / "me.json")
    assert code == 1, err
    d = json.loads(out)
    assert KEYS <= set(d) and d["tolerance"] == {"atol": None, "rtol": None, "min_snr": 20.0, "min_cosine": 0.99}
    assert all(TENSOR_KEYS <= set(t) for t in d["tensors"]) and all(TENSOR_KEYS <= set(o) for o in d["outputs"])
    assert set(d["first_divergent"]) >= {"reference", "candidate", "metric", "value"}
    assert "conv_mix" in d["first_divergent"]["reference"] and d["first_divergent"]["metric"] == "snr_db"
    assert d["tensors"][0]["snr_db"] == "inf"  # the input: equal values, an infinite SNR, as JSON allows
    assert d["model_explorer"] == [str(tmp_path / "me.json"), str(tmp_path / "me.candidate.json")]
    assert all(json.loads(Path(p).read_text()) for p in d["model_explorer"])


def test_cli_a_model_against_itself_exits_0(models):
    code, out, err = cli(models / "float.tflite", models / "float.tflite", models / "x.npy", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["first_divergent"] is None and all(t["within_tolerance"] for t in d["tensors"])


def test_cli_structure_matching_and_a_tolerance_from_the_options(models):
    code, out, err = cli(models / "float.tflite", models / "renamed.tflite", models / "x.npy", "--json",
                         "--atol", "1e-4", "--min-snr", "60")
    assert code == 0, err
    d = json.loads(out)
    assert d["tolerance"]["atol"] == 1e-4 and d["tolerance"]["min_snr"] == 60.0
    assert {t["matched_by"] for t in d["tensors"]} == {"name", "structure"}
    code, out, _ = cli(models / "float.tflite", models / "int8.tflite", models / "x.npy", "--json", "--outputs-only",
                       "--min-snr", "10", "--min-cosine", "0.9")
    assert code == 0 and json.loads(out)["tensors"] == []


def test_cli_the_reference_kernels_on_a_real_photo(face):
    code, out, err = cli(FACE, PHOTO, "--fix", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["reference"]["kind"] == "reference_kernels" and d["candidate"]["kind"] == "tflite"
    assert len(d["tensors"]) == 91 and [o["reference"] for o in d["outputs"]] == ["regressors", "classificators"]


def test_reference_kernels_that_cannot_run_a_mediapipe_model_say_what_to_compare_with(face):
    """The selfie segmenter's Convolution2DTransposeBias comes only with the default delegate:
    the reference kernels fail to prepare it, and the command says to pick another reference."""
    selfie = REAL / "selfie_segmentation.tflite"
    code, out, _ = cli(selfie, PHOTO, "--fix", "--outputs-only")
    assert code == 1
    assert "unresolved custom op: Convolution2DTransposeBias" in out
    assert "The reference kernels cannot run this model" in out and "Nothing was compared." in out
    code, out, _ = cli(selfie, PHOTO, "--fix", "--outputs-only", "--json")
    d = json.loads(out)
    assert d["within_tolerance"] is False and any("reference kernels cannot run" in n for n in d["notes"])


def test_cli_expected_outputs(models, pool, tmp_path):
    cand = model(models, "float.tflite")
    y = pool.run(cand.model_bytes, cand.spec, cand.feed).outputs[0].values
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "bad.npz", output_0=y * 2)
    code, out, err = cli(models / "float.tflite", models / "x.npy", "--expected", tmp_path / "y.npy", "--json")
    assert code == 0, err
    assert json.loads(out)["reference"]["kind"] == "expected"
    code, out, _ = cli(models / "float.tflite", models / "x.npy", "--expected", tmp_path / "bad.npz")
    assert code == 1 and "leave the tolerance" in out


def test_cli_a_keras_model_against_its_conversion(models):
    code, out, err = cli(models / "outlier.keras", models / "float.tflite", models / "x.npy")
    assert code == 0, err
    assert "Keras model outlier.keras, run with TensorFlow" in out and "within the tolerance" in out


@pytest.mark.parametrize("args, says", [
    (["{m}/x.npy"], "neither a TFLite model"),
    (["{m}/float.tflite", "{m}/int8.tflite", "--expected", "{m}/x.npy"], "give one .tflite model"),
    (["{m}/outlier.keras", "{m}/x.npy"], "needs the .tflite model"),
    (["{m}/float.tflite", "--atol", "-1"], "at least 0"),
    (["{m}/float.tflite", "{m}/missing.npy"], "does not exist"),
])
def test_cli_unusable_input_exits_2_with_one_json_object(models, args, says):
    code, out, _ = cli(*[a.format(m=models) for a in args], "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert says in error["message"] and error["type"] == "usage"


def test_cli_escapes_names_from_the_model(tmp_path, models):
    """A tensor name with a terminal escape in it reaches the terminal as text, in the tables
    and in the sentence about the first divergent layer."""
    from fuzzing import pack_model, unpack_model

    # conv_mix's output is op 2's in the float model and op 3's in the int8 one (after its QUANTIZE).
    for path, source, op in (("ref", "float.tflite", 2), ("cand", "int8.tflite", 3)):
        mm = unpack_model((models / source).read_bytes())
        sub = mm.subgraphs[0]
        sub.tensors[sub.operators[op].outputs[0]].name = b"mix\x1b]0;pwned\x07\x1b[2J\x1b[32mALL WITHIN TOLERANCE\x1b[0m"
        (tmp_path / f"{path}.tflite").write_bytes(pack_model(mm))
    code, out, _ = cli(tmp_path / "ref.tflite", tmp_path / "cand.tflite", models / "x.npy")
    assert code == 1
    assert "\x1b" not in out and "\x07" not in out
    assert "First divergent layer: Tensor 'mix\\x1b]0;pwned" in out


def test_a_comparison_is_json_ready(models, pool):
    c: Comparison = compare(model(models, "float.tflite"), model(models, "int8.tflite"), pool=pool)
    text = json.dumps(c.to_dict(), allow_nan=False)
    assert "first_divergent" in text


# -- the page ------------------------------------------------------------------------------------------------


@pytest.fixture
def page_frame(monkeypatch):
    from ui_helpers import keep_the_frame

    keep_the_frame(monkeypatch)
    yield
    from ui_helpers import reset_pool

    reset_pool()


def workspace(models, name: str):
    from lite_debug.session import Workspace

    ws = Workspace.open(name, (models / name).read_bytes())
    ws.set_feed(Feed({ws.inputs[0].name: sample()}), source="test")
    return ws


def test_page_another_model_shows_the_first_divergent_layer(models, page_frame):
    from ui_helpers import app, texts, upload

    at = app(workspace(models, "int8.tflite"), page="compare", timeout=180)
    assert not at.exception and at.main.title[0].value == "Compare"
    at.radio(key="compare-kind").set_value("tflite").run()
    assert at.button(key="compare-run").disabled  # nothing to compare with yet
    at.file_uploader(key="compare-ref-tflite").set_value(upload("float.tflite", (models / "float.tflite").read_bytes())).run()
    at.button(key="compare-run").click().run()
    assert not at.exception
    metrics_shown = {m.label: m.value for m in at.main.metric}
    assert metrics_shown["Outputs within tolerance"] == "0 of 1" and metrics_shown["First divergent layer"] == "#3"
    assert "conv_mix" in texts(at.main.warning) and "outlier channel" in texts(at.main.warning)
    assert "leave the tolerance" in texts(at.main.error)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    depth = next(c for c in charts if "execution order" in c["layout"]["title"]["text"])
    assert any(a.get("text") == "first divergent" for a in depth["layout"].get("annotations", []))
    table = at.dataframe[1].value  # the outputs, then the layers
    assert list(table["within"]).count("no") >= 1 and len(table) == 6
    assert len(at.get("download_button")) == 2


def test_page_reference_kernels_and_expected_outputs(models, page_frame, tmp_path):
    from ui_helpers import app, npy, texts, upload

    at = app(workspace(models, "float.tflite"), page="compare", timeout=180)
    at.button(key="compare-run").click().run()  # the reference kernels, the default
    assert not at.exception
    assert "Every output is within the tolerance" in texts(at.main.success)
    assert "BUILTIN_REF" in texts(at.main.markdown)
    ws = at.session_state["ws"]
    y = WorkerPool(size=1)
    try:
        out = y.run(ws.model_bytes, ws.spec, ws.feed).outputs[0].values
    finally:
        y.close()
    at.radio(key="compare-kind").set_value("expected").run()
    at.file_uploader(key="compare-expected").set_value(upload("y.npy", npy(out + 1.0))).run()
    at.button(key="compare-run").click().run()
    assert not at.exception and "leave the tolerance" in texts(at.main.error)
    assert {m.label: m.value for m in at.main.metric}["Outputs within tolerance"] == "0 of 1"


def test_page_says_what_to_compare_with_when_the_reference_kernels_cannot_run_the_model(face, page_frame):
    """The selfie segmenter on a real photo: its MediaPipe custom op comes only with the default
    delegate, so the reference kernels fail; the page says what to do instead, and leaves out the
    interpreter's generic fix (choose the default resolver), which is not the user's to make here."""
    from lite_debug.session import Workspace
    from ui_helpers import app, texts

    ws = Workspace.open("selfie_segmentation.tflite", (REAL / "selfie_segmentation.tflite").read_bytes())
    ws.load_files([("grace_hopper.jpg", PHOTO.read_bytes())])
    ws.apply_all()
    assert not [m for m in ws.mismatches if m.severity == "error"]
    at = app(ws, page="compare", timeout=180)
    at.button(key="compare-run").click().run()
    assert not at.exception
    assert "The reference kernels cannot run this model" in texts(at.main.warning)
    assert "Convolution2DTransposeBias" in texts(at.main.error)
    shown = texts(at.main.markdown)
    assert "Cause." in shown and "BUILTIN_WITHOUT_DEFAULT_DELEGATES" not in shown
    assert not at.main.metric  # nothing compared, no figures


@pytest.mark.browser
def test_page_in_chromium(models, browser, server):  # noqa: F811  (test_browser's fixtures)
    """The page in a real browser: upload the int8 model and data, compare it with the float
    model; screenshots in test-artifacts/browser/ (light and dark)."""
    import test_browser as B

    for scheme in ("light", "dark"):
        context = browser.new_context(viewport=B.VIEWPORT, color_scheme=scheme, reduced_motion="reduce")
        context.set_default_timeout(B.WAIT_MS)
        try:
            page = context.new_page()
            page.goto(server)
            page.get_by_role("heading", name="lite-debug").wait_for()
            B.settle(page)
            B._upload_model(page, models / "int8.tflite")
            B._upload_data(page, models / "x.npy")
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare").click()
            page.get_by_role("heading", name="Compare").wait_for()
            page.get_by_text("Another .tflite model").click()
            uploader = page.get_by_test_id("stFileUploader").filter(has_text="The reference model")
            uploader.locator("input[type=file]").set_input_files(str(models / "float.tflite"))
            B.settle(page)
            page.get_by_role("button", name="Compare").click()
            page.get_by_text("is the first, in the reference's execution order").wait_for()
            B.settle(page)
            assert "conv_mix" in page.get_by_test_id("stMain").inner_text()
            B.shot(page, f"70-compare-outcome-{scheme}")
            B.shot(page, f"71-compare-outputs-{scheme}", show=page.get_by_role("heading", name="Outputs"))
            B.shot(page, f"72-compare-layers-{scheme}", show=page.get_by_role("heading", name="Layers"))
        finally:
            context.close()
