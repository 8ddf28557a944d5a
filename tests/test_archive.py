"""Bug-report archives: real shapes are sorted right; hostile ones are refused with a sentence, fast."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lite_debug.archive import ArchiveLimits, archive_format, read_archive, same_error
from lite_debug.bundle import write_bundle
from lite_debug.errors import BundleError
from lite_debug.explain import explain
from lite_debug.gallery import EXAMPLES_DIR, example, examples
from lite_debug.inspection import inspect_model
from lite_debug.loading import load_data
from lite_debug.records import Feed
from zipbombs import central_directory_bomb, count_directory_parses, gzip_bomb, many_member_tar

REAL = Path(__file__).parent / "real_models"


def ex(name: str) -> bytes:
    return (EXAMPLES_DIR / name).read_bytes()


def traceback_of(message: str, kind: str = "ValueError", call: str = "interpreter.set_tensor(inp['index'], x)") -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/content/repro.py", line 14, in <module>\n'
        f"    {call}\n"
        '  File "/usr/local/lib/python3.11/dist-packages/ai_edge_litert/interpreter.py", line 720, in set_tensor\n'
        "    self._interpreter.SetTensor(tensor_index, value)\n"
        f"{kind}: {message}\n"
    )


def make_zip(members: dict[str, bytes | str], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(members: dict[str, bytes | str], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


DIMENSION = example("image-size").observed_error  # "Cannot set tensor: Dimension mismatch. Got 256 but expected 224 …"


# -- real shapes ------------------------------------------------------------------------------


def test_an_issue_folder_is_sorted_into_model_data_and_the_reported_error():
    tb = traceback_of(DIMENSION)
    data = make_zip({
        "issue-1234/model.tflite": ex("image_classifier.tflite"),
        "issue-1234/input.npy": ex("image-size.good.npy"),
        "issue-1234/traceback.txt": "Here is what I get:\n\n" + tb + "\nAny idea?\n",
        "issue-1234/README.md": "# Classifier fails on my photos\n\nSee traceback.txt. Converted with TF 2.15.\n",
    })
    a = read_archive("bug-report.zip", data)
    assert a.format == "zip" and not a.is_bundle
    assert [m.path for m in a.models] == ["issue-1234/model.tflite"]
    assert a.models[0].data == ex("image_classifier.tflite")
    assert [(f.path, f.key) for f in a.data_files] == [("issue-1234/input.npy", "input")]
    assert a.data_files[0].data == ex("image-size.good.npy")  # bytes kept as they are, not loaded
    reported = a.reported
    assert reported is not None and reported.path == "issue-1234/traceback.txt"
    # The passage is the traceback itself, not the chat around it.
    assert reported.text.startswith("Traceback (most recent call last):") and reported.text.endswith("of input 0.")
    assert reported.explanation.kind == "dimension_mismatch"
    assert reported.explanation.facts["got"] == 256 and reported.explanation.facts["expected"] == 224
    # A README with no error in it is listed, not taken for an error text.
    assert [(m.path, m.kind) for m in a.others] == [("issue-1234/README.md", "text")]
    assert a.describe() == (
        "bug-report.zip holds 1 model (issue-1234/model.tflite), 1 data file, an error text "
        "(issue-1234/traceback.txt) and 1 other file."
    )
    as_json = json.loads(json.dumps(reported.to_dict()))
    assert set(as_json) == {"path", "text", "explanation"} and as_json["explanation"]["kind"] == "dimension_mismatch"


@pytest.mark.parametrize("ex_", examples(), ids=lambda e: e.id)
def test_every_gallery_error_is_found_and_explained_as_the_interpreter_said_it(ex_):
    # The observed_error fields are what the real interpreter printed for these models.
    kind = "ValueError" if ex_.observed_error.startswith("Cannot set tensor") else "RuntimeError"
    data = make_zip({
        f"{ex_.id}/{ex_.model_file}": ex(ex_.model_file),
        **{f"{ex_.id}/{f}": ex(f) for f in ex_.input_files},
        f"{ex_.id}/error.log": "2024-05-01 12:00:03 loading model\n" + traceback_of(ex_.observed_error, kind),
    })
    a = read_archive(f"{ex_.id}.zip", data)
    assert [m.path for m in a.models] == [f"{ex_.id}/{ex_.model_file}"]
    assert {f.name for f in a.data_files} == set(ex_.input_files)
    assert a.reported is not None and a.reported.recognised
    assert a.reported.explanation.kind == explain(ex_.observed_error).kind


def test_a_colab_export_ignores_macos_clutter_and_reads_the_error_from_the_notebook():
    custom = example("custom-op")
    notebook = {
        "cells": [
            {"cell_type": "code", "source": ["import numpy as np"], "outputs": []},
            {
                "cell_type": "code",
                "source": ["interpreter.allocate_tensors()"],
                "outputs": [{
                    "output_type": "error",
                    "ename": "RuntimeError",
                    "evalue": custom.observed_error,
                    # Colab colours its tracebacks; the codes must not reach explain().
                    "traceback": [
                        "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
                        "\x1b[0;31mRuntimeError\x1b[0m                              Traceback (most recent call last)",
                        "\x1b[0;32m<ipython-input-3-5f2b>\x1b[0m in \x1b[0;36m<cell line: 1>\x1b[0;34m()\x1b[0m",
                        f"\x1b[0;31mRuntimeError\x1b[0m: {custom.observed_error}",
                    ],
                }],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 0,
    }
    data = make_zip({
        "colab/matrix_determinant_custom.tflite": ex("matrix_determinant_custom.tflite"),
        "colab/custom-op.input.npy": ex("custom-op.input.npy"),
        "colab/Repro.ipynb": json.dumps(notebook),
        "colab/.DS_Store": b"\0\0\0\1Bud1",
        "__MACOSX/colab/._matrix_determinant_custom.tflite": b"\0\5\26\7\0\2\0\0Mac OS X",
        "__MACOSX/colab/._Repro.ipynb": b"\0\5\26\7\0\2\0\0Mac OS X",
        ".ipynb_checkpoints/Repro-checkpoint.ipynb": json.dumps(notebook),
    })
    a = read_archive("Colab Notebooks.zip", data)
    assert [m.path for m in a.models] == ["colab/matrix_determinant_custom.tflite"]
    assert set(a.ignored) == {
        "colab/.DS_Store", "__MACOSX/colab/._matrix_determinant_custom.tflite", "__MACOSX/colab/._Repro.ipynb",
        ".ipynb_checkpoints/Repro-checkpoint.ipynb",
    }
    assert a.reported is not None and a.reported.path == "colab/Repro.ipynb"
    assert a.reported.explanation.kind == "unresolved_custom_op" and a.reported.explanation.facts["op"] == "MatrixDeterminant"
    assert "\x1b" not in a.reported.text
    assert a.others == ()


def test_a_tar_gz_of_a_project_folder_with_two_models_lists_both():
    if not (REAL / "selfie_segmentation.tflite").exists():
        pytest.skip("real models missing: run `python scripts/fetch_real_models.py`")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for folder in (".", "./project", "./project/models", "./project/data"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        for name, raw in {
            "./project/models/selfie_segmentation.tflite": (REAL / "selfie_segmentation.tflite").read_bytes(),
            "./project/models/face_detection_short_range.tflite": (REAL / "face_detection_short_range.tflite").read_bytes(),
            "./project/data/frame.png": ex("image-size.broken.png"),
            "./project/notes.md": "Both models crash on the same frame.\n",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw.encode() if isinstance(raw, str) else raw))
    a = read_archive("project.tgz", buf.getvalue())
    assert a.format == "tar.gz"
    assert [m.path for m in a.models] == [
        "project/models/selfie_segmentation.tflite", "project/models/face_detection_short_range.tflite",
    ]
    assert a.model("project/models/selfie_segmentation.tflite").data == (REAL / "selfie_segmentation.tflite").read_bytes()
    assert [f.path for f in a.data_files] == ["project/data/frame.png"]
    assert a.member_count == 8  # folders count towards the member limit
    assert a.describe() == (
        "project.tgz holds 2 models (project/models/selfie_segmentation.tflite, "
        "project/models/face_detection_short_range.tflite), 1 data file and 1 other file."
    )


@pytest.mark.parametrize("mode, fmt", [("w", "tar"), ("w:gz", "tar.gz"), ("w:bz2", "tar.bz2"), ("w:xz", "tar.xz")])
def test_every_tar_flavour_is_recognised_by_its_content_not_its_name(mode, fmt):
    data = make_tar({"m/two_inputs.tflite": ex("two_inputs.tflite"), "m/out.txt": traceback_of(DIMENSION)}, mode)
    a = read_archive("upload.zip", data)  # the name lies; the bytes decide
    assert a.format == fmt and [m.name for m in a.models] == ["two_inputs.tflite"]
    assert a.reported is not None and a.reported.explanation.kind == "dimension_mismatch"


def test_a_zip_named_tar_gz_is_read_as_a_zip_and_a_model_named_bin_is_found_by_content():
    data = make_zip({"weights.bin": ex("two_inputs.tflite"), "x.bin": b"\0" * 40})
    a = read_archive("report.tar.gz", data)
    assert a.format == "zip"
    assert [m.path for m in a.models] == ["weights.bin"] and [f.path for f in a.data_files] == ["x.bin"]


@pytest.mark.parametrize("compress, fmt", [(gzip.compress, "gz"), (bz2.compress, "bz2"), (lzma.compress, "xz")])
def test_a_single_compressed_model_is_an_archive_of_one_file(compress, fmt):
    a = read_archive("segmenter.tflite." + fmt, compress(ex("segmenter.tflite")))
    assert a.format == fmt and [m.path for m in a.models] == ["segmenter.tflite"]
    assert a.models[0].data == ex("segmenter.tflite")


def test_gzip_keeps_the_name_it_stored():
    buf = io.BytesIO()
    with gzip.GzipFile(filename="input_ids.npy", mode="wb", fileobj=buf) as gz:
        gz.write(ex("image-size.good.npy"))
    a = read_archive("download.gz", buf.getvalue())
    assert [f.path for f in a.data_files] == ["input_ids.npy"]


def test_models_that_are_not_tflite_are_noted_with_what_to_do():
    data = make_zip({
        "model.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 100,
        "export/saved_model.pb": b"\x08\x01\x12\x00",
        "export/variables/variables.index": b"\0" * 10,
        "export/fingerprint.pb": b"\x08\x01",
        "model.tflite": b"<!DOCTYPE html><html><body>Sign in to continue</body></html>",
        "empty.tflite": b"",
    })
    a = read_archive("keras.zip", data)
    assert a.models == ()
    notes = {m.path: (m.kind, m.note) for m in a.others}
    assert notes["model.h5"][0] == "not_tflite_model" and "TFLiteConverter" in notes["model.h5"][1]
    assert notes["export/saved_model.pb"][0] == "not_tflite_model"
    assert notes["export/fingerprint.pb"][0] == "other"  # a SavedModel's side file is not another model
    assert notes["model.tflite"] == ("not_a_model", "model.tflite is named like a TFLite model but is an HTML page (probably a download page saved instead of the model)")
    assert notes["empty.tflite"][1] == "empty.tflite is named like a TFLite model but is empty (0 bytes)"
    assert a.describe().startswith("keras.zip holds no TFLite model, a Keras model (model.h5) that is not a TFLite model, ")


def test_members_that_are_only_listed_are_not_decompressed_past_their_first_bytes():
    data = make_zip({"video.mov": b"\0" * (64 << 20), "model.tflite": ex("two_inputs.tflite")})
    a = read_archive("v.zip", data, limits=ArchiveLimits(max_member_bytes=1 << 20))
    assert [(m.path, m.size) for m in a.others] == [("video.mov", 64 << 20)]  # the size the zip declares
    assert a.read_bytes == 64 + len(ex("two_inputs.tflite"))


def test_a_notebook_too_large_to_search_is_listed_with_a_sentence():
    nb = json.dumps({"cells": [{"outputs": [{"output_type": "stream", "name": "stdout", "text": "x" * 5000}]}]})
    a = read_archive("nb.zip", make_zip({"big.ipynb": nb}), limits=ArchiveLimits(max_text_bytes=4096))
    assert a.error_texts == ()
    assert [(m.kind, m.note) for m in a.others] == [
        ("text", "big.ipynb is a notebook larger than the 4,096 bytes lite-debug searches for an error"),
    ]


def test_a_lite_debug_bundle_is_recognised_and_a_lookalike_is_not():
    spec_model = ex("two_inputs.tflite")
    feed = Feed({"features": np.zeros((1, 10), np.float32), "tokens": np.zeros((1, 4), np.int32)})
    bundle = write_bundle(spec_model, feed)
    a = read_archive("bundle.zip", bundle)
    assert a.is_bundle and a.describe().startswith("bundle.zip is a lite-debug bundle and holds 1 model (model.tflite)")
    fake = make_zip({"manifest.json": json.dumps({"format": "something-else"}), "model.tflite": spec_model})
    assert not read_archive("fake.zip", fake).is_bundle
    nested = make_zip({"sub/manifest.json": json.dumps({"format": "lite-debug-bundle"})})
    assert not read_archive("nested.zip", nested).is_bundle


def test_data_files_are_bound_to_inputs_by_name():
    data = make_zip({
        "repro/two_inputs.tflite": ex("two_inputs.tflite"),
        "repro/Features.npy": b"\x93NUMPY",
        "repro/tokens.npy": b"\x93NUMPY",
        "repro/extra.npy": b"\x93NUMPY",
        "a/image.png": b"\x89PNG", "b/image.png": b"\x89PNG",
    })
    a = read_archive("r.zip", data)
    bound = a.data_for(["features", "tokens", "serving_default_image:0", "mask"])
    assert {k: v.path for k, v in bound.items()} == {"features": "repro/Features.npy", "tokens": "repro/tokens.npy"}


def test_the_reported_error_matches_what_the_worker_reproduces():
    from lite_debug.running import Limits, WorkerPool

    seg = example("segmentation-nchw")
    a = read_archive("seg.zip", make_zip({
        "seg/segmenter.tflite": ex("segmenter.tflite"),
        "seg/image.npy": ex("segmentation-nchw.broken.npy"),
        "seg/traceback.txt": traceback_of(seg.observed_error),
    }))
    model = a.models[0].data
    spec = inspect_model(model)
    (name,) = [t.name for t in spec.inputs]
    bound = a.data_for([name])  # serving_default_image:0 ← seg/image.npy
    assert list(bound) == [name]
    (array,) = load_data(bound[name].name, bound[name].data)
    pool = WorkerPool(size=1, limits=Limits())
    try:
        result = pool.run(model, spec, Feed({name: array}))
    finally:
        pool.close()
    assert result.status == "error" and result.explanation is not None
    assert same_error(a.reported.explanation, result.explanation)
    other = explain("Cannot set tensor: Dimension mismatch. Got 3 but expected 64 for dimension 2 of input 0.")
    assert not same_error(a.reported.explanation, other)


# -- picking the error text -------------------------------------------------------------------


def test_the_last_recognised_error_of_a_log_wins_over_earlier_noise():
    log = (
        "I0501 12:00:01 starting\n"
        + traceback_of("No module named 'tflite_runtime'", "ModuleNotFoundError", "import tflite_runtime")
        + "\nretrying with ai_edge_litert\n\n"
        + traceback_of(example("uint8-float-data").observed_error)
        + "\nException ignored in: <function Interpreter.__del__>\n"
    )
    a = read_archive("log.zip", make_zip({"run.log": log}))
    assert a.reported.explanation.kind == "dtype_mismatch"
    assert "ModuleNotFoundError" not in a.reported.text and a.reported.text.startswith("Traceback")


def test_a_log_line_without_a_traceback_is_still_found():
    log = "W litert: resizing input 0\nE litert: " + example("reshape-breaks-on-resize").observed_error + "\n\nI done\n"
    a = read_archive("log.tar", make_tar({"logs/stderr.out": log}))
    assert a.reported is not None and a.reported.recognised
    assert a.reported.text == "W litert: resizing input 0\nE litert: " + example("reshape-breaks-on-resize").observed_error


def test_an_unknown_traceback_is_reported_as_unknown_and_a_known_one_elsewhere_comes_first():
    a = read_archive("two.zip", make_zip({
        "a/first.txt": traceback_of("No module named 'tflite_runtime'", "ModuleNotFoundError", "import tflite_runtime"),
        "b/second.md": "## Error\n\n```\n" + traceback_of(DIMENSION) + "```\n",
    }))
    assert [e.path for e in a.error_texts] == ["b/second.md", "a/first.txt"]
    assert a.error_texts[1].explanation.kind == "unknown"
    assert a.error_texts[1].text.endswith("ModuleNotFoundError: No module named 'tflite_runtime'")
    assert "```" not in a.error_texts[0].text


def test_a_utf16_log_from_windows_and_a_numeric_txt():
    log = ("PS C:\\> python run.py\r\n" + traceback_of(DIMENSION).replace("\n", "\r\n")).encode("utf-16")
    a = read_archive("win.zip", make_zip({"run.log": log, "input.txt": "0.1, 0.2, 0.3\n0.4, 0.5, 0.6\n"}))
    assert a.reported.explanation.kind == "dimension_mismatch"
    assert [f.path for f in a.data_files] == ["input.txt"]


def test_a_huge_log_is_searched_from_its_end():
    log = ("I tick\n" * 400_000) + traceback_of(DIMENSION)
    a = read_archive("big.zip", make_zip({"huge.log": log}), limits=ArchiveLimits(max_text_bytes=1 << 20))
    assert len(log) > 2 << 20 and a.reported.explanation.kind == "dimension_mismatch"


def test_many_error_texts_cost_a_bounded_number_of_explanations(monkeypatch):
    import lite_debug.archive as archive

    calls = []
    real = archive.explain
    monkeypatch.setattr(archive, "explain", lambda text: calls.append(text) or real(text))
    logs = {
        f"logs/{i}.log": "".join(traceback_of(f"custom failure {i}-{j}", "RuntimeError") + "\n" for j in range(50))
        for i in range(200)
    }
    started = time.perf_counter()
    a = read_archive("logs.zip", make_zip(logs))
    print(f"{len(calls)} explanations in {time.perf_counter() - started:.2f} s")
    assert len(a.error_texts) == 200 and len(calls) <= 600
    # Past the budget every file still reports its error, said to be not examined.
    last = a.error_texts[-1]
    assert last.text.endswith("RuntimeError: custom failure 199-49")
    assert last.explanation.title == "Message not examined" and not last.recognised


# -- refused: unsafe names and member kinds ---------------------------------------------------


def _zip_with_raw_name(name: bytes, data: bytes = b"x") -> bytes:
    """A zip whose member is named ``name`` byte for byte (zipfile itself would cut a NUL)."""
    placeholder = b"P" * len(name)
    raw = make_zip({placeholder.decode(): data}, compression=zipfile.ZIP_STORED)
    assert raw.count(placeholder) == 2
    return raw.replace(placeholder, name)


@pytest.mark.parametrize(
    "name, words",
    [
        ("../evil.tflite", "climbs out of the archive with '..'"),
        ("issue/../../etc/cron.d/x", "climbs out of the archive with '..'"),
        ("/etc/passwd", "an absolute path"),
        ("C:/Users/me/model.tflite", "drive letter"),
        ("issue\\model.tflite", "backslash"),
        ("model\x1b[31m.tflite", "control character '\\x1b'"),
        ("evil\u202eexe.npy", "control character '\\u202e'"),
        ("/".join(["d"] * 40) + "/m.npy", "40 folders deep, more than the 32 allowed"),
    ],
)
@pytest.mark.parametrize("container", ["zip", "tar"])
def test_unsafe_names_are_refused_with_the_name_and_the_reason(name, words, container):
    members = {"ok/model.tflite": ex("two_inputs.tflite"), name: b"x"}
    data = make_zip(members) if container == "zip" else make_tar(members, "w:gz")
    with pytest.raises(BundleError, match=r"upload\.\w+ holds a member named") as err:
        read_archive(f"upload.{container}", data)
    assert words in str(err.value) and repr(name)[:40] in str(err.value)


def test_a_nul_in_a_zip_name_is_refused_although_zipfile_would_hide_it():
    data = _zip_with_raw_name(b"model.npy\0../../x")
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["model.npy"]  # what zipfile shows
    with pytest.raises(BundleError, match=r"'model\.npy\\\\x00…', which contains a NUL character"):
        read_archive("nul.zip", data)


@pytest.mark.parametrize(
    "kind, words",
    [
        (tarfile.SYMTYPE, "which is a symbolic link to '/etc/passwd'"),
        (tarfile.LNKTYPE, "which is a hard link to '/etc/passwd'"),
        (tarfile.CHRTYPE, "which is a character device"),
        (tarfile.BLKTYPE, "which is a block device"),
        (tarfile.FIFOTYPE, "which is a FIFO"),
    ],
)
def test_tar_links_devices_and_fifos_are_refused(kind, words):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("issue/input.npy")
        info.type = kind
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(BundleError, match="'issue/input.npy'") as err:
        read_archive("links.tar", buf.getvalue())
    assert words in str(err.value) and "refuses such archives" in str(err.value)


def test_a_zip_member_marked_as_a_symlink_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("issue/model.tflite")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BundleError, match="'issue/model.tflite', which is a symbolic link"):
        read_archive("link.zip", buf.getvalue())


def test_nested_archives_are_listed_not_opened():
    inner = make_zip({"evil/../../x": b"never read"})
    data = make_zip({
        "issue/model.tflite": ex("two_inputs.tflite"),
        "issue/more.zip": inner,
        "issue/logs.tar.gz": make_tar({"a.log": "x"}, "w:gz"),
        "issue/inputs.npz": inner,  # an .npz is a zip too, and data
        "issue/model.keras": inner,  # a .keras is a zip too, and a Keras model
    })
    a = read_archive("outer.zip", data)  # the unsafe name inside more.zip is never seen
    kinds = {m.path: m.kind for m in a.others}
    assert kinds == {"issue/more.zip": "nested_archive", "issue/logs.tar.gz": "nested_archive", "issue/model.keras": "not_tflite_model"}
    assert [f.path for f in a.data_files] == ["issue/inputs.npz"]
    note = next(m.note for m in a.others if m.path == "issue/more.zip")
    assert note == (
        "issue/more.zip is a zip archive inside the archive; lite-debug does not open archives within "
        "archives: extract it and upload it on its own"
    )
    assert "2 nested archives, not opened (issue/more.zip, issue/logs.tar.gz)" in a.describe()


# -- refused: over a limit --------------------------------------------------------------------


def test_too_many_zip_members_are_refused_with_the_limit():
    data = make_zip({f"f{i}.txt": b"" for i in range(300)})
    with pytest.raises(BundleError, match=r"many\.zip declares 300 members, more than the 256 lite-debug reads"):
        read_archive("many.zip", data)


@pytest.mark.parametrize("zip64", [False, True])
def test_a_central_directory_declaring_millions_of_entries_is_refused_before_zipfile_reads_it(monkeypatch, zip64):
    bomb = central_directory_bomb(3, declared=4_000_000 if zip64 else 65_000, zip64=zip64)
    parsed = count_directory_parses(monkeypatch)
    started = time.perf_counter()
    with pytest.raises(BundleError, match=r"declares (4,000,000|65,000) members, more than the 256 lite-debug reads; refused before reading its directory"):
        read_archive("bomb.zip", bomb)
    print(f"refused in {1000 * (time.perf_counter() - started):.2f} ms")
    assert parsed == []


def test_a_directory_that_lies_about_its_count_is_counted_and_stopped_at_the_limit(monkeypatch):
    # The end record says 3; the directory holds 200,000 records. zipfile reads by the
    # directory's byte size, so the walk must count the records themselves.
    bomb = central_directory_bomb(200_000, declared=3)
    assert len(bomb) < 10_000_000
    parsed = count_directory_parses(monkeypatch)
    started = time.perf_counter()
    with pytest.raises(BundleError, match=r"holds more than 256 members, more than the 256 lite-debug reads"):
        read_archive("liar.zip", bomb)
    print(f"refused in {1000 * (time.perf_counter() - started):.2f} ms")
    assert parsed == []


def test_a_tar_of_millions_of_tiny_members_stops_at_the_limit():
    bomb = many_member_tar(2_000_000)
    started = time.perf_counter()
    with pytest.raises(BundleError, match=r"holds more than 256 members \(reading stopped at 'f'\)"):
        read_archive("tiny.tar.gz", bomb)
    print(f"{len(bomb):,} bytes refused in {1000 * (time.perf_counter() - started):.1f} ms")
    with pytest.raises(BundleError, match="more than 256 members"):
        read_archive("tiny.tar", many_member_tar(300, compress=False))


def test_a_gzip_bomb_is_stopped_by_what_decompresses():
    # A data file is read whole, so its decompressed bytes count; one gzip member, the classic.
    bomb = gzip_bomb(64 << 20)
    assert len(bomb) < 400_000
    with pytest.raises(BundleError, match=r"input\.npy' decompresses to more than 8,388,608 bytes; refusing it as a possible archive bomb"):
        read_archive("input.npy.gz", bomb, limits=ArchiveLimits(max_member_bytes=8 << 20))


def test_a_tar_gz_bomb_is_stopped_at_the_stream_cap():
    # Members lite-debug never keeps still inflate as the tar streams past them: the stream
    # itself is capped. Three members of 24 MiB of zeros, each under the member limit, in
    # gzip members of 1 MiB each. (With the default limits the same bomb of 3 × 400 MiB stops
    # at 1,124,995,072 bytes, after ~5 s of inflating: too slow for a test.)
    size = 24 << 20
    bomb = b""
    for i in range(3):
        header = tarfile.TarInfo(f"junk{i}.dat1")
        header.size = size
        bomb += gzip.compress(header.tobuf(format=tarfile.USTAR_FORMAT)) + gzip_bomb(size, members=24)
    bomb += gzip.compress(b"\0" * 1024)
    limits = ArchiveLimits(max_total_bytes=48 << 20, max_member_bytes=32 << 20, max_members=16)
    started = time.perf_counter()
    with pytest.raises(BundleError, match=r"bomb\.tgz decompresses to more than 53,[\d,]+ bytes \(the 50,331,648-byte limit on its files"):
        read_archive("bomb.tgz", bomb, limits=limits)
    print(f"{len(bomb):,} bytes refused in {time.perf_counter() - started:.2f} s")


def test_member_and_total_limits_count_what_decompresses():
    data = make_zip({"a.npy": b"\0" * (3 << 20), "b.npy": b"\0" * (3 << 20)})
    with pytest.raises(BundleError, match=r"'a\.npy' decompresses to more than 2,097,152 bytes"):
        read_archive("z.zip", data, limits=ArchiveLimits(max_member_bytes=2 << 20))
    with pytest.raises(BundleError, match=r"z\.zip decompresses to more than 5,242,880 bytes in all"):
        read_archive("z.zip", data, limits=ArchiveLimits(max_total_bytes=5 << 20))
    # A tar header declaring more than the member limit is refused before it is read.
    with pytest.raises(BundleError, match=r"'a\.npy' is 3,145,728 bytes, more than the 2,097,152"):
        read_archive("t.tar", make_tar({"a.npy": b"\0" * (3 << 20)}), limits=ArchiveLimits(max_member_bytes=2 << 20))


def test_a_zip_member_whose_declared_size_lies_is_caught():
    data = bytearray(make_zip({"input.npy": b"\1" * 100_000}))
    # Declare 10 bytes in both headers: zipfile stops there and the CRC no longer matches.
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(sig)
        struct.pack_into("<L", data, pos + at, 10)
    with pytest.raises(BundleError, match=r"lie\.zip is a damaged zip archive \('input\.npy': Bad CRC-32"):
        read_archive("lie.zip", bytes(data))


def test_an_outsized_pax_header_is_refused_before_it_is_read():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("input.npy")
        info.pax_headers = {"comment": "x" * (200 << 10)}
        tf.addfile(info, io.BytesIO(b""))
    with pytest.raises(BundleError, match=r"tar metadata header of [\d,]+ bytes, more than the 65,536 allowed"):
        read_archive("pax.tar", buf.getvalue())


# -- refused: damaged, encrypted, unknown -----------------------------------------------------


def test_damaged_archives_say_so_and_not_that_they_are_no_tflite_model():
    good = make_zip({"issue/model.tflite": ex("two_inputs.tflite"), "issue/in.npy": ex("image-size.good.npy")})
    with pytest.raises(BundleError, match=r"^cut\.zip is a damaged zip archive \(it has no end-of-central-directory record"):
        read_archive("cut.zip", good[: len(good) // 2])
    flipped = bytearray(good)  # corrupt the model's deflated data
    start = good.find(b"PK\x03\x04") + 30 + len("issue/model.tflite")
    for i in range(start + 10, start + 60):
        flipped[i] ^= 0xFF
    with pytest.raises(BundleError, match=r"^flip\.zip is a damaged zip archive \('issue/model\.tflite'"):
        read_archive("flip.zip", bytes(flipped))
    tgz = make_tar({"issue/model.tflite": ex("segmenter.tflite")}, "w:gz")
    with pytest.raises(BundleError, match=r"^cut\.tgz is a damaged gzip archive \(the compressed stream ends early"):
        read_archive("cut.tgz", tgz[: len(tgz) // 2])
    tar = make_tar({"issue/model.tflite": ex("segmenter.tflite")})
    with pytest.raises(BundleError, match=r"^cut\.tar is a damaged tar archive \(unexpected end of data\)"):
        read_archive("cut.tar", tar[:2000])


def test_an_encrypted_member_is_refused():
    data = bytearray(make_zip({"secret.npy": b"x" * 100}, compression=zipfile.ZIP_STORED))
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(sig)
        struct.pack_into("<H", data, pos + at, 1)
    with pytest.raises(BundleError, match=r"'secret\.npy' is encrypted; lite-debug cannot read password-protected archives"):
        read_archive("pw.zip", bytes(data))


def test_an_unknown_compression_method_is_refused():
    data = bytearray(make_zip({"input.npy": b"x" * 100}, compression=zipfile.ZIP_STORED))
    for sig, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        pos = data.find(sig)
        struct.pack_into("<H", data, pos + at, 93)  # Zstandard, which zipfile cannot read
    with pytest.raises(BundleError, match=r"'input\.npy' uses a compression lite-debug cannot read"):
        read_archive("zstd.zip", bytes(data))


def test_what_is_not_an_archive():
    assert archive_format(ex("two_inputs.tflite")) is None
    assert archive_format(ex("image_classifier.tflite")) is None  # packs a zip at its end, still a model
    with pytest.raises(BundleError, match=r"^m\.zip is a TFLite model, not an archive"):
        read_archive("m.zip", ex("two_inputs.tflite"))
    with pytest.raises(BundleError, match=r"^notes\.zip is not a zip, tar or gzip archive"):
        read_archive("notes.zip", b"hello, this is text")
    with pytest.raises(BundleError, match=r"^a\.7z is a 7-Zip archive, which lite-debug cannot read"):
        read_archive("a.7z", b"7z\xbc\xaf\x27\x1c" + b"\0" * 100)
    assert [archive_format(d) for d in (make_zip({}), make_tar({"a": "b"}), gzip.compress(b"x"), bz2.compress(b"x"), lzma.compress(b"x"))] == [
        "zip", "tar", "gzip", "bzip2", "xz",
    ]


def test_describe_for_empty_and_clutter_only_archives():
    assert read_archive("e.zip", make_zip({})).describe() == "e.zip holds no files."
    clutter = make_zip({"__MACOSX/._x": b"", ".DS_Store": b""})
    assert read_archive("c.zip", clutter).describe() == (
        "c.zip holds only files that operating systems add (__MACOSX/._x, .DS_Store), nothing lite-debug can use."
    )


@pytest.mark.parametrize("mode", ["zip", "w", "w:gz", "w:bz2", "w:xz"])
def test_mutated_archives_end_in_an_archive_or_a_sentence(mode):
    import random

    members = {
        "issue/model.tflite": ex("two_inputs.tflite"),
        "issue/in.npy": ex("image-size.good.npy")[:3000],
        "issue/traceback.txt": traceback_of(DIMENSION),
        "issue/README.md": "hello",
    }
    seed = make_zip(members) if mode == "zip" else make_tar(members, mode)
    rng = random.Random(mode)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(150):
        data = bytearray(seed)
        for _ in range(rng.choice([1, 2, 4, 8, 32])):
            at = rng.randrange(len(data))
            op = rng.random()
            if op < 0.6:
                data[at] = rng.randrange(256)
            elif op < 0.8:
                del data[at : at + rng.randrange(1, 64)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
        try:
            read_archive("mutant", bytes(data))
            outcomes["read"] += 1
        except BundleError as exc:
            assert str(exc).endswith(".") and "mutant" in str(exc)
            outcomes["refused"] += 1
    # Most mutants break a checksum and are refused as damaged; none may escape as another error.
    assert outcomes["refused"] > 0, outcomes

