"""Exported scripts: they run with numpy and ai-edge-litert alone and reproduce lite-debug's run."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lite_debug.binding import bind
from lite_debug.diagnosis import diagnose, fix_all
from lite_debug.export import (
    EMBED_LIMIT, ExportedScript, _image_helper, _resize_helper, make_script, npz_bytes, script_for_display,
)
from lite_debug.fixes import apply_fix, make_fix, resize_image
from lite_debug.gallery import example, examples
from lite_debug.inspection import inspect_model
from lite_debug.loading import load_data
from lite_debug.records import Feed
from lite_debug.running import Limits, WorkerPool, run

from specs import model, tensor
from test_inspection import REAL, need_real_models

RUN_MARK = "\n# 3. Run the model.\n"


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=1, limits=Limits(run_seconds=20, load_seconds=20))
    yield p
    p.close()


def _fixes(ex, spec, feed):
    if ex.id == "reshape-breaks-on-resize":
        # Resizing the batch breaks this model's Reshape; keeping one sample is the fix that runs.
        (m,) = [m for m in diagnose(spec, feed, ex.signature) if m.kind == "dynamic"]
        return [next(f for f in m.fixes if f.kind == "take_sample")]
    return list(fix_all(spec, feed, ex.signature).applied)


def _prepare(ex_id):
    ex = example(ex_id)
    spec = inspect_model(ex.model_bytes)
    original = bind(spec, ex.broken_inputs(), ex.signature)
    applied = _fixes(ex, spec, original)
    fixed = original
    for fix in applied:
        fixed = apply_fix(fixed, fix)
    return ex, spec, original, applied, fixed


def _run_script(script: Path, *args: str | Path) -> subprocess.CompletedProcess:
    # Run from another folder, so the script finds its files by its own location, not the cwd.
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True, text=True, timeout=120, cwd=script.parent.parent,
    )


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _assert_same_outputs(saved: dict[str, np.ndarray], result) -> None:
    assert result.ok, result.error_message
    assert sorted(saved) == sorted(o.name for o in result.outputs)
    for out in result.outputs:
        got = saved[out.name]
        assert got.dtype == out.raw.dtype and got.shape == out.raw.shape, out.name
        if got.dtype.kind in "iub":
            assert np.array_equal(got, out.raw), out.name
        else:
            assert np.allclose(got, out.raw, rtol=1e-5, atol=1e-6), out.name


@pytest.mark.parametrize(
    "ex_id",
    [
        "image-size",
        "uint8-float-data",
        "int8-uint8-image",
        "two-inputs-swapped",
        "two-signatures-missing-batch",
        "segmentation-nchw",
        "reshape-breaks-on-resize",
    ],
)
def test_script_reproduces_the_fixed_run(ex_id, tmp_path, pool):
    ex, spec, original, applied, fixed = _prepare(ex_id)
    assert applied, "every example here needs at least one fix"
    exported = make_script(
        model_filename=ex.model_file, original=original, applied=applied, spec=spec, signature=ex.signature
    )
    assert exported.inputs_npz is None  # small inputs are embedded
    folder = tmp_path / "export"
    script = exported.write(folder)
    model_path = tmp_path / "elsewhere.tflite"
    model_path.write_bytes(ex.model_bytes)
    out_path = tmp_path / "out.npz"

    done = _run_script(script, "--model", model_path, "--out", out_path)

    assert done.returncode == 0, done.stderr
    expected = run(ex.model_bytes, fixed, ex.signature, spec=spec, pool=pool)
    _assert_same_outputs(_load_npz(out_path), expected)
    for out in expected.outputs:
        assert f"output {out.name!r}: shape {list(out.shape)}, dtype {out.dtype}" in done.stdout
    for name, x in fixed.arrays.items():
        assert f"fed    {name!r}: shape {list(x.shape)}, dtype {x.dtype}" in done.stdout
    for fix in applied:
        assert fix.code in exported.text or fix.kind == "resize_input"


def test_large_inputs_go_to_an_npz_next_to_the_script(tmp_path, pool):
    ex, spec, original, applied, fixed = _prepare("image-size")
    exported = make_script(
        model_filename=ex.model_file, original=original, applied=applied, spec=spec, embed_limit=1000
    )
    assert exported.inputs_npz is not None
    assert "embedded_array" not in exported.text and "inputs.npz" in exported.text
    with np.load(io.BytesIO(exported.inputs_npz), allow_pickle=False) as npz:
        (name,) = original.arrays
        assert np.array_equal(npz[name], original.arrays[name])  # the data as given, not as fixed
    folder = tmp_path / "export"
    script = exported.write(folder)
    (folder / ex.model_file).write_bytes(ex.model_bytes)

    done = _run_script(script)  # no arguments: the model and the outputs next to the script

    assert done.returncode == 0, done.stderr
    expected = run(ex.model_bytes, fixed, spec=spec, pool=pool)
    _assert_same_outputs(_load_npz(folder / "outputs.npz"), expected)


def test_script_fails_where_lite_debug_fails(tmp_path, pool):
    # Resizing the batch of this model breaks its Reshape: the script reproduces the failure.
    ex = example("reshape-breaks-on-resize")
    spec = inspect_model(ex.model_bytes)
    original = bind(spec, ex.broken_inputs())
    outcome = fix_all(spec, original)
    assert [f.kind for f in outcome.applied] == ["resize_input"]
    exported = make_script(model_filename=ex.model_file, original=original, applied=outcome.applied, spec=spec)
    assert "interpreter.resize_tensor_input(input_details[name]['index'], list(shape))" in exported.text
    script = exported.write(tmp_path / "export")
    (tmp_path / "export" / ex.model_file).write_bytes(ex.model_bytes)

    done = _run_script(script)

    assert not run(ex.model_bytes, outcome.feed, spec=spec, pool=pool).ok
    assert done.returncode != 0 and "failed to prepare" in done.stderr


@pytest.mark.parametrize("ex", examples(), ids=lambda e: e.id)
def test_every_example_exports_a_script_that_compiles(ex):
    spec = inspect_model(ex.model_bytes)
    original = bind(spec, ex.broken_inputs(), ex.signature)
    applied = fix_all(spec, original, ex.signature).applied
    for limit in (4 << 20, 0):
        text = make_script(
            model_filename=ex.model_file, original=original, applied=applied, spec=spec,
            signature=ex.signature, embed_limit=limit,
        ).text
        compile(text, f"{ex.id}.py", "exec")
        assert "lite_debug" not in text.replace("lite-debug", "")
        # Pillow: for a resize, or to read an image given with --data when the data was one.
        reads_image = ex.input_files[0].endswith(".png")
        assert ("from PIL import Image" in text) == (reads_image or any(f.kind == "resize_image" for f in applied))
        assert ("get_signature_runner" in text) == (ex.signature is not None)


# -- the data preparation, on hand-made specs with awkward names ------------------------------------

_AWKWARD = ["serving_default_x:0", "it's \"quoted\"", "file", "a\\b\nc"]


def _prepare_only(tmp_path: Path, exported: ExportedScript) -> dict[str, np.ndarray]:
    """Run the script up to the interpreter and return the arrays it would feed."""
    head, _ = exported.text.split(RUN_MARK)
    folder = tmp_path / "prep"
    script = ExportedScript(head + "\nsave_npz(OUTPUTS_PATH, inputs)\n", exported.inputs_npz).write(folder)
    done = _run_script(script, "--model", "unused.tflite", "--out", folder / "fed.npz")
    assert done.returncode == 0, done.stderr
    return _load_npz(folder / "fed.npz")


def _case(kind, x, **params):
    return pytest.param(kind, x, params, id=f"{kind}-{x.dtype}-{'x'.join(map(str, x.shape))}")


_rng = np.random.default_rng(7)


@pytest.mark.parametrize(
    ("kind", "x", "params"),
    [
        _case("add_batch", _rng.random((4, 4, 3), dtype=np.float32)),
        _case("remove_batch", _rng.random((1, 1, 5), dtype=np.float32)),
        _case("take_sample", _rng.random((3, 4), dtype=np.float32), index=1),
        _case("add_channel", _rng.random((1, 4, 4), dtype=np.float32)),
        _case("nchw_to_nhwc", _rng.random((1, 3, 4, 5), dtype=np.float32)),
        _case("nhwc_to_nchw", _rng.random((1, 4, 5, 3), dtype=np.float32)),
        _case("to_rgb", _rng.random((1, 4, 4), dtype=np.float32)),
        _case("drop_alpha", _rng.integers(0, 256, (1, 4, 4, 4), dtype=np.uint8)),
        _case("to_gray", _rng.random((1, 4, 4, 3), dtype=np.float32)),
        _case("to_gray", _rng.integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)),  # rounds, as apply_fix does
        _case("resize_image", _rng.integers(0, 256, (1, 9, 7, 3), dtype=np.uint8), height=5, width=6, mode="stretch"),
        _case("resize_image", _rng.random((9, 7), dtype=np.float32), height=4, width=4, mode="pad"),
        _case("resize_image", _rng.random((2, 9, 7, 1), dtype=np.float32), height=4, width=4, mode="crop"),
        _case("reshape", _rng.random((2, 6), dtype=np.float32), shape=[1, 3, 4]),
        _case("cast", _rng.random((5,)) * 10, dtype="float32"),
        _case("cast", np.array([1.7, -300.2, np.nan, 200.5], np.float32), dtype="int8"),  # saturates
        _case(
            "normalize", _rng.integers(0, 256, (8,), dtype=np.uint8), source=[0, 255], target=[-1, 1], dtype="float32"
        ),
        _case("quantize", _rng.random((16,), dtype=np.float32), dtype="int8", scale=1 / 255, zero_point=-128),
        _case("dequantize", _rng.integers(-128, 128, (8,), dtype=np.int8), scale=0.5, zero_point=3),
        _case("nan_to_num", np.array([1.0, np.nan, np.inf, -np.inf], np.float32)),
    ],
)
def test_the_script_prepares_the_data_as_apply_fix_does(kind, x, params, tmp_path):
    name = _AWKWARD[1]
    spec = model(tensor(name=name, shape=(1, 2), dtype="float32"))
    original = Feed(arrays={name: x})
    fix = make_fix(kind, name, **params)
    exported = make_script(model_filename="m.tflite", original=original, applied=[fix], spec=spec)
    expected = apply_fix(original, fix).arrays[name]

    fed = _prepare_only(tmp_path, exported)[name]

    assert fed.dtype == expected.dtype and fed.shape == expected.shape
    assert np.allclose(fed.astype(np.float64), expected.astype(np.float64), rtol=1e-6, atol=1e-6, equal_nan=True)


def test_awkward_names_reassignment_generation_and_resizing(tmp_path):
    a, b, c, d = _AWKWARD
    spec = model(
        tensor(name=a, shape=(1, 3), sig=(-1, 3), index=0),
        tensor(name=b, shape=(1, 2), dtype="int32", index=1),
        tensor(name=d, shape=(2, 2), dtype="uint8", index=2),
    )
    original = Feed(
        arrays={a: np.arange(2, dtype=np.int32).reshape(1, 2), b: np.ones((4, 3), np.float32), c: np.zeros(1)}
    )
    applied = [
        make_fix("reassign", "*", mapping={a: b, b: a}),
        make_fix("generate", d, shape=[2, 2], dtype="uint8"),
        make_fix("resize_input", a, index=0, shape=[4, 3]),
    ]
    exported = make_script(model_filename="it's.tflite", original=original, applied=applied, spec=spec)
    compile(exported.text, "awkward.py", "exec")
    expected = original
    for fix in applied:
        expected = apply_fix(expected, fix)

    fed = _prepare_only(tmp_path, exported)

    assert sorted(fed) == sorted(expected.arrays)  # the extra array c keeps its name
    for name, value in expected.arrays.items():
        assert fed[name].dtype == value.dtype and np.array_equal(fed[name], value)
    assert "resize[" + repr(a) + "] = [4, 3]" in exported.text


def test_npz_bytes_keys_by_exact_names():
    arrays = {name: np.full((2,), i, np.int16) for i, name in enumerate(_AWKWARD)}
    with np.load(io.BytesIO(npz_bytes(arrays)), allow_pickle=False) as npz:
        assert {k: npz[k].tolist() for k in npz.files} == {k: v.tolist() for k, v in arrays.items()}
    assert zipfile.ZipFile(io.BytesIO(npz_bytes({}))).namelist() == []


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
@pytest.mark.parametrize(
    "x",
    [
        _rng.integers(0, 256, (1, 10, 7, 3), dtype=np.uint8),
        _rng.integers(-128, 128, (13, 6, 1), dtype=np.int8),
        _rng.random((5, 9), dtype=np.float32) * 3 - 1,
        _rng.random((2, 6, 6, 2)),
    ],
    ids=["uint8-nhwc", "int8-hwc", "float32-hw", "float64-batch2"],
)
@pytest.mark.parametrize("method", ["tf", "pillow", "opencv"])
def test_embedded_resize_helper_matches_lite_debug(x, mode, method):
    namespace = {"np": np}
    exec(_resize_helper(), namespace)  # the script's own copy: numpy only (Pillow imported when used)
    for size in ((4, 4), (8, 3), (20, 11)):
        got = namespace["resize_image"](x, size, mode=mode, method=method)
        want = resize_image(x, size, mode=mode, method=method)
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_refuses_what_it_cannot_write():
    spec = model(tensor(name="x", shape=(1, 2)))
    with pytest.raises(ValueError, match="Python objects"):
        make_script(
            model_filename="m.tflite", original=Feed({"x": np.array([1, "a"], dtype=object)}), applied=[], spec=spec
        )
    with pytest.raises(KeyError, match="no signature"):
        make_script(
            model_filename="m.tflite", original=Feed({"x": np.zeros((1, 2))}), applied=[], spec=spec, signature="nope"
        )



# -- other data with --data, images read as lite-debug reads them, the script as shown -------------


def _replayed(fixes, feed: Feed) -> Feed:
    for fix in fixes:
        feed = apply_fix(feed, fix)
    return feed


def test_data_given_with_data_gets_the_same_fixes(tmp_path, pool):
    ex, spec, original, applied, _ = _prepare("image-size")
    (name,) = original.arrays
    exported = make_script(model_filename=ex.model_file, original=original, applied=applied, spec=spec)
    script = exported.write(tmp_path / "export")
    (tmp_path / "export" / ex.model_file).write_bytes(ex.model_bytes)
    # Another picture of another size: the fixes (resize, batch, scale) fit it too.
    other = np.random.default_rng(3).integers(0, 256, (300, 180, 3), dtype=np.uint8)
    expected = run(ex.model_bytes, _replayed(applied, Feed({name: other})), spec=spec, pool=pool)
    np.save(tmp_path / "other.npy", other)
    (tmp_path / "other.npz").write_bytes(npz_bytes({name: other}))
    Image.fromarray(other).save(tmp_path / "other.png")

    for data in ("other.npy", "other.npz", "other.png"):
        out = tmp_path / f"out-{data}.npz"
        done = _run_script(script, "--data", tmp_path / data, "--out", out)
        assert done.returncode == 0, done.stderr
        assert f"given  {name!r}: shape [300, 180, 3], dtype uint8" in done.stdout
        _assert_same_outputs(_load_npz(out), expected)


def test_data_that_does_not_fit_the_names_is_refused_with_a_sentence(tmp_path):
    ex, spec, original, applied, _ = _prepare("two-inputs-swapped")
    script = make_script(model_filename=ex.model_file, original=original, applied=applied, spec=spec).write(tmp_path / "e")
    np.save(tmp_path / "one.npy", np.zeros((1, 10), np.float32))
    (tmp_path / "wrong.npz").write_bytes(npz_bytes({"nope": np.zeros(3)}))

    one = _run_script(script, "--data", tmp_path / "one.npy")
    wrong = _run_script(script, "--data", tmp_path / "wrong.npz")
    absent = _run_script(script, "--data", tmp_path / "absent.npz")

    assert one.returncode == 1 and "give an .npz keyed by those names" in one.stderr
    assert wrong.returncode == 1 and "holds the arrays ['nope']; it needs one for each of" in wrong.stderr
    assert absent.returncode == 1 and "is not a file" in absent.stderr
    assert "Traceback" not in one.stderr + wrong.stderr + absent.stderr


def test_a_real_photo_on_a_mediapipe_model_goes_beside_the_script_and_other_photos_run_too(tmp_path, pool):
    from lite_debug.session import Workspace

    need_real_models()
    name = "face_detection_short_range.tflite"
    ws = Workspace.open(name, (REAL / name).read_bytes())
    ws.load_files([("grace_hopper.jpg", (REAL / "grace_hopper.jpg").read_bytes())])
    ws.apply_all()
    assert [s.fix.kind for s in ws.steps][:2] == ["add_batch", "resize_image"]
    exported = ws.script()
    (photo,) = ws.original.arrays.values()
    assert photo.nbytes > EMBED_LIMIT and exported.inputs_npz is not None  # 921,600 bytes: not embedded
    assert "embedded_array" not in exported.text and len(exported.text) < 40_000
    script = exported.write(tmp_path / "export")
    (tmp_path / "export" / name).write_bytes(bytes(ws.model_bytes))

    done = _run_script(script)

    assert done.returncode == 0, done.stderr
    _assert_same_outputs(_load_npz(tmp_path / "export" / "outputs.npz"), ws.run(pool))

    # Another photo, turned by its EXIF orientation and of another size: read as lite-debug reads it.
    turned = Image.open(REAL / "grace_hopper.jpg").crop((40, 0, 480, 500)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90° clockwise to view": the viewer (and lite-debug) turns it back
    turned.save(tmp_path / "turned.jpg", exif=exif, quality=90)
    (loaded,) = load_data("turned.jpg", (tmp_path / "turned.jpg").read_bytes())
    assert loaded.shape == (500, 440, 3)
    expected = run(ws.model_bytes, _replayed(ws.applied, Feed({next(iter(ws.original.arrays)): loaded})), spec=ws.spec, pool=pool)

    done = _run_script(script, "--data", tmp_path / "turned.jpg", "--out", tmp_path / "turned.npz")

    assert done.returncode == 0, done.stderr
    assert "shape [500, 440, 3], dtype uint8" in done.stdout
    _assert_same_outputs(_load_npz(tmp_path / "turned.npz"), expected)


def _images(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    made = {
        "rgb.png": Image.fromarray(rgb),
        "gray.png": Image.fromarray(rgb[..., 0]),
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[..., :1]])),
        "la.png": Image.merge("LA", [Image.fromarray(rgb[..., 0]), Image.fromarray(rgb[..., 1])]),
        "gray16.png": Image.fromarray(rng.integers(0, 65536, (6, 5), dtype=np.uint16)),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "bilevel.bmp": Image.fromarray(rgb[..., 0] > 128),
        "photo.jpg": Image.fromarray(rgb),
    }
    paths = []
    for file, img in made.items():
        if file == "palette.png":
            img.info["transparency"] = 0
            img.save(tmp_path / file, transparency=0)
        elif file == "photo.jpg":
            exif = Image.Exif()
            exif[0x0112] = 6
            img.save(tmp_path / file, exif=exif)
        else:
            img.save(tmp_path / file)
        paths.append(tmp_path / file)
    return paths


def test_the_scripts_image_reader_gives_what_lite_debug_loads(tmp_path):
    namespace = {"np": np}
    exec(_image_helper(), namespace)  # the script's own copy
    for path in _images(tmp_path):
        (want,) = load_data(path.name, path.read_bytes())
        got = namespace["load_image"](path)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), path.name


def test_the_script_as_shown_has_its_data_cut_to_a_line(tmp_path):
    ex, spec, original, applied, _ = _prepare("image-size")
    exported = make_script(model_filename=ex.model_file, original=original, applied=applied, spec=spec)
    assert exported.inputs_npz is None and len(exported.text) > 250_000  # a 256×256 photo, embedded

    shown = exported.display

    assert shown == script_for_display(exported.text)
    assert len(shown) < 30_000 and max(len(line) for line in shown.splitlines()) < 200
    assert "characters of base64 (the .npy of the data) not shown here" in shown
    compile(shown, "shown.py", "exec")  # still reads as Python
    for fix in applied:
        assert fix.code in shown
    # Text without embedded data is shown as it is.
    big = make_script(model_filename=ex.model_file, original=original, applied=applied, spec=spec, embed_limit=0)
    assert big.display == big.text
