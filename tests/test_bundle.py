"""Bug-report bundles: a round trip keeps everything; hostile archives are refused with a sentence."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lite_debug.casefile import compare_outputs, compare_versions
from lite_debug.bundle import OLD_BUNDLE_NOTE, BundleLimits, is_bundle, open_bundle, read_bundle, write_bundle
from lite_debug.diagnosis import diagnose, fix_all
from lite_debug.errors import BundleError
from lite_debug.gallery import example
from lite_debug.inspection import inspect_model
from lite_debug.records import Feed
from lite_debug.running import Limits, WorkerPool
from lite_debug.session import Workspace
from test_inspection import REAL, need_real_models
from zipbombs import central_directory_bomb, count_directory_parses

FIXTURES = Path(__file__).parent / "fixtures"


def test_the_old_form_still_writes_a_format_1_bundle_that_reads_back():
    ex = example("two-inputs-swapped")
    spec = inspect_model(ex.model_bytes)
    mismatches = diagnose(spec, ex.broken_inputs())
    out = fix_all(spec, ex.broken_inputs())
    feed = Feed(out.feed.arrays, resize={"features": (1, 10)})
    pool = WorkerPool(size=1, limits=Limits())
    try:
        result = pool.run(ex.model_bytes, spec, feed)
    finally:
        pool.close()
    data = write_bundle(ex.model_bytes, feed, mismatches=mismatches, result=result, fixes_applied=out.applied, model_name="two.tflite")
    assert is_bundle(data)
    b = read_bundle(data)
    assert b.model == ex.model_bytes and b.model_name == "two.tflite"
    assert list(b.feed.arrays) == list(feed.arrays)
    for k in feed.arrays:
        assert np.array_equal(b.feed.arrays[k], feed.arrays[k]) and b.feed.arrays[k].dtype == feed.arrays[k].dtype
    assert b.feed.resize == {"features": (1, 10)}
    (name,) = b.outputs
    assert np.array_equal(b.outputs[name], result.outputs[0].raw)
    assert [d["kind"] for d in b.diagnosis] == ["association", "association"]
    assert b.run["status"] == "ok" and b.fixes_applied[0]["kind"] == "reassign"
    assert {"python", "numpy", "ai-edge-litert"} <= set(b.versions)
    assert b.version == 1 and b.note == OLD_BUNDLE_NOTE


def _zip(members: dict[str, bytes], manifest: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if manifest is not None:
            zf.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


MANIFEST = {"format": "lite-debug-bundle", "version": 1, "model": "model.tflite", "inputs": {}}


@pytest.mark.parametrize(
    "members, words",
    [
        ({"../evil.tflite": b"x"}, "not a safe relative path"),
        ({"/etc/passwd": b"x"}, "not a safe relative path"),
        ({"inputs\\0.npy": b"x"}, "not a safe relative path"),
        ({"inner.zip": b"PK"}, "nested archive"),
    ],
)
def test_unsafe_member_names_are_refused(members, words):
    with pytest.raises(BundleError, match=words):
        read_bundle(_zip(members, MANIFEST))


def test_not_a_bundle():
    with pytest.raises(BundleError, match="not a readable zip"):
        read_bundle(b"hello")
    with pytest.raises(BundleError, match="no lite-debug manifest"):
        read_bundle(_zip({"model.tflite": b"x"}))
    assert not is_bundle(_zip({"model.tflite": b"x"}))


def test_zip_bomb_is_stopped_by_what_decompresses_not_what_is_declared():
    bomb = _zip({"model.tflite": b"\0" * (8 << 20)}, MANIFEST)
    assert len(bomb) < 100_000
    with pytest.raises(BundleError, match="zip bomb|in all"):
        read_bundle(bomb, limits=BundleLimits(max_member_bytes=1 << 20))
    with pytest.raises(BundleError, match="in all"):
        read_bundle(bomb, limits=BundleLimits(max_total_bytes=1 << 20))


def test_too_many_members():
    with pytest.raises(BundleError, match="more than the 3 allowed"):
        read_bundle(_zip({f"f{i}.txt": b"" for i in range(5)}, MANIFEST), limits=BundleLimits(max_members=3))


def test_missing_member_and_malformed_manifest():
    with pytest.raises(BundleError, match="no such file"):
        read_bundle(_zip({}, MANIFEST))
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(_zip({"manifest.json": b"{"}))


def test_pickled_input_in_a_bundle_is_refused():
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    data = _zip({"model.tflite": b"m", "inputs/0.npy": pickled.getvalue()}, {**MANIFEST, "inputs": {"x": "inputs/0.npy"}})
    with pytest.raises(BundleError, match="inputs/0.npy"):
        read_bundle(data)


@pytest.mark.parametrize(
    "bomb, words",
    [
        # The bomb listed 4 million entries; the end records say so before any is read.
        (central_directory_bomb(2, declared=4_000_000, zip64=True), "declares 4,000,000 files, more than the 256 allowed"),
        (central_directory_bomb(2, declared=60_000), "declares 60,000 files, more than the 256 allowed"),
        # The end record says 3, the directory holds 100,000 records: counted, stopped at 257.
        (central_directory_bomb(100_000, declared=3), "holds more files, more than the 256 allowed"),
    ],
    ids=["zip64", "classic", "lying-end-record"],
)
def test_a_central_directory_bomb_is_refused_before_zipfile_parses_it(monkeypatch, bomb, words):
    parsed = count_directory_parses(monkeypatch)
    with pytest.raises(BundleError, match=words):
        read_bundle(bomb)
    assert not is_bundle(bomb)
    assert parsed == []


def test_a_nul_in_a_member_name_is_refused_although_zipfile_would_cut_it():
    data = _zip({"inputs/0.npyPPP": b"x"}, MANIFEST).replace(b"inputs/0.npyPPP", b"inputs/0.npy\0..")
    assert "inputs/0.npy" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    with pytest.raises(BundleError, match="NUL character"):
        read_bundle(data)


def test_a_damaged_directory_says_so():
    data = _zip({"model.tflite": b"m"}, MANIFEST)
    end = data.rfind(b"PK\x05\x06")
    damaged = data[: end + 12] + (10**6).to_bytes(4, "little") + data[end + 16 :]  # the directory's size
    with pytest.raises(BundleError, match="damaged zip archive"):
        read_bundle(damaged)



# -- format 2: the failure, the history and the run kept -------------------------------------------


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=1, limits=Limits(run_seconds=20, load_seconds=20))
    yield p
    p.close()


@pytest.fixture(scope="module")
def photo_bundle(pool):
    need_real_models()
    name = "face_detection_short_range.tflite"
    ws = Workspace.open(name, (REAL / name).read_bytes())
    ws.load_files([("grace_hopper.jpg", (REAL / "grace_hopper.jpg").read_bytes())])
    before = diagnose(ws.spec, ws.original, choices=ws.choices)
    ws.apply_all()
    ws.run(pool)
    return ws, before, write_bundle(ws)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_a_bundle_holds_the_data_as_given_the_diagnosis_before_any_fix_and_the_fixes(photo_bundle):
    ws, before, data = photo_bundle
    members = _members(data)
    manifest = json.loads(members["manifest.json"])

    assert manifest["format"] == "lite-debug-bundle" and manifest["version"] == 2
    assert {"model.tflite", "inputs/0.npy", "outputs/0.npy", "outputs/1.npy", "diagnosis.json", "fixes.json",
            "run.json", "versions.json", "reproduce.py"} <= set(members)
    photo = np.load(io.BytesIO(members["inputs/0.npy"]), allow_pickle=False)
    assert photo.shape == (600, 512, 3) and np.array_equal(photo, ws.original.arrays["input"])  # not the fixed data
    diagnosis = json.loads(members["diagnosis.json"])
    assert diagnosis and diagnosis == json.loads(json.dumps([m.to_dict() for m in before]))
    fixes = json.loads(members["fixes.json"])
    assert [(f["kind"], f["code"]) for f in fixes] == [(f.kind, f.code) for f in ws.applied]
    assert json.loads(members["run.json"])["status"] == "ok"
    assert members["model.tflite"] == bytes(ws.model_bytes)


def test_a_bundle_reopens_with_its_failure_history_and_recorded_run(photo_bundle, pool):
    ws, before, data = photo_bundle
    assert is_bundle(data)
    b = read_bundle(data)
    assert b.version == 2 and b.note == "" and np.array_equal(b.feed.arrays["input"], ws.original.arrays["input"])
    assert [d["kind"] for d in b.diagnosis] == [m.kind for m in before]

    back = open_bundle(data, name="report.zip")

    assert back.container == "report.zip" and back.data_source == "bundle report.zip: grace_hopper.jpg"
    assert [s.fix.to_dict() for s in back.steps] == [s.fix.to_dict() for s in ws.steps]
    assert all(np.array_equal(a.feed.arrays["input"], b.feed.arrays["input"]) for a, b in zip(back.steps, ws.steps))
    assert [m.kind for m in back.recorded.errors] == [m.kind for m in before if m.severity == "error"]
    assert back.result is None and back.recorded.run.status == "ok" and back.recorded.format_version == 2
    compared = compare_outputs(back.recorded, back.run(pool))
    assert compared and all(c["max_abs"] == 0.0 for c in compared.values())
    assert compare_versions(back.recorded.versions) == []
    back.undo()
    assert back.steps == [] and back.errors  # the original failure, undone back to


def test_the_bundles_script_runs_in_the_unzipped_folder_and_gives_the_recorded_outputs(photo_bundle, tmp_path):
    ws, _, data = photo_bundle
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(folder)
    script = (folder / "reproduce.py").read_text()
    assert "inputs/0.npy" in script and "embedded_array" not in script  # the data beside it, not a copy

    done = subprocess.run([sys.executable, str(folder / "reproduce.py")], capture_output=True, text=True, timeout=120, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    with np.load(folder / "outputs.npz", allow_pickle=False) as saved:
        for out in ws.result.outputs:
            assert np.allclose(saved[out.name], out.raw, rtol=1e-5, atol=1e-6), out.name


def test_a_format_1_bundle_from_before_still_opens_as_data_without_history(pool):
    ex = example("image-size")
    ws = Workspace.from_example(ex.id)
    ws.apply_all()
    result = ws.run(pool)
    old = write_bundle(ws.model_bytes, ws.feed, mismatches=ws.mismatches, result=result, fixes_applied=ws.applied,
                       model_name=ex.model_file)
    assert json.loads(_members(old)["manifest.json"])["version"] == 1

    back = open_bundle(old, name="old.zip")

    assert back.recorded.notes == (OLD_BUNDLE_NOTE,) and back.recorded.format_version == 1
    assert back.steps == [] and np.array_equal(back.feed.arrays[next(iter(ws.feed.arrays))], next(iter(ws.feed.arrays.values())))
    assert back.recorded.run.status == "ok" and back.recorded.diagnosis == ()
    compared = compare_outputs(back.recorded, back.run(pool))
    assert compared and all(c["max_abs"] == 0.0 for c in compared.values())
    assert back.data_source == "bundle old.zip" and back.container == "old.zip"


def test_a_format_1_bundle_with_a_broken_run_still_opens():
    old = write_bundle((FIXTURES / "add_float.tflite").read_bytes(), Feed({"x": np.zeros((1, 4), np.float32)}))
    members = _members(old)
    members["run.json"] = json.dumps({"status": "exploded"}).encode()
    back = open_bundle(_zip({k: v for k, v in members.items() if k != "manifest.json"}, json.loads(members["manifest.json"])))
    assert back.recorded.run is None and "could not be read" in back.recorded.notes[1]


def _rewritten(data: bytes, change) -> bytes:
    members = _members(data)
    manifest = json.loads(members.pop("manifest.json"))
    change(manifest, members)
    return _zip(members, manifest)


def _first_file(manifest):
    return next(iter(manifest["files"]))


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda m, _: m.update(version=3), "newer than the 2 this lite-debug reads"),
        (lambda m, _: m.update(version="2"), "no usable format version"),
        (lambda m, _: m.update(files=[]), "something other than a map"),
        (lambda m, _: m["files"].update({_first_file(m): "../model.tflite"}), "not a safe relative path"),
        (lambda m, _: m["files"].update({"model.tflite": "model.tflite"}), "by something other than content addresses"),
        (lambda m, _: m["files"].pop(_first_file(m)), "which its manifest does not list"),
        (lambda m, _: m.update(case=None), "manifest should be an object"),
        (lambda m, members: members.update({"inputs/0.npy": members["inputs/0.npy"][:-3] + b"abc"}), "does not have that address"),
        (lambda m, _: m["case"]["steps"][0]["fix"].update(kind="os.system"), "none of"),
    ],
    ids=["newer", "version-text", "files-list", "outside", "not-addresses", "unlisted", "no-case", "swapped-member", "unknown-fix"],
)
def test_a_hostile_format_2_bundle_is_refused_with_a_sentence(photo_bundle, change, words):
    _, _, data = photo_bundle
    with pytest.raises(BundleError, match=re.escape(words)):
        open_bundle(_rewritten(data, change))


def test_json_members_are_capped_before_they_are_parsed():
    data = write_bundle((FIXTURES / "add_float.tflite").read_bytes(), Feed({"x": np.zeros((1, 4), np.float32)}))
    with pytest.raises(BundleError, match="more than 100 bytes"):
        read_bundle(data, limits=BundleLimits(max_json_bytes=100))


def test_a_workspace_assembled_from_a_command_line_check_writes_a_bundle_that_reopens(pool):
    # What `lite-debug check MODEL DATA --fix --bundle OUT.zip` has: the data as given, the outcome
    # of fix_all (one click) and the run. Assembled into a Workspace, it writes the same bundle.
    from lite_debug.binding import bind
    from lite_debug.choices import choices as find_choices, pending_fixes
    from lite_debug.inspection import inspect_model

    ex = example("int8-uint8-image")
    spec = inspect_model(ex.model_bytes)
    original = bind(spec, ex.broken_inputs())
    picks = {"value range:" + spec.inputs[0].name: "[0, 1]"}
    found = find_choices(spec, original, None, picks)
    outcome = fix_all(spec, original, choices=found, extra=pending_fixes(found, ()))
    result = pool.run(ex.model_bytes, spec, outcome.feed)

    ws = Workspace(model_name=ex.model_file, model_bytes=ex.model_bytes, spec=spec)
    ws.set_feed(original, source="int8-uint8-image.broken.png")
    ws.preferences = dict(picks)
    ws.steps, ws.clicks = list(outcome.steps), [("all", False)]
    ws.result = result

    back = open_bundle(write_bundle(ws))

    assert [s.fix.to_dict() for s in back.steps] == [f.to_dict() for f in outcome.applied]
    assert np.array_equal(next(iter(back.feed.arrays.values())), next(iter(outcome.feed.arrays.values())))
    assert back.preferences == picks and back.recorded.run.status == result.status
    assert "--data" in ws.script().text
